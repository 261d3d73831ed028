//! Configuration, layered: command-line flags > `CENECA_*` environment > `ceneca.toml` >
//! defaults (DESIGN.md §5).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ceneca_domain::Edition;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the embedded database, key file and attachments live.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub listen: String,
    /// `ip:port` of a second listener serving only `GET /metrics`, without authentication,
    /// for an internal scrape network; empty: none (administrators can still read
    /// `/metrics` on `listen`).
    pub metrics_listen: String,
    /// `postgres://...` to run on PostgreSQL; empty for the embedded SQLite database.
    pub database_url: String,
    /// `enterprise` or `zero-sync`.
    pub edition: Edition,
    /// SQLite durability: `normal` (WAL default, survives process crashes) or `full`
    /// (fsync on every commit, survives power loss).
    pub sqlite_synchronous: String,
    pub pg_max_connections: u32,
    pub pg_idle_timeout_secs: u64,
    pub max_body_bytes: usize,
    pub max_batch_body_bytes: usize,
    pub session_lifetime_hours: u64,
    pub session_idle_timeout_minutes: u64,
    pub max_sessions_per_user: usize,
    pub device_token_lifetime_days: u64,
    pub device_idle_timeout_days: u64,
    pub allow_registration: bool,
    /// Base64 of a 32-byte key. Secret: never logged.
    pub encryption_key: String,
    /// A key file (`<id> <base64>` per line, the last line active).
    pub encryption_key_file: String,
    /// `text` or `json` logs.
    pub log_format: String,
    /// `basic` (auth events and writes), `enhanced` (and reads) or `maximum` (and query
    /// hashes and data sources).
    pub audit_level: String,
    /// Requests per minute from one address / by one account; log-ins per minute and
    /// registrations per hour from one address. 0 turns a limit off.
    pub rate_limit_per_ip_per_minute: u32,
    pub rate_limit_per_account_per_minute: u32,
    pub login_attempts_per_ip_per_minute: u32,
    pub registrations_per_ip_per_hour: u32,
    /// Browser origins allowed to call the API; empty turns CORS off.
    pub cors_allowed_origins: Vec<String>,
    /// CIDRs system administrators may work from; empty allows any address.
    pub admin_allowed_networks: Vec<String>,
    /// System administrators must enable MFA before their administrator powers apply.
    pub mfa_required_for_admins: bool,
    /// PEM certificate chain and key: serve HTTPS (with HSTS) instead of HTTP.
    pub tls_cert_file: String,
    pub tls_key_file: String,
    /// PEM CA certificate: require client certificates from it (mutual TLS).
    pub tls_client_ca_file: String,
    /// `"<certificate common name>=<account e-mail>"`: services (the web tier, an agent)
    /// that authenticate by their mutual-TLS client certificate alone.
    pub tls_client_accounts: Vec<String>,
    /// Encrypt message content and document bodies at rest (search then covers titles).
    pub encrypt_content: bool,
    /// Embedding dimensions per vector collection.
    pub vector_dims_messages: usize,
    pub vector_dims_documents: usize,
    pub vector_dims_attachments: usize,
    /// The embedded vector engine's WAL bound (MB): past it a collection is rebuilt.
    pub vector_wal_limit_mb: u64,
    /// `http(s)://host:6334` (gRPC): use this Qdrant server instead of the embedded index.
    pub qdrant_url: String,
    /// The Qdrant server's API key. Secret: never logged.
    pub qdrant_api_key: String,
    /// Prefix of Ceneca's collection names on the Qdrant server.
    pub qdrant_collection_prefix: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./ceneca_data"),
            listen: "127.0.0.1:8787".into(),
            metrics_listen: String::new(),
            database_url: String::new(),
            edition: Edition::Enterprise,
            sqlite_synchronous: "normal".into(),
            pg_max_connections: 20,
            pg_idle_timeout_secs: 30,
            max_body_bytes: 2 * 1024 * 1024,
            max_batch_body_bytes: 64 * 1024 * 1024,
            session_lifetime_hours: 24 * 7,
            session_idle_timeout_minutes: 60,
            max_sessions_per_user: 3,
            device_token_lifetime_days: 90,
            device_idle_timeout_days: 30,
            allow_registration: true,
            encryption_key: String::new(),
            encryption_key_file: String::new(),
            log_format: "text".into(),
            audit_level: "basic".into(),
            rate_limit_per_ip_per_minute: 6000,
            rate_limit_per_account_per_minute: 3000,
            login_attempts_per_ip_per_minute: 30,
            registrations_per_ip_per_hour: 60,
            cors_allowed_origins: Vec::new(),
            admin_allowed_networks: Vec::new(),
            mfa_required_for_admins: true,
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            tls_client_ca_file: String::new(),
            tls_client_accounts: Vec::new(),
            encrypt_content: false,
            vector_dims_messages: 1536,
            vector_dims_documents: 1536,
            vector_dims_attachments: 1536,
            vector_wal_limit_mb: 512,
            qdrant_url: String::new(),
            qdrant_api_key: String::new(),
            qdrant_collection_prefix: "ceneca_".into(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("edition", &self.edition)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .field("pg_max_connections", &self.pg_max_connections)
            .field(
                "encryption_key",
                &if self.encryption_key.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("encryption_key_file", &self.encryption_key_file)
            .field("qdrant_url", &self.qdrant_url)
            .field(
                "qdrant_api_key",
                &if self.qdrant_api_key.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .finish_non_exhaustive()
    }
}

/// A database URL with any password replaced, fit for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:<redacted>{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Flag values that override everything else (only those given).
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edition: Option<String>,
}

