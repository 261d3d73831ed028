//! Maintenance: the query of `POST /admin/maintenance` and its report.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ParamError;
use crate::params::refuse_repeats;

/// `POST /admin/maintenance?dry_run=true`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceParams {
    /// Report what a run would do, and change nothing.
    pub dry_run: bool,
}

impl MaintenanceParams {
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, ParamError> {
        refuse_repeats(pairs)?;
        let mut out = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "dry_run" => {
                    out.dry_run = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(ParamError::new("dry_run", "must be true or false")),
                    }
                }
                other => return Err(ParamError::new(other, "is not a parameter of this route")),
            }
        }
        Ok(out)
    }
}

/// What started a maintenance run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MaintenanceTrigger {
    /// An administrator, over the API or the command line.
    Manual,
    /// The schedule (`retention.maintenance_interval_hours`).
    Schedule,
    /// A quota past `retention.maintenance_at_percent`.
    Quota,
}

/// One archive rule a run applied: the server's, or an organization's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArchiveRuleReport {
    /// The organization whose policy this is; absent for the server's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<uuid::Uuid>,
    pub archive_after_days: u32,
    /// Threads archived (or, in a dry run, that would be).
    pub threads: u64,
}

/// What a maintenance run did, or in a dry run would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MaintenanceReport {
    pub dry_run: bool,
    pub trigger: Option<MaintenanceTrigger>,
    /// The archive rules applied (those of 0 days, never, are left out).
    pub rules: Vec<ArchiveRuleReport>,
    /// Threads archived: kept, with their messages, and restorable by unarchiving.
    pub threads_archived: u64,
    /// Messages in those threads (kept).
    pub messages_in_archived_threads: u64,
    /// Attachment files let go (each attachment keeps what describes its file).
    pub attachment_files_removed: u64,
    pub attachment_bytes_removed: u64,
    /// Embeddings deleted, from the database and (through the outbox) the vector index.
    pub embeddings_removed: u64,
    pub embedding_bytes_removed: u64,
    /// The purge rule applied (`retention.purge_after_days`; 0: none).
    pub purge_after_days: u32,
    /// Rows deleted for good from the bin, by table (or, in a dry run, that would be),
    /// with everything below them.
    pub purged: std::collections::BTreeMap<String, u64>,
    /// Messages deleted with the threads, workspaces and organizations purged.
    pub purged_messages_below: u64,
    /// Attachments deleted with the rows purged, and the bytes of their files.
    pub purged_attachments: u64,
    pub purged_attachment_bytes: u64,
    /// Embeddings deleted with the rows purged, from the database and the vector index.
    pub purged_embeddings: u64,
    /// Change-log entries dropped with the rows purged (their payloads copied the rows'
    /// values): each purged row leaves one `purge` change, with nothing but its id.
    pub purged_changes: u64,
    /// Erases of accounts that were begun and interrupted, finished by this run (0 in a
    /// dry run).
    pub erasures_finished: u64,
    /// The compression rule applied (`retention.compress_after_days`; 0: none).
    pub compress_after_days: u32,
    /// Message bodies stored compressed (or, in a dry run, that would be): their text is
    /// unchanged, read and searched as before.
    pub messages_compressed: u64,
    /// What those bodies stored before, and after.
    pub compressed_bytes_before: u64,
    pub compressed_bytes_after: u64,
    /// Files deleted from the blob folder once no row named them (0 in a dry run): a file
    /// another attachment still names stays.
    pub blob_files_deleted: u64,
    /// Time spent in database writes (reads to choose the threads excluded), and in
    /// deleting files, in microseconds.
    pub database_us: u64,
    pub files_us: u64,
}
