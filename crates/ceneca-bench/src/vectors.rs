//! The vectors suite: semantic top-10 over 100,000 embeddings of dimension 1536 on the
//! embedded engine, over HTTP and in the engine alone, beside exact brute-force cosine on
//! the same points in the same run; recall@10 against that exact search; and batch upserts
//! of 100 embeddings.
//!
//! The points take the way real ones do: rows in `embedding_records` (loaded raw, so the
//! load is quick), delivered to the index by the SQL outbox and the service's indexer,
//! then indexed (HNSW) by the engine's optimizer.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ceneca_domain::new_id;
use ceneca_vector::embedded::{EdgeIndex, EdgeSettings};
use ceneca_vector::{Hit, Point, Query, VectorIndex, exact, sample};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::{Args, Server, Stats, bulk_load, row, services, sqlite_store};

const COLLECTION: &str = "messages";
/// Held-out queries: timed over HTTP and in the engine.
const QUERIES: usize = 500;
/// Queries whose recall is measured against exact search (and whose exact search is timed).
const RECALL_QUERIES: usize = 100;
const UPSERT_ROUNDS: usize = 30;
const UPSERT_BATCH: usize = 100;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn recall(truth: &[Hit], got: &[Uuid]) -> f64 {
    let truth: HashSet<Uuid> = truth.iter().map(|h| h.id).collect();
    let hit = got.iter().filter(|id| truth.contains(id)).count();
    hit as f64 / truth.len().max(1) as f64
}

fn ids_of(reply: &Json) -> anyhow::Result<Vec<Uuid>> {
    reply["items"]
        .as_array()
        .context("items")?
        .iter()
        .map(|h| Ok(h["id"].as_str().context("id")?.parse()?))
        .collect()
}

pub async fn run(args: &Args, dir: &Path) -> anyhow::Result<()> {
    let index = EdgeIndex::open(dir.join("vectors"), EdgeSettings::default())?;
    let result = measure(args, dir, &index).await;
    // Let go of the engine's files before the data folder is removed.
    index.close();
    result
}

