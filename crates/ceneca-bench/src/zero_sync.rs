//! `zero-sync`: what the zero-sync edition's reference scanner costs.
//!
//! - scanning one 4 KB message of ordinary prose (what every write pays), beside copying
//!   it (the least any write does with its text);
//! - the 1000-message batch API over HTTP on a zero-sync server (every string scanned)
//!   beside the same batch on an enterprise server (no scan), alternating rounds on two
//!   fresh databases in one process;
//! - 2 MB of near-miss patterns (the scanner must stay linear on hostile input);
//! - the corpora of the scanner's tests: the share of ordinary lines refused (false
//!   positives) and of external references let through.

use std::path::Path;
use std::time::{Duration, Instant};

use ceneca_domain::Edition;
use ceneca_domain::network::ReferenceScanner;
use ceneca_service::ServiceConfig;
use serde_json::{Value as Json, json};

use crate::{Args, Server, Stats, ms, row, server_with_thread, sqlite_store};

const ORDINARY: &str = include_str!("../../ceneca-domain/src/network/corpus/ordinary.txt");
const EXTERNAL: &str = include_str!("../../ceneca-domain/src/network/corpus/external.txt");

/// Near misses, each repeated to 2 MB: dotted words and numbers, URL starts that lead
/// nowhere (with slashes, backslashes, userinfo, line breaks), escapes and defanged dots,
/// host names that are not written as hosts, e-mail-like and command-like text, and words
/// of other scripts.
const HOSTILE_UNITS: &[&str] = &[
    "a.b.c.d.",
    "http:/",
    "1.2.3.",
    "::::",
    "%25%25",
    "&#&#",
    "[.]",
    "curl a.",
    "http:",
    "http:@",
    "https:\\",
    "http:\n",
    "http:[",
    "\\\\@",
    "//a",
    "a.co ",
    "@a.co ",
    "example.com data ",
    "ü.",
    "жя.ü ",
];

/// The size of a hostile message.
const HOSTILE_SIZE: usize = 2_000_000;

/// About `size` bytes of ordinary chat text: the corpus's lines, repeated up to the size.
fn prose(size: usize) -> String {
    let mut text = String::new();
    for line in ORDINARY.lines().cycle() {
        if text.len() >= size {
            break;
        }
        text.push_str(line);
        text.push(' ');
    }
    text
}

pub async fn run(args: &Args, dir: &Path) -> anyhow::Result<()> {
    let scanner = ReferenceScanner::default();

    // 1. One 4 KB message.
    let message = prose(4096);
    let (mut scans, mut copies) = (Vec::new(), Vec::new());
    for _ in 0..args.requests {
        let started = Instant::now();
        std::hint::black_box(scanner.scan(std::hint::black_box(&message)));
        scans.push(started.elapsed());
        let started = Instant::now();
        std::hint::black_box(std::hint::black_box(&message).clone());
        copies.push(started.elapsed());
    }
    let (scan, copy) = (Stats::new(scans), Stats::new(copies));

    // 2. The batch API, zero-sync beside enterprise.
    let zero = batch_server(dir, "zero.db", Edition::ZeroSync).await?;
    let open = batch_server(dir, "open.db", Edition::Enterprise).await?;
    let (mut with_scan, mut without) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let items: Vec<Json> = (0..args.batch)
            .map(|i| json!({"role": "user", "content": ORDINARY.lines().nth((round * args.batch + i) % 500).unwrap_or("x"), "token_count": 24}))
            .collect();
        let body = json!({ "items": items });
        for (server, samples) in [(&zero, &mut with_scan), (&open, &mut without)] {
            let started = Instant::now();
            let reply = server
                .0
                .call(
                    reqwest::Method::POST,
                    &format!("/api/v1/threads/{}/messages/batch", server.1),
                    Some(body.clone()),
                )
                .await?;
            samples.push(started.elapsed());
            anyhow::ensure!(
                reply["items"].as_array().map(Vec::len) == Some(args.batch),
                "the batch was not stored: {}",
                reply
            );
        }
    }
    let (with_scan, without) = (Stats::new(with_scan), Stats::new(without));

    // 3. Hostile input, beside the same size of ordinary prose (the normal time).
    let prose = prose(HOSTILE_SIZE);
    let mut ordinary_2mb = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        std::hint::black_box(scanner.scan(&prose));
        ordinary_2mb.push(started.elapsed());
    }
    let ordinary_2mb = ordinary_2mb.into_iter().min().unwrap_or(Duration::ZERO);
    let mut hostile = Vec::new();
    for unit in HOSTILE_UNITS {
        let text = unit.repeat(HOSTILE_SIZE / unit.len());
        let started = Instant::now();
        std::hint::black_box(scanner.scan(&text));
        hostile.push((unit, started.elapsed()));
    }

    println!(
        "{:<48}{:<84}baseline: the same work without the scanner",
        "", "ceneca"
    );
    row(
        "scan one 4 KB message",
        &scan,
        Some(("copy", &copy)),
        "small beside the write",
    );
    row(
        &format!("insert {} messages: batch API, zero-sync", args.batch),
        &with_scan,
        Some(("enterprise", &without)),
        "< 1.10x",
    );
    let worst = hostile
        .iter()
        .map(|(_, d)| *d)
        .max()
        .unwrap_or(Duration::ZERO);
    println!(
        "scan 2 MB of ordinary prose: {}; 2 MB of near-miss patterns ({} kinds): slowest {} = {:.2}x prose (target < 3x) ({})",
        ms(ordinary_2mb),
        HOSTILE_UNITS.len(),
        ms(worst),
        worst.as_secs_f64() / ordinary_2mb.as_secs_f64().max(1e-9),
        hostile
            .iter()
            .map(|(u, d)| format!("{u:?} {}", ms(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let ordinary: Vec<&str> = ORDINARY.lines().collect();
    let external: Vec<&str> = EXTERNAL.lines().collect();
    let false_positives = ordinary
        .iter()
        .filter(|l| scanner.scan(l).is_some())
        .count();
    let missed = external
        .iter()
        .filter(|l| scanner.scan(l).is_none())
        .count();
    println!(
        "corpora: {false_positives} of {} ordinary lines refused ({:.2}% false positives); \
         {missed} of {} external references let through",
        ordinary.len(),
        100.0 * false_positives as f64 / ordinary.len() as f64,
        external.len()
    );
    Ok(())
}

/// A server of `edition` on a fresh database, and a thread to write into.
async fn batch_server(
    dir: &Path,
    file: &str,
    edition: Edition,
) -> anyhow::Result<(Server, String)> {
    let config = ServiceConfig {
        edition,
        ..ServiceConfig::default()
    };
    let (server, _, thread) = server_with_thread(sqlite_store(dir, file).await?, config).await?;
    Ok((server, thread))
}
