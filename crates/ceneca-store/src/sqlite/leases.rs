//! The leases of an embedded database. Other processes may open the same file (`ceneca
//! maintenance run` or `ceneca reindex --vectors` beside a running server), so a lease is
//! an exclusive lock on a file beside the database, which the system lets go when its
//! holder dies.
//!
//! The vector indexer's lease has a second file, the rebuild's: a rebuild locks it
//! exclusively, then waits for the indexer's; an indexer that finds it locked (a shared
//! lock refused) lets go of its own lease at its next round, and takes none while it is.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::outbox::REBUILD_POLL;
use crate::{Result, StoreError};

/// A lease held as long as its files stay open (and locked).
struct FileLease {
    /// The files locked, the lease's own first.
    _files: Vec<File>,
    /// The rebuild's file, to see whether a rebuild waits (the indexer's lease only).
    wanted_by: Option<PathBuf>,
}

#[async_trait::async_trait]
impl crate::Lease for FileLease {
    async fn check(&mut self) -> Result<()> {
        Ok(())
    }

    async fn wanted(&mut self) -> Result<bool> {
        match self.wanted_by.clone() {
            None => Ok(false),
            Some(path) => blocking(move || rebuild_waits(&path)).await,
        }
    }
}

/// The file `<database><suffix>`.
pub(super) fn beside(database: &Path, suffix: &str) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Opens (creating, readable by the owner only, as everything in the data folder) a lock
/// file.
fn open(path: &Path) -> Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))
}

/// Locks `path` exclusively if nobody holds it.
fn try_exclusive(path: &Path) -> Result<Option<File>> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(StoreError::Backend(format!("{}: {e}", path.display()))),
    }
}

/// Whether a rebuild holds `path` (a shared lock is refused).
fn rebuild_waits(path: &Path) -> Result<bool> {
    let file = open(path)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(StoreError::Backend(format!("{}: {e}", path.display()))),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
}

/// One maintenance run at a time per database.
pub(super) async fn maintenance(database: PathBuf) -> Result<Option<Box<dyn crate::Lease>>> {
    let path = beside(&database, ".maintenance-lock");
    blocking(move || {
        Ok(try_exclusive(&path)?.map(|file| {
            Box::new(FileLease {
                _files: vec![file],
                wanted_by: None,
            }) as Box<dyn crate::Lease>
        }))
    })
    .await
}

/// The vector indexer's lease: `None` while another holds it or a rebuild waits for it.
pub(super) async fn indexer(database: PathBuf) -> Result<Option<Box<dyn crate::Lease>>> {
    let lease = beside(&database, ".vector-indexer-lock");
    let rebuild = beside(&database, ".vector-rebuild-lock");
    blocking(move || {
        let Some(file) = try_exclusive(&lease)? else {
            return Ok(None);
        };
        if rebuild_waits(&rebuild)? {
            return Ok(None);
        }
        Ok(Some(Box::new(FileLease {
            _files: vec![file],
            wanted_by: Some(rebuild),
        }) as Box<dyn crate::Lease>))
    })
    .await
}

/// The indexer's lease for a rebuild (`Store::vector_rebuild_lease`): `None` if another
/// rebuild holds the right to rebuild, or the indexer kept its lease past `wait`.
pub(super) async fn rebuild(
    database: PathBuf,
    wait: Duration,
) -> Result<Option<Box<dyn crate::Lease>>> {
    let lease = beside(&database, ".vector-indexer-lock");
    let rebuild = beside(&database, ".vector-rebuild-lock");
    // An indexer looking whether a rebuild waits holds the file for an instant (a shared
    // lock): asked again for a second before another rebuild is taken to hold it.
    let mut right = None;
    for _ in 0..10 {
        let path = rebuild.clone();
        right = blocking(move || try_exclusive(&path)).await?;
        if right.is_some() {
            break;
        }
        tokio::time::sleep(REBUILD_POLL).await;
    }
    let Some(right) = right else {
        return Ok(None);
    };
    let started = Instant::now();
    loop {
        let path = lease.clone();
        if let Some(file) = blocking(move || try_exclusive(&path)).await? {
            return Ok(Some(Box::new(FileLease {
                _files: vec![file, right],
                wanted_by: None,
            })));
        }
        if started.elapsed() >= wait {
            return Ok(None);
        }
        tokio::time::sleep(REBUILD_POLL).await;
    }
}
