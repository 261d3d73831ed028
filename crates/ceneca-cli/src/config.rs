//! Configuration, layered: command-line flags > `CENECA_*` environment > `ceneca.toml` >
//! defaults (DESIGN.md §5).
//!
//! The file has one section per crate that owns the settings (`[http]` and `[tls]` in
//! ceneca-server, `[store]` in ceneca-store, `[auth]`, `[audit]`, `[network]`, `[dlp]`,
//! `[sync]` and `[vectors]` in ceneca-service, `[encryption]` and `[log]` here), each a struct that refuses unknown
//! keys and parses enums into types. A setting can be given in the environment as
//! `CENECA_<SECTION>__<KEY>` (for example `CENECA_HTTP__LISTEN`) or by its flat name from
//! before the sections (`CENECA_LISTEN`, [`FLAT`]); a file may use flat names too. Where
//! both forms are set in the environment, the sectioned one wins.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ceneca_domain::Edition;
use ceneca_server::settings::{HttpSettings, TlsSettings};
use ceneca_service::settings::{
    AttachmentSettings, AuditSettings, AuthSettings, BackupSettings, DlpSettings, ExportSettings,
    NetworkSettings, RetentionSettings, StorageSettings, SyncSettings, VectorSettings,
};
use ceneca_store::StoreSettings;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Tag, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the embedded database, key file, audit head and vector index live.
    pub data_dir: PathBuf,
    /// `enterprise` or `zero-sync`.
    pub edition: Edition,
    pub http: HttpSettings,
    pub tls: TlsSettings,
    pub store: StoreSettings,
    pub vectors: VectorSettings,
    pub auth: AuthSettings,
    pub audit: AuditSettings,
    pub encryption: EncryptionSettings,
    pub network: NetworkSettings,
    pub dlp: DlpSettings,
    pub sync: SyncSettings,
    pub attachments: AttachmentSettings,
    pub storage: StorageSettings,
    pub retention: RetentionSettings,
    pub backup: BackupSettings,
    pub export: ExportSettings,
    pub log: LogSettings,
    /// Where each setting's value came from (`section.key` → a default, the edition's
    /// preset, the file, a variable, a flag), for `config show` and the start-up log.
    #[serde(skip)]
    pub origins: std::collections::BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./ceneca_data"),
            edition: Edition::Enterprise,
            http: HttpSettings::default(),
            tls: TlsSettings::default(),
            store: StoreSettings::default(),
            vectors: VectorSettings::default(),
            auth: AuthSettings::default(),
            audit: AuditSettings::default(),
            encryption: EncryptionSettings::default(),
            network: NetworkSettings::default(),
            dlp: DlpSettings::default(),
            sync: SyncSettings::default(),
            attachments: AttachmentSettings::default(),
            storage: StorageSettings::default(),
            retention: RetentionSettings::default(),
            backup: BackupSettings::default(),
            export: ExportSettings::default(),
            log: LogSettings::default(),
            origins: Default::default(),
        }
    }
}

/// The defaults an edition changes; a setting given anywhere (file, environment, flag)
/// still wins, and is logged at start-up ([`Config::preset_overrides`]).
///
/// Zero-sync: the strictest audit level, content, attachment files and the embedded
/// database encrypted at rest, references outside
/// the network refused (that one cannot be turned off). Enterprise: reads audited too.
pub fn edition_preset(edition: Edition) -> Vec<(&'static str, Value)> {
    match edition {
        Edition::ZeroSync => vec![
            ("audit.level", Value::from("maximum")),
            ("encryption.encrypt_content", Value::from(true)),
            ("attachments.encrypt", Value::from(true)),
            ("store.encrypt_database", Value::from(true)),
            ("network.reference_policy", Value::from("reject")),
        ],
        Edition::Enterprise => vec![("audit.level", Value::from("enhanced"))],
    }
}

