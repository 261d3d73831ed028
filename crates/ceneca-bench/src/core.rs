//! The core suite: the seed report's database benchmarks beside raw SQLite doing the same
//! work in the same run.
//!
//! - 1000 messages in one batch request over HTTP (durable, full-text indexed, change-logged);
//! - the same 1000 inserts through the store, and through raw SQLite (prepared multi-row
//!   statements, one transaction, same schema and FTS triggers);
//! - listing 50 messages of a thread over HTTP, and the same SELECT on raw SQLite;
//! - creating an entity with relations (a thread in a workspace and project) over HTTP, and
//!   a raw single-row insert transaction;
//! - security hot paths; idle memory and start-up time of a real `ceneca serve` process;
//! - the encrypted embedded database (SQLCipher): the batch insert, the list and the create
//!   above on an encrypted and a plain database side by side, rounds interleaved.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ceneca_domain::validate::fill_defaults;
use ceneca_domain::{Record, Value, model, new_id};
use ceneca_store::{Actor, WriteBatch, WriteOp};
use serde_json::{Value as Json, json};

use super::{
    Args, Server, Stats, bench_key_ring, ms, row, server_with_thread, services, sqlite_store,
    sqlite_store_keyed,
};

const WORDS: &[&str] = &[
    "launch",
    "orbit",
    "vector",
    "storage",
    "latency",
    "tenant",
    "workspace",
    "thread",
    "model",
    "prompt",
    "token",
    "answer",
    "question",
    "embedding",
    "search",
    "secure",
    "local",
    "first",
    "sync",
    "device",
    "audit",
    "policy",
    "cost",
    "usage",
];

