//! The sections of `ceneca.toml` the service owns: `[auth]` (sessions, devices,
//! registration, MFA for administrators), `[audit]`, `[network]`, `[dlp]`, `[sync]` and
//! `[vectors]`. Each is checked
//! here and turned into what [`crate::ServiceConfig`] and [`crate::Services::with_vectors`]
//! take, so the values a file may hold and the ones the service uses are declared once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ceneca_domain::Edition;
use ceneca_domain::audit::AuditLevel;
use ceneca_domain::dlp::DlpPolicy;
use ceneca_domain::network::{InternalHosts, ReferenceScanner};
use ceneca_domain::settings::InvalidSetting;
use ceneca_vector::server::QdrantSettings;
use serde::{Deserialize, Serialize};

use crate::ServiceConfig;

const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// A log-in session's absolute lifetime.
    pub session_lifetime_hours: u64,
    /// A log-in session unused this long ends.
    pub session_idle_timeout_minutes: u64,
    /// Log-in sessions one user may hold; a new log-in ends the oldest beyond it.
    pub max_sessions_per_user: usize,
    /// Authenticated callers kept in memory between requests (0: none).
    pub session_cache_entries: usize,
    pub device_token_lifetime_days: u64,
    pub device_idle_timeout_days: u64,
    /// Whether anyone may register (otherwise: `ceneca user create`).
    pub allow_registration: bool,
    /// System administrators' powers wait until they enable MFA.
    pub mfa_required_for_admins: bool,
}

impl Default for AuthSettings {
    /// [`ServiceConfig::default`]'s values, in the file's units.
    fn default() -> Self {
        let service = ServiceConfig::default();
        Self {
            session_lifetime_hours: service.session_lifetime.as_secs() / HOUR,
            session_idle_timeout_minutes: service.session_idle_timeout.as_secs() / 60,
            max_sessions_per_user: service.max_sessions_per_user,
            session_cache_entries: service.session_cache_entries,
            device_token_lifetime_days: service.device_token_lifetime.as_secs() / DAY,
            device_idle_timeout_days: service.device_idle_timeout.as_secs() / DAY,
            allow_registration: service.allow_registration,
            mfa_required_for_admins: service.mfa_required_for_admins,
        }
    }
}

impl AuthSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if self.max_sessions_per_user == 0 {
            return Err(InvalidSetting::new(
                "auth.max_sessions_per_user",
                "must be at least 1",
            ));
        }
        if self.session_idle_timeout_minutes == 0 {
            return Err(InvalidSetting::new(
                "auth.session_idle_timeout_minutes",
                "must be at least 1",
            ));
        }
        for (key, days) in [
            (
                "auth.device_token_lifetime_days",
                self.device_token_lifetime_days,
            ),
            (
                "auth.device_idle_timeout_days",
                self.device_idle_timeout_days,
            ),
        ] {
            if !(1..=3650).contains(&days) {
                return Err(InvalidSetting::new(key, "must be from 1 to 3650"));
            }
        }
        Ok(())
    }

    /// Writes these settings into `config`.
    pub fn apply(&self, config: &mut ServiceConfig) {
        config.session_lifetime = Duration::from_secs(self.session_lifetime_hours.max(1) * HOUR);
        config.session_idle_timeout = Duration::from_secs(self.session_idle_timeout_minutes * 60);
        config.max_sessions_per_user = self.max_sessions_per_user;
        config.session_cache_entries = self.session_cache_entries;
        config.device_token_lifetime = Duration::from_secs(self.device_token_lifetime_days * DAY);
        config.device_idle_timeout = Duration::from_secs(self.device_idle_timeout_days * DAY);
        config.allow_registration = self.allow_registration;
        config.mfa_required_for_admins = self.mfa_required_for_admins;
    }
}

/// `[audit]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// `basic` (auth events and writes), `enhanced` (and reads) or `maximum` (and query
    /// hashes and data sources).
    pub level: AuditLevel,
}

/// Whether client text that refers outside the network is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReferencePolicy {
    /// Stored text may name any host (the enterprise edition's default).
    #[default]
    Off,
    /// A write holding a URL, an address or a host name outside the network is refused
    /// (422, naming the field and the host). Always on in the zero-sync edition.
    Reject,
}

