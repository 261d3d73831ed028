//! `ceneca backup verify` and `ceneca backup restore`: every file opened and checked
//! against the sealed manifest before anything is trusted.

use std::path::Path;
use std::sync::Arc;

use ceneca_crypto::KeyRing;

use super::sealing::open;
use super::{
    BackupError, BackupManifest, FORMAT, MANIFEST, MARKER, Marker, PARTIAL, identity, read_marker,
    regular_file,
};

/// Opens the backup at `dir` and checks every file it holds; answers its manifest.
pub async fn verify_backup(keys: Arc<KeyRing>, dir: &Path) -> Result<BackupManifest, BackupError> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || verify_blocking(&keys, &dir))
        .await
        .map_err(|e| BackupError::Refused(e.to_string()))?
}

/// The sealed manifest of the complete backup at `dir`, opened with `keys` (its
/// marker read first, as a hint only: what counts is what the manifest, authenticated,
/// says).
pub(crate) fn read_manifest(keys: &KeyRing, dir: &Path) -> Result<BackupManifest, BackupError> {
    let Marker { id, key, .. } = read_marker(dir)?;
    if !keys.key_ids().contains(&key.as_str()) {
        return Err(BackupError::Refused(format!(
            "the backup was sealed with key '{key}', which this key ring does not hold: use the key file (or CENECA_ENCRYPTION_KEY) of the folder that was backed up"
        )));
    }
    let path = dir.join(MANIFEST);
    regular_file(&path)?;
    let mut json = Vec::new();
    open(keys, &path, &identity(&id, MANIFEST), None, &mut json).map_err(|e| match e {
        // Key ids are not unique across deployments (`env` for every key in the
        // environment): a key of the same id that is not the one is told apart here.
        BackupError::Damaged(why) => BackupError::Damaged(format!(
            "{why}; if the backup is whole, it was sealed by another key with the id '{key}': check that the key ring is the one of the folder that was backed up"
        )),
        other => other,
    })?;
    let manifest: BackupManifest = serde_json::from_slice(&json)
        .map_err(|e| BackupError::Damaged(format!("the manifest does not read: {e}")))?;
    if manifest.format != FORMAT || manifest.id != id {
        return Err(BackupError::Damaged(
            "the manifest is not this backup's".into(),
        ));
    }
    Ok(manifest)
}

fn verify_blocking(keys: &KeyRing, dir: &Path) -> Result<BackupManifest, BackupError> {
    let manifest = read_manifest(keys, dir)?;
    let id = manifest.id.clone();
    let mut files = vec![&manifest.database];
    files.extend(manifest.blobs.iter().map(|b| &b.copy));
    for file in &files {
        regular_file(&dir.join(&file.file))?;
        open(
            keys,
            &dir.join(&file.file),
            &identity(&id, &file.file),
            Some(file),
            &mut std::io::sink(),
        )?;
    }
    // Nothing but what the manifest lists.
    for entry in std::fs::read_dir(dir).map_err(|e| BackupError::io(dir, e))? {
        let name = entry.map_err(|e| BackupError::io(dir, e))?.file_name();
        let name = name.to_string_lossy();
        let known = [MARKER, MANIFEST, "blobs", manifest.database.file.as_str()];
        if !known.contains(&name.as_ref()) {
            return Err(BackupError::Damaged(format!(
                "{name} is not part of a backup"
            )));
        }
    }
    let listed: std::collections::HashSet<&str> = files.iter().map(|f| f.file.as_str()).collect();
    let blobs = dir.join("blobs");
    for entry in std::fs::read_dir(&blobs).map_err(|e| BackupError::io(&blobs, e))? {
        let entry = entry.map_err(|e| BackupError::io(&blobs, e))?;
        let name = format!("blobs/{}", entry.file_name().to_string_lossy());
        if !listed.contains(name.as_str()) {
            return Err(BackupError::Damaged(format!(
                "{name} is not in the manifest"
            )));
        }
    }
    Ok(manifest)
}

/// What a restore writes into, so a backup that does not fit is refused before anything
/// is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreTarget<'a> {
    /// The engine the restored data will be opened with (`sqlite`, `postgres`).
    pub engine: &'a str,
    /// Whether the restored embedded database will be opened as encrypted
    /// (`store.encrypt_database`).
    pub database_encrypted: bool,
}

/// The name, in the data folder, of a PostgreSQL backup's logical export once restored:
/// the caller loads it into the database (`Store::restore_snapshot`), then deletes it.
pub const POSTGRES_EXPORT: &str = "restore-postgres.copy";

