//! Backups over the API: `GET /admin/backups` and `POST /admin/backups`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What started a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupTrigger {
    /// An administrator, over the API.
    Manual,
    /// The schedule (`backup.interval_hours`).
    Schedule,
}

/// Where a run of the server's backup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupOutcome {
    Running,
    Done,
    Failed,
}

/// One run of a backup by this server: running, or the last one that ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupRun {
    pub trigger: BackupTrigger,
    pub outcome: BackupOutcome,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The backup it wrote (its folder's name), once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Older backups it removed to keep `backup.keep`.
    pub removed: Vec<String>,
}

/// A complete backup in the backup folder, as its marker says (`ceneca backup verify`
/// opens every file; this does not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupItem {
    /// The folder's name (`ceneca-backup-<time>-<id>`).
    pub name: String,
    pub id: String,
    pub created_at: String,
    /// The key-ring key it was sealed with: the key ring must hold it to restore.
    pub key_id: String,
    /// Bytes on disk.
    pub bytes: u64,
}

/// `GET /admin/backups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupList {
    /// Hours between scheduled backups (0: none).
    pub interval_hours: u32,
    /// Complete backups kept; older ones are removed after each new one.
    pub keep: u32,
    /// When the next scheduled backup is due (absent: no schedule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_at: Option<String>,
    /// The run in progress, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<BackupRun>,
    /// The last run that ended since the server started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<BackupRun>,
    /// Complete backups, newest first.
    pub items: Vec<BackupItem>,
}
