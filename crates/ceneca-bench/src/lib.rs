//! The benchmarks behind `ceneca bench`: the issues' performance targets, each measured beside a baseline doing
//! the same work in the same run (raw SQLite, raw FTS5, exact brute-force search), so the
//! ratio means something on a noisy machine.
//!
//! - `core`: message inserts, listing, entity creation, security hot paths, start-up and
//!   idle memory; the same writes and reads on an encrypted database (SQLCipher) beside a
//!   plain one;
//! - `text`: full-text search over a million messages (and on PostgreSQL too, with
//!   `--text-postgres`);
//! - `vectors`: semantic search over 100,000 embeddings of dimension 1536, and upserts;
//! - `zero-sync`: the reference scanner, beside the same writes without it;
//! - `sync`: pushing and pulling 10,000 changes, beside the batch and list APIs;
//! - `node`: a write on one local node until another one's API has it, and the fan-out of
//!   a change to 1,000 change-stream subscribers;
//! - `storage`: attachment content, storage statistics, retention;
//! - `export`: a user's export (10,000 messages, 100 MiB of files), beside reading the same
//!   files, and the erase of that user, beside the same deletion done raw;
//! - `backup`: a backup of a 1 GiB data folder, its verification and restore, beside `cp -r`.
//!
//! A library of its own so the binary crate holds commands only; the binary passes its own
//! path in, for the figures that start a real `ceneca serve` process.

mod backup;
mod core;
mod export;
mod node;
mod retention;
mod storage;
mod sync;
mod text;
mod vectors;
mod zero_sync;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ceneca_service::{ServiceConfig, Services};
use ceneca_store::StoreOptions;
use serde_json::{Value as Json, json};

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Suite {
    Core,
    Text,
    Vectors,
    ZeroSync,
    Sync,
    Node,
    Storage,
    Export,
    Backup,
}

#[derive(clap::Args)]
pub struct Args {
    /// Which suites to run (repeat or comma-separate); all by default.
    #[arg(long, value_delimiter = ',')]
    suite: Vec<Suite>,
    /// Rounds of each 1000-message insert.
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// Requests for each single-request figure.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Messages per batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Skip the process start-up and memory figures.
    #[arg(long)]
    no_process: bool,
    /// Messages searched by the `text` suite.
    #[arg(long, default_value_t = 1_000_000)]
    text_messages: usize,
    /// Embeddings searched by the `vectors` suite, and their dimension.
    #[arg(long, default_value_t = 100_000)]
    vectors: usize,
    #[arg(long, default_value_t = 1536)]
    dims: usize,
    /// `postgres://user@host:port/database` of a server on which the `text` suite runs
    /// too, in a database of its own that it creates there and drops afterwards.
    #[arg(long)]
    text_postgres: Option<String>,
}

/// Runs the chosen suites and prints their figures. `ceneca` is the binary whose `serve`
/// is measured for start-up time and idle memory.
pub async fn run(args: Args, ceneca: &Path) -> anyhow::Result<()> {
    if args.rounds == 0 || args.requests == 0 || args.batch == 0 {
        bail!("rounds, requests and batch must be at least 1");
    }
    if args.text_messages < 1000 || args.vectors < 1000 {
        bail!("text-messages and vectors must be at least 1000");
    }
    if !(8..=8192).contains(&args.dims) {
        bail!("dims must be between 8 and 8192");
    }
    let suites = if args.suite.is_empty() {
        vec![
            Suite::Core,
            Suite::Text,
            Suite::Vectors,
            Suite::ZeroSync,
            Suite::Sync,
            Suite::Node,
            Suite::Storage,
            Suite::Export,
            Suite::Backup,
        ]
    } else {
        args.suite.clone()
    };
    if cfg!(debug_assertions) {
        println!("warning: a debug build; figures are only meaningful with --release\n");
    }
    for suite in suites {
        let dir = tempfile::tempdir()?;
        println!(
            "== ceneca bench {} — SQLite (embedded default); data in {} (removed afterwards)\n",
            format!("{suite:?}").to_lowercase(),
            dir.path().display()
        );
        match suite {
            Suite::Core => core::run(&args, dir.path(), ceneca).await?,
            Suite::Text => {
                text::run(&args, dir.path()).await?;
                if let Some(url) = &args.text_postgres {
                    println!();
                    text::postgres::run(&args, url).await?;
                }
            }
            Suite::Vectors => vectors::run(&args, dir.path()).await?,
            Suite::ZeroSync => zero_sync::run(&args, dir.path()).await?,
            Suite::Sync => sync::run(&args, dir.path()).await?,
            Suite::Node => node::run(&args, dir.path(), ceneca).await?,
            Suite::Storage => storage::run(&args, dir.path()).await?,
            Suite::Export => export::run(dir.path()).await?,
            Suite::Backup => backup::run(dir.path()).await?,
        }
        println!();
    }
    Ok(())
}