async fn measure(args: &Args, dir: &Path, index: &Arc<EdgeIndex>) -> anyhow::Result<()> {
    let (n, dims) = (args.vectors, args.dims);
    // The upserts replace the vectors of 2 × 30 batches of 100 of these points.
    if n < 2 * UPSERT_ROUNDS * UPSERT_BATCH {
        bail!(
            "--vectors must be at least {} (the upsert figures replace that many)",
            2 * UPSERT_ROUNDS * UPSERT_BATCH
        );
    }
    let store = sqlite_store(dir, "ceneca.db").await?;
    let all_dims: HashMap<String, usize> = ["messages", "documents", "attachments"]
        .into_iter()
        .map(|c| (c.to_owned(), dims))
        .collect();
    let services = services(store.clone())?
        .with_vectors(
            Arc::new(index.clone()),
            all_dims,
            512 * 1024 * 1024,
            ceneca_vector::OnOtherDimensions::Refuse,
        )
        .await?;
    tokio::spawn(services.clone().run_vector_indexer());
    let server = Server::start(services).await?;
    // Nine in ten points in one workspace, one in ten in another: filtered search is
    // measured on the small one.
    let mut workspaces = Vec::new();
    for name in ["large", "small"] {
        let ws = server
            .create("/api/v1/workspaces", json!({"name": name}))
            .await?;
        let thread = server
            .create("/api/v1/threads", json!({"workspace_id": ws, "title": "t"}))
            .await?;
        workspaces.push((ws.parse::<Uuid>()?, thread));
    }
    let (large, small) = (workspaces[0].0, workspaces[1].0);

    let clusters = (n / 100).max(10);
    println!(
        "generating {n} + {QUERIES} vectors of {dims} dimensions around {clusters} centres (spread 0.5: the structure of sentence embeddings)…"
    );
    let mut vectors = sample::clustered(n + QUERIES, dims, clusters, 0.5, 7);
    let queries: Vec<Vec<f32>> = vectors.split_off(n);
    let points: Vec<Point> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, vector)| Point {
            id: new_id(),
            vector,
            workspace_id: if i % 10 == 9 { small } else { large },
            source_id: new_id(),
            kind: "message",
        })
        .collect();

    let conn = rusqlite::Connection::open(dir.join("ceneca.db"))?;
    ceneca_store::sqlite::register_functions(&conn)?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -262144;")?;
    let at = ceneca_store::sqlite::format_time(ceneca_domain::clock::now());
    let threads: HashMap<Uuid, String> = workspaces.iter().cloned().collect();
    bulk_load(
        &conn,
        "INSERT INTO messages (id, created_at, updated_at, thread_id, workspace_id, role, content, token_count, metadata, compressed)
         VALUES (?1, ?2, ?2, ?3, ?4, 'user', 'bench', 1, '{}', 0)",
        n,
        10_000,
        |stmt, i| {
            let p = &points[i];
            stmt.execute(rusqlite::params![
                p.source_id.to_string(),
                at,
                threads[&p.workspace_id],
                p.workspace_id.to_string()
            ])
        },
    )?;
    let started = Instant::now();
    let sql_rate = bulk_load(
        &conn,
        "INSERT INTO embedding_records (id, created_at, updated_at, collection, source_id, workspace_id, model, dims, vector, content_hash)
         VALUES (?1, ?2, ?2, 'messages', ?3, ?4, 'bench', ?5, ?6, ?7)",
        n,
        5_000,
        |stmt, i| {
            let p = &points[i];
            stmt.execute(rusqlite::params![
                p.id.to_string(),
                at,
                p.source_id.to_string(),
                p.workspace_id.to_string(),
                dims as i64,
                blob(&p.vector),
                format!("{i:x}")
            ])
        },
    )?;
    println!(
        "embedding rows written to SQL at {sql_rate:.0}/s (each also queued in the vector outbox by trigger)"
    );
    loop {
        let pending: u64 = store
            .vector_outbox_pending()
            .await?
            .iter()
            .map(|(_, n)| n)
            .sum();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = started.elapsed();
    println!(
        "outbox delivered to the index (durable) {:.1} s after the first row: {:.0} points/s end to end",
        delivered.as_secs_f64(),
        n as f64 / delivered.as_secs_f64()
    );
    let started = Instant::now();
    {
        let index = index.clone();
        tokio::task::spawn_blocking(move || index.optimize_now(COLLECTION)).await??;
    }
    let stats = index.stats(COLLECTION).await?;
    println!(
        "HNSW build (optimizer, 2 cores): {:.1} s; {} points, {} in HNSW segments, {} segments; peak RSS so far {:.0} MiB\n",
        started.elapsed().as_secs_f64(),
        stats.points,
        stats.indexed,
        stats.segments,
        peak_rss_mib()
    );
    if stats.points != n as u64 {
        bail!("the index holds {} points, not {n}", stats.points);
    }

    // Search: over HTTP (unfiltered = the caller's two workspaces; filtered = the small
    // one), in the engine alone, and exact brute force on the same points.
    let bodies: Vec<(String, String)> = queries
        .iter()
        .map(|q| {
            (
                json!({"vector": q, "limit": 10}).to_string(),
                json!({"vector": q, "limit": 10, "workspace_id": small}).to_string(),
            )
        })
        .collect();
    let path = format!("/api/v1/vectors/{COLLECTION}/search");
    let mut http = Vec::new();
    let mut http_filtered = Vec::new();
    let mut engine = Vec::new();
    let mut got = Vec::new();
    let mut got_filtered = Vec::new();
    for (i, (plain, filtered)) in bodies.iter().enumerate() {
        let started = Instant::now();
        let reply = server
            .call_text(reqwest::Method::POST, &path, Some(plain.clone()))
            .await?;
        http.push(started.elapsed());
        let started = Instant::now();
        let reply_filtered = server
            .call_text(reqwest::Method::POST, &path, Some(filtered.clone()))
            .await?;
        http_filtered.push(started.elapsed());
        let query = Query {
            vector: queries[i].clone(),
            limit: 10,
            workspaces: Some(vec![large, small]),
            source_ids: Vec::new(),
            score_threshold: None,
        };
        let started = Instant::now();
        std::hint::black_box(index.search(COLLECTION, query).await?);
        engine.push(started.elapsed());
        if i < RECALL_QUERIES {
            got.push(ids_of(&reply)?);
            got_filtered.push(ids_of(&reply_filtered)?);
        }
    }
    let mut brute = Vec::new();
    let mut brute_filtered = Vec::new();
    let (mut recall_sum, mut recall_filtered_sum) = (0.0, 0.0);
    for (i, q) in queries.iter().take(RECALL_QUERIES).enumerate() {
        let query = Query {
            vector: q.clone(),
            limit: 10,
            workspaces: Some(vec![large, small]),
            source_ids: Vec::new(),
            score_threshold: None,
        };
        let started = Instant::now();
        let truth = exact::top_k(&points, &query);
        brute.push(started.elapsed());
        recall_sum += recall(&truth, &got[i]);
        let query = Query {
            workspaces: Some(vec![small]),
            ..query
        };
        let started = Instant::now();
        let truth = exact::top_k(&points, &query);
        brute_filtered.push(started.elapsed());
        recall_filtered_sum += recall(&truth, &got_filtered[i]);
    }
    let (brute, brute_filtered) = (Stats::new(brute), Stats::new(brute_filtered));
    println!(
        "{:<52}{:<84}baseline: exact brute-force cosine over the same points, same run",
        "",
        format!("ceneca, {n} × {dims}, top 10")
    );
    row(
        "semantic top-10 over HTTP",
        &Stats::new(http),
        Some(("exact", &brute)),
        "p50 < 5 ms",
    );
    row(
        "semantic top-10 in the engine alone",
        &Stats::new(engine),
        Some(("exact", &brute)),
        "",
    );
    row(
        "semantic top-10 over HTTP, one workspace (10%)",
        &Stats::new(http_filtered),
        Some(("exact", &brute_filtered)),
        "",
    );
    println!(
        "recall@10 against exact cosine ({RECALL_QUERIES} held-out queries): {:.3} over both workspaces, {:.3} filtered to one (target ≥ 0.95)\n",
        recall_sum / RECALL_QUERIES as f64,
        recall_filtered_sum / RECALL_QUERIES as f64
    );

    upserts(&server, &conn, index, &points, &queries, dims).await?;
    println!(
        "peak RSS of the benchmark process: {:.0} MiB",
        peak_rss_mib()
    );
    Ok(())
}

