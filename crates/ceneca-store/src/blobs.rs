//! Attachment content: files named by the SHA-256 of their bytes (`blobs/ab/cd/<sha256>`),
//! so the same file uploaded twice is stored once. A file is written to a temporary name,
//! flushed to disk, then renamed into place: a crash or a cut-off upload leaves a
//! temporary file (removed when its writer is dropped, or by the next start's sweep),
//! never a partial blob under a real name.
//!
//! Which rows reference a blob is the database's business (`attachments.storage_key`):
//! a blob no row references is removed by the orphan sweep once it is older than the
//! grace period an upload needs between keeping its blob and committing its row.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

/// Where attachment content lives. The filesystem implementation serves one node, or
/// several nodes sharing a volume on PostgreSQL.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// A new temporary file to stream content into.
    async fn begin(&self) -> std::io::Result<PendingBlob>;
    /// Makes a finished temporary file the blob `sha256` names (its lower-case hex
    /// digest), durably; answers the blob's key. When the blob is already stored, the
    /// temporary file is dropped and the blob's time renewed (so a sweep running now
    /// does not take it).
    async fn keep(&self, pending: PendingBlob, sha256: &str) -> std::io::Result<BlobKey>;
    /// Opens a blob for reading; `None` when it is not stored here.
    async fn open(&self, key: &BlobKey) -> std::io::Result<Option<tokio::fs::File>>;
    /// Removes a blob (no error when it is already gone).
    async fn remove(&self, key: &BlobKey) -> std::io::Result<()>;
    /// Every stored blob with its last write time, and the temporary files left behind.
    async fn inventory(&self) -> std::io::Result<Inventory>;
    /// Removes a temporary file left behind (by a crash).
    async fn remove_temporary(&self, path: &Path) -> std::io::Result<()>;
}

/// A blob's name: `ab/cd/<64 hex digits>`. Only this module makes one from text, and
/// only from text of exactly that form, so a key read back from the database can never
/// name a path outside the blob folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// The key of the blob with this digest (64 lower-case hex digits).
    pub fn for_digest(sha256: &str) -> Option<Self> {
        let hex_ok = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        hex_ok.then(|| Self(format!("{}/{}/{sha256}", &sha256[..2], &sha256[2..4])))
    }

    /// A key as stored (`ab/cd/<sha256>`), checked.
    pub fn parse(text: &str) -> Option<Self> {
        let sha = text.rsplit('/').next()?;
        Self::for_digest(sha).filter(|key| key.0 == text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digest the key names: the content's SHA-256, or for a sealed file the keyed
    /// name the key ring gives that SHA-256.
    pub fn digest(&self) -> &str {
        &self.0[6..]
    }
}

/// What a blob folder holds.
#[derive(Debug, Default)]
pub struct Inventory {
    pub blobs: Vec<(BlobKey, SystemTime)>,
    pub temporary: Vec<(PathBuf, SystemTime)>,
}

/// Content being written; its file is removed when this is dropped before
/// [`BlobStore::keep`] took it.
pub struct PendingBlob {
    file: Option<tokio::fs::File>,
    path: PathBuf,
    kept: bool,
    /// The temporary files this process is writing, which this one leaves when dropped.
    live: Arc<Mutex<HashSet<PathBuf>>>,
}

impl PendingBlob {
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.write_all(bytes).await,
            None => Err(std::io::Error::other("the blob was finished")),
        }
    }
}

impl Drop for PendingBlob {
    fn drop(&mut self) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.path);
        if !self.kept {
            drop(self.file.take());
            // Best effort: what stays behind is swept at the next start.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Blobs in a folder of the local filesystem.
pub struct FsBlobs {
    root: PathBuf,
    /// Temporary files of uploads in progress here: never in the inventory, so a sweep
    /// cannot take a file from under its writer (other nodes sharing the volume are kept
    /// off by the grace period: a file being written is never older than its last write).
    live: Arc<Mutex<HashSet<PathBuf>>>,
}

/// Temporary files live beside the blobs (same filesystem, so a rename is atomic).
const TEMPORARY: &str = "tmp";

impl FsBlobs {
    /// The blob folder `root`, created (0700 on Unix) if missing.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join(TEMPORARY))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for folder in [root.clone(), root.join(TEMPORARY)] {
                std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        Ok(Self {
            root,
            live: Arc::default(),
        })
    }

    fn path_of(&self, key: &BlobKey) -> PathBuf {
        self.root.join(key.as_str())
    }
}

