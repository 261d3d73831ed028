//! `ceneca db encrypt` and `ceneca db decrypt`: an embedded database converted in place,
//! with the server stopped, resumably.
//!
//! The rows are copied into a new file beside the database (`<name>.encrypting` or
//! `<name>.decrypting`), which is the connection's main database, with the original
//! attached as `src`:
//! 1. the original is switched out of WAL mode (which checkpoints it, and fails while any
//!    other connection has it open: the database is in use) and held under an exclusive
//!    lock for the whole run;
//! 2. the schema is created from the original's `sqlite_master` — tables, virtual tables
//!    and indexes, not FTS5's shadow tables nor SQLite's own;
//! 3. each table is copied in chunks of rows in rowid order (rowids kept: the full-text
//!    indexes refer to them), each chunk committed: an interrupted run resumes after the
//!    last row the new file holds;
//! 4. triggers and views are created after the data (so they do not fire on the copy),
//!    AUTOINCREMENT counters copied, the full-text indexes rebuilt;
//! 5. row counts are compared table by table, `integrity_check` (and SQLCipher's
//!    `cipher_integrity_check`) run, the file is synced and renamed over the original.
//!
//! The original stays untouched until the new file is verified.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::cipher::{self, DatabaseKeys, EncryptionError, FileState};
use crate::{Result, StoreError};

/// Which way to convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

