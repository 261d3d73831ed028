//! `storage`: attachment content over HTTP on the embedded default.
//!
//! - uploading a 100 MB file (`PUT /attachments/{id}/content`, streamed from disk by the
//!   client) beside copying the same file with `std::fs::copy` and an fsync (what the
//!   server does: write it once, durably);
//! - downloading it (`GET …/content`, streamed to a file) beside the same copy;
//! - the server's resident memory growth during each (peak resident memory, reset before
//!   each measure): streaming keeps it flat whatever the file's size;
//! - each with files kept as they are, then sealed at rest (`attachments.encrypt`);
//! - storage statistics (`GET /storage/stats`, from counters) beside a GET of one
//!   workspace by id;
//! - retention's archive of 100 threads (`retention.rs`).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ceneca_service::ServiceConfig;
use serde_json::json;
use tokio_stream::StreamExt;

use crate::{Args, Server, Stats, row, services_with, sqlite_store, workspace_with_thread};

const FILE_BYTES: usize = 100 * 1024 * 1024;
const ROUNDS: usize = 3;
const STATS_ROUNDS: usize = 300;

pub async fn run(_args: &Args, dir: &Path) -> anyhow::Result<()> {
    crate::retention::run(dir).await?;
    for encrypt in [false, true] {
        let dir = dir.join(if encrypt { "sealed" } else { "plain" });
        std::fs::create_dir_all(&dir)?;
        measure(&dir, encrypt).await?;
    }
    Ok(())
}