/// `[network]`: what the deployment's own network is, and whether stored text may point
/// outside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkSettings {
    /// Domain suffixes (`corp.example.com`) and networks (`100.64.0.0/10`) that are
    /// internal besides the built-in ones (loopback, RFC 1918, RFC 4193, `.internal`,
    /// `.local`, `.lan`, `.home.arpa`). Link-local addresses can never be.
    #[serde(deserialize_with = "ceneca_domain::settings::list_or_csv")]
    pub internal_hosts: Vec<String>,
    /// Domains that count as external services wherever they appear in text, besides the
    /// built-in list of AI, cloud and code hosts.
    #[serde(deserialize_with = "ceneca_domain::settings::list_or_csv")]
    pub external_service_domains: Vec<String>,
    /// `off` or `reject` (the scanner of references to the outside). The zero-sync
    /// edition always rejects: `off` there is refused.
    pub reference_policy: ReferencePolicy,
}

impl NetworkSettings {
    /// The deployment's definition of internal.
    pub fn internal_hosts(&self) -> Result<InternalHosts, InvalidSetting> {
        InternalHosts::with_configured(&self.internal_hosts)
            .map_err(|reason| InvalidSetting::new("network.internal_hosts", reason))
    }

    /// The lists parse. (`reference_policy = "off"` is ignored in zero-sync, which always
    /// rejects; the configuration loader refuses it when it is set explicitly there.)
    pub fn check(&self) -> Result<(), InvalidSetting> {
        self.internal_hosts()?;
        if let Some(bad) = self
            .external_service_domains
            .iter()
            .find(|d| !ceneca_domain::network::hosts::is_domain_name(d))
        {
            return Err(InvalidSetting::new(
                "network.external_service_domains",
                format!("'{bad}' is not a domain name"),
            ));
        }
        Ok(())
    }

    /// Writes these settings into `config` (after [`Self::check`]).
    pub fn apply(
        &self,
        edition: Edition,
        config: &mut ServiceConfig,
    ) -> Result<(), InvalidSetting> {
        let internal = self.internal_hosts()?;
        config.reference_scanner = (edition == Edition::ZeroSync
            || self.reference_policy == ReferencePolicy::Reject)
            .then(|| {
                Arc::new(ReferenceScanner::new(
                    internal.clone(),
                    &self.external_service_domains,
                ))
            });
        config.internal_hosts = Arc::new(internal);
        Ok(())
    }
}

/// `[dlp]`: data-loss prevention on write (`dlp.rs`), in both editions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DlpSettings {
    /// `off`, `flag` (record findings in the audit trail), `redact` (replace them before
    /// storage) or `reject` (refuse the write). The least every organization and workspace
    /// gets: theirs (their `dlp_policy`) can only be stricter.
    pub policy: DlpPolicy,
    /// Also look for e-mail addresses and phone numbers (off: most chat text holds them
    /// legitimately).
    pub contact_details: bool,
}

impl DlpSettings {
    /// Writes these settings into `config`.
    pub fn apply(&self, config: &mut ServiceConfig) {
        config.dlp_policy = self.policy;
        config.dlp_contact_details = self.contact_details;
    }
}

/// `[sync]`: replication between nodes (`sync/`); the zero-sync edition has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncSettings {
    /// How far ahead of this server's clock a pushed change may be stamped.
    pub max_clock_ahead_secs: u64,
    /// Set on a device: the upstream Ceneca this server is a local node of
    /// (`https://host:port`; `ceneca device enroll` first). Empty: not a local node.
    pub upstream_url: String,
    /// A local node syncs this often, besides after each local write and when the
    /// upstream's stream announces a change.
    pub interval_secs: u64,
    /// Upstream hosts allowed although they are not internal (`network.internal_hosts`).
    #[serde(deserialize_with = "ceneca_domain::settings::list_or_csv")]
    pub allowed_upstreams: Vec<String>,
    /// How long every change stays in the change log; older ones are dropped once later
    /// changes have overwritten all they set (`sync/compact.rs`).
    pub log_retention_days: u32,
    /// On a local node: how many single-row reads are kept in memory (0: none).
    pub max_cache_entries: usize,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            max_clock_ahead_secs: ServiceConfig::default().sync_max_clock_ahead.as_secs(),
            upstream_url: String::new(),
            interval_secs: 30,
            allowed_upstreams: Vec::new(),
            log_retention_days: 30,
            max_cache_entries: 10_000,
        }
    }
}