impl Config {
    /// Loads the layers. `file` is the `--config` path; otherwise `./ceneca.toml` if present.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    bail!("configuration file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("ceneca.toml")),
        }
        let env = Env::prefixed("CENECA_").filter(|key| {
            // Variables of the test harness and of `user create` are not settings; every
            // other CENECA_ variable must be one, so a typo is an error, not a silent default.
            let key = key.as_str().to_ascii_lowercase();
            !key.starts_with("test_") && !key.starts_with("bench_") && key != "new_user_password"
        });
        let config: Config = figment
            .merge(env)
            .merge(Serialized::defaults(overrides))
            .extract()
            .context("invalid configuration")?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if !matches!(self.sqlite_synchronous.as_str(), "normal" | "full") {
            bail!(
                "sqlite_synchronous must be 'normal' or 'full', not '{}'",
                self.sqlite_synchronous
            );
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bail!(
                "log_format must be 'text' or 'json', not '{}'",
                self.log_format
            );
        }
        if ceneca_domain::audit::AuditLevel::parse(&self.audit_level).is_none() {
            bail!(
                "audit_level must be 'basic', 'enhanced' or 'maximum', not '{}'",
                self.audit_level
            );
        }
        self.admin_networks()?;
        if self.tls_cert_file.is_empty() != self.tls_key_file.is_empty() {
            bail!("tls_cert_file and tls_key_file go together");
        }
        if !self.tls_client_ca_file.is_empty() && self.tls_cert_file.is_empty() {
            bail!("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file");
        }
        let accounts = self.client_certificate_accounts()?;
        if !accounts.is_empty() && self.tls_client_ca_file.is_empty() {
            bail!("tls_client_accounts needs tls_client_ca_file (mutual TLS)");
        }
        for origin in &self.cors_allowed_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.ends_with('/')
            {
                bail!(
                    "cors_allowed_origins: '{origin}' must be an origin such as https://app.example.com"
                );
            }
        }
        if self.max_sessions_per_user == 0 || self.session_idle_timeout_minutes == 0 {
            bail!("max_sessions_per_user and session_idle_timeout_minutes must be at least 1");
        }
        if !(1..=3650).contains(&self.device_token_lifetime_days)
            || !(1..=3650).contains(&self.device_idle_timeout_days)
        {
            bail!("device_token_lifetime_days and device_idle_timeout_days must be from 1 to 3650");
        }
        for (name, dims) in [
            ("vector_dims_messages", self.vector_dims_messages),
            ("vector_dims_documents", self.vector_dims_documents),
            ("vector_dims_attachments", self.vector_dims_attachments),
        ] {
            if !(1..=8192).contains(&dims) {
                bail!("{name} must be between 1 and 8192, not {dims}");
            }
        }
        if !self.qdrant_url.is_empty() {
            if !(self.qdrant_url.starts_with("http://") || self.qdrant_url.starts_with("https://"))
            {
                bail!(
                    "qdrant_url must be http://host:6334 or https://host:6334 (Qdrant's gRPC port), not '{}'",
                    self.qdrant_url
                );
            }
            self.edition
                .check_url(&self.qdrant_url)
                .map_err(|reason| anyhow::anyhow!("qdrant_url: {reason}"))?;
            if !self
                .qdrant_collection_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                bail!("qdrant_collection_prefix may hold only letters, digits, '_' and '-'");
            }
        }
        if !self.metrics_listen.is_empty() {
            if self.metrics_listen.parse::<std::net::SocketAddr>().is_err() {
                bail!(
                    "metrics_listen must be an address and port such as 10.0.0.5:9464, not '{}'",
                    self.metrics_listen
                );
            }
            if self.metrics_listen == self.listen {
                bail!("metrics_listen must differ from listen");
            }
        }
        if self.pg_max_connections == 0 {
            bail!("pg_max_connections must be at least 1");
        }
        Ok(())
    }

    /// The parsed `tls_client_accounts`: common name → lower-cased e-mail.
    pub fn client_certificate_accounts(
        &self,
    ) -> anyhow::Result<std::collections::HashMap<String, String>> {
        let mut out = std::collections::HashMap::new();
        for entry in &self.tls_client_accounts {
            let parsed = entry
                .split_once('=')
                .map(|(name, email)| (name.trim(), email.trim()))
                .filter(|(name, email)| !name.is_empty() && email.contains('@'));
            let Some((name, email)) = parsed else {
                bail!("tls_client_accounts: '{entry}' must be '<common name>=<account e-mail>'");
            };
            if out.insert(name.to_owned(), email.to_lowercase()).is_some() {
                bail!("tls_client_accounts: '{name}' is mapped twice");
            }
        }
        Ok(out)
    }

    /// The parsed `admin_allowed_networks`.
    pub fn admin_networks(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.admin_allowed_networks
            .iter()
            .map(|n| {
                n.parse::<ipnet::IpNet>()
                    .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .with_context(|| {
                        format!("admin_allowed_networks: '{n}' is not a CIDR such as 10.0.0.0/8")
                    })
            })
            .collect()
    }

    /// The store URL: PostgreSQL if configured, else the SQLite file in the data folder.
    pub fn store_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("ceneca.db").display())
        } else {
            self.database_url.clone()
        }
    }

    pub fn is_embedded(&self) -> bool {
        self.database_url.is_empty() || self.database_url.starts_with("sqlite:")
    }

    pub fn store_options(&self) -> ceneca_store::StoreOptions {
        let mut options = ceneca_store::StoreOptions::new(self.store_url());
        options.sqlite_synchronous_full = self.sqlite_synchronous == "full";
        options.pg_max_connections = self.pg_max_connections;
        options.pg_idle_timeout_secs = self.pg_idle_timeout_secs;
        options
    }
}

