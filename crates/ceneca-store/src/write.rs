//! The one write path (DESIGN.md §3 rule 2): a [`WriteBatch`] of operations applied in one
//! transaction, each of which also appends its change-log entry.

use std::sync::Arc;

use ceneca_domain::audit::{ChainHead, ChainKey};
use ceneca_domain::{Entity, Record};
use uuid::Uuid;

use ceneca_domain::scope::ScopeFilter;

/// Who is writing, recorded on every change-log entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<Uuid>,
    pub device_id: Option<Uuid>,
    /// Set when the batch applies a change made on another node: the change-log entry of
    /// that row keeps the change's id and clock instead of new ones, so every replica
    /// logs the change under the same identity (a retry is recognised, the field clocks
    /// agree).
    pub replay: Option<Replay>,
}

/// The identity of a replicated change, kept by the replica that applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    /// The row the change is about.
    pub row: Uuid,
    pub change_id: Uuid,
    pub hlc: u64,
}

/// One write. Row-level operations carry the scope filter the caller needs for them, so a
/// row outside the caller's scope is simply not matched (and the batch fails with
/// `NotFound`).
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Inserts a complete row (every column, see `ceneca_domain::validate::fill_defaults`).
    Insert {
        entity: &'static Entity,
        record: Record,
    },
    /// Inserts many complete rows of one entity.
    InsertMany {
        entity: &'static Entity,
        records: Vec<Record>,
    },
    /// Inserts rows, or where a row with the same `key` exists in the same workspace,
    /// sets its `update` columns instead (`INSERT ... ON CONFLICT DO UPDATE`). Returns the
    /// stored rows: an updated row keeps its original id.
    Upsert {
        entity: &'static Entity,
        records: Vec<Record>,
        key: &'static [&'static str],
        update: &'static [&'static str],
    },
    /// Sets columns of a live row; bumps `updated_at` and the entity's version field.
    Update {
        entity: &'static Entity,
        id: Uuid,
        filter: ScopeFilter,
        set: Record,
    },
    /// Marks a row and its cascade deleted with one timestamp.
    SoftDelete {
        entity: &'static Entity,
        id: Uuid,
        filter: ScopeFilter,
    },
    /// Undoes a soft delete, with the rows its cascade deleted at the same moment.
    Restore {
        entity: &'static Entity,
        id: Uuid,
        filter: ScopeFilter,
    },
    /// Deletes a row; foreign keys cascade or refuse as the schema says.
    Delete {
        entity: &'static Entity,
        id: Uuid,
        filter: ScopeFilter,
    },
    /// Appends an audit entry: the store numbers it and links it to the chain
    /// (`sequence`, `prev_hash`, `mac_key_id`, `hash`) under a lock, so entries form one
    /// chain however many writers there are.
    Audit { record: Record, chain: AuditChain },
    /// Fails the batch with `StoreError::Stale` unless the change log of `row` still ends
    /// at `last_seq` (0: no change yet): a replayed change merged against the history it
    /// read is written only if no other write came in between. Checked once the batch's
    /// writes are done, under the lock that orders change-log appends, so it holds until
    /// the batch commits.
    ExpectHistory { row: Uuid, last_seq: i64 },
    /// A change to who owns `organization`: membership `member` given another role or
    /// removed (`None`: a new membership), by the user `actor`. `grants_owner`: the
    /// membership is an owner's afterwards, for the user `grantee`, whose account must be
    /// open and active (their row is locked first, as an account closing locks it).
    ///
    /// Checked before any write of the batch, with the organization's row locked until
    /// the commit, so changes to one organization's owners are decided one at a time, on
    /// the memberships as committed (never on a row read before the transaction):
    /// - giving or taking the owner role is for owners: `actor` must hold an owner's
    ///   membership now, or `StoreError::Refused`;
    /// - an owner's membership lowered or removed must leave another owner whose account
    ///   is open, or `StoreError::MustKeep`.
    OwnershipChange {
        organization: Uuid,
        member: Option<Uuid>,
        actor: Option<Uuid>,
        grants_owner: bool,
        grantee: Option<Uuid>,
    },
    /// The account `user` closes: each organization it owns, but for those in the bin,
    /// must keep another owner whose account is open and active, or
    /// `StoreError::MustKeep`. Decided before any write of the batch, on the memberships
    /// as committed: the user's row is locked, then the organizations in id order.
    AccountCloses { user: Uuid },
    /// Fails the batch with `StoreError::QuotaExceeded` when it adds bytes and what `of`
    /// stores then passes `quota` bytes. The holder's row (the organization or the user)
    /// is locked before any write of the batch, so two batches near the limit are decided
    /// one after the other and cannot both pass it.
    WithinQuota {
        of: crate::usage::UsageOf,
        quota: i64,
    },
    /// Archives those of `threads` still idle since before `idle_before` and neither
    /// pinned, archived nor in the bin when the batch runs: marks them, lets go of their
    /// attachments' files (the rows stay, with `content_removed_at`) and deletes their
    /// messages' and attachments' embeddings (see [`crate::retention`]). Every row it
    /// changes is logged and counted; `audit` is appended with an account of what was
    /// done. Returns the audit entry, then each attachment whose file it let go, as it
    /// was (with the storage key of the blob that may now be unnamed).
    Archive {
        threads: Vec<Uuid>,
        idle_before: time::OffsetDateTime,
        audit: Record,
        chain: AuditChain,
    },
    /// Deletes for good those of `ids` (rows of `entity`, one of
    /// [`crate::purge::PURGED`]) that `rule` covers when the batch runs (in the bin long
    /// enough; purged upstream; written by an account being erased), with everything below them, their history in the change log and their sync
    /// conflicts (see [`crate::purge`]); logs one `purge` change per row (a revocation per
    /// user who may hold a purged workspace or organization) and counts off what was still
    /// counted. `audit` is appended with an account of what was done. Returns the audit
    /// entry, then each attachment that went, as it was (its blobs may now be unnamed).
    Purge {
        entity: &'static Entity,
        ids: Vec<Uuid>,
        rule: crate::purge::PurgeRule,
        audit: Record,
        chain: AuditChain,
    },
    /// The last transaction of an erase of the account `user` (see [`crate::erasure`]):
    /// hands over what it created, deletes what goes with it and its history (each such
    /// row logged as deleted for other devices), erases the personal fields of the audit
    /// entries by it or about it, deletes its row, and appends `audit` (its `details`, the
    /// rounds before, are kept under `rounds`) with an account of what was done.
    /// `StoreError::NotFound` when the account is not being erased; `MustKeep` while it
    /// holds a place others are in. Returns the audit entry.
    EraseAccount {
        user: Uuid,
        audit: Record,
        chain: AuditChain,
    },
    /// Stores message bodies packed (see [`crate::compression`]), each only if its message
    /// still stores that text plain: not a change to the messages (no change-log entry, no
    /// new `updated_at`), but to what they store, so the counters follow. `audit` is
    /// appended with the round's counts, taken as of `written_before`. Returns the audit
    /// entry.
    Pack {
        bodies: Vec<crate::compression::PackedBody>,
        written_before: time::OffsetDateTime,
        audit: Record,
        chain: AuditChain,
    },
    /// Records where attachment `attachment`'s thumbnail stands (`state`, and the blob
    /// when made), only while the attachment still keeps the file `source_key` and waits
    /// for its thumbnail: a file replaced or removed meanwhile is left alone (the
    /// thumbnail's blob, unnamed, goes to the orphan sweep). Node-local and derived, so
    /// not logged for sync and no new `updated_at`; counted against the quota (a
    /// `WithinQuota` in the batch refuses it). Returns the row when it was written.
    SetThumbnail {
        attachment: Uuid,
        source_key: String,
        state: &'static str,
        made: Option<crate::thumbnails::MadeThumbnail>,
    },
    /// Removes every row inside the filter, its foreign-key cascade with it, without
    /// logging: a replica dropping what its user may no longer read (the upstream's log
    /// holds the truth; this copy was never anyone's to change).
    Forget {
        entity: &'static Entity,
        filter: ScopeFilter,
    },
    /// Sets columns on every row inside the filter (ending all of a user's sessions). Not
    /// change-logged: meant for internal tables.
    UpdateAll {
        entity: &'static Entity,
        filter: ScopeFilter,
        set: Record,
    },
}

