//! The encrypted embedded database: SQLCipher (rusqlite's `bundled-sqlcipher`, over the
//! system's libcrypto), keyed with raw 256-bit keys derived from the key ring.
//!
//! A connection is keyed by `PRAGMA key = "x'<64 hex digits>'"` as its very first
//! statement: a raw key, so SQLCipher skips its password derivation (the key already is
//! an HKDF output). Pages are authenticated with HMAC-SHA256 rather than SQLCipher 4's
//! default HMAC-SHA512 ([`use_ceneca_settings`]). Whether a file is encrypted is read from its first 16 bytes: a
//! plaintext SQLite file starts with `SQLite format 3\0`, an encrypted one with a random
//! salt. A file in the state the configuration does not expect is refused with an
//! [`EncryptionError`] that tells the operator what to do; it is never opened the other
//! way (which would fail later and less clearly, or write plaintext into an encrypted
//! deployment).

use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// The header of a plaintext SQLite database file.
pub const PLAINTEXT_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The keys of an encrypted embedded database, the active one first: raw SQLCipher keys
/// derived from the key ring (never its master keys). The others open a file still
/// encrypted under a retired key, which is then re-keyed to the active one.
#[derive(Clone)]
pub struct DatabaseKeys {
    keys: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for DatabaseKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("DatabaseKeys")
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

impl DatabaseKeys {
    /// The active key (its id, for logs, and the raw key).
    pub fn new(active_id: impl Into<String>, active: [u8; 32]) -> Self {
        Self {
            keys: vec![(active_id.into(), active)],
        }
    }

    /// Adds a retired key, tried when the active one does not open the file.
    pub fn with_retired(mut self, id: impl Into<String>, key: [u8; 32]) -> Self {
        self.keys.push((id.into(), key));
        self
    }

    pub fn active_id(&self) -> &str {
        &self.keys[0].0
    }

    pub(crate) fn active(&self) -> &[u8; 32] {
        &self.keys[0].1
    }

    pub(crate) fn all(&self) -> &[(String, [u8; 32])] {
        &self.keys
    }
}

/// Why an embedded database was not opened (or converted). Each message names the file
/// and what to do; none holds key material.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    #[error(
        "the database at {} cannot be opened with the configured key ring (wrong key, or not a Ceneca database)",
        path.display()
    )]
    WrongKey { path: PathBuf },
    #[error(
        "the database at {} is not encrypted, but store.encrypt_database is on: stop Ceneca and run \
         `ceneca db encrypt` to encrypt it in place (or set store.encrypt_database = false)",
        path.display()
    )]
    NotEncrypted { path: PathBuf },
    #[error(
        "the database at {} is encrypted, but store.encrypt_database is off: set store.encrypt_database = true \
         (CENECA_ENCRYPT_DATABASE=true), or stop Ceneca and run `ceneca db decrypt` to decrypt it",
        path.display()
    )]
    Encrypted { path: PathBuf },
    #[error(
        "the database at {} is in use: stop every Ceneca process using it, then run this again",
        path.display()
    )]
    InUse { path: PathBuf },
}

/// What is on disk at a database path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// No file, or an empty one: a new database.
    New,
    Plaintext,
    /// Anything else: an encrypted database (or not a database at all).
    Encrypted,
}

