//! Storage statistics and quotas: what a workspace, a user's own workspaces or an
//! organization's store, read from the counters every write keeps
//! (`ceneca_store::usage`), and the quota each write that adds bytes is checked against
//! before it is stored.
//!
//! Whose quota: a workspace of an organization counts against the organization's (its
//! plan's `storage_quota_bytes`, else `storage.organization_quota_bytes`); any other
//! workspace against its owner's (`storage.user_quota_bytes`).

mod quota;
mod stats;

pub(crate) use quota::{QuotaCache, Room};
