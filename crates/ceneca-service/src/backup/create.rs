//! `ceneca backup create`: a backup written while the server runs and writes go on.

use std::path::{Path, PathBuf};

use ceneca_domain::clock::now;
use ceneca_domain::output::format_time;

use super::sealing::seal;
use super::{
    BackupBlob, BackupError, BackupManifest, DATABASE, FORMAT, MANIFEST, MARKER, PARTIAL, identity,
};
use crate::Services;
use crate::error::{Result, ServiceError};

/// What a backup holds, for the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub manifest: BackupManifest,
    /// Bytes of content (database and files), and of the backup on disk.
    pub content_bytes: u64,
    pub sealed_bytes: u64,
}

impl From<BackupError> for ServiceError {
    fn from(e: BackupError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl Services {
    /// Writes a backup of this deployment into a new folder under `out` (see the module):
    /// the database as one consistent snapshot, then every file of the blob folder. A
    /// backup another run left half-written (`.partial`) under `out` is removed first.
    /// The snapshot is taken in `scratch` (the data folder: it is as readable as the
    /// database there, never in the backup's destination) and deleted once sealed.
    pub async fn create_backup(&self, out: &Path, scratch: &Path) -> Result<BackupSummary> {
        // One backup at a time per data folder: two would share the snapshot's place,
        // and each takes what the other left half-written for a crashed run's.
        let lock_path = scratch.join(LOCK);
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| BackupError::io(&lock_path, e))?;
        if lock.try_lock().is_err() {
            return Err(ServiceError::conflict(
                "another backup of this data folder is being written: wait for it to end",
            ));
        }
        // From before the snapshot until the last file is copied, no attachment file is
        // removed by this process: a row of the snapshot may name it.
        let _running = self.backup_running_guard();
        let mut partial = None;
        let snapshot = scratch.join(SNAPSHOT);
        // What a run killed before sealing its snapshot left.
        remove_if_there(&snapshot)?;
        let outcome = self.write_backup(out, &snapshot, &mut partial).await;
        if outcome.is_err() {
            // What a failed run wrote is no backup.
            if let Some(partial) = partial {
                let _ = std::fs::remove_dir_all(partial);
            }
            let _ = remove_if_there(&snapshot);
        }
        outcome
    }

    async fn write_backup(
        &self,
        out: &Path,
        snapshot: &Path,
        started: &mut Option<PathBuf>,
    ) -> Result<BackupSummary> {
        std::fs::create_dir_all(out).map_err(|e| BackupError::io(out, e))?;
        remove_partial_backups(out)?;
        let at = now();
        let id = ceneca_domain::new_id().simple().to_string();
        let stamp = at
            .format(&time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let name = format!("ceneca-backup-{stamp}-{}", &id[..12]);
        let partial = out.join(format!("{name}{PARTIAL}"));
        std::fs::create_dir(&partial).map_err(|e| BackupError::io(&partial, e))?;
        *started = Some(partial.clone());
        // Held while this run writes: another run (of this deployment or another one
        // sharing the folder) removes a `.partial` only once nobody holds it.
        let writing_path = partial.join(WRITING);
        let writing = std::fs::File::create_new(&writing_path)
            .map_err(|e| BackupError::io(&writing_path, e))?;
        writing
            .try_lock()
            .map_err(|e| BackupError::io(&writing_path, std::io::Error::other(e.to_string())))?;
        std::fs::create_dir(partial.join("blobs")).map_err(|e| BackupError::io(&partial, e))?;

        // The database, as one read transaction sees it.
        let snapshot = snapshot.to_owned();
        let audit_head = self
            .store
            .snapshot_into(snapshot.clone())
            .await?
            .to_string();
        let keys = self.keys.clone();
        let (id_for, snapshot_for, partial_for) = (id.clone(), snapshot.clone(), partial.clone());
        let database = tokio::task::spawn_blocking(move || {
            let mut source = std::fs::File::open(&snapshot_for)
                .map_err(|e| BackupError::io(&snapshot_for, e))?;
            let sealed = seal(
                &keys,
                &mut source,
                &partial_for.join(DATABASE),
                &identity(&id_for, DATABASE),
                DATABASE,
            );
            std::fs::remove_file(&snapshot_for).map_err(|e| BackupError::io(&snapshot_for, e))?;
            sealed
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))??;

        // Every file of the blob folder: a file is never changed once stored, so what a
        // row of the snapshot names is there unless a purge let it go meanwhile.
        let mut blobs = Vec::new();
        if let Some(store) = &self.blobs {
            let inventory = store
                .inventory()
                .await
                .map_err(|e| BackupError::io(out, e))?;
            for (n, (key, _)) in inventory.blobs.into_iter().enumerate() {
                let Some(file) = store
                    .open(&key)
                    .await
                    .map_err(|e| BackupError::io(out, e))?
                else {
                    continue;
                };
                let mut file = file.into_std().await;
                let name = format!("blobs/{:06}.sealed", n + 1);
                let (keys, id, target) = (self.keys.clone(), id.clone(), partial.join(&name));
                let copy = tokio::task::spawn_blocking(move || {
                    seal(&keys, &mut file, &target, &identity(&id, &name), &name)
                })
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))??;
                blobs.push(BackupBlob {
                    key: key.as_str().to_owned(),
                    copy,
                });
            }
        }

        let manifest = BackupManifest {
            format: FORMAT,
            id: id.clone(),
            created_at: format_time(at),
            engine: self.store.engine().as_str().to_owned(),
            database_encrypted: self.store.database_encrypted(),
            key_id: self.keys.active_key_id().to_owned(),
            database,
            blobs,
            audit_head,
        };
        let json =
            serde_json::to_vec(&manifest).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let (keys, id_for, target) = (self.keys.clone(), id.clone(), partial.join(MANIFEST));
        tokio::task::spawn_blocking(move || {
            seal(
                &keys,
                &mut json.as_slice(),
                &target,
                &identity(&id_for, MANIFEST),
                MANIFEST,
            )
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))??;
        let marker = format!(
            "ceneca backup {FORMAT}\nid {id}\nkey {}\ncreated {}\n",
            manifest.key_id, manifest.created_at
        );
        std::fs::remove_file(&writing_path).map_err(|e| BackupError::io(&writing_path, e))?;
        write_synced(&partial.join(MARKER), marker.as_bytes())?;
        sync_dir(&partial)?;
        sync_dir(&partial.join("blobs"))?;
        // Complete: it becomes a backup in one rename.
        let done = out.join(&name);
        std::fs::rename(&partial, &done).map_err(|e| BackupError::io(&done, e))?;
        sync_dir(out)?;
        let content_bytes =
            manifest.database.size + manifest.blobs.iter().map(|b| b.copy.size).sum::<u64>();
        let sealed_bytes = folder_size(&done);
        Ok(BackupSummary {
            path: done,
            manifest,
            content_bytes,
            sealed_bytes,
        })
    }
}

