//! # ceneca-service
//!
//! The use cases: every read and write a client can ask for, with authorization (RBAC and
//! tenant scope), validation, the edition policy and encryption applied on the way. This
//! is the only caller of the store and the key ring, and knows nothing of HTTP: the server
//! turns requests into calls on [`Services`] and [`ServiceError`]s into statuses.
//!
//! ## Where each method of [`Services`] lives
//!
//! [`Services`] is one type whose methods are spread over the files of their use case:
//!
//! | File | Public methods |
//! |---|---|
//! | `lib.rs` | `new`, `with_blobs`, `store`, `config`, `ready` |
//! | `attachments/upload.rs` | `put_attachment_content` |
//! | `attachments/download.rs` | `attachment_content` |
//! | `export/mod.rs` | `authorize_export`, `begin_export`, `export_user`, `export_user_by_email` |
//! | `export/jobs.rs` | `with_export_jobs`, `wants_export_job`, `start_export_job`, `export_job_as`, `export_job_content_as`, `write_export_job`, `delete_export_job_as`, `run_export_expiry` |
//! | `attachments/sweep.rs` | `sweep_blobs`, `run_blob_sweep` |
//! | `auth/accounts.rs` | `register`, `create_user`, `me`, `change_password` |
//! | `auth/login.rs` | `login` |
//! | `auth/sessions.rs` | `authenticate`, `authenticate_certificate`, `recheck`, `logout` |
//! | `api_tokens.rs` | `create_api_token`, `list_api_tokens`, `revoke_api_token` |
//! | `mfa.rs` | `mfa_enroll`, `mfa_confirm`, `mfa_disable` |
//! | `resources/create.rs` | `create`, `create_many` |
//! | `resources/read.rs` | `get`, `list` |
//! | `resources/update.rs` | `update` |
//! | `resources/delete.rs` | `delete`, `restore` |
//! | `search/text.rs` | `search` |
//! | `search/hybrid.rs` | `hybrid_search` |
//! | `vectors/mod.rs` | `with_vectors` |
//! | `vectors/points.rs` | `upsert_vectors`, `search_vectors`, `delete_vector`, `clear_vectors`, `vector_collection` |
//! | `vectors/indexer.rs` | `run_vector_indexer`, `index_round`, `reindex_vectors` (and the [`vectors::VectorIndexer`] worker) |
//! | `vectors/check.rs` | `check_vectors` |
//! | `audit.rs` | `with_audit_head`, `audit_head_file`, `flush_audit_head`, `verify_audit_chain`, `verify_audit_chain_expecting`, `verify_audit_chain_with`, `export_audit` |
//! | `consent.rs` | `has_consent`, `export_telemetry` |
//! | `secrets.rs` | `reveal_secret`, `rewrap_secrets` |
//! | `sync/pull.rs` | `pull`, `pull_from_now`, `change_signal` |
//! | `sync/push.rs` | `push` |
//! | `sync/conflicts.rs` | `list_conflicts` |
//! | `sync/node.rs` | `node_status`, `sync_status` |
//! | `sync/replica.rs` | `adopt_account`, `apply_upstream`, `pending_changes`, `count_pending` |
//! | `storage/stats.rs` | `storage_stats` |
//! | `backup/create.rs` | `create_backup`, `verify_backup`, `restore_backup` |
//! | `backup/schedule.rs` | `with_backups`, `backup_now`, `list_backups_as`, `start_backup_as` (and the [`backup::BackupWorker`]) |
//!
//! Internal helpers: `resources/authorize.rs` (parents, roles over owners, references,
//! 403 or 404), `rules/` (what is particular to each entity, looked up with
//! `rules::rules_for`), `content.rs` (content sealed at rest), `page.rs` (list parameters
//! and cursors), `gate.rs` (one secret check at a time per account).
//!
//! Modules depend one way: `resources` → `rules` → `secrets`; nothing below calls up.

