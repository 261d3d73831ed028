//! `DELETE /users/{id}?erase=true`: an account erased for good (right to be forgotten).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Who asks proves it again: the account's own password (and a one-time code when it has
/// MFA), or, for an administrator erasing another account, the administrator's one-time
/// code (MFA must be on).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// The account's password, when the account erases itself.
    #[schema(max_length = 1024)]
    pub password: Option<String>,
    /// A current one-time code of the caller's MFA.
    pub mfa_code: Option<String>,
    /// Or one of the caller's MFA recovery codes.
    pub recovery_code: Option<String>,
}

/// What an erase removed. Everything is gone from the database (and its write-ahead log,
/// on SQLite), the files no other row names are deleted, and the vector index drops the
/// points as its indexer catches up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErasureReport {
    pub user_id: Uuid,
    /// Organizations and personal workspaces that were the account's alone, purged with
    /// everything in them.
    pub organizations_purged: u64,
    pub workspaces_purged: u64,
    /// In shared workspaces that delete what an erased member wrote: threads it started
    /// where nobody else wrote, and its messages elsewhere.
    pub threads_purged: u64,
    pub messages_purged: u64,
    /// Documents it wrote there (as the change log recorded who created them).
    #[serde(default)]
    pub documents_purged: u64,
    /// Export jobs of the account (or asked by it) kept on this server, deleted with
    /// their archives.
    #[serde(default)]
    pub export_jobs_deleted: u64,
    /// Messages below what was purged (a thread's, a workspace's).
    pub messages_below: u64,
    pub attachments: u64,
    pub attachment_bytes: u64,
    pub embeddings: u64,
    /// Files deleted from the blob folder (no row names them any more).
    pub files_deleted: u64,
    /// Rows that went with the account, by table (its row, memberships, devices,
    /// sessions, settings, AI records…).
    pub removed: BTreeMap<String, u64>,
    /// Rows that stay without the account as their author, creator or inviter, by table
    /// (what it wrote where the organization keeps it; threads others wrote in; whom it
    /// invited).
    pub unlinked: BTreeMap<String, u64>,
    /// Organizations and workspaces it created that passed to another owner (or, for a
    /// workspace of an organization, to the organization).
    pub handed_over: u64,
    /// Change-log entries dropped (they copied what went).
    pub changes_dropped: u64,
    /// Audit entries by the account or about it whose personal fields (address, details)
    /// were erased; they keep the account's id as a pseudonym.
    pub audit_entries_erased: u64,
    /// Audit entries sealed before the chain could erase fields (before migration 16),
    /// which keep theirs.
    pub audit_entries_kept: u64,
    /// Whether this call finished an erase an earlier one began (interrupted).
    pub resumed: bool,
}
