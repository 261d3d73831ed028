//! `sync`: what replication costs over HTTP on the embedded default.
//!
//! - pushing 10,000 changes (message creates, as a device back online sends them) in one
//!   `POST /sync/push`, beside the same 10,000 messages through the batch API (two
//!   batches of 5,000: the most one batch takes);
//! - pulling those 10,000 changes in one `GET /sync/pull`, beside listing the same
//!   messages through the list API (pages of 200, its most);
//! - on that log plus 2,000 renames of 50 threads: reading the snapshot beside reading the
//!   whole feed from the start, and compacting the log.

use std::path::Path;
use std::time::Instant;

use ceneca_service::ServiceConfig;
use serde_json::{Value as Json, json};

use crate::{Args, Server, Stats, row, services_with, sqlite_store, workspace_with_thread};

/// Changes per push and per pull.
const CHANGES: usize = 10_000;
/// Rounds of each figure: each round writes 10,000 more messages.
const ROUNDS: usize = 3;

fn content(i: usize) -> String {
    format!("message {i}: the quarterly numbers are in, and the launch moves to Thursday")
}

fn hlc_now() -> u64 {
    let ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    (ms as u64) << 16
}

pub async fn run(_args: &Args, dir: &Path) -> anyhow::Result<()> {
    let store = sqlite_store(dir, "sync.db").await?;
    let services = services_with(store, ServiceConfig::default())?;
    let server = Server::start(services.clone()).await?;
    let (ws, thread) = workspace_with_thread(&server).await?;
    let device = server
        .create(
            "/api/v1/devices",
            json!({"name": "bench laptop", "platform": "desktop"}),
        )
        .await?;
    let (mut pushes, mut batches, mut pulls, mut lists) = (vec![], vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        // Where the feed stands before this round's push.
        let start_cursor = last_cursor(&server).await?;

        let base = hlc_now();
        let changes: Vec<Json> = (0..CHANGES)
            .map(|i| {
                json!({
                    "change_id": uuid::Uuid::now_v7(),
                    "entity": "messages",
                    "entity_id": uuid::Uuid::now_v7(),
                    "operation": "create",
                    "hlc": (base + i as u64).to_string(),
                    "values": {"thread_id": thread, "role": "user", "content": content(round * CHANGES + i)},
                })
            })
            .collect();
        let body = json!({"device_id": device, "changes": changes}).to_string();
        let started = Instant::now();
        let reply = server
            .call_text(reqwest::Method::POST, "/api/v1/sync/push", Some(body))
            .await?;
        pushes.push(started.elapsed());
        let results = reply["results"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        anyhow::ensure!(
            results.len() == CHANGES && results.iter().all(|r| r["outcome"] == "applied"),
            "the push was not applied: {}",
            results.first().unwrap_or(&Json::Null)
        );

        let started = Instant::now();
        let page = server
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/sync/pull?cursor={start_cursor}&limit={CHANGES}"),
                None,
            )
            .await?;
        pulls.push(started.elapsed());
        let pulled = page["changes"].as_array().map(Vec::len).unwrap_or(0);
        anyhow::ensure!(pulled == CHANGES, "pulled {pulled} changes, not {CHANGES}");

        // The baseline: the same messages through the batch API, then listed.
        let started = Instant::now();
        for half in 0..2 {
            let items: Vec<Json> = (0..CHANGES / 2)
                .map(|i| json!({"role": "user", "content": content(round * CHANGES + half * CHANGES / 2 + i)}))
                .collect();
            server
                .call(
                    reqwest::Method::POST,
                    &format!("/api/v1/threads/{thread}/messages/batch"),
                    Some(json!({"items": items})),
                )
                .await?;
        }
        batches.push(started.elapsed());

        let started = Instant::now();
        let mut listed = 0;
        let mut cursor: Option<String> = None;
        while listed < CHANGES {
            let path = match &cursor {
                Some(c) => format!("/api/v1/threads/{thread}/messages?limit=200&cursor={c}"),
                None => format!("/api/v1/threads/{thread}/messages?limit=200"),
            };
            let page = server.call(reqwest::Method::GET, &path, None).await?;
            listed += page["items"].as_array().map(Vec::len).unwrap_or(0);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        lists.push(started.elapsed());
        anyhow::ensure!(listed >= CHANGES, "listed only {listed} messages");
    }
    println!(
        "{:<48}{:<84}baseline: the same messages through the batch and list APIs",
        "", "ceneca"
    );
    row(
        "push 10,000 changes (one POST /sync/push)",
        &Stats::new(pushes),
        Some(("batch", &Stats::new(batches))),
        "< 500 ms",
    );
    row(
        "pull 10,000 changes (one GET /sync/pull)",
        &Stats::new(pulls),
        Some(("list", &Stats::new(lists))),
        "< 200 ms",
    );
    history_figures(&services, &server, &ws).await
}

/// Threads renamed again and again: the history a snapshot and compaction leave out.
const RENAMED_THREADS: usize = 50;
const RENAMES: usize = 40;

/// The snapshot beside reading the whole feed, and compacting the log, on the log the
/// figures above wrote plus 2,000 renames of 50 threads.
async fn history_figures(
    services: &ceneca_service::Services,
    server: &Server,
    ws: &str,
) -> anyhow::Result<()> {
    let mut threads = Vec::new();
    for t in 0..RENAMED_THREADS {
        threads.push(
            server
                .create(
                    "/api/v1/threads",
                    json!({"workspace_id": ws, "title": format!("thread {t}")}),
                )
                .await?,
        );
    }
    for n in 0..RENAMES {
        for thread in &threads {
            server
                .call(
                    reqwest::Method::PATCH,
                    &format!("/api/v1/threads/{thread}"),
                    Some(json!({"title": format!("rename {n}")})),
                )
                .await?;
        }
    }
    let (mut snapshots, mut pulls) = (vec![], vec![]);
    let (mut in_snapshot, mut in_feed) = (0, 0);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        in_snapshot = read_all(server, "/api/v1/sync/snapshot?limit=10000", true).await?;
        snapshots.push(started.elapsed());
        let started = Instant::now();
        in_feed = read_all(server, "/api/v1/sync/pull?cursor=0&limit=10000", false).await?;
        pulls.push(started.elapsed());
    }
    let started = Instant::now();
    let compacted = services
        .compact_change_log(ceneca_domain::clock::now() + std::time::Duration::from_secs(60))
        .await?;
    let compaction = started.elapsed();
    let after = read_all(server, "/api/v1/sync/pull?cursor=0&limit=10000", false).await?;
    anyhow::ensure!(
        in_snapshot < in_feed && after < in_feed,
        "the snapshot ({in_snapshot}) and the compacted feed ({after}) must be smaller \
         than the feed ({in_feed})"
    );
    println!();
    row(
        &format!("snapshot: {in_snapshot} changes (of {in_feed})"),
        &Stats::new(snapshots),
        Some(("pull all", &Stats::new(pulls))),
        "below pull all",
    );
    println!(
        "compacting the log ({} changes looked at, {} dropped): {:.0} ms; the feed from 0 \
         then holds {after} changes (was {in_feed})",
        compacted.examined,
        compacted.dropped,
        compaction.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// Reads a paged feed (`snapshot`: paged by `cursor` with the first page's `as_of`) to
/// its end; how many changes it held.
async fn read_all(server: &Server, first: &str, snapshot: bool) -> anyhow::Result<usize> {
    let mut path = first.to_owned();
    let mut count = 0;
    loop {
        let page = server.call(reqwest::Method::GET, &path, None).await?;
        count += page["changes"].as_array().map(Vec::len).unwrap_or(0);
        if page["has_more"] != true {
            return Ok(count);
        }
        let cursor = page["cursor"].as_str().unwrap_or("0");
        path = if snapshot {
            format!(
                "/api/v1/sync/snapshot?limit=10000&as_of={}&cursor={cursor}",
                page["as_of"].as_str().unwrap_or("0")
            )
        } else {
            format!("/api/v1/sync/pull?cursor={cursor}&limit=10000")
        };
    }
}

/// The newest cursor the caller's feed has reached.
async fn last_cursor(server: &crate::Server) -> anyhow::Result<String> {
    let mut cursor = "0".to_owned();
    loop {
        let page = server
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/sync/pull?cursor={cursor}&limit=10000"),
                None,
            )
            .await?;
        cursor = page["cursor"].as_str().unwrap_or("0").to_owned();
        if page["has_more"] != true {
            return Ok(cursor);
        }
    }
}