impl Direction {
    fn suffix(self) -> &'static str {
        match self {
            Direction::Encrypt => "encrypting",
            Direction::Decrypt => "decrypting",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Rows per committed chunk.
    pub chunk_rows: u64,
    /// Test hook: stop with an error after this many chunks of rows (empty tables do not
    /// count), as an interrupted run would
    /// (the file beside the database is left for the next run to resume).
    pub stop_after_chunks: Option<u64>,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            chunk_rows: 5000,
            stop_after_chunks: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertReport {
    /// The database was already in the state asked for; nothing was done.
    pub already: bool,
    /// A previous run's file was found and continued.
    pub resumed: bool,
    pub tables: usize,
    pub rows: u64,
}

/// Progress: rows copied so far, of the total.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// The file a conversion of `path` writes before it replaces `path`.
pub fn work_path(path: &Path, direction: Direction) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(direction.suffix());
    path.with_file_name(name)
}

/// Converts the database at `path`: encrypts it under `keys`' active key, or decrypts it
/// with whichever of `keys` opens it.
pub fn convert(
    path: &Path,
    direction: Direction,
    keys: &DatabaseKeys,
    options: &ConvertOptions,
    progress: Progress<'_>,
) -> Result<ConvertReport> {
    let state = cipher::file_state(path)?;
    match (state, direction) {
        (FileState::New, _) => {
            return Err(StoreError::Config(format!(
                "there is no database at {}",
                path.display()
            )));
        }
        (FileState::Encrypted, Direction::Encrypt) => {
            // Already encrypted: say so only if the key ring opens it.
            cipher::unlock(path, keys, || Connection::open(path).map_err(backend))?;
            return Ok(ConvertReport {
                already: true,
                ..ConvertReport::default()
            });
        }
        (FileState::Plaintext, Direction::Decrypt) => {
            return Ok(ConvertReport {
                already: true,
                ..ConvertReport::default()
            });
        }
        _ => {}
    }
    let work = work_path(path, direction);
    let resumed = std::fs::metadata(&work).is_ok_and(|m| m.len() > 0);
    super::create_private_file(&work)?;
    let conn = Connection::open(&work).map_err(backend)?;
    super::register_functions(&conn).map_err(backend)?;
    if direction == Direction::Encrypt {
        cipher::apply_key(&conn, keys.active()).map_err(|e| {
            StoreError::Config(format!(
                "cannot open {} left by an earlier run ({e}): remove it and run this again",
                work.display()
            ))
        })?;
    }
    conn.busy_timeout(std::time::Duration::from_millis(500))
        .map_err(backend)?;
    conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA foreign_keys = OFF;")
        .map_err(backend)?;
    if let Err(e) =
        attach_source(&conn, path, direction, keys).and_then(|()| lock_source(&conn, path))
    {
        drop(conn);
        if !resumed {
            let _ = std::fs::remove_file(&work);
        }
        return Err(e);
    }

    let schema = Schema::read(&conn)?;
    create_objects(&conn, &schema, |o| o.kind == "table" || o.kind == "index")?;
    let total: u64 = schema
        .tables
        .iter()
        .map(|t| count(&conn, "src", t))
        .sum::<Result<u64>>()?;
    let mut copied: u64 = schema
        .tables
        .iter()
        .map(|t| count(&conn, "main", t))
        .sum::<Result<u64>>()?;
    progress(copied, total);
    let mut chunks = 0u64;
    for table in &schema.tables {
        copy_table(
            &conn,
            table,
            options,
            &mut chunks,
            &mut copied,
            total,
            progress,
        )?;
    }
    create_objects(&conn, &schema, |o| o.kind == "trigger" || o.kind == "view")?;
    finish(&conn)?;
    verify(&conn, &schema, direction)?;
    drop(conn);

    replace(path, &work)?;
    Ok(ConvertReport {
        already: false,
        resumed,
        tables: schema.tables.len(),
        rows: total,
    })
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Attaches the original as `src`: with the key that opens it when decrypting, as
/// plaintext (an empty key, else it would take the main database's) when encrypting.
fn attach_source(
    conn: &Connection,
    path: &Path,
    direction: Direction,
    keys: &DatabaseKeys,
) -> Result<()> {
    let path_text = path
        .to_str()
        .ok_or_else(|| StoreError::Config(format!("{} is not a UTF-8 path", path.display())))?;
    let candidates: Vec<String> = match direction {
        Direction::Encrypt => vec![String::new()],
        Direction::Decrypt => keys
            .all()
            .iter()
            .map(|(_, k)| cipher::raw_key_literal(k))
            .collect(),
    };
    cipher::use_ceneca_settings().map_err(backend)?;
    for key in candidates {
        // SQLCipher refuses a wrong key when attaching, or at the first read.
        let attached = conn
            .execute("ATTACH DATABASE ?1 AS src KEY ?2", params![path_text, key])
            .map(|_| ());
        match attached
            .and_then(|()| conn.query_row("SELECT count(*) FROM src.sqlite_master", [], |_| Ok(())))
        {
            Ok(()) => return Ok(()),
            Err(e) if cipher::is_wrong_key(&e) => {
                // Detached if the ATTACH itself succeeded.
                let _ = conn.execute("DETACH DATABASE src", []);
            }
            Err(e) => return Err(backend(e)),
        }
    }
    Err(EncryptionError::WrongKey {
        path: path.to_owned(),
    }
    .into())
}

/// Takes the original for this run alone: out of WAL mode (which SQLite allows only to
/// the last connection, and which checkpoints the WAL into the file), then an exclusive
/// lock kept until the connection closes.
fn lock_source(conn: &Connection, path: &Path) -> Result<()> {
    let in_use = || -> StoreError {
        EncryptionError::InUse {
            path: path.to_owned(),
        }
        .into()
    };
    let busy = |e: &rusqlite::Error| {
        matches!(e, rusqlite::Error::SqliteFailure(err, _)
            if matches!(err.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
    };
    let mode: String = match conn.query_row("PRAGMA src.journal_mode = DELETE", [], |r| r.get(0)) {
        Ok(mode) => mode,
        Err(e) if busy(&e) => return Err(in_use()),
        Err(e) => return Err(backend(e)),
    };
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(in_use());
    }
    conn.query_row("PRAGMA src.locking_mode = EXCLUSIVE", [], |_| Ok(()))
        .map_err(backend)?;
    match conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;") {
        Ok(()) => Ok(()),
        Err(e) if busy(&e) => Err(in_use()),
        Err(e) => Err(backend(e)),
    }
}

/// One schema object of the original.
struct Object {
    kind: String,
    name: String,
    sql: String,
}

/// What is copied: the original's schema objects and its real tables (not virtual, not
/// FTS5 shadow tables, not SQLite's own).
struct Schema {
    objects: Vec<Object>,
    tables: Vec<Table>,
}

struct Table {
    name: String,
    /// The columns to copy (generated columns are computed again).
    columns: Vec<String>,
    /// Whether a column aliases the rowid (then copying it keeps the rowid).
    rowid_alias: bool,
}

/// FTS5's shadow tables of a virtual table `name`.
const FTS_SHADOWS: &[&str] = &["data", "idx", "content", "docsize", "config"];

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Schema {
    fn read(conn: &Connection) -> Result<Self> {
        let mut stmt = conn
            .prepare(
                "SELECT type, name, sql FROM src.sqlite_master
                 WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
                 ORDER BY rowid",
            )
            .map_err(backend)?;
        let objects: Vec<Object> = stmt
            .query_map([], |r| {
                Ok(Object {
                    kind: r.get(0)?,
                    name: r.get(1)?,
                    sql: r.get(2)?,
                })
            })
            .map_err(backend)?
            .collect::<rusqlite::Result<_>>()
            .map_err(backend)?;
        let virtual_tables: Vec<String> = objects
            .iter()
            .filter(|o| is_virtual(o))
            .map(|o| o.name.clone())
            .collect();
        let shadow = |name: &str| {
            virtual_tables.iter().any(|v| {
                name.strip_prefix(v.as_str())
                    .and_then(|rest| rest.strip_prefix('_'))
                    .is_some_and(|suffix| FTS_SHADOWS.contains(&suffix))
            })
        };
        let objects: Vec<Object> = objects.into_iter().filter(|o| !shadow(&o.name)).collect();
        let mut tables = Vec::new();
        for o in objects
            .iter()
            .filter(|o| o.kind == "table" && !is_virtual(o))
        {
            if o.sql.to_ascii_uppercase().contains("WITHOUT ROWID") {
                return Err(StoreError::Config(format!(
                    "table {} has no rowid: this conversion copies tables by rowid",
                    o.name
                )));
            }
            let mut stmt = conn
                .prepare(&format!("PRAGMA src.table_xinfo({})", quote(&o.name)))
                .map_err(backend)?;
            // (name, declared type, position in the primary key, hidden)
            let columns: Vec<(String, String, i64, i64)> = stmt
                .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(5)?, r.get(6)?)))
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?;
            let pk: Vec<&(String, String, i64, i64)> = columns.iter().filter(|c| c.2 > 0).collect();
            let rowid_alias = pk.len() == 1 && pk[0].1.eq_ignore_ascii_case("INTEGER");
            tables.push(Table {
                name: o.name.clone(),
                columns: columns
                    .into_iter()
                    .filter(|c| c.3 == 0)
                    .map(|c| c.0)
                    .collect(),
                rowid_alias,
            });
        }
        Ok(Self { objects, tables })
    }
}