/// `[encryption]`: the key ring (`crate::keys`) and content encryption at rest.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionSettings {
    /// Base64 of a 32-byte key. Secret: never logged.
    pub key: String,
    /// A key file (`<id> <base64>` per line, the last line active).
    pub key_file: String,
    /// Encrypt message content and document bodies at rest (search then covers titles).
    pub encrypt_content: bool,
}

impl std::fmt::Debug for EncryptionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionSettings")
            .field("key", &mask(&self.key))
            .field("key_file", &self.key_file)
            .field("encrypt_content", &self.encrypt_content)
            .finish()
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[log]`. The level comes from `RUST_LOG`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
}

/// Every setting's name from before the sections, and where it lives now. These names
/// keep working as environment variables (`CENECA_<NAME>`) and as top-level keys of a
/// configuration file. `data_dir` and `edition` are top-level in both forms.
pub const FLAT: &[(&str, &str)] = &[
    ("listen", "http.listen"),
    ("metrics_listen", "http.metrics_listen"),
    ("max_body_bytes", "http.max_body_bytes"),
    ("max_batch_body_bytes", "http.max_batch_body_bytes"),
    ("cors_allowed_origins", "http.cors_allowed_origins"),
    ("admin_allowed_networks", "http.admin_allowed_networks"),
    (
        "rate_limit_per_ip_per_minute",
        "http.rate_limit_per_ip_per_minute",
    ),
    (
        "rate_limit_per_account_per_minute",
        "http.rate_limit_per_account_per_minute",
    ),
    (
        "login_attempts_per_ip_per_minute",
        "http.login_attempts_per_ip_per_minute",
    ),
    (
        "registrations_per_ip_per_hour",
        "http.registrations_per_ip_per_hour",
    ),
    ("tls_cert_file", "tls.cert_file"),
    ("tls_key_file", "tls.key_file"),
    ("tls_client_ca_file", "tls.client_ca_file"),
    ("tls_client_accounts", "tls.client_accounts"),
    ("database_url", "store.database_url"),
    ("sqlite_synchronous", "store.sqlite_synchronous"),
    ("pg_max_connections", "store.pg_max_connections"),
    ("pg_idle_timeout_secs", "store.pg_idle_timeout_secs"),
    ("pg_search_time_limit_ms", "store.pg_search_time_limit_ms"),
    ("encrypt_database", "store.encrypt_database"),
    ("vector_dims_messages", "vectors.dims_messages"),
    ("vector_dims_documents", "vectors.dims_documents"),
    ("vector_dims_attachments", "vectors.dims_attachments"),
    ("vector_wal_limit_mb", "vectors.wal_limit_mb"),
    ("qdrant_url", "vectors.qdrant_url"),
    ("qdrant_api_key", "vectors.qdrant_api_key"),
    (
        "qdrant_collection_prefix",
        "vectors.qdrant_collection_prefix",
    ),
    ("session_lifetime_hours", "auth.session_lifetime_hours"),
    (
        "session_idle_timeout_minutes",
        "auth.session_idle_timeout_minutes",
    ),
    ("max_sessions_per_user", "auth.max_sessions_per_user"),
    ("session_cache_entries", "auth.session_cache_entries"),
    (
        "device_token_lifetime_days",
        "auth.device_token_lifetime_days",
    ),
    ("device_idle_timeout_days", "auth.device_idle_timeout_days"),
    ("allow_registration", "auth.allow_registration"),
    ("mfa_required_for_admins", "auth.mfa_required_for_admins"),
    ("audit_level", "audit.level"),
    ("encryption_key", "encryption.key"),
    ("encryption_key_file", "encryption.key_file"),
    ("encrypt_content", "encryption.encrypt_content"),
    ("internal_hosts", "network.internal_hosts"),
    (
        "external_service_domains",
        "network.external_service_domains",
    ),
    ("reference_policy", "network.reference_policy"),
    ("dlp_policy", "dlp.policy"),
    ("dlp_contact_details", "dlp.contact_details"),
    ("log_format", "log.format"),
    ("upstream_url", "sync.upstream_url"),
    ("sync_interval_secs", "sync.interval_secs"),
    ("sync_log_retention_days", "sync.log_retention_days"),
    ("max_cache_entries", "sync.max_cache_entries"),
    ("max_upload_bytes", "attachments.max_upload_bytes"),
    ("allowed_attachment_types", "attachments.allowed_types"),
    ("encrypt_attachments", "attachments.encrypt"),
    ("storage_quota_bytes", "storage.user_quota_bytes"),
    (
        "organization_storage_quota_bytes",
        "storage.organization_quota_bytes",
    ),
    ("archive_after_days", "retention.archive_after_days"),
    ("compress_after_days", "retention.compress_after_days"),
    ("purge_after_days", "retention.purge_after_days"),
    (
        "maintenance_interval_hours",
        "retention.maintenance_interval_hours",
    ),
    ("maintenance_at_percent", "retention.maintenance_at_percent"),
    ("backup_directory", "backup.directory"),
    ("backup_interval_hours", "backup.interval_hours"),
    ("backup_keep", "backup.keep"),
    ("export_job_threshold_bytes", "export.job_threshold_bytes"),
    ("export_keep_hours", "export.keep_hours"),
];

/// The sectioned path of a flat name.
fn flat_path(name: &str) -> Option<&'static str> {
    FLAT.iter()
        .find(|(flat, _)| flat.eq_ignore_ascii_case(name))
        .map(|(_, path)| *path)
}

/// The flat name of a sectioned path.
fn flat_name(path: &str) -> Option<&'static str> {
    FLAT.iter().find(|(_, p)| *p == path).map(|(flat, _)| *flat)
}

/// `<redacted>` for a set secret, nothing for an empty one.
fn mask(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "<redacted>" }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("edition", &self.edition)
            .field("http", &self.http)
            .field("tls", &self.tls)
            .field("store.database_url", &redact_url(&self.store.database_url))
            .field("store.sqlite_synchronous", &self.store.sqlite_synchronous)
            .field("store.encrypt_database", &self.store.encrypt_database)
            .field("vectors", &self.vectors)
            .field("auth", &self.auth)
            .field("audit", &self.audit)
            .field("encryption", &self.encryption)
            .field("network", &self.network)
            .field("dlp", &self.dlp)
            .field("sync", &self.sync)
            .field("attachments", &self.attachments)
            .field("storage", &self.storage)
            .field("retention", &self.retention)
            .field("backup", &self.backup)
            .field("export", &self.export)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

/// A database URL with any password replaced, fit for logs.
pub fn redact_url(url: &str) -> String {
    let mut out = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:<redacted>{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    };
    // libpq-style parameters carry secrets too: `?password=…`, `&sslpassword=…`.
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("password") => {
                    format!("{k}=<redacted>")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

/// Flag values that override everything else (only those given).
#[derive(Debug, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub edition: Option<String>,
}

/// How a layer's keys are named, for error messages and for flat names.
#[derive(Clone, Copy)]
enum Naming {
    /// A configuration file; top-level flat names are moved into their sections.
    File,
    /// `CENECA_<FLAT NAME>` variables, moved into their sections.
    FlatEnv,
    /// `CENECA_<SECTION>__<KEY>` variables.
    SectionEnv,
    /// Command-line flags.
    Flag,
    /// The built-in defaults.
    Default,
    /// What the edition changes in the defaults.
    Preset(Edition),
}

/// A provider with Ceneca's naming: flat names moved into sections, and errors that name
/// the variable or flag as the user wrote it next to its `section.key`.
struct Layer<P> {
    inner: P,
    naming: Naming,
}

impl<P: Provider> Provider for Layer<P> {
    fn metadata(&self) -> Metadata {
        let sectioned = |k: &[&str]| k.join(".");
        match self.naming {
            Naming::File => self.inner.metadata(),
            Naming::FlatEnv => Metadata::named("environment variable").interpolater(
                move |_: &Profile, k: &[&str]| {
                    let path = sectioned(k);
                    let name = flat_name(&path).unwrap_or(&path).to_ascii_uppercase();
                    format!("CENECA_{name} ({path})")
                },
            ),
            Naming::SectionEnv => Metadata::named("environment variable").interpolater(
                move |_: &Profile, k: &[&str]| {
                    format!(
                        "CENECA_{} ({})",
                        k.join("__").to_ascii_uppercase(),
                        sectioned(k)
                    )
                },
            ),
            Naming::Flag => Metadata::named("command-line flag"),
            Naming::Default => Metadata::named("default"),
            Naming::Preset(edition) => {
                Metadata::named(format!("{} edition preset", edition.as_str()))
            }
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut data = self.inner.data()?;
        if matches!(self.naming, Naming::File | Naming::FlatEnv) {
            for dict in data.values_mut() {
                nest_flat_keys(dict).map_err(figment::Error::from)?;
            }
        }
        Ok(data)
    }
}

/// Moves top-level flat names into their sections; a setting given both ways in one
/// layer is an error (which one was meant is unclear).
fn nest_flat_keys(dict: &mut Dict) -> Result<(), String> {
    let flat: Vec<String> = dict
        .keys()
        .filter(|k| flat_path(k).is_some())
        .cloned()
        .collect();
    for key in flat {
        let path = flat_path(&key).expect("filtered above");
        let (section, name) = path.split_once('.').expect("sectioned paths have a dot");
        let value = dict.remove(&key).expect("listed above");
        let entry = dict
            .entry(section.to_owned())
            .or_insert_with(|| Value::Dict(Tag::Default, Dict::new()));
        let Value::Dict(_, table) = entry else {
            return Err(format!("`{section}` must be a section (a table)"));
        };
        if table.contains_key(name) {
            return Err(format!(
                "`{key}` and `{path}` are the same setting; set one of them"
            ));
        }
        table.insert(name.to_owned(), value);
    }
    Ok(())
}

/// Environment variables that are not settings: those of the test harness, of the
/// benchmarks and of `user create`. Every other `CENECA_` variable must be a setting, so
/// a typo is an error, not a silent default.
fn is_setting_variable(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    !key.starts_with("test_") && !key.starts_with("bench_") && key != "new_user_password"
}

impl Config {
    /// Loads the layers. `file` is the `--config` path; otherwise `./ceneca.toml` if present.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        // The edition decides the preset layer, so it is read first from the other layers.
        let edition: Edition = Self::layers(file, overrides, None)?
            .extract_inner("edition")
            .context("invalid configuration")?;
        let figment = Self::layers(file, overrides, Some(edition))?;
        let mut config: Config = figment.extract().context("invalid configuration")?;
        let shown = toml::Value::try_from(&config).context("configuration")?;
        let mut keys = Vec::new();
        leaf_keys("", &shown, &mut keys);
        config.origins = keys
            .into_iter()
            .map(|key| {
                let origin = figment
                    .find_metadata(&key)
                    .map(|m| origin_of(m, &key))
                    .unwrap_or_else(|| "default".into());
                (key, origin)
            })
            .collect();
        config.check().context("invalid configuration")?;
        Ok(config)
    }

    /// The layers, lowest first: defaults, the edition's preset, the file, flat and
    /// sectioned environment variables, flags.
    fn layers(
        file: Option<&Path>,
        overrides: &Overrides,
        preset: Option<Edition>,
    ) -> anyhow::Result<Figment> {
        let mut figment = Figment::from(Layer {
            inner: Serialized::defaults(Config::default()),
            naming: Naming::Default,
        });
        if let Some(edition) = preset {
            for (path, value) in edition_preset(edition) {
                figment = figment.merge(Layer {
                    inner: Serialized::default(path, value),
                    naming: Naming::Preset(edition),
                });
            }
        }
        let toml = match file {
            Some(path) => {
                if !path.exists() {
                    bail!("configuration file {} does not exist", path.display());
                }
                Toml::file(path)
            }
            None => Toml::file("ceneca.toml"),
        };
        figment = figment.merge(Layer {
            inner: toml,
            naming: Naming::File,
        });
        let flat_env = Env::prefixed("CENECA_")
            .filter(|key| is_setting_variable(key.as_str()) && !key.as_str().contains("__"));
        let section_env = Env::prefixed("CENECA_")
            .filter(|key| is_setting_variable(key.as_str()) && key.as_str().contains("__"))
            .split("__");
        figment = figment
            .merge(Layer {
                inner: flat_env,
                naming: Naming::FlatEnv,
            })
            .merge(Layer {
                inner: section_env,
                naming: Naming::SectionEnv,
            });
        let flags: [(&str, Option<String>); 4] = [
            (
                "data_dir",
                overrides
                    .data_dir
                    .as_ref()
                    .map(|d| d.to_string_lossy().into_owned()),
            ),
            ("http.listen", overrides.listen.clone()),
            ("store.database_url", overrides.database_url.clone()),
            ("edition", overrides.edition.clone()),
        ];
        for (path, value) in flags {
            if let Some(value) = value {
                figment = figment.merge(Layer {
                    inner: Serialized::default(path, value),
                    naming: Naming::Flag,
                });
            }
        }
        Ok(figment)
    }

    /// The edition's preset values that an explicit setting replaced: `(key, value in
    /// effect, where it came from)`, logged at start-up.
    pub fn preset_overrides(&self) -> Vec<(String, String, String)> {
        let Ok(shown) = toml::Value::try_from(self) else {
            return Vec::new();
        };
        edition_preset(self.edition)
            .into_iter()
            .filter_map(|(key, _)| {
                let origin = self.origins.get(key)?;
                if origin.ends_with("edition preset") {
                    return None;
                }
                let value = key
                    .split('.')
                    .try_fold(&shown, |v, part| v.get(part))
                    .map(ToString::to_string)
                    .unwrap_or_default();
                Some((key.to_owned(), value, origin.clone()))
            })
            .collect()
    }

    /// Each section's own checks, then those that span sections.
    fn check(&self) -> anyhow::Result<()> {
        self.http.http_config()?;
        self.tls.check()?;
        self.store.check()?;
        self.auth.check()?;
        self.network.check()?;
        self.sync.check()?;
        self.attachments.check()?;
        self.storage.check()?;
        self.retention.check()?;
        self.backup.check()?;
        self.export.check()?;
        let explicit = |key: &str| {
            self.origins
                .get(key)
                .is_some_and(|o| o != "default" && !o.ends_with("edition preset"))
        };
        if self.edition == Edition::ZeroSync
            && self.network.reference_policy == ceneca_service::settings::ReferencePolicy::Off
            && explicit("network.reference_policy")
        {
            bail!(
                "network.reference_policy: the zero-sync edition always refuses references \
                 outside the network; remove the setting or set it to \"reject\""
            );
        }
        let internal = self.network.internal_hosts()?;
        self.store.check_destination(self.edition, &internal)?;
        self.vectors.check(self.edition, &internal)?;
        Ok(())
    }

    /// Where outbound connections may go: only inside the network in zero-sync.
    pub fn egress(&self) -> anyhow::Result<ceneca_egress::Egress> {
        Ok(match self.edition {
            Edition::ZeroSync => ceneca_egress::Egress::internal_only(std::sync::Arc::new(
                self.network.internal_hosts()?,
            )),
            Edition::Enterprise => ceneca_egress::Egress::unrestricted(),
        })
    }

    /// The parsed `tls.client_accounts`: common name → lower-cased e-mail.
    pub fn client_certificate_accounts(
        &self,
    ) -> anyhow::Result<std::collections::HashMap<String, String>> {
        Ok(self.tls.client_certificate_accounts()?)
    }

    /// The store URL: PostgreSQL if configured, else the SQLite file in the data folder.
    pub fn store_url(&self) -> String {
        self.store.url(&self.data_dir)
    }

    /// Where backups go: `backup.directory`, or `<data_dir>/backups`.
    pub fn backup_dir(&self) -> PathBuf {
        if self.backup.directory.is_empty() {
            self.data_dir.join("backups")
        } else {
            PathBuf::from(&self.backup.directory)
        }
    }

    pub fn is_embedded(&self) -> bool {
        self.store.is_embedded()
    }

    pub fn store_options(&self) -> anyhow::Result<ceneca_store::StoreOptions> {
        Ok(self.store.options(&self.data_dir, self.egress()?))
    }

    /// The configuration as `ceneca config show` prints it: secrets masked, the database
    /// password redacted.
    pub fn masked(&self) -> Self {
        let mut shown = self.clone();
        shown.encryption.key = mask(&self.encryption.key).to_owned();
        shown.vectors.qdrant_api_key = mask(&self.vectors.qdrant_api_key).to_owned();
        shown.store.database_url = redact_url(&self.store.database_url);
        shown.vectors.qdrant_url = redact_url(&self.vectors.qdrant_url);
        shown
    }
}

