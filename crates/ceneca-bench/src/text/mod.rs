//! The text suite: full-text search over a million messages, top 20 with highlighted
//! snippets, over HTTP — beside raw FTS5 answering the same queries on the same file.
//!
//! Messages are written with a Zipf-distributed vocabulary, as natural language is, so a
//! query's number of matches depends on how common its words are; the figures are given
//! per class of query (common, medium, rare words, two words, a phrase) and over the mix.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ceneca_domain::new_id;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

pub(crate) mod postgres;

use super::{Args, Server, Stats, bulk_load, row, server_with_thread, sqlite_store};

const VOCABULARY: usize = 20_000;
const WORDS_PER_MESSAGE: usize = 24;
const ROUNDS_PER_QUERY: usize = 20;

/// Word `rank` (0 = most common) of a made-up language: syllables from its digits.
fn word(rank: usize) -> String {
    const ONSETS: &[&str] = &[
        "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh", "tr",
        "br", "pl", "gr",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u"];
    let mut n = rank + 100; // at least two syllables
    let mut out = String::new();
    while n > 0 {
        let s = n % 100;
        out.push_str(ONSETS[s / 5]);
        out.push_str(VOWELS[s % 5]);
        n /= 100;
    }
    out
}

/// Zipf(1) over the vocabulary: the cumulative distribution, sampled by binary search.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|r| {
                total += 1.0 / r as f64;
                total
            })
            .collect();
        for c in &mut cdf {
            *c /= total;
        }
        Self { cdf }
    }
    fn sample(&self, rng: &mut StdRng) -> usize {
        let u: f64 = rng.r#gen();
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
    /// The share of messages that contain word `rank` at least once.
    fn message_share(&self, rank: usize) -> f64 {
        let p = self.cdf[rank] - if rank == 0 { 0.0 } else { self.cdf[rank - 1] };
        1.0 - (1.0 - p).powi(WORDS_PER_MESSAGE as i32)
    }
}

/// The benchmark's queries, by class: what a user types, and whether it is confined to the
/// small thread (a thousandth of the messages).
fn queries() -> Vec<(&'static str, String, bool)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for r in [0, 1, 2, 3, 4] {
        out.push(("very common word (~45-90%)", word(r)));
    }
    for r in [20, 25, 30, 35, 40] {
        out.push(("common word (~8% of messages)", word(r)));
    }
    for r in [250, 300, 350, 400, 450] {
        out.push(("medium word (~0.8%)", word(r)));
    }
    for r in [2500, 3000, 3500, 4000, 4500] {
        out.push(("rare word (~0.08%)", word(r)));
    }
    for (a, b) in [(20, 300), (25, 350), (30, 400), (35, 450), (40, 250)] {
        out.push((
            "two words, common AND medium",
            format!("{} {}", word(a), word(b)),
        ));
    }
    for (a, b) in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)] {
        out.push((
            "quoted phrase of two common words",
            format!("\"{} {}\"", word(a), word(b)),
        ));
    }
    let mut out: Vec<_> = out.into_iter().map(|(c, q)| (c, q, false)).collect();
    for r in [0, 2, 20, 30] {
        out.push((
            "common word, in a thread of 0.1% of messages",
            word(r),
            true,
        ));
    }
    out
}

