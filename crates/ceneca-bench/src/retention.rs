//! `storage`, retention: archiving 100 idle threads with their messages, attachments and
//! embeddings (`Services::archive_threads`, what a maintenance round does: one
//! transaction that marks the threads, lets go of the files, deletes the embeddings, logs
//! every change for sync, keeps the storage counters and appends the audit entry), beside
//! raw SQLite doing the same three statements on an identical set of threads in the same
//! database, without the change log, counters or audit. The files are deleted after the
//! commit and reported separately.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ceneca_service::ServiceConfig;
use ceneca_wire::maintenance::MaintenanceReport;
use serde_json::json;

use crate::{Server, Stats, row, services_with, sqlite_store};

const THREADS: usize = 100;
const MESSAGES_PER_THREAD: usize = 10;
const EMBEDDINGS_PER_THREAD: usize = 5;
const DIMS: usize = 384;
const ROUNDS: usize = 5;
const LONG_AGO: &str = "2020-01-01T00:00:00.000000Z";

pub async fn run(dir: &Path) -> anyhow::Result<()> {
    let store = sqlite_store(dir, "retention.db").await?;
    let blobs = ceneca_store::FsBlobs::open(dir.join("retention-blobs"))?;
    let config = ServiceConfig {
        user_quota_bytes: 0,
        ..ServiceConfig::default()
    };
    let services = services_with(store, config)?.with_blobs(Arc::new(blobs));
    let server = Server::start(services.clone()).await?;
    let ws = server
        .create("/api/v1/workspaces", json!({"name": "retention"}))
        .await?;
    let raw = rusqlite::Connection::open(dir.join("retention.db"))?;
    ceneca_store::sqlite::register_functions(&raw)?;
    raw.busy_timeout(Duration::from_secs(10))?;
    let (mut ours, mut raws, mut files) = (vec![], vec![], vec![]);
    let mut seq = 0u64;
    for _ in 0..ROUNDS {
        let mine = seed(&server, &ws, &mut seq).await?;
        let theirs = seed(&server, &ws, &mut seq).await?;
        for set in [&mine, &theirs] {
            let ids = quoted(set);
            // Idle, with everything in them: messages, files and embeddings untouched since.
            let messages = format!("SELECT id FROM messages WHERE thread_id IN ({ids})");
            raw.execute_batch(&format!(
                "UPDATE threads SET last_message_at = '{LONG_AGO}', updated_at = '{LONG_AGO}' WHERE id IN ({ids});
                 UPDATE messages SET updated_at = '{LONG_AGO}' WHERE thread_id IN ({ids});
                 UPDATE attachments SET updated_at = '{LONG_AGO}' WHERE message_id IN ({messages});
                 UPDATE embedding_records SET updated_at = '{LONG_AGO}' WHERE source_id IN ({messages});"
            ))?;
        }
        // Files a run deletes are past the sweep's grace (an upload in another process
        // may be about to name a newer one): these were written a moment ago.
        age_files(&dir.join("retention-blobs"))?;
        let threads: Vec<uuid::Uuid> = mine.iter().map(|t| t.parse()).collect::<Result<_, _>>()?;
        let mut report = MaintenanceReport::default();
        let idle_before = time::OffsetDateTime::now_utc() - time::Duration::days(180);
        let archived = services
            .archive_threads(&threads, idle_before, None, &mut report)
            .await?;
        anyhow::ensure!(
            archived == THREADS as u64
                && report.attachment_files_removed == THREADS as u64
                && report.blob_files_deleted == THREADS as u64
                && report.embeddings_removed == (THREADS * EMBEDDINGS_PER_THREAD) as u64,
            "archived {report:?}"
        );
        ours.push(Duration::from_micros(report.database_us));
        files.push(Duration::from_micros(report.files_us));

        let ids = quoted(&theirs);
        let started = Instant::now();
        let tx = raw.unchecked_transaction()?;
        tx.execute_batch(&format!(
            "UPDATE threads SET is_archived = 1, archived_at = '{LONG_AGO}', updated_at = '{LONG_AGO}'
               WHERE id IN ({ids}) AND is_archived = 0 AND pinned = 0 AND deleted_at IS NULL;
             UPDATE attachments SET storage_key = NULL, content_removed_at = '{LONG_AGO}'
               WHERE storage_key IS NOT NULL AND message_id IN (SELECT id FROM messages WHERE thread_id IN ({ids}));
             DELETE FROM embedding_records WHERE collection = 'messages'
               AND source_id IN (SELECT id FROM messages WHERE thread_id IN ({ids}));"
        ))?;
        tx.commit()?;
        raws.push(started.elapsed());
    }
    println!(
        "{:<48}{:<84}baseline: raw SQLite, the same three statements on as many threads",
        format!(
            "retention: archive {THREADS} threads ({} messages, {THREADS} files, {} embeddings)",
            THREADS * MESSAGES_PER_THREAD,
            THREADS * EMBEDDINGS_PER_THREAD
        ),
        "ceneca"
    );
    row(
        "archive 100 threads, database part",
        &Stats::new(ours),
        Some(("raw", &Stats::new(raws))),
        "< 20 ms",
    );
    row(
        "  then delete their 100 files",
        &Stats::new(files),
        None,
        "reported apart",
    );
    Ok(())
}

/// Makes every file under `dir` look written two hours ago.
fn age_files(dir: &Path) -> anyhow::Result<()> {
    let then = std::time::SystemTime::now() - Duration::from_secs(7200);
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            age_files(&path)?;
        } else {
            std::fs::File::options()
                .write(true)
                .open(&path)?
                .set_modified(then)?;
        }
    }
    Ok(())
}

fn quoted(ids: &[String]) -> String {
    ids.iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `THREADS` threads with their messages, one attachment with a file of its own, and
/// embeddings, made through the API; their ids.
async fn seed(server: &Server, ws: &str, seq: &mut u64) -> anyhow::Result<Vec<String>> {
    let mut threads = Vec::with_capacity(THREADS);
    for _ in 0..THREADS {
        let thread = server
            .create(
                "/api/v1/threads",
                json!({"workspace_id": ws, "title": "an old thread"}),
            )
            .await?;
        let items: Vec<_> = (0..MESSAGES_PER_THREAD)
            .map(|i| json!({"role": "user", "content": format!("message {i} of an old conversation")}))
            .collect();
        let batch = server
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/threads/{thread}/messages/batch"),
                Some(json!({ "items": items })),
            )
            .await?;
        let messages: Vec<String> = batch["items"]
            .as_array()
            .context("messages")?
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect();
        let attachment = server
            .create(
                "/api/v1/attachments",
                json!({"workspace_id": ws, "message_id": messages[0], "file_name": "old.png"}),
            )
            .await?;
        *seq += 1;
        let mut file = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        file.extend_from_slice(&seq.to_le_bytes());
        file.resize(4096, 7);
        let put = server
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
        anyhow::ensure!(put.status().is_success(), "upload: {}", put.status());
        for (i, message) in messages.iter().take(EMBEDDINGS_PER_THREAD).enumerate() {
            let vector: Vec<f32> = (0..DIMS).map(|d| ((d + i) % 7) as f32 / 7.0).collect();
            server
                .create(
                    "/api/v1/embeddings",
                    json!({"collection": "messages", "source_id": message, "workspace_id": ws,
                           "model": "bench", "dims": DIMS, "vector": vector,
                           "content_hash": format!("{:064x}", i)}),
                )
                .await?;
        }
        threads.push(thread);
    }
    Ok(threads)
}