/// `ceneca config example`: every setting, commented, with its default.
pub const EXAMPLE: &str = r#"# ceneca.toml — every setting with its default. Each can also be set as an environment
# variable CENECA_<NAME> (for example CENECA_DATABASE_URL), and the most common ones as
# flags of `ceneca serve`. Flags win over the environment, which wins over this file.

# Where the embedded SQLite database and the generated key file live.
data_dir = "./ceneca_data"

# Address and port to listen on.
listen = "127.0.0.1:8787"

# A second address serving only GET /metrics (Prometheus text format) with no
# authentication, e.g. "10.0.0.5:9464" on an internal scrape network tenants cannot reach.
# Empty: no such listener; system administrators can still read /metrics on `listen` with
# their log-in session (API and device tokens are refused).
metrics_listen = ""

# Empty: the embedded SQLite database in data_dir. Set postgres://user:pass@host/db to run
# on PostgreSQL (add ?sslmode=require for TLS). Several ceneca nodes may share one database.
database_url = ""

# "enterprise" (devices sync to an on-premise Ceneca) or "zero-sync" (air-gapped: no
# outbound connections, data that references external services is refused).
edition = "enterprise"

# SQLite durability: "normal" survives process crashes (WAL); "full" also survives power
# loss at the cost of an fsync per commit.
sqlite_synchronous = "normal"

# PostgreSQL connection pool.
pg_max_connections = 20
pg_idle_timeout_secs = 30

# Largest request body, and largest batch request body, in bytes.
max_body_bytes = 2097152
max_batch_body_bytes = 67108864

# Log-in sessions: absolute lifetime, inactivity timeout, and how many one user may hold at
# once (a new log-in ends the oldest beyond the limit). Device tokens are not counted.
session_lifetime_hours = 168
session_idle_timeout_minutes = 60
max_sessions_per_user = 3

# Device tokens (sync clients): absolute lifetime and inactivity timeout, in days. A device
# token is revoked when its device is deleted; it never carries administrator powers.
device_token_lifetime_days = 90
device_idle_timeout_days = 30

# Whether anyone may register an account (otherwise: `ceneca user create`).
allow_registration = true

# Encryption key for secrets (provider API keys, MFA secrets): base64 of 32 random bytes,
# e.g. from `ceneca keys generate`. Prefer the environment variable CENECA_ENCRYPTION_KEY
# or a key file to writing it here. With neither, the embedded default generates a key
# file in data_dir once; on PostgreSQL a key must be given, so every node shares it.
encryption_key = ""
encryption_key_file = ""

# "text" or "json" logs. The level comes from RUST_LOG (default: info).
log_format = "text"