pub mod api_tokens;
pub mod attachments;
pub mod audit;
pub mod audit_head;
pub mod auth;
pub mod backup;
pub mod caller;
pub mod consent;
mod content;
mod dlp;
pub mod erasure;
pub mod error;
pub mod export;
mod gate;
pub mod maintenance;
pub mod metrics;
pub mod mfa;
pub mod page;
pub mod resources;
mod rules;
mod screening;
pub mod search;
pub mod secrets;
pub mod settings;
mod storage;
pub mod sync;
pub mod vectors;

#[cfg(test)]
mod testing;

use std::sync::Arc;
use std::time::Duration;

use ceneca_crypto::KeyRing;
use ceneca_domain::Edition;
use ceneca_store::Store;

pub use caller::Caller;
pub use error::{Result, ServiceError};
pub use page::{ListParams, Page};

/// Settings the use cases follow.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub edition: Edition,
    /// How long a log-in session lasts at most (absolute lifetime).
    pub session_lifetime: Duration,
    /// A log-in session unused for this long ends.
    pub session_idle_timeout: Duration,
    /// Log-in sessions a user may hold at once; a new log-in ends the oldest beyond it.
    pub max_sessions_per_user: usize,
    /// Authenticated callers kept in memory between requests (0: none; `auth/cache.rs`).
    pub session_cache_entries: usize,
    /// How long a device token lasts at most; the device then logs in again.
    pub device_token_lifetime: Duration,
    /// A device token unused for this long ends (devices may stay offline for days, so
    /// this is longer than a log-in session's).
    pub device_idle_timeout: Duration,
    /// Whether anyone may register (otherwise accounts come from `ceneca user create`).
    pub allow_registration: bool,
    /// The most items one batch request may carry.
    pub max_batch_items: usize,
    /// System administrators must enable MFA before their administrator powers apply.
    pub mfa_required_for_admins: bool,
    /// How much the audit trail records.
    pub audit_level: ceneca_domain::audit::AuditLevel,
    /// Encrypt message content and document bodies at rest. Full-text search then covers
    /// document titles only (see `content.rs`).
    pub encrypt_content: bool,
    /// Client-certificate common names (verified by mutual TLS) and the e-mail of the
    /// account each one authenticates as.
    pub client_certificate_accounts: std::collections::HashMap<String, String>,
    /// The deployment's own network: where configured and stored URLs may point in the
    /// zero-sync edition.
    pub internal_hosts: Arc<ceneca_domain::network::InternalHosts>,
    /// When set, client text that refers outside the network is refused (always in the
    /// zero-sync edition; `network.reference_policy = "reject"` in the enterprise one).
    pub reference_scanner: Option<Arc<ceneca_domain::network::ReferenceScanner>>,
    /// The server's data-loss prevention policy: the least an organization or a
    /// workspace gets (`dlp.rs`).
    pub dlp_policy: ceneca_domain::dlp::DlpPolicy,
    /// Whether DLP also looks for e-mail addresses and phone numbers.
    pub dlp_contact_details: bool,
    /// How far ahead of this server's clock a pushed change may be stamped: a device
    /// whose clock runs ahead would otherwise win every later edit until its time came.
    pub sync_max_clock_ahead: Duration,
    /// Set when this server is a local node, a replica of an upstream (`sync/node.rs`).
    pub local_node: Option<sync::LocalNode>,
    /// Whether every connection is TLS: the feed then carries secrets to devices over
    /// any address, not only loopback.
    pub served_over_tls: bool,
    /// The largest attachment one upload may carry, in bytes.
    pub max_upload_bytes: u64,
    /// The types an attachment may be, sniffed from its bytes (`type/subtype`, or a
    /// family ending in `*`).
    pub allowed_attachment_types: Arc<Vec<String>>,
    /// Seal attachment files at rest with the key ring (`ceneca_crypto::sealed_file`).
    pub encrypt_attachments: bool,
    /// Bytes a user's own workspaces may store (0: no quota).
    pub user_quota_bytes: u64,
    /// Bytes an organization's workspaces may store unless its plan says (0: no quota).
    pub organization_quota_bytes: u64,
    /// Threads idle this many days are archived by maintenance (0: never).
    pub archive_after_days: u32,
    /// Message bodies nobody wrote to for this many days are stored compressed by
    /// maintenance (0: never).
    pub compress_after_days: u32,
    /// Rows in the bin this many days are deleted for good by maintenance, with
    /// everything below them (0: never).
    pub purge_after_days: u32,
    /// Hours between scheduled maintenance runs (0: none).
    pub maintenance_interval_hours: u32,
    /// A quota this full (percent) starts a maintenance run (0: never).
    pub maintenance_at_percent: u32,
    /// Hours between scheduled backups (0: none; `backup/schedule.rs`).
    pub backup_interval_hours: u32,
    /// Complete backups kept in the backup folder; older ones go after each new one.
    pub backup_keep: u32,
    /// An export of an account storing more than this runs as a job (`export/jobs.rs`).
    pub export_job_threshold_bytes: u64,
    /// How long a job's archive is kept once ready.
    pub export_keep: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            edition: Edition::Enterprise,
            session_lifetime: Duration::from_secs(7 * 24 * 3600),
            session_idle_timeout: Duration::from_secs(60 * 60),
            max_sessions_per_user: 3,
            session_cache_entries: 10_000,
            device_token_lifetime: Duration::from_secs(90 * 24 * 3600),
            device_idle_timeout: Duration::from_secs(30 * 24 * 3600),
            allow_registration: true,
            max_batch_items: 5_000,
            audit_level: ceneca_domain::audit::AuditLevel::Basic,
            mfa_required_for_admins: true,
            encrypt_content: false,
            client_certificate_accounts: Default::default(),
            internal_hosts: Default::default(),
            reference_scanner: None,
            dlp_policy: Default::default(),
            dlp_contact_details: false,
            sync_max_clock_ahead: Duration::from_secs(300),
            local_node: None,
            served_over_tls: false,
            max_upload_bytes: 1 << 30,
            encrypt_attachments: false,
            user_quota_bytes: 10 << 30,
            organization_quota_bytes: 0,
            archive_after_days: 180,
            compress_after_days: 90,
            purge_after_days: 30,
            maintenance_interval_hours: 24,
            maintenance_at_percent: 90,
            backup_interval_hours: 0,
            backup_keep: 7,
            export_job_threshold_bytes: 256 << 20,
            export_keep: Duration::from_secs(24 * 3600),
            // Documents, images, sound and video; no executables, no unknown binaries.
            allowed_attachment_types: Arc::new(
                [
                    "image/*",
                    "audio/*",
                    "video/*",
                    "text/plain",
                    "application/pdf",
                    "application/rtf",
                    "application/msword",
                    "application/vnd.ms-excel",
                    "application/vnd.ms-powerpoint",
                    "application/vnd.openxmlformats-officedocument.*",
                    "application/vnd.oasis.opendocument.*",
                    "application/epub+zip",
                    "application/zip",
                    "application/gzip",
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
        }
    }
}

