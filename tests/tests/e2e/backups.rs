//! The server's own backups over real HTTP, on SQLite and PostgreSQL: system
//! administrators list and take them (others learn nothing of the routes), one at a
//! time, each audited; the oldest go beyond `backup.keep`; and a backup restores into a
//! new folder — on PostgreSQL its logical export into a new, empty database — with the
//! same rows and an audit chain that verifies to the head the backup recorded.

use std::time::Duration;

use ceneca_e2e::{Backend, ScratchDatabase, TestServer, User, on_every_backend};
use ceneca_service::{ServiceConfig, Services};
use ceneca_store::StoreOptions;
use reqwest::Method;
use serde_json::{Value, json};

on_every_backend!(
    administrators_take_and_list_backups_that_restore_to_the_same_rows,
    older_backups_go_beyond_the_number_kept,
);

const ROUTE: &str = "/api/v1/admin/backups";

/// Waits until the run in progress ends; answers the list then.
async fn finished(s: &TestServer, admin: &User) -> Value {
    for _ in 0..600 {
        let list = s.get(admin, ROUTE).await.expect(200);
        if list.get("running").is_none() {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the backup did not end in 30 s");
}

/// Takes one backup over the API and waits for it; answers the list after it.
async fn take(s: &TestServer, admin: &User) -> Value {
    let started = s.call(Method::POST, ROUTE, Some(&admin.token), None).await;
    assert_eq!(started.status, 202, "{started:?}");
    assert_eq!(started.body["outcome"], "running");
    assert_eq!(started.body["trigger"], "manual");
    let list = finished(s, admin).await;
    assert_eq!(list["last_run"]["outcome"], "done", "{list}");
    list
}

fn engine_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// The tables a user's work fills.
const TABLES: [&str; 9] = [
    "users",
    "workspaces",
    "projects",
    "threads",
    "messages",
    "documents",
    "attachments",
    "organizations",
    "sessions",
];

/// Rows of each of [`TABLES`] on the test server.
async fn counts(s: &TestServer) -> Vec<i64> {
    let mut out = Vec::new();
    for table in TABLES {
        let n = s
            .raw_text(&format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table}"))
            .await;
        out.push(n.unwrap().parse().unwrap());
    }
    out
}

/// Rows of each of [`TABLES`] in the database at `url`, read straight from it.
async fn counts_at(url: &str) -> Vec<i64> {
    let mut out = Vec::new();
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            for table in TABLES {
                out.push(
                    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                        .unwrap(),
                );
            }
        }
        None => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
                .await
                .unwrap();
            for table in TABLES {
                let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                out.push(n);
            }
        }
    }
    out
}