impl SyncSettings {
    /// The sync interval.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    /// How long every change stays in the change log.
    pub fn log_retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.log_retention_days) * 86_400)
    }

    pub fn check(&self) -> Result<(), InvalidSetting> {
        if !(1..=3_650).contains(&self.log_retention_days) {
            return Err(InvalidSetting::new(
                "sync.log_retention_days",
                "must be from 1 to 3650 (ten years)",
            ));
        }
        if self.max_cache_entries > 10_000_000 {
            return Err(InvalidSetting::new(
                "sync.max_cache_entries",
                "must be from 0 (no cache) to 10000000",
            ));
        }
        if !(1..=86_400).contains(&self.interval_secs) {
            return Err(InvalidSetting::new(
                "sync.interval_secs",
                "must be from 1 to 86400 (a day)",
            ));
        }
        if let Some(bad) = self
            .allowed_upstreams
            .iter()
            .find(|h| ceneca_domain::network::hosts::parse_host(h).is_err())
        {
            return Err(InvalidSetting::new(
                "sync.allowed_upstreams",
                format!("'{bad}' is not a host name or address"),
            ));
        }
        if !(1..=86_400).contains(&self.max_clock_ahead_secs) {
            return Err(InvalidSetting::new(
                "sync.max_clock_ahead_secs",
                "must be from 1 to 86400 (a day)",
            ));
        }
        Ok(())
    }

    /// Writes these settings into `config`.
    pub fn apply(&self, config: &mut ServiceConfig) {
        config.sync_max_clock_ahead = Duration::from_secs(self.max_clock_ahead_secs);
    }
}

/// `[attachments]`: uploaded files (`attachments/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentSettings {
    /// The largest file one upload may carry, in bytes.
    pub max_upload_bytes: u64,
    /// The types an uploaded file may be, as read from its bytes (never the client's
    /// word): `type/subtype`, or a family ending in `*` (`image/*`).
    #[serde(deserialize_with = "ceneca_domain::settings::list_or_csv")]
    pub allowed_types: Vec<String>,
    /// Encrypt files at rest with the key ring (on in the zero-sync edition).
    pub encrypt: bool,
}

impl Default for AttachmentSettings {
    fn default() -> Self {
        let config = ServiceConfig::default();
        Self {
            max_upload_bytes: config.max_upload_bytes,
            allowed_types: (*config.allowed_attachment_types).clone(),
            encrypt: config.encrypt_attachments,
        }
    }
}

impl AttachmentSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if !(1..=MAX_UPLOAD_LIMIT).contains(&self.max_upload_bytes) {
            return Err(InvalidSetting::new(
                "attachments.max_upload_bytes",
                format!("must be from 1 to {MAX_UPLOAD_LIMIT} (1 TiB)"),
            ));
        }
        if let Some(bad) = self
            .allowed_types
            .iter()
            .find(|t| !ceneca_domain::content_type::is_type_pattern(t))
        {
            return Err(InvalidSetting::new(
                "attachments.allowed_types",
                format!("'{bad}' is not a type (type/subtype) or a family ending in *"),
            ));
        }
        Ok(())
    }

    /// Writes these settings into `config`.
    pub fn apply(&self, config: &mut ServiceConfig) {
        config.max_upload_bytes = self.max_upload_bytes;
        config.allowed_attachment_types = Arc::new(self.allowed_types.clone());
        config.encrypt_attachments = self.encrypt;
    }
}

const MAX_UPLOAD_LIMIT: u64 = 1 << 40;

/// `[storage]`: how much a user's own workspaces and an organization's may store
/// (`storage/`). 0: no quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Bytes a user's own workspaces (those of no organization) may store.
    pub user_quota_bytes: u64,
    /// Bytes an organization's workspaces may store, unless its subscription plan sets
    /// `storage_quota_bytes`.
    pub organization_quota_bytes: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        let config = ServiceConfig::default();
        Self {
            user_quota_bytes: config.user_quota_bytes,
            organization_quota_bytes: config.organization_quota_bytes,
        }
    }
}