/// The use cases, over one store and one key ring. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    config: Arc<ServiceConfig>,
    vectors: Option<Arc<vectors::Vectors>>,
    /// How audit entries are linked: the active key's chain MAC key, and the head file.
    audit_chain: ceneca_store::AuditChain,
    audit_head: Option<Arc<audit_head::HeadFile>>,
    /// One secret check (password, second factor) at a time per account.
    secret_checks: Arc<gate::AccountGate>,
    /// Counts of audit appends, sessions and lock-outs (`GET /metrics`).
    metrics: Arc<metrics::ServiceMetrics>,
    /// Authenticated callers kept between requests (`auth/cache.rs`).
    sessions: Arc<auth::cache::SessionCache>,
    /// The DLP patterns, compiled on first use: most servers never need them.
    dlp_detector: Arc<std::sync::OnceLock<ceneca_domain::dlp::Detector>>,
    /// A local node's replication state, kept by its sync loop (`GET /sync/status`).
    node_status: Arc<sync::NodeStatusBoard>,
    /// Reads of the change feed shared by the streams a commit wakes (`sync/shared_feed.rs`).
    shared_feed: Arc<sync::SharedFeed>,
    /// When each device last synced with this node (`sync/mod.rs`).
    seen_devices: Arc<std::sync::Mutex<std::collections::HashMap<uuid::Uuid, std::time::Instant>>>,
    /// Where attachment content is kept (`attachments/`); none: uploads answer 503.
    blobs: Option<Arc<dyn ceneca_store::BlobStore>>,
    /// Uploads hold it shared from keeping their blob to committing their row; the sweep
    /// holds it alone while it decides a blob is unreferenced and removes it.
    blob_gate: Arc<tokio::sync::RwLock<()>>,
    /// Told when an upload leaves an image waiting for its thumbnail.
    thumbnails_wanted: Arc<tokio::sync::Notify>,
    /// The last account the thumbnail queue served: the next round starts after it.
    thumbnails_turn: Arc<std::sync::Mutex<Option<uuid::Uuid>>>,
    /// Whose quota each workspace counts against, for a few seconds (`storage/quota.rs`).
    quotas: Arc<storage::QuotaCache>,
    /// A maintenance run asked for by a nearly full quota, for the worker.
    maintenance_wanted: Arc<maintenance::Wanted>,
    /// Exports running on this server, per account (`export/`).
    exports: Arc<export::ExportSlots>,
    /// Where the server's own backups go, and the run in progress (`backup/schedule.rs`);
    /// none: backups over the API answer 503.
    backups: Option<Arc<backup::BackupPlace>>,
    /// Backups being written by this process: while any is, no attachment file is
    /// removed (a row of the snapshot may name it), the sweep takes it later.
    backups_running: Arc<std::sync::atomic::AtomicUsize>,
    /// Exports run as jobs, and where their archives are (`export/jobs.rs`); none: every
    /// export streams.
    export_jobs: Option<Arc<export::ExportJobs>>,
}

