//! The `[store]` section of `ceneca.toml`: which database, and how to use it.

use ceneca_domain::settings::InvalidSetting;
use serde::{Deserialize, Serialize};

use crate::StoreOptions;

/// SQLite's durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// WAL with `synchronous=NORMAL`: survives process crashes.
    #[default]
    Normal,
    /// `synchronous=FULL`: an fsync per commit, survives power loss too.
    Full,
}

impl SqliteSynchronous {
    pub fn as_str(self) -> &'static str {
        match self {
            SqliteSynchronous::Normal => "NORMAL",
            SqliteSynchronous::Full => "FULL",
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// `postgres://...` to run on PostgreSQL; empty for the embedded SQLite database in
    /// the data folder.
    pub database_url: String,
    pub sqlite_synchronous: SqliteSynchronous,
    pub pg_max_connections: u32,
    pub pg_idle_timeout_secs: u64,
    /// Encrypt the embedded database file (SQLCipher) with a key derived from the key
    /// ring. An existing database is converted with `ceneca db encrypt`. PostgreSQL
    /// ignores it (encrypt its storage with the server's own means).
    pub encrypt_database: bool,
    /// How long one search may run on PostgreSQL before it is stopped and answered 422
    /// on `q` (a query of many common words that seldom stand together, on much data).
    pub pg_search_time_limit_ms: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            database_url: String::new(),
            sqlite_synchronous: SqliteSynchronous::Normal,
            pg_max_connections: 20,
            pg_idle_timeout_secs: 30,
            encrypt_database: false,
            pg_search_time_limit_ms: crate::search::SEARCH_TIME_LIMIT.as_millis() as u64,
        }
    }
}

impl StoreSettings {
    pub fn check(&self) -> Result<(), InvalidSetting> {
        let url = self.database_url.as_str();
        if !(url.is_empty()
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite://"))
        {
            // Anything else used to be taken as a SQLite file path: a typo in a PostgreSQL
            // URL then served an empty database from a folder named after the URL.
            return Err(InvalidSetting::new(
                "store.database_url",
                "must be postgres://… (or postgresql://…), sqlite://PATH, or empty for the embedded database",
            ));
        }
        if !(100..=3_600_000).contains(&self.pg_search_time_limit_ms) {
            return Err(InvalidSetting::new(
                "store.pg_search_time_limit_ms",
                "must be from 100 (a tenth of a second) to 3600000 (an hour)",
            ));
        }
        if self.pg_max_connections == 0 {
            return Err(InvalidSetting::new(
                "store.pg_max_connections",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// Whether the database is the embedded SQLite one.
    pub fn is_embedded(&self) -> bool {
        self.database_url.is_empty() || self.database_url.starts_with("sqlite:")
    }

    /// The store URL: PostgreSQL if configured, else `ceneca.db` in `data_dir`.
    pub fn url(&self, data_dir: &std::path::Path) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", data_dir.join("ceneca.db").display())
        } else {
            self.database_url.clone()
        }
    }

    /// What [`crate::open`] takes; `egress` says where a database server may be. The
    /// key of an encrypted embedded database is added by the caller, which holds the key
    /// ring ([`StoreOptions::database_keys`]).
    pub fn options(
        &self,
        data_dir: &std::path::Path,
        egress: ceneca_egress::Egress,
    ) -> StoreOptions {
        StoreOptions {
            url: self.url(data_dir),
            sqlite_synchronous: self.sqlite_synchronous,
            pg_max_connections: self.pg_max_connections,
            pg_idle_timeout_secs: self.pg_idle_timeout_secs,
            egress,
            database_keys: None,
            pg_search_time_limit: std::time::Duration::from_millis(self.pg_search_time_limit_ms),
        }
    }

    /// In the zero-sync edition, a PostgreSQL server must be inside the network: its host
    /// as written (and as `?host=` overrides it) is checked here, at start-up, before any
    /// DNS; the address it resolves to is checked again when connecting.
    pub fn check_destination(
        &self,
        edition: ceneca_domain::Edition,
        internal: &ceneca_domain::network::InternalHosts,
    ) -> Result<(), InvalidSetting> {
        use std::str::FromStr;
        if self.is_embedded() || edition == ceneca_domain::Edition::Enterprise {
            return Ok(());
        }
        let options = sqlx::postgres::PgConnectOptions::from_str(&self.database_url)
            .map_err(|e| InvalidSetting::new("store.database_url", e.to_string()))?;
        let host = options.get_host();
        // A Unix socket (`?host=/run/postgresql`) never leaves the machine.
        if options.get_socket().is_some() || host.starts_with('/') {
            return Ok(());
        }
        match ceneca_domain::network::parse_host(host) {
            Ok(parsed) if internal.is_internal(&parsed) => Ok(()),
            parsed => {
                // As a client reads it: `134744072` is 8.8.8.8.
                let read = match parsed {
                    Ok(parsed) if parsed.to_string() != host => format!(" ({parsed})"),
                    _ => String::new(),
                };
                Err(InvalidSetting::new(
                    "store.database_url",
                    format!(
                        "the zero-sync edition connects only inside the network: '{host}'{read} is not an internal host"
                    ),
                ))
            }
        }
    }
}
