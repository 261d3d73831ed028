//! The text suite on PostgreSQL: the same million messages and queries as on SQLite, in a
//! database of their own on the server given (`--text-postgres`), dropped afterwards;
//! beside raw PostgreSQL ranking every match with `ts_rank_cd` as Ceneca did before its
//! window (`ORDER BY rank LIMIT 20` with `ts_headline`, no permission filter).

use std::time::{Duration, Instant};

use anyhow::Context;
use ceneca_domain::new_id;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

use super::{
    ROUNDS_PER_QUERY, VOCABULARY, WORDS_PER_MESSAGE, Zipf, figures, first_answer_holds, push,
    queries, search_path, word,
};
use crate::{Args, server_with_thread};

/// Rows sent to `COPY` at a time.
const COPY_CHUNK: usize = 10_000;

/// A database of the benchmark's own, dropped when done (also when the suite fails).
struct Scratch {
    admin: String,
    name: String,
    url: String,
}

impl Scratch {
    async fn create(admin: &str) -> anyhow::Result<Self> {
        let name = format!("ceneca_bench_text_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(admin)
            .await
            .context("cannot connect to --text-postgres")?;
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        let (base, _) = admin
            .rsplit_once('/')
            .context("--text-postgres must end with /<database>")?;
        Ok(Self {
            admin: admin.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }

    async fn drop_database(&self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&self.admin).await?;
        conn.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await?;
        Ok(())
    }
}

pub async fn run(args: &Args, admin: &str) -> anyhow::Result<()> {
    let scratch = Scratch::create(admin).await?;
    println!(
        "== ceneca bench text — PostgreSQL; data in database {} (dropped afterwards)\n",
        scratch.name
    );
    let result = measure(args, &scratch.url).await;
    scratch.drop_database().await?;
    result
}

async fn measure(args: &Args, url: &str) -> anyhow::Result<()> {
    let n = args.text_messages;
    let store = ceneca_store::open(&ceneca_store::StoreOptions::new(url.to_owned())).await?;
    store.migrate_up().await?;
    let (server, ws, thread) =
        server_with_thread(store, ceneca_service::ServiceConfig::default()).await?;
    let small_thread = server
        .create(
            "/api/v1/threads",
            json!({"workspace_id": ws, "title": "small"}),
        )
        .await?;
    let mut conn = PgConnection::connect(url).await?;
    let user: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users LIMIT 1")
        .fetch_one(&mut conn)
        .await?;
    // Another tenant's messages share the tables: the permission filter has work to do.
    let (other_user, other_ws, other_thread) = (new_id(), new_id(), new_id());
    conn.execute(
        sqlx::query(
            "INSERT INTO users (id, created_at, updated_at, email, display_name, password_hash)
             VALUES ($1, now(), now(), 'other@example.com', 'other', 'x')",
        )
        .bind(other_user),
    )
    .await?;
    conn.execute(
        sqlx::query(
            "INSERT INTO workspaces (id, created_at, updated_at, name, owner_user_id)
             VALUES ($1, now(), now(), 'other', $2)",
        )
        .bind(other_ws)
        .bind(other_user),
    )
    .await?;
    conn.execute(
        sqlx::query(
            "INSERT INTO threads (id, created_at, updated_at, workspace_id, last_message_at)
             VALUES ($1, now(), now(), $2, now())",
        )
        .bind(other_thread)
        .bind(other_ws),
    )
    .await?;

    println!(
        "loading {n} messages ({WORDS_PER_MESSAGE} words each, Zipf over {VOCABULARY} words; 1 in 10 in another tenant's workspace)…"
    );
    let zipf = Zipf::new(VOCABULARY);
    let words: Vec<String> = (0..VOCABULARY).map(word).collect();
    let mut rng = StdRng::seed_from_u64(42);
    let at = ceneca_store::sqlite::format_time(ceneca_domain::clock::now());
    let small = small_thread.parse::<uuid::Uuid>()?;
    let (thread, ws) = (thread.parse::<uuid::Uuid>()?, ws.parse::<uuid::Uuid>()?);
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let mut csv = String::with_capacity(COPY_CHUNK * 200);
        for i in done..(done + COPY_CHUNK).min(n) {
            let (t, w) = if i % 10 == 9 {
                (other_thread, other_ws)
            } else if i % 1000 == 500 {
                (small, ws)
            } else {
                (thread, ws)
            };
            let content: Vec<&str> = (0..WORDS_PER_MESSAGE)
                .map(|_| words[zipf.sample(&mut rng)].as_str())
                .collect();
            csv.push_str(&format!(
                "{},{at},{at},{t},{w},user,{user},{},24\n",
                new_id(),
                content.join(" ")
            ));
        }
        let mut copy = conn
            .copy_in_raw(
                "COPY messages (id, created_at, updated_at, thread_id, workspace_id, role, author_id, content, token_count) FROM STDIN WITH (FORMAT csv)",
            )
            .await?;
        copy.send(csv.into_bytes()).await?;
        copy.finish().await?;
        done = (done + COPY_CHUNK).min(n);
    }
    conn.execute("VACUUM ANALYZE messages").await?;
    println!(
        "loaded at {:.0} messages/s (COPY with the tsvector trigger and GIN index), then VACUUM ANALYZE\n",
        n as f64 / started.elapsed().as_secs_f64()
    );

    let queries = queries();
    let mut ours: Vec<(&str, Vec<Duration>)> = Vec::new();
    let mut raw: Vec<(&str, Vec<Duration>)> = Vec::new();
    // What Ceneca ran before its window: every match ranked.
    let raw_sql = "SELECT m.id, ts_headline('simple', m.content, q.q, 'MaxWords=24, MinWords=8, MaxFragments=1')
         FROM (SELECT m.id, m.content FROM messages m, tsq q
               WHERE m.search @@ q.q AND ($2::uuid IS NULL OR m.thread_id = $2)
               ORDER BY ts_rank_cd(m.search, q.q) DESC LIMIT 20) m, tsq q";
    for (class, q, in_small) in &queries {
        let thread_filter = in_small.then_some(small);
        let path = search_path(q, thread_filter.map(|t| t.to_string()).as_deref());
        let raw_query = format!("WITH tsq AS (SELECT {} AS q) {raw_sql}", raw_tsquery(q));
        first_answer_holds(&server, &path, q, &ws.to_string()).await?;
        let raw_once = async |conn: &mut PgConnection| {
            sqlx::query(&raw_query)
                .bind(q.trim_matches('"'))
                .bind(thread_filter)
                .fetch_all(conn)
                .await
                .map(|rows| rows.len())
        };
        raw_once(&mut conn).await?;
        for _ in 0..ROUNDS_PER_QUERY {
            let started = Instant::now();
            server.call(reqwest::Method::GET, &path, None).await?;
            push(&mut ours, class, started.elapsed());
            let started = Instant::now();
            let hits = raw_once(&mut conn).await?;
            push(&mut raw, class, started.elapsed());
            std::hint::black_box(hits);
        }
    }
    figures(
        "raw PostgreSQL on the same tables (every match ranked with ts_rank_cd, LIMIT 20 with ts_headline, no permission filter)",
        ours,
        raw,
        n,
    );
    println!(
        "\n  the caller's 2,000 most recent matches are ranked (a phrase: among the caller's \
         10,000 most recent rows with its words); raw PostgreSQL above ranks every match"
    );
    Ok(())
}

/// The query as raw PostgreSQL gets it (its text bound as `$1`): a quoted phrase as a
/// phrase, words as words.
fn raw_tsquery(q: &str) -> &'static str {
    if q.starts_with('"') {
        "phraseto_tsquery('simple', $1)"
    } else {
        "plainto_tsquery('simple', $1)"
    }
}
