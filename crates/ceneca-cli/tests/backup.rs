//! `ceneca backup create|verify|restore` with the real binary: a backup taken while a
//! server runs and writes go on verifies and restores into a new folder where the data is
//! whole and consistent and the audit chain verifies; a byte changed, a file cut short or
//! a backup cut short is refused with a clear message, and nothing is restored.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

mod common;
use common::{BIN, fresh_postgres_database, serve_with, stop};

fn ceneca(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("CENECA_DATABASE_URL")
        .env_remove("CENECA_ENCRYPTION_KEY")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1");
    cmd
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn call(method: reqwest::Method, url: String, token: &str, body: Option<Value>) -> Value {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    res.json().await.unwrap_or(Value::Null)
}

/// Ada's token, from `/auth/register` or `/auth/login` (`route`).
async fn sign_in(base: &str, route: &str) -> String {
    let body: Value = reqwest::Client::new()
        .post(format!("{base}/auth/{route}"))
        .json(&json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// Creates a row at `path` (`/workspaces`, …) as `token`; answers its id.
async fn create(base: &str, token: &str, path: &str, body: Value) -> String {
    call(
        reqwest::Method::POST,
        format!("{base}{path}"),
        token,
        Some(body),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Uploads `file` as the content of `attachment`.
async fn put_file(base: &str, token: &str, attachment: &str, file: Vec<u8>) {
    let uploaded = reqwest::Client::new()
        .put(format!("{base}/attachments/{attachment}/content"))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(file)
        .send()
        .await
        .unwrap();
    assert!(uploaded.status().is_success(), "{}", uploaded.status());
}

/// The one backup folder under `out`.
fn backup_in(out: &Path) -> std::path::PathBuf {
    let found: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_writes_go_on_verifies_and_restores_whole() {
    let root = tempfile::tempdir().unwrap();
    let (data, out, restored) = (
        root.path().join("data"),
        root.path().join("backups"),
        root.path().join("restored"),
    );
    std::fs::create_dir(&data).unwrap();
    let server = serve_with(ceneca(&data), &[], Stdio::inherit()).await;
    let base = format!("{}/api/v1", server.base);
    let token = sign_in(&base, "register").await;
    let post = |path: &str, body: Value| {
        call(
            reqwest::Method::POST,
            format!("{base}{path}"),
            &token,
            Some(body),
        )
    };
    let ws = post("/workspaces", json!({"name": "Mine"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let thread = post(
        "/threads",
        json!({"workspace_id": ws, "title": "backed up"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let attachment = post(
        "/attachments",
        json!({"workspace_id": ws, "file_name": "scan.png"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut file = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    file.extend((0..300_000u32).map(|i| (i * 7 % 251) as u8));
    let uploaded = reqwest::Client::new()
        .put(format!("{base}/attachments/{attachment}/content"))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(file.clone())
        .send()
        .await
        .unwrap();
    assert!(uploaded.status().is_success());

    // A writer goes on while the backup is taken.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (writing, base, token, thread) =
            (writing.clone(), base.clone(), token.clone(), thread.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while writing.load(Ordering::Relaxed) || n < 20 {
                call(
                    reqwest::Method::POST,
                    format!("{base}/threads/{thread}/messages"),
                    &token,
                    Some(json!({"role": "user", "content": format!("message {n}")})),
                )
                .await;
                n += 1;
            }
            n
        })
    };
    let created = ceneca(&data)
        .args(["backup", "create", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    writing.store(false, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(created.status.success(), "{}", text(&created));
    assert!(text(&created).contains("MiB/s"), "{}", text(&created));
    stop(server);
    let backup = backup_in(&out);

    let verified = ceneca(&data)
        .arg("backup")
        .arg("verify")
        .arg(&backup)
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(text(&verified).contains("is whole"), "{}", text(&verified));

    // Without the key ring that wrote it, nothing opens it.
    let keyless = ceneca(root.path())
        .args(["--data-dir", "elsewhere", "backup", "verify"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(!keyless.status.success());
    assert!(text(&keyless).contains("--key-file"), "{}", text(&keyless));

    let key_file = data.join("ceneca_data").join("keys").join("master.key");
    let restore = ceneca(root.path())
        .arg("--data-dir")
        .arg(&restored)
        .args(["backup", "restore"])
        .arg(&backup)
        .arg("--key-file")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(restore.status.success(), "{}", text(&restore));
    // Found by the attack: the head was read after the snapshot, so with writes going on
    // the restored chain ended before it ("the tail was cut"). It is the snapshot's now.
    let printed = text(&restore);
    let head = printed
        .split("--expect-head ")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap()
        .to_owned();
    let expected = ceneca(&restored)
        .args(["--data-dir", ".", "audit", "verify", "--expect-head", &head])
        .output()
        .unwrap();
    assert!(expected.status.success(), "{}", text(&expected));
    let audit = ceneca(&restored)
        .args(["--data-dir", "."])
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(audit.status.success(), "{}", text(&audit));

    // The restored folder serves a consistent state: a thread's count of messages is
    // the messages it holds, the file reads back byte for byte.
    let server = serve_with(ceneca(&restored), &["--data-dir", "."], Stdio::inherit()).await;
    let base = format!("{}/api/v1", server.base);
    let token = sign_in(&base, "login").await;
    let row = call(
        reqwest::Method::GET,
        format!("{base}/threads/{thread}"),
        &token,
        None,
    )
    .await;
    let counted = row["message_count"].as_u64().unwrap();
    let mut listed = 0;
    let mut cursor = String::new();
    loop {
        let page = call(
            reqwest::Method::GET,
            format!("{base}/threads/{thread}/messages?limit=200{cursor}"),
            &token,
            None,
        )
        .await;
        listed += page["items"].as_array().unwrap().len() as u64;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(counted, listed, "the counter and the rows disagree");
    // Found by text as before (the full-text index is in the snapshot).
    let found = call(
        reqwest::Method::GET,
        format!("{base}/search?q=message&limit=100"),
        &token,
        None,
    )
    .await;
    assert!(!found["items"].as_array().unwrap().is_empty(), "{found}");
    assert!(listed <= written as u64, "{listed} > {written}");
    let content = reqwest::Client::new()
        .get(format!("{base}/attachments/{attachment}/content"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(content.status(), 200);
    assert_eq!(content.bytes().await.unwrap().as_ref(), file.as_slice());
    stop(server);

    // A changed byte, anywhere: verify and restore say which file, nothing is restored.
    for target in ["database.sealed", "manifest.sealed"] {
        let damaged = root.path().join(format!("damaged-{target}"));
        copy_dir(&backup, &damaged);
        let path = damaged.join(target);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let verified = ceneca(&data)
            .arg("backup")
            .arg("verify")
            .arg(&damaged)
            .output()
            .unwrap();
        assert!(!verified.status.success());
        assert!(text(&verified).contains("damaged"), "{}", text(&verified));
        assert!(text(&verified).contains(target), "{}", text(&verified));
        let into = root.path().join(format!("not-restored-{target}"));
        let restore = ceneca(root.path())
            .arg("--data-dir")
            .arg(&into)
            .args(["backup", "restore"])
            .arg(&damaged)
            .arg("--key-file")
            .arg(&key_file)
            .output()
            .unwrap();
        assert!(!restore.status.success());
        assert!(!into.join("ceneca.db").exists());
    }
    // A file cut short, and a backup cut short (as a kill leaves it).
    let cut = root.path().join("cut");
    copy_dir(&backup, &cut);
    let blob = std::fs::read_dir(cut.join("blobs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let len = std::fs::metadata(&blob).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&blob)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let verified = ceneca(&data)
        .arg("backup")
        .arg("verify")
        .arg(&cut)
        .output()
        .unwrap();
    assert!(!verified.status.success());
    assert!(text(&verified).contains("damaged"), "{}", text(&verified));
    let partial = root
        .path()
        .join("ceneca-backup-20260101T000000Z-0123456789ab.partial");
    copy_dir(&backup, &partial);
    let verified = ceneca(&data)
        .arg("backup")
        .arg("verify")
        .arg(&partial)
        .output()
        .unwrap();
    assert!(!verified.status.success());
    assert!(text(&verified).contains("cut short"), "{}", text(&verified));
    // Into a folder that is not empty: refused.
    let restore = ceneca(root.path())
        .arg("--data-dir")
        .arg(&restored)
        .args(["backup", "restore"])
        .arg(&backup)
        .arg("--key-file")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(!restore.status.success());
    assert!(text(&restore).contains("not empty"), "{}", text(&restore));

    // Found by the attack: files beside the backup's own, and a marker that is a link (a
    // read of /dev/zero never ends), passed or hung.
    let extra = root.path().join("extra");
    copy_dir(&backup, &extra);
    std::fs::write(extra.join("database.snapshot"), b"plain").unwrap();
    let verified = ceneca(&data)
        .arg("backup")
        .arg("verify")
        .arg(&extra)
        .output()
        .unwrap();
    assert!(!verified.status.success());
    assert!(
        text(&verified).contains("not part of a backup"),
        "{}",
        text(&verified)
    );
    let linked = root.path().join("linked");
    copy_dir(&backup, &linked);
    std::fs::remove_file(linked.join("BACKUP")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", linked.join("BACKUP")).unwrap();
    let verified = ceneca(&data)
        .arg("backup")
        .arg("verify")
        .arg(&linked)
        .output()
        .unwrap();
    assert!(!verified.status.success());
    assert!(
        text(&verified).contains("not a regular file"),
        "{}",
        text(&verified)
    );

    // Found by the second attack: a manifest that is a pipe made verify wait for ever.
    let piped = root.path().join("piped");
    copy_dir(&backup, &piped);
    std::fs::remove_file(piped.join("manifest.sealed")).unwrap();
    let made = Command::new("mkfifo")
        .arg(piped.join("manifest.sealed"))
        .status()
        .unwrap();
    assert!(made.success());
    let verified = ceneca(&data)
        .arg("backup")
        .arg("verify")
        .arg(&piped)
        .output()
        .unwrap();
    assert!(!verified.status.success());
    assert!(
        text(&verified).contains("not a regular file"),
        "{}",
        text(&verified)
    );

    // Found by the attack: a mistyped data folder was created, with a new key, and
    // "backed up" empty.
    let typo = ceneca(root.path())
        .args(["--data-dir", "typo", "backup", "create", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!typo.status.success());
    assert!(
        text(&typo).contains("nothing to back up"),
        "{}",
        text(&typo)
    );
    assert!(!root.path().join("typo").join("keys").exists());

    // Found by the attack: two backups at once destroyed each other's; the second waits
    // its turn now (refused while the first holds the folder's backup lock).
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data.join("ceneca_data").join("backup.lock"))
        .unwrap();
    lock.lock().unwrap();
    let second = ceneca(&data)
        .args(["backup", "create", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        text(&second).contains("another backup"),
        "{}",
        text(&second)
    );
    drop(lock);
    let third = ceneca(&data)
        .args(["backup", "create", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(third.status.success(), "{}", text(&third));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The complete backups `ceneca backup list` names under `out`.
fn listed(data: &Path, out: &Path) -> Vec<String> {
    let list = ceneca(data)
        .args(["backup", "list", "--dir"])
        .arg(out)
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", text(&list));
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with("ceneca-backup-"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_backup_killed_midway_leaves_the_previous_one_valid_and_none_half_written() {
    let root = tempfile::tempdir().unwrap();
    let (data, out) = (root.path().join("data"), root.path().join("backups"));
    std::fs::create_dir(&data).unwrap();
    // A file large enough that the backup is caught while it seals it.
    let server = serve_with(ceneca(&data), &[], Stdio::inherit()).await;
    let base = format!("{}/api/v1", server.base);
    let token = sign_in(&base, "register").await;
    let ws = create(&base, &token, "/workspaces", json!({"name": "Mine"})).await;
    let attachment = create(
        &base,
        &token,
        "/attachments",
        json!({"workspace_id": ws, "file_name": "big.png"}),
    )
    .await;
    let mut file = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    file.extend((0..16u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    put_file(&base, &token, &attachment, file).await;
    stop(server);

    let first = ceneca(&data)
        .args(["backup", "create", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", text(&first));
    let previous = listed(&data, &out);
    assert_eq!(previous.len(), 1);

    // kill -9 while the second seals the file.
    let mut second = ceneca(&data)
        .args(["backup", "create", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sealing = || {
        std::fs::read_dir(&out).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().ends_with(".partial")
                && e.path().join("blobs").join("000001.sealed").exists()
        })
    };
    let waited = std::time::Instant::now();
    while !sealing() {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(60),
            "the second backup never reached the file"
        );
        assert!(
            second.try_wait().unwrap().is_none(),
            "the second backup ended before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    second.kill().unwrap();
    second.wait().unwrap();

    // The previous backup is listed alone and still whole; what the kill left is no
    // backup and says so.
    assert_eq!(listed(&data, &out), previous);
    let verified = ceneca(&data)
        .args(["backup", "verify"])
        .arg(out.join(&previous[0]))
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", text(&verified));
    let partial = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".partial"))
        .expect("the killed run's folder");
    let refused = ceneca(&data)
        .args(["backup", "verify"])
        .arg(&partial)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(text(&refused).contains("cut short"), "{}", text(&refused));

    // The next run clears what the kill left (the half-written folder, the snapshot in
    // the data folder) and writes a whole one.
    let next = ceneca(&data)
        .args(["backup", "create", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(next.status.success(), "{}", text(&next));
    assert!(!partial.exists());
    assert_eq!(listed(&data, &out).len(), 2);
    assert!(!data.join("ceneca_data").join("backup-snapshot.db").exists());
}

/// `ceneca` in `dir` on the PostgreSQL database `url` with the shared key `key`.
fn on_postgres(dir: &Path, url: &str, key: &str) -> Command {
    let mut cmd = ceneca(dir);
    cmd.env("CENECA_DATABASE_URL", url)
        .env("CENECA_ENCRYPTION_KEY", key);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_backup_restores_into_a_new_database_and_nowhere_else() {
    let root = tempfile::tempdir().unwrap();
    let (data, out) = (root.path().join("data"), root.path().join("backups"));
    std::fs::create_dir(&data).unwrap();
    let generated = Command::new(BIN)
        .args(["keys", "generate"])
        .output()
        .unwrap();
    let key = String::from_utf8(generated.stdout)
        .unwrap()
        .trim()
        .to_owned();
    let source = fresh_postgres_database("backup_src").await;
    let server = serve_with(on_postgres(&data, &source, &key), &[], Stdio::inherit()).await;
    let base = format!("{}/api/v1", server.base);
    let token = sign_in(&base, "register").await;
    let ws = create(&base, &token, "/workspaces", json!({"name": "Mine"})).await;
    let thread = create(
        &base,
        &token,
        "/threads",
        json!({"workspace_id": ws, "title": "on postgres"}),
    )
    .await;
    for n in 0..30 {
        create(
            &base,
            &token,
            &format!("/threads/{thread}/messages"),
            json!({"role": "user", "content": format!("line {n}\twith a tab\nand \\. a backslash")}),
        )
        .await;
    }
    stop(server);
    let created = on_postgres(&data, &source, &key)
        .args(["backup", "create", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", text(&created));
    let backup = backup_in(&out);
    let verified = on_postgres(&data, &source, &key)
        .args(["backup", "verify"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        text(&verified).contains("postgres database"),
        "{}",
        text(&verified)
    );

    // Found by the attack: a database that was not new was migrated before the restore
    // refused it, and the data folder kept what the restore had put there.
    let taken = fresh_postgres_database("backup_taken").await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&taken)
        .await
        .unwrap();
    sqlx::Executor::execute(
        &mut conn,
        "CREATE TABLE other_app (x INT); INSERT INTO other_app VALUES (1)",
    )
    .await
    .unwrap();
    let refused_into = root.path().join("refused");
    let refused = on_postgres(root.path(), &taken, &key)
        .arg("--data-dir")
        .arg(&refused_into)
        .args(["backup", "restore"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("not Ceneca's"),
        "{}",
        text(&refused)
    );
    let tables: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(tables, 1, "the database was not migrated");
    assert_eq!(std::fs::read_dir(&refused_into).unwrap().count(), 0);
    // Found by the second attack: only tables were looked at, so a database with an
    // application's function (or a schema of its own) passed for new.
    let with_function = fresh_postgres_database("backup_fn").await;
    let mut fn_conn = <sqlx::PgConnection as sqlx::Connection>::connect(&with_function)
        .await
        .unwrap();
    sqlx::Executor::execute(
        &mut fn_conn,
        "CREATE FUNCTION app_answer() RETURNS int LANGUAGE sql AS 'SELECT 42'",
    )
    .await
    .unwrap();
    let refused = on_postgres(root.path(), &with_function, &key)
        .arg("--data-dir")
        .arg(root.path().join("refused-fn"))
        .args(["backup", "restore"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(text(&refused).contains("app_answer"), "{}", text(&refused));
    // Into an embedded folder: refused before anything is written.
    let embedded = root.path().join("embedded");
    let wrong_engine = ceneca(root.path())
        .env("CENECA_ENCRYPTION_KEY", &key)
        .arg("--data-dir")
        .arg(&embedded)
        .args(["backup", "restore"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(!wrong_engine.status.success());
    assert!(
        text(&wrong_engine).contains("store.database_url"),
        "{}",
        text(&wrong_engine)
    );
    assert!(!embedded.join("ceneca.db").exists());

    // Into a new database: the same thread, messages byte for byte, a chain that verifies.
    let target = fresh_postgres_database("backup_dst").await;
    let restored = root.path().join("restored");
    let restore = on_postgres(root.path(), &target, &key)
        .arg("--data-dir")
        .arg(&restored)
        .args(["backup", "restore"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(restore.status.success(), "{}", text(&restore));
    let audit = on_postgres(&restored, &target, &key)
        .args(["--data-dir", ".", "audit", "verify"])
        .output()
        .unwrap();
    assert!(audit.status.success(), "{}", text(&audit));
    let server = serve_with(
        on_postgres(&restored, &target, &key),
        &["--data-dir", "."],
        Stdio::inherit(),
    )
    .await;
    let base = format!("{}/api/v1", server.base);
    let token = sign_in(&base, "login").await;
    let page = call(
        reqwest::Method::GET,
        format!("{base}/threads/{thread}/messages?limit=100"),
        &token,
        None,
    )
    .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 30);
    assert!(
        items
            .iter()
            .any(|m| m["content"] == "line 7\twith a tab\nand \\. a backslash"),
        "{page}"
    );
    stop(server);
}
