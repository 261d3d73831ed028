//! The encrypted embedded database (SQLCipher) through the real binary: a canary written
//! over HTTP is in no file of the data folder in either edition (and is, with encryption
//! off, so the check can fail); a wrong key or a database in the other state is refused
//! with a clear message and a non-zero exit, never a panic; `ceneca db encrypt` and
//! `decrypt` round-trip a database with full-text search intact, resume after an
//! interruption and refuse a database in use; a rotated key ring re-keys the file.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

mod common;
use common::{BIN, Server, free_port, serve_with, stop};

/// `ceneca --data-dir <dir>/data` with a clean environment, plus `env`.
fn ceneca(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("CENECA_DATABASE_URL")
        .env_remove("CENECA_ENCRYPTION_KEY")
        .env_remove("CENECA_ENCRYPT_DATABASE")
        .env("RUST_LOG", "warn,qdrant_edge=error")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

async fn serve(cmd: Command, edition: &str) -> Server {
    serve_with(cmd, &["--edition", edition], Stdio::inherit()).await
}

fn with_args(mut cmd: Command, args: &[&str]) -> Command {
    cmd.args(args);
    cmd
}

/// Runs a command to its end: (success, stdout and stderr).
fn run(mut cmd: Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `ceneca serve` that must refuse to start: its message.
fn refused(cmd: Command, edition: &str) -> String {
    let mut cmd = cmd;
    cmd.args([
        "serve",
        "--edition",
        edition,
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    let (ok, text) = run(cmd);
    assert!(!ok, "serve started: {text}");
    assert!(
        !text.contains("panicked") && !text.contains("RUST_BACKTRACE"),
        "a clear error, not a crash: {text}"
    );
    text
}

async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

async fn post(base: &str, path: &str, token: &str, body: Value) -> Value {
    let (status, body) = call(base, reqwest::Method::POST, path, Some(token), Some(body)).await;
    assert!((200..300).contains(&status), "{path}: {status} {body}");
    body
}

async fn register(base: &str) -> String {
    let (status, body) = call(
        base,
        reqwest::Method::POST,
        "/api/v1/auth/register",
        None,
        Some(json!({"email": "ada@example.com", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn log_in(base: &str) -> String {
    let (status, body) = call(
        base,
        reqwest::Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "ada@example.com", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Writes `canary` through the API as message content and metadata, a document's title
/// and body, a thread's title and a workspace's description, plus a vector point (so the
/// vector folder is written too).
async fn write_canary(base: &str, token: &str, canary: &str) {
    let ws = post(
        base,
        "/api/v1/workspaces",
        token,
        json!({"name": "W", "description": canary}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let thread = post(
        base,
        "/api/v1/threads",
        token,
        json!({"workspace_id": ws, "title": canary}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let batch = post(
        base,
        &format!("/api/v1/threads/{thread}/messages/batch"),
        token,
        json!({"items": [{"role": "user", "content": format!("hello {canary}"), "metadata": {"note": canary}}]}),
    )
    .await;
    let message = batch["items"][0]["id"].as_str().unwrap().to_owned();
    post(
        base,
        "/api/v1/documents",
        token,
        json!({"workspace_id": ws, "title": canary, "body": format!("body {canary}")}),
    )
    .await;
    let vector: Vec<f32> = (0..1536).map(|i| (i % 7) as f32 / 7.0).collect();
    post(
        base,
        "/api/v1/vectors/messages/points?wait=true",
        token,
        json!({"source_id": message, "workspace_id": ws, "vector": vector}),
    )
    .await;
}

/// Every file under `dir` (recursively) holding `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    let mut files = 0;
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            files += 1;
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path.display().to_string());
            }
        }
    }
    assert!(
        files > 3,
        "the data folder holds the database and the vector index"
    );
    found
}

/// One server run: write the canary, check the files while it runs and after it stops;
/// returns the files that held it.
async fn canary_run(edition: &str, env: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let canary = format!("canary{}", uuid::Uuid::now_v7().simple());
    let server = serve(ceneca(dir.path(), env), edition).await;
    let token = register(&server.base).await;
    write_canary(&server.base, &token, &canary).await;
    // Full-text search still works (the title is indexed in both editions).
    let (status, hits) = call(
        &server.base,
        reqwest::Method::GET,
        &format!("/api/v1/search?q={canary}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{hits}");
    assert!(
        hits["items"].as_array().is_some_and(|h| !h.is_empty()),
        "{edition}: search finds the canary: {hits}"
    );
    let data = dir.path().join("data");
    assert!(data.join("ceneca.db-wal").exists());
    let mut found = files_holding(&data, canary.as_bytes());
    stop(server);
    found.extend(files_holding(&data, canary.as_bytes()));
    found
}

/// SQLCipher, canary absent from the files, both editions: zero-sync by its preset,
/// enterprise by the explicit setting; with encryption off the same run finds it.
#[tokio::test]
async fn a_canary_written_over_http_is_in_no_file_of_an_encrypted_data_folder() {
    let zero_sync = canary_run("zero-sync", &[]).await;
    assert_eq!(zero_sync, Vec::<String>::new(), "zero-sync");
    let enterprise = canary_run("enterprise", &[("CENECA_ENCRYPT_DATABASE", "true")]).await;
    assert_eq!(enterprise, Vec::<String>::new(), "enterprise");
    // The control: the check finds the canary when the database is not encrypted.
    let plaintext = canary_run("enterprise", &[]).await;
    assert!(
        plaintext.iter().any(|f| f.contains("ceneca.db")),
        "{plaintext:?}"
    );
}

/// SQLCipher, wrong key refused with a clear error (not a crash); a database in the
/// other state than the setting says is refused, naming the command that converts it.
#[tokio::test]
async fn a_wrong_key_or_a_mismatched_database_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let on = [("CENECA_ENCRYPT_DATABASE", "true")];
    let server = serve(ceneca(dir.path(), &on), "enterprise").await;
    register(&server.base).await;
    stop(server);

    let off = refused(ceneca(dir.path(), &[]), "enterprise");
    assert!(
        off.contains("is encrypted, but store.encrypt_database is off")
            && off.contains("ceneca db decrypt"),
        "{off}"
    );
    // Another key ring: the key file replaced by a new key.
    let key_file = dir.path().join("data/keys/master.key");
    let original = std::fs::read_to_string(&key_file).unwrap();
    let (_, new_key) = run(with_args(ceneca(dir.path(), &[]), &["keys", "generate"]));
    std::fs::write(&key_file, format!("other {}\n", new_key.trim())).unwrap();
    let wrong = refused(ceneca(dir.path(), &on), "enterprise");
    assert!(
        wrong.contains(
            "cannot be opened with the configured key ring (wrong key, or not a Ceneca database)"
        ) && wrong.contains("ceneca.db"),
        "{wrong}"
    );
    for line in original.lines().filter(|l| !l.starts_with('#')) {
        let key = line.split_whitespace().nth(1).unwrap();
        assert!(!wrong.contains(key), "no key material in the message");
    }
    std::fs::write(&key_file, original).unwrap();

    // A plaintext database with the setting on.
    let plain = tempfile::tempdir().unwrap();
    let server = serve(ceneca(plain.path(), &[]), "enterprise").await;
    register(&server.base).await;
    stop(server);
    let text = refused(ceneca(plain.path(), &[]), "zero-sync");
    assert!(
        text.contains("is not encrypted, but store.encrypt_database is on")
            && text.contains("ceneca db encrypt"),
        "{text}"
    );
}

/// SQLCipher, migration round trip: `db encrypt` (interrupted by the test hook, then
/// run again to resume) and `db decrypt`, with the data and full-text search intact at
/// each step; refused while the server runs.
#[tokio::test]
async fn db_encrypt_resumes_and_db_decrypt_round_trips_with_search_intact() {
    let dir = tempfile::tempdir().unwrap();
    let on = [("CENECA_ENCRYPT_DATABASE", "true")];
    let server = serve(ceneca(dir.path(), &[]), "enterprise").await;
    let token = register(&server.base).await;
    let ws = post(
        &server.base,
        "/api/v1/workspaces",
        &token,
        json!({"name": "W"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..20 {
        post(
            &server.base,
            "/api/v1/documents",
            &token,
            json!({"workspace_id": ws, "title": format!("note {i}"), "body": if i == 7 { "the zanzibar plan" } else { "ordinary words" }}),
        )
        .await;
    }
    let (ok, text) = run(with_args(ceneca(dir.path(), &[]), &["db", "encrypt"]));
    assert!(!ok && text.contains("is in use"), "{text}");
    stop(server);

    let (ok, text) = run(with_args(
        ceneca(
            dir.path(),
            &[
                ("CENECA_TEST_CONVERT_CHUNK_ROWS", "3"),
                ("CENECA_TEST_CONVERT_STOP_AFTER_CHUNKS", "4"),
            ],
        ),
        &["db", "encrypt"],
    ));
    assert!(!ok && text.contains("run this again to continue"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(dir.path().join("data/ceneca.db.encrypting").exists());
    let (ok, text) = run(with_args(
        ceneca(dir.path(), &[("CENECA_TEST_CONVERT_CHUNK_ROWS", "3")]),
        &["db", "encrypt"],
    ));
    assert!(
        ok && text.contains("an interrupted run continued"),
        "{text}"
    );
    assert!(text.contains("CENECA_ENCRYPT_DATABASE=true"), "{text}");
    assert!(text.contains("100%"), "progress on stderr: {text}");
    assert!(!dir.path().join("data/ceneca.db.encrypting").exists());
    let header = std::fs::read(dir.path().join("data/ceneca.db")).unwrap();
    assert_ne!(&header[..16], b"SQLite format 3\0");

    let search = |base: String| async move {
        let token = log_in(&base).await;
        let (status, hits) = call(
            &base,
            reqwest::Method::GET,
            "/api/v1/search?q=zanzibar",
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200);
        let (_, docs) = call(
            &base,
            reqwest::Method::GET,
            "/api/v1/documents?limit=100",
            Some(&token),
            None,
        )
        .await;
        (
            hits["items"].as_array().unwrap().len(),
            docs["items"].as_array().unwrap().len(),
        )
    };
    let server = serve(ceneca(dir.path(), &on), "enterprise").await;
    assert_eq!(search(server.base.clone()).await, (1, 20));
    stop(server);

    let (ok, text) = run(with_args(ceneca(dir.path(), &on), &["db", "decrypt"]));
    assert!(ok && text.contains("now plaintext"), "{text}");
    let header = std::fs::read(dir.path().join("data/ceneca.db")).unwrap();
    assert_eq!(&header[..16], b"SQLite format 3\0");
    let server = serve(ceneca(dir.path(), &[]), "enterprise").await;
    assert_eq!(search(server.base.clone()).await, (1, 20));
    stop(server);
}

/// Key rotation: data written under the first key opens after `keys rotate` makes a new
/// key active, and the file is re-keyed to it (the old key alone no longer opens it).
#[tokio::test]
async fn after_keys_rotate_the_database_opens_and_is_rekeyed() {
    let dir = tempfile::tempdir().unwrap();
    let on = [("CENECA_ENCRYPT_DATABASE", "true")];
    let server = serve(ceneca(dir.path(), &on), "enterprise").await;
    register(&server.base).await;
    stop(server);
    let key_file = dir.path().join("data/keys/master.key");
    let first = std::fs::read_to_string(&key_file).unwrap();
    let (ok, text) = run(with_args(ceneca(dir.path(), &on), &["keys", "rotate"]));
    assert!(ok, "{text}");
    let server = serve(ceneca(dir.path(), &on), "enterprise").await;
    log_in(&server.base).await;
    stop(server);
    // The first key alone (as the only, active key) no longer opens the file.
    std::fs::write(&key_file, &first).unwrap();
    let text = refused(ceneca(dir.path(), &on), "enterprise");
    assert!(
        text.contains("cannot be opened with the configured key ring"),
        "{text}"
    );
}
