//! `node`: replication between real nodes on loopback, in this process: an upstream and
//! two local nodes (each its own SQLite store, HTTP server and sync loop), enrolled as a
//! device would be.
//!
//! - a message written through node A's API, until node B's API answers it, beside the
//!   same write and read on one server (one round trip each);
//! - one upstream serving 1,000 change-stream subscribers: from a write until each
//!   subscriber has the event, and the server's memory per subscriber (its resident set
//!   before and after the streams opened; the subscribers are in another process).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ceneca_node::{EnrollRequest, NodeFiles, Replicator, Upstream};
use ceneca_service::{ServiceConfig, Services};
use serde_json::{Value as Json, json};

use crate::{Args, Server, Stats, row, server_with_thread, sqlite_store};

/// Writes measured from A to B.
const WRITES: usize = 200;
/// Change-stream subscribers, and accounts they are spread over (a user may hold 32).
const SUBSCRIBERS: usize = 1_000;
const ACCOUNTS: usize = 32;
/// Changes fanned out to all subscribers.
const FAN_OUTS: usize = 20;

pub async fn run(_args: &Args, dir: &Path, ceneca: &Path) -> anyhow::Result<()> {
    a_to_b(dir).await?;
    fan_out(dir, ceneca).await
}

async fn a_to_b(dir: &Path) -> anyhow::Result<()> {
    let upstream_store = sqlite_store(dir, "upstream.db").await?;
    let (upstream, _ws, thread) =
        server_with_thread(upstream_store, ServiceConfig::default()).await?;
    let a = local_node(dir, "a", &upstream.base).await?;
    let b = local_node(dir, "b", &upstream.base).await?;
    for node in [&a, &b] {
        wait_for(node, &format!("/api/v1/threads/{thread}")).await?;
    }
    let (mut replicated, mut local) = (Vec::new(), Vec::new());
    for i in 0..WRITES {
        let body = json!({"role": "user", "content": format!("replicated write {i}")});
        let started = Instant::now();
        let created = a
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/threads/{thread}/messages"),
                Some(body.clone()),
            )
            .await?;
        let id = created["id"].as_str().context("id")?;
        wait_for(&b, &format!("/api/v1/messages/{id}")).await?;
        replicated.push(started.elapsed());

        // The baseline: the same write, read back on one server.
        let started = Instant::now();
        let created = upstream
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/threads/{thread}/messages"),
                Some(body),
            )
            .await?;
        let id = created["id"].as_str().context("id")?;
        upstream
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/messages/{id}"),
                None,
            )
            .await?;
        local.push(started.elapsed());
    }
    println!(
        "{:<48}{:<84}baseline: the same write and read on one server",
        "", "ceneca"
    );
    row(
        "a write on node A, visible on node B",
        &Stats::new(replicated),
        Some(("one server", &Stats::new(local))),
        "p50 < 100 ms",
    );
    Ok(())
}

/// A local node of `upstream` in `dir/name`, enrolled with the bench account, serving
/// its API and running its sync loop; the returned client is logged in to it.
async fn local_node(dir: &Path, name: &str, upstream: &str) -> anyhow::Result<Server> {
    let store = sqlite_store(dir, &format!("node-{name}.db")).await?;
    let keys = Arc::new(crate::bench_key_ring()?);
    let files = NodeFiles::in_data_dir(&dir.join(format!("node-{name}")));
    let checked = ceneca_node::check_upstream(
        upstream,
        ceneca_domain::Edition::Enterprise,
        &Default::default(),
        &[],
    )
    .await?;
    let plain = Services::new(store.clone(), keys.clone(), ServiceConfig::default());
    ceneca_node::enroll(
        &plain,
        &keys,
        &files,
        EnrollRequest {
            upstream: checked.clone(),
            email: crate::BENCH_EMAIL.into(),
            password: crate::BENCH_PASSWORD.into(),
            mfa_code: None,
            device_name: format!("bench node {name}"),
            ca_pem: None,
            client_cert_pem: None,
            client_key_pem: None,
        },
    )
    .await?;
    let credentials = files.load_credentials(&keys)?;
    let config = ServiceConfig {
        local_node: Some(ceneca_service::sync::LocalNode {
            upstream: credentials.upstream.clone(),
            device_id: credentials.device_id,
            user_id: credentials.user_id,
        }),
        ..ServiceConfig::default()
    };
    let services = Services::new(store, keys, config);
    let client = Upstream::new(&checked, &credentials)?;
    Replicator::new(
        services.clone(),
        client,
        credentials,
        files,
        Duration::from_secs(30),
    )
    .start()?;
    Server::start_logged_in(services).await
}

