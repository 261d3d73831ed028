use std::time::Instant;

use anyhow::Context;
use ceneca_server::tls::{TlsFiles, serve_tls, server_config};
use ceneca_server::{HttpConfig, app, serve};

use crate::config::{Config, redact_url};

pub async fn run(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let (services, key_source) = super::open_services(&config).await?;
    let services = super::with_vectors(&config, services).await?;
    tokio::spawn(services.clone().run_vector_indexer());
    let engine = services.store().engine();
    let http = HttpConfig {
        max_body_bytes: config.max_body_bytes,
        max_batch_body_bytes: config.max_batch_body_bytes,
        rate: ceneca_server::limits::RateConfig {
            per_ip_per_minute: config.rate_limit_per_ip_per_minute,
            per_account_per_minute: config.rate_limit_per_account_per_minute,
            logins_per_ip_per_minute: config.login_attempts_per_ip_per_minute,
            registrations_per_ip_per_hour: config.registrations_per_ip_per_hour,
        },
        cors_origins: config.cors_allowed_origins.clone(),
        admin_networks: config.admin_networks()?,
    };
    let tls = tls_config(&config)?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
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
        mutual_tls = !config.tls_client_ca_file.is_empty(),
        "ceneca is listening on {scheme}://{address}"
    );
    let anchored = services.clone();
    let app = app(services.clone(), http);
    if !config.metrics_listen.is_empty() {
        let metrics = tokio::net::TcpListener::bind(&config.metrics_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (metrics_listen)",
                    config.metrics_listen
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
    match tls {
        Some(tls) => serve_tls(listener.into_std()?, app.router, tls, shutdown_signal()).await?,
        None => serve(listener, app.router, shutdown_signal()).await?,
    }
    // Anchor the last appends now rather than within the head file's delay.
    if let Err(e) = anchored.flush_audit_head() {
        tracing::warn!(error = %e, "the audit head file was not written");
    }
    tracing::info!("stopped");
    Ok(())
}

fn tls_config(config: &Config) -> anyhow::Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
    if config.tls_cert_file.is_empty() {
        return Ok(None);
    }
    let read = |path: &str| std::fs::read(path).with_context(|| format!("cannot read {path}"));
    let files = TlsFiles {
        cert_chain: read(&config.tls_cert_file)?,
        key: read(&config.tls_key_file)?,
        client_ca: (!config.tls_client_ca_file.is_empty())
            .then(|| read(&config.tls_client_ca_file))
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