fn content(i: usize) -> String {
    (0..24)
        .map(|j| WORDS[(i * 7 + j * 13) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn run(args: &Args, dir: &Path, ceneca: &Path) -> anyhow::Result<()> {
    println!(
        "{} rounds, {} requests, batches of {}",
        args.rounds, args.requests, args.batch
    );
    let store = sqlite_store(dir, "ceneca.db").await?;
    let server = Server::start(services(store.clone())?).await?;
    let ws_id = server
        .create("/api/v1/workspaces", json!({"name": "bench"}))
        .await?;
    let project_id = server
        .create(
            "/api/v1/projects",
            json!({"workspace_id": ws_id, "name": "p"}),
        )
        .await?;
    let thread_id = server
        .create(
            "/api/v1/threads",
            json!({"workspace_id": ws_id, "title": "t"}),
        )
        .await?;

    // 1. Batch of messages over HTTP.
    let mut samples = Vec::new();
    for round in 0..args.rounds {
        let items: Vec<Json> = (0..args.batch)
            .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": content(round * args.batch + i), "token_count": 24}))
            .collect();
        let body = json!({ "items": items });
        let started = Instant::now();
        let reply = server
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/threads/{thread_id}/messages/batch"),
                Some(body),
            )
            .await?;
        samples.push(started.elapsed());
        if reply["items"].as_array().map(Vec::len) != Some(args.batch) {
            bail!("batch did not insert every message");
        }
    }
    let http_batch = Stats::new(samples);

    // 2. The same inserts through the store, on a fresh database like the raw baseline's
    // (the server's database already holds the HTTP rounds' messages).
    let store_path = dir.join("store.db");
    let fresh_store = sqlite_store(dir, "store.db").await?;
    let seed_conn = rusqlite::Connection::open(&store_path)?;
    ceneca_store::sqlite::register_functions(&seed_conn)?;
    let (seed_user, seed_ws, seed_thread) = seed_thread(&seed_conn)?;
    let (user_id, ws_uuid, thread_uuid): (uuid::Uuid, uuid::Uuid, uuid::Uuid) =
        (seed_user.parse()?, seed_ws.parse()?, seed_thread.parse()?);
    let mut samples = Vec::new();
    for round in 0..args.rounds {
        let now = ceneca_domain::clock::now();
        let records: Vec<Record> = (0..args.batch)
            .map(|i| {
                let mut r = Record::new();
                r.set("id", Value::Id(new_id()));
                r.set("created_at", Value::Time(now));
                r.set("updated_at", Value::Time(now));
                r.set("thread_id", Value::Id(thread_uuid));
                r.set("workspace_id", Value::Id(ws_uuid));
                r.set("role", Value::Text("user".into()));
                r.set("author_id", Value::Id(user_id));
                r.set("content", Value::Text(content(round * args.batch + i)));
                r.set("token_count", Value::Int(24));
                fill_defaults(&model::MESSAGES, &mut r, now);
                r
            })
            .collect();
        let batch = WriteBatch::new(Actor {
            user_id: Some(user_id),
            device_id: None,
            replay: None,
        })
        .push(WriteOp::InsertMany {
            entity: &model::MESSAGES,
            records,
        });
        let started = Instant::now();
        fresh_store.apply(batch).await?;
        samples.push(started.elapsed());
    }
    let store_batch = Stats::new(samples);

    // 3. Raw SQLite: same schema, same rows, one prepared statement in one transaction.
    let raw_path = dir.join("raw.db");
    sqlite_store(dir, "raw.db").await?;
    let raw = raw_baseline(&raw_path, args.rounds, args.batch, args.requests)?;

    // 4. List 50 messages of a thread over HTTP.
    let mut samples = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let started = Instant::now();
        let page = server
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/threads/{thread_id}/messages?limit=50"),
                None,
            )
            .await?;
        samples.push(started.elapsed());
        if page["items"].as_array().map(Vec::len) != Some(50) {
            bail!("list returned the wrong number of messages");
        }
    }
    let http_list = Stats::new(samples);

    // 5. Create an entity with relations over HTTP.
    let mut samples = Vec::with_capacity(args.requests);
    for i in 0..args.requests {
        let body = json!({"workspace_id": ws_id, "project_id": project_id, "title": format!("thread {i}")});
        let started = Instant::now();
        server
            .call(reqwest::Method::POST, "/api/v1/threads", Some(body))
            .await?;
        samples.push(started.elapsed());
    }
    let http_create = Stats::new(samples);

    println!("{:<48}{:<84}baseline: raw SQLite, same run", "", "ceneca");
    row(
        &format!("insert {} messages: batch API over HTTP", args.batch),
        &http_batch,
        Some(("raw", &raw.insert)),
        "< 30 ms",
    );
    row(
        &format!("insert {} messages: through the store", args.batch),
        &store_batch,
        Some(("raw", &raw.insert)),
        "< 2x raw",
    );
    row(
        "list 50 messages of a thread over HTTP",
        &http_list,
        Some(("raw", &raw.list)),
        "p50 < 1 ms",
    );
    row(
        "create a thread (workspace, project) over HTTP",
        &http_create,
        Some(("raw", &raw.create)),
        "p50 < 1 ms",
    );
    println!(
        "{:<44} p50 {:>10}   (the full-text index is {:.0}% of raw SQLite's insert time)",
        format!("raw SQLite, {} messages without FTS5", args.batch),
        ms(raw.insert_no_fts.p50()),
        100.0 * (1.0 - raw.insert_no_fts.p50().as_secs_f64() / raw.insert.p50().as_secs_f64())
    );
    println!(
        "\nthroughput: {:.0} messages/s through the batch API, {:.0}/s through the store, {:.0}/s raw",
        args.batch as f64 / http_batch.p50().as_secs_f64(),
        args.batch as f64 / store_batch.p50().as_secs_f64(),
        args.batch as f64 / raw.insert.p50().as_secs_f64()
    );
    println!(
        "(the store and the API also write one change-log row per message and keep the thread's counters)"
    );

    node_cache_figures(&fresh_store, ws_uuid, args.requests).await?;
    security_figures(&bench_key_ring()?, &store, &raw).await?;
    encryption_figures(args, dir).await?;
    if !args.no_process {
        process_figures(dir, ceneca).await?;
    }
    Ok(())
}

