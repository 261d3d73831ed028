pub mod audit;
pub mod backup;
pub mod certs;
pub mod config;
pub mod db;
pub mod device;
pub mod export;
pub mod keys;
pub mod maintenance;
pub mod migrate;
pub mod reindex;
pub mod serve;
pub mod storage;
pub mod user;

use std::sync::Arc;

use anyhow::Context;
use ceneca_service::{ServiceConfig, Services};
use ceneca_store::Store;
use tracing_subscriber::EnvFilter;

use crate::config::Config;

/// A password typed as the first line of standard input after `prompt` (never a flag:
/// flags show in process lists); refused when empty.
pub fn read_password_line(prompt: &str) -> anyhow::Result<String> {
    use std::io::BufRead;
    eprintln!("{prompt} (one line on standard input):");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password given");
    Ok(password)
}

pub fn init_logging(config: &Config) {
    // The embedded vector engine logs its internals at info and warns about features it
    // does not use ("feature flags not initialized"): only its errors by default. So does
    // PostgreSQL's notice of every `CREATE ... IF NOT EXISTS` that finds its object there
    // (a line per migration step, at every start): only its warnings.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,qdrant_edge=error,sqlx::postgres::notice=warn"));
    // Colours only on a terminal: escape codes do not belong in log files, and styling
    // every request's span fields is work too.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = if config.log.format == crate::config::LogFormat::Json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Opens the configured store (no migration). An encrypted embedded database is keyed
/// from the key ring; a file whose encryption does not match the configuration is
/// refused with the store's own message, which names the file and what to do.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let mut options = config.store_options()?;
    if config.is_embedded() && config.store.encrypt_database {
        let (ring, _) = crate::keys::load(config)?;
        options.database_keys = Some(crate::keys::database_keys(&ring));
    }
    match ceneca_store::open(&options).await {
        Ok(store) => Ok(store),
        Err(e @ ceneca_store::StoreError::Encryption(_)) => Err(e.into()),
        Err(e) => Err(anyhow::Error::from(e).context(format!(
            "cannot open the database at {}",
            crate::config::redact_url(&config.store_url())
        ))),
    }
}

pub fn service_config(config: &Config) -> anyhow::Result<ServiceConfig> {
    let mut service = ServiceConfig {
        edition: config.edition,
        encrypt_content: config.encryption.encrypt_content,
        client_certificate_accounts: config.client_certificate_accounts().unwrap_or_default(),
        audit_level: config.audit.level,
        served_over_tls: config.tls.enabled(),
        ..ServiceConfig::default()
    };
    config.auth.apply(&mut service);
    config.network.apply(config.edition, &mut service)?;
    config.dlp.apply(&mut service);
    config.sync.apply(&mut service);
    config.attachments.apply(&mut service);
    config.storage.apply(&mut service);
    config.retention.apply(&mut service);
    config.backup.apply(&mut service);
    config.export.apply(&mut service);
    Ok(service)
}

/// Adds the vector index to the services: the Qdrant server when `vectors.qdrant_url` is set,
/// else the embedded engine under `<data_dir>/vectors`.
pub async fn with_vectors(
    config: &Config,
    services: Services,
    other: ceneca_vector::OnOtherDimensions,
) -> anyhow::Result<Services> {
    let index: Arc<dyn ceneca_vector::VectorIndex> = match config.vectors.qdrant() {
        None => Arc::new(
            ceneca_vector::embedded::EdgeIndex::open(
                config.data_dir.join("vectors"),
                ceneca_vector::embedded::EdgeSettings::default(),
            )
            .context("cannot open the vector index")?,
        ),
        Some(mut qdrant) => {
            // Zero-sync: resolved and checked here, then reached by the checked address.
            qdrant.url = config
                .egress()?
                .pin_url("vectors.qdrant_url", &qdrant.url)
                .await?;
            Arc::new(
                ceneca_vector::server::QdrantIndex::connect(&qdrant)
                    .context("cannot set up the Qdrant client")?,
            )
        }
    };
    services
        .with_vectors(
            index,
            config.vectors.dims(),
            config.vectors.wal_limit_bytes(),
            other,
        )
        .await
        .context("cannot open the vector collections")
}

/// Opens, migrates and wires the services, the audit chain anchored in
/// `<data_dir>/audit.head`.
pub async fn open_services(config: &Config) -> anyhow::Result<(Services, String)> {
    open_node_services(config, None).await
}

/// The upstream named `url`, checked against the edition, the network and
/// `sync.allowed_upstreams`.
pub async fn check_upstream(
    config: &Config,
    url: &str,
) -> anyhow::Result<ceneca_node::CheckedUpstream> {
    Ok(ceneca_node::check_upstream(
        url,
        config.edition,
        &config.network.internal_hosts()?,
        &config.sync.allowed_upstreams,
    )
    .await?)
}

/// [`open_services`], as the local node `node` when it is one.
pub async fn open_node_services(
    config: &Config,
    node: Option<ceneca_service::sync::LocalNode>,
) -> anyhow::Result<(Services, String)> {
    let store = open_store(config).await?;
    store
        .migrate_up()
        .await
        .context("cannot migrate the database")?;
    // A local node is the one writer of its embedded database: hot single-row reads may
    // be answered from memory, every write ending what was kept.
    let store: Arc<dyn ceneca_store::Store> = match (&node, config.sync.max_cache_entries) {
        (Some(_), entries) if entries > 0 && store.engine() == ceneca_store::Engine::Sqlite => {
            Arc::new(ceneca_store::cache::CachedStore::new(store, entries))
        }
        _ => store,
    };
    let (keys, key_source) = crate::keys::load(config)?;
    let mut service = service_config(config)?;
    service.local_node = node;
    // Attachment content: a folder of the data folder (a shared volume when several
    // nodes serve one PostgreSQL database).
    let blobs = ceneca_store::FsBlobs::open(config.data_dir.join("blobs")).with_context(|| {
        format!(
            "cannot open the attachment folder {}",
            config.data_dir.join("blobs").display()
        )
    })?;
    let services = Services::new(store, Arc::new(keys), service)
        .with_blobs(Arc::new(blobs))
        .with_backups(config.backup_dir(), config.data_dir.clone())
        .with_export_jobs(config.data_dir.join("exports"))
        .with_context(|| {
            format!(
                "cannot open the export folder {}",
                config.data_dir.join("exports").display()
            )
        })?
        .with_audit_head(config.data_dir.join(ceneca_service::audit_head::FILE_NAME))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((services, key_source))
}