impl StorageSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        for (name, value) in [
            ("storage.user_quota_bytes", self.user_quota_bytes),
            (
                "storage.organization_quota_bytes",
                self.organization_quota_bytes,
            ),
        ] {
            if value > i64::MAX as u64 {
                return Err(InvalidSetting::new(
                    name,
                    format!("must be at most {} (0: no quota)", i64::MAX),
                ));
            }
        }
        Ok(())
    }

    /// Writes these settings into `config`.
    pub fn apply(&self, config: &mut ServiceConfig) {
        config.user_quota_bytes = self.user_quota_bytes;
        config.organization_quota_bytes = self.organization_quota_bytes;
    }
}

/// `[retention]`: what the maintenance job archives, and when it runs
/// (`service/maintenance`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Threads idle this many days are archived (pinned ones never); 0: never. An
    /// organization's `archive_after_days` overrides it for its workspaces.
    pub archive_after_days: u32,
    /// Message bodies nobody wrote to for this many days are stored compressed (zstd),
    /// read and searched as before; 0: never.
    pub compress_after_days: u32,
    /// Rows in the bin this many days (threads, messages, documents, projects,
    /// workspaces, organizations) are deleted for good, with their files, full-text
    /// entries, vectors and history; 0: never.
    pub purge_after_days: u32,
    /// Hours between scheduled maintenance runs; 0: only by hand or past the threshold.
    pub maintenance_interval_hours: u32,
    /// A write that finds its quota this full (percent) starts a maintenance run; 0: never.
    pub maintenance_at_percent: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        let config = ServiceConfig::default();
        Self {
            archive_after_days: config.archive_after_days,
            compress_after_days: config.compress_after_days,
            purge_after_days: config.purge_after_days,
            maintenance_interval_hours: config.maintenance_interval_hours,
            maintenance_at_percent: config.maintenance_at_percent,
        }
    }
}

impl RetentionSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if self.archive_after_days > 36_500 {
            return Err(InvalidSetting::new(
                "retention.archive_after_days",
                "must be at most 36500 days (0: never)",
            ));
        }
        if self.compress_after_days > 36_500 {
            return Err(InvalidSetting::new(
                "retention.compress_after_days",
                "must be at most 36500 days (0: never)",
            ));
        }
        if self.purge_after_days > 36_500 {
            return Err(InvalidSetting::new(
                "retention.purge_after_days",
                "must be at most 36500 days (0: never)",
            ));
        }
        if self.maintenance_interval_hours > 24 * 366 {
            return Err(InvalidSetting::new(
                "retention.maintenance_interval_hours",
                "must be at most 8784 hours, a year (0: no schedule)",
            ));
        }
        if self.maintenance_at_percent > 100 {
            return Err(InvalidSetting::new(
                "retention.maintenance_at_percent",
                "must be a percentage, 0 to 100 (0: never)",
            ));
        }
        Ok(())
    }

    /// Writes these settings into `config`.
    pub fn apply(&self, config: &mut ServiceConfig) {
        config.archive_after_days = self.archive_after_days;
        config.compress_after_days = self.compress_after_days;
        config.purge_after_days = self.purge_after_days;
        config.maintenance_interval_hours = self.maintenance_interval_hours;
        config.maintenance_at_percent = self.maintenance_at_percent;
    }
}

/// `[backup]`: backups the server takes on a schedule (`service/backup/schedule.rs`);
/// `ceneca backup create` and `POST /api/v1/admin/backups` take one at any time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    /// Where backups are written; empty: `<data_dir>/backups`. Another disk, or a mount
    /// of another machine, is what survives the loss of this one.
    pub directory: String,
    /// Hours between scheduled backups; 0: none.
    pub interval_hours: u32,
    /// Complete backups kept in the folder; older ones are removed after each new one.
    pub keep: u32,
}

impl Default for BackupSettings {
    fn default() -> Self {
        let config = ServiceConfig::default();
        Self {
            directory: String::new(),
            interval_hours: config.backup_interval_hours,
            keep: config.backup_keep,
        }
    }
}

impl BackupSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if self.interval_hours > 24 * 366 {
            return Err(InvalidSetting::new(
                "backup.interval_hours",
                "must be at most 8784 hours, a year (0: no schedule)",
            ));
        }
        if !(1..=1_000).contains(&self.keep) {
            return Err(InvalidSetting::new(
                "backup.keep",
                "must keep 1 to 1000 backups",
            ));
        }
        if self.directory.contains('\0') {
            return Err(InvalidSetting::new(
                "backup.directory",
                "must be a path without NUL characters",
            ));
        }
        Ok(())
    }

    /// Writes these settings into `config` (the folder is the caller's to resolve).
    pub fn apply(&self, config: &mut ServiceConfig) {
        config.backup_interval_hours = self.interval_hours;
        config.backup_keep = self.keep;
    }
}

