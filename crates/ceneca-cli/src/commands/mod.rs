pub mod audit;
pub mod bench;
pub mod certs;
pub mod config;
pub mod keys;
pub mod migrate;
pub mod serve;
pub mod user;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ceneca_service::{ServiceConfig, Services};
use ceneca_store::Store;
use tracing_subscriber::EnvFilter;

use crate::config::Config;

pub fn init_logging(config: &Config) {
    // The embedded vector engine logs its internals at info and warns about features it
    // does not use ("feature flags not initialized"): only its errors by default.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,qdrant_edge=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if config.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Opens the configured store (no migration).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    ceneca_store::open(&config.store_options())
        .await
        .with_context(|| {
            format!(
                "cannot open the database at {}",
                crate::config::redact_url(&config.store_url())
            )
        })
}

pub fn service_config(config: &Config) -> ServiceConfig {
    ServiceConfig {
        edition: config.edition,
        session_lifetime: Duration::from_secs(config.session_lifetime_hours.max(1) * 3600),
        session_idle_timeout: Duration::from_secs(config.session_idle_timeout_minutes * 60),
        max_sessions_per_user: config.max_sessions_per_user,
        device_token_lifetime: Duration::from_secs(config.device_token_lifetime_days * 86_400),
        device_idle_timeout: Duration::from_secs(config.device_idle_timeout_days * 86_400),
        allow_registration: config.allow_registration,
        mfa_required_for_admins: config.mfa_required_for_admins,
        encrypt_content: config.encrypt_content,
        client_certificate_accounts: config.client_certificate_accounts().unwrap_or_default(),
        audit_level: ceneca_domain::audit::AuditLevel::parse(&config.audit_level)
            .unwrap_or_default(),
        ..ServiceConfig::default()
    }
}

/// Adds the vector index to the services: the Qdrant server when `qdrant_url` is set,
/// else the embedded engine under `<data_dir>/vectors`.
pub async fn with_vectors(config: &Config, services: Services) -> anyhow::Result<Services> {
    let index: Arc<dyn ceneca_vector::VectorIndex> = if config.qdrant_url.is_empty() {
        Arc::new(
            ceneca_vector::embedded::EdgeIndex::open(
                config.data_dir.join("vectors"),
                ceneca_vector::embedded::EdgeSettings::default(),
            )
            .context("cannot open the vector index")?,
        )
    } else {
        Arc::new(
            ceneca_vector::server::QdrantIndex::connect(&ceneca_vector::server::QdrantSettings {
                url: config.qdrant_url.clone(),
                api_key: Some(config.qdrant_api_key.clone()),
                collection_prefix: config.qdrant_collection_prefix.clone(),
                timeout: Duration::from_secs(30),
            })
            .context("cannot set up the Qdrant client")?,
        )
    };
    let dims = [
        ("messages", config.vector_dims_messages),
        ("documents", config.vector_dims_documents),
        ("attachments", config.vector_dims_attachments),
    ]
    .into_iter()
    .map(|(c, d)| (c.to_owned(), d))
    .collect();
    services
        .with_vectors(index, dims, config.vector_wal_limit_mb * 1024 * 1024)
        .await
        .context("cannot open the vector collections")
}

/// Opens, migrates and wires the services, the audit chain anchored in
/// `<data_dir>/audit.head`.
pub async fn open_services(config: &Config) -> anyhow::Result<(Services, String)> {
    let store = open_store(config).await?;
    store
        .migrate_up()
        .await
        .context("cannot migrate the database")?;
    let (keys, key_source) = crate::keys::load(config)?;
    let services = Services::new(store, Arc::new(keys), service_config(config))
        .with_audit_head(config.data_dir.join(ceneca_service::audit_head::FILE_NAME))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((services, key_source))
}