/// A local node's read cache (`sync.max_cache_entries`): reading messages by id through
/// the store, each read as a workspace member's (the tenant filter is part of the
/// question), from memory once read, beside the same reads from SQLite.
async fn node_cache_figures(
    store: &Arc<dyn ceneca_store::Store>,
    workspace: uuid::Uuid,
    requests: usize,
) -> anyhow::Result<()> {
    use ceneca_domain::scope::ScopeFilter;
    use ceneca_store::Deleted;
    let mut query = ceneca_store::ListQuery::new(ScopeFilter::All, "id", false, 100);
    query.deleted = Deleted::Exclude;
    let ids: Vec<uuid::Uuid> = store
        .list(&model::MESSAGES, query)
        .await?
        .iter()
        .filter_map(Record::id)
        .collect();
    if ids.is_empty() {
        bail!("no messages to read");
    }
    let member = || ScopeFilter::AnyOf(vec![("workspace_id", vec![workspace])]);
    let cached = ceneca_store::cache::CachedStore::new(store.clone(), 10_000);
    let time = async |from: &dyn ceneca_store::Store| -> anyhow::Result<Stats> {
        let mut samples = Vec::with_capacity(requests);
        for i in 0..requests {
            let id = ids[i % ids.len()];
            let started = Instant::now();
            let row = from
                .get(&model::MESSAGES, id, member(), Deleted::Exclude)
                .await?;
            samples.push(started.elapsed());
            if row.is_none() {
                bail!("a message the member may read was not found");
            }
        }
        Ok(Stats::new(samples))
    };
    let uncached = time(store.as_ref()).await?;
    let warm = time(&cached).await?;
    println!();
    row(
        "read a message by id: node cache, warm",
        &warm,
        Some(("sqlite", &uncached)),
        "faster than SQLite",
    );
    let (hits, misses) = cached.hits_and_misses();
    println!(
        "(node cache: {hits} hits, {misses} misses over {} messages)",
        ids.len()
    );
    Ok(())
}

/// The security issue's targets: secret encryption, the authorization check, the audit
/// append — each beside the bare operation it wraps.
async fn security_figures(
    keys: &ceneca_crypto::KeyRing,
    store: &Arc<dyn ceneca_store::Store>,
    raw: &RawFigures,
) -> anyhow::Result<()> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    const N: u32 = 100_000;
    let secret = b"sk-live-0123456789abcdefghijklmnopqrstuvwxyz";
    let context = b"ai_provider_configs/018f0000-0000-7000-8000-000000000000/api_key/018f0000-0000-7000-8000-000000000001";
    let per_op = |started: Instant| started.elapsed() / N;
    let started = Instant::now();
    let mut last = Vec::new();
    for _ in 0..N {
        last = keys.encrypt(secret, context);
    }
    let encrypt = per_op(started);
    let started = Instant::now();
    for _ in 0..N {
        std::hint::black_box(keys.decrypt(&last, context)?);
    }
    let decrypt = per_op(started);
    let raw_key = aes_gcm::Aes256Gcm::new_from_slice(&[7u8; 32]).expect("32-byte key");
    let nonce = aes_gcm::Nonce::from_slice(&[1u8; 12]);
    let started = Instant::now();
    for _ in 0..N {
        std::hint::black_box(
            raw_key
                .encrypt(
                    nonce,
                    Payload {
                        msg: secret,
                        aad: context,
                    },
                )
                .expect("encrypt"),
        );
    }
    let raw_aes = per_op(started);
    println!(
        "\nencrypt a provider key (AES-256-GCM, key id, bound context)  {:>8.2} µs   decrypt {:>6.2} µs   bare AES-GCM {:>6.2} µs   target < 5 µs",
        encrypt.as_secs_f64() * 1e6,
        decrypt.as_secs_f64() * 1e6,
        raw_aes.as_secs_f64() * 1e6
    );

    // The authorization check: the caller's scope turned into a SQL filter for a write.
    let mut scope = ceneca_domain::scope::Scope {
        user_id: new_id(),
        ..Default::default()
    };
    for i in 0..20u128 {
        scope.workspaces.push((
            uuid::Uuid::from_u128(i),
            ceneca_domain::roles::WorkspaceRole::Editor,
        ));
    }
    let started = Instant::now();
    for _ in 0..N {
        std::hint::black_box(ceneca_domain::scope::scope_filter(
            &model::DOCUMENTS,
            ceneca_domain::scope::Access::Write,
            &scope,
        ));
    }
    let authz = per_op(started);

    // The audit append: one chained entry in its own transaction.
    let chain = ceneca_store::AuditChain {
        key: std::sync::Arc::new(ceneca_domain::audit::ChainKey::new("bench", [7; 32])),
        watcher: None,
    };
    let mut samples = Vec::with_capacity(500);
    for i in 0..500 {
        let mut record = Record::new();
        let now = ceneca_domain::clock::now();
        record.set("id", Value::Id(new_id()));
        record.set("created_at", Value::Time(now));
        record.set("updated_at", Value::Time(now));
        record.set("at", Value::Time(now));
        record.set("action", Value::Text("bench.append".into()));
        record.set("outcome", Value::Text("success".into()));
        record.set("details", Value::Json(json!({ "i": i })));
        fill_defaults(&model::AUDIT_LOG, &mut record, now);
        let started = Instant::now();
        store
            .apply(WriteBatch::new(Actor::default()).push(WriteOp::Audit {
                record,
                chain: chain.clone(),
            }))
            .await?;
        samples.push(started.elapsed());
    }
    let audit = Stats::new(samples);
    println!(
        "authorization check (scope filter, 20 workspaces)             {:>8.2} µs",
        authz.as_secs_f64() * 1e6
    );
    println!(
        "audit append in its own transaction (chained)                 p50 {:>8.3} ms   raw SQLite one-row transaction p50 {:>8.3} ms   ratio {:.2}x",
        audit.p50().as_secs_f64() * 1e3,
        raw.create.p50().as_secs_f64() * 1e3,
        audit.p50().as_secs_f64() / raw.create.p50().as_secs_f64()
    );
    println!(
        "(inside a write, the audit entry shares the write's transaction: its cost is the chained insert, not a commit)"
    );
    Ok(())
}