/// `[export]`: exports of an account (`POST /users/{id}/export`) too large to stream at
/// once run as jobs whose archive is kept a while (`service/export/jobs.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportSettings {
    /// An account storing more than this many bytes is exported as a job (202, then
    /// `GET /exports/{id}`); `?job=true|false` chooses either way.
    pub job_threshold_bytes: u64,
    /// Hours a job's archive is kept once ready, then deleted.
    pub keep_hours: u32,
}

impl Default for ExportSettings {
    fn default() -> Self {
        let config = ServiceConfig::default();
        Self {
            job_threshold_bytes: config.export_job_threshold_bytes,
            keep_hours: (config.export_keep.as_secs() / 3600) as u32,
        }
    }
}

impl ExportSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if !(1..=24 * 31).contains(&self.keep_hours) {
            return Err(InvalidSetting::new(
                "export.keep_hours",
                "must be 1 to 744 hours (a month)",
            ));
        }
        Ok(())
    }

    /// Writes these settings into `config`.
    pub fn apply(&self, config: &mut ServiceConfig) {
        config.export_job_threshold_bytes = self.job_threshold_bytes;
        config.export_keep = Duration::from_secs(u64::from(self.keep_hours) * 3600);
    }
}

/// The vector collections.
const COLLECTIONS: [&str; 3] = ["messages", "documents", "attachments"];

/// `[vectors]`: embedding dimensions, the embedded engine's log bound, or a Qdrant
/// server instead of the embedded engine.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VectorSettings {
    pub dims_messages: usize,
    pub dims_documents: usize,
    pub dims_attachments: usize,
    /// The embedded engine's WAL bound (MB): past it a collection is rebuilt.
    pub wal_limit_mb: u64,
    /// `http(s)://host:6334` (gRPC); empty: the embedded engine.
    pub qdrant_url: String,
    /// Secret: never logged.
    pub qdrant_api_key: String,
    pub qdrant_collection_prefix: String,
}

impl Default for VectorSettings {
    fn default() -> Self {
        Self {
            dims_messages: 1536,
            dims_documents: 1536,
            dims_attachments: 1536,
            wal_limit_mb: 512,
            qdrant_url: String::new(),
            qdrant_api_key: String::new(),
            qdrant_collection_prefix: "ceneca_".into(),
        }
    }
}

impl std::fmt::Debug for VectorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorSettings")
            .field("dims", &self.dims())
            .field("wal_limit_mb", &self.wal_limit_mb)
            .field("qdrant_url", &self.qdrant_url)
            .field(
                "qdrant_api_key",
                &if self.qdrant_api_key.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("qdrant_collection_prefix", &self.qdrant_collection_prefix)
            .finish()
    }
}