/// The figures with files kept as they are, or sealed (`attachments.encrypt`).
async fn measure(dir: &Path, encrypt: bool) -> anyhow::Result<()> {
    let store = sqlite_store(dir, "storage.db").await?;
    let blobs = ceneca_store::FsBlobs::open(dir.join("blobs"))?;
    let config = ServiceConfig {
        encrypt_attachments: encrypt,
        ..ServiceConfig::default()
    };
    let services = services_with(store, config)?.with_blobs(Arc::new(blobs));
    let server = Server::start(services).await?;
    let (ws, thread) = workspace_with_thread(&server).await?;
    let batch = server
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/threads/{thread}/messages/batch"),
            Some(json!({"items": [{"role": "user", "content": "the deck"}]})),
        )
        .await?;
    let message = batch["items"][0]["id"].as_str().context("message id")?;

    let (mut uploads, mut downloads, mut copies) = (vec![], vec![], vec![]);
    let (mut upload_growth, mut download_growth) = (0u64, 0u64);
    for round in 0..ROUNDS {
        // A new file each round (so no upload is a duplicate), PNG-signed so its type is
        // an allowed one, the rest incompressible.
        let source = dir.join(format!("source-{round}.png"));
        write_file(&source, round as u64)?;

        let copy = dir.join("copy.png");
        let started = Instant::now();
        std::fs::copy(&source, &copy)?;
        std::fs::File::open(&copy)?.sync_all()?;
        copies.push(started.elapsed());
        std::fs::remove_file(&copy)?;

        let attachment = server
            .create(
                "/api/v1/attachments",
                json!({"workspace_id": ws, "message_id": message, "file_name": "deck.png"}),
            )
            .await?;
        let path = format!("{}/api/v1/attachments/{attachment}/content", server.base);

        reset_peak_memory();
        let before = resident_bytes()?;
        let started = Instant::now();
        let file = tokio::fs::File::open(&source).await?;
        let reply = server
            .http
            .put(&path)
            .bearer_auth(&server.token)
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(
                tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024),
            ))
            .send()
            .await?;
        anyhow::ensure!(
            reply.status().is_success(),
            "upload: {} {}",
            reply.status(),
            reply.text().await.unwrap_or_default()
        );
        uploads.push(started.elapsed());
        upload_growth = upload_growth.max(peak_bytes()?.saturating_sub(before));

        reset_peak_memory();
        let before = resident_bytes()?;
        let target = dir.join("downloaded.png");
        let started = Instant::now();
        let reply = server
            .http
            .get(&path)
            .bearer_auth(&server.token)
            .send()
            .await?;
        anyhow::ensure!(reply.status().is_success(), "download: {}", reply.status());
        let mut out = std::fs::File::create(&target)?;
        let mut stream = reply.bytes_stream();
        let mut received = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            received += chunk.len();
            out.write_all(&chunk)?;
        }
        out.sync_all()?;
        downloads.push(started.elapsed());
        download_growth = download_growth.max(peak_bytes()?.saturating_sub(before));
        anyhow::ensure!(received == FILE_BYTES, "downloaded {received} bytes");
        std::fs::remove_file(&target)?;
        std::fs::remove_file(&source)?;
    }
    // Storage statistics (read from counters) beside the cheapest authenticated read of
    // the same workspace, once: the figure the old design took 0.5-1 s for.
    if !encrypt {
        let (mut stats, mut gets) = (vec![], vec![]);
        for _ in 0..STATS_ROUNDS {
            let started = Instant::now();
            server
                .call(
                    reqwest::Method::GET,
                    "/api/v1/storage/stats?scope=user",
                    None,
                )
                .await?;
            stats.push(started.elapsed());
            let started = Instant::now();
            server
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/workspaces/{ws}"),
                    None,
                )
                .await?;
            gets.push(started.elapsed());
        }
        row(
            "storage statistics (GET /storage/stats)",
            &Stats::new(stats),
            Some(("GET ws", &Stats::new(gets))),
            "< 1 ms",
        );
    }
    let mib = FILE_BYTES as f64 / (1024.0 * 1024.0);
    let throughput = |s: &Stats| mib / s.p50().as_secs_f64();
    let (uploads, downloads, copies) = (
        Stats::new(uploads),
        Stats::new(downloads),
        Stats::new(copies),
    );
    let kept = if encrypt {
        "sealed at rest (attachments.encrypt)"
    } else {
        "kept as they are"
    };
    println!(
        "{:<48}{:<84}baseline: std::fs::copy of the same file, then fsync",
        format!("files {kept}"),
        "ceneca"
    );
    row(
        "upload 100 MiB (PUT …/content, streamed)",
        &uploads,
        Some(("copy", &copies)),
        "beside cp",
    );
    row(
        "download 100 MiB (GET …/content, streamed)",
        &downloads,
        Some(("copy", &copies)),
        "beside cp",
    );
    println!(
        "throughput: upload {:.0} MiB/s, download {:.0} MiB/s, copy {:.0} MiB/s",
        throughput(&uploads),
        throughput(&downloads),
        throughput(&copies)
    );
    println!(
        "resident memory growth of the process (server and client) at its peak: upload {:.1} MiB, \
         download {:.1} MiB   target < 20 MB",
        upload_growth as f64 / 1048576.0,
        download_growth as f64 / 1048576.0
    );
    Ok(())
}

/// `FILE_BYTES` of incompressible bytes behind a PNG signature.
fn write_file(path: &Path, seed: u64) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")?;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut written = 16;
    let mut block = vec![0u8; 64 * 1024];
    while written < FILE_BYTES {
        for chunk in block.chunks_mut(8) {
            // xorshift64: fast, and no compressor finds a pattern in it.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let take = block.len().min(FILE_BYTES - written);
        out.write_all(&block[..take])?;
        written += take;
    }
    out.flush()?;
    Ok(())
}

/// Resets the process's peak resident memory (`VmHWM`) to what it holds now.
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    std::thread::sleep(Duration::from_millis(10));
}

fn status_field(name: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .with_context(|| format!("no {name}"))
}

fn resident_bytes() -> anyhow::Result<u64> {
    status_field("VmRSS:")
}

fn peak_bytes() -> anyhow::Result<u64> {
    status_field("VmHWM:")
}
