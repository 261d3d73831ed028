//! Storage statistics and quotas over real HTTP, on SQLite and PostgreSQL: counters every
//! write keeps (and a recount from the data agrees with), who may read them, and quotas
//! refused before a byte is kept — files near the limit under concurrency included.

use ceneca_e2e::{Backend, TEST_VECTOR_DIMS, TestServer, User, files_under, on_every_backend};
use ceneca_service::ServiceConfig;
use serde_json::{Value, json};

on_every_backend!(
    statistics_follow_every_write_and_a_recount_agrees,
    statistics_are_for_who_may_see_them,
    a_quota_refuses_what_would_pass_it_and_keeps_nothing,
    uploads_near_the_quota_never_overshoot_it,
    regression_concurrent_edits_of_one_row_keep_the_counters_right,
    regression_concurrent_batches_never_pass_a_quota_together,
    regression_an_embedding_of_another_dimension_is_refused,
    regression_metadata_counts_against_the_quota,
    regression_statistics_of_nothing_are_not_found,
    regression_a_compressed_body_edited_is_charged_what_it_stores,
);

fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.resize(len, 7);
    bytes
}

async fn id(body: Value) -> String {
    body["id"].as_str().unwrap().to_owned()
}

/// A workspace of the user's own, with a thread titled `title`.
async fn workspace_with_thread(s: &TestServer, u: &User) -> (String, String) {
    let ws = id(s
        .post(u, "/api/v1/workspaces", json!({"name": "Mine"}))
        .await
        .expect(201))
    .await;
    let thread = id(s
        .post(
            u,
            "/api/v1/threads",
            json!({"workspace_id": ws, "title": "Plans"}),
        )
        .await
        .expect(201))
    .await;
    (ws, thread)
}

/// A new message of `u`'s in `thread`; its id.
async fn message(s: &TestServer, u: &User, thread: &str, content: &str) -> String {
    id(s.post(
        u,
        &format!("/api/v1/threads/{thread}/messages"),
        json!({"role": "user", "content": content}),
    )
    .await
    .expect(201))
    .await
}

async fn upload(s: &TestServer, u: &User, attachment: &str, bytes: Vec<u8>) -> reqwest::Response {
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
}

async fn stats(s: &TestServer, u: &User, query: &str) -> Value {
    s.get(u, &format!("/api/v1/storage/stats?{query}"))
        .await
        .expect(200)
}