/// Restores the backup at `dir` into `data_dir` (which must not exist or be empty),
/// after every file was verified: the blob folder (`blobs`), the audit head the backup
/// recorded (`audit.head`, from its sealed manifest), and the database: an embedded
/// database as `ceneca.db`, a PostgreSQL export as [`POSTGRES_EXPORT`] for the caller
/// to load. The vector index is left for the caller to rebuild from the database.
pub async fn restore_backup(
    keys: Arc<KeyRing>,
    dir: &Path,
    data_dir: &Path,
    target: RestoreTarget<'_>,
) -> Result<BackupManifest, BackupError> {
    if std::fs::read_dir(data_dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(BackupError::Refused(format!(
            "{} is not empty: restore into a new folder",
            data_dir.display()
        )));
    }
    let manifest = verify_backup(keys.clone(), dir).await?;
    if manifest.engine != target.engine {
        return Err(BackupError::Refused(format!(
            "the backup is of a {} database and this configuration is on {}: {}",
            manifest.engine,
            target.engine,
            if manifest.engine == "postgres" {
                "set store.database_url to a new, empty PostgreSQL database"
            } else {
                "unset store.database_url to restore into an embedded data folder"
            }
        )));
    }
    if manifest.database_encrypted != target.database_encrypted {
        return Err(BackupError::Refused(if manifest.database_encrypted {
            "the backup's database is encrypted (SQLCipher): restore it with store.encrypt_database = true".to_owned()
        } else {
            "the backup's database is not encrypted: restore it with store.encrypt_database = false (then `ceneca db encrypt`)".to_owned()
        }));
    }
    let head = ceneca_domain::audit::ChainHead::parse(&manifest.audit_head)
        .map_err(|e| BackupError::Damaged(format!("the manifest's audit head: {e}")))?;
    let database_file = if manifest.engine == "postgres" {
        POSTGRES_EXPORT
    } else {
        "ceneca.db"
    };
    std::fs::create_dir_all(data_dir).map_err(|e| BackupError::io(data_dir, e))?;
    let mut written = write_restore(keys, dir, data_dir, database_file, &manifest).await;
    if written.is_ok() {
        let path = data_dir.join(crate::audit_head::FILE_NAME);
        written =
            crate::audit_head::write(&path, &head).map_err(|e| BackupError::Refused(e.to_string()));
    }
    if written.is_err() {
        // The folder was empty: what a failed restore wrote goes, so it never passes for
        // a restored one and the restore can be run again.
        empty_restored_folder(data_dir);
    }
    written.map(|()| manifest)
}

/// Removes what a restore put in `data_dir` (empty before it), so a failed restore never
/// passes for a restored folder and can be run again.
pub fn empty_restored_folder(data_dir: &Path) {
    for entry in std::fs::read_dir(data_dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

async fn write_restore(
    keys: Arc<KeyRing>,
    dir: &Path,
    data_dir: &Path,
    database_file: &str,
    manifest: &BackupManifest,
) -> Result<(), BackupError> {
    // The database, written beside its name and renamed once whole.
    let target = data_dir.join(database_file);
    let partial = data_dir.join(format!("{database_file}{PARTIAL}"));
    let (ring, source, id, file) = (
        keys.clone(),
        dir.join(&manifest.database.file),
        manifest.id.clone(),
        manifest.database.clone(),
    );
    let written = partial.clone();
    tokio::task::spawn_blocking(move || {
        let mut out =
            std::fs::File::create_new(&written).map_err(|e| BackupError::io(&written, e))?;
        open(
            &ring,
            &source,
            &identity(&id, &file.file),
            Some(&file),
            &mut out,
        )?;
        out.sync_all().map_err(|e| BackupError::io(&written, e))
    })
    .await
    .map_err(|e| BackupError::Refused(e.to_string()))??;
    std::fs::rename(&partial, &target).map_err(|e| BackupError::io(&target, e))?;

    let blob_folder = data_dir.join("blobs");
    let blobs =
        ceneca_store::FsBlobs::open(&blob_folder).map_err(|e| BackupError::io(&blob_folder, e))?;
    for blob in &manifest.blobs {
        let (ring, source, id, file) = (
            keys.clone(),
            dir.join(&blob.copy.file),
            manifest.id.clone(),
            blob.copy.clone(),
        );
        let key = ceneca_store::BlobKey::parse(&blob.key).ok_or_else(|| {
            BackupError::Damaged(format!("the manifest names a file {:?}", blob.key))
        })?;
        // Opened into a file of its own in the data folder (never whole in memory),
        // then moved into place.
        let opened = data_dir.join("restoring.blob");
        let into = opened.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = std::fs::File::create(&into).map_err(|e| BackupError::io(&into, e))?;
            open(
                &ring,
                &source,
                &identity(&id, &file.file),
                Some(&file),
                &mut out,
            )?;
            Ok::<_, BackupError>(())
        })
        .await
        .map_err(|e| BackupError::Refused(e.to_string()))??;
        blobs
            .adopt(&opened, key.digest())
            .await
            .map_err(|e| BackupError::io(&blob_folder, e))?;
    }
    super::create::sync_dir(data_dir)
}
