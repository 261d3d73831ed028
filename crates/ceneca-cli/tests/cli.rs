//! The real `ceneca` binary: `serve` on the embedded default and on PostgreSQL, `user
//! create --admin`, `migrate`, `config example|show` (sections, flat names, precedence),
//! `keys generate`, `audit verify|head`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{BIN, Server, free_port, fresh_postgres_database, serve_with, stop};

fn ceneca(dir: &Path) -> Command {
    in_test_env(Command::new(BIN), dir)
}

fn in_test_env(mut cmd: Command, dir: &Path) -> Command {
    cmd.current_dir(dir)
        .env_remove("CENECA_DATABASE_URL")
        .env_remove("CENECA_ENCRYPTION_KEY")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1");
    cmd
}

/// `ceneca`, started by a shell that first sets the usual umask 022 (whatever the test
/// runner's is).
#[cfg(unix)]
fn ceneca_under_umask_022(dir: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 022 && exec \"$0\" \"$@\"", BIN]);
    in_test_env(cmd, dir)
}

async fn serve(cmd: Command) -> Server {
    serve_with(cmd, &[], Stdio::inherit()).await
}

async fn serve_logging_to(cmd: Command, stderr: Stdio) -> Server {
    serve_with(cmd, &[], stderr).await
}

async fn post(base: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn serve_runs_on_the_embedded_default_and_keeps_data_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(ceneca(dir.path())).await;
    assert!(
        dir.path().join("ceneca_data/ceneca.db").exists(),
        "the default data folder is ./ceneca_data"
    );
    let key = dir.path().join("ceneca_data/keys/master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (status, body) = post(
        &server.base,
        "/api/v1/auth/register",
        None,
        json!({"email": "ada@example.com", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, 201);
    let token = body["token"].as_str().unwrap().to_owned();
    let (status, ws) = post(
        &server.base,
        "/api/v1/workspaces",
        Some(&token),
        json!({"name": "Kept"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = post(
        &server.base,
        "/api/v1/provider-configs",
        Some(&token),
        json!({"provider": "openai", "name": "k", "api_key": "sk-0123456789abcdef"}),
    )
    .await;
    assert_eq!(status, 201);
    drop(server);

    let server = serve(ceneca(dir.path())).await;
    let res = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/workspaces/{}",
            server.base,
            ws["id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        200,
        "sessions and data survive a restart"
    );
}

/// Modes of the data folder's entries, by path relative to it (symbolic links skipped).
#[cfg(unix)]
fn modes_under(root: &Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        let name = path.strip_prefix(root).unwrap().display().to_string();
        out.push((name, meta.permissions().mode() & 0o7777));
        if meta.is_dir() {
            for child in std::fs::read_dir(&path).unwrap() {
                stack.push(child.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

/// Registers a user and writes a workspace, so the WAL and shared-memory files exist.
async fn write_something(base: &str) {
    let (status, body) = post(
        base,
        "/api/v1/auth/register",
        None,
        json!({"email": "ada@example.com", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap();
    let (status, _) = post(
        base,
        "/api/v1/workspaces",
        Some(token),
        json!({"name": "Private"}),
    )
    .await;
    assert_eq!(status, 201);
}

/// Data folder world-readable (security review): under umask 022 `serve` makes the data
/// folder 0700, the database and its `-wal` and `-shm` files 0600, and everything else
/// it writes there (key file, vector index) private too, with nothing to warn about.
#[cfg(unix)]
#[tokio::test]
async fn data_folder_world_readable_serve_creates_private_files_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let server = serve_logging_to(
        ceneca_under_umask_022(dir.path()),
        std::fs::File::create(&log).unwrap().into(),
    )
    .await;
    write_something(&server.base).await;
    let data = dir.path().join("ceneca_data");
    let modes = modes_under(&data);
    let mode_of = |name: &str| {
        modes
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} exists: {modes:?}"))
            .1
    };
    assert_eq!(mode_of(""), 0o700, "the data folder");
    for file in [
        "ceneca.db",
        "ceneca.db-wal",
        "ceneca.db-shm",
        "keys/master.key",
    ] {
        assert_eq!(mode_of(file), 0o600, "{file}");
    }
    assert_eq!(mode_of("keys"), 0o700);
    assert_eq!(mode_of("vectors"), 0o700);
    assert!(
        modes
            .iter()
            .filter(|(n, _)| n.starts_with("vectors/"))
            .count()
            > 3,
        "the vector index is there: {modes:?}"
    );
    for (name, mode) in &modes {
        assert_eq!(mode & 0o077, 0, "{name} is private: {mode:o}");
    }
    drop(server);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains("made it private"), "nothing to fix: {log}");
}

/// Data folder world-readable (security review): a data folder left readable by others
/// (by an older version, or by hand) is made private when `serve` starts, with a warning
/// naming each path and the mode found.
#[cfg(unix)]
#[tokio::test]
async fn data_folder_world_readable_wide_modes_are_fixed_and_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(ceneca_under_umask_022(dir.path())).await;
    write_something(&server.base).await;
    drop(server); // killed: the WAL and shared-memory files stay
    let data = dir.path().join("ceneca_data");
    let mut widened = Vec::new();
    for (name, mode) in modes_under(&data) {
        let path = data.join(&name);
        let wide = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wide)).unwrap();
        widened.push((name, mode, wide));
    }
    for name in [
        "",
        "ceneca.db",
        "ceneca.db-wal",
        "ceneca.db-shm",
        "keys",
        "keys/master.key",
        "vectors",
    ] {
        assert!(
            widened.iter().any(|(n, _, _)| n == name),
            "{name} was widened"
        );
    }

    let log = dir.path().join("serve.log");
    let server = serve_logging_to(
        ceneca_under_umask_022(dir.path()),
        std::fs::File::create(&log).unwrap().into(),
    )
    .await;
    write_something_more(&server.base).await;
    let modes = modes_under(&data);
    for (name, mode) in &modes {
        assert_eq!(mode & 0o077, 0, "{name} made private: {mode:o}");
    }
    for (name, before, _) in &widened {
        let now = modes.iter().find(|(n, _)| n == name).map(|(_, m)| *m);
        assert_eq!(now, Some(*before), "{name} is back to its private mode");
    }
    drop(server);
    let log = std::fs::read_to_string(&log).unwrap();
    for (name, _, wide) in &widened {
        // The path as configured: the default data folder is ./ceneca_data.
        let path = if name.is_empty() {
            "./ceneca_data".to_owned()
        } else {
            format!("./ceneca_data/{name}")
        };
        let line = log
            .lines()
            .find(|l| l.contains("made it private") && l.contains(&format!("path={path} ")))
            .unwrap_or_else(|| panic!("a warning for {path}: {log}"));
        assert!(
            line.contains(&format!("{wide:04o}")),
            "the mode found: {line}"
        );
        assert!(line.contains("WARN"), "{line}");
    }
}

/// Signs in again (after a restart) and writes.
async fn write_something_more(base: &str) {
    let (status, body) = post(
        base,
        "/api/v1/auth/login",
        None,
        json!({"email": "ada@example.com", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = post(
        base,
        "/api/v1/workspaces",
        body["token"].as_str(),
        json!({"name": "Still private"}),
    )
    .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn user_create_makes_an_admin_who_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let out = ceneca(dir.path())
        .args(["user", "create", "--email", "Root@Example.com", "--admin"])
        .env("CENECA_NEW_USER_PASSWORD", "a strong password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(user["role"], "admin");
    assert_eq!(user["email"], "root@example.com");
    let weak = ceneca(dir.path())
        .args(["user", "create", "--email", "x@example.com"])
        .env("CENECA_NEW_USER_PASSWORD", "short")
        .output()
        .unwrap();
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));

    let server = serve(ceneca(dir.path())).await;
    let (status, body) = post(
        &server.base,
        "/api/v1/auth/login",
        None,
        json!({"email": "root@example.com", "password": "a strong password"}),
    )
    .await;
    assert_eq!(status, 200);
    // Administrator powers wait for MFA.
    let first = body["token"].as_str().unwrap();
    let (status, _) = post(
        &server.base,
        "/api/v1/plans",
        Some(first),
        json!({"name": "Pro", "price_micros": 1, "interval": "year"}),
    )
    .await;
    assert_eq!(status, 403);
    let (_, enrolled) = post(
        &server.base,
        "/api/v1/auth/mfa/enroll",
        Some(first),
        json!({}),
    )
    .await;
    let secret = enrolled["secret"].as_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = ceneca_crypto::totp::code_from_base32(secret, now).unwrap();
    let (status, _) = post(
        &server.base,
        "/api/v1/auth/mfa/confirm",
        Some(first),
        json!({"code": code}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = post(
        &server.base,
        "/api/v1/auth/login",
        None,
        // A code works once: log in with the next step's code (the server accepts one
        // step of skew).
        json!({"email": "root@example.com", "password": "a strong password", "mfa_code": ceneca_crypto::totp::code_from_base32(secret, now + 30).unwrap()}),
    )
    .await;
    assert_eq!(status, 200);
    let token = body["token"].as_str().unwrap();
    let (status, _) = post(
        &server.base,
        "/api/v1/plans",
        Some(token),
        json!({"name": "Pro", "price_micros": 1, "interval": "year"}),
    )
    .await;
    assert_eq!(status, 201, "an administrator maintains the plan catalogue");
    drop(server);

    let verify = ceneca(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("audit log intact"));
    rusqlite::Connection::open(dir.path().join("ceneca_data/ceneca.db"))
        .unwrap()
        .execute_batch("UPDATE audit_log SET action = 'nothing' WHERE sequence = 2")
        .unwrap();
    let verify = ceneca(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(!verify.status.success());
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains("broken at entry 2"),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn export_writes_a_whole_archive_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let created = ceneca(dir.path())
        .args(["user", "create", "--email", "Someone@Example.com"])
        .env("CENECA_NEW_USER_PASSWORD", "a strong password")
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", output_text(&created));
    let user: Value = serde_json::from_slice(&created.stdout).unwrap();
    let out = dir.path().join("export.zip");
    // A `.partial` left by a killed export does not block the next one.
    std::fs::write(dir.path().join("export.zip.partial"), b"half").unwrap();
    let export = ceneca(dir.path())
        .args(["export", "--user", "someone@example.com", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", output_text(&export));
    assert!(String::from_utf8_lossy(&export.stdout).contains("exported user"));
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    let mut manifest = String::new();
    std::io::Read::read_to_string(
        &mut archive.by_name("manifest.json").unwrap(),
        &mut manifest,
    )
    .unwrap();
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["user_id"], user["id"]);
    assert_eq!(manifest["entities"]["users"], 1);
    assert!(!dir.path().join("export.zip.partial").exists());
    // An existing file is never overwritten; an unknown account leaves no file behind.
    let again = ceneca(dir.path())
        .args(["export", "--user", "someone@example.com", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        output_text(&again).contains("exists"),
        "{}",
        output_text(&again)
    );
    let nobody = dir.path().join("nobody.zip");
    let unknown = ceneca(dir.path())
        .args(["export", "--user", "nobody@example.com", "--out"])
        .arg(&nobody)
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(
        output_text(&unknown).contains("not found"),
        "{}",
        output_text(&unknown)
    );
    assert!(!nobody.exists() && !dir.path().join("nobody.zip.partial").exists());
}

#[test]
fn user_erase_asks_to_confirm_erases_and_finds_nothing_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let created = ceneca(dir.path())
        .args(["user", "create", "--email", "gone@example.com"])
        .env("CENECA_NEW_USER_PASSWORD", "a strong password")
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", output_text(&created));
    let user: Value = serde_json::from_slice(&created.stdout).unwrap();
    // Not from a terminal and without --yes: nothing is erased.
    let unconfirmed = ceneca(dir.path())
        .args(["user", "erase", "gone@example.com"])
        .output()
        .unwrap();
    assert!(!unconfirmed.status.success());
    assert!(
        output_text(&unconfirmed).contains("--yes"),
        "{}",
        output_text(&unconfirmed)
    );
    let erased = ceneca(dir.path())
        .args(["user", "erase", "Gone@Example.com", "--yes"])
        .output()
        .unwrap();
    assert!(erased.status.success(), "{}", output_text(&erased));
    let report: Value = serde_json::from_slice(&erased.stdout).unwrap();
    assert_eq!(report["user_id"], user["id"]);
    assert_eq!(report["removed"]["users"], 1);
    // Again: nothing to erase, and it says so; the audit trail verifies.
    let again = ceneca(dir.path())
        .args(["user", "erase", "gone@example.com", "--yes"])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", output_text(&again));
    assert!(
        output_text(&again).contains("nothing to erase"),
        "{}",
        output_text(&again)
    );
    let verify = ceneca(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", output_text(&verify));
}

/// Found by the second attack: an erase a crash cut short waited for the next maintenance
/// run (a day by default); `serve` finishes it when it starts.
#[tokio::test]
async fn regression_an_interrupted_erase_is_finished_when_the_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    let created = ceneca(dir.path())
        .args(["user", "create", "--email", "cut@example.com"])
        .env("CENECA_NEW_USER_PASSWORD", "a strong password")
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", output_text(&created));
    let database = dir.path().join("ceneca_data").join("ceneca.db");
    let count = || {
        rusqlite::Connection::open(&database)
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM users WHERE email = 'cut@example.com'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
    };
    // As the erase's first step leaves the account.
    rusqlite::Connection::open(&database)
        .unwrap()
        .execute(
            "UPDATE users SET erasing_since = created_at, deleted_at = created_at",
            [],
        )
        .unwrap();
    let server = serve(ceneca(dir.path())).await;
    let started = Instant::now();
    while count() != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the erase was not finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop(server);
}

#[test]
fn migrate_config_and_keys_commands() {
    let dir = tempfile::tempdir().unwrap();
    let up = ceneca(dir.path()).args(["migrate", "up"]).output().unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(String::from_utf8_lossy(&up.stdout).contains("applied 1"));
    let status = ceneca(dir.path())
        .args(["migrate", "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("engine: sqlite") && text.contains("schema") && text.contains("applied"),
        "{text}"
    );
    let reindex = ceneca(dir.path()).args(["reindex"]).output().unwrap();
    assert!(
        reindex.status.success(),
        "{}",
        String::from_utf8_lossy(&reindex.stderr)
    );
    assert!(String::from_utf8_lossy(&reindex.stdout).contains("rebuilt"));
    // Down goes one version at a time, newest first.
    for version in [
        "20", "19", "18", "17", "16", "15", "14", "13", "12", "11", "10", "9", "8", "7", "6", "5",
        "4", "3", "2", "1",
    ] {
        let down = ceneca(dir.path())
            .args(["migrate", "down"])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&down.stdout);
        assert!(
            out.contains(&format!("reverted {version}")),
            "{out}{}",
            String::from_utf8_lossy(&down.stderr)
        );
    }
    assert!(
        String::from_utf8_lossy(
            &ceneca(dir.path())
                .args(["migrate", "status"])
                .output()
                .unwrap()
                .stdout
        )
        .contains("pending")
    );

    let example = ceneca(dir.path())
        .args(["config", "example"])
        .output()
        .unwrap();
    let example = String::from_utf8_lossy(&example.stdout).into_owned();
    assert!(example.contains("listen = \"127.0.0.1:8787\""));
    // The example is a valid configuration file.
    std::fs::write(dir.path().join("ceneca.toml"), &example).unwrap();
    assert!(
        ceneca(dir.path())
            .args(["migrate", "status"])
            .output()
            .unwrap()
            .status
            .success()
    );
    std::fs::write(dir.path().join("ceneca.toml"), "listen = 5\n").unwrap();
    let bad = ceneca(dir.path())
        .args(["migrate", "status"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid configuration"));
    std::fs::remove_file(dir.path().join("ceneca.toml")).unwrap();

    let key = ceneca(dir.path())
        .args(["keys", "generate"])
        .output()
        .unwrap();
    let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    assert_eq!(key.len(), 44, "base64 of 32 bytes");
    let weak = ceneca(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "CENECA_ENCRYPTION_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .output()
        .unwrap();
    assert!(!weak.status.success(), "a weak key refuses to start");
    assert!(String::from_utf8_lossy(&weak.stderr).contains("weak"));
}

#[tokio::test]
async fn serve_runs_on_postgres_with_a_shared_key() {
    let url = fresh_postgres_database("ceneca_cli").await;
    let dir = tempfile::tempdir().unwrap();

    let keyless = ceneca(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CENECA_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(!keyless.status.success());
    assert!(String::from_utf8_lossy(&keyless.stderr).contains("CENECA_ENCRYPTION_KEY"));

    let key = generated_key(dir.path());
    let mut cmd = ceneca(dir.path());
    cmd.env("CENECA_DATABASE_URL", &url)
        .env("CENECA_ENCRYPTION_KEY", &key);
    let server = serve(cmd).await;
    let (status, body) = post(
        &server.base,
        "/api/v1/auth/register",
        None,
        json!({"email": "pg@example.com", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = post(
        &server.base,
        "/api/v1/workspaces",
        Some(body["token"].as_str().unwrap()),
        json!({"name": "on postgres"}),
    )
    .await;
    assert_eq!(status, 201);
    assert!(
        !dir.path().join("ceneca_data/ceneca.db").exists(),
        "no SQLite file when running on PostgreSQL"
    );
}

#[tokio::test]
async fn keys_rotate_then_rewrap_keeps_every_secret_readable() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(ceneca(dir.path())).await;
    let (_, body) = post(
        &server.base,
        "/api/v1/auth/register",
        None,
        json!({"email": "k@example.com", "password": "correct horse"}),
    )
    .await;
    let token = body["token"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, config) = post(&server.base, "/api/v1/provider-configs", Some(&token), json!({"provider": "openai", "name": format!("c{i}"), "api_key": format!("sk-secret-{i}-0123456789")})).await;
        assert_eq!(status, 201);
        ids.push(config["id"].as_str().unwrap().to_owned());
    }
    drop(server);
    let run = |args: &[&str]| ceneca(dir.path()).args(args).output().unwrap();
    let text = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    let rotate = run(&["keys", "rotate"]);
    assert!(rotate.status.success(), "{}", text(&rotate));
    let key_file = dir.path().join("ceneca_data/keys/master.key");
    let lines: Vec<String> = std::fs::read_to_string(&key_file)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 2, "the old key stays, the new one is appended");
    let new_id = lines[1].split_whitespace().next().unwrap().to_owned();

    let rewrap = run(&["keys", "rewrap"]);
    assert!(rewrap.status.success(), "{}", text(&rewrap));
    assert!(
        text(&rewrap).contains("3 secrets checked, 3 re-encrypted"),
        "{}",
        text(&rewrap)
    );
    let again = run(&["keys", "rewrap"]);
    assert!(
        text(&again).contains("3 secrets checked, 0 re-encrypted"),
        "resumable: {}",
        text(&again)
    );

    // Every secret now decrypts with the new key alone.
    std::fs::write(&key_file, format!("{}\n", lines[1])).unwrap();
    let db = rusqlite::Connection::open(dir.path().join("ceneca_data/ceneca.db")).unwrap();
    let key_ids: Vec<String> = db
        .prepare("SELECT api_key_key_id FROM ai_provider_configs")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(key_ids, vec![new_id.clone(); 3]);
    let only_new = run(&["keys", "rewrap"]);
    assert!(only_new.status.success(), "{}", text(&only_new));

    // A ciphertext moved to another row does not decrypt there, and is reported, not lost.
    db.execute_batch(&format!(
        "UPDATE ai_provider_configs SET api_key_ciphertext = (SELECT api_key_ciphertext FROM ai_provider_configs WHERE id = '{}') WHERE id = '{}'",
        ids[0], ids[1]
    ))
    .unwrap();
    let rotate = run(&["keys", "rotate"]);
    assert!(rotate.status.success());
    let moved = run(&["keys", "rewrap"]);
    assert!(!moved.status.success());
    assert!(
        text(&moved).contains(&format!("unreadable: ai_provider_configs {}", ids[1])),
        "{}",
        text(&moved)
    );
    // The audit trail records each rewrap and stays intact, as long as the retired key
    // its first entries were MACed with stays in the key file.
    let verify = run(&["audit", "verify"]);
    assert!(!verify.status.success());
    let old_id = lines[0].split_whitespace().next().unwrap();
    assert!(
        text(&verify).contains(&format!("key '{old_id}', which is not in the key ring")),
        "{}",
        text(&verify)
    );
    let current = std::fs::read_to_string(&key_file).unwrap();
    std::fs::write(&key_file, format!("{}\n{current}", lines[0])).unwrap();
    let verify = run(&["audit", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
}

#[tokio::test]
async fn certs_init_then_serve_with_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let init = ceneca(dir.path())
        .args(["certs", "init", "--dir"])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "server.key", "web.key", "agent.key"] {
            assert_eq!(
                std::fs::metadata(certs.join(key))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o600,
                "{key}"
            );
        }
    }
    let again = ceneca(dir.path())
        .args(["certs", "init", "--dir"])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "existing files are never overwritten"
    );

    let port = free_port();
    let path = |f: &str| certs.join(f).display().to_string();
    let mut child = ceneca(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("CENECA_TLS_CERT_FILE", path("server.pem"))
        .env("CENECA_TLS_KEY_FILE", path("server.key"))
        .env("CENECA_TLS_CLIENT_CA_FILE", path("ca.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs.join("ca.pem")).unwrap()).unwrap();
    let mut identity = std::fs::read(certs.join("agent.pem")).unwrap();
    identity.extend(std::fs::read(certs.join("agent.key")).unwrap());
    let agent = reqwest::Client::builder()
        .add_root_certificate(ca.clone())
        .tls_built_in_root_certs(false)
        .identity(reqwest::Identity::from_pem(&identity).unwrap())
        .build()
        .unwrap();
    let anonymous = reqwest::Client::builder()
        .add_root_certificate(ca)
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}/healthz");
    let started = Instant::now();
    let mut ready = false;
    while started.elapsed() < Duration::from_secs(30) {
        if agent
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = anonymous.get(&url).send().await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "the agent's certificate is accepted");
    assert!(refused.is_err(), "no client certificate, no connection");
}

/// A new key from `ceneca keys generate`.
fn generated_key(dir: &Path) -> String {
    let out = ceneca(dir).args(["keys", "generate"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A server on the embedded default that wrote an account and 30 workspaces (over 30
/// audit entries), then stopped.
async fn audited_data_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(ceneca(dir.path())).await;
    let (status, body) = post(
        &server.base,
        "/api/v1/auth/register",
        None,
        json!({"email": "audit@example.com", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, 201);
    let token = body["token"].as_str().unwrap().to_owned();
    for i in 0..30 {
        let (status, _) = post(
            &server.base,
            "/api/v1/workspaces",
            Some(&token),
            json!({"name": format!("w{i}")}),
        )
        .await;
        assert_eq!(status, 201);
    }
    stop(server);
    dir
}

#[tokio::test]
async fn audit_tail_cut_is_reported_by_audit_verify() {
    let dir = audited_data_folder().await;
    let run = |args: &[&str]| ceneca(dir.path()).args(args).output().unwrap();

    // `audit head` prints what the server anchored in the head file on its way out.
    let head = run(&["audit", "head"]);
    assert!(head.status.success(), "{}", output_text(&head));
    let recorded = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let head_file = dir.path().join("ceneca_data/audit.head");
    assert_eq!(
        std::fs::read_to_string(&head_file).unwrap().trim(),
        recorded
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&head_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (last, mac) = recorded.split_once(':').unwrap();
    let last: i64 = last.parse().unwrap();
    assert!(last > 30 && mac.len() == 64, "{recorded}");

    let verify = run(&["audit", "verify", "--expect-head", &recorded]);
    assert!(verify.status.success(), "{}", output_text(&verify));
    assert!(
        output_text(&verify).contains("audit log intact")
            && output_text(&verify).contains("reaches the head the head file")
            && output_text(&verify).contains("reaches the head the expected head"),
        "{}",
        output_text(&verify)
    );
    let wrong = run(&[
        "audit",
        "verify",
        "--expect-head",
        &format!("{last}:{}", "0".repeat(64)),
    ]);
    assert!(!wrong.status.success());
    assert!(
        output_text(&wrong).contains(&format!("broken at entry {last}")),
        "{}",
        output_text(&wrong)
    );
    let malformed = run(&["audit", "verify", "--expect-head", "12"]);
    assert!(!malformed.status.success());

    // The last 25 entries deleted: the head file and the recorded head both tell.
    let db = rusqlite::Connection::open(dir.path().join("ceneca_data/ceneca.db")).unwrap();
    db.execute_batch(&format!(
        "DELETE FROM audit_log WHERE sequence > {}",
        last - 25
    ))
    .unwrap();
    for args in [
        vec!["audit", "verify"],
        vec!["audit", "verify", "--expect-head", &recorded],
        vec!["audit", "head"],
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            output_text(&out).contains(&format!("broken at entry {}", last - 24))
                && output_text(&out).contains("tail was cut"),
            "{args:?}: {}",
            output_text(&out)
        );
    }
    // Every entry deleted.
    db.execute_batch("DELETE FROM audit_log").unwrap();
    let out = run(&["audit", "verify"]);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("broken at entry 1:"),
        "{}",
        output_text(&out)
    );
    // Without the head file, only the recorded head still tells.
    std::fs::remove_file(&head_file).unwrap();
    let out = run(&["audit", "verify"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("cannot be detected"));
    let out = run(&["audit", "verify", "--expect-head", &recorded]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn audit_verify_reports_reordering_gaps_and_downgrades() {
    let dir = audited_data_folder().await;
    let run = |args: &[&str]| ceneca(dir.path()).args(args).output().unwrap();
    let db = rusqlite::Connection::open(dir.path().join("ceneca_data/ceneca.db")).unwrap();
    let expect_broken_at = |sequence: i64, words: &str| {
        let out = run(&["audit", "verify"]);
        assert!(!out.status.success());
        let text = output_text(&out);
        assert!(
            text.contains(&format!("broken at entry {sequence}:")) && text.contains(words),
            "{text}"
        );
    };
    let last: i64 = db
        .query_row("SELECT MAX(sequence) FROM audit_log", [], |r| r.get(0))
        .unwrap();

    // Reordered.
    let swap = "UPDATE audit_log SET sequence = -4 WHERE sequence = 4; \
                UPDATE audit_log SET sequence = 4 WHERE sequence = 5; \
                UPDATE audit_log SET sequence = 5 WHERE sequence = -4;";
    db.execute_batch(swap).unwrap();
    expect_broken_at(4, "reordered");
    db.execute_batch(swap).unwrap();
    assert!(run(&["audit", "verify"]).status.success());

    // A gap in the numbering.
    db.execute_batch(&format!(
        "UPDATE audit_log SET sequence = {} WHERE sequence = {last}",
        last + 3
    ))
    .unwrap();
    expect_broken_at(last + 3, "missing (deleted)");
    db.execute_batch(&format!(
        "UPDATE audit_log SET sequence = {last} WHERE sequence = {}",
        last + 3
    ))
    .unwrap();
    assert!(run(&["audit", "verify"]).status.success());

    // Re-chained with plain hashes from entry 10 on (a downgrade to the unkeyed chain).
    db.execute_batch("UPDATE audit_log SET mac_key_id = NULL WHERE sequence >= 10")
        .unwrap();
    expect_broken_at(10, "plain hashes");

    // Deleted from the middle.
    db.execute_batch("DELETE FROM audit_log WHERE sequence = 5")
        .unwrap();
    expect_broken_at(6, "missing (deleted)");
}

/// `ceneca config show` in `dir` with `setup` applied: the configuration in effect, parsed.
fn config_in_effect(dir: &Path, setup: impl FnOnce(&mut Command)) -> toml::Value {
    let mut cmd = ceneca(dir);
    setup(cmd.args(["config", "show"]));
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

/// Every leaf of a TOML table as (`section.key`, value).
fn leaves(prefix: &str, value: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&path, v, out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

const EXAMPLE_TEXT: &str = include_str!("../../../ceneca.example.toml");

/// `ceneca config show`'s text, with nothing set.
fn config_shown_text(dir: &std::path::Path) -> String {
    let out = ceneca(dir).args(["config", "show"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The example file and the binary's defaults (`config show` with nothing set) agree key
/// by key: every default is in the example with its value, and the example sets nothing
/// that is not a setting.
#[test]
fn config_example_matches_the_defaults_key_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let defaults = config_in_effect(dir.path(), |_| {});
    let example = ceneca(dir.path())
        .args(["config", "example"])
        .output()
        .unwrap();
    let example: toml::Value = toml::from_str(&String::from_utf8_lossy(&example.stdout)).unwrap();
    let committed: toml::Value = toml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../ceneca.example.toml"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        example, committed,
        "`config example` prints ceneca.example.toml"
    );
    let (mut in_defaults, mut in_example) = (Vec::new(), Vec::new());
    leaves("", &defaults, &mut in_defaults);
    leaves("", &example, &mut in_example);
    assert_eq!(in_defaults.len(), 68, "every setting: {in_defaults:?}");
    // What the edition presets is shown commented out (set in a copied example, it would
    // replace the zero-sync preset), and `config show` says where it came from.
    let shown = config_shown_text(dir.path());
    for key in [
        "audit.level",
        "encryption.encrypt_content",
        "attachments.encrypt",
        "store.encrypt_database",
        "network.reference_policy",
    ] {
        let name = key.split_once('.').unwrap().1;
        assert!(
            !in_example.iter().any(|(k, _)| k == key),
            "the example must leave {key} to the edition"
        );
        assert!(
            EXAMPLE_TEXT
                .lines()
                .any(|l| l.starts_with(&format!("# {name} = "))),
            "the example must show {key} commented out"
        );
        assert!(shown.contains("edition preset"), "{shown}");
    }
    in_defaults.retain(|(k, _)| {
        ![
            "audit.level",
            "encryption.encrypt_content",
            "attachments.encrypt",
            "store.encrypt_database",
            "network.reference_policy",
        ]
        .contains(&k.as_str())
    });
    for (key, value) in &in_defaults {
        assert_eq!(
            in_example.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            Some(value),
            "the example must set {key} to its default"
        );
    }
    for (key, _) in &in_example {
        assert!(
            in_defaults.iter().any(|(k, _)| k == key),
            "the example sets {key}, which is not a setting"
        );
    }
}

/// Sections, flat names and flags layer in order: flag > `CENECA_SECTION__KEY` >
/// `CENECA_FLAT_NAME` > file (sectioned or flat keys) > default; secrets stay masked.
#[test]
fn config_sections_flat_names_and_flags_layer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ceneca.toml"),
        "max_body_bytes = 1000\nallow_registration = false\n\
         [http]\nmax_batch_body_bytes = 4000\n[auth]\nmax_sessions_per_user = 5\n",
    )
    .unwrap();
    let shown = config_in_effect(dir.path(), |cmd| {
        cmd.env("CENECA_HTTP__MAX_BATCH_BODY_BYTES", "5000")
            .env("CENECA_MAX_SESSIONS_PER_USER", "6")
            .env("CENECA_AUDIT_LEVEL", "enhanced")
            .env("CENECA_AUDIT__LEVEL", "maximum")
            .env("CENECA_SQLITE_SYNCHRONOUS", "full")
            .env("CENECA_DATA_DIR", "from-env")
            .env("CENECA_STORE__DATABASE_URL", "postgres://env@h/db")
            .env("CENECA_ENCRYPTION__KEY", "a-secret-key-value")
            .env("CENECA_QDRANT_API_KEY", "a-qdrant-secret")
            .args(["--data-dir", "from-flag"])
            .args(["--database-url", "postgres://u:pg-secret@h/db"]);
    });
    let at = |path: &str| {
        path.split('.')
            .try_fold(&shown, |v, k| v.get(k))
            .unwrap_or_else(|| panic!("{path} missing from {shown}"))
            .clone()
    };
    assert_eq!(
        at("http.max_body_bytes").as_integer(),
        Some(1000),
        "flat key in the file"
    );
    assert_eq!(
        at("auth.allow_registration").as_bool(),
        Some(false),
        "flat key in the file"
    );
    assert_eq!(
        at("http.max_batch_body_bytes").as_integer(),
        Some(5000),
        "section variable over the file"
    );
    assert_eq!(
        at("auth.max_sessions_per_user").as_integer(),
        Some(6),
        "flat variable over the file"
    );
    assert_eq!(
        at("audit.level").as_str(),
        Some("maximum"),
        "section variable over the flat one"
    );
    assert_eq!(at("store.sqlite_synchronous").as_str(), Some("full"));
    assert_eq!(
        at("data_dir").as_str(),
        Some("from-flag"),
        "flag over the environment"
    );
    assert_eq!(
        at("store.database_url").as_str(),
        Some("postgres://u:<redacted>@h/db")
    );
    assert_eq!(at("encryption.key").as_str(), Some("<redacted>"));
    assert_eq!(at("vectors.qdrant_api_key").as_str(), Some("<redacted>"));
    assert_eq!(
        at("http.listen").as_str(),
        Some("127.0.0.1:8787"),
        "default"
    );
}

/// A typed setting with a value outside its set fails at start, naming the key (as the
/// user wrote it and as `section.key`) and the values allowed; so does an unknown key.
#[test]
fn config_enum_errors_name_the_key_and_the_allowed_values() {
    let dir = tempfile::tempdir().unwrap();
    let fails = |setup: &dyn Fn(&mut Command)| {
        let mut cmd = ceneca(dir.path());
        setup(cmd.args(["migrate", "status"]));
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = fails(&|cmd| {
        cmd.env("CENECA_STORE__SQLITE_SYNCHRONOUS", "fulll");
    });
    for part in [
        "CENECA_STORE__SQLITE_SYNCHRONOUS",
        "store.sqlite_synchronous",
        "fulll",
        "`normal`",
        "`full`",
    ] {
        assert!(err.contains(part), "{part} not in: {err}");
    }
    let err = fails(&|cmd| {
        cmd.env("CENECA_LOG_FORMAT", "xml");
    });
    for part in ["CENECA_LOG_FORMAT", "log.format", "`text`", "`json`"] {
        assert!(err.contains(part), "{part} not in: {err}");
    }
    std::fs::write(
        dir.path().join("ceneca.toml"),
        "[audit]\nlevel = \"everything\"\n",
    )
    .unwrap();
    let err = fails(&|_| {});
    for part in [
        "audit.level",
        "ceneca.toml",
        "`basic`",
        "`enhanced`",
        "`maximum`",
    ] {
        assert!(err.contains(part), "{part} not in: {err}");
    }
    std::fs::write(
        dir.path().join("ceneca.toml"),
        "[http]\nlistn = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let err = fails(&|_| {});
    assert!(err.contains("listn"), "{err}");
    std::fs::remove_file(dir.path().join("ceneca.toml")).unwrap();
    let err = fails(&|cmd| {
        cmd.env("CENECA_HTTP__ADMIN_ALLOWED_NETWORKS", "[\"ten\"]");
    });
    assert!(err.contains("http.admin_allowed_networks"), "{err}");
}

/// `CENECA_SECTION__KEY` variables configure a real server: where it listens and whether
/// anyone may register.
#[tokio::test]
async fn serve_takes_sectioned_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = ceneca(dir.path())
        .env("CENECA_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("CENECA_AUTH__ALLOW_REGISTRATION", "false")
        .arg("serve")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while !reqwest::get(format!("{base}/readyz"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not ready on {base}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server = Server { child, base };
    let (status, _) = post(
        &server.base,
        "/api/v1/auth/register",
        None,
        json!({"email": "ada@example.com", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, 403, "registration is closed");
    drop(server);
}

#[tokio::test]
async fn metrics_listen_serves_metrics_and_log_lines_carry_request_ids() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let log = dir.path().join("serve.log");
    let mut cmd = ceneca(dir.path());
    cmd.env("CENECA_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
        .env("RUST_LOG", "warn,tower_http=debug");
    let server = serve_logging_to(cmd, Stdio::from(std::fs::File::create(&log).unwrap())).await;
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{}/api/v1/auth/me", server.base))
        .header("x-request-id", "cli-check-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["x-request-id"], "cli-check-42");

    // The metrics listener answers without authentication; the API's listener does not.
    let metrics = http
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(
            r#"ceneca_http_requests_total{method="GET",route="/api/v1/auth/me",status="401"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"ceneca_db_connections_in_use{engine="sqlite",pool="writer"}"#));
    let closed = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 401);

    // Log lines written while serving a request carry its id.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged
            .lines()
            .any(|l| l.contains("request_id=cli-check-42")
                && l.contains("finished processing request")),
        "{logged}"
    );
    drop(server);

    // A metrics_listen that is no address is refused at start.
    let out = ceneca(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CENECA_METRICS_LISTEN", "everywhere")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("metrics_listen"));
}

/// `ceneca storage reconcile` fails (for scripts and monitoring) while counters differ from
/// the data, and `--fix` repairs them; `ceneca maintenance run` reports what it did or
/// would do, and refuses in a local node's data folder, whose upstream decides.
#[tokio::test]
async fn storage_reconcile_and_maintenance_run_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = serve(ceneca(dir.path())).await;
        write_something(&server.base).await;
    }
    let reconcile = |fix: bool| {
        let mut cmd = ceneca(dir.path());
        cmd.args(["storage", "reconcile"]);
        if fix {
            cmd.arg("--fix");
        }
        cmd.output().unwrap()
    };
    let clean = reconcile(false);
    assert!(clean.status.success(), "{}", output_text(&clean));
    assert!(output_text(&clean).contains("match the data"));
    // A counter moved by hand: the data says otherwise.
    let db = rusqlite::Connection::open(dir.path().join("ceneca_data/ceneca.db")).unwrap();
    let moved = db
        .execute(
            "INSERT INTO storage_usage (workspace_id, category, row_count, bytes) \
             SELECT id, 'messages', 1, 7 FROM workspaces",
            [],
        )
        .unwrap();
    assert!(moved > 0);
    drop(db);
    let drifted = reconcile(false);
    assert!(!drifted.status.success(), "{}", output_text(&drifted));
    assert!(output_text(&drifted).contains("run with --fix"));
    let fixed = reconcile(true);
    assert!(fixed.status.success(), "{}", output_text(&fixed));
    assert!(reconcile(false).status.success());

    let dry = ceneca(dir.path())
        .args(["maintenance", "run", "--dry-run"])
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", output_text(&dry));
    assert!(
        output_text(&dry).contains("would archive 0 threads"),
        "{}",
        output_text(&dry)
    );
    let run = ceneca(dir.path())
        .args(["maintenance", "run"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", output_text(&run));
    assert!(output_text(&run).contains("archived 0 threads"));
    // An enrolled folder is a local node's.
    std::fs::create_dir_all(dir.path().join("ceneca_data/node")).unwrap();
    std::fs::write(dir.path().join("ceneca_data/node/credentials"), b"sealed").unwrap();
    let refused = ceneca(dir.path())
        .args(["maintenance", "run"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        output_text(&refused).contains("local node"),
        "{}",
        output_text(&refused)
    );
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(relative) = path.strip_prefix(root) {
                out.push(relative.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn a_kill_during_an_upload_leaves_no_blob_and_no_file_on_the_row() {
    for postgres in [false, true] {
        kill_during_an_upload(postgres).await;
    }
}

/// `kill -9` of the server while a file streams in: after a restart the attachment has no
/// file (no hash, no size, 404 for its content), no blob sits under a real name, and the
/// same upload sent again is kept whole.
async fn kill_during_an_upload(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let command = |dir: &Path, env: &[(&str, String)]| {
        let mut cmd = ceneca(dir);
        for (name, value) in env {
            cmd.env(name, value);
        }
        cmd
    };
    let mut env = Vec::new();
    if postgres {
        let key = generated_key(dir.path());
        env.push((
            "CENECA_DATABASE_URL",
            fresh_postgres_database("ceneca_cli").await,
        ));
        env.push(("CENECA_ENCRYPTION_KEY", key));
    }
    let server = serve(command(dir.path(), &env)).await;
    let base = server.base.clone();
    let (_, body) = post(
        &base,
        "/api/v1/auth/register",
        None,
        json!({"email": "up@example.com", "password": "correct horse"}),
    )
    .await;
    let token = body["token"].as_str().unwrap().to_owned();
    let created = |path: &'static str, body: Value| {
        let (base, token) = (base.clone(), token.clone());
        async move {
            let (status, row) = post(&base, path, Some(&token), body).await;
            assert_eq!(status, 201, "{path}: {row}");
            row["id"].as_str().unwrap().to_owned()
        }
    };
    let ws = created("/api/v1/workspaces", json!({"name": "files"})).await;
    let thread = created("/api/v1/threads", json!({"workspace_id": ws, "title": "t"})).await;
    let (_, message) = post(
        &base,
        &format!("/api/v1/threads/{thread}/messages"),
        Some(&token),
        json!({"role": "user", "content": "see attached"}),
    )
    .await;
    let attachment = created(
        "/api/v1/attachments",
        json!({"workspace_id": ws, "message_id": message["id"], "file_name": "big.bin"}),
    )
    .await;

    // 64 MiB announced, 8 MiB sent, then the server is killed while it waits for more.
    let announced = 64 << 20;
    let port = base.rsplit(':').next().unwrap().to_owned();
    let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    use std::io::Write;
    write!(
        stream,
        "PUT /api/v1/attachments/{attachment}/content HTTP/1.1\r\nhost: 127.0.0.1\r\n\
         authorization: Bearer {token}\r\ncontent-type: application/octet-stream\r\n\
         content-length: {announced}\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![0x5Au8; 1 << 20];
    for _ in 0..8 {
        stream.write_all(&chunk).unwrap();
    }
    stream.flush().unwrap();
    let blobs = dir.path().join("ceneca_data/blobs");
    let started = Instant::now();
    let written = || {
        files_under(&blobs.join("tmp"))
            .iter()
            .map(|f| {
                std::fs::metadata(blobs.join("tmp").join(f))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .sum::<u64>()
    };
    while written() < 4 << 20 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the upload never reached the disk"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(server); // SIGKILL
    drop(stream);

    let server = serve(command(dir.path(), &env)).await;
    let http = reqwest::Client::new();
    let row: Value = http
        .get(format!("{}/api/v1/attachments/{attachment}", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(row["sha256"].is_null(), "postgres={postgres}: {row}");
    assert_eq!(row["size_bytes"], 0, "postgres={postgres}: {row}");
    let content = http
        .get(format!(
            "{}/api/v1/attachments/{attachment}/content",
            server.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(content.status().as_u16(), 404, "postgres={postgres}");
    let kept: Vec<String> = files_under(&blobs)
        .into_iter()
        .filter(|f| !f.starts_with("tmp"))
        .collect();
    assert!(
        kept.is_empty(),
        "postgres={postgres}: a blob under a real name: {kept:?}"
    );

    // Sent again, whole: kept and served.
    let whole = vec![0x5Au8; 3 << 20];
    let answer = http
        .put(format!(
            "{}/api/v1/attachments/{attachment}/content",
            server.base
        ))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(whole.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200, "postgres={postgres}");
    let served = http
        .get(format!(
            "{}/api/v1/attachments/{attachment}/content",
            server.base
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(served.as_ref() == whole.as_slice(), "postgres={postgres}");
}

/// The embedded vector index: opened by one process at a time (a command beside a running
/// server is refused, saying why, instead of writing the server's shards), checked against
/// SQL, and never emptied by a start with other dimensions: `serve` refuses, changing
/// nothing, and only `ceneca reindex --vectors` replaces the collection.
#[tokio::test]
async fn the_vector_index_is_opened_once_checked_and_replaced_only_by_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let missing = ceneca(dir.path())
        .args([
            "--data-dir",
            "no_such_folder",
            "reindex",
            "--vectors",
            "--check",
        ])
        .output()
        .unwrap();
    assert!(
        !missing.status.success(),
        "a folder with nothing in it was checked"
    );
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("nothing to check"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let server = serve(ceneca(dir.path())).await;
    // One embedding of the configured 1536 dimensions.
    let (token, ws, message) = embedding_source(&server.base, "v@example.com").await;
    let (status, point) = post(
        &server.base,
        "/api/v1/vectors/messages/points?wait=true",
        Some(&token),
        json!({"source_id": message, "workspace_id": ws, "vector": vec![0.5; 1536]}),
    )
    .await;
    assert_eq!(status, 200, "{point}");
    for args in [
        &["reindex", "--vectors"][..],
        &["reindex", "--vectors", "--check"],
    ] {
        let beside = ceneca(dir.path()).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&beside.stderr);
        assert!(!beside.status.success(), "{args:?} ran beside the server");
        assert!(
            stderr.contains("open in another process"),
            "{args:?}: {stderr}"
        );
    }
    stop(server);
    let check = ceneca(dir.path())
        .args(["reindex", "--vectors", "--check"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(stdout.contains("the vector index matches SQL"), "{stdout}");
    assert!(
        stdout.contains("vector collection messages: 1 in SQL, 1 in the index"),
        "{stdout}"
    );

    let with_8 = |args: &[&str]| {
        ceneca(dir.path())
            .env("CENECA_VECTOR_DIMS_MESSAGES", "8")
            .args(args)
            .output()
            .unwrap()
    };
    let refused = with_8(&["serve", "--listen", "127.0.0.1:0"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "served with other dimensions");
    assert!(
        stderr
            .contains("holds 1536-dimensional vectors, but 8 are configured; nothing was changed"),
        "{stderr}"
    );
    let checked = with_8(&["reindex", "--vectors", "--check"]);
    assert!(!checked.status.success(), "checked with other dimensions");
    // The database still holds a 1536-dimension row: a rebuild to 8 is refused before
    // anything is replaced, and the index serves 1536 as before.
    let rebuilt = with_8(&["reindex", "--vectors"]);
    let stderr = String::from_utf8_lossy(&rebuilt.stderr);
    assert!(
        !rebuilt.status.success(),
        "rebuilt 1536-dimension rows into 8"
    );
    assert!(
        stderr.contains("has 1536 dimensions") && stderr.contains("nothing was replaced"),
        "{stderr}"
    );
    let check = ceneca(dir.path())
        .args(["reindex", "--vectors", "--check"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    // Once the rows of the old size are gone, the rebuild replaces the collection.
    let server = serve(ceneca(dir.path())).await;
    let r = reqwest::Client::new()
        .delete(format!(
            "{}/api/v1/vectors/messages/points/{}",
            server.base,
            point["ids"][0].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    stop(server);
    let rebuilt = with_8(&["reindex", "--vectors"]);
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let mut cmd = ceneca(dir.path());
    cmd.env("CENECA_VECTOR_DIMS_MESSAGES", "8");
    stop(serve(cmd).await);
}

/// Two `serve` processes on one PostgreSQL database with the embedded vector index: only
/// the indexer lease's holder feeds its index, so the second refuses to start and says
/// what to do, rather than answer every vector search from an index nothing feeds. Once
/// the first has stopped (its lease let go), the second starts.
#[tokio::test]
async fn a_second_node_on_postgres_refuses_an_embedded_index_nothing_would_feed() {
    let url = fresh_postgres_database("ceneca_cli").await;
    let (one_dir, two_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = generated_key(one_dir.path());
    let node = |dir: &Path| {
        let mut cmd = ceneca(dir);
        cmd.env("CENECA_DATABASE_URL", &url)
            .env("CENECA_ENCRYPTION_KEY", &key);
        cmd
    };
    let one = serve(node(one_dir.path())).await;
    let started = Instant::now();
    let refused = node(two_dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "a second embedded index was served"
    );
    assert!(
        stderr.contains("another Ceneca node applies this database's vector outbox")
            && stderr.contains("vectors.qdrant_url"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    stop(one);
    stop(serve(node(two_dir.path())).await);
}

/// A user with a workspace and a message to attach embeddings to: (token, workspace id,
/// message id).
async fn embedding_source(base: &str, email: &str) -> (String, String, String) {
    let (status, body) = post(
        base,
        "/api/v1/auth/register",
        None,
        json!({"email": email, "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let (_, ws) = post(
        base,
        "/api/v1/workspaces",
        Some(&token),
        json!({"name": "V"}),
    )
    .await;
    let (_, thread) = post(
        base,
        "/api/v1/threads",
        Some(&token),
        json!({"workspace_id": ws["id"], "title": "t"}),
    )
    .await;
    let (_, message) = post(
        base,
        &format!(
            "/api/v1/threads/{}/messages",
            thread["id"].as_str().unwrap()
        ),
        Some(&token),
        json!({"role": "user", "content": "hello"}),
    )
    .await;
    (
        token,
        ws["id"].as_str().unwrap().to_owned(),
        message["id"].as_str().unwrap().to_owned(),
    )
}

/// An 8-dimension vector along axis `i`.
fn axis8(i: usize) -> Vec<f32> {
    let mut v = vec![0.05; 8];
    v[i % 8] = 1.0;
    v
}

/// The ids of the points a search of 50 finds, or `None` while it is refused (503).
async fn points_found(base: &str, token: &str) -> Option<Vec<String>> {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/v1/vectors/messages/search"))
        .bearer_auth(token)
        .json(&json!({"vector": axis8(0), "limit": 50}))
        .send()
        .await
        .unwrap();
    if res.status() != 200 {
        return None;
    }
    let body: Value = res.json().await.unwrap();
    Some(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_owned())
            .collect(),
    )
}

/// Waits until a search finds exactly `expected` (in any order).
async fn finds_exactly(base: &str, token: &str, expected: &[String]) {
    let started = Instant::now();
    loop {
        let found = points_found(base, token).await;
        if let Some(mut found) = found.clone() {
            let mut want = expected.to_vec();
            found.sort();
            want.sort();
            if found == want {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the search finds {found:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Regression (second attack): a vector folder restored from an older copy kept its id,
/// so the node served it as current and missed what was written since; a `CURRENT` naming
/// a shard that is gone made the node delete the real shard and serve an empty index. Now
/// the index's mark of the last round applied differs from the database's, and the node
/// rebuilds the index from the database; a damaged collection is reported (503) and
/// rebuilt, never served empty.
#[tokio::test]
async fn regression_a_restored_or_damaged_vector_folder_is_rebuilt_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let eight = |mut cmd: Command| {
        for c in ["MESSAGES", "DOCUMENTS", "ATTACHMENTS"] {
            cmd.env(format!("CENECA_VECTOR_DIMS_{c}"), "8");
        }
        cmd
    };
    // The user's one source, and an upsert of a point of it that waits for the index.
    let server = serve(eight(ceneca(dir.path()))).await;
    let (token, ws, message) = embedding_source(&server.base, "r@example.com").await;
    let source = Source {
        token: token.clone(),
        ws,
        message,
    };
    let first = source.upsert(&server.base, "m1", 1).await;
    stop(server);
    let vectors = dir.path().join("ceneca_data/vectors");
    let copy = dir.path().join("vectors-copy");
    copy_tree(&vectors, &copy);

    let server = serve(eight(ceneca(dir.path()))).await;
    let second = source.upsert(&server.base, "m2", 2).await;
    finds_exactly(&server.base, &token, &[first.clone(), second.clone()]).await;
    stop(server);
    // The older copy back in place: same id, older mark.
    put_back(&copy, &vectors);
    let server = serve(eight(ceneca(dir.path()))).await;
    finds_exactly(&server.base, &token, &[first.clone(), second.clone()]).await;
    stop(server);

    // One collection's folder put back from an older copy (third attack): its own mark is
    // older than the root's.
    let messages = vectors.join("messages");
    let old_messages = dir.path().join("messages-copy");
    copy_tree(&messages, &old_messages);
    let server = serve(eight(ceneca(dir.path()))).await;
    let third = source.upsert(&server.base, "m3", 3).await;
    stop(server);
    put_back(&old_messages, &messages);
    let server = serve(eight(ceneca(dir.path()))).await;
    let all = [first.clone(), second.clone(), third.clone()];
    finds_exactly(&server.base, &token, &all).await;
    stop(server);

    // CURRENT names a shard that is not there, or no shard at all: nothing is deleted,
    // and the collection is rebuilt.
    for current in ["shard-doesnotexist", "..", "."] {
        std::fs::write(messages.join("CURRENT"), current).unwrap();
        let server = serve(eight(ceneca(dir.path()))).await;
        finds_exactly(&server.base, &token, &all).await;
        stop(server);
        assert!(
            !vectors.join("segments").exists() && !vectors.join("wal").exists(),
            "CURRENT {current} wrote outside the collection"
        );
    }
    let check = eight(ceneca(dir.path()))
        .args(["reindex", "--vectors", "--check"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// A user's embedding source: their token, workspace and message.
struct Source {
    token: String,
    ws: String,
    message: String,
}

impl Source {
    /// Upserts an 8-dimension point of the message along axis `i`, waiting for the index;
    /// its id.
    async fn upsert(&self, base: &str, model: &str, i: usize) -> String {
        let (status, body) = post(
            base,
            "/api/v1/vectors/messages/points?wait=true",
            Some(&self.token),
            json!({"source_id": self.message, "workspace_id": self.ws, "model": model, "vector": axis8(i)}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "completed", "{body}");
        body["ids"][0].as_str().unwrap().to_owned()
    }
}

/// `cp -a from to`.
fn copy_tree(from: &Path, to: &Path) {
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .unwrap()
            .success()
    );
}

/// Replaces `folder` with `copy`.
fn put_back(copy: &Path, folder: &Path) {
    std::fs::remove_dir_all(folder).unwrap();
    std::fs::rename(copy, folder).unwrap();
}