fn is_virtual(o: &Object) -> bool {
    o.kind == "table"
        && o.sql
            .trim_start()
            .to_ascii_uppercase()
            .starts_with("CREATE VIRTUAL TABLE")
}

/// Creates the objects `which` selects that the new file does not have yet (a resumed
/// run has some).
fn create_objects(
    conn: &Connection,
    schema: &Schema,
    which: impl Fn(&Object) -> bool,
) -> Result<()> {
    let tx = conn.unchecked_transaction().map_err(backend)?;
    for o in schema.objects.iter().filter(|o| which(o)) {
        let exists: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM main.sqlite_master WHERE name = ?1",
                [&o.name],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        if exists.is_none() {
            tx.execute_batch(&o.sql)
                .map_err(|e| StoreError::Migration(format!("{} {}: {e}", o.kind, o.name)))?;
        }
    }
    tx.commit().map_err(backend)
}

fn count(conn: &Connection, schema: &str, table: &Table) -> Result<u64> {
    conn.query_row(
        &format!("SELECT count(*) FROM {schema}.{}", quote(&table.name)),
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
    .map_err(backend)
}

#[allow(clippy::too_many_arguments)]
fn copy_table(
    conn: &Connection,
    table: &Table,
    options: &ConvertOptions,
    chunks: &mut u64,
    copied: &mut u64,
    total: u64,
    progress: Progress<'_>,
) -> Result<()> {
    let name = quote(&table.name);
    let columns = table
        .columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    let (into, select) = if table.rowid_alias {
        (columns.clone(), columns.clone())
    } else {
        (format!("rowid, {columns}"), format!("rowid, {columns}"))
    };
    let insert = format!(
        "INSERT INTO main.{name} ({into}) SELECT {select} FROM src.{name}
         WHERE ?1 IS NULL OR rowid > ?1 ORDER BY rowid LIMIT ?2"
    );
    let last_sql = format!("SELECT max(rowid) FROM main.{name}");
    let chunk_rows = options.chunk_rows.max(1);
    loop {
        let tx = conn.unchecked_transaction().map_err(backend)?;
        let last: Option<i64> = tx.query_row(&last_sql, [], |r| r.get(0)).map_err(backend)?;
        let n = tx
            .prepare_cached(&insert)
            .and_then(|mut s| s.execute(params![last, chunk_rows as i64]))
            .map_err(backend)? as u64;
        tx.commit().map_err(backend)?;
        *copied += n;
        progress(*copied, total);
        if n > 0 {
            *chunks += 1;
            if options
                .stop_after_chunks
                .is_some_and(|stop| *chunks >= stop)
            {
                return Err(StoreError::Backend(format!(
                    "stopped after {chunks} chunks (test hook)"
                )));
            }
        }
        if n < chunk_rows {
            return Ok(());
        }
    }
}

/// What follows the rows: AUTOINCREMENT counters, the schema version, the full-text
/// indexes (rebuilt the way `ceneca reindex` does; FTS5's own `rebuild` would index
/// sealed content as text).
fn finish(conn: &Connection) -> Result<()> {
    let tx = conn.unchecked_transaction().map_err(backend)?;
    let has = |schema: &str, name: &str| -> Result<bool> {
        tx.query_row(
            &format!("SELECT count(*) FROM {schema}.sqlite_master WHERE name = ?1"),
            [name],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(backend)
    };
    if has("main", "sqlite_sequence")? && has("src", "sqlite_sequence")? {
        tx.execute_batch(
            "DELETE FROM main.sqlite_sequence;
             INSERT INTO main.sqlite_sequence (name, seq) SELECT name, seq FROM src.sqlite_sequence;",
        )
        .map_err(backend)?;
    }
    let version: i64 = tx
        .query_row("PRAGMA src.user_version", [], |r| r.get(0))
        .map_err(backend)?;
    tx.execute_batch(&format!("PRAGMA main.user_version = {version}"))
        .map_err(backend)?;
    if has("main", "messages_fts")? && has("main", "documents_fts")? {
        super::search::reindex(&tx)?;
    }
    tx.commit().map_err(backend)
}

fn verify(conn: &Connection, schema: &Schema, direction: Direction) -> Result<()> {
    for table in &schema.tables {
        let (ours, theirs) = (count(conn, "main", table)?, count(conn, "src", table)?);
        if ours != theirs {
            return Err(StoreError::Backend(format!(
                "verification failed: {} has {ours} rows, the original {theirs}",
                table.name
            )));
        }
    }
    let integrity: Vec<String> = conn
        .prepare("PRAGMA main.integrity_check")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(backend)?;
    if integrity != ["ok"] {
        return Err(StoreError::Backend(format!(
            "verification failed: integrity_check says {}",
            integrity.join("; ")
        )));
    }
    if direction == Direction::Encrypt {
        let errors: Vec<String> = conn
            .prepare("PRAGMA cipher_integrity_check")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(backend)?;
        if !errors.is_empty() {
            return Err(StoreError::Backend(format!(
                "verification failed: cipher_integrity_check says {}",
                errors.join("; ")
            )));
        }
    }
    Ok(())
}

/// Syncs the verified file and renames it over the original (the original's WAL and
/// shared-memory files, empty since it left WAL mode, are removed first: a stale WAL
/// beside the new file would be read as its own).
fn replace(path: &Path, work: &Path) -> Result<()> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        StoreError::Config(format!("cannot {what} {}: {e}", p.display()))
    };
    std::fs::File::open(work)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("sync", work, e))?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_os_string();
        name.push(suffix);
        match std::fs::remove_file(PathBuf::from(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", path, e)),
        }
    }
    std::fs::rename(work, path).map_err(|e| io("rename", work, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| io("sync", dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;
    use crate::{Store, StoreOptions};

    fn key(seed: u8) -> [u8; 32] {
        std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(seed))
    }

    const ROWS: usize = 2500;

    /// A migrated plaintext database with `ROWS` messages (one of them findable by a
    /// rare word) and some change-log rows (an AUTOINCREMENT table).
    async fn plaintext_database(path: &Path) {
        let store = SqliteStore::open(path, &StoreOptions::new("")).unwrap();
        store.migrate_up().await.unwrap();
        drop(store);
        let conn = Connection::open(path).unwrap();
        super::super::register_functions(&conn).unwrap();
        // Rows without their parents: only the messages matter here.
        conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO messages (id, created_at, updated_at, thread_id, workspace_id, role, content, token_count, metadata, compressed)
                     VALUES (?1, '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z', ?2, ?3, 'user', ?4, 3, '{}', 0)",
                )
                .unwrap();
            let (thread, ws) = (
                uuid::Uuid::now_v7().to_string(),
                uuid::Uuid::now_v7().to_string(),
            );
            for i in 0..ROWS {
                let text = if i == 1234 {
                    "the zanzibar launch plan".to_owned()
                } else {
                    format!("message number {i}")
                };
                insert
                    .execute(params![uuid::Uuid::now_v7().to_string(), thread, ws, text])
                    .unwrap();
            }
            tx.execute(
                "INSERT INTO sync_events (id, created_at, updated_at, entity_type, entity_id, operation, changed_fields, hlc)
                 VALUES (?1, '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z', 'messages', ?1, 'create', '[]', 1)",
                [uuid::Uuid::now_v7().to_string()],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    /// Messages, the full-text hit for "zanzibar" (its rowid), the AUTOINCREMENT counter.
    fn contents(conn: &Connection) -> (i64, i64, i64) {
        conn.query_row(
            "SELECT (SELECT count(*) FROM messages),
                    (SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'zanzibar'),
                    (SELECT seq FROM sqlite_sequence WHERE name = 'sync_events')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    }

    fn keyed(path: &Path, key: &[u8; 32]) -> Connection {
        let conn = Connection::open(path).unwrap();
        cipher::apply_key(&conn, key).unwrap();
        conn
    }

    /// Migration round trip: plaintext → encrypted (interrupted after 3 chunks, then
    /// resumed) → plaintext, with every row, the full-text index and the counters intact.
    #[tokio::test]
    async fn encrypt_resumes_after_an_interruption_and_decrypt_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ceneca.db");
        plaintext_database(&path).await;
        let before = contents(&Connection::open(&path).unwrap());
        assert_eq!(before.0, ROWS as i64);
        let keys = DatabaseKeys::new("k1", key(1));

        let mut seen = Vec::new();
        let stopped = convert(
            &path,
            Direction::Encrypt,
            &keys,
            &ConvertOptions {
                chunk_rows: 100,
                stop_after_chunks: Some(3),
            },
            &mut |done, total| seen.push((done, total)),
        );
        assert!(stopped.is_err());
        let work = work_path(&path, Direction::Encrypt);
        assert!(work.exists(), "the partial file stays for the next run");
        assert_eq!(cipher::file_state(&path).unwrap(), FileState::Plaintext);
        assert_eq!(contents(&Connection::open(&path).unwrap()), before);
        let copied_before = seen.last().unwrap().0;
        assert!(copied_before > 0 && copied_before < ROWS as u64, "{seen:?}");

        let mut resumed_at = None;
        let report = convert(
            &path,
            Direction::Encrypt,
            &keys,
            &ConvertOptions {
                chunk_rows: 100,
                stop_after_chunks: None,
            },
            &mut |done, _| {
                resumed_at.get_or_insert(done);
            },
        )
        .unwrap();
        assert!(report.resumed && !report.already, "{report:?}");
        assert_eq!(resumed_at, Some(copied_before), "continued, not restarted");
        assert!(!work.exists());
        assert_eq!(cipher::file_state(&path).unwrap(), FileState::Encrypted);
        assert_eq!(contents(&keyed(&path, &key(1))), before);
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(8).any(|w| w == b"zanzibar"));

        // The server opens it, encrypted, and searches it.
        let mut options = StoreOptions::new("");
        options.database_keys = Some(keys.clone());
        let store = SqliteStore::open(&path, &options).unwrap();
        assert!(store.migrate_up().await.unwrap().is_empty());
        drop(store);

        let again = convert(
            &path,
            Direction::Encrypt,
            &keys,
            &ConvertOptions::default(),
            &mut |_, _| {},
        )
        .unwrap();
        assert!(again.already);

        let report = convert(
            &path,
            Direction::Decrypt,
            &keys,
            &ConvertOptions::default(),
            &mut |_, _| {},
        )
        .unwrap();
        assert!(!report.already && !report.resumed);
        assert_eq!(cipher::file_state(&path).unwrap(), FileState::Plaintext);
        assert_eq!(contents(&Connection::open(&path).unwrap()), before);
        let integrity: String = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
    }

    /// With a server's store open on the database, the conversion refuses to start.
    #[tokio::test]
    async fn a_database_in_use_is_not_converted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ceneca.db");
        let store = SqliteStore::open(&path, &StoreOptions::new("")).unwrap();
        store.migrate_up().await.unwrap();
        let err = convert(
            &path,
            Direction::Encrypt,
            &DatabaseKeys::new("k1", key(1)),
            &ConvertOptions::default(),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(
            matches!(err, StoreError::Encryption(EncryptionError::InUse { .. })),
            "{err:?}"
        );
        assert_eq!(cipher::file_state(&path).unwrap(), FileState::Plaintext);
        drop(store);
    }

    /// Decrypting with a key ring that does not open the file says so.
    #[tokio::test]
    async fn decrypting_with_the_wrong_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ceneca.db");
        let mut options = StoreOptions::new("");
        options.database_keys = Some(DatabaseKeys::new("k1", key(1)));
        SqliteStore::open(&path, &options)
            .unwrap()
            .migrate_up()
            .await
            .unwrap();
        let err = convert(
            &path,
            Direction::Decrypt,
            &DatabaseKeys::new("k2", key(2)),
            &ConvertOptions::default(),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Encryption(EncryptionError::WrongKey { .. })
            ),
            "{err:?}"
        );
    }
}