/// Every leaf of a TOML table as `section.key`.
pub fn leaf_keys(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_keys(&path, v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// Where a layer's value came from, as `config show` prints it.
fn origin_of(metadata: &Metadata, key: &str) -> String {
    if let Some(figment::Source::File(path)) = &metadata.source {
        return path.display().to_string();
    }
    if metadata.name == "environment variable" {
        let parts: Vec<&str> = key.split('.').collect();
        return metadata.interpolate(&Profile::Default, &parts);
    }
    metadata.name.to_string()
}

/// `ceneca config example`: every setting, commented, with its default. A test checks it
/// against [`Config::default`] key by key.
pub const EXAMPLE: &str = include_str!("../../../ceneca.example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    /// Every leaf of a TOML table as `section.key = value`.
    fn leaves(prefix: &str, value: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
        match value {
            toml::Value::Table(table) => {
                for (k, v) in table {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&path, v, out);
                }
            }
            other => out.push((prefix.to_owned(), other.clone())),
        }
    }

    #[test]
    fn the_example_holds_every_default_and_nothing_else() {
        let example: toml::Value = toml::from_str(EXAMPLE).unwrap();
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let (mut in_example, mut in_defaults) = (Vec::new(), Vec::new());
        leaves("", &example, &mut in_example);
        leaves("", &defaults, &mut in_defaults);
        // What an edition's preset changes is shown commented out, with the enterprise
        // value: set in a copied example, it would replace the zero-sync preset.
        let preset: Vec<&str> = edition_preset(Edition::ZeroSync)
            .into_iter()
            .chain(edition_preset(Edition::Enterprise))
            .map(|(k, _)| k)
            .collect();
        for key in &preset {
            let (section, name) = key.split_once('.').unwrap();
            let body = EXAMPLE
                .split(&format!("[{section}]"))
                .nth(1)
                .unwrap_or_else(|| panic!("no [{section}] in the example"));
            assert!(
                body.lines().any(|l| l.starts_with(&format!("# {name} = "))),
                "the example must show {key} commented out"
            );
        }
        in_defaults.retain(|(k, _)| !preset.contains(&k.as_str()));
        for (key, value) in &in_defaults {
            let found = in_example.iter().find(|(k, _)| k == key);
            assert_eq!(
                found.map(|(_, v)| v),
                Some(value),
                "the example must set {key} to its default"
            );
        }
        for (key, _) in &in_example {
            assert!(
                in_defaults.iter().any(|(k, _)| k == key),
                "the example sets {key}, which is not a setting"
            );
        }
        // And it parses strictly, to the defaults.
        let parsed: Config = toml::from_str(EXAMPLE).unwrap();
        assert!(parsed == Config::default());
        // Loaded as a file, it leaves each edition its preset.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ceneca.toml");
        std::fs::write(&file, EXAMPLE).unwrap();
        let zero = Config::load(
            Some(&file),
            &Overrides {
                edition: Some("zero-sync".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(zero.audit.level, ceneca_domain::audit::AuditLevel::Maximum);
        assert!(zero.encryption.encrypt_content);
        assert!(zero.attachments.encrypt);
        assert!(zero.store.encrypt_database);
        assert_eq!(zero.origins["audit.level"], "zero-sync edition preset");
        assert!(zero.preset_overrides().is_empty());
    }

    #[test]
    fn every_flat_name_is_one_setting_and_every_setting_has_one() {
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let mut settings = Vec::new();
        leaves("", &defaults, &mut settings);
        for (flat, path) in FLAT {
            assert!(
                settings.iter().any(|(k, _)| k == path),
                "{flat} names {path}, which is not a setting"
            );
            assert_eq!(FLAT.iter().filter(|(_, p)| p == path).count(), 1, "{path}");
        }
        for (key, _) in &settings {
            assert!(
                key == "data_dir"
                    || key == "edition"
                    || key.starts_with("sync.")
                    || flat_name(key).is_some(),
                "{key} has no flat name"
            );
        }
        // The settings of the flat configuration and those added since (sections only:
        // `[sync]`), each reachable.
        assert_eq!(settings.len(), 68);
        assert_eq!(FLAT.len() + 4, 68);
    }

    fn load_file(text: &str, edition: &str) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ceneca.toml");
        std::fs::write(&file, text).unwrap();
        Config::load(
            Some(&file),
            &Overrides {
                edition: Some(edition.into()),
                ..Overrides::default()
            },
        )
    }

    #[test]
    fn editions_preset_their_defaults_and_explicit_settings_win_visibly() {
        let enterprise = load_file("", "enterprise").unwrap();
        assert_eq!(
            enterprise.audit.level,
            ceneca_domain::audit::AuditLevel::Enhanced
        );
        assert!(!enterprise.encryption.encrypt_content);
        assert!(!enterprise.attachments.encrypt);
        assert!(!enterprise.store.encrypt_database);
        assert_eq!(
            enterprise.origins["audit.level"],
            "enterprise edition preset"
        );
        assert_eq!(enterprise.origins["http.listen"], "default");
        assert_eq!(enterprise.origins["edition"], "command-line flag");

        let zero = load_file("[audit]\nlevel = \"basic\"\n", "zero-sync").unwrap();
        assert_eq!(zero.audit.level, ceneca_domain::audit::AuditLevel::Basic);
        assert!(zero.encryption.encrypt_content);
        assert!(
            zero.origins["audit.level"].ends_with("ceneca.toml"),
            "{:?}",
            zero.origins
        );
        let overrides = zero.preset_overrides();
        assert_eq!(overrides.len(), 1, "{overrides:?}");
        assert_eq!(overrides[0].0, "audit.level");
        assert_eq!(overrides[0].1, "\"basic\"");
    }

    #[test]
    fn zero_sync_refuses_destinations_and_policies_outside_the_network() {
        for (text, key) in [
            (
                "[network]\nreference_policy = \"off\"\n",
                "network.reference_policy",
            ),
            (
                "[store]\ndatabase_url = \"postgres://u@db.example.com/x\"\n",
                "store.database_url",
            ),
            (
                "[store]\ndatabase_url = \"postgres://u@134744072/x\"\n",
                "store.database_url",
            ),
            (
                "[store]\ndatabase_url = \"postgres://u@localhost/x?host=db.example.com\"\n",
                "store.database_url",
            ),
            (
                "[vectors]\nqdrant_url = \"http://q.example.com:6334\"\n",
                "vectors.qdrant_url",
            ),
            (
                "[network]\ninternal_hosts = [\"169.254.0.0/16\"]\n",
                "network.internal_hosts",
            ),
            (
                "[network]\nexternal_service_domains = [\"10.0.0.1\"]\n",
                "network.external_service_domains",
            ),
        ] {
            let err = format!("{:#}", load_file(text, "zero-sync").unwrap_err());
            assert!(err.contains(key), "{text}: {err}");
        }
        // Inside the network, and the list also as one comma-separated string.
        let ok = load_file(
            "[store]\ndatabase_url = \"postgres://u@db.corp.example.com/x\"\n\
             [network]\ninternal_hosts = \"corp.example.com, 100.64.0.0/10\"\n",
            "zero-sync",
        )
        .unwrap();
        assert_eq!(
            ok.network.internal_hosts,
            ["corp.example.com", "100.64.0.0/10"]
        );
        // A Unix socket never leaves the machine (sqlx needs a host in the URL too).
        load_file(
            "[store]\ndatabase_url = \"postgres://u@localhost/x?host=/run/pg\"\n",
            "zero-sync",
        )
        .unwrap();
        assert!(
            load_file(
                "[store]\ndatabase_url = \"postgres://u@db.example.com/x?host=/run/pg\"\n",
                "zero-sync"
            )
            .is_ok()
        );
        // The enterprise edition connects where it is told.
        assert!(
            load_file(
                "[store]\ndatabase_url = \"postgres://u@db.example.com/x\"\n",
                "enterprise"
            )
            .is_ok()
        );
    }

    #[test]
    fn flat_keys_in_a_file_move_into_their_sections() {
        let file = Layer {
            inner: Toml::string(
                "listen = \"0.0.0.0:1\"\naudit_level = \"enhanced\"\n[store]\npg_max_connections = 7\n",
            ),
            naming: Naming::File,
        };
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(file)
            .extract()
            .unwrap();
        assert_eq!(config.http.listen, "0.0.0.0:1");
        assert_eq!(
            config.audit.level,
            ceneca_domain::audit::AuditLevel::Enhanced
        );
        assert_eq!(config.store.pg_max_connections, 7);
        let twice = Layer {
            inner: Toml::string("listen = \"0.0.0.0:1\"\n[http]\nlisten = \"0.0.0.0:2\"\n"),
            naming: Naming::File,
        };
        let err = Figment::from(twice).extract::<Config>().unwrap_err();
        assert!(err.to_string().contains("same setting"), "{err}");
    }

    #[test]
    fn secrets_are_masked_and_passwords_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:<redacted>@h:5432/db"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        // Attack finding: a password given as a parameter was printed and logged.
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=PW&sslpassword=X"),
            "postgres://u@h/db?sslmode=require&password=<redacted>&sslpassword=<redacted>"
        );
        let mut config = Config::default();
        config.encryption.key = "c2VjcmV0".into();
        config.vectors.qdrant_api_key = "qdrant-sekrit".into();
        config.store.database_url = "postgres://u:pg-sekrit@h/db".into();
        for shown in [
            format!("{config:?}"),
            toml::to_string(&config.masked()).unwrap(),
        ] {
            for secret in ["c2VjcmV0", "qdrant-sekrit", "pg-sekrit"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
    }

    #[test]
    fn checks_name_the_sectioned_key() {
        let mut config = Config {
            edition: Edition::ZeroSync,
            ..Config::default()
        };
        config.vectors.qdrant_url = "https://q.example.com:6334".into();
        let err = config.check().unwrap_err().to_string();
        assert!(err.contains("vectors.qdrant_url"), "{err}");
        let mut config = Config::default();
        config.tls.key_file = "k.pem".into();
        assert!(config.check().unwrap_err().to_string().contains("tls."));
        // Attack findings: a mistyped database URL was served as a SQLite path (with the
        // password in a folder name); credentials in the Qdrant URL were printed as-is.
        for url in ["mysql://u:pw@h/db", "postgre://h/db", "host=h password=pw"] {
            let mut config = Config::default();
            config.store.database_url = url.into();
            let err = config.check().unwrap_err().to_string();
            assert!(err.contains("store.database_url"), "{url}: {err}");
        }
        let mut config = Config::default();
        config.vectors.qdrant_url = "https://user:pass@q.internal:6334".into();
        let err = config.check().unwrap_err().to_string();
        assert!(
            err.contains("credentials") && !err.contains("pass@"),
            "{err}"
        );
    }
}