async fn statistics_follow_every_write_and_a_recount_agrees(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let (ws, thread) = workspace_with_thread(&s, &u).await;
    let messages = format!("/api/v1/threads/{thread}/messages");
    let first = id(s
        .post(&u, &messages, json!({"role": "user", "content": "héllo"}))
        .await
        .expect(201))
    .await;
    s.post(
        &u,
        &format!("{messages}/batch"),
        json!({"items": [{"role": "user", "content": "abc"}, {"role": "assistant", "content": "de"}]}),
    )
    .await
    .expect(201);
    s.post(
        &u,
        "/api/v1/documents",
        json!({"workspace_id": ws, "title": "Plan", "body": "Step one"}),
    )
    .await
    .expect(201);
    let attachment = id(s
        .post(
            &u,
            "/api/v1/attachments",
            json!({"workspace_id": ws, "message_id": first, "file_name": "a.png"}),
        )
        .await
        .expect(201))
    .await;
    assert_eq!(upload(&s, &u, &attachment, png(1000)).await.status(), 200);
    let vector = vec![0.5f32; TEST_VECTOR_DIMS];
    s.post(
        &u,
        "/api/v1/vectors/messages/points?wait=true",
        json!({"source_id": first, "workspace_id": ws, "vector": vector}),
    )
    .await
    .expect(200);

    let mine = stats(&s, &u, &format!("scope=workspace&id={ws}")).await;
    assert_eq!(
        mine["messages"],
        json!({"count": 3, "bytes": 6 + 3 + 2}),
        "{mine}"
    );
    assert_eq!(mine["documents"], json!({"count": 1, "bytes": 4 + 8}));
    assert_eq!(mine["attachments"], json!({"count": 1, "bytes": 5 + 1000}));
    assert_eq!(
        mine["embeddings"],
        json!({"count": 1, "bytes": 4 * TEST_VECTOR_DIMS})
    );
    assert_eq!(mine["metadata"], json!({"count": 1, "bytes": 5}));
    let total = 11 + 12 + 1005 + 4 * TEST_VECTOR_DIMS as u64 + 5;
    assert_eq!(mine["total_bytes"], total);
    // The user's own workspaces are the user's quota (10 GiB by default).
    let me = stats(&s, &u, "scope=user").await;
    assert_eq!(me["total_bytes"], total);
    assert_eq!(me["quota_bytes"], 10u64 << 30);
    assert_eq!(mine["quota_used_bytes"], total);

    // An edit resizes; a message in the bin is not charged (deleting makes room), nor a
    // file deleted; a recount of the data agrees with the counters throughout.
    s.patch(
        &u,
        &format!("/api/v1/messages/{first}"),
        json!({"content": "hello, world"}),
    )
    .await
    .expect(200);
    s.delete(&u, &format!("/api/v1/attachments/{attachment}"))
        .await
        .expect(204);
    s.delete(&u, &format!("/api/v1/messages/{first}"))
        .await
        .expect(200);
    let after = stats(&s, &u, &format!("scope=workspace&id={ws}")).await;
    assert_eq!(after["messages"], json!({"count": 2, "bytes": 3 + 2}));
    assert_eq!(after["attachments"], json!({"count": 0, "bytes": 0}));
    let drift = s.services.store().reconcile_storage(false).await.unwrap();
    assert!(drift.is_empty(), "{drift:?}");
    // Back from the bin, charged again; a thread in the bin takes its messages along.
    s.post(&u, &format!("/api/v1/messages/{first}/restore"), json!({}))
        .await
        .expect(200);
    let restored = stats(&s, &u, &format!("scope=workspace&id={ws}")).await;
    assert_eq!(
        restored["messages"],
        json!({"count": 3, "bytes": 12 + 3 + 2})
    );
    s.delete(&u, &format!("/api/v1/threads/{thread}"))
        .await
        .expect(200);
    let binned = stats(&s, &u, &format!("scope=workspace&id={ws}")).await;
    assert_eq!(
        binned["messages"],
        json!({"count": 0, "bytes": 0}),
        "{binned}"
    );
    assert_eq!(binned["metadata"], json!({"count": 0, "bytes": 0}));
    let drift = s.services.store().reconcile_storage(false).await.unwrap();
    assert!(drift.is_empty(), "{drift:?}");
}

async fn statistics_are_for_who_may_see_them(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let member = s.user("member").await;
    let stranger = s.user("stranger").await;
    let (ws, _) = workspace_with_thread(&s, &owner).await;
    let org = id(s
        .post(
            &owner,
            "/api/v1/organizations",
            json!({"name": "Acme", "slug": "acme-stats"}),
        )
        .await
        .expect(201))
    .await;
    s.post(
        &owner,
        &format!("/api/v1/organizations/{org}/members"),
        json!({"user_id": member.id, "role": "member"}),
    )
    .await
    .expect(201);
    stats(&s, &owner, &format!("scope=organization&id={org}")).await;
    // A viewer of one of the owner's workspaces sees that workspace, not what the owner's
    // quota holds altogether (attack on quotas, finding 9).
    s.post(
        &owner,
        &format!("/api/v1/workspaces/{ws}/members"),
        json!({"user_id": member.id, "role": "viewer"}),
    )
    .await
    .expect(201);
    let seen = stats(&s, &member, &format!("scope=workspace&id={ws}")).await;
    assert!(
        seen["quota_bytes"].is_null() && seen["quota_used_bytes"].is_null(),
        "{seen}"
    );
    let own = stats(&s, &owner, &format!("scope=workspace&id={ws}")).await;
    assert_eq!(own["quota_bytes"], 10u64 << 30, "{own}");
    let refused = s
        .get(
            &member,
            &format!("/api/v1/storage/stats?scope=organization&id={org}"),
        )
        .await;
    assert_eq!(refused.status, 403, "{refused:?}");
    for query in [
        format!("scope=organization&id={org}"),
        format!("scope=workspace&id={ws}"),
        format!("scope=user&id={}", owner.id),
    ] {
        let hidden = s
            .get(&stranger, &format!("/api/v1/storage/stats?{query}"))
            .await;
        assert_eq!(hidden.status, 404, "{query}: {hidden:?}");
    }
    for (query, field) in [
        ("scope=workspace", "id"),
        ("scope=planet", "scope"),
        ("scope=user&id=7", "id"),
        ("scope=user&scope=user", "scope"),
        ("color=blue", "color"),
    ] {
        let bad = s
            .get(&owner, &format!("/api/v1/storage/stats?{query}"))
            .await;
        assert_eq!(bad.status, 400, "{query}: {bad:?}");
        assert!(
            bad.body["error"]["fields"][field].is_string(),
            "{query}: {bad:?}"
        );
    }
}

