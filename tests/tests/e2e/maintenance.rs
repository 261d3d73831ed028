//! Retention and maintenance over real HTTP, on SQLite and PostgreSQL: idle threads are
//! archived (pinned ones never) with their files and embeddings removed and everything
//! else kept, unarchiving brings the rest back, an organization's policy overrides the
//! server's, a dry run changes nothing, one run at a time, every round audited.
//!
//! The clock is the data's: threads are made idle by writing their times in the past.

use ceneca_e2e::{Backend, TEST_VECTOR_DIMS, TestServer, User, files_under, on_every_backend};
use ceneca_wire::maintenance::{MaintenanceReport, MaintenanceTrigger};
use reqwest::Method;
use serde_json::{Value, json};

on_every_backend!(
    idle_threads_are_archived_and_unarchiving_brings_back_the_rest,
    an_organizations_policy_overrides_the_servers,
    one_maintenance_run_at_a_time,
    an_archive_decides_on_the_thread_as_it_is_when_written,
    regression_activity_inside_a_thread_keeps_it_from_archive,
    regression_a_file_written_within_the_grace_is_left_to_the_sweep,
    regression_a_local_node_leaves_retention_to_its_upstream,
    old_message_bodies_are_compressed_and_read_and_found_as_before,
);

const LONG_AGO: &str = "2020-01-01T00:00:00.000000Z";

fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.resize(len, 7);
    bytes
}

fn axis(i: usize) -> Vec<f32> {
    let mut v = vec![0.05; TEST_VECTOR_DIMS];
    v[i % TEST_VECTOR_DIMS] = 1.0;
    v
}

fn id(body: &Value) -> String {
    body["id"].as_str().unwrap().to_owned()
}

/// A thread titled `title` in `ws`, with one message; `(thread, message)`.
async fn thread_with_message(s: &TestServer, u: &User, ws: &str, title: &str) -> (String, String) {
    let thread = id(&s
        .post(
            u,
            "/api/v1/threads",
            json!({"workspace_id": ws, "title": title}),
        )
        .await
        .expect(201));
    let message = id(&s
        .post(
            u,
            &format!("/api/v1/threads/{thread}/messages"),
            json!({"role": "user", "content": format!("notes about {title} zebracorn")}),
        )
        .await
        .expect(201));
    (thread, message)
}

/// An attachment of `message` with a file of `len` bytes; its id.
async fn attachment(s: &TestServer, u: &User, ws: &str, message: &str, len: usize) -> String {
    let attachment = id(&s
        .post(
            u,
            "/api/v1/attachments",
            json!({"workspace_id": ws, "message_id": message, "file_name": "plan.png"}),
        )
        .await
        .expect(201));
    assert_eq!(put_file(s, u, &attachment, png(len)).await, 200);
    attachment
}