/// Batch upserts of 100 embeddings: over HTTP (durable in SQL; and with `wait=true`,
/// applied by the index), beside a raw SQLite insert of the same rows and the engine's
/// own upsert.
async fn upserts(
    server: &Server,
    conn: &rusqlite::Connection,
    index: &Arc<EdgeIndex>,
    points: &[Point],
    queries: &[Vec<f32>],
    dims: usize,
) -> anyhow::Result<()> {
    let path = format!("/api/v1/vectors/{COLLECTION}/points/batch");
    let batch = |round: usize, model: &str| -> String {
        let items: Vec<Json> = (0..UPSERT_BATCH)
            .map(|j| {
                let p = &points[round * UPSERT_BATCH + j];
                json!({
                    "source_id": p.source_id,
                    "workspace_id": p.workspace_id,
                    "vector": queries[(round + j) % queries.len()],
                    "model": model,
                })
            })
            .collect();
        json!({ "points": items }).to_string()
    };
    let mut http = Vec::new();
    let mut http_wait = Vec::new();
    for round in 0..UPSERT_ROUNDS {
        let body = batch(round, "v2");
        let started = Instant::now();
        let reply = server
            .call_text(reqwest::Method::POST, &path, Some(body))
            .await?;
        http.push(started.elapsed());
        if reply["ids"].as_array().map(Vec::len) != Some(UPSERT_BATCH) {
            bail!("upsert did not store every point: {reply}");
        }
        let body = batch(round + UPSERT_ROUNDS, "v2");
        let started = Instant::now();
        let reply = server
            .call_text(
                reqwest::Method::POST,
                &format!("{path}?wait=true"),
                Some(body),
            )
            .await?;
        http_wait.push(started.elapsed());
        if reply["status"] != "completed" {
            bail!("a waited upsert was not applied: {reply}");
        }
    }
    let at = ceneca_store::sqlite::format_time(ceneca_domain::clock::now());
    let mut raw = Vec::new();
    let mut engine = Vec::new();
    for round in 0..UPSERT_ROUNDS {
        let rows = &points[round * UPSERT_BATCH..(round + 1) * UPSERT_BATCH];
        let started = Instant::now();
        let tx = conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO embedding_records (id, created_at, updated_at, collection, source_id, workspace_id, model, dims, vector, content_hash)
                 VALUES (?1, ?2, ?2, 'messages', ?3, ?4, 'raw', ?5, ?6, 'x')",
            )?;
            for p in rows {
                stmt.execute(rusqlite::params![
                    new_id().to_string(),
                    at,
                    p.source_id.to_string(),
                    p.workspace_id.to_string(),
                    dims as i64,
                    blob(&p.vector)
                ])?;
            }
        }
        tx.commit()?;
        raw.push(started.elapsed());
        let fresh: Vec<Point> = rows
            .iter()
            .map(|p| Point {
                id: new_id(),
                ..p.clone()
            })
            .collect();
        let started = Instant::now();
        index.upsert(COLLECTION, fresh).await?;
        engine.push(started.elapsed());
    }
    let raw = Stats::new(raw);
    println!(
        "{:<52}{:<84}baseline: raw SQLite insert of the same 100 rows, one transaction",
        "", "ceneca, 100 embeddings of the dimension above"
    );
    row(
        "batch upsert of 100 over HTTP (durable in SQL)",
        &Stats::new(http),
        Some(("raw", &raw)),
        "< 20 ms",
    );
    row(
        "… with wait=true (applied by the index)",
        &Stats::new(http_wait),
        Some(("raw", &raw)),
        "",
    );
    row(
        "the engine's own upsert of 100 points",
        &Stats::new(engine),
        Some(("raw", &raw)),
        "",
    );
    Ok(())
}
