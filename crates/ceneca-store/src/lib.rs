//! # ceneca-store
//!
//! The SQL store: one schema on SQLite (embedded default) and PostgreSQL, behind the
//! [`Store`] trait. Everything a service does to data is one of:
//! - [`Store::apply`]: a [`WriteBatch`] in one transaction, with counters and change-log
//!   entries (the one write path, DESIGN.md §3 rule 2);
//! - scoped reads ([`Store::get`], [`Store::list`]) whose tenant filter is part of the SQL
//!   (rule 1);
//! - a few named lookups that must run before a scope exists (sessions, log-in by e-mail,
//!   the caller's scope itself).
//!
//! SQL is generated from the entity model in [`sql`]; what differs per engine lives in
//! [`sqlite`] and [`postgres`] (connection setup, binding, error mapping, migrations). The
//! store knows nothing of HTTP or of who may do what: the service passes scope filters in.

pub mod blobs;
pub mod cache;
pub mod changes;
pub mod compression;
pub mod erasure;
pub mod error;
pub mod migrate;
mod ops;
pub mod outbox;
mod ownership;
pub mod packing;
pub mod postgres;
pub mod purge;
pub mod query;
mod reads;
pub mod retention;
pub mod search;
pub mod settings;
pub mod sql;
pub mod sqlite;
pub mod stats;
pub mod thumbnails;
pub mod usage;
pub mod write;

use std::sync::Arc;

use async_trait::async_trait;
use ceneca_domain::scope::{Scope, ScopeFilter};
use ceneca_domain::{Entity, Record};
use uuid::Uuid;