/// Uploads `bytes` as the content of `attachment`; the status.
async fn put_file(s: &TestServer, u: &User, attachment: &str, bytes: Vec<u8>) -> u16 {
    s.http
        .put(format!(
            "{}/api/v1/attachments/{attachment}/content",
            s.base
        ))
        .bearer_auth(&u.token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Pins `thread`.
async fn pin(s: &TestServer, u: &User, thread: &str) {
    s.patch(
        u,
        &format!("/api/v1/threads/{thread}"),
        json!({"pinned": true}),
    )
    .await
    .expect(200);
}

async fn embed(s: &TestServer, u: &User, collection: &str, ws: &str, source: &str, i: usize) {
    s.post(
        u,
        &format!("/api/v1/vectors/{collection}/points?wait=true"),
        json!({"source_id": source, "workspace_id": ws, "vector": axis(i)}),
    )
    .await
    .expect(200);
}

/// Makes a thread idle since long ago.
async fn idle(s: &TestServer, thread: &str) {
    idle_since(s, thread, LONG_AGO).await;
}

/// Makes a thread, and everything in it, last touched at `at` (as both engines store a
/// time: SQLite's text is fixed-width).
async fn idle_since(s: &TestServer, thread: &str, at: &str) {
    let messages = format!("SELECT id FROM messages WHERE thread_id = '{thread}'");
    let attachments = format!("SELECT id FROM attachments WHERE message_id IN ({messages})");
    for sql in [
        format!(
            "UPDATE threads SET last_message_at = '{at}', updated_at = '{at}' WHERE id = '{thread}'"
        ),
        format!("UPDATE messages SET updated_at = '{at}' WHERE thread_id = '{thread}'"),
        format!("UPDATE attachments SET updated_at = '{at}' WHERE id IN ({attachments})"),
        format!(
            "UPDATE embedding_records SET updated_at = '{at}' WHERE source_id IN ({messages}) OR source_id IN ({attachments})"
        ),
    ] {
        s.raw_execute(&sql).await;
    }
}

async fn content_status(s: &TestServer, u: &User, attachment: &str) -> (u16, Value) {
    let answer = s
        .http
        .get(format!(
            "{}/api/v1/attachments/{attachment}/content",
            s.base
        ))
        .bearer_auth(&u.token)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let body = answer.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn count(s: &TestServer, sql: &str) -> i64 {
    s.raw_text(sql).await.unwrap().parse().unwrap()
}

async fn outbox_drains(s: &TestServer) {
    for _ in 0..100 {
        if count(s, "SELECT CAST(COUNT(*) AS TEXT) FROM vector_outbox").await == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the vector outbox did not drain");
}

/// A server on `backend`, a user and a workspace of theirs.
async fn server_with_workspace(backend: Backend) -> (TestServer, User, String) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let ws = id(&s
        .post(&u, "/api/v1/workspaces", json!({"name": "Mine"}))
        .await
        .expect(201));
    (s, u, ws)
}

async fn run(s: &TestServer, dry_run: bool) -> MaintenanceReport {
    s.services
        .run_maintenance(MaintenanceTrigger::Manual, None, dry_run, &|_| {})
        .await
        .unwrap()
}

async fn idle_threads_are_archived_and_unarchiving_brings_back_the_rest(backend: Backend) {
    let (s, u, ws) = server_with_workspace(backend).await;
    let (old, old_message) = thread_with_message(&s, &u, &ws, "old").await;
    let (pinned, pinned_message) = thread_with_message(&s, &u, &ws, "pinned").await;
    let (fresh, _) = thread_with_message(&s, &u, &ws, "fresh").await;
    let old_file = attachment(&s, &u, &ws, &old_message, 3000).await;
    let pinned_file = attachment(&s, &u, &ws, &pinned_message, 4000).await;
    embed(&s, &u, "messages", &ws, &old_message, 0).await;
    embed(&s, &u, "attachments", &ws, &old_file, 1).await;
    embed(&s, &u, "messages", &ws, &pinned_message, 2).await;
    pin(&s, &u, &pinned).await;
    idle(&s, &old).await;
    idle(&s, &pinned).await;
    let stats_before = s.get(&u, "/api/v1/storage/stats").await.expect(200);

    // Over HTTP, for system administrators only; a dry run changes nothing.
    let admin = s.admin().await;
    let route = "/api/v1/admin/maintenance";
    let post = |who: &User, path: String| {
        let token = who.token.clone();
        let s = &s;
        async move { s.call(Method::POST, &path, Some(&token), None).await }
    };
    let refused = post(&u, route.to_owned()).await;
    assert_eq!(refused.status, 404, "{refused:?}");
    // Found by the second attack: bad input told others the route exists (400, not 404).
    for path in [format!("{route}?dry_run=bogus"), format!("{route}?x=1")] {
        let hidden = post(&u, path).await;
        assert_eq!(hidden.status, 404, "{hidden:?}");
    }
    let hidden = s
        .call(Method::POST, route, Some(&u.token), Some(&json!({})))
        .await;
    assert_eq!(hidden.status, 404, "{hidden:?}");
    let bad = post(&admin, format!("{route}?dry_run=maybe")).await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(
        bad.body["error"]["fields"]["dry_run"].is_string(),
        "{bad:?}"
    );
    let unknown = post(&admin, format!("{route}?force=1")).await;
    assert_eq!(unknown.status, 400, "{unknown:?}");
    // Found by the attack: a body was ignored, so `{"dry_run": true}` there ran for real.
    let with_body = s
        .call(
            Method::POST,
            route,
            Some(&admin.token),
            Some(&json!({"dry_run": true})),
        )
        .await;
    assert_eq!(with_body.status, 400, "{with_body:?}");
    assert!(with_body.body["error"]["fields"]["body"].is_string());
    let preview = post(&admin, format!("{route}?dry_run=true"))
        .await
        .expect(200);
    assert_eq!(preview["dry_run"], true);
    assert_eq!(preview["threads_archived"], 1, "{preview}");
    assert_eq!(preview["messages_in_archived_threads"], 1);
    assert_eq!(preview["attachment_files_removed"], 1);
    assert_eq!(preview["attachment_bytes_removed"], 3000);
    assert_eq!(preview["embeddings_removed"], 2);
    assert_eq!(preview["blob_files_deleted"], 0);
    let thread = s
        .get(&u, &format!("/api/v1/threads/{old}"))
        .await
        .expect(200);
    assert_eq!(thread["is_archived"], false, "a dry run changed nothing");
    assert_eq!(content_status(&s, &u, &old_file).await.0, 200);

    // Files a run deletes are older than the sweep's grace (another process's upload may
    // be about to name a newer one): these were uploaded a moment ago.
    s.age_blobs();
    let report = post(&admin, route.to_owned()).await.expect(200);
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["trigger"], "manual");
    assert_eq!(report["threads_archived"], 1, "{report}");
    assert_eq!(report["messages_in_archived_threads"], 1);
    assert_eq!(report["attachment_files_removed"], 1);
    assert_eq!(report["attachment_bytes_removed"], 3000);
    assert_eq!(report["embeddings_removed"], 2);
    assert_eq!(report["blob_files_deleted"], 1);
    assert_eq!(report["rules"][0]["archive_after_days"], 180);

    // The idle thread is archived; the pinned one and the fresh one are not.
    let thread = s
        .get(&u, &format!("/api/v1/threads/{old}"))
        .await
        .expect(200);
    assert_eq!(thread["is_archived"], true);
    assert!(thread["archived_at"].is_string());
    for other in [&pinned, &fresh] {
        let t = s
            .get(&u, &format!("/api/v1/threads/{other}"))
            .await
            .expect(200);
        assert_eq!(t["is_archived"], false, "{t}");
    }
    // Its messages are kept, and found by text as before.
    let messages = s
        .get(&u, &format!("/api/v1/threads/{old}/messages"))
        .await
        .expect(200);
    assert_eq!(messages["items"].as_array().unwrap().len(), 1);
    let found = s.get(&u, "/api/v1/search?q=zebracorn").await.expect(200);
    let found: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert!(found.contains(&old_message.as_str()), "{found:?}");
    // The file is gone (410, said so), what describes it stays.
    let (status, body) = content_status(&s, &u, &old_file).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "content_removed");
    // Whose is it: another account learns nothing of it, removed or not (404, never 410).
    let stranger = s.user("stranger").await;
    let (status, body) = content_status(&s, &stranger, &old_file).await;
    assert_eq!(status, 404, "{body}");
    let row = s
        .get(&u, &format!("/api/v1/attachments/{old_file}"))
        .await
        .expect(200);
    assert_eq!(row["file_name"], "plan.png");
    assert_eq!(row["size_bytes"], 3000);
    assert!(
        row["sha256"].is_string() && row["content_removed_at"].is_string(),
        "{row}"
    );
    assert_eq!(content_status(&s, &u, &pinned_file).await.0, 200);
    let blobs = files_under(&s.data_dir().join("blobs"));
    assert_eq!(
        blobs.len(),
        1,
        "only the pinned thread's file is left: {blobs:?}"
    );
    // Its embeddings are gone from SQL and, through the outbox, from the index.
    let embeddings = format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM embedding_records WHERE source_id IN ('{old_message}', '{old_file}')"
    );
    assert_eq!(count(&s, &embeddings).await, 0);
    outbox_drains(&s).await;
    for (collection, i) in [("messages", 0), ("attachments", 1)] {
        let hits = s
            .post(
                &u,
                &format!("/api/v1/vectors/{collection}/search"),
                json!({"vector": axis(i), "limit": 5}),
            )
            .await
            .expect(200);
        let sources: Vec<&str> = hits["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|h| h["source_id"].as_str())
            .collect();
        assert!(
            !sources.contains(&old_message.as_str()) && !sources.contains(&old_file.as_str()),
            "{collection}: {sources:?}"
        );
    }
    let pinned_hits = s
        .post(
            &u,
            "/api/v1/vectors/messages/search",
            json!({"vector": axis(2), "limit": 1}),
        )
        .await
        .expect(200);
    assert_eq!(
        pinned_hits["items"][0]["source_id"],
        pinned_message.as_str()
    );

    // The counters let go of what went, and agree with a recount.
    let stats_after = s.get(&u, "/api/v1/storage/stats").await.expect(200);
    let bytes = |stats: &Value, category: &str| stats[category]["bytes"].as_i64().unwrap();
    assert_eq!(
        bytes(&stats_before, "attachments") - bytes(&stats_after, "attachments"),
        3000,
        "{stats_after}"
    );
    assert_eq!(
        bytes(&stats_before, "embeddings") - bytes(&stats_after, "embeddings"),
        2 * 4 * TEST_VECTOR_DIMS as i64
    );
    let drift = s.services.store().reconcile_storage(false).await.unwrap();
    assert!(drift.is_empty(), "{drift:?}");

    // Every round is audited with what it did, and the run as a whole; the chain holds.
    let rounds = s.audit_log(&admin, "action=maintenance.archive").await;
    assert_eq!(rounds.len(), 1, "{rounds:?}");
    assert_eq!(rounds[0]["details"]["threads"], json!([old]));
    assert_eq!(rounds[0]["details"]["embeddings_removed"], 2);
    assert_eq!(rounds[0]["actor_id"], admin.id.as_str());
    let runs = s.audit_log(&admin, "action=maintenance.run").await;
    assert_eq!(runs.len(), 2, "the dry run and the run: {runs:?}");
    assert!(
        s.services
            .verify_audit_chain()
            .await
            .unwrap()
            .broken
            .is_none()
    );
    // A device syncing sees the archive as a change of the thread.
    let logged = format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM sync_events WHERE entity_id = '{old}' AND operation = 'update'"
    );
    assert!(count(&s, &logged).await >= 1);

    // Unarchiving brings back everything that was kept, and the thread is idle again only
    // from then: the next run leaves it.
    let back = s
        .patch(
            &u,
            &format!("/api/v1/threads/{old}"),
            json!({"is_archived": false}),
        )
        .await
        .expect(200);
    assert_eq!(back["is_archived"], false);
    assert!(back["archived_at"].is_null());
    let messages = s
        .get(&u, &format!("/api/v1/threads/{old}/messages"))
        .await
        .expect(200);
    assert_eq!(messages["items"][0]["id"], old_message.as_str());
    let again = run(&s, false).await;
    assert_eq!(again.threads_archived, 0, "{again:?}");
    // A file uploaded again to the attachment is served again.
    assert_eq!(put_file(&s, &u, &old_file, png(100)).await, 200);
    assert_eq!(content_status(&s, &u, &old_file).await.0, 200);
    let row = s
        .get(&u, &format!("/api/v1/attachments/{old_file}"))
        .await
        .expect(200);
    assert!(row["content_removed_at"].is_null(), "{row}");
}