impl Services {
    /// Verifies the backup at `dir` with this deployment's key ring
    /// ([`super::verify_backup`]).
    pub async fn verify_backup(&self, dir: &Path) -> Result<BackupManifest> {
        Ok(super::verify_backup(self.keys.clone(), dir).await?)
    }

    /// Restores the backup at `dir` into the empty folder `data_dir` with this
    /// deployment's key ring, for a database like this one ([`super::restore_backup`]).
    pub async fn restore_backup(&self, dir: &Path, data_dir: &Path) -> Result<BackupManifest> {
        let target = super::RestoreTarget {
            engine: self.store.engine().as_str(),
            database_encrypted: self.store.database_encrypted(),
        };
        Ok(super::restore_backup(self.keys.clone(), dir, data_dir, target).await?)
    }
}

/// The database snapshot's name in the scratch folder while it is sealed, and the lock
/// one backup at a time holds there.
const SNAPSHOT: &str = "backup-snapshot.db";
const LOCK: &str = "backup.lock";
/// The lock a run holds in the `.partial` folder it writes.
const WRITING: &str = ".writing";

fn remove_if_there(path: &Path) -> Result<(), BackupError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BackupError::io(path, e)),
        _ => Ok(()),
    }
}

/// Removes what runs cut short left under `out` (folders ending in `.partial`).
fn remove_partial_backups(out: &Path) -> Result<(), BackupError> {
    for entry in std::fs::read_dir(out).map_err(|e| BackupError::io(out, e))? {
        let path = entry.map_err(|e| BackupError::io(out, e))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir()
            && name.starts_with("ceneca-backup-")
            && name.ends_with(PARTIAL)
            && abandoned(&path)
        {
            std::fs::remove_dir_all(&path).map_err(|e| BackupError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Whether the `.partial` folder at `path` was left by a run that ended: nobody holds
/// its lock (a process that dies lets go), or it has none and is older than a run takes
/// to create one.
fn abandoned(path: &Path) -> bool {
    match std::fs::File::open(path.join(WRITING)) {
        Ok(file) => file.try_lock().is_ok(),
        Err(_) => std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|at| at.elapsed().unwrap_or_default() > std::time::Duration::from_secs(600)),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    use std::io::Write;
    let mut file = std::fs::File::create_new(path).map_err(|e| BackupError::io(path, e))?;
    file.write_all(bytes)
        .map_err(|e| BackupError::io(path, e))?;
    file.sync_all().map_err(|e| BackupError::io(path, e))
}

/// A folder's entries are durable once it is synced.
pub(super) fn sync_dir(path: &Path) -> Result<(), BackupError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| BackupError::io(path, e))
}

pub(super) fn folder_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                folder_size(&path)
            } else {
                entry.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}