/// Reads the first 16 bytes of `path`.
pub fn file_state(path: &Path) -> crate::Result<FileState> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::New),
        Err(e) => {
            return Err(crate::StoreError::Config(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let mut header = Vec::with_capacity(16);
    file.by_ref()
        .take(16)
        .read_to_end(&mut header)
        .map_err(|e| crate::StoreError::Config(format!("cannot read {}: {e}", path.display())))?;
    Ok(if header.is_empty() {
        FileState::New
    } else if header.as_slice() == PLAINTEXT_HEADER {
        FileState::Plaintext
    } else {
        FileState::Encrypted
    })
}

/// Refuses a file whose state the configuration does not expect.
pub fn check_state(path: &Path, keys: Option<&DatabaseKeys>) -> crate::Result<FileState> {
    let state = file_state(path)?;
    match (state, keys) {
        (FileState::Plaintext, Some(_)) => Err(EncryptionError::NotEncrypted {
            path: path.to_owned(),
        }
        .into()),
        (FileState::Encrypted, None) => Err(EncryptionError::Encrypted {
            path: path.to_owned(),
        }
        .into()),
        _ => Ok(state),
    }
}

/// The page MAC every Ceneca database uses: HMAC-SHA256, a full-strength MAC (a 256-bit
/// tag over a 256-bit key), which current CPUs compute in hardware (SHA extensions) where
/// SHA-512 runs in software. A page is authenticated on every read from the file and every
/// write, and a reader's page cache is emptied by each write of another connection, so the
/// MAC is most of what encryption costs: with SHA-512 a 4 KiB page took about 10 µs, with
/// SHA-256 about 3 µs (`openssl speed -bytes 4096` on the CI machine).
const PAGE_MAC: &str = "HMAC_SHA256";

/// Makes [`PAGE_MAC`] SQLCipher's default for every database this process keys, the
/// main one of a connection and any attached with `ATTACH … KEY` (SQLCipher reads its
/// defaults when a database is keyed). Once per process, before the first key.
pub(crate) fn use_ceneca_settings() -> rusqlite::Result<()> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let conn = Connection::open_in_memory().map_err(|e| e.to_string())?;
        conn.query_row(
            &format!("PRAGMA cipher_default_hmac_algorithm = {PAGE_MAC}"),
            [],
            |_| Ok(()),
        )
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(()),
            e => Err(e),
        })
        .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(|e| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!("configuring SQLCipher: {e}")),
        )
    })
}

/// `x'<hex>'`: SQLCipher's spelling of a raw key.
pub(crate) fn raw_key_literal(key: &[u8; 32]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(67);
    out.push_str("x'");
    for b in key {
        let _ = write!(out, "{b:02x}");
    }
    out.push('\'');
    out
}

/// Keys a fresh connection (the first statement it runs) and checks the key opens the
/// file: with a wrong key SQLCipher accepts `PRAGMA key` and fails the first read.
pub(crate) fn apply_key(conn: &Connection, key: &[u8; 32]) -> rusqlite::Result<()> {
    use_ceneca_settings()?;
    conn.pragma_update(None, "key", raw_key_literal(key))?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
}

/// Whether an error is SQLCipher's answer to a wrong key (`file is not a database`).
pub(crate) fn is_wrong_key(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(err, _) if err.code == rusqlite::ErrorCode::NotADatabase)
}

/// Opens `path` (with `open`) keyed with the active key, or else with each retired key
/// in turn; a file a retired key opens is re-keyed to the active key, so this and every
/// later connection use the active one. The re-keying runs outside WAL mode (SQLCipher
/// rewrites every page; the WAL would keep pages under the old key).
pub(crate) fn unlock(
    path: &Path,
    keys: &DatabaseKeys,
    open: impl Fn() -> crate::Result<Connection>,
) -> crate::Result<Connection> {
    let wrong = || EncryptionError::WrongKey {
        path: path.to_owned(),
    };
    let backend = |e: rusqlite::Error| crate::StoreError::Backend(e.to_string());
    // A connection keyed once keeps that key: each attempt has a connection of its own.
    let conn = open()?;
    match apply_key(&conn, keys.active()) {
        Ok(()) => return Ok(conn),
        Err(e) if is_wrong_key(&e) => drop(conn),
        Err(e) => return Err(backend(e)),
    }
    for (id, key) in &keys.all()[1..] {
        let probe = open()?;
        match apply_key(&probe, key) {
            Ok(()) => {}
            Err(e) if is_wrong_key(&e) => continue,
            Err(e) => return Err(backend(e)),
        }
        probe
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
            .map_err(backend)?;
        probe
            .pragma_update(None, "rekey", raw_key_literal(keys.active()))
            .map_err(backend)?;
        drop(probe);
        tracing::info!(
            path = %path.display(),
            from_key = %id,
            to_key = %keys.active_id(),
            "the database was encrypted under a retired key: re-keyed to the active key"
        );
        let conn = open()?;
        return match apply_key(&conn, keys.active()) {
            Ok(()) => Ok(conn),
            Err(e) if is_wrong_key(&e) => Err(wrong().into()),
            Err(e) => Err(backend(e)),
        };
    }
    if upgrade_page_mac(path, keys, &open)? {
        let conn = open()?;
        return match apply_key(&conn, keys.active()) {
            Ok(()) => Ok(conn),
            Err(e) if is_wrong_key(&e) => Err(wrong().into()),
            Err(e) => Err(backend(e)),
        };
    }
    Err(wrong().into())
}