impl VectorSettings {
    /// Dimensions in range; a Qdrant address that is gRPC over http(s), that the edition
    /// may reach, and a collection prefix Qdrant accepts.
    pub fn check(&self, edition: Edition, internal: &InternalHosts) -> Result<(), InvalidSetting> {
        for (collection, dims) in self.per_collection() {
            if !(1..=8192).contains(&dims) {
                return Err(InvalidSetting::new(
                    format!("vectors.dims_{collection}"),
                    format!("must be between 1 and 8192, not {dims}"),
                ));
            }
        }
        if self.qdrant_url.is_empty() {
            return Ok(());
        }
        let authority = self
            .qdrant_url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', '?', '#']).next())
            .unwrap_or("");
        if authority.contains('@') {
            // Credentials go in `qdrant_api_key`, which is masked everywhere; a URL is
            // printed and logged as it is.
            return Err(InvalidSetting::new(
                "vectors.qdrant_url",
                "must not hold credentials (user:password@); set vectors.qdrant_api_key",
            ));
        }
        if !(self.qdrant_url.starts_with("http://") || self.qdrant_url.starts_with("https://")) {
            return Err(InvalidSetting::new(
                "vectors.qdrant_url",
                format!(
                    "must be http://host:6334 or https://host:6334 (Qdrant's gRPC port), not '{}'",
                    self.qdrant_url
                ),
            ));
        }
        edition
            .check_url(internal, &self.qdrant_url)
            .map_err(|reason| InvalidSetting::new("vectors.qdrant_url", reason))?;
        if !self
            .qdrant_collection_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(InvalidSetting::new(
                "vectors.qdrant_collection_prefix",
                "may hold only letters, digits, '_' and '-'",
            ));
        }
        Ok(())
    }

    fn per_collection(&self) -> [(&'static str, usize); 3] {
        [
            (COLLECTIONS[0], self.dims_messages),
            (COLLECTIONS[1], self.dims_documents),
            (COLLECTIONS[2], self.dims_attachments),
        ]
    }

    /// Dimension per collection.
    pub fn dims(&self) -> HashMap<String, usize> {
        self.per_collection()
            .into_iter()
            .map(|(c, d)| (c.to_owned(), d))
            .collect()
    }

    pub fn wal_limit_bytes(&self) -> u64 {
        self.wal_limit_mb * 1024 * 1024
    }

    /// The Qdrant server to use, if one is configured.
    pub fn qdrant(&self) -> Option<QdrantSettings> {
        (!self.qdrant_url.is_empty()).then(|| QdrantSettings {
            url: self.qdrant_url.clone(),
            api_key: Some(self.qdrant_api_key.clone()),
            collection_prefix: self.qdrant_collection_prefix.clone(),
            timeout: Duration::from_secs(30),
            indexing_threshold_kb: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_defaults_are_the_services() {
        let mut config = ServiceConfig {
            max_sessions_per_user: 99,
            ..ServiceConfig::default()
        };
        AuthSettings::default().apply(&mut config);
        let defaults = ServiceConfig::default();
        assert_eq!(config.session_lifetime, defaults.session_lifetime);
        assert_eq!(config.session_idle_timeout, defaults.session_idle_timeout);
        assert_eq!(config.max_sessions_per_user, defaults.max_sessions_per_user);
        assert_eq!(config.device_token_lifetime, defaults.device_token_lifetime);
        assert_eq!(config.device_idle_timeout, defaults.device_idle_timeout);
    }

    #[test]
    fn bad_auth_values_name_their_key() {
        let auth = AuthSettings {
            device_idle_timeout_days: 0,
            ..AuthSettings::default()
        };
        assert_eq!(
            auth.check().unwrap_err().key,
            "auth.device_idle_timeout_days"
        );
    }

    #[test]
    fn a_qdrant_url_must_be_grpc_and_internal_in_zero_sync() {
        let with = |url: &str| VectorSettings {
            qdrant_url: url.into(),
            ..VectorSettings::default()
        };
        assert!(
            with("http://qdrant.internal:6334")
                .check(Edition::ZeroSync, &InternalHosts::default())
                .is_ok()
        );
        assert!(
            with("https://q.example.com:6334")
                .check(Edition::Enterprise, &InternalHosts::default())
                .is_ok()
        );
        let external = with("https://q.example.com:6334")
            .check(Edition::ZeroSync, &InternalHosts::default())
            .unwrap_err();
        assert_eq!(external.key, "vectors.qdrant_url");
        assert!(external.reason.contains("zero-sync"), "{external}");
        let scheme = with("qdrant.internal:6334")
            .check(Edition::Enterprise, &InternalHosts::default())
            .unwrap_err();
        assert!(scheme.reason.contains("http://host:6334"), "{scheme}");
        let prefix = VectorSettings {
            qdrant_collection_prefix: "bad prefix/".into(),
            ..with("http://10.0.0.5:6334")
        };
        assert_eq!(
            prefix
                .check(Edition::Enterprise, &InternalHosts::default())
                .unwrap_err()
                .key,
            "vectors.qdrant_collection_prefix"
        );
        let dims = VectorSettings {
            dims_documents: 0,
            ..VectorSettings::default()
        };
        assert_eq!(
            dims.check(Edition::Enterprise, &InternalHosts::default())
                .unwrap_err()
                .key,
            "vectors.dims_documents"
        );
    }

    #[test]
    fn the_qdrant_api_key_is_redacted() {
        let settings = VectorSettings {
            qdrant_api_key: "qdrant-sekrit".into(),
            ..VectorSettings::default()
        };
        assert!(!format!("{settings:?}").contains("qdrant-sekrit"));
    }
}