async fn an_organizations_policy_overrides_the_servers(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let org = |slug: &'static str| {
        let s = &s;
        let owner = &owner;
        async move {
            id(&s
                .post(
                    owner,
                    "/api/v1/organizations",
                    json!({"name": slug, "slug": slug}),
                )
                .await
                .expect(201))
        }
    };
    let never = org("keeps-all").await;
    let weekly = org("weekly").await;
    let plain = org("plain").await;
    // The policy is checked like every field.
    for bad in [json!(-1), json!(40_000), json!("soon"), json!(1.5)] {
        let refused = s
            .patch(
                &owner,
                &format!("/api/v1/organizations/{never}"),
                json!({"archive_after_days": bad}),
            )
            .await;
        assert_eq!(refused.status, 422, "{bad}: {refused:?}");
        assert!(refused.body["error"]["fields"]["archive_after_days"].is_string());
    }
    s.patch(
        &owner,
        &format!("/api/v1/organizations/{never}"),
        json!({"archive_after_days": 0}),
    )
    .await
    .expect(200);
    s.patch(
        &owner,
        &format!("/api/v1/organizations/{weekly}"),
        json!({"archive_after_days": 7}),
    )
    .await
    .expect(200);
    // A member who does not administer the organization cannot change it.
    let member = s.user("member").await;
    s.post(
        &owner,
        &format!("/api/v1/organizations/{weekly}/members"),
        json!({"user_id": member.id, "role": "member"}),
    )
    .await
    .expect(201);
    let refused = s
        .patch(
            &member,
            &format!("/api/v1/organizations/{weekly}"),
            json!({"archive_after_days": 0}),
        )
        .await;
    assert!(
        [403, 404].contains(&refused.status.as_u16()),
        "a member changed the policy: {refused:?}"
    );

    let mut threads = Vec::new();
    for (org_id, idle_days) in [(&never, 3650), (&weekly, 10), (&plain, 10), (&plain, 200)] {
        let ws = id(&s
            .post(
                &owner,
                "/api/v1/workspaces",
                json!({"name": "w", "organization_id": org_id}),
            )
            .await
            .expect(201));
        let (thread, _) = thread_with_message(&s, &owner, &ws, "t").await;
        let at = time::OffsetDateTime::now_utc() - time::Duration::days(idle_days);
        // As both engines store it (SQLite's text is fixed-width).
        let at = at
            .format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].000000Z"
            ))
            .unwrap();
        idle_since(&s, &thread, &at).await;
        threads.push(thread);
    }
    let report = run(&s, false).await;
    assert_eq!(report.threads_archived, 2, "{report:?}");
    let archived = |thread: &String| {
        let s = &s;
        let owner = &owner;
        let thread = thread.clone();
        async move {
            s.get(owner, &format!("/api/v1/threads/{thread}"))
                .await
                .expect(200)["is_archived"]
                == true
        }
    };
    // 0 days: never, however old. 7 days: a thread idle 10 days goes. The server's 180
    // days for the rest: 10 days stays, 200 goes.
    assert!(!archived(&threads[0]).await);
    assert!(archived(&threads[1]).await);
    assert!(!archived(&threads[2]).await);
    assert!(archived(&threads[3]).await);
    let rules: Vec<(Option<uuid::Uuid>, u32, u64)> = report
        .rules
        .iter()
        .map(|r| (r.organization_id, r.archive_after_days, r.threads))
        .collect();
    assert!(rules.contains(&(None, 180, 1)), "{rules:?}");
    assert!(
        rules.contains(&(Some(weekly.parse().unwrap()), 7, 1)),
        "{rules:?}"
    );
    assert!(
        !rules.iter().any(|r| r.0 == Some(never.parse().unwrap())),
        "a rule of 0 days is not applied: {rules:?}"
    );
}