pub use blobs::{BlobKey, BlobStore, FsBlobs, PendingBlob};
pub use compression::{PackCandidate, PackQuery, PackedBody};
pub use erasure::ErasureWork;
pub use error::{Result, StoreError};
pub use migrate::MigrationStatus;
pub use outbox::{EmbeddingPoint, Lease, OutboxEntry};
pub use purge::{PurgeCandidate, PurgeFootprint, PurgeQuery, PurgeRule};
pub use query::{Deleted, ListQuery};
pub use reads::LoadedSession;
pub use retention::{ArchiveCandidate, ArchiveQuery, Footprint, RuleScope};
pub use search::{SearchHit, SearchQuery};
pub use settings::{SqliteSynchronous, StoreSettings};
pub use sqlite::cipher::{DatabaseKeys, EncryptionError};
pub use stats::PoolStats;
pub use thumbnails::MadeThumbnail;
pub use usage::{Usage, UsageDrift, UsageOf};
pub use write::{Actor, AuditChain, ChainWatcher, Replay, WriteBatch, WriteOp};

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn engine(&self) -> Engine;
    /// Whether the database's file is encrypted at rest (SQLCipher): its snapshot is
    /// too, and opens only with the key ring that wrote it and `store.encrypt_database`.
    fn database_encrypted(&self) -> bool {
        false
    }

    /// Applies a batch atomically; returns the affected rows of each operation, in order
    /// (one per row for inserts, the row for updates and deletes).
    async fn apply(&self, batch: WriteBatch) -> Result<Vec<Record>>;

    /// One row inside the filter.
    async fn get(
        &self,
        entity: &'static Entity,
        id: Uuid,
        filter: ScopeFilter,
        deleted: Deleted,
    ) -> Result<Option<Record>>;

    /// Up to `limit + 1` rows: the extra row tells the caller another page exists.
    async fn list(&self, entity: &'static Entity, query: ListQuery) -> Result<Vec<Record>>;

    /// The organizations and workspaces a user has roles in (DESIGN.md §3 rule 1).
    async fn load_scope(&self, user_id: Uuid, system_admin: bool) -> Result<Scope>;

    /// A session by the digest of its token, with its user and that user's scope, in one
    /// round trip: what authenticating a request needs. `scope.system_admin` is left
    /// false for the service to set from the user's role.
    async fn load_session(&self, token_hash: Vec<u8>) -> Result<Option<LoadedSession>>;

    /// The counter every change that can alter an authenticated caller moves in its own
    /// transaction (migration 19's triggers: sessions, users, memberships, workspaces,
    /// organizations, permission sets), whichever process or node makes it. What was read
    /// for a caller at one value still holds while the counter has it.
    async fn auth_generation(&self) -> Result<i64>;

    /// The first row whose `column` equals `value`, with no tenant filter. Only for look-ups
    /// that precede a scope (log-in by e-mail, a session by token digest) — never for
    /// serving tenant data.
    async fn lookup_unscoped(
        &self,
        entity: &'static Entity,
        column: &'static str,
        value: ceneca_domain::Value,
    ) -> Result<Option<Record>>;

    /// Records that `user_id` used the TOTP time step `step`, if it is later than the last
    /// one recorded; `false` when it is not (the code was already used). One atomic
    /// conditional update, so two requests racing with one code cannot both win.
    async fn claim_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool>;

    /// Replaces `user_id`'s stored recovery codes by `remaining` if they are still
    /// `expected`; `false` when another request changed them first (the code was just
    /// used). A recovery code is consumed once even by requests racing on several nodes.
    async fn consume_recovery_code(
        &self,
        user_id: Uuid,
        expected: Vec<String>,
        remaining: Vec<String>,
    ) -> Result<bool>;

    /// Records that a session was used; best effort, outside any batch.
    async fn touch_session(&self, session_id: Uuid, at: time::OffsetDateTime) -> Result<()>;

    /// Full-text search over messages and documents inside the query's workspaces, best
    /// first, with highlighted snippets.
    async fn search(&self, query: SearchQuery) -> Result<Vec<SearchHit>>;

    /// Rebuilds the full-text indexes from the tables (`ceneca reindex`).
    async fn reindex_text(&self) -> Result<()>;

    async fn migration_status(&self) -> Result<Vec<MigrationStatus>>;
    /// Applies pending migrations; returns the versions applied.
    async fn migrate_up(&self) -> Result<Vec<i64>>;
    /// Reverts the newest applied migration; returns its version.
    async fn migrate_down(&self) -> Result<Option<i64>>;

    /// The oldest pending vector-outbox entries (up to `limit`), each with the current
    /// state of its embedding row.
    async fn vector_outbox(&self, limit: u32) -> Result<Vec<OutboxEntry>>;
    /// Removes applied outbox entries (after the vector index made them durable).
    async fn vector_outbox_done(&self, seqs: Vec<i64>) -> Result<()>;
    /// How many outbox entries wait, per collection.
    async fn vector_outbox_pending(&self) -> Result<Vec<(String, u64)>>;
    /// Of `ids` in `collection`, those with an outbox entry still waiting: a write is in the
    /// index once none of its points is (how `wait=true` waits on any node, and how the
    /// drift check tells a change on its way from drift).
    async fn vector_outbox_holds(&self, collection: String, ids: Vec<Uuid>) -> Result<Vec<Uuid>>;
    /// The vector index the outbox was last applied to (`VectorIndex::identity`) and the
    /// mark of its last applied round, if any.
    async fn vector_index_owner(&self) -> Result<Option<(String, String)>>;
    /// Records that the outbox was applied to `index_id` up to the round marked `fed` (by
    /// the holder of the indexer's lease, once its index holds it).
    async fn set_vector_index_owner(&self, index_id: String, fed: String) -> Result<()>;
    /// Takes the vector indexer's lease, or `None` while another process or node holds it
    /// (several nodes on one PostgreSQL database, a command beside a server) or a rebuild
    /// waits for it. Released when dropped or when its holder dies.
    async fn vector_indexer_lease(&self) -> Result<Option<Box<dyn Lease>>>;
    /// Takes the indexer's lease for a rebuild: first the right to rebuild (`None` while
    /// another rebuild holds it), then, within `wait`, the indexer's lease itself, which
    /// its holder gives up at its next round once it sees a rebuild waiting
    /// ([`Lease::wanted`]). While a rebuild holds it, no indexer applies the outbox, so
    /// what is written during the rebuild stays there and is applied to the new content.
    async fn vector_rebuild_lease(
        &self,
        wait: std::time::Duration,
    ) -> Result<Option<Box<dyn Lease>>>;
    /// Takes the maintenance job's lease, or `None` while another process or node holds
    /// it: one maintenance run at a time per database. Released when dropped or when its
    /// holder dies.
    async fn maintenance_lease(&self) -> Result<Option<Box<dyn Lease>>>;
    /// The organizations with an archive policy of their own: `(id, days)`.
    async fn archive_policies(&self) -> Result<Vec<(Uuid, i64)>>;
    /// A page of the threads an archive rule covers (`crate::retention`).
    async fn archive_candidates(&self, query: ArchiveQuery) -> Result<Vec<ArchiveCandidate>>;
    /// What archiving `threads` would remove.
    async fn archive_footprint(&self, threads: Vec<Uuid>) -> Result<Footprint>;
    /// Leaves no trace of deleted rows where the engine keeps one after the delete: on
    /// SQLite, the words FTS5 keeps (marked deleted) in its segments until they merge,
    /// merged away, and the write-ahead log copied into the database and cut to nothing
    /// (its frames keep old page images; a checkpoint that cannot finish for readers is
    /// left to the checkpointer); on PostgreSQL, the dead row versions of the tables a
    /// purge or an erase touches, vacuumed. Slow on a large index (it rewrites it): after
    /// a purge or an erase, not per request.
    async fn scrub_deleted(&self) -> Result<()>;
    /// Writes a consistent snapshot of the database to the new file `path` (a backup's
    /// database), while writes go on: on SQLite the database file itself (`VACUUM INTO`
    /// in one read transaction, encrypted as the database is); on PostgreSQL a logical
    /// export of every table read in one `REPEATABLE READ` transaction
    /// (`postgres/snapshot.rs`; `pg_dump` and point-in-time recovery remain the
    /// database's own tools). Answers the audit chain's end as the snapshot holds it.
    async fn snapshot_into(
        &self,
        path: std::path::PathBuf,
    ) -> Result<ceneca_domain::audit::ChainHead>;
    /// Loads a snapshot [`Store::snapshot_into`] wrote on this engine into this database,
    /// which must hold no data yet; all or nothing. On SQLite a snapshot is the database
    /// file and is restored by putting it in place: refused there.
    async fn restore_snapshot(
        &self,
        path: std::path::PathBuf,
    ) -> Result<ceneca_domain::audit::ChainHead>;
    /// Refuses a database a restore must not touch, before it is migrated: on
    /// PostgreSQL one with another application's tables or with rows (an embedded
    /// restore goes into an empty folder: nothing to check).
    async fn check_restore_target(&self) -> Result<()> {
        Ok(())
    }
    /// What is left to erase of the account `user` before its last transaction, at most
    /// `limit` rows of each kind (`crate::erasure`).
    async fn erasure_work(&self, user: Uuid, limit: u32) -> Result<ErasureWork>;
    /// The accounts whose erase began and did not end (interrupted), oldest first.
    async fn pending_erasures(&self) -> Result<Vec<Uuid>>;
    /// The ids of the rows of `entity` the change log records `user` creating (it keeps
    /// every row's creation), oldest first: whose is content that names nobody.
    async fn created_by(&self, user: Uuid, entity: &'static Entity) -> Result<Vec<Uuid>>;
    /// A page of one entity's rows in the bin a purge covers (`crate::purge`).
    async fn purge_candidates(&self, query: PurgeQuery) -> Result<Vec<PurgeCandidate>>;
    /// What purging those of `ids` (rows of `entity`) would delete besides them.
    async fn purge_footprint(
        &self,
        entity: &'static Entity,
        ids: Vec<Uuid>,
    ) -> Result<PurgeFootprint>;
    /// A page of the message bodies a compression rule covers (`crate::compression`).
    async fn pack_candidates(&self, query: PackQuery) -> Result<Vec<PackCandidate>>;
    /// The stored text of those of `messages` still stored plain.
    async fn message_bodies(&self, messages: Vec<Uuid>) -> Result<Vec<(Uuid, String)>>;
    /// Up to `limit` attachments waiting for a thumbnail with their accounts, the oldest
    /// of each account, the accounts in turn after `after` (`crate::thumbnails`).
    async fn thumbnails_waiting(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<(Uuid, Record)>>;
    /// A thumbnail already made of the blob `storage_key` in `workspace`, to reuse.
    async fn thumbnail_of_blob(
        &self,
        storage_key: String,
        workspace: Uuid,
    ) -> Result<Option<MadeThumbnail>>;
    /// A page of a collection's embeddings in id order, after `after` (rebuilds).
    async fn embeddings_page(
        &self,
        collection: String,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<EmbeddingPoint>>;

    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<()>;

    /// The changes a reader may see after a cursor, in commit order, with their values
    /// (`GET /api/v1/sync/pull`, the stream).
    async fn feed(&self, query: changes::FeedQuery) -> Result<Vec<Record>>;
    /// How many changes the feed holds after its cursor (a local node's pending count).
    async fn count_feed(&self, query: changes::FeedQuery) -> Result<i64>;
    /// Every change of these rows, oldest first, without values
    /// ([`changes::HISTORY_COLUMNS`]): what their field clocks fold from. Unscoped: the
    /// caller has already found the rows readable.
    async fn change_history(&self, ids: Vec<Uuid>) -> Result<Vec<Record>>;
    /// The newest cursor (the last change's `seq`, 0 when there is none).
    async fn last_change(&self) -> Result<i64>;
    /// What the workspaces `of` names store, by category, from the counters writes keep
    /// (never a scan of the data).
    async fn storage_usage(&self, of: UsageOf) -> Result<Vec<Usage>>;
    /// Recounts what every workspace stores from the data and answers where the counters
    /// differ; with `fix`, replaces the counters, in the same transaction.
    async fn reconcile_storage(&self, fix: bool) -> Result<Vec<UsageDrift>>;
    /// The clock changes are stamped with: replication observes remote clocks on it.
    fn clock(&self) -> Arc<ceneca_domain::clock::HybridClock>;
    /// Changes when a batch that logged changes commits on this node (the stream wakes
    /// on it; other nodes' commits are found by polling).
    fn change_signal(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Connections in use and how long writes wait for one, for monitoring. Read from
    /// counters the store keeps anyway: no round trip.
    fn pool_stats(&self) -> PoolStats;
}

/// Settings for opening a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path` or a path for SQLite; `postgres://...` for PostgreSQL.
    pub url: String,
    /// SQLite's durability (`synchronous=NORMAL` or `FULL`).
    pub sqlite_synchronous: SqliteSynchronous,
    pub pg_max_connections: u32,
    pub pg_idle_timeout_secs: u64,
    /// Where a database server may be: anywhere, or (zero-sync) only inside the network,
    /// checked after DNS and pinned to the checked address.
    pub egress: ceneca_egress::Egress,
    /// The embedded database is encrypted with these keys (SQLCipher), or plaintext when
    /// `None`. A file in the other state is refused with a typed error saying what to do.
    pub database_keys: Option<DatabaseKeys>,
    /// How long one search may run on PostgreSQL before it is stopped and answered as too
    /// costly (see [`search::SEARCH_TIME_LIMIT`], the default).
    pub pg_search_time_limit: std::time::Duration,
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            sqlite_synchronous: SqliteSynchronous::Normal,
            pg_max_connections: 20,
            pg_idle_timeout_secs: 30,
            egress: ceneca_egress::Egress::unrestricted(),
            database_keys: None,
            pg_search_time_limit: search::SEARCH_TIME_LIMIT,
        }
    }
}

/// Opens the store the URL names. Does not migrate.
pub async fn open(options: &StoreOptions) -> Result<Arc<dyn Store>> {
    if options.url.starts_with("postgres://") || options.url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::connect(options).await?))
    } else {
        let path = options
            .url
            .strip_prefix("sqlite://")
            .unwrap_or(&options.url);
        Ok(Arc::new(sqlite::SqliteStore::open(path.as_ref(), options)?))
    }
}