struct RawFigures {
    insert: Stats,
    insert_no_fts: Stats,
    list: Stats,
    create: Stats,
}

/// A user, a workspace and a thread to insert messages into; returns their ids.
fn seed_thread(conn: &rusqlite::Connection) -> anyhow::Result<(String, String, String)> {
    use rusqlite::params;
    let at = ceneca_store::sqlite::format_time(ceneca_domain::clock::now());
    let (user, ws, thread) = (
        new_id().to_string(),
        new_id().to_string(),
        new_id().to_string(),
    );
    conn.execute(
        "INSERT INTO users (id, created_at, updated_at, email, display_name, password_hash) VALUES (?1, ?2, ?2, ?1 || '@example.com', 'bench', 'x')",
        params![user, at],
    )?;
    conn.execute("INSERT INTO workspaces (id, created_at, updated_at, name, owner_user_id) VALUES (?1, ?2, ?2, 'bench', ?3)", params![ws, at, user])?;
    conn.execute(
        "INSERT INTO threads (id, created_at, updated_at, workspace_id, last_message_at) VALUES (?1, ?2, ?2, ?3, ?2)",
        params![thread, at, ws],
    )?;
    Ok((user, ws, thread))
}

fn raw_baseline(
    path: &Path,
    rounds: usize,
    batch: usize,
    requests: usize,
) -> anyhow::Result<RawFigures> {
    use rusqlite::params;
    let conn = rusqlite::Connection::open(path)?;
    // The same schema as the store's: its full-text triggers call this.
    ceneca_store::sqlite::register_functions(&conn)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -65536; PRAGMA mmap_size = 268435456; PRAGMA temp_store = MEMORY;",
    )?;
    let now = || ceneca_store::sqlite::format_time(ceneca_domain::clock::now());
    let (user, ws, thread) = seed_thread(&conn)?;
    // Multi-row statements, as the store writes them: one row per statement would pay an
    // FTS5 flush per row (see the store's `insert_many`), and a fair baseline is raw
    // SQLite at its best.
    let insert_text = |rows: usize| {
        let values: Vec<String> = (0..rows)
            .map(|r| {
                let p = r * 6;
                format!(
                    "(?{}, ?{}, ?{}, ?{}, ?{}, 'user', ?{}, NULL, NULL, ?{}, 24, NULL, '{{}}', 0, NULL)",
                    p + 1, p + 2, p + 2, p + 3, p + 4, p + 5, p + 6
                )
            })
            .collect();
        format!(
            "INSERT INTO messages (id, created_at, updated_at, thread_id, workspace_id, role, author_id, provider, model, content, token_count, parent_id, metadata, compressed, deleted_at) VALUES {}",
            values.join(", ")
        )
    };
    const ROWS: usize = 64;
    let timed_inserts = |offset: usize| -> anyhow::Result<Vec<Duration>> {
        let mut samples = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let rows: Vec<(String, String)> = (0..batch)
                .map(|i| (new_id().to_string(), content((offset + round) * batch + i)))
                .collect();
            let at = now();
            let started = Instant::now();
            let tx = conn.unchecked_transaction()?;
            for chunk in rows.chunks(ROWS) {
                let mut stmt = tx.prepare_cached(&insert_text(chunk.len()))?;
                let values: Vec<&dyn rusqlite::ToSql> = chunk
                    .iter()
                    .flat_map(|(id, text)| {
                        [id as &dyn rusqlite::ToSql, &at, &thread, &ws, &user, text]
                    })
                    .collect();
                stmt.execute(values.as_slice())?;
            }
            tx.commit()?;
            samples.push(started.elapsed());
        }
        Ok(samples)
    };
    let insert = timed_inserts(0)?;
    // The same rows without the full-text index, to show what FTS5 costs.
    conn.execute_batch("DROP TRIGGER messages_fts_insert")?;
    let insert_no_fts = timed_inserts(rounds)?;
    let mut list = Vec::with_capacity(requests);
    let mut stmt = conn.prepare_cached(
        "SELECT id, created_at, updated_at, thread_id, workspace_id, role, author_id, provider, model, content, token_count, parent_id, metadata, compressed, deleted_at
         FROM messages WHERE thread_id = ?1 AND deleted_at IS NULL ORDER BY created_at, id LIMIT 50",
    )?;
    for _ in 0..requests {
        let started = Instant::now();
        let n = stmt
            .query_map(params![thread], |r| {
                let a: String = r.get(0)?;
                let b: String = r.get(9)?;
                Ok(a.len() + b.len())
            })?
            .count();
        list.push(started.elapsed());
        if n != 50 {
            bail!("raw list returned {n} rows");
        }
    }
    drop(stmt);
    let mut create = Vec::with_capacity(requests);
    for i in 0..requests {
        let id = new_id().to_string();
        let title = format!("thread {i}");
        let started = Instant::now();
        let tx = conn.unchecked_transaction()?;
        tx.prepare_cached("INSERT INTO threads (id, created_at, updated_at, workspace_id, title, last_message_at) VALUES (?1, ?2, ?2, ?3, ?4, ?2)")?
            .execute(params![id, now(), ws, title])?;
        tx.commit()?;
        create.push(started.elapsed());
    }
    Ok(RawFigures {
        insert: Stats::new(insert),
        insert_no_fts: Stats::new(insert_no_fts),
        list: Stats::new(list),
        create: Stats::new(create),
    })
}