async fn one_maintenance_run_at_a_time(backend: Backend) {
    let s = TestServer::start(backend).await;
    let held = s.services.store().maintenance_lease().await.unwrap();
    assert!(held.is_some());
    let refused = s
        .services
        .run_maintenance(MaintenanceTrigger::Manual, None, false, &|_| {})
        .await;
    assert!(
        matches!(refused, Err(ceneca_service::ServiceError::Conflict { .. })),
        "{refused:?}"
    );
    assert!(
        s.services
            .store()
            .maintenance_lease()
            .await
            .unwrap()
            .is_none()
    );
    drop(held);
    run(&s, true).await;
}

/// The write decides on the thread as it is then, whatever was read to choose it: a
/// thread pinned, written to or unarchived since is left as it is.
async fn an_archive_decides_on_the_thread_as_it_is_when_written(backend: Backend) {
    let (s, u, ws) = server_with_workspace(backend).await;
    let (pinned, _) = thread_with_message(&s, &u, &ws, "pinned").await;
    let (busy, _) = thread_with_message(&s, &u, &ws, "busy").await;
    let (idle_thread, _) = thread_with_message(&s, &u, &ws, "idle").await;
    pin(&s, &u, &pinned).await;
    idle(&s, &pinned).await;
    idle(&s, &idle_thread).await;
    // `busy` is not idle: chosen by a stale read, it must still be left alone.
    let threads: Vec<uuid::Uuid> = [&pinned, &busy, &idle_thread]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    let mut report = MaintenanceReport::default();
    let idle_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let archived = s
        .services
        .archive_threads(&threads, idle_before, None, &mut report)
        .await
        .unwrap();
    assert_eq!(archived, 1, "{report:?}");
    for (thread, archived) in [(&pinned, false), (&busy, false), (&idle_thread, true)] {
        let t = s
            .get(&u, &format!("/api/v1/threads/{thread}"))
            .await
            .expect(200);
        assert_eq!(t["is_archived"], archived, "{thread}: {t}");
    }
    // Archived already: a second write leaves it as it is.
    let again = s
        .services
        .archive_threads(&threads, idle_before, None, &mut report)
        .await
        .unwrap();
    assert_eq!(again, 0);
}