fn small_quota(bytes: u64) -> ServiceConfig {
    ServiceConfig {
        user_quota_bytes: bytes,
        ..ServiceConfig::default()
    }
}

async fn a_quota_refuses_what_would_pass_it_and_keeps_nothing(backend: Backend) {
    let s = TestServer::start_with(backend, small_quota(3000)).await;
    let u = s.user("u").await;
    let (ws, thread) = workspace_with_thread(&s, &u).await;
    let messages = format!("/api/v1/threads/{thread}/messages");
    let first = id(s
        .post(
            &u,
            &messages,
            json!({"role": "user", "content": "x".repeat(1000)}),
        )
        .await
        .expect(201))
    .await;
    // 1,005 bytes are used (the message, the thread's title): 2,000 more do not fit.
    let refused = s
        .post(
            &u,
            &messages,
            json!({"role": "user", "content": "y".repeat(2000)}),
        )
        .await;
    assert_eq!(refused.status, 413, "{refused:?}");
    assert_eq!(refused.body["error"]["code"], "quota_exceeded");
    assert_eq!(refused.body["error"]["quota_bytes"], 3000);
    assert_eq!(refused.body["error"]["used_bytes"], 1005);
    // An edit that grows past the quota, and a batch, are refused the same way.
    let grown = s
        .patch(
            &u,
            &format!("/api/v1/messages/{first}"),
            json!({"content": "z".repeat(3000)}),
        )
        .await;
    assert_eq!(grown.status, 413, "{grown:?}");
    let batch = s
        .post(
            &u,
            &format!("{messages}/batch"),
            json!({"items": [{"role": "user", "content": "a".repeat(1000)}, {"role": "user", "content": "b".repeat(1000)}]}),
        )
        .await;
    assert_eq!(batch.status, 413, "{batch:?}");
    // A file larger than what is left is cut off and nothing is kept.
    let attachment = id(s
        .post(
            &u,
            "/api/v1/attachments",
            json!({"workspace_id": ws, "message_id": first, "file_name": "a.png"}),
        )
        .await
        .expect(201))
    .await;
    let cut = upload(&s, &u, &attachment, png(5000)).await;
    assert_eq!(cut.status(), 413);
    let body: Value = cut.json().await.unwrap();
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    let row = s
        .get(&u, &format!("/api/v1/attachments/{attachment}"))
        .await
        .expect(200);
    assert!(row["sha256"].is_null(), "{row}");
    let blobs = s.data_dir().join("blobs");
    let kept = files_under(&blobs);
    assert!(kept.is_empty(), "{kept:?}");
    let me = stats(&s, &u, "scope=user").await;
    assert_eq!(me["total_bytes"], 1000 + 5 + 5, "{me}");
    assert_eq!(me["percent_used"], 33.67);
    // What fits is taken; at the quota, nothing more.
    assert_eq!(upload(&s, &u, &attachment, png(1990)).await.status(), 200);
    let full = s
        .post(&u, &messages, json!({"role": "user", "content": "!"}))
        .await;
    assert_eq!(full.status, 413, "{full:?}");
    // Deleting makes room again.
    s.delete(&u, &format!("/api/v1/attachments/{attachment}"))
        .await
        .expect(204);
    s.post(&u, &messages, json!({"role": "user", "content": "!"}))
        .await
        .expect(201);
    // What comes back from the bin is charged again, and refused past the quota (second
    // attack on quotas, finding 1: restores were never checked, and delete, refill,
    // restore grew the usage without bound).
    s.delete(&u, &format!("/api/v1/messages/{first}"))
        .await
        .expect(200);
    let refill = s
        .post(
            &u,
            &messages,
            json!({"role": "user", "content": "r".repeat(2500)}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let restored = s
        .post(&u, &format!("/api/v1/messages/{first}/restore"), json!({}))
        .await;
    assert_eq!(restored.status, 413, "{restored:?}");
    assert_eq!(restored.body["error"]["code"], "quota_exceeded");
    s.delete(&u, &format!("/api/v1/messages/{refill}"))
        .await
        .expect(200);
    s.post(&u, &format!("/api/v1/messages/{first}/restore"), json!({}))
        .await
        .expect(200);
}

/// Eight uploads of 600 bytes at once with 3,000 bytes of room: each is checked again
/// inside its write, under the quota holder's lock, so at most as many as fit are kept.
async fn uploads_near_the_quota_never_overshoot_it(backend: Backend) {
    let s = TestServer::start_with(backend, small_quota(3000)).await;
    let u = s.user("u").await;
    let (ws, thread) = workspace_with_thread(&s, &u).await;
    let message = message(&s, &u, &thread, "files").await;
    let mut rows = Vec::new();
    for i in 0..8 {
        rows.push(
            id(s.post(
                &u,
                "/api/v1/attachments",
                json!({"workspace_id": ws, "message_id": message, "file_name": format!("{i}.png")}),
            )
            .await
            .expect(201))
            .await,
        );
    }
    let mut uploads = tokio::task::JoinSet::new();
    for (i, row) in rows.iter().enumerate() {
        let request = s
            .http
            .put(format!("{}/api/v1/attachments/{row}/content", s.base))
            .bearer_auth(&u.token)
            .header("content-type", "application/octet-stream")
            .body({
                let mut file = png(600);
                file[20] = i as u8;
                file
            });
        uploads.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let mut kept = 0;
    while let Some(status) = uploads.join_next().await {
        match status.unwrap() {
            200 => kept += 1,
            413 => {}
            other => panic!("an upload answered {other}"),
        }
    }
    // The thread's title, the message and the rows' names take 50 bytes: four files of
    // 600 fit in the 2,950 left, a fifth does not.
    let me = stats(&s, &u, "scope=user").await;
    assert_eq!(kept, 4, "{me}");
    assert_eq!(me["total_bytes"], 50 + 4 * 600, "{me}");
}

/// Attack on quotas, finding 3: on PostgreSQL, edits of one row racing each other each
/// measured the row as it was before both, and the counters drifted (below zero, then
/// past the quota). The row is now locked while it is measured.
async fn regression_concurrent_edits_of_one_row_keep_the_counters_right(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let (_, thread) = workspace_with_thread(&s, &u).await;
    let message = message(&s, &u, &thread, "x").await;
    let mut edits = tokio::task::JoinSet::new();
    for i in 0..16usize {
        let request = s
            .http
            .patch(format!("{}/api/v1/messages/{message}", s.base))
            .bearer_auth(&u.token)
            .json(&json!({"content": "y".repeat(1 + i * 100)}));
        edits.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    while let Some(status) = edits.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let drift = s.services.store().reconcile_storage(false).await.unwrap();
    assert!(drift.is_empty(), "{drift:?}");
}

/// Attack on quotas, finding 8: batches racing each other were each checked before their
/// write only, and forty 190 KB batches against a 200 KB quota kept 6 MB on PostgreSQL.
/// A batch is now checked again inside its write, under the quota holder's lock.
async fn regression_concurrent_batches_never_pass_a_quota_together(backend: Backend) {
    let s = TestServer::start_with(backend, small_quota(10_000)).await;
    let u = s.user("u").await;
    let (_, thread) = workspace_with_thread(&s, &u).await;
    let mut batches = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = s
            .http
            .post(format!("{}/api/v1/threads/{thread}/messages/batch", s.base))
            .bearer_auth(&u.token)
            .json(&json!({"items": [
                {"role": "user", "content": "a".repeat(1500)},
                {"role": "user", "content": "b".repeat(1500)},
            ]}));
        batches.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    while let Some(status) = batches.join_next().await {
        assert!([201, 413].contains(&status.unwrap()));
    }
    let me = stats(&s, &u, "scope=user").await;
    let used = me["total_bytes"].as_u64().unwrap();
    assert!(used <= 10_000, "{me}");
    // 5 bytes of title, then 3,000 a batch: three fit.
    assert_eq!(used, 5 + 3 * 3000, "{me}");
}

/// Attack on quotas, finding 4: the generic embeddings route took a vector of another
/// dimension than its collection's; the index refused it for ever, holding back every
/// tenant's points behind it.
async fn regression_an_embedding_of_another_dimension_is_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let (ws, thread) = workspace_with_thread(&s, &u).await;
    let message = message(&s, &u, &thread, "x").await;
    let refused = s
        .post(
            &u,
            "/api/v1/embeddings",
            json!({"collection": "messages", "source_id": message, "workspace_id": ws,
                   "model": "m", "dims": 1, "vector": [0.5],
                   "content_hash": "0".repeat(64)}),
        )
        .await;
    assert_eq!(refused.status, 422, "{refused:?}");
    assert!(
        refused.body["error"]["fields"]["dims"].is_string(),
        "{refused:?}"
    );
}

/// Found by the second attack on quotas: JSON `metadata` of messages and documents was
/// not counted, so any amount could be stored past a quota in it. It counts by its
/// compact JSON (measured from the value: PostgreSQL writes `jsonb` back with spaces),
/// and a recount agrees whatever the numbers' spelling.
async fn regression_metadata_counts_against_the_quota(backend: Backend) {
    let s = TestServer::start_with(backend, small_quota(3000)).await;
    let u = s.user("u").await;
    let (ws, thread) = workspace_with_thread(&s, &u).await;
    let messages = format!("/api/v1/threads/{thread}/messages");
    let big = json!({"role": "user", "content": "hi", "metadata": {"blob": "m".repeat(5000)}});
    let refused = s.post(&u, &messages, big).await;
    assert_eq!(refused.status, 413, "{refused:?}");
    assert_eq!(refused.body["error"]["code"], "quota_exceeded");
    let metadata = json!({"n": [1e20, 1.50, -0.0, 12345678901234567890u64], "k": "é\n\"", "z": {}});
    let first = id(s
        .post(
            &u,
            &messages,
            json!({"role": "user", "content": "hi", "metadata": metadata}),
        )
        .await
        .expect(201))
    .await;
    let doc =
        json!({"workspace_id": ws, "title": "d", "body": "b", "metadata": {"tags": ["a", "b"]}});
    s.post(&u, "/api/v1/documents", doc).await.expect(201);
    let before = stats(&s, &u, "scope=user").await;
    // An edit of the metadata alone resizes the row.
    s.patch(
        &u,
        &format!("/api/v1/messages/{first}"),
        json!({"metadata": {"grown": "g".repeat(1000)}}),
    )
    .await
    .expect(200);
    let after = stats(&s, &u, "scope=user").await;
    assert!(
        after["messages"]["bytes"].as_u64().unwrap()
            > before["messages"]["bytes"].as_u64().unwrap() + 900,
        "{before} {after}"
    );
    let grown = s
        .patch(
            &u,
            &format!("/api/v1/messages/{first}"),
            json!({"metadata": {"grown": "g".repeat(5000)}}),
        )
        .await;
    assert_eq!(grown.status, 413, "{grown:?}");
    let drift = s.services.store().reconcile_storage(false).await.unwrap();
    assert!(drift.is_empty(), "{drift:?}");

    // Found by the attack on the fix: PostgreSQL gives whole numbers from 1e16 back as
    // their digits (`1e16` is 17 of them), so an insert was counted short and its delete
    // took more than it had added, driving the counters below zero and the quota open.
    let numbers: Vec<f64> = vec![1e16; 100];
    let row = id(s
        .post(
            &u,
            &messages,
            json!({"role": "user", "content": "n", "metadata": {"a": numbers, "b": [-1e16, 1.5e17, 1e20]}}),
        )
        .await
        .expect(201))
    .await;
    let drift = s.services.store().reconcile_storage(false).await.unwrap();
    assert!(drift.is_empty(), "{drift:?}");
    s.delete(&u, &format!("/api/v1/messages/{row}"))
        .await
        .expect(200);
    let drift = s.services.store().reconcile_storage(false).await.unwrap();
    assert!(drift.is_empty(), "{drift:?}");
}

/// Found by the second attack on quotas: a system administrator asking for the
/// statistics of a user or organization that does not exist got zeros.
async fn regression_statistics_of_nothing_are_not_found(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin().await;
    let nobody = uuid::Uuid::now_v7();
    for scope in ["user", "organization", "workspace"] {
        let answer = s
            .get(
                &admin,
                &format!("/api/v1/storage/stats?scope={scope}&id={nobody}"),
            )
            .await;
        assert_eq!(answer.status, 404, "{scope}: {answer:?}");
    }
    let u = s.user("u").await;
    stats(&s, &admin, &format!("scope=user&id={}", u.id)).await;
}

/// Found by the attack: an edit of a compressed body was charged its new text on top of
/// the frame it replaces, so an edit that fits was refused.
async fn regression_a_compressed_body_edited_is_charged_what_it_stores(backend: Backend) {
    let s = TestServer::start_with(backend, small_quota(3000)).await;
    let u = s.user("u").await;
    let (_, thread) = workspace_with_thread(&s, &u).await;
    let message = id(s
        .post(
            &u,
            &format!("/api/v1/threads/{thread}/messages"),
            json!({"role": "user", "content": "a".repeat(1500)}),
        )
        .await
        .expect(201))
    .await;
    s.raw_execute(&format!(
        "UPDATE messages SET updated_at = '2020-01-01T00:00:00.000000Z' WHERE id = '{message}'"
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
    assert_eq!(report.messages_compressed, 1);
    let frame = report.compressed_bytes_after as i64;
    let used = s.get(&u, "/api/v1/storage/stats").await.expect(200)["quota_used_bytes"]
        .as_i64()
        .unwrap();
    // A body that fills the quota exactly once its frame is gone.
    let fits = (3000 - used + frame) as usize;
    let edited = s
        .patch(
            &u,
            &format!("/api/v1/messages/{message}"),
            json!({"content": "b".repeat(fits)}),
        )
        .await
        .expect(200);
    assert_eq!(edited["compressed"], false);
    let stats = s.get(&u, "/api/v1/storage/stats").await.expect(200);
    assert_eq!(stats["quota_used_bytes"], 3000, "{stats}");
    // One byte more does not fit.
    let over = s
        .patch(
            &u,
            &format!("/api/v1/messages/{message}"),
            json!({"content": "b".repeat(fits + 1)}),
        )
        .await;
    assert_eq!(over.status, 413, "{over:?}");
    assert!(
        s.services
            .store()
            .reconcile_storage(false)
            .await
            .unwrap()
            .is_empty()
    );
}
