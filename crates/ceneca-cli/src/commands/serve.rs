use std::time::Instant;

use anyhow::Context;
use ceneca_node::{CheckedUpstream, Credentials, NodeFiles, Replicator, Upstream};
use ceneca_server::tls::{TlsFiles, serve_tls, server_config};
use ceneca_server::{app, serve};
use ceneca_service::backup::BackupWorker;
use ceneca_service::maintenance::MaintenanceWorker;
use ceneca_service::sync::LocalNode;
use ceneca_service::vectors::VectorIndexer;

use crate::config::{Config, redact_url};

pub async fn run(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let node = local_node(&config).await?;
    let (services, key_source) = super::open_node_services(
        &config,
        node.as_ref().map(|(_, credentials, _)| LocalNode {
            upstream: credentials.upstream.clone(),
            device_id: credentials.device_id,
            user_id: credentials.user_id,
        }),
    )
    .await?;
    let replicator = match node {
        Some((checked, credentials, files)) => {
            let upstream = Upstream::new(&checked, &credentials)?;
            tracing::info!(
                upstream = %checked.base,
                device_id = %credentials.device_id,
                "this server is a local node of its upstream"
            );
            Some(
                Replicator::new(
                    services.clone(),
                    upstream,
                    credentials,
                    files,
                    config.sync.interval(),
                )
                .start()?,
            )
        }
        None => None,
    };
    let services =
        super::with_vectors(&config, services, ceneca_vector::OnOtherDimensions::Refuse).await?;
    // The indexer is a worker of this process: started beside the server, stopped after
    // it, so its lease is released for another node at once.
    let indexer = VectorIndexer::start_claiming(&services)
        .await
        .context("cannot start the vector indexer")?;
    let compaction = tokio::spawn(
        services
            .clone()
            .run_log_compaction(config.sync.log_retention()),
    );
    // Attachment files no row references any more, and uploads a crash cut off.
    let blob_sweep = tokio::spawn(services.clone().run_blob_sweep());
    // Thumbnails of uploaded images, made off the request path.
    let thumbnails = tokio::spawn(services.clone().run_thumbnails());
    // Export jobs' archives past `export.keep_hours`.
    let export_expiry = tokio::spawn(services.clone().run_export_expiry());
    // Retention: on a schedule and when a quota fills. Never on a local node, whose
    // upstream decides what is archived.
    let maintenance = if replicator.is_none() {
        MaintenanceWorker::start(&services)
    } else {
        None
    };
    // Backups on the schedule (`backup.interval_hours`), into `backup.directory`.
    let backups = BackupWorker::start(&services);
    // Account erases a crash cut short are finished now, not at the next maintenance run
    // (the account stays closed meanwhile).
    if replicator.is_none() {
        let services = services.clone();
        tokio::spawn(async move {
            match services.resume_erasures().await {
                Ok(done) if !done.is_empty() => {
                    tracing::info!(count = done.len(), "finished interrupted account erases");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    error = %e,
                    "interrupted account erases could not be finished; the next maintenance run tries again"
                ),
            }
        });
    }
    let engine = services.store().engine();
    let http = config.http.http_config()?;
    let tls = tls_config(&config)?;
    let listener = tokio::net::TcpListener::bind(&config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    let address = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        address = %address,
        data_dir = %config.data_dir.display(),
        engine = engine.as_str(),
        database = %redact_url(&config.store_url()),
        edition = config.edition.as_str(),
        keys = %key_source,
        startup_ms = started.elapsed().as_millis() as u64,
        mutual_tls = !config.tls.client_ca_file.is_empty(),
        "ceneca is listening on {scheme}://{address}"
    );
    for (setting, value, origin) in config.preset_overrides() {
        tracing::warn!(
            setting = %setting,
            value = %value,
            origin = %origin,
            "an explicit setting replaces the {} edition's preset",
            config.edition.as_str()
        );
    }
    let anchored = services.clone();
    let app = app(services.clone(), http);
    if !config.http.metrics_listen.is_empty() {
        let metrics = tokio::net::TcpListener::bind(&config.http.metrics_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (metrics_listen)",
                    config.http.metrics_listen
                )
            })?;
        let address = metrics.local_addr()?;
        let router = ceneca_server::metrics::open_router(services, app.metrics.clone());
        tracing::info!(address = %address, "metrics are served on http://{address}/metrics");
        tokio::spawn(async move {
            if let Err(e) = serve(metrics, router, shutdown_signal()).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    // Change streams never end on their own: told at the signal, they end before the
    // drain instead of holding it for its whole grace period.
    let stopping = app.stopping.clone();
    let stop = async move {
        shutdown_signal().await;
        let _ = stopping.send(true);
    };
    match tls {
        Some(tls) => serve_tls(listener.into_std()?, app.router, tls, stop).await?,
        None => serve(listener, app.router, stop).await?,
    }
    if let Some(replicator) = replicator {
        replicator.abort();
    }
    compaction.abort();
    blob_sweep.abort();
    thumbnails.abort();
    export_expiry.abort();
    if let Some(maintenance) = maintenance {
        maintenance.shutdown().await;
    }
    if let Some(backups) = backups {
        backups.shutdown().await;
    }
    if let Some(indexer) = indexer {
        indexer.shutdown().await;
    }
    // Anchor the last appends now rather than within the head file's delay.
    if let Err(e) = anchored.flush_audit_head() {
        tracing::warn!(error = %e, "the audit head file was not written");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The enrolment of this data folder when `sync.upstream_url` is set: refused when the
/// upstream breaks the edition's or the network's rules, when the folder is not enrolled,
/// or when it was enrolled with another upstream.
async fn local_node(
    config: &Config,
) -> anyhow::Result<Option<(CheckedUpstream, Credentials, NodeFiles)>> {
    if config.sync.upstream_url.is_empty() {
        return Ok(None);
    }
    let checked = super::check_upstream(config, &config.sync.upstream_url).await?;
    let files = NodeFiles::in_data_dir(&config.data_dir);
    let (keys, _) = crate::keys::load(config)?;
    let credentials = files.load_credentials(&keys)?;
    if credentials.upstream != checked.base {
        anyhow::bail!(
            "sync.upstream_url is {}, but this data folder is enrolled with {}: enrol it with \
             the new upstream (`ceneca device enroll --upstream {} --email E`)",
            checked.base,
            credentials.upstream,
            checked.base
        );
    }
    Ok(Some((checked, credentials, files)))
}

fn tls_config(config: &Config) -> anyhow::Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
    if !config.tls.enabled() {
        return Ok(None);
    }
    let read = |path: &str| std::fs::read(path).with_context(|| format!("cannot read {path}"));
    let files = TlsFiles {
        cert_chain: read(&config.tls.cert_file)?,
        key: read(&config.tls.key_file)?,
        client_ca: (!config.tls.client_ca_file.is_empty())
            .then(|| read(&config.tls.client_ca_file))
            .transpose()?,
    };
    Ok(Some(server_config(&files)?))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