/// Found by the attack: only the thread's own times were read, so a thread whose message
/// was edited, whose old message got a file, or whose message got a vector a moment ago
/// was archived (the file just uploaded was removed).
async fn regression_activity_inside_a_thread_keeps_it_from_archive(backend: Backend) {
    let (s, u, ws) = server_with_workspace(backend).await;
    let mut threads = Vec::new();
    for (i, activity) in ["edit", "file", "vector", "none"].into_iter().enumerate() {
        let (thread, message) = thread_with_message(&s, &u, &ws, activity).await;
        let old_file = attachment(&s, &u, &ws, &message, 200 + i).await;
        embed(&s, &u, "attachments", &ws, &old_file, 3).await;
        threads.push((thread, message));
    }
    // Everything in the threads is old...
    for table in ["messages", "attachments", "embedding_records"] {
        s.raw_execute(&format!("UPDATE {table} SET updated_at = '{LONG_AGO}'"))
            .await;
    }
    // ...but for what happens now, inside them.
    let (_, edited) = &threads[0];
    s.patch(
        &u,
        &format!("/api/v1/messages/{edited}"),
        json!({"content": "edited today"}),
    )
    .await
    .expect(200);
    attachment(&s, &u, &ws, &threads[1].1, 300).await;
    embed(&s, &u, "messages", &ws, &threads[2].1, 4).await;
    // The threads' own rows stay idle: what happened is inside them.
    for (thread, _) in &threads {
        s.raw_execute(&format!(
            "UPDATE threads SET last_message_at = '{LONG_AGO}', updated_at = '{LONG_AGO}' WHERE id = '{thread}'"
        ))
        .await;
    }
    let threads: Vec<String> = threads.into_iter().map(|(t, _)| t).collect();
    let report = run(&s, false).await;
    assert_eq!(report.threads_archived, 1, "{report:?}");
    for (thread, archived) in threads.iter().zip([false, false, false, true]) {
        let t = s
            .get(&u, &format!("/api/v1/threads/{thread}"))
            .await
            .expect(200);
        assert_eq!(t["is_archived"], archived, "{}: {t}", t["title"]);
    }
}