/// Starts the real binary twice (fresh folder, then existing folder): start-up time until
/// `/healthz` answers, and resident memory once idle.
async fn process_figures(dir: &Path, exe: &Path) -> anyhow::Result<()> {
    let data = dir.join("serve");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let http = reqwest::Client::new();
    let mut startup = Vec::new();
    let mut rss_kib = 0;
    for run in 0..2 {
        let started = Instant::now();
        let mut child = std::process::Command::new(exe)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(&data)
            .env_remove("CENECA_DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start ceneca serve")?;
        let ready = loop {
            if http
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break started.elapsed();
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                bail!("ceneca serve did not answer within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        startup.push(ready);
        if run == 1 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let status =
                std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
            rss_kib = status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    println!(
        "\nceneca serve start-up until /healthz answers: {} on a fresh folder (creates the database and key), {} on an existing folder (target < 200 ms)",
        ms(startup[0]),
        ms(startup[1])
    );
    if rss_kib > 0 {
        println!(
            "ceneca serve idle resident memory: {:.1} MiB (target < 30 MB)",
            rss_kib as f64 / 1024.0
        );
    }
    Ok(())
}

/// Issue 11's figure: what the encrypted embedded database (SQLCipher) costs on the
/// writes and reads above. Two servers, one on a plain database and one on an encrypted
/// one, do the same work with their rounds interleaved (so a noisy neighbour hits both).
async fn encryption_figures(args: &Args, dir: &Path) -> anyhow::Result<()> {
    let ring = bench_key_ring()?;
    let key = ring
        .database_key(ring.active_key_id())
        .context("database key")?;
    let keys = ceneca_store::DatabaseKeys::new(ring.active_key_id(), key);
    let stores = [
        sqlite_store(dir, "plain.db").await?,
        sqlite_store_keyed(dir, "encrypted.db", Some(keys)).await?,
    ];
    let mut sides = Vec::new();
    for store in &stores {
        sides.push(
            server_with_thread(store.clone(), ceneca_service::ServiceConfig::default()).await?,
        );
    }
    let mut batch = [Vec::new(), Vec::new()];
    let mut store_batch = [Vec::new(), Vec::new()];
    for round in 0..args.rounds {
        for (side, (server, ws, thread)) in sides.iter().enumerate() {
            let items: Vec<Json> = (0..args.batch)
                .map(|i| json!({"role": "user", "content": content(round * args.batch + i), "token_count": 24}))
                .collect();
            let body = json!({ "items": items }).to_string();
            let started = Instant::now();
            server
                .call_text(
                    reqwest::Method::POST,
                    &format!("/api/v1/threads/{thread}/messages/batch"),
                    Some(body),
                )
                .await?;
            batch[side].push(started.elapsed());
            // The same through the store alone: the database's share without HTTP.
            let (ws, thread): (uuid::Uuid, uuid::Uuid) = (ws.parse()?, thread.parse()?);
            let now = ceneca_domain::clock::now();
            let records: Vec<Record> = (0..args.batch)
                .map(|i| {
                    let mut r = Record::new();
                    r.set("id", Value::Id(new_id()));
                    r.set("created_at", Value::Time(now));
                    r.set("updated_at", Value::Time(now));
                    r.set("thread_id", Value::Id(thread));
                    r.set("workspace_id", Value::Id(ws));
                    r.set("role", Value::Text("user".into()));
                    r.set("content", Value::Text(content(round * args.batch + i)));
                    r.set("token_count", Value::Int(24));
                    fill_defaults(&model::MESSAGES, &mut r, now);
                    r
                })
                .collect();
            let write = WriteBatch::new(Actor::default()).push(WriteOp::InsertMany {
                entity: &model::MESSAGES,
                records,
            });
            let started = Instant::now();
            stores[side].apply(write).await?;
            store_batch[side].push(started.elapsed());
        }
    }
    let (mut list, mut create) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for i in 0..args.requests {
        for (side, (server, ws, thread)) in sides.iter().enumerate() {
            let started = Instant::now();
            server
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/threads/{thread}/messages?limit=50"),
                    None,
                )
                .await?;
            list[side].push(started.elapsed());
            let body = json!({"workspace_id": ws, "title": format!("thread {i}")});
            let started = Instant::now();
            server
                .call(reqwest::Method::POST, "/api/v1/threads", Some(body))
                .await?;
            create[side].push(started.elapsed());
        }
    }
    println!(
        "\n{:<48}{:<84}baseline: the same on a plain database, same run",
        "encrypted database (SQLCipher)", ""
    );
    let mut costs = Vec::new();
    for (name, [plain, encrypted]) in [
        (
            format!("insert {} messages: batch API over HTTP", args.batch),
            batch,
        ),
        (
            format!("insert {} messages: through the store", args.batch),
            store_batch,
        ),
        ("list 50 messages of a thread over HTTP".to_owned(), list),
        ("create a thread (workspace) over HTTP".to_owned(), create),
    ] {
        let (plain, encrypted) = (Stats::new(plain), Stats::new(encrypted));
        row(&name, &encrypted, Some(("plain", &plain)), "< 1.15x plain");
        costs.push((
            name,
            100.0 * (encrypted.p50().as_secs_f64() / plain.p50().as_secs_f64() - 1.0),
        ));
    }
    let shown: Vec<String> = costs
        .iter()
        .map(|(name, cost)| format!("{name}: {cost:+.1}%"))
        .collect();
    println!(
        "SQLCipher cost at p50 (target: under 15%): {}",
        shown.join("; ")
    );
    Ok(())
}