/// The change-log scope columns of a row: which workspace, organization or user may read
/// its change entries. Derived from the entity's tenancy.
pub(crate) fn change_scope(entity: &Entity, record: &Record) -> [Option<Uuid>; 3] {
    use ceneca_domain::schema::{Owner, Tenancy};
    let (mut ws, mut org, mut user) = (None, None, None);
    match entity.tenancy {
        Tenancy::SelfUser => user = record.id(),
        Tenancy::SelfOrganization => org = record.id(),
        Tenancy::SelfWorkspace => ws = record.id(),
        Tenancy::Organization => org = record.id_of("organization_id"),
        Tenancy::Workspace { .. } => ws = record.id_of("workspace_id"),
        Tenancy::User => user = record.id_of("user_id"),
        Tenancy::Owners { owners, .. } => {
            for owner in owners {
                match owner {
                    Owner::User(c) => user = user.or(record.id_of(c)),
                    Owner::Organization(c) => org = org.or(record.id_of(c)),
                    Owner::Workspace(c) => ws = ws.or(record.id_of(c)),
                }
            }
        }
        Tenancy::Catalog | Tenancy::Admin | Tenancy::Internal => {}
    }
    // A membership is also its member's: their devices learn their own roles from it.
    if std::ptr::eq(entity, &ceneca_domain::model::WORKSPACE_MEMBERS)
        || std::ptr::eq(entity, &ceneca_domain::model::ORGANIZATION_MEMBERS)
    {
        user = record.id_of("user_id");
    }
    [ws, org, user]
}

