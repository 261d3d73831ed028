//! The local node end to end, over real `ceneca` processes and HTTP: an upstream `ceneca
//! serve` (on SQLite and on PostgreSQL) and local nodes enrolled with `ceneca device
//! enroll` and served with `CENECA_UPSTREAM_URL`, each in a folder of its own.
//!
//! It proves that two nodes converge through their upstream; that a node answers at once
//! with the upstream down and converges when it is back; that concurrent edits to different
//! fields both survive and the same field takes the later clock; that a delete wins over an
//! older edit on every node and the loss is recorded; that messages appended on two devices
//! are all present, in one order; that a member removed upstream stops receiving the
//! workspace and the device drops its copy; that a node killed with SIGKILL in the middle of
//! a push loses no write it acknowledged and duplicates nothing, and an upstream killed in
//! the middle of a pull leaves the node complete; and what `enroll`, `serve` and
//! `GET /api/v1/sync/status` refuse.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

mod common;
use common::{BIN, Server, free_port, fresh_postgres_database, serve_with, stop};

/// Every account's password, upstream and on the nodes.
const PASSWORD: &str = "correct horse battery";
const ADA: &str = "ada@example.com";
const BOB: &str = "bob@example.com";
/// The longest any wait lasts.
const WAIT: Duration = Duration::from_secs(60);

/// `Err` with the message unless `cond` holds: one condition of a [`converges`] check.
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

// ---- Processes -------------------------------------------------------------------------

/// `ceneca` in `dir`, with none of the runner's `CENECA_` settings, logging warnings only,
/// and without rate limits (the stories send bursts no person would).
fn ceneca(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CENECA_") && !key.starts_with("CENECA_TEST_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "warn,ceneca_node=debug")
        .env("NO_COLOR", "1")
        .env("CENECA_HTTP__RATE_LIMIT_PER_IP_PER_MINUTE", "0")
        .env("CENECA_HTTP__RATE_LIMIT_PER_ACCOUNT_PER_MINUTE", "0")
        .env("CENECA_HTTP__LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", "0");
    cmd
}

/// Runs `cmd` to its end (killed, and the test failed, if it runs past [`WAIT`]), with
/// `stdin` as its standard input.
async fn run_to_exit(cmd: Command, stdin: Option<&str>) -> Output {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start ceneca");
    if let Some(text) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // It may have exited without reading: its output says why.
        let _ = pipe.write_all(text.as_bytes()).await;
        drop(pipe);
    }
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("ceneca did not exit")
        .expect("wait for ceneca")
}