impl Services {
    pub fn new(store: Arc<dyn Store>, keys: Arc<KeyRing>, mut config: ServiceConfig) -> Self {
        // The zero-sync edition's promise does not depend on how the config was built.
        if config.edition == Edition::ZeroSync && config.reference_scanner.is_none() {
            config.reference_scanner =
                Some(Arc::new(ceneca_domain::network::ReferenceScanner::new(
                    (*config.internal_hosts).clone(),
                    &[] as &[&str],
                )));
        }
        let metrics = Arc::new(metrics::ServiceMetrics::default());
        let audit_chain = ceneca_store::AuditChain {
            key: Arc::new(audit::chain_key(&keys, keys.active_key_id())),
            watcher: Some(Arc::new(metrics::CountingWatcher {
                metrics: metrics.clone(),
                next: None,
            })),
        };
        Self {
            store,
            keys,
            sessions: Arc::new(auth::cache::SessionCache::new(config.session_cache_entries)),
            config: Arc::new(config),
            vectors: None,
            audit_chain,
            audit_head: None,
            secret_checks: Arc::default(),
            metrics,
            dlp_detector: Default::default(),
            node_status: Default::default(),
            seen_devices: Default::default(),
            shared_feed: Default::default(),
            blobs: None,
            blob_gate: Default::default(),
            thumbnails_wanted: Default::default(),
            thumbnails_turn: Default::default(),
            quotas: Default::default(),
            maintenance_wanted: Default::default(),
            exports: Default::default(),
            backups: None,
            backups_running: Default::default(),
            export_jobs: None,
        }
    }
    /// Keeps attachment content in `blobs`.
    pub fn with_blobs(mut self, blobs: Arc<dyn ceneca_store::BlobStore>) -> Self {
        self.blobs = Some(blobs);
        self
    }
    /// The service's counters, for monitoring.
    pub fn metrics(&self) -> &metrics::ServiceMetrics {
        &self.metrics
    }
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }
    /// Whether the store answers (readiness).
    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await.map_err(ServiceError::from)
    }
}