/// The change-log row for one write.
pub(crate) fn change_record(
    entity: &Entity,
    row: &Record,
    operation: &str,
    changed: &[&'static str],
    actor: Actor,
    hlc: u64,
    now: time::OffsetDateTime,
) -> Record {
    use ceneca_domain::Value;
    let [ws, org, user] = change_scope(entity, row);
    let opt = |id: Option<Uuid>| id.map(Value::Id).unwrap_or(Value::Null);
    let mut r = Record::with_capacity(13);
    r.set("id", Value::Id(ceneca_domain::new_id()));
    r.set("created_at", Value::Time(now));
    r.set("updated_at", Value::Time(now));
    r.set("device_id", opt(actor.device_id));
    r.set("user_id", opt(actor.user_id));
    r.set("entity_type", Value::Text(entity.name.to_owned()));
    r.set("entity_id", opt(row.id()));
    r.set("operation", Value::Text(operation.to_owned()));
    r.set(
        "changed_fields",
        Value::Json(serde_json::Value::Array(
            changed
                .iter()
                .map(|c| serde_json::Value::from(*c))
                .collect(),
        )),
    );
    r.set("hlc", Value::Int(hlc as i64));
    r.set("scope_workspace_id", opt(ws));
    r.set("scope_organization_id", opt(org));
    r.set("scope_user_id", opt(user));
    r
}

/// A permission-set row as the rule the scope applies.
pub(crate) fn permission_rule(row: &Record) -> Option<ceneca_domain::scope::PermissionRule> {
    use ceneca_domain::Value;
    use ceneca_domain::scope::{PermissionRule, Subject};
    let text = |name: &str| row.get(name).and_then(Value::as_str).map(str::to_owned);
    let subject = match text("subject_type")?.as_str() {
        "user" => Subject::User(row.id_of("subject_user_id")?),
        _ => Subject::Role(text("subject_role")?),
    };
    let actions = match row.get("actions") {
        Some(Value::Json(serde_json::Value::Array(items))) => items
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Some(PermissionRule {
        organization_id: row.id_of("organization_id"),
        workspace_id: row.id_of("workspace_id"),
        subject,
        resource_type: text("resource_type")?,
        resource_id: row.id_of("resource_id"),
        actions,
        allow: text("effect")? == "allow",
    })
}