/// Polls `path` until it answers 2xx (every millisecond, at most 30 s).
async fn wait_for(server: &Server, path: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if server.call(reqwest::Method::GET, path, None).await.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "{path} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn fan_out(dir: &Path, ceneca: &Path) -> anyhow::Result<()> {
    let process = crate::ServeProcess::start(ceneca, &dir.join("fan-out")).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(ACCOUNTS)
        .build()?;
    let base = process.base.clone();
    let post = |path: String, token: Option<String>, body: Json| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let mut request = http.post(format!("{base}{path}")).json(&body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            Ok::<Json, anyhow::Error>(response.json().await?)
        }
    };
    // One workspace, its owner and 31 members: every subscriber may read its changes.
    let mut tokens = Vec::new();
    let mut users = Vec::new();
    for i in 0..ACCOUNTS {
        let login = post(
            "/api/v1/auth/register".into(),
            None,
            json!({"email": format!("fan{i}@example.com"), "password": "fan-out password"}),
        )
        .await?;
        tokens.push(login["token"].as_str().context("token")?.to_owned());
        users.push(login["user"]["id"].as_str().context("user id")?.to_owned());
    }
    let owner = tokens[0].clone();
    let ws = post(
        "/api/v1/workspaces".into(),
        Some(owner.clone()),
        json!({"name": "fan-out"}),
    )
    .await?;
    let ws = ws["id"].as_str().context("workspace id")?.to_owned();
    for user in &users[1..] {
        post(
            format!("/api/v1/workspaces/{ws}/members"),
            Some(owner.clone()),
            json!({"user_id": user, "role": "viewer"}),
        )
        .await?;
    }
    let thread = post(
        "/api/v1/threads".into(),
        Some(owner.clone()),
        json!({"workspace_id": ws, "title": "announcements"}),
    )
    .await?;
    let thread = thread["id"].as_str().context("thread id")?.to_owned();

    let idle = process.resident_bytes()?;
    // Each subscriber reads its stream on its own connection and reports when the event
    // naming a given message arrives.
    let (events, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let opened = Arc::new(tokio::sync::Semaphore::new(0));
    for i in 0..SUBSCRIBERS {
        let token = tokens[i % ACCOUNTS].clone();
        let url = format!("{base}/api/v1/sync/stream");
        let (events, opened) = (events.clone(), opened.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let Ok(mut response) = client.get(url).bearer_auth(token).send().await else {
                return;
            };
            opened.add_permits(1);
            let mut pending = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find("\n\n") {
                    let event: String = pending.drain(..end + 2).collect();
                    if let Some(at) = event.find("\"entity_id\":\"") {
                        let id = &event[at + 13..];
                        let id = id.split('"').next().unwrap_or_default().to_owned();
                        let _ = events.send((id, Instant::now()));
                    }
                }
            }
        });
    }
    drop(events);
    let all_open = tokio::time::timeout(
        Duration::from_secs(60),
        opened.acquire_many(SUBSCRIBERS as u32),
    )
    .await
    .context("the streams did not all open")??;
    all_open.forget();
    // The streams start at the log's end: let them all settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let streaming = process.resident_bytes()?;

    let (mut fan_outs, mut writes) = (Vec::new(), Vec::new());
    for i in 0..FAN_OUTS {
        let started = Instant::now();
        let message = post(
            format!("/api/v1/threads/{thread}/messages"),
            Some(owner.clone()),
            json!({"role": "user", "content": format!("to everyone {i}")}),
        )
        .await?;
        writes.push(started.elapsed());
        let id = message["id"].as_str().context("message id")?.to_owned();
        let mut latencies = Vec::with_capacity(SUBSCRIBERS);
        while latencies.len() < SUBSCRIBERS {
            let (got, at) = tokio::time::timeout(Duration::from_secs(60), arrivals.recv())
                .await
                .context("a subscriber never had the change")?
                .context("the subscribers ended")?;
            if got == id {
                latencies.push(at - started);
            }
        }
        fan_outs.push(Stats::new(latencies).p50());
    }
    println!("{:<48}{:<84}baseline: the write's own answer", "", "ceneca");
    row(
        "fan-out to 1,000 stream subscribers (p50 each)",
        &Stats::new(fan_outs),
        Some(("write", &Stats::new(writes))),
        "p50 < 50 ms",
    );
    println!(
        "server memory per subscriber: {:.1} KiB ({} MiB idle, {} MiB with {SUBSCRIBERS} streams)",
        (streaming.saturating_sub(idle)) as f64 / SUBSCRIBERS as f64 / 1024.0,
        idle / (1024 * 1024),
        streaming / (1024 * 1024)
    );
    Ok(())
}