async fn administrators_take_and_list_backups_that_restore_to_the_same_rows(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = ceneca_e2e::world(&s, &u).await;
    let attachment = s
        .post(
            &u,
            "/api/v1/attachments",
            json!({"workspace_id": w.workspace, "file_name": "notes.txt"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = b"backed up, byte for byte\n".repeat(1000);
    assert_eq!(s.put_content(&u, &attachment, file.clone()).await, 200);
    // A message body stored compressed (old enough for maintenance to pack it).
    let long = format!(
        "{} quokkafish {}",
        "all green. ".repeat(40),
        "pumps ok. ".repeat(20)
    );
    let packed = s
        .post(
            &u,
            &format!("/api/v1/threads/{}/messages", w.thread),
            json!({"role": "user", "content": long}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.raw_execute(&format!(
        "UPDATE messages SET updated_at = '2020-01-01T00:00:00.000000Z' WHERE id = '{packed}'"
    ))
    .await;
    let report = s
        .services
        .run_maintenance(
            ceneca_wire::maintenance::MaintenanceTrigger::Manual,
            None,
            false,
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(report.messages_compressed, 1, "{report:?}");
    let admin = s.admin().await;

    // Others than system administrators learn nothing of the routes, bad input included.
    for (method, path, body) in [
        (Method::GET, ROUTE.to_owned(), None),
        (Method::POST, ROUTE.to_owned(), None),
        (Method::POST, ROUTE.to_owned(), Some(json!({}))),
        (Method::GET, format!("{ROUTE}?x=1"), None),
        (Method::POST, format!("{ROUTE}?x=1"), None),
    ] {
        let hidden = s.call(method, &path, Some(&u.token), body.as_ref()).await;
        assert_eq!(hidden.status, 404, "{hidden:?}");
    }
    // Found by the attack: a backup folder that cannot be read answered 500.
    let backups = s.data_dir().join("backups");
    std::fs::write(&backups, b"a file, not a folder").unwrap();
    let unreadable = s.get(&admin, ROUTE).await;
    assert_eq!(unreadable.status, 503, "{unreadable:?}");
    assert!(
        unreadable.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be read")
    );
    std::fs::remove_file(&backups).unwrap();
    let empty = s.get(&admin, ROUTE).await.expect(200);
    assert_eq!(empty["items"], json!([]), "{empty}");
    assert_eq!(empty["interval_hours"], 0);
    assert!(empty.get("next_at").is_none(), "no schedule: {empty}");
    let with_body = s
        .call(Method::POST, ROUTE, Some(&admin.token), Some(&json!({})))
        .await;
    assert_eq!(with_body.status, 400, "{with_body:?}");
    let with_query = s
        .call(
            Method::POST,
            &format!("{ROUTE}?now=1"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(with_query.status, 400, "{with_query:?}");

    // A folder a killed run left half-written is no backup: not listed, and removed by
    // the next run.
    let cut = backups.join("ceneca-backup-20260101T000000Z-0123456789ab.partial");
    std::fs::create_dir_all(&cut).unwrap();
    std::fs::write(cut.join(".writing"), b"").unwrap();
    std::fs::write(
        cut.join("BACKUP"),
        "ceneca backup 1\nid 0123456789abcdef0123456789abcdef\nkey k\ncreated 2026-01-01T00:00:00Z\n",
    )
    .unwrap();
    // Found by the attack: a `.partial` another run (of another deployment sharing the
    // folder) is writing was removed from under it. It holds its lock: it stays.
    let writing = backups.join("ceneca-backup-20260101T000001Z-0123456789ac.partial");
    std::fs::create_dir_all(&writing).unwrap();
    let held = std::fs::File::create(writing.join(".writing")).unwrap();
    held.lock().unwrap();
    assert_eq!(s.get(&admin, ROUTE).await.expect(200)["items"], json!([]));

    // One at a time: of two asked together, one is refused while the other runs.
    let (a, b) = tokio::join!(
        s.call(Method::POST, ROUTE, Some(&admin.token), None),
        s.call(Method::POST, ROUTE, Some(&admin.token), None)
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [202, 409], "{a:?} {b:?}");
    let list = finished(&s, &admin).await;
    assert_eq!(list["last_run"]["outcome"], "done", "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let name = items[0]["name"].as_str().unwrap();
    assert_eq!(list["last_run"]["backup"], name);
    assert!(items[0]["bytes"].as_u64().unwrap() > file.len() as u64);
    assert!(!cut.exists(), "the cut-short folder was removed");
    assert!(writing.exists(), "the one being written stays");
    drop(held);
    let runs = s.audit_log(&admin, "action=backup.create").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["actor_id"], admin.id.as_str());
    assert_eq!(runs[0]["outcome"], "success");
    assert_eq!(runs[0]["details"]["trigger"], "manual");

    // Restored into a new folder (and, on PostgreSQL, a new database): the same rows,
    // the same file, and a chain that verifies to the head the backup recorded.
    let backup = backups.join(name);
    let manifest = s.services.verify_backup(&backup).await.unwrap();
    assert_eq!(manifest.engine, engine_name(backend));
    let into = tempfile::tempdir().unwrap();
    let restored_dir = into.path().join("data");
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(ScratchDatabase::create().await),
    };
    let target = ceneca_service::backup::RestoreTarget {
        engine: engine_name(backend),
        database_encrypted: false,
    };
    let keys = s.keys.clone();
    ceneca_service::backup::restore_backup(keys.clone(), &backup, &restored_dir, target)
        .await
        .unwrap();
    let url = match &database {
        None => format!("sqlite://{}", restored_dir.join("ceneca.db").display()),
        Some(database) => database.url.clone(),
    };
    let store = ceneca_store::open(&StoreOptions::new(url.clone()))
        .await
        .unwrap();
    store.migrate_up().await.unwrap();
    if database.is_some() {
        let export = restored_dir.join(ceneca_service::backup::POSTGRES_EXPORT);
        let head = store.restore_snapshot(export.clone()).await.unwrap();
        assert_eq!(head.to_string(), manifest.audit_head);
        // Found by the attack: the counter of kept callers started again at the
        // migration's 0, so a node still running could meet the value it kept callers at.
        // It jumps past the microseconds since 1970 instead.
        assert!(
            store.auth_generation().await.unwrap() > 1_700_000_000_000_000,
            "the restore moves the authentication counter past any value it held"
        );
        // Loaded once: a second load into the same database is refused, all of it.
        let again = store.restore_snapshot(export).await.unwrap_err();
        assert!(again.to_string().contains("already holds data"), "{again}");
    }
    if database.is_some() {
        // Found by the attack: the full-text trigger ran on the load and emptied the
        // words of compressed bodies (found on the source, not on the copy).
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let (packed, wordless): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE content_packed IS NOT NULL), \
             COUNT(*) FILTER (WHERE content_packed IS NOT NULL AND search IS NULL) FROM messages",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!((packed, wordless), (1, 0));
    }
    let restored = Services::new(store, keys, ServiceConfig::default());
    let report = restored.verify_audit_chain().await.unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.head.to_string(), manifest.audit_head);
    let source = counts(&s).await;
    let copy = counts_at(&url).await;
    assert_eq!(source, copy);
    let blobs = ceneca_e2e::files_under(&restored_dir.join("blobs"));
    assert!(
        blobs
            .iter()
            .any(|p| std::fs::read(p).is_ok_and(|b| b == file)),
        "the attachment's file is restored: {blobs:?}"
    );
    assert!(
        restored_dir.join("audit.head").exists(),
        "the head the backup recorded anchors the restored chain"
    );
}

async fn older_backups_go_beyond_the_number_kept(backend: Backend) {
    let config = ServiceConfig {
        backup_keep: 2,
        ..ServiceConfig::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let admin = s.admin().await;
    // Found by the attack: a marker's time was trusted (one dated 9999 made every real
    // backup, the new one included, "older"), and another deployment's backups in a
    // shared folder were counted and removed. Neither counts nor goes now.
    let backups = s.data_dir().join("backups");
    let fake = backups.join("ceneca-backup-future");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(
        fake.join("BACKUP"),
        "ceneca backup 1\nid 0123456789abcdef0123456789abcdef\nkey test\ncreated 9999-12-31T00:00:00Z\n",
    )
    .unwrap();
    let elsewhere = TestServer::start(backend).await;
    let foreign_admin = elsewhere.admin().await;
    let foreign = take(&elsewhere, &foreign_admin).await["last_run"]["backup"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::rename(
        elsewhere.data_dir().join("backups").join(&foreign),
        backups.join(&foreign),
    )
    .unwrap();
    let mut names = Vec::new();
    for _ in 0..3 {
        let list = take(&s, &admin).await;
        names.push(list["last_run"]["backup"].as_str().unwrap().to_owned());
        if names.len() == 1 {
            // Found by the second attack: shells of a real backup (its marker and
            // manifest copied under other names) were listed and sorted before it, so
            // the prune removed the real ones. A manifest counts in its own folder only.
            for shell in ["ceneca-backup-zz1", "ceneca-backup-zz2"] {
                let shell = backups.join(shell);
                std::fs::create_dir_all(&shell).unwrap();
                for file in ["BACKUP", "manifest.sealed"] {
                    std::fs::copy(backups.join(&names[0]).join(file), shell.join(file)).unwrap();
                }
            }
        }
    }
    let list = s.get(&admin, ROUTE).await.expect(200);
    assert_eq!(list["keep"], 2);
    let listed: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [names[2].as_str(), names[1].as_str()], "{list}");
    assert_eq!(list["last_run"]["removed"], json!([names[0]]));
    assert!(!s.data_dir().join("backups").join(&names[0]).exists());
    assert!(fake.exists() && backups.join(&foreign).exists());
    assert!(
        backups.join("ceneca-backup-zz1").exists() && backups.join("ceneca-backup-zz2").exists()
    );
    let runs = s.audit_log(&admin, "action=backup.create").await;
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter()
            .any(|r| r["details"]["removed"] == json!([names[0]])),
        "{runs:?}"
    );
}