/// Found by the attack: files were deleted however new, and an upload in another process
/// (the command line beside a server, nodes sharing a volume) may be about to name one.
async fn regression_a_file_written_within_the_grace_is_left_to_the_sweep(backend: Backend) {
    let (s, u, ws) = server_with_workspace(backend).await;
    let (thread, message) = thread_with_message(&s, &u, &ws, "old").await;
    let file = attachment(&s, &u, &ws, &message, 500).await;
    for table in ["messages", "attachments"] {
        s.raw_execute(&format!("UPDATE {table} SET updated_at = '{LONG_AGO}'"))
            .await;
    }
    idle(&s, &thread).await;
    let report = run(&s, false).await;
    assert_eq!(report.attachment_files_removed, 1, "{report:?}");
    assert_eq!(report.blob_files_deleted, 0, "{report:?}");
    assert_eq!(files_under(&s.data_dir().join("blobs")).len(), 1);
    assert_eq!(content_status(&s, &u, &file).await.0, 410);
    // The sweep takes it once it is past the grace.
    s.age_blobs();
    let swept = s
        .services
        .sweep_blobs(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(swept.blobs_removed, 1);
}

/// Found by the attack: retention ran on a local node, whose archive never reached its
/// upstream. The node leaves it to the upstream.
async fn regression_a_local_node_leaves_retention_to_its_upstream(backend: Backend) {
    let config = ceneca_service::ServiceConfig {
        local_node: Some(ceneca_service::sync::LocalNode {
            upstream: "https://upstream.example".into(),
            device_id: uuid::Uuid::now_v7(),
            user_id: uuid::Uuid::now_v7(),
        }),
        ..Default::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let refused = s
        .services
        .run_maintenance(MaintenanceTrigger::Manual, None, true, &|_| {})
        .await;
    assert!(
        matches!(refused, Err(ceneca_service::ServiceError::UpstreamOnly(_))),
        "{refused:?}"
    );
}

/// The ids of the messages a text search finds, with their snippets.
async fn found(s: &TestServer, u: &User, word: &str) -> Vec<(String, String)> {
    let hits = s
        .get(u, &format!("/api/v1/search?q={word}"))
        .await
        .expect(200);
    hits["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["id"].as_str().unwrap().to_owned(),
                h["snippet"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn old_message_bodies_are_compressed_and_read_and_found_as_before(backend: Backend) {
    let (s, u, ws) = server_with_workspace(backend).await;
    let admin = s.admin().await;
    let thread = id(&s
        .post(
            &u,
            "/api/v1/threads",
            json!({"workspace_id": ws, "title": "log"}),
        )
        .await
        .expect(201));
    let messages = format!("/api/v1/threads/{thread}/messages");
    let long = format!(
        "{} The quokkafish was seen near the reef. {}",
        "Status of the deployment: all green, nothing to report. ".repeat(20),
        "Tomorrow we check the pumps again. ".repeat(10)
    );
    let post = |content: String| {
        let (s, u, messages) = (&s, &u, &messages);
        async move {
            id(&s
                .post(u, messages, json!({"role": "user", "content": content}))
                .await
                .expect(201))
        }
    };
    let old = post(long.clone()).await;
    let short = post("short and old".to_owned()).await;
    let fresh = post(long.replace("quokkafish", "wombatfish")).await;
    let gone = post(long.replace("quokkafish", "dingofish")).await;
    // Written long ago: the thread itself stays active (its last message is recent as
    // far as archiving goes), so only compression applies.
    s.raw_execute(&format!(
        "UPDATE messages SET updated_at = '{LONG_AGO}' WHERE id IN ('{old}', '{short}', '{gone}')"
    ))
    .await;
    let changes =
        format!("SELECT CAST(COUNT(*) AS TEXT) FROM sync_events WHERE entity_id = '{old}'");
    let logged_before = count(&s, &changes).await;
    let stats_before = s.get(&u, "/api/v1/storage/stats").await.expect(200);

    // A dry run reports what would be saved, and changes nothing.
    let preview = run(&s, true).await;
    assert_eq!(preview.compress_after_days, 90);
    assert_eq!(preview.messages_compressed, 2, "{preview:?}");
    let gone_body = long.replace("quokkafish", "dingofish");
    assert_eq!(
        preview.compressed_bytes_before,
        (long.len() + gone_body.len()) as u64
    );
    assert!(preview.compressed_bytes_after < long.len() as u64 / 2);
    let stored =
        |m: &str| format!("SELECT CAST(length(content) AS TEXT) FROM messages WHERE id = '{m}'");
    assert_eq!(count(&s, &stored(&old)).await, long.chars().count() as i64);

    let report = run(&s, false).await;
    assert_eq!(report.messages_compressed, 2, "{report:?}");
    assert_eq!(
        report.compressed_bytes_before,
        preview.compressed_bytes_before
    );
    assert_eq!(
        report.compressed_bytes_after,
        preview.compressed_bytes_after
    );
    // Stored packed: the text is not in `content` any more; short and fresh bodies stay.
    assert_eq!(count(&s, &stored(&old)).await, 0);
    let packed = |m: &str| {
        format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM messages WHERE id = '{m}' AND content_packed IS NOT NULL"
        )
    };
    assert_eq!(count(&s, &packed(&old)).await, 1);
    assert_eq!(count(&s, &packed(&short)).await, 0);
    assert_eq!(count(&s, &packed(&fresh)).await, 0);

    // Read as before, one by one and listed; the flag says how it is stored.
    let row = s
        .get(&u, &format!("/api/v1/messages/{old}"))
        .await
        .expect(200);
    assert_eq!(row["content"], long.as_str());
    assert_eq!(row["compressed"], true);
    assert!(row.get("content_packed").is_none(), "{row}");
    let listed = s.get(&u, &messages).await.expect(200);
    let listed_old = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == old.as_str())
        .unwrap()
        .clone();
    assert_eq!(listed_old["content"], long.as_str());
    // Found by text as before, with its snippet.
    let hits = found(&s, &u, "quokkafish").await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].0, old);
    assert!(
        hits[0].1.contains("<mark>quokkafish</mark>") && hits[0].1.contains("reef"),
        "{hits:?}"
    );
    // Packing is no change: nothing logged for sync, `updated_at` kept.
    assert_eq!(count(&s, &changes).await, logged_before);
    assert!(
        row["updated_at"]
            .as_str()
            .unwrap()
            .starts_with("2020-01-01"),
        "{row}"
    );

    // The counters count what is stored, and agree with a recount.
    let stats_after = s.get(&u, "/api/v1/storage/stats").await.expect(200);
    let bytes = |stats: &Value| stats["messages"]["bytes"].as_i64().unwrap();
    assert_eq!(
        bytes(&stats_before) - bytes(&stats_after),
        (report.compressed_bytes_before - report.compressed_bytes_after) as i64,
        "{stats_after}"
    );
    let drift = s.services.store().reconcile_storage(false).await.unwrap();
    assert!(drift.is_empty(), "{drift:?}");
    // Audited: the round with its counts, in a chain that holds.
    let rounds = s.audit_log(&admin, "action=maintenance.compress").await;
    assert_eq!(rounds.len(), 1, "{rounds:?}");
    assert_eq!(rounds[0]["details"]["messages_compressed"], 2);
    assert!(
        s.services
            .verify_audit_chain()
            .await
            .unwrap()
            .broken
            .is_none()
    );
    // Nothing left to do.
    assert_eq!(run(&s, false).await.messages_compressed, 0);

    // An edit stores the new body plain, indexed for its new words only.
    let edited = s
        .patch(
            &u,
            &format!("/api/v1/messages/{old}"),
            json!({"content": "the platypus moved"}),
        )
        .await
        .expect(200);
    assert_eq!(edited["content"], "the platypus moved");
    assert_eq!(edited["compressed"], false);
    assert!(found(&s, &u, "quokkafish").await.is_empty());
    assert_eq!(found(&s, &u, "platypus").await.len(), 1);
    // A change to other fields keeps a packed body packed, and readable.
    s.patch(
        &u,
        &format!("/api/v1/messages/{gone}"),
        json!({"metadata": {"tag": "x"}}),
    )
    .await
    .expect(200);
    let row = s
        .get(&u, &format!("/api/v1/messages/{gone}"))
        .await
        .expect(200);
    assert_eq!(row["content"], gone_body.as_str());
    assert_eq!(row["compressed"], true);
    let drift = s.services.store().reconcile_storage(false).await.unwrap();
    assert!(drift.is_empty(), "{drift:?}");
    // A packed row deleted takes its words out of the index (on SQLite, the index reads
    // the body through the view to delete it: the index stays consistent).
    assert_eq!(found(&s, &u, "dingofish").await.len(), 1);
    s.raw_execute(&format!("DELETE FROM messages WHERE id = '{gone}'"))
        .await;
    assert!(found(&s, &u, "dingofish").await.is_empty());
    // (Deleted behind the store's back: the counters are recounted.)
    s.services.store().reconcile_storage(true).await.unwrap();
    if backend == Backend::Sqlite {
        s.raw_execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
            .await;
    }

    // Reverting the migration stores every body plain again first; up again, all is read
    // and found as before.
    let packed_one = post(long.replace("quokkafish", "emufish")).await;
    s.raw_execute(&format!(
        "UPDATE messages SET updated_at = '{LONG_AGO}' WHERE id = '{packed_one}'"
    ))
    .await;
    assert_eq!(run(&s, false).await.messages_compressed, 1);
    let store = s.services.store();
    assert_eq!(store.migrate_down().await.unwrap(), Some(20));
    assert_eq!(store.migrate_down().await.unwrap(), Some(19));
    assert_eq!(store.migrate_down().await.unwrap(), Some(18));
    assert_eq!(store.migrate_down().await.unwrap(), Some(17));
    assert_eq!(store.migrate_down().await.unwrap(), Some(16));
    assert_eq!(store.migrate_down().await.unwrap(), Some(15));
    assert_eq!(store.migrate_down().await.unwrap(), Some(14));
    assert_eq!(store.migrate_down().await.unwrap(), Some(13));
    assert_eq!(
        count(&s, &stored(&packed_one)).await,
        long.replace("quokkafish", "emufish").chars().count() as i64
    );
    assert_eq!(
        store.migrate_up().await.unwrap(),
        vec![13, 14, 15, 16, 17, 18, 19, 20]
    );
    // The counters followed the bodies stored plain again.
    assert!(store.reconcile_storage(false).await.unwrap().is_empty());
    let hits = found(&s, &u, "emufish").await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    let row = s
        .get(&u, &format!("/api/v1/messages/{packed_one}"))
        .await
        .expect(200);
    assert_eq!(row["compressed"], false);
}
