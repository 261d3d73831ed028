//! `export`: a user's export (`POST /users/{id}/export`) over HTTP, beside reading the
//! same files; then the erase of that user (`DELETE /users/{id}?erase=true`), beside the
//! same deletion done raw on a copy of the folder (one SQL `DELETE` of the account, whose
//! foreign keys cascade, and the blob files removed).
//!
//! The user has 10,000 messages and 100 attachments of 1 MiB each (100 MiB, incompressible,
//! as photos and PDFs are). The archive is streamed to a sink that counts it; the baseline
//! reads the database file and every blob, as `cat` would, from the page cache both times
//! (the first round warms it, and is left out).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use ceneca_service::ServiceConfig;
use serde_json::json;
use tokio_stream::StreamExt;

use crate::{Stats, row, services_with, sqlite_store, workspace_with_thread};

const MESSAGES: usize = 10_000;
const FILES: usize = 100;
const FILE_BYTES: usize = 1024 * 1024;
const ROUNDS: usize = 5;

pub async fn run(dir: &Path) -> anyhow::Result<()> {
    let store = sqlite_store(dir, "export.db").await?;
    let blobs = ceneca_store::FsBlobs::open(dir.join("blobs"))?;
    let services = services_with(store, ServiceConfig::default())?.with_blobs(Arc::new(blobs));
    let server = crate::Server::start(services).await?;
    let (ws, thread) = workspace_with_thread(&server).await?;
    let mut first = None;
    for batch in 0..MESSAGES / 1000 {
        let items: Vec<_> = (0..1000)
            .map(|i| json!({"role": "user", "content": format!("message {batch}-{i}: what the launch plan says about the deck and its numbers")}))
            .collect();
        let reply = server
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/threads/{thread}/messages/batch"),
                Some(json!({ "items": items })),
            )
            .await?;
        first.get_or_insert(
            reply["items"][0]["id"]
                .as_str()
                .context("message")?
                .to_owned(),
        );
    }
    let message = first.context("no message")?;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for n in 0..FILES {
        let attachment = server
            .create(
                "/api/v1/attachments",
                json!({"workspace_id": ws, "message_id": message, "file_name": format!("scan-{n}.png")}),
            )
            .await?;
        let mut file = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        while file.len() < FILE_BYTES {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            file.extend_from_slice(&state.to_le_bytes());
        }
        let reply = server
            .http
            .put(format!(
                "{}/api/v1/attachments/{attachment}/content",
                server.base
            ))
            .bearer_auth(&server.token)
            .header("content-type", "application/octet-stream")
            .body(file)
            .send()
            .await?;
        anyhow::ensure!(reply.status().is_success(), "upload: {}", reply.status());
    }
    let me = server
        .call(reqwest::Method::GET, "/api/v1/auth/me", None)
        .await?;
    let user = me["id"].as_str().context("user id")?.to_owned();

    let (mut exports, mut reads) = (Vec::new(), Vec::new());
    let mut archive_bytes = 0;
    for round in 0..=ROUNDS {
        let started = Instant::now();
        let reply = server
            .http
            .post(format!("{}/api/v1/users/{user}/export", server.base))
            .bearer_auth(&server.token)
            .send()
            .await?;
        anyhow::ensure!(reply.status().is_success(), "export: {}", reply.status());
        let mut stream = reply.bytes_stream();
        let mut received = 0u64;
        while let Some(piece) = stream.next().await {
            received += piece?.len() as u64;
        }
        let took = started.elapsed();
        archive_bytes = received;

        let started = Instant::now();
        let mut read = 0u64;
        let mut sink = std::io::sink();
        for path in std::iter::once(dir.join("export.db")).chain(walk(&dir.join("blobs"))) {
            let bytes = std::fs::read(&path)?;
            read += bytes.len() as u64;
            sink.write_all(&bytes)?;
        }
        let baseline = started.elapsed();
        anyhow::ensure!(
            read > (FILES * FILE_BYTES) as u64,
            "the baseline read too little"
        );
        if round > 0 {
            exports.push(took);
            reads.push(baseline);
        }
    }
    println!(
        "a user with {MESSAGES} messages and {FILES} files of 1 MiB: archive {:.1} MiB",
        archive_bytes as f64 / (1024.0 * 1024.0)
    );
    row(
        "export (POST /users/{id}/export, streamed)",
        &Stats::new(exports),
        Some(("cat of the db and blobs", &Stats::new(reads))),
        "< 1 s",
    );

    // The erase, once (it is destructive), beside the raw deletion on a copy.
    let copy = dir.join("raw-erase");
    std::fs::create_dir_all(&copy)?;
    let db = copy.join("export.db");
    {
        let source = rusqlite::Connection::open(dir.join("export.db"))?;
        source.execute("VACUUM INTO ?1", [db.to_string_lossy()])?;
    }
    let copied_blobs: Vec<_> = walk(&dir.join("blobs"))
        .into_iter()
        .enumerate()
        .map(|(n, path)| {
            let to = copy.join(format!("blob-{n}"));
            std::fs::copy(&path, &to).map(|_| to)
        })
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let reply = server
        .http
        .delete(format!("{}/api/v1/users/{user}?erase=true", server.base))
        .bearer_auth(&server.token)
        .json(&json!({ "password": crate::BENCH_PASSWORD }))
        .send()
        .await?;
    anyhow::ensure!(reply.status().is_success(), "erase: {}", reply.status());
    let report: serde_json::Value = reply.json().await?;
    let erase = started.elapsed();
    let started = Instant::now();
    {
        let raw = rusqlite::Connection::open(&db)?;
        // What every connection to a Ceneca file registers (the full-text triggers use it).
        ceneca_store::sqlite::register_functions(&raw)?;
        raw.execute_batch("PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL;")?;
        raw.execute("DELETE FROM users WHERE id = ?1", [&user])?;
        for path in &copied_blobs {
            std::fs::remove_file(path)?;
        }
    }
    let raw = started.elapsed();
    std::fs::remove_dir_all(&copy)?;
    println!(
        "erase: {} messages, {} attachments ({:.1} MiB), {} files, {} change-log entries, {} audit entries pseudonymised",
        report["messages_below"],
        report["attachments"],
        report["attachment_bytes"].as_f64().unwrap_or(0.0) / (1024.0 * 1024.0),
        report["files_deleted"],
        report["changes_dropped"],
        report["audit_entries_erased"],
    );
    row(
        "erase (DELETE /users/{id}?erase=true, one run)",
        &Stats::new(vec![erase]),
        Some(("raw DELETE of the account + rm", &Stats::new(vec![raw]))),
        "—",
    );
    Ok(())
}

/// Every file below `dir`.
pub(crate) fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