#[async_trait]
impl BlobStore for FsBlobs {
    async fn begin(&self) -> std::io::Result<PendingBlob> {
        let path = self
            .root
            .join(TEMPORARY)
            .join(format!("{}.part", uuid::Uuid::now_v7()));
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let file = options.open(&path).await?;
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.clone());
        Ok(PendingBlob {
            file: Some(file),
            path,
            kept: false,
            live: self.live.clone(),
        })
    }

    async fn keep(&self, mut pending: PendingBlob, sha256: &str) -> std::io::Result<BlobKey> {
        let key = BlobKey::for_digest(sha256).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a SHA-256")
        })?;
        let mut file = pending
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("the blob was finished"))?;
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let target = self.path_of(&key);
        if tokio::fs::try_exists(&target).await? {
            // Already stored: the same bytes, by their name. Renew its time for the sweep.
            let renewed = std::fs::File::options()
                .write(true)
                .open(&target)
                .and_then(|f| f.set_modified(SystemTime::now()));
            if let Err(e) = renewed {
                tracing::warn!(error = %e, "could not renew a stored blob's time");
            }
            return Ok(key); // `pending` drops and removes its file
        }
        place(&pending.path, &target).await?;
        pending.kept = true;
        Ok(key)
    }

    async fn open(&self, key: &BlobKey) -> std::io::Result<Option<tokio::fs::File>> {
        match tokio::fs::File::open(self.path_of(key)).await {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn remove(&self, key: &BlobKey) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    async fn inventory(&self) -> std::io::Result<Inventory> {
        let root = self.root.clone();
        let mut inventory = tokio::task::spawn_blocking(move || walk(&root))
            .await
            .map_err(std::io::Error::other)??;
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        inventory.temporary.retain(|(path, _)| !live.contains(path));
        Ok(inventory)
    }

    async fn remove_temporary(&self, path: &Path) -> std::io::Result<()> {
        // Only a file of the temporary folder, by its name there.
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no name"))?;
        match tokio::fs::remove_file(self.root.join(TEMPORARY).join(name)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Moves the synced file `from` to `target` in the blob folder (same filesystem), its
/// folder made private if new; durable once it returns.
async fn place(from: &Path, target: &Path) -> std::io::Result<()> {
    let folder = target.parent().expect("a blob path has a folder");
    // Private whatever the process's umask: the files are users' content.
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(folder).await?;
    tokio::fs::rename(from, target).await?;
    // The rename is durable once its folder is.
    let folder = folder.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(folder)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

impl FsBlobs {
    /// Moves the complete file at `file` (on the blob folder's filesystem) into the folder
    /// as the blob named `digest`: how a restore puts back a file it opened, without
    /// writing it twice. A blob already there is kept and `file` removed.
    pub async fn adopt(&self, file: &Path, digest: &str) -> std::io::Result<BlobKey> {
        let key = BlobKey::for_digest(digest).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a SHA-256")
        })?;
        let target = self.path_of(&key);
        if tokio::fs::try_exists(&target).await? {
            tokio::fs::remove_file(file).await?;
            return Ok(key);
        }
        let synced = file.to_owned();
        tokio::task::spawn_blocking(move || std::fs::File::open(synced)?.sync_all())
            .await
            .map_err(std::io::Error::other)??;
        place(file, &target).await?;
        Ok(key)
    }
}

/// The blob folder's two levels of fan-out, and its temporary folder.
fn walk(root: &Path) -> std::io::Result<Inventory> {
    let mut out = Inventory::default();
    let modified = |entry: &std::fs::DirEntry| {
        entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    };
    for entry in std::fs::read_dir(root.join(TEMPORARY))? {
        let entry = entry?;
        out.temporary.push((entry.path(), modified(&entry)));
    }
    for first in std::fs::read_dir(root)? {
        let first = first?;
        if first.file_name() == TEMPORARY || !first.file_type()?.is_dir() {
            continue;
        }
        for second in std::fs::read_dir(first.path())? {
            let second = second?;
            if !second.file_type()?.is_dir() {
                continue;
            }
            for blob in std::fs::read_dir(second.path())? {
                let blob = blob?;
                let name = blob.file_name();
                if let Some(key) = name.to_str().and_then(BlobKey::for_digest)
                    && first.path().join(second.file_name()).join(&name) == root.join(key.as_str())
                {
                    out.blobs.push((key, modified(&blob)));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const SHA: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn keys_name_only_blob_paths() {
        let key = BlobKey::for_digest(SHA).unwrap();
        assert_eq!(key.as_str(), format!("2c/f2/{SHA}"));
        assert_eq!(key.digest(), SHA);
        assert_eq!(BlobKey::parse(key.as_str()), Some(key));
        for bad in [
            "",
            "../../etc/passwd",
            &format!("2c/f2/../{SHA}"),
            &format!("aa/bb/{SHA}"),
            &format!("2c/f2/{}", SHA.to_uppercase()),
            &SHA[..63],
            &format!("/2c/f2/{SHA}"),
        ] {
            assert_eq!(BlobKey::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn a_kept_blob_is_stored_once_and_a_dropped_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobs::open(dir.path()).unwrap();
        let mut first = blobs.begin().await.unwrap();
        first.write(b"hello").await.unwrap();
        let key = blobs.keep(first, SHA).await.unwrap();
        let mut second = blobs.begin().await.unwrap();
        second.write(b"hello").await.unwrap();
        assert_eq!(blobs.keep(second, SHA).await.unwrap(), key);
        let mut abandoned = blobs.begin().await.unwrap();
        abandoned.write(b"half of a fi").await.unwrap();
        drop(abandoned);

        let inventory = blobs.inventory().await.unwrap();
        assert_eq!(inventory.blobs.len(), 1);
        assert!(inventory.temporary.is_empty(), "{:?}", inventory.temporary);
        let mut text = String::new();
        let mut file = blobs.open(&key).await.unwrap().unwrap();
        file.read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "hello");

        blobs.remove(&key).await.unwrap();
        blobs.remove(&key).await.unwrap();
        assert!(blobs.open(&key).await.unwrap().is_none());
    }

    /// Found while adding sealed files: a sweep with no grace period (as tests run it)
    /// took the temporary file of an upload still being written, and the upload failed
    /// when it kept it.
    #[tokio::test]
    async fn regression_a_sweep_never_takes_the_file_an_upload_is_writing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobs::open(dir.path()).unwrap();
        let mut writing = blobs.begin().await.unwrap();
        writing.write(b"hello").await.unwrap();
        assert!(blobs.inventory().await.unwrap().temporary.is_empty());
        assert!(blobs.keep(writing, SHA).await.is_ok());
        // A file left behind by another process (a crash) is listed.
        std::fs::write(dir.path().join(TEMPORARY).join("crashed.part"), b"x").unwrap();
        assert_eq!(blobs.inventory().await.unwrap().temporary.len(), 1);
    }
}