/// What the store needs to append to the audit chain: the MAC key for new entries, and
/// who keeps the chain's end anchored outside the database.
#[derive(Clone)]
pub struct AuditChain {
    pub key: Arc<ChainKey>,
    pub watcher: Option<Arc<dyn ChainWatcher>>,
}

impl std::fmt::Debug for AuditChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditChain")
            .field("key", &self.key)
            .field("watched", &self.watcher.is_some())
            .finish()
    }
}

/// Hears of the chain's end as the store sees it (the service's head file). Both calls
/// are on the write path: they must be cheap and must not block on I/O.
pub trait ChainWatcher: Send + Sync {
    /// Under the chain lock, before an entry is linked: `prev` is the chain's end in the
    /// database. Every entry committed before the lock was taken is at or before it, so
    /// an end *before* a head known to be committed means entries were deleted.
    fn linking(&self, prev: &ChainHead);
    /// After the transaction that appended the entry ending at `head` committed.
    fn committed(&self, head: &ChainHead);
}

/// Operations applied atomically: all of them, their counters and their change-log
/// entries commit together, or nothing does.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub actor: Actor,
    pub ops: Vec<WriteOp>,
    /// Rows the batch creates for changes made on other nodes, each under its change's
    /// identity (a pushed group of creates written in one transaction); `actor.replay`
    /// names the one row of a single replayed change.
    pub replays: Vec<Replay>,
}

impl WriteBatch {
    pub fn new(actor: Actor) -> Self {
        Self {
            actor,
            ops: Vec::new(),
            replays: Vec::new(),
        }
    }
    pub fn push(mut self, op: WriteOp) -> Self {
        self.ops.push(op);
        self
    }
}

/// The change-log operation names.
pub mod operation {
    pub const CREATE: &str = "create";
    pub const UPDATE: &str = "update";
    pub const DELETE: &str = "delete";
    pub const RESTORE: &str = "restore";
    /// The user lost access to a workspace or an organization: a device drops its copy.
    pub const REVOKE: &str = "revoke";
    /// The row was deleted for good (it was in the bin past the purge rule): a device
    /// deletes its copy and everything below it. Its earlier changes are gone from the log.
    pub const PURGE: &str = "purge";
}