/// The account every in-process server of the benchmarks has.
const BENCH_EMAIL: &str = "bench@example.com";
const BENCH_PASSWORD: &str = "benchmark password";

/// A `ceneca serve` process on a data folder of its own and a free loopback port, rate
/// limits off; killed when dropped.
struct ServeProcess {
    child: std::process::Child,
    base: String,
}

impl ServeProcess {
    async fn start(exe: &Path, data: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new(exe)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .env_remove("CENECA_DATABASE_URL")
            .env("RUST_LOG", "warn")
            .env("CENECA_HTTP__RATE_LIMIT_PER_IP_PER_MINUTE", "0")
            .env("CENECA_HTTP__RATE_LIMIT_PER_ACCOUNT_PER_MINUTE", "0")
            .env("CENECA_HTTP__LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", "0")
            .env("CENECA_HTTP__REGISTRATIONS_PER_IP_PER_HOUR", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start ceneca serve")?;
        let process = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let started = std::time::Instant::now();
        while !http
            .get(format!("{}/readyz", process.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("ceneca serve did not answer within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(process)
    }

    /// The process's resident memory, in bytes.
    fn resident_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .context("no VmRSS")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sorted latency samples.
struct Stats {
    samples: Vec<Duration>,
}

impl Stats {
    fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Self { samples }
    }
    fn pct(&self, p: f64) -> Duration {
        let i = ((self.samples.len() as f64 - 1.0) * p).round() as usize;
        self.samples[i.min(self.samples.len() - 1)]
    }
    fn p50(&self) -> Duration {
        self.pct(0.5)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// One figure: percentiles, the baseline's p50 and the ratio, the target.
fn row(name: &str, ours: &Stats, baseline: Option<(&str, &Stats)>, target: &str) {
    let base = match baseline {
        Some((label, b)) => format!(
            "{label} p50 {:>10}   ratio {:>6.2}x",
            ms(b.p50()),
            ours.p50().as_secs_f64() / b.p50().as_secs_f64()
        ),
        None => String::new(),
    };
    println!(
        "{name:<48} p50 {:>10}  p90 {:>10}  p99 {:>10}   {base:<46} target {target}",
        ms(ours.p50()),
        ms(ours.pct(0.9)),
        ms(ours.pct(0.99))
    );
}

/// A fresh SQLite store in `dir`, migrated.
async fn sqlite_store(dir: &Path, file: &str) -> anyhow::Result<Arc<dyn ceneca_store::Store>> {
    sqlite_store_keyed(dir, file, None).await
}

/// A fresh SQLite store in `dir`, migrated; encrypted (SQLCipher) with `keys`.
async fn sqlite_store_keyed(
    dir: &Path,
    file: &str,
    keys: Option<ceneca_store::DatabaseKeys>,
) -> anyhow::Result<Arc<dyn ceneca_store::Store>> {
    let mut options = StoreOptions::new(format!("sqlite://{}", dir.join(file).display()));
    options.database_keys = keys;
    let store = ceneca_store::open(&options).await?;
    store.migrate_up().await?;
    Ok(store)
}

fn bench_key_ring() -> anyhow::Result<ceneca_crypto::KeyRing> {
    let key =
        ceneca_crypto::keyring::decode_key_base64(&ceneca_crypto::keyring::generate_key_base64())?;
    Ok(ceneca_crypto::KeyRing::new("bench", &key)?)
}

fn services(store: Arc<dyn ceneca_store::Store>) -> anyhow::Result<Services> {
    services_with(store, ServiceConfig::default())
}

fn services_with(
    store: Arc<dyn ceneca_store::Store>,
    config: ServiceConfig,
) -> anyhow::Result<Services> {
    Ok(Services::new(store, Arc::new(bench_key_ring()?), config))
}

/// A server on `store` with `config`, and a workspace and a thread of its account to
/// write into (their ids).
async fn server_with_thread(
    store: Arc<dyn ceneca_store::Store>,
    config: ServiceConfig,
) -> anyhow::Result<(Server, String, String)> {
    let server = Server::start(services_with(store, config)?).await?;
    let (ws, thread) = workspace_with_thread(&server).await?;
    Ok((server, ws, thread))
}

/// A workspace with one thread, made through `server`'s API: (workspace, thread).
async fn workspace_with_thread(server: &Server) -> anyhow::Result<(String, String)> {
    let ws = server
        .create("/api/v1/workspaces", json!({"name": "bench"}))
        .await?;
    let thread = server
        .create("/api/v1/threads", json!({"workspace_id": ws, "title": "t"}))
        .await?;
    Ok((ws, thread))
}

/// The server under test on loopback, with one registered account: a real HTTP client
/// calls it as an application would.
struct Server {
    base: String,
    http: reqwest::Client,
    token: String,
}

impl Server {
    async fn start(services: Services) -> anyhow::Result<Self> {
        let mut server = Self::start_bare(services).await?;
        server.token = server.sign_in("/api/v1/auth/register").await?;
        Ok(server)
    }

    /// The server on loopback, with a client that is not signed in.
    async fn start_bare(services: Services) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        // Rate limits off: the benchmark measures the work, not the throttle.
        let http_config = ceneca_server::HttpConfig {
            rate: ceneca_server::limits::RateConfig {
                per_ip_per_minute: 0,
                per_account_per_minute: 0,
                logins_per_ip_per_minute: 0,
                registrations_per_ip_per_hour: 0,
            },
            ..Default::default()
        };
        tokio::spawn(ceneca_server::serve(
            listener,
            ceneca_server::router(services, http_config),
            std::future::pending(),
        ));
        Ok(Self {
            base,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(4)
                .build()?,
            token: String::new(),
        })
    }

    /// A server whose account exists already (a local node enrolled with it): logged in.
    async fn start_logged_in(services: Services) -> anyhow::Result<Self> {
        let mut server = Self::start_bare(services).await?;
        server.token = server.sign_in("/api/v1/auth/login").await?;
        Ok(server)
    }

    async fn sign_in(&self, path: &str) -> anyhow::Result<String> {
        let login = self
            .call(
                reqwest::Method::POST,
                path,
                Some(json!({"email": BENCH_EMAIL, "password": BENCH_PASSWORD})),
            )
            .await?;
        Ok(login["token"].as_str().context("token")?.to_owned())
    }

    /// Calls the API; a status other than 2xx is an error carrying the body.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Json>,
    ) -> anyhow::Result<Json> {
        self.call_text(method, path, body.map(|b| b.to_string()))
            .await
    }

    /// [`Server::call`] with a body already serialised: timings then leave out the
    /// client's JSON encoding.
    async fn call_text(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<Json> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if !self.token.is_empty() {
            req = req.bearer_auth(&self.token);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let res = req.send().await?;
        let status = res.status();
        let body: Json = res.json().await.unwrap_or(Json::Null);
        if !status.is_success() {
            bail!("{status}: {body}");
        }
        Ok(body)
    }

    /// Creates a row over the API and returns its id.
    async fn create(&self, path: &str, body: Json) -> anyhow::Result<String> {
        let row = self.call(reqwest::Method::POST, path, Some(body)).await?;
        Ok(row["id"].as_str().context("id")?.to_owned())
    }
}

/// Bulk-loads rows with one prepared statement, `per_tx` rows a transaction: how a
/// benchmark fills a database with a million rows in seconds. Returns rows per second.
fn bulk_load<F>(
    conn: &rusqlite::Connection,
    sql: &str,
    rows: usize,
    per_tx: usize,
    mut bind: F,
) -> anyhow::Result<f64>
where
    F: FnMut(&mut rusqlite::CachedStatement<'_>, usize) -> rusqlite::Result<usize>,
{
    let started = std::time::Instant::now();
    let mut done = 0;
    while done < rows {
        let tx = conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(sql)?;
            for i in done..(done + per_tx).min(rows) {
                bind(&mut stmt, i)?;
            }
        }
        tx.commit()?;
        done = (done + per_tx).min(rows);
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}