/// The page MAC of databases encrypted by Ceneca builds before [`PAGE_MAC`]: SQLCipher
/// 4's default.
const LEGACY_PAGE_MAC: &str = "HMAC_SHA512";

/// Converts a file one of `keys` opens with [`LEGACY_PAGE_MAC`] to [`PAGE_MAC`] under the
/// active key; whether one did. The copy is made encrypted to encrypted
/// (`sqlcipher_export` into `<file>.upgrading`, keyed), so no plaintext page is ever
/// written; it is synced and renamed over the original only when complete, after the
/// original's WAL is checkpointed into it and removed. Killed before the rename, the
/// original is intact and the next start does it again.
fn upgrade_page_mac(
    path: &Path,
    keys: &DatabaseKeys,
    open: &impl Fn() -> crate::Result<Connection>,
) -> crate::Result<bool> {
    let backend = |e: rusqlite::Error| crate::StoreError::Backend(e.to_string());
    let io = |e: std::io::Error| crate::StoreError::Backend(format!("{}: {e}", path.display()));
    for (id, key) in keys.all() {
        let legacy = open()?;
        legacy
            .pragma_update(None, "key", raw_key_literal(key))
            .map_err(backend)?;
        legacy
            .pragma_update(None, "cipher_hmac_algorithm", LEGACY_PAGE_MAC)
            .map_err(backend)?;
        match legacy.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())) {
            Ok(()) => {}
            Err(e) if is_wrong_key(&e) => continue,
            Err(e) => return Err(backend(e)),
        }
        // Alone on the file, its WAL checkpointed into it and gone.
        legacy
            .execute_batch(
                "PRAGMA locking_mode = EXCLUSIVE; PRAGMA wal_checkpoint(TRUNCATE); \
                 PRAGMA journal_mode = DELETE;",
            )
            .map_err(backend)?;
        let mut upgrading = path.as_os_str().to_owned();
        upgrading.push(".upgrading");
        let upgrading = std::path::PathBuf::from(upgrading);
        match std::fs::remove_file(&upgrading) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let target = upgrading.to_str().ok_or_else(|| {
            crate::StoreError::Config(format!("{} is not a UTF-8 path", upgrading.display()))
        })?;
        let version: i64 = legacy
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend)?;
        legacy
            .execute(
                "ATTACH DATABASE ?1 AS upgraded KEY ?2",
                rusqlite::params![target, raw_key_literal(keys.active())],
            )
            .map_err(backend)?;
        legacy
            .query_row("SELECT sqlcipher_export('upgraded')", [], |_| Ok(()))
            .map_err(backend)?;
        legacy
            .execute_batch(&format!(
                "PRAGMA upgraded.user_version = {version}; DETACH DATABASE upgraded;"
            ))
            .map_err(backend)?;
        drop(legacy);
        std::fs::File::open(&upgrading)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        std::fs::rename(&upgrading, path).map_err(io)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        tracing::info!(
            path = %path.display(),
            from_key = %id,
            to_key = %keys.active_id(),
            "the database was encrypted by an earlier build (pages authenticated with {LEGACY_PAGE_MAC}): converted to {PAGE_MAC}"
        );
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;
    use crate::{Store, StoreError, StoreOptions};

    pub(crate) fn key(seed: u8) -> [u8; 32] {
        std::array::from_fn(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
    }

    fn options(keys: Option<DatabaseKeys>) -> StoreOptions {
        let mut options = StoreOptions::new("");
        options.database_keys = keys;
        options
    }

    async fn write_canary(store: &SqliteStore, canary: &str) {
        store
            .write({
                let canary = canary.to_owned();
                move |conn| {
                    conn.execute(
                        "INSERT INTO users (id, created_at, updated_at, email, display_name, password_hash)
                         VALUES (?1, '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z', ?2, 'x', 'x')",
                        rusqlite::params![uuid::Uuid::now_v7().to_string(), canary],
                    )
                    .map_err(crate::sqlite::backend)?;
                    Ok(())
                }
            })
            .await
            .unwrap();
    }

    async fn read_canary(store: &SqliteStore) -> Vec<String> {
        store
            .read(|conn| {
                conn.prepare("SELECT email FROM users")
                    .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                    .map_err(crate::sqlite::backend)
            })
            .await
            .unwrap()
    }

    fn files_contain(dir: &Path, needle: &[u8]) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                std::fs::read(p)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle)
            })
            .map(|p| p.display().to_string())
            .collect()
    }

    /// SQLCipher: a wrong key is refused with the clear error (not a crash), and the data
    /// never reaches the files in plaintext — while the same writes without encryption
    /// do (so the check can fail).
    #[tokio::test]
    async fn wrong_key_is_refused_clearly_and_the_files_hold_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ceneca.db");
        let canary = format!("canary-{}@example.com", uuid::Uuid::now_v7().simple());
        {
            let store =
                SqliteStore::open(&path, &options(Some(DatabaseKeys::new("a", key(1))))).unwrap();
            store.migrate_up().await.unwrap();
            write_canary(&store, &canary).await;
            assert_eq!(file_state(&path).unwrap(), FileState::Encrypted);
            assert!(
                dir.path().join("ceneca.db-wal").exists(),
                "the WAL is checked too"
            );
            assert_eq!(
                files_contain(dir.path(), canary.as_bytes()),
                Vec::<String>::new()
            );
        }
        let err = SqliteStore::open(&path, &options(Some(DatabaseKeys::new("b", key(2)))))
            .err()
            .expect("a wrong key opens nothing");
        assert!(
            matches!(
                err,
                StoreError::Encryption(EncryptionError::WrongKey { .. })
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&path.display().to_string())
                && message.contains("cannot be opened with the configured key ring"),
            "{message}"
        );
        let err = SqliteStore::open(&path, &options(None)).err().unwrap();
        assert!(
            matches!(
                err,
                StoreError::Encryption(EncryptionError::Encrypted { .. })
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("ceneca db decrypt"), "{err}");
        let store =
            SqliteStore::open(&path, &options(Some(DatabaseKeys::new("a", key(1))))).unwrap();
        assert_eq!(read_canary(&store).await, std::slice::from_ref(&canary));

        // The control: the same write without encryption is found in the files.
        let plain = tempfile::tempdir().unwrap();
        let path = plain.path().join("ceneca.db");
        let store = SqliteStore::open(&path, &options(None)).unwrap();
        store.migrate_up().await.unwrap();
        write_canary(&store, &canary).await;
        assert!(!files_contain(plain.path(), canary.as_bytes()).is_empty());
        drop(store);
        let err = SqliteStore::open(&path, &options(Some(DatabaseKeys::new("a", key(1)))))
            .err()
            .unwrap();
        assert!(
            matches!(
                err,
                StoreError::Encryption(EncryptionError::NotEncrypted { .. })
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("ceneca db encrypt"), "{err}");
    }

    /// Key rotation: a file written under key A opens once B is active (A retired) and is
    /// re-keyed to B, so B alone opens it afterwards.
    #[tokio::test]
    async fn a_retired_key_opens_the_file_which_is_rekeyed_to_the_active_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ceneca.db");
        {
            let store =
                SqliteStore::open(&path, &options(Some(DatabaseKeys::new("a", key(1))))).unwrap();
            store.migrate_up().await.unwrap();
            write_canary(&store, "under-a@example.com").await;
        }
        {
            let rotated = DatabaseKeys::new("b", key(2)).with_retired("a", key(1));
            let store = SqliteStore::open(&path, &options(Some(rotated))).unwrap();
            assert_eq!(read_canary(&store).await, ["under-a@example.com"]);
            write_canary(&store, "under-b@example.com").await;
        }
        let store =
            SqliteStore::open(&path, &options(Some(DatabaseKeys::new("b", key(2))))).unwrap();
        assert_eq!(read_canary(&store).await.len(), 2);
        drop(store);
        assert!(
            SqliteStore::open(&path, &options(Some(DatabaseKeys::new("a", key(1))))).is_err(),
            "the old key no longer opens it"
        );
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let keys = DatabaseKeys::new("a", key(1));
        let shown = format!("{keys:?}");
        assert!(shown.contains("\"a\""), "{shown}");
        let hex = raw_key_literal(&key(1));
        assert!(!shown.contains(&hex[2..10]), "{shown}");
    }

    /// Pages are authenticated with HMAC-SHA256 on every keyed connection and on every
    /// database attached with a key (the conversion's path), not SQLCipher's SHA-512.
    #[test]
    fn pages_are_authenticated_with_hmac_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let (main, attached) = (dir.path().join("main.db"), dir.path().join("other.db"));
        let conn = Connection::open(&main).unwrap();
        apply_key(&conn, &key(1)).unwrap();
        let algorithm = |schema: &str| -> String {
            conn.query_row(&format!("PRAGMA {schema}cipher_hmac_algorithm"), [], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(algorithm(""), "HMAC_SHA256");
        conn.execute(
            "ATTACH DATABASE ?1 AS other KEY ?2",
            rusqlite::params![attached.to_str().unwrap(), raw_key_literal(&key(2))],
        )
        .unwrap();
        conn.execute_batch("CREATE TABLE other.t (x); INSERT INTO other.t VALUES (1);")
            .unwrap();
        assert_eq!(algorithm("other."), "HMAC_SHA256");
        // A file written with it opens again with the same key only.
        drop(conn);
        let again = Connection::open(&attached).unwrap();
        apply_key(&again, &key(2)).unwrap();
        let wrong = Connection::open(&attached).unwrap();
        assert!(apply_key(&wrong, &key(1)).is_err_and(|e| is_wrong_key(&e)));
    }

    /// A database encrypted by an earlier build (HMAC-SHA512 pages, under the active or a
    /// retired key) opens with all its rows, converted to HMAC-SHA256 under the active
    /// key; a key that opens neither format is still refused as a wrong key.
    #[tokio::test]
    async fn a_database_of_an_earlier_build_is_converted_with_its_rows() {
        for (written_with, ring) in [
            (key(1), DatabaseKeys::new("a", key(1))),
            (
                key(1),
                DatabaseKeys::new("b", key(2)).with_retired("a", key(1)),
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ceneca.db");
            {
                let store = SqliteStore::open(&path, &options(Some(ring.clone()))).unwrap();
                store.migrate_up().await.unwrap();
            }
            // Rewrite it as an earlier build did: the same rows, SHA-512 page MACs.
            let legacy_path = dir.path().join("legacy.db");
            {
                let conn = Connection::open(&path).unwrap();
                apply_key(&conn, ring.active()).unwrap();
                conn.execute(
                    "ATTACH DATABASE ?1 AS legacy KEY ?2",
                    rusqlite::params![
                        legacy_path.to_str().unwrap(),
                        raw_key_literal(&written_with)
                    ],
                )
                .unwrap();
                conn.pragma_update(
                    Some(rusqlite::DatabaseName::Attached("legacy")),
                    "cipher_hmac_algorithm",
                    LEGACY_PAGE_MAC,
                )
                .unwrap();
                conn.query_row("SELECT sqlcipher_export('legacy')", [], |_| Ok(()))
                    .unwrap();
                let version: i64 = conn
                    .query_row("PRAGMA user_version", [], |r| r.get(0))
                    .unwrap();
                conn.execute_batch(&format!("PRAGMA legacy.user_version = {version}"))
                    .unwrap();
            }
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            std::fs::rename(&legacy_path, &path).unwrap();
            let opened = Connection::open(&path).unwrap();
            assert!(
                apply_key(&opened, &written_with).is_err_and(|e| is_wrong_key(&e)),
                "the file is in the earlier format"
            );
            drop(opened);
            // Wrong keys are still wrong.
            assert!(matches!(
                SqliteStore::open(&path, &options(Some(DatabaseKeys::new("c", key(9))))),
                Err(StoreError::Encryption(EncryptionError::WrongKey { .. }))
            ));
            let store = SqliteStore::open(&path, &options(Some(ring.clone()))).unwrap();
            write_canary(&store, "after-upgrade@example.com").await;
            assert_eq!(read_canary(&store).await, ["after-upgrade@example.com"]);
            drop(store);
            let conn = Connection::open(&path).unwrap();
            apply_key(&conn, ring.active()).unwrap();
            let algorithm: String = conn
                .query_row("PRAGMA cipher_hmac_algorithm", [], |r| r.get(0))
                .unwrap();
            assert_eq!(algorithm, "HMAC_SHA256");
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok");
            let fts: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(fts > 0, "the full-text tables came along");
            assert!(!dir.path().join("ceneca.db.upgrading").exists());
        }
    }
}