/// The same query as raw FTS5 would get it: each word a quoted term.
fn fts5(query: &str) -> String {
    query
        .split_whitespace()
        .map(|w| {
            if w.starts_with('"') || w.ends_with('"') {
                w.to_owned()
            } else {
                format!("\"{w}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn run(args: &Args, dir: &Path) -> anyhow::Result<()> {
    let n = args.text_messages;
    let store = sqlite_store(dir, "ceneca.db").await?;
    let (server, ws, thread) =
        server_with_thread(store.clone(), ceneca_service::ServiceConfig::default()).await?;
    // One message in a thousand goes to a thread of its own: a search confined to it has
    // few of the index's matches to rank.
    let small_thread = server
        .create(
            "/api/v1/threads",
            json!({"workspace_id": ws, "title": "small"}),
        )
        .await?;
    // Another tenant's messages share the index: the permission filter has work to do.
    let other_ws = new_id().to_string();

    let conn = rusqlite::Connection::open(dir.join("ceneca.db"))?;
    ceneca_store::sqlite::register_functions(&conn)?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -262144;")?;
    let user: String = conn.query_row("SELECT id FROM users LIMIT 1", [], |r| r.get(0))?;
    let at = ceneca_store::sqlite::format_time(ceneca_domain::clock::now());
    let other_user = new_id().to_string();
    conn.execute(
        "INSERT INTO users (id, created_at, updated_at, email, display_name, password_hash) VALUES (?1, ?2, ?2, 'other@example.com', 'other', 'x')",
        rusqlite::params![other_user, at],
    )?;
    conn.execute(
        "INSERT INTO workspaces (id, created_at, updated_at, name, owner_user_id) VALUES (?1, ?2, ?2, 'other', ?3)",
        rusqlite::params![other_ws, at, other_user],
    )?;
    let other_thread = new_id().to_string();
    conn.execute(
        "INSERT INTO threads (id, created_at, updated_at, workspace_id, last_message_at) VALUES (?1, ?2, ?2, ?3, ?2)",
        rusqlite::params![other_thread, at, other_ws],
    )?;

    println!(
        "loading {n} messages ({WORDS_PER_MESSAGE} words each, Zipf over {VOCABULARY} words; 1 in 10 in another tenant's workspace)…"
    );
    let zipf = Zipf::new(VOCABULARY);
    let words: Vec<String> = (0..VOCABULARY).map(word).collect();
    let mut rng = StdRng::seed_from_u64(42);
    let rate = bulk_load(
        &conn,
        "INSERT INTO messages (id, created_at, updated_at, thread_id, workspace_id, role, author_id, content, token_count, metadata, compressed)
         VALUES (?1, ?2, ?2, ?3, ?4, 'user', ?5, ?6, 24, '{}', 0)",
        n,
        10_000,
        |stmt, i| {
            let content: Vec<&str> = (0..WORDS_PER_MESSAGE)
                .map(|_| words[zipf.sample(&mut rng)].as_str())
                .collect();
            let (t, w) = if i % 10 == 9 {
                (&other_thread, &other_ws)
            } else if i % 1000 == 500 {
                (&small_thread, &ws)
            } else {
                (&thread, &ws)
            };
            stmt.execute(rusqlite::params![
                new_id().to_string(),
                at,
                t,
                w,
                user,
                content.join(" ")
            ])
        },
    )?;
    println!("loaded at {rate:.0} messages/s (raw inserts with the FTS5 trigger)\n");
    for (rank, label) in [(30, "common"), (300, "medium"), (3000, "rare")] {
        println!(
            "  a {label} word (rank {rank}) is in {:.2}% of messages",
            100.0 * zipf.message_share(rank)
        );
    }
    println!();

    let queries = queries();
    let mut ours: Vec<(&str, Vec<Duration>)> = Vec::new();
    let mut raw: Vec<(&str, Vec<Duration>)> = Vec::new();
    let mut raw_stmt = conn.prepare(
        "SELECT m.id, snippet(messages_fts, 0, '<mark>', '</mark>', '…', 24)
         FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid
         WHERE messages_fts MATCH ?1 AND (?2 IS NULL OR m.thread_id = ?2) ORDER BY rank LIMIT 20",
    )?;
    for (class, q, in_small) in &queries {
        let thread_filter = in_small.then_some(small_thread.as_str());
        let path = search_path(q, thread_filter);
        // Warm both once: the first query of a word reads its doclist from disk.
        first_answer_holds(&server, &path, q, &ws).await?;
        raw_stmt
            .query_map(rusqlite::params![fts5(q), thread_filter], |r| {
                r.get::<_, String>(1)
            })?
            .count();
        for _ in 0..ROUNDS_PER_QUERY {
            let started = Instant::now();
            server.call(reqwest::Method::GET, &path, None).await?;
            push(&mut ours, class, started.elapsed());
            let started = Instant::now();
            let hits = raw_stmt
                .query_map(rusqlite::params![fts5(q), thread_filter], |r| {
                    r.get::<_, String>(1)
                })?
                .count();
            push(&mut raw, class, started.elapsed());
            std::hint::black_box(hits);
        }
    }
    figures(
        "raw FTS5 on the same file (ORDER BY rank LIMIT 20 with snippet(), no permission filter)",
        ours,
        raw,
        n,
    );
    println!(
        "\n  a word in 10,000 messages or more: the caller's 1,100 most recent matches among the \
         index's 10,000 most recent (in its last 50,000 rows) are ranked; raw FTS5 above \
         ranks every match"
    );
    Ok(())
}

/// The search request of query `q`, confined to a thread or not.
fn search_path(q: &str, thread: Option<&str>) -> String {
    let mut path = format!("/api/v1/search?q={}&kind=messages&limit=20", urlencode(q));
    if let Some(t) = thread {
        path.push_str(&format!("&thread_id={t}"));
    }
    path
}

/// Asks `path` once and checks the answer is what a user should get: hits, all in the
/// caller's workspace `ws`, the first with a highlighted snippet.
async fn first_answer_holds(server: &Server, path: &str, q: &str, ws: &str) -> anyhow::Result<()> {
    let first = server.call(reqwest::Method::GET, path, None).await?;
    let items = first["items"].as_array().context("items")?;
    if items.is_empty() {
        bail!("query {q} found nothing");
    }
    if items.iter().any(|h| h["workspace_id"] != json!(ws)) {
        bail!("query {q} returned another tenant's message");
    }
    if !items[0]["snippet"]
        .as_str()
        .unwrap_or("")
        .contains("<mark>")
    {
        bail!("query {q}: no highlighted snippet in {}", items[0]);
    }
    Ok(())
}

/// Prints each class's figures beside the baseline's, then those of all `n` queries.
fn figures(
    baseline: &str,
    ours: Vec<(&str, Vec<Duration>)>,
    raw: Vec<(&str, Vec<Duration>)>,
    messages: usize,
) {
    println!(
        "{:<52}{:<84}baseline: {baseline}",
        "", "ceneca: GET /api/v1/search over HTTP, top 20 with snippets"
    );
    let mut all_ours = Vec::new();
    let mut all_raw = Vec::new();
    for ((class, o), (_, r)) in ours.into_iter().zip(raw) {
        all_ours.extend(o.iter().copied());
        all_raw.extend(r.iter().copied());
        row(class, &Stats::new(o), Some(("raw", &Stats::new(r))), "");
    }
    row(
        &format!(
            "all {} queries, {messages} messages",
            all_ours.len() / ROUNDS_PER_QUERY
        ),
        &Stats::new(all_ours),
        Some(("raw", &Stats::new(all_raw))),
        "p50 < 10 ms, p99 < 50 ms",
    );
}

fn push<'a>(into: &mut Vec<(&'a str, Vec<Duration>)>, class: &'a str, d: Duration) {
    match into.iter_mut().find(|(c, _)| *c == class) {
        Some((_, v)) => v.push(d),
        None => into.push((class, vec![d])),
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