# What the tamper-evident audit trail records: "basic" (authentication events and every
# write), "enhanced" (also every read) or "maximum" (also the SHA-256 of each query and the
# tables it touched). `ceneca audit verify` checks the trail's hash chain.
audit_level = "basic"

# Rate limits (answered with 429 and Retry-After); 0 turns one off. They are counted per
# node. Failed log-ins are limited per account regardless: after 5 in a row each attempt
# waits longer (1 s doubling to 15 min), and 100 in an hour lock the account for the hour.
rate_limit_per_ip_per_minute = 6000
rate_limit_per_account_per_minute = 3000
login_attempts_per_ip_per_minute = 30
registrations_per_ip_per_hour = 60

# Browser origins allowed to call the API (CORS), e.g. ["https://app.example.com"]; empty
# turns CORS off.
cors_allowed_origins = []

# Networks system administrators may use their accounts from, e.g. ["10.0.0.0/8"]; empty
# allows any address.
admin_allowed_networks = []

# System administrators must enable TOTP MFA (POST /api/v1/auth/mfa/enroll, then confirm)
# before their administrator powers apply.
mfa_required_for_admins = true

# HTTPS: a PEM certificate chain and its key (`ceneca certs init` makes a private CA and
# these). With tls_client_ca_file, clients must present a certificate from that CA (mutual
# TLS): connections without one are refused during the handshake.
tls_cert_file = ""
tls_key_file = ""
tls_client_ca_file = ""

# Services that authenticate by their client certificate alone (needs tls_client_ca_file):
# "<certificate common name>=<account e-mail>", e.g. ["web-tier=svc-web@corp.example"]. The
# service acts with that account's roles; a bearer token, when sent, takes precedence.
tls_client_accounts = []

# Encrypt message content and document bodies at rest (AES-256-GCM, the key ring above).
# Trade-off: full-text search then finds documents by title only, and messages not at all.
# `ceneca keys rewrap` seals content written before this was turned on.
encrypt_content = false

# Vector search: the embedded engine (Qdrant's, in-process) keeps its index in
# <data_dir>/vectors. Dimensions per collection (1536: text-embedding-3-small; 384: MiniLM);
# changing one needs `ceneca reindex --vectors`. Past vector_wal_limit_mb of engine log (and
# twice the collection's own size), a collection is rebuilt from the database and swapped in.
vector_dims_messages = 1536
vector_dims_documents = 1536
vector_dims_attachments = 1536
vector_wal_limit_mb = 512

# A Qdrant server instead of the embedded engine (several Ceneca nodes, bigger indexes):
# its gRPC address, http://host:6334 or https://host:6334 (the server's certificate is
# checked against the system's roots; SSL_CERT_FILE adds a private CA). Writes reach it
# through the database's outbox, so while it is down nothing is lost. The zero-sync
# edition accepts only internal hosts. Collections are aliases named <prefix><collection>.
qdrant_url = ""
qdrant_api_key = ""
qdrant_collection_prefix = "ceneca_"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_to_the_defaults() {
        let parsed: Config = toml_from(EXAMPLE);
        assert_eq!(parsed.listen, Config::default().listen);
        assert_eq!(parsed.metrics_listen, Config::default().metrics_listen);
        assert_eq!(
            parsed.max_batch_body_bytes,
            Config::default().max_batch_body_bytes
        );
    }

    fn toml_from(text: &str) -> Config {
        Figment::from(Toml::string(text)).extract().unwrap()
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:<redacted>@h:5432/db"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        let config = Config {
            encryption_key: "c2VjcmV0".into(),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("c2VjcmV0"));
        let config = Config {
            qdrant_api_key: "qdrant-sekrit".into(),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("qdrant-sekrit"));
    }

    #[test]
    fn a_qdrant_url_must_be_grpc_and_internal_in_zero_sync() {
        let with = |url: &str, edition: Edition| Config {
            qdrant_url: url.into(),
            edition,
            ..Config::default()
        };
        assert!(
            with("http://qdrant.internal:6334", Edition::ZeroSync)
                .check()
                .is_ok()
        );
        assert!(
            with("https://q.example.com:6334", Edition::Enterprise)
                .check()
                .is_ok()
        );
        let external = with("https://q.example.com:6334", Edition::ZeroSync)
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            external.contains("qdrant_url") && external.contains("zero-sync"),
            "{external}"
        );
        let scheme = with("qdrant.internal:6334", Edition::Enterprise)
            .check()
            .unwrap_err()
            .to_string();
        assert!(scheme.contains("http://host:6334"), "{scheme}");
        let prefix = Config {
            qdrant_collection_prefix: "bad prefix/".into(),
            ..with("http://10.0.0.5:6334", Edition::Enterprise)
        };
        assert!(prefix.check().is_err());
    }
}