/// What a command printed, both streams.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `ceneca serve` with a folder and a port of its own, which can be killed and started
/// again on both. Its log is `serve.log` in its folder; a failing test shows the end of it.
struct Process {
    /// Declared first: killed before its folder is removed.
    server: Option<Server>,
    name: String,
    port: u16,
    env: Vec<(&'static str, String)>,
    dir: tempfile::TempDir,
}

impl Process {
    fn new(name: &str, dir: tempfile::TempDir, env: Vec<(&'static str, String)>) -> Self {
        Self {
            server: None,
            name: name.to_owned(),
            port: free_port(),
            env,
            dir,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts `serve` on its port and waits until `/readyz` answers. A start that ends at
    /// once (the port still held a moment after a kill) is tried again.
    async fn start(&mut self) {
        assert!(self.server.is_none(), "{} is already running", self.name);
        let base = self.base();
        let listen = format!("127.0.0.1:{}", self.port);
        let http = client();
        let started = Instant::now();
        loop {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join("serve.log"))
                .expect("open serve.log");
            let child = ceneca(self.dir.path())
                .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
                .args(["serve", "--listen", &listen])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start ceneca serve");
            let mut server = Server {
                child,
                base: base.clone(),
            };
            while server
                .child
                .try_wait()
                .expect("poll ceneca serve")
                .is_none()
            {
                if ready(&http, &base).await
                    && server
                        .child
                        .try_wait()
                        .expect("poll ceneca serve")
                        .is_none()
                {
                    self.server = Some(server);
                    return;
                }
                assert!(
                    started.elapsed() < WAIT,
                    "{} did not become ready on {base}",
                    self.name
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert!(
                started.elapsed() < WAIT,
                "{} kept exiting at start (its log is below)",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL, as `kill -9` (a [`Server`] is killed so when dropped).
    fn kill(&mut self) {
        drop(self.server.take());
    }

    /// SIGTERM, as an operator stops it, and waits until it has shut down.
    fn terminate(&mut self) {
        if let Some(server) = self.server.take() {
            stop(server);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!("---- the last lines {} logged ----\n{tail}", self.name);
        }
    }
}

async fn ready(http: &reqwest::Client, base: &str) -> bool {
    http.get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Which database an upstream runs on.
#[derive(Clone, Copy)]
enum Engine {
    Sqlite,
    Postgres,
}

/// An upstream: an ordinary `ceneca serve` (the enterprise edition, the default), started.
/// On PostgreSQL it gets a fresh database and a shared key from `ceneca keys generate`.
async fn upstream_on(engine: Engine) -> Process {
    let dir = tempfile::tempdir().unwrap();
    let env = match engine {
        Engine::Sqlite => Vec::new(),
        Engine::Postgres => {
            let url = fresh_postgres_database("ceneca_node").await;
            let out = ceneca(dir.path())
                .args(["keys", "generate"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out));
            let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            vec![("CENECA_DATABASE_URL", url), ("CENECA_ENCRYPTION_KEY", key)]
        }
    };
    let mut upstream = Process::new("the upstream", dir, env);
    upstream.start().await;
    upstream
}

/// How `enroll` is given the password.
enum Password<'a> {
    /// In the environment variable `--password-env` names.
    Env(&'a str),
    /// As one line on standard input.
    Stdin(&'a str),
}

/// `ceneca device enroll` in `dir` (the node's folder; its data folder is ./ceneca_data).
async fn enroll(
    dir: &Path,
    upstream: &str,
    email: &str,
    name: &str,
    password: Password<'_>,
) -> Output {
    let mut cmd = ceneca(dir);
    cmd.args([
        "device",
        "enroll",
        "--upstream",
        upstream,
        "--email",
        email,
        "--name",
        name,
    ]);
    match password {
        Password::Env(password) => {
            // Not a CENECA_ name: those must all be settings.
            cmd.args(["--password-env", "ENROLL_PASSWORD"])
                .env("ENROLL_PASSWORD", password);
            run_to_exit(cmd, None).await
        }
        Password::Stdin(password) => {
            let line = format!("{password}\n");
            run_to_exit(cmd, Some(&line)).await
        }
    }
}

/// The device id an enrolment printed (`device_id: <uuid>`).
fn device_id(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("device_id:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no `device_id:` line in: {}", text(out)));
    uuid::Uuid::parse_str(id)
        .unwrap_or_else(|e| panic!("device_id {id}: {e}"))
        .to_string()
}

/// A local node: enrolled, serving, its user signed in to it.
struct Node {
    process: Process,
    /// The local session.
    api: Session,
    device_id: String,
    email: String,
}

impl Node {
    /// Starts it again on its folder and port, and signs in again.
    async fn start(&mut self) {
        self.process.start().await;
        self.api = login(&self.process.base(), &self.email).await;
    }
}

/// Enrols a device of `email`'s with `upstream`, serves it as a local node syncing every
/// second, and signs in to it.
async fn node(upstream: &Process, email: &str, name: &str) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let out = enroll(
        dir.path(),
        &upstream.base(),
        email,
        name,
        Password::Env(PASSWORD),
    )
    .await;
    assert!(out.status.success(), "enrolment of {name}: {}", text(&out));
    let device_id = device_id(&out);
    let mut process = Process::new(
        name,
        dir,
        vec![
            ("CENECA_UPSTREAM_URL", upstream.base()),
            ("CENECA_SYNC__INTERVAL_SECS", "1".to_owned()),
        ],
    );
    process.start().await;
    let api = login(&process.base(), email).await;
    Node {
        process,
        api,
        device_id,
        email: email.to_owned(),
    }
}

// ---- HTTP ------------------------------------------------------------------------------

/// A client that opens a connection per request: servers are killed and started again on
/// the same ports, and a pooled connection to a killed one would fail the next request.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A signed-in account on one server.
#[derive(Clone)]
struct Session {
    http: reqwest::Client,
    base: String,
    token: String,
}

async fn post_anonymously(base: &str, path: &str, body: &Value) -> (u16, Value) {
    let res = client()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path} on {base}: {e}"));
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn session(base: &str, body: &Value) -> Session {
    Session {
        http: client(),
        base: base.to_owned(),
        token: body["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {body}"))
            .to_owned(),
    }
}

/// Registers `email` on `base`: its user id and session.
async fn register(base: &str, email: &str) -> (String, Session) {
    let (status, body) = post_anonymously(
        base,
        "/api/v1/auth/register",
        &json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "registration of {email}: {body}");
    let id = body["user"]["id"].as_str().unwrap().to_owned();
    (id, session(base, &body))
}

/// Logs `email` in on `base` (an upstream or a local node).
async fn login(base: &str, email: &str) -> Session {
    let (status, body) = post_anonymously(
        base,
        "/api/v1/auth/login",
        &json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "log-in of {email} on {base}: {body}");
    session(base, &body)
}

impl Session {
    /// Status and JSON body (`Null` when empty, a string when not JSON); an error when the
    /// server cannot be reached.
    async fn try_call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req
            .send()
            .await
            .map_err(|e| format!("{path} on {}: {e}", self.base))?;
        let status = res.status().as_u16();
        let bytes = res
            .bytes()
            .await
            .map_err(|e| format!("{path} on {}: {e}", self.base))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, body))
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(&body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// `POST`s `body` to `path`, which must answer 201; the new row's id.
    async fn create(&self, path: &str, body: Value) -> String {
        let (status, reply) = self.post(path, body).await;
        assert_eq!(status, 201, "POST {path} on {}: {reply}", self.base);
        reply["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {reply}"))
            .to_owned()
    }

    /// `PATCH`es `body` onto `path`, which must answer 200.
    async fn edit(&self, path: &str, body: Value) {
        let (status, reply) = self.call(Method::PATCH, path, Some(&body)).await;
        assert_eq!(status, 200, "PATCH {path} on {}: {reply}", self.base);
    }

    /// The body of `GET path`, an error unless it answers 200.
    async fn get_json(&self, path: &str) -> Result<Value, String> {
        match self.try_call(Method::GET, path, None).await? {
            (200, body) => Ok(body),
            (status, body) => Err(format!("GET {path} on {}: {status} {body}", self.base)),
        }
    }

    /// The status `GET path` answers.
    async fn get_status(&self, path: &str) -> Result<u16, String> {
        Ok(self.try_call(Method::GET, path, None).await?.0)
    }

    /// Every item of a list, following `next_cursor` page after page.
    async fn list_all(&self, path: &str) -> Result<Vec<Value>, String> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit=200&cursor={c}"),
                None => format!("{path}{sep}limit=200"),
            };
            let page = self.get_json(&url).await?;
            let page_items = page["items"]
                .as_array()
                .ok_or_else(|| format!("GET {url}: no items in {page}"))?;
            items.extend(page_items.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(items),
            }
        }
    }

    /// The ids of every message of `thread`, in the order the list gives them.
    async fn message_ids(&self, thread: &str) -> Result<Vec<String>, String> {
        let messages = self
            .list_all(&format!("/api/v1/threads/{thread}/messages"))
            .await?;
        Ok(messages
            .iter()
            .map(|m| m["id"].as_str().unwrap_or_default().to_owned())
            .collect())
    }

    /// `GET /api/v1/sync/status`, which must answer 200.
    async fn sync_status(&self) -> Result<Value, String> {
        self.get_json("/api/v1/sync/status").await
    }
}

// ---- Waiting, data ---------------------------------------------------------------------

/// Polls `check` every 100 ms until it holds; fails with its last complaint after [`WAIT`].
async fn converges(what: &str, mut check: impl AsyncFnMut() -> Result<(), String>) {
    let started = Instant::now();
    loop {
        let last = match check().await {
            Ok(()) => return,
            Err(why) => why,
        };
        assert!(
            started.elapsed() < WAIT,
            "{what}: still not so after {WAIT:?}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `path` answers 200 on `api`.
async fn shows(api: &Session, path: &str) {
    converges(&format!("{} shows {path}", api.base), async || {
        api.get_json(path).await.map(|_| ())
    })
    .await;
}

fn numbered_message(i: usize) -> Value {
    json!({"role": "user", "content": format!("message {i}")})
}

/// Appends `count` messages to `thread` through `api`, `parallel` requests at a time, each
/// one message (`batch` 1) or a batch of `batch`; every request must answer 201. The ids of
/// the messages written.
async fn append(
    api: &Session,
    thread: &str,
    count: usize,
    batch: usize,
    parallel: usize,
) -> Vec<String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..parallel {
        let (api, next) = (api.clone(), next.clone());
        let path = format!("/api/v1/threads/{thread}/messages");
        writers.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let start = next.fetch_add(batch, Ordering::Relaxed);
                if start >= count {
                    return ids;
                }
                if batch == 1 {
                    ids.push(api.create(&path, numbered_message(start)).await);
                    continue;
                }
                let items: Vec<Value> = (start..count.min(start + batch))
                    .map(numbered_message)
                    .collect();
                let (status, body) = api
                    .post(&format!("{path}/batch"), json!({"items": items}))
                    .await;
                assert_eq!(status, 201, "{body}");
                ids.extend(
                    body["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|m| m["id"].as_str().unwrap().to_owned()),
                );
            }
        });
    }
    let mut ids = Vec::new();
    while let Some(written) = writers.join_next().await {
        ids.extend(written.expect("a writer failed"));
    }
    ids
}

/// How many rows of `table` a node's database (`db`, read while it runs) holds with
/// `column` = `value`.
fn stored_rows(db: &Path, table: &str, column: &str, value: &str) -> Result<i64, String> {
    let conn = rusqlite::Connection::open(db).map_err(|e| format!("{}: {e}", db.display()))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    conn.query_row(
        &format!("SELECT COUNT(*) FROM {table} WHERE {column} = ?1"),
        [value],
        |row| row.get(0),
    )
    .map_err(|e| format!("{table} in the node's database: {e}"))
}

/// An upstream where ada owns a workspace with a thread ("Launch", no messages), and two
/// nodes of hers, A and B, which both show the thread.
struct Story {
    upstream: Process,
    /// Ada's session on the upstream.
    owner: Session,
    workspace: String,
    thread: String,
    a: Node,
    b: Node,
}

async fn two_nodes_on_a_thread(engine: Engine) -> Story {
    let upstream = upstream_on(engine).await;
    let (_, owner) = register(&upstream.base(), ADA).await;
    let workspace = owner
        .create("/api/v1/workspaces", json!({"name": "Shared"}))
        .await;
    let thread = owner
        .create(
            "/api/v1/threads",
            json!({"workspace_id": workspace, "title": "Launch"}),
        )
        .await;
    let (a, b) = tokio::join!(
        node(&upstream, ADA, "laptop A"),
        node(&upstream, ADA, "laptop B")
    );
    for n in [&a, &b] {
        shows(&n.api, &format!("/api/v1/threads/{thread}")).await;
    }
    Story {
        upstream,
        owner,
        workspace,
        thread,
        a,
        b,
    }
}

// ---- Convergence -----------------------------------------------------------------------

async fn two_nodes_converge_through_an_upstream(engine: Engine) {
    let Story {
        upstream: _upstream,
        owner,
        thread,
        a,
        b,
        ..
    } = two_nodes_on_a_thread(engine).await;
    let path = format!("/api/v1/threads/{thread}");

    let message = a
        .api
        .create(
            &format!("{path}/messages"),
            json!({"role": "user", "content": "written on A"}),
        )
        .await;
    converges("B lists the message written on A", async || {
        let ids = b.api.message_ids(&thread).await?;
        ensure!(ids.contains(&message), "B lists {ids:?}");
        Ok(())
    })
    .await;

    b.api.edit(&path, json!({"title": "Renamed on B"})).await;
    converges(
        "A and the upstream show B's title, the upstream A's message",
        async || {
            for api in [&a.api, &owner] {
                let got = api.get_json(&path).await?;
                ensure!(got["title"] == "Renamed on B", "{}: {got}", api.base);
            }
            let upstream_ids = owner.message_ids(&thread).await?;
            ensure!(
                upstream_ids.contains(&message),
                "the upstream lists {upstream_ids:?}"
            );
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn two_nodes_converge_through_an_upstream_on_sqlite() {
    two_nodes_converge_through_an_upstream(Engine::Sqlite).await;
}

#[tokio::test]
async fn two_nodes_converge_through_an_upstream_on_postgres() {
    two_nodes_converge_through_an_upstream(Engine::Postgres).await;
}

#[tokio::test]
async fn a_node_works_offline_and_converges_on_reconnect() {
    let Story {
        mut upstream,
        owner,
        thread,
        a,
        b,
        ..
    } = two_nodes_on_a_thread(Engine::Sqlite).await;
    let path = format!("/api/v1/threads/{thread}");
    upstream.kill();

    // Answered from the local store, without waiting for the upstream.
    let started = Instant::now();
    a.api.edit(&path, json!({"title": "Written offline"})).await;
    let mut written = Vec::new();
    for i in 0..3 {
        written.push(
            a.api
                .create(
                    &format!("{path}/messages"),
                    json!({"role": "user", "content": format!("offline {i}")}),
                )
                .await,
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the offline writes took {:?}",
        started.elapsed()
    );
    // The user logs in to the node with the upstream down too.
    let offline = login(&a.process.base(), ADA).await;
    converges("A says it is offline with changes pending", async || {
        let status = offline.sync_status().await?;
        ensure!(
            status["online"] == false && status["pending_changes"].as_i64().is_some_and(|n| n > 0),
            "{status}"
        );
        Ok(())
    })
    .await;

    upstream.start().await;
    converges("A is back online with nothing pending", async || {
        let status = a.api.sync_status().await?;
        ensure!(
            status["online"] == true && status["pending_changes"] == 0,
            "{status}"
        );
        Ok(())
    })
    .await;
    converges("the upstream and B have A's offline edits", async || {
        for api in [&owner, &b.api] {
            let got = api.get_json(&path).await?;
            ensure!(got["title"] == "Written offline", "{}: {got}", api.base);
            let ids = api.message_ids(&thread).await?;
            ensure!(
                written.iter().all(|m| ids.contains(m)),
                "{} lists {ids:?}",
                api.base
            );
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn concurrent_edits_to_different_fields_both_survive_and_the_same_field_takes_the_later_clock()
 {
    let Story {
        mut upstream,
        owner,
        workspace,
        thread,
        a,
        b,
    } = two_nodes_on_a_thread(Engine::Sqlite).await;
    let first = owner
        .create(
            "/api/v1/projects",
            json!({"workspace_id": workspace, "name": "First"}),
        )
        .await;
    let second = owner
        .create(
            "/api/v1/projects",
            json!({"workspace_id": workspace, "name": "Second"}),
        )
        .await;
    for n in [&a, &b] {
        for project in [&first, &second] {
            shows(&n.api, &format!("/api/v1/projects/{project}")).await;
        }
    }
    let path = format!("/api/v1/threads/{thread}");
    upstream.kill();

    a.api.edit(&path, json!({"title": "A's title"})).await;
    b.api.edit(&path, json!({"pinned": true})).await;
    a.api.edit(&path, json!({"project_id": first})).await;
    // B writes the same field later, by every clock.
    tokio::time::sleep(Duration::from_millis(50)).await;
    b.api.edit(&path, json!({"project_id": second})).await;

    upstream.start().await;
    converges(
        "every node holds A's title, B's pin and B's later project",
        async || {
            for api in [&owner, &a.api, &b.api] {
                let got = api.get_json(&path).await?;
                ensure!(
                    got["title"] == "A's title"
                        && got["pinned"] == true
                        && got["project_id"] == second.as_str(),
                    "{}: {got} (first project {first}, second {second}; A: {:?}, B: {:?})",
                    api.base,
                    a.api.sync_status().await,
                    b.api.sync_status().await
                );
            }
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_delete_wins_over_an_older_edit_everywhere() {
    let Story {
        mut upstream,
        owner,
        thread,
        mut a,
        b,
        ..
    } = two_nodes_on_a_thread(Engine::Sqlite).await;
    let path = format!("/api/v1/threads/{thread}");
    upstream.kill();

    a.api
        .edit(&path, json!({"title": "Edited before the delete"}))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, body) = b.api.delete(&path).await;
    assert!((200..300).contains(&status), "DELETE on B: {status} {body}");

    // B reconnects first, so the upstream holds the delete when A's older edit arrives
    // (kept by A across a restart: pending changes are durable).
    a.process.terminate();
    upstream.start().await;
    converges("the upstream has B's delete", async || {
        let got = owner.get_status(&path).await?;
        ensure!(got == 404, "GET {path} on the upstream: {got}");
        let status = b.api.sync_status().await?;
        ensure!(status["pending_changes"] == 0, "B: {status}");
        Ok(())
    })
    .await;
    a.start().await;
    converges("the thread is gone on every node", async || {
        for api in [&owner, &a.api, &b.api] {
            let got = api.get_status(&path).await?;
            ensure!(got == 404, "GET {path} on {}: {got}", api.base);
        }
        let status = a.api.sync_status().await?;
        ensure!(status["pending_changes"] == 0, "A: {status}");
        Ok(())
    })
    .await;
    converges(
        "the upstream records A's edit as lost to the delete",
        async || {
            let conflicts = owner.get_json("/api/v1/sync/conflicts").await?;
            let recorded = conflicts["items"].as_array().is_some_and(|items| {
                items.iter().any(|c| {
                    c["kind"] == "edit_lost_to_delete" && c["entity_id"] == thread.as_str()
                })
            });
            ensure!(recorded, "{conflicts}");
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn messages_appended_on_both_devices_are_all_present_in_the_same_order() {
    let Story {
        mut upstream,
        owner,
        thread,
        a,
        b,
        ..
    } = two_nodes_on_a_thread(Engine::Sqlite).await;
    let path = format!("/api/v1/threads/{thread}");
    upstream.kill();

    let mut written = HashSet::new();
    for i in 0..5 {
        for (n, name) in [(&a, "A"), (&b, "B")] {
            written.insert(
                n.api
                    .create(
                        &format!("{path}/messages"),
                        json!({"role": "user", "content": format!("{name} {i}")}),
                    )
                    .await,
            );
        }
    }
    assert_eq!(written.len(), 10);

    upstream.start().await;
    converges(
        "the three list the same ten messages in the same order",
        async || {
            let on_upstream = owner.message_ids(&thread).await?;
            let listed: HashSet<String> = on_upstream.iter().cloned().collect();
            ensure!(
                on_upstream.len() == 10 && listed == written,
                "the upstream lists {on_upstream:?}"
            );
            for api in [&a.api, &b.api] {
                let ids = api.message_ids(&thread).await?;
                ensure!(
                    ids == on_upstream,
                    "{} lists {ids:?}, the upstream {on_upstream:?}",
                    api.base
                );
            }
            for api in [&owner, &a.api, &b.api] {
                let got = api.get_json(&path).await?;
                ensure!(got["message_count"] == 10, "{}: {got}", api.base);
            }
            Ok(())
        },
    )
    .await;
}

// ---- Access ----------------------------------------------------------------------------

#[tokio::test]
async fn a_member_removed_upstream_stops_receiving_the_workspace_and_the_device_drops_it() {
    let upstream = upstream_on(Engine::Sqlite).await;
    let (_, owner) = register(&upstream.base(), ADA).await;
    let (bob_id, bob) = register(&upstream.base(), BOB).await;
    let shared = owner
        .create("/api/v1/workspaces", json!({"name": "Shared"}))
        .await;
    let thread = owner
        .create(
            "/api/v1/threads",
            json!({"workspace_id": shared, "title": "Plans"}),
        )
        .await;
    let member = owner
        .create(
            &format!("/api/v1/workspaces/{shared}/members"),
            json!({"user_id": bob_id, "role": "editor"}),
        )
        .await;
    let own = bob
        .create("/api/v1/workspaces", json!({"name": "Bob's own"}))
        .await;

    let laptop = node(&upstream, BOB, "Bob's laptop").await;
    shows(&laptop.api, &format!("/api/v1/workspaces/{shared}")).await;
    shows(&laptop.api, &format!("/api/v1/threads/{thread}")).await;

    let (status, body) = owner
        .delete(&format!("/api/v1/workspaces/{shared}/members/{member}"))
        .await;
    assert!((200..300).contains(&status), "{status} {body}");
    let db = laptop.process.dir.path().join("ceneca_data/ceneca.db");
    converges("the laptop has dropped the workspace", async || {
        for path in [
            format!("/api/v1/workspaces/{shared}"),
            format!("/api/v1/threads/{thread}"),
        ] {
            let got = laptop.api.get_status(&path).await?;
            ensure!(got == 404, "GET {path} on the laptop: {got}");
        }
        let threads = laptop.api.list_all("/api/v1/threads").await?;
        ensure!(
            !threads.iter().any(|t| t["workspace_id"] == shared.as_str()),
            "the laptop lists {threads:?}"
        );
        for (table, column) in [
            ("workspaces", "id"),
            ("workspace_members", "workspace_id"),
            ("threads", "workspace_id"),
            ("messages", "workspace_id"),
        ] {
            let rows = stored_rows(&db, table, column, &shared)?;
            ensure!(rows == 0, "{rows} rows of the workspace still in {table}");
        }
        Ok(())
    })
    .await;

    let later = owner
        .create(
            &format!("/api/v1/threads/{thread}/messages"),
            json!({"role": "user", "content": "after Bob left"}),
        )
        .await;
    // A change Bob may read, made after that message: once the laptop shows it, it has read
    // past the message.
    let marker = bob
        .create(
            "/api/v1/threads",
            json!({"workspace_id": own, "title": "Still mine"}),
        )
        .await;
    shows(&laptop.api, &format!("/api/v1/threads/{marker}")).await;
    let got = laptop
        .api
        .get_status(&format!("/api/v1/messages/{later}"))
        .await
        .unwrap();
    assert_eq!(got, 404, "the owner's later message reached the laptop");
    assert_eq!(stored_rows(&db, "messages", "id", &later), Ok(0));
    assert_eq!(stored_rows(&db, "threads", "workspace_id", &shared), Ok(0));
}

// ---- Crashes ---------------------------------------------------------------------------

#[tokio::test]
async fn kill_9_of_a_node_mid_push_loses_no_acknowledged_write_and_duplicates_nothing() {
    let mut upstream = upstream_on(Engine::Sqlite).await;
    let (_, owner) = register(&upstream.base(), ADA).await;
    let workspace = owner
        .create("/api/v1/workspaces", json!({"name": "Busy"}))
        .await;
    let thread = owner
        .create(
            "/api/v1/threads",
            json!({"workspace_id": workspace, "title": "Many"}),
        )
        .await;
    let mut a = node(&upstream, ADA, "laptop A").await;
    let path = format!("/api/v1/threads/{thread}");
    shows(&a.api, &path).await;
    upstream.kill();

    // Every write answered 201 is acknowledged: the node must never lose it.
    let acknowledged: HashSet<String> = append(&a.api, &thread, 1_500, 1, 16)
        .await
        .into_iter()
        .collect();
    assert_eq!(acknowledged.len(), 1_500);

    // Kill -9 the node as soon as its push reaches the upstream.
    upstream.start().await;
    let first_page = format!("{path}/messages?limit=1");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(page) = owner.get_json(&first_page).await
            && page["items"]
                .as_array()
                .is_some_and(|items| !items.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.process.kill();
    a.start().await;

    converges(
        "the upstream holds every acknowledged message, once",
        async || {
            let ids = owner.message_ids(&thread).await?;
            let listed: HashSet<String> = ids.iter().cloned().collect();
            ensure!(
                listed.len() == ids.len(),
                "{} duplicates upstream",
                ids.len() - listed.len()
            );
            ensure!(
                listed == acknowledged,
                "the upstream lists {}, {} acknowledged ones missing, {} never acknowledged",
                ids.len(),
                acknowledged.difference(&listed).count(),
                listed.difference(&acknowledged).count()
            );
            let got = owner.get_json(&path).await?;
            ensure!(
                got["message_count"] == 1_500,
                "the upstream's thread: {got}"
            );
            let status = a.api.sync_status().await?;
            ensure!(status["pending_changes"] == 0, "A: {status}");
            Ok(())
        },
    )
    .await;
    let local: HashSet<String> = a
        .api
        .message_ids(&thread)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert!(local == acknowledged, "A lost or gained messages");
}

#[tokio::test]
async fn an_upstream_restarted_mid_pull_leaves_the_node_complete() {
    let mut upstream = upstream_on(Engine::Sqlite).await;
    let (_, owner) = register(&upstream.base(), ADA).await;
    let workspace = owner
        .create("/api/v1/workspaces", json!({"name": "Archive"}))
        .await;
    let thread = owner
        .create(
            "/api/v1/threads",
            json!({"workspace_id": workspace, "title": "Long"}),
        )
        .await;
    let written: HashSet<String> = append(&owner, &thread, 3_000, 100, 4)
        .await
        .into_iter()
        .collect();
    assert_eq!(written.len(), 3_000);

    let b = node(&upstream, ADA, "laptop B").await;
    // Kill -9 the upstream once B has applied a first page, and start it again at once.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(status) = b.api.sync_status().await
            && status["cursor"].as_str().is_some_and(|c| c != "0")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    upstream.kill();
    upstream.start().await;

    let path = format!("/api/v1/threads/{thread}");
    converges("B holds all 3,000 messages, once each", async || {
        let got = b.api.get_json(&path).await?;
        ensure!(got["message_count"] == 3_000, "B's thread: {got}");
        let ids = b.api.message_ids(&thread).await?;
        let listed: HashSet<String> = ids.iter().cloned().collect();
        ensure!(
            listed.len() == ids.len() && listed == written,
            "B lists {} ({} distinct, {} missing)",
            ids.len(),
            listed.len(),
            written.difference(&listed).count()
        );
        let status = b.api.sync_status().await?;
        ensure!(
            status["online"] == true && status["pending_changes"] == 0,
            "B: {status}"
        );
        Ok(())
    })
    .await;
}

/// Copies a folder and what it holds (a data folder, stopped: a backup or its restore).
fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn a_node_whose_upstream_was_restored_from_a_backup_starts_again_from_its_snapshot() {
    let mut upstream = upstream_on(Engine::Sqlite).await;
    let (_, owner) = register(&upstream.base(), ADA).await;
    let kept = owner
        .create("/api/v1/workspaces", json!({"name": "Kept"}))
        .await;
    let kept_thread = owner
        .create(
            "/api/v1/threads",
            json!({"workspace_id": kept, "title": "Before the backup"}),
        )
        .await;
    let b = node(&upstream, ADA, "laptop B").await;
    shows(&b.api, &format!("/api/v1/threads/{kept_thread}")).await;

    // A backup of the upstream's data folder, taken while it is stopped.
    let data = upstream.dir.path().join("ceneca_data");
    let backup = upstream.dir.path().join("backup");
    upstream.terminate();
    // B's change stream was open: it ends at the signal, and does not hold the shutdown
    // until its grace period cuts it off.
    let log = std::fs::read_to_string(upstream.dir.path().join("serve.log")).unwrap();
    assert!(
        !log.contains("cut off"),
        "the shutdown waited for the change stream: {log}"
    );
    copy_folder(&data, &backup);
    upstream.start().await;
    let later = owner
        .create("/api/v1/workspaces", json!({"name": "After the backup"}))
        .await;
    let later_thread = owner
        .create(
            "/api/v1/threads",
            json!({"workspace_id": later, "title": "Lost in the restore"}),
        )
        .await;
    append(&owner, &kept_thread, 40, 1, 4).await;
    shows(&b.api, &format!("/api/v1/threads/{later_thread}")).await;

    // The upstream is restored from the backup: its log now ends before B's cursor.
    upstream.terminate();
    std::fs::remove_dir_all(&data).unwrap();
    copy_folder(&backup, &data);
    upstream.start().await;
    converges(
        "B starts again from the restored upstream and keeps what only it holds now",
        async || {
            let status = b.api.sync_status().await?;
            ensure!(
                status["online"] == true && status["last_error"].is_null(),
                "B: {status}"
            );
            let thread = b
                .api
                .get_json(&format!("/api/v1/threads/{kept_thread}"))
                .await?;
            ensure!(thread["title"] == "Before the backup", "B: {thread}");
            // The upstream lost these with the restore; B, whose user is still their
            // member, keeps its copy (it may be the only one left).
            let kept_copy = b
                .api
                .get_status(&format!("/api/v1/threads/{later_thread}"))
                .await?;
            ensure!(
                kept_copy == 200,
                "B's copy of the lost thread answers {kept_copy}"
            );
            Ok(())
        },
    )
    .await;
    let gone = owner
        .get_status(&format!("/api/v1/threads/{later_thread}"))
        .await
        .unwrap();
    assert_eq!(gone, 404, "the restored upstream never had it");
    // And the two go on: a write on B reaches the restored upstream.
    let written = b
        .api
        .create(
            "/api/v1/threads",
            json!({"workspace_id": kept, "title": "Written after the restore"}),
        )
        .await;
    shows(&owner, &format!("/api/v1/threads/{written}")).await;
}

// ---- Enrolment, start-up, status -------------------------------------------------------

#[tokio::test]
async fn enroll_can_print_a_local_api_token_for_one_workspace() {
    let upstream = upstream_on(Engine::Sqlite).await;
    let (_, owner) = register(&upstream.base(), ADA).await;
    let scripts = owner
        .create("/api/v1/workspaces", json!({"name": "Scripts"}))
        .await;
    let other = owner
        .create("/api/v1/workspaces", json!({"name": "Other"}))
        .await;
    let thread = owner
        .create(
            "/api/v1/threads",
            json!({"workspace_id": scripts, "title": "Reached by the token"}),
        )
        .await;
    let hidden = owner
        .create(
            "/api/v1/threads",
            json!({"workspace_id": other, "title": "Not reached"}),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ceneca(dir.path());
    cmd.args([
        "device",
        "enroll",
        "--upstream",
        &upstream.base(),
        "--email",
        ADA,
        "--name",
        "laptop",
        "--password-env",
        "ENROLL_PASSWORD",
        "--api-token",
        "nightly script",
        "--workspace",
        &scripts,
    ])
    .env("ENROLL_PASSWORD", PASSWORD);
    let out = run_to_exit(cmd, None).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("api_token: "))
        .unwrap_or_else(|| panic!("no api_token line: {}", text(&out)))
        .trim()
        .to_owned();
    let mut process = Process::new(
        "laptop",
        dir,
        vec![("CENECA_UPSTREAM_URL", upstream.base())],
    );
    process.start().await;
    let script = Session {
        base: process.base(),
        token,
        http: client(),
    };
    // The first sync ran at enrolment: the token works at once, on its workspace only.
    let got = script
        .get_json(&format!("/api/v1/threads/{thread}"))
        .await
        .unwrap();
    assert_eq!(got["title"], "Reached by the token");
    let refused = script
        .get_status(&format!("/api/v1/threads/{hidden}"))
        .await
        .unwrap();
    assert_eq!(refused, 404);
    // A node's API tokens stay on it: the upstream does not know this one.
    let upstream_view = Session {
        base: upstream.base(),
        token: script.token.clone(),
        http: client(),
    };
    assert_eq!(
        upstream_view
            .get_status(&format!("/api/v1/threads/{thread}"))
            .await
            .unwrap(),
        401
    );
}

/// From the attack: enrolling a node's folder again with another account made the first
/// account's writes be pushed as the second's.
#[tokio::test]
async fn regression_a_folder_enrolled_for_one_account_is_not_enrolled_for_another() {
    let upstream = upstream_on(Engine::Sqlite).await;
    register(&upstream.base(), ADA).await;
    let (_, bob) = register(&upstream.base(), BOB).await;
    let dir = tempfile::tempdir().unwrap();
    let out = enroll(
        dir.path(),
        &upstream.base(),
        ADA,
        "ada's laptop",
        Password::Env(PASSWORD),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let out = enroll(
        dir.path(),
        &upstream.base(),
        BOB,
        "bob on ada's laptop",
        Password::Env(PASSWORD),
    )
    .await;
    assert!(!out.status.success(), "enrolled over ada: {}", text(&out));
    assert!(text(&out).contains(ADA), "{}", text(&out));
    let devices = bob.list_all("/api/v1/devices").await.unwrap();
    assert!(
        devices.is_empty(),
        "a device was registered for bob: {devices:?}"
    );
}

#[tokio::test]
async fn enroll_with_a_wrong_password_stores_nothing_and_serve_then_refuses() {
    let upstream = upstream_on(Engine::Sqlite).await;
    let (_, ada) = register(&upstream.base(), ADA).await;
    let dir = tempfile::tempdir().unwrap();

    let out = enroll(
        dir.path(),
        &upstream.base(),
        ADA,
        "laptop",
        Password::Env("not the password"),
    )
    .await;
    assert!(!out.status.success(), "enrolled: {}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("device_id"),
        "{}",
        text(&out)
    );
    let devices = ada.list_all("/api/v1/devices").await.unwrap();
    assert!(devices.is_empty(), "a device was registered: {devices:?}");

    // Nothing was stored: a node cannot start from the folder.
    let mut serve = ceneca(dir.path());
    serve
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CENECA_UPSTREAM_URL", upstream.base());
    let out = run_to_exit(serve, None).await;
    assert!(!out.status.success(), "served: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ceneca device enroll"),
        "{}",
        text(&out)
    );

    // The right password, typed on standard input, enrols.
    let out = enroll(
        dir.path(),
        &upstream.base(),
        ADA,
        "laptop",
        Password::Stdin(PASSWORD),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let id = device_id(&out);
    let devices = ada.list_all("/api/v1/devices").await.unwrap();
    assert!(
        devices.iter().any(|d| d["id"] == id.as_str()),
        "{id} not in {devices:?}"
    );
}

#[tokio::test]
async fn serve_refuses_an_upstream_in_zero_sync_outside_the_network_or_over_plain_http() {
    for (env, says) in [
        (
            vec![
                ("CENECA_EDITION", "zero-sync"),
                ("CENECA_UPSTREAM_URL", "http://127.0.0.1:9"),
            ],
            "zero-sync",
        ),
        (
            vec![("CENECA_UPSTREAM_URL", "https://203.0.113.7")],
            "allowed_upstreams",
        ),
        // Inside the network, but neither loopback nor TLS.
        (
            vec![("CENECA_UPSTREAM_URL", "http://10.1.2.3:8787")],
            "https",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut serve = ceneca(dir.path());
        serve
            .args(["serve", "--listen", "127.0.0.1:0"])
            .envs(env.iter().copied());
        let out = run_to_exit(serve, None).await;
        assert!(!out.status.success(), "{env:?}: served: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{env:?}: {stderr}");
    }
}

#[tokio::test]
async fn status_is_for_local_nodes_only() {
    let dir = tempfile::tempdir().unwrap();
    let plain = serve_with(ceneca(dir.path()), &[], Stdio::null()).await;
    let (_, on_plain) = register(&plain.base, ADA).await;
    let (status, body) = on_plain
        .call(Method::GET, "/api/v1/sync/status", None)
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["code"].is_string(), "a JSON error: {body}");
    stop(plain);

    let upstream = upstream_on(Engine::Sqlite).await;
    let (_, owner) = register(&upstream.base(), ADA).await;
    let (status, body) = owner.call(Method::GET, "/api/v1/sync/status", None).await;
    assert_eq!(status, 404, "an upstream is no local node: {body}");
    assert!(body["error"]["code"].is_string(), "a JSON error: {body}");

    let a = node(&upstream, ADA, "laptop A").await;
    converges("A says it is online and has synced", async || {
        let status = a.api.sync_status().await?;
        ensure!(
            status["online"] == true && status["last_sync_at"].is_string(),
            "{status}"
        );
        Ok(())
    })
    .await;
    let status = a.api.sync_status().await.unwrap();
    assert_eq!(status["node"], "local");
    assert_eq!(status["upstream"], upstream.base().as_str());
    assert_eq!(status["device_id"], a.device_id.as_str());
    assert!(status["pending_changes"].is_u64(), "{status}");
    assert!(status["refused_changes"].is_u64(), "{status}");
    assert!(
        status["last_error"].is_null() || status["last_error"].is_string(),
        "{status}"
    );
    assert!(
        status["cursor"]
            .as_str()
            .is_some_and(|c| c.parse::<u64>().is_ok()),
        "{status}"
    );
    let anonymous = client()
        .get(format!("{}/api/v1/sync/status", a.process.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[tokio::test]
async fn the_local_node_refuses_creating_workspaces() {
    let upstream = upstream_on(Engine::Sqlite).await;
    let (_, owner) = register(&upstream.base(), ADA).await;
    let a = node(&upstream, ADA, "laptop A").await;
    for (path, body) in [
        ("/api/v1/workspaces", json!({"name": "Local"})),
        (
            "/api/v1/organizations",
            json!({"name": "Acme", "slug": "acme-local"}),
        ),
    ] {
        let (status, reply) = a.api.post(path, body).await;
        assert_eq!(status, 409, "POST {path} on the node: {reply}");
        assert_eq!(reply["error"]["code"], "upstream_only", "{reply}");
    }
    let listed = a.api.list_all("/api/v1/workspaces").await.unwrap();
    assert!(listed.is_empty(), "the node created {listed:?}");
    // Made upstream, a workspace reaches the node.
    let workspace = owner
        .create("/api/v1/workspaces", json!({"name": "Upstream"}))
        .await;
    shows(&a.api, &format!("/api/v1/workspaces/{workspace}")).await;
}
