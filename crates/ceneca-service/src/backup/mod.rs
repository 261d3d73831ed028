//! Backups: `ceneca backup create|verify|restore`.
//!
//! A backup is a folder `ceneca-backup-<UTC time>-<id>` holding:
//! - `database.sealed`: a consistent snapshot of the embedded database, taken while writes
//!   go on (`VACUUM INTO` in one read transaction: every committed write or none of it),
//!   in the data folder, sealed, then deleted — never in the clear where backups go;
//! - `blobs/<n>.sealed`: every attachment file of the blob folder, as stored;
//! - `manifest.sealed`: the backup's id, time, engine and key id, and the size and SHA-256
//!   of every file's content, and the audit chain's head at the snapshot;
//! - `BACKUP`: a plain marker with the id and key id, written last.
//!
//! Every `.sealed` file is encrypted in chunks under a key derived from the key ring with
//! a salt of its own (`ceneca_crypto::sealed_file`: AES-256-GCM STREAM, each chunk
//! authenticated, the end of the file too), bound to its place in this backup (the
//! backup's id and the file's name), so a file cannot be cut, altered, reordered or moved
//! to another place or backup without opening it failing. The key itself is never in the
//! backup: the key ring that wrote it is needed to verify or restore it. The vector
//! index is not copied: a restore rebuilds it from the database.
//!
//! A backup is written in `<name>.partial` and renamed once every file is on disk (and
//! synced): a backup cut short (kill -9) is a `.partial` folder, which verify and restore
//! refuse and the next backup removes; never one that looks complete.

mod create;
mod restore;
mod sealing;

pub use create::BackupSummary;
pub use restore::{restore_backup, verify_backup};

use serde::{Deserialize, Serialize};

/// What a backup holds, as its sealed manifest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    pub format: u32,
    pub id: String,
    pub created_at: String,
    pub engine: String,
    /// The key-ring key the files were sealed under.
    pub key_id: String,
    pub database: BackupFile,
    pub blobs: Vec<BackupBlob>,
    /// The audit chain's end in the snapshot (`<sequence>:<mac>`), for
    /// `ceneca audit verify --expect-head` after a restore.
    pub audit_head: String,
}

/// One sealed file of a backup: where it is, and its content's size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

/// A blob of the blob folder: its name there, and its sealed copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupBlob {
    pub key: String,
    #[serde(flatten)]
    pub copy: BackupFile,
}

/// The manifest format this binary writes and reads.
const FORMAT: u32 = 1;
/// The plain marker written last.
const MARKER: &str = "BACKUP";
const MANIFEST: &str = "manifest.sealed";
const DATABASE: &str = "database.sealed";
/// The suffix of a backup being written.
const PARTIAL: &str = ".partial";

/// Why a backup cannot be verified or restored, said so an operator knows what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Refused(String),
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl BackupError {
    fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        BackupError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// What a file is bound to: its backup and its name there.
fn identity(id: &str, file: &str) -> Vec<u8> {
    format!("ceneca-backup/{id}/{file}").into_bytes()
}
