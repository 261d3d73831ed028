//! Retention's purge over real HTTP, on SQLite and PostgreSQL: rows in the bin past
//! `retention.purge_after_days` are deleted for good with everything below them — their
//! files, full-text entries, vectors, change history and sync conflicts — while rows in the
//! bin for a shorter time, and live ones, stay; devices are told; the counters and the
//! audit trail stay right.
//!
//! The clock is the data's: rows are put in the bin long ago by writing `deleted_at`.

use std::sync::{Arc, OnceLock};

use ceneca_e2e::{
    Backend, TEST_VECTOR_DIMS, TestServer, User, default_vector_index, files_under,
    on_every_backend,
};
use ceneca_service::ServiceConfig;
use ceneca_vector::VectorIndex;
use ceneca_wire::maintenance::{MaintenanceReport, MaintenanceTrigger};
use reqwest::Method;
use serde_json::{Value, json};

on_every_backend!(
    rows_in_the_bin_past_the_rule_are_purged_with_everything_below_them,
    no_purge_when_the_rule_is_off,
    regression_a_row_restored_under_a_binned_parent_is_never_purged,
    regression_a_purged_workspace_is_revoked_only_from_who_could_read_it,
    regression_references_set_to_null_by_a_purge_are_indexed,
);

const LONG_AGO: &str = "2020-01-01T00:00:00.000000Z";
/// Planted in everything that is purged: nothing may keep it.
const CANARY: &str = "quetzalpurgecanary";

fn id(body: &Value) -> String {
    body["id"].as_str().unwrap().to_owned()
}

fn axis(i: usize) -> Vec<f32> {
    let mut v = vec![0.05; TEST_VECTOR_DIMS];
    v[i % TEST_VECTOR_DIMS] = 1.0;
    v
}

/// A PNG-looking file that carries `words` and `n` (distinct files, distinct blobs).
fn file_with(words: &str, n: u8) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.extend_from_slice(words.as_bytes());
    bytes.push(n);
    bytes.resize(2048, n);
    bytes
}

async fn count(s: &TestServer, sql: &str) -> i64 {
    s.raw_text(sql).await.unwrap().parse().unwrap()
}

async fn run(s: &TestServer, dry_run: bool) -> MaintenanceReport {
    s.services
        .run_maintenance(MaintenanceTrigger::Manual, None, dry_run, &|_| {})
        .await
        .unwrap()
}

fn blobs_with_canary(s: &TestServer) -> usize {
    files_under(&s.data_dir().join("blobs"))
        .iter()
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap_or_default();
            bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes())
        })
        .count()
}

/// The content of a thread: a message saying `words`, with an attachment whose file and
/// name carry the canary and an embedding on each; `(thread, message, attachment)`.
struct Content {
    thread: String,
    message: String,
    attachment: String,
}

async fn content(s: &TestServer, u: &User, ws: &str, words: &str, n: u8) -> Content {
    let thread = id(&s
        .post(
            u,
            "/api/v1/threads",
            json!({"workspace_id": ws, "title": format!("{words} title")}),
        )
        .await
        .expect(201));
    let message = id(&s
        .post(
            u,
            &format!("/api/v1/threads/{thread}/messages"),
            json!({"role": "user", "content": format!("{words} body"), "metadata": {"note": words}}),
        )
        .await
        .expect(201));
    let attachment = id(&s
        .post(
            u,
            "/api/v1/attachments",
            json!({"workspace_id": ws, "message_id": message, "file_name": format!("{words}.png")}),
        )
        .await
        .expect(201));
    assert_eq!(
        s.put_content(u, &attachment, file_with(words, n)).await,
        200
    );
    for (collection, source, i) in [
        ("messages", &message, 2 * n),
        ("attachments", &attachment, 2 * n + 1),
    ] {
        s.post(
            u,
            &format!("/api/v1/vectors/{collection}/points?wait=true"),
            json!({"source_id": source, "workspace_id": ws, "vector": axis(usize::from(i))}),
        )
        .await
        .expect(200);
    }
    Content {
        thread,
        message,
        attachment,
    }
}

/// Moves what the bin holds of `ids` (any table) to long ago.
async fn binned_long_ago(s: &TestServer, ids: &[&str]) {
    let set = ids
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ");
    for table in [
        "organizations",
        "workspaces",
        "projects",
        "threads",
        "documents",
        "messages",
    ] {
        s.raw_execute(&format!(
            "UPDATE {table} SET deleted_at = '{LONG_AGO}' WHERE deleted_at IS NOT NULL AND (id IN ({set}) OR {})",
            match table {
                "messages" => format!("thread_id IN ({set}) OR workspace_id IN ({set})"),
                "organizations" => "1 = 0".to_owned(),
                "workspaces" => format!("organization_id IN ({set})"),
                _ => format!("workspace_id IN ({set})"),
            }
        ))
        .await;
    }
}

/// A conflict kept with a losing value of `row` saying `lost` (the merge keeps them so:
/// a raw row).
async fn conflict_on(s: &TestServer, user: &str, ws: &str, entity: &str, row: &str, lost: &str) {
    let id = uuid::Uuid::now_v7();
    let change = uuid::Uuid::now_v7();
    s.raw_execute(&format!(
        "INSERT INTO sync_conflicts (id, created_at, updated_at, user_id, workspace_id, entity_type,
             entity_id, kind, change_id, hlc, lost_values, winner_change_id, winner_hlc)
         VALUES ('{id}', '{LONG_AGO}', '{LONG_AGO}', '{user}', '{ws}', '{entity}', '{row}',
             'concurrent_edit', '{change}', 1, '{{\"content\": \"{lost}\"}}', '{change}', 2)"
    ))
    .await;
}

async fn rows_in_the_bin_past_the_rule_are_purged_with_everything_below_them(backend: Backend) {
    let index: Arc<OnceLock<Arc<dyn VectorIndex>>> = Arc::default();
    let held = index.clone();
    let s = TestServer::start_with_index(backend, move |dir| {
        let index = default_vector_index(dir);
        let _ = held.set(index.clone());
        index
    })
    .await;
    let index = index.get().unwrap().clone();
    let u = s.user("u").await;
    let member = s.user("member").await;
    let other = s.user("other").await;
    let ws = id(&s
        .post(&u, "/api/v1/workspaces", json!({"name": "Mine"}))
        .await
        .expect(201));
    let canary = |what: &str| format!("{what} {CANARY}");

    // Binned long ago, so purged: a thread with everything in it; a message alone in a
    // live thread; a document; a project with a thread in it; a whole shared workspace.
    let gone_thread = content(&s, &u, &ws, &canary("thread"), 1).await;
    let kept_thread = content(&s, &u, &ws, "kept", 2).await;
    let gone_message = id(&s
        .post(
            &u,
            &format!("/api/v1/threads/{}/messages", kept_thread.thread),
            json!({"role": "user", "content": canary("lone message")}),
        )
        .await
        .expect(201));
    let gone_document = id(&s
        .post(
            &u,
            "/api/v1/documents",
            json!({"workspace_id": ws, "title": canary("doc"), "body": canary("doc body")}),
        )
        .await
        .expect(201));
    let project = id(&s
        .post(
            &u,
            "/api/v1/projects",
            json!({"workspace_id": ws, "name": canary("project")}),
        )
        .await
        .expect(201));
    let project_thread = id(&s
        .post(
            &u,
            "/api/v1/threads",
            json!({"workspace_id": ws, "project_id": project, "title": canary("project thread")}),
        )
        .await
        .expect(201));
    let shared = id(&s
        .post(&u, "/api/v1/workspaces", json!({"name": canary("shared")}))
        .await
        .expect(201));
    s.post(
        &u,
        &format!("/api/v1/workspaces/{shared}/members"),
        json!({"user_id": member.id, "role": "editor"}),
    )
    .await
    .expect(201);
    let shared_content = content(&s, &member, &shared, &canary("shared thread"), 3).await;
    // Binned a moment ago, so kept; and live rows, kept.
    let recent_message = id(&s
        .post(
            &u,
            &format!("/api/v1/threads/{}/messages", kept_thread.thread),
            json!({"role": "user", "content": "recently deleted"}),
        )
        .await
        .expect(201));
    let recent_document = id(&s
        .post(
            &u,
            "/api/v1/documents",
            json!({"workspace_id": ws, "title": "recent", "body": "recently deleted"}),
        )
        .await
        .expect(201));
    // Another account's thread, binned long ago: purged too, and nothing else of theirs.
    let others_ws = id(&s
        .post(&other, "/api/v1/workspaces", json!({"name": "Theirs"}))
        .await
        .expect(201));
    let others_live = content(&s, &other, &others_ws, "theirs", 4).await;
    conflict_on(
        &s,
        &u.id,
        &ws,
        "message",
        &gone_thread.message,
        &canary("lost"),
    )
    .await;
    conflict_on(&s, &u.id, &ws, "message", &kept_thread.message, "kept lost").await;

    for path in [
        format!("/api/v1/threads/{}", gone_thread.thread),
        format!("/api/v1/messages/{gone_message}"),
        format!("/api/v1/documents/{gone_document}"),
        format!("/api/v1/projects/{project}"),
        format!("/api/v1/workspaces/{shared}"),
        format!("/api/v1/messages/{recent_message}"),
        format!("/api/v1/documents/{recent_document}"),
    ] {
        let deleted = s.call(Method::DELETE, &path, Some(&u.token), None).await;
        assert!(deleted.status.is_success(), "{path}: {deleted:?}");
    }
    binned_long_ago(
        &s,
        &[
            &gone_thread.thread,
            &gone_message,
            &gone_document,
            &project,
            &project_thread,
            &shared,
        ],
    )
    .await;
    let points_before = index.stats("messages").await.unwrap().points;
    let feed_before = s
        .get(&member, "/api/v1/sync/pull?limit=1000")
        .await
        .expect(200);
    let member_cursor = feed_before["cursor"].as_str().unwrap().to_owned();

    // A dry run says what would go and changes nothing.
    let preview = run(&s, true).await;
    assert_eq!(preview.purge_after_days, 30);
    let expected: std::collections::BTreeMap<String, u64> = [
        ("documents", 1),
        ("messages", 1),
        ("projects", 1),
        // The project's thread is one of its own (a project's rows are not its cascade's).
        ("threads", 2),
        ("workspaces", 1),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_owned(), n))
    .collect();
    assert_eq!(preview.purged, expected, "{preview:?}");
    assert_eq!(preview.purged_attachments, 2, "{preview:?}");
    assert_eq!(preview.purged_attachment_bytes, 2 * 2048);
    assert_eq!(preview.purged_embeddings, 4);
    // The gone thread's message, and the shared workspace's.
    assert_eq!(preview.purged_messages_below, 2);
    assert_eq!(
        count(
            &s,
            &format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM threads WHERE id = '{}'",
                gone_thread.thread
            )
        )
        .await,
        1,
        "a dry run deletes nothing"
    );

    s.age_blobs();
    let report = run(&s, false).await;
    assert_eq!(report.purged, expected, "{report:?}");
    // Found by the attack: the dry run said 0 change-log entries would go.
    assert_eq!(preview.purged_changes, report.purged_changes, "{preview:?}");
    assert_eq!(report.purged_attachments, 2);
    assert_eq!(report.purged_embeddings, 4);
    assert_eq!(report.purged_messages_below, 2);
    assert_eq!(report.blob_files_deleted, 2, "{report:?}");
    assert!(report.purged_changes > 10, "{report:?}");

    // Gone for good: no read finds it, in the bin or not, and no restore brings it back.
    for path in [
        format!("/api/v1/threads/{}", gone_thread.thread),
        format!("/api/v1/documents/{gone_document}"),
        format!("/api/v1/projects/{project}"),
        format!("/api/v1/threads/{project_thread}"),
        format!("/api/v1/attachments/{}", gone_thread.attachment),
    ] {
        let read = s.get(&u, &format!("{path}?deleted=include")).await;
        assert_eq!(read.status, 404, "{path}: {read:?}");
        let restore = s.post(&u, &format!("{path}/restore"), json!({})).await;
        assert_eq!(restore.status, 404, "{path}: {restore:?}");
    }
    let workspace = s
        .get(&u, &format!("/api/v1/workspaces/{shared}?deleted=include"))
        .await;
    assert_eq!(workspace.status, 404, "{workspace:?}");
    // Nothing the database holds names the canary: not a row, a full-text entry, the
    // change log, a conflict.
    for (table, column) in [
        ("threads", "title"),
        ("messages", "content"),
        ("messages", "metadata"),
        ("documents", "body"),
        ("documents", "title"),
        ("projects", "name"),
        ("workspaces", "name"),
        ("attachments", "file_name"),
        ("sync_events", "payload"),
        ("sync_conflicts", "lost_values"),
    ] {
        let n = count(
            &s,
            &format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM {table} WHERE CAST({column} AS TEXT) LIKE '%{CANARY}%'"
            ),
        )
        .await;
        assert_eq!(n, 0, "{table}.{column} still holds the canary");
    }
    let found = s
        .get(&u, &format!("/api/v1/search?q={CANARY}"))
        .await
        .expect(200);
    assert_eq!(found["items"], json!([]), "{found}");
    if backend == Backend::Sqlite {
        for fts in ["messages_fts", "documents_fts"] {
            s.raw_execute(&format!(
                "INSERT INTO {fts} ({fts}) VALUES ('integrity-check')"
            ))
            .await;
            let n = count(
                &s,
                &format!("SELECT CAST(COUNT(*) AS TEXT) FROM {fts} WHERE {fts} MATCH '{CANARY}'"),
            )
            .await;
            assert_eq!(n, 0, "{fts} still finds the canary");
            // Found by the attack: FTS5 kept a deleted row's words in its segments
            // (marked deleted) until a merge; `secure-delete` takes them out at once.
            let kept = count(
                &s,
                &format!(
                    "SELECT CAST(COUNT(*) AS TEXT) FROM {fts}_data WHERE instr(block, CAST('{CANARY}' AS BLOB)) > 0"
                ),
            )
            .await;
            assert_eq!(kept, 0, "{fts} keeps the canary's word in its segments");
        }
        // Found by the attack: deleted cells kept their bytes in the pages still in use.
        // With `secure_delete` the file holds no trace once the WAL is checkpointed.
        s.raw_execute("PRAGMA wal_checkpoint(TRUNCATE)").await;
        for file in ["ceneca.db", "ceneca.db-wal"] {
            let bytes = std::fs::read(s.data_dir().join(file)).unwrap_or_default();
            let traces = bytes
                .windows(CANARY.len())
                .filter(|w| *w == CANARY.as_bytes())
                .count();
            assert_eq!(traces, 0, "{file} still holds the canary's bytes");
        }
    }
    // The files are gone from the folder; the vectors from SQL and from the index.
    assert_eq!(blobs_with_canary(&s), 0);
    let embeddings = count(
        &s,
        &format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM embedding_records WHERE source_id IN ('{}', '{}', '{}', '{}')",
            gone_thread.message, gone_thread.attachment, shared_content.message, shared_content.attachment
        ),
    )
    .await;
    assert_eq!(embeddings, 0);
    for _ in 0..100 {
        if count(&s, "SELECT CAST(COUNT(*) AS TEXT) FROM vector_outbox").await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        index.stats("messages").await.unwrap().points,
        points_before - 2
    );
    // The sync conflict of a purged row went; the other stays.
    assert_eq!(
        count(&s, "SELECT CAST(COUNT(*) AS TEXT) FROM sync_conflicts").await,
        1
    );

    // What stays: live rows, rows binned a moment ago, another account's content.
    for path in [
        format!("/api/v1/threads/{}", kept_thread.thread),
        format!("/api/v1/messages/{}", kept_thread.message),
        format!("/api/v1/attachments/{}", kept_thread.attachment),
        format!("/api/v1/messages/{recent_message}?deleted=include"),
        format!("/api/v1/documents/{recent_document}?deleted=include"),
        format!("/api/v1/workspaces/{ws}"),
    ] {
        s.get(&u, &path).await.expect(200);
    }
    s.get(&other, &format!("/api/v1/threads/{}", others_live.thread))
        .await
        .expect(200);
    let others_file = s
        .http
        .get(format!(
            "{}/api/v1/attachments/{}/content",
            s.base, others_live.attachment
        ))
        .bearer_auth(&other.token)
        .send()
        .await
        .unwrap();
    assert_eq!(others_file.status(), 200);
    assert_eq!(
        others_file.bytes().await.unwrap().as_ref(),
        file_with("theirs", 4).as_slice()
    );
    // The counters agree with the data: what went was counted off.
    let drift = s.services.store().reconcile_storage(false).await.unwrap();
    assert!(drift.is_empty(), "{drift:?}");

    // Devices are told: the owner's feed holds one `purge` per purged row, with nothing
    // in it, and no earlier change of theirs; the member's, a revocation of the workspace.
    let feed = s.get(&u, "/api/v1/sync/pull?limit=1000").await.expect(200);
    let changes = feed["changes"].as_array().unwrap();
    let purged: Vec<&str> = changes
        .iter()
        .filter(|c| c["operation"] == "purge")
        .filter_map(|c| c["entity_id"].as_str())
        .collect();
    for row in [
        &gone_thread.thread,
        &gone_message,
        &gone_document,
        &project,
        &project_thread,
    ] {
        assert!(
            purged.contains(&row.as_str()),
            "no purge of {row}: {purged:?}"
        );
        let history: Vec<&Value> = changes
            .iter()
            .filter(|c| c["entity_id"] == row.as_str() && c["operation"] != "purge")
            .collect();
        assert!(history.is_empty(), "{row} kept {history:?}");
    }
    for change in changes.iter().filter(|c| c["operation"] == "purge") {
        assert_eq!(change["values"], json!({}), "{change}");
    }
    assert!(
        !feed.to_string().contains(CANARY),
        "the feed still holds the canary"
    );
    let member_feed = s
        .get(
            &member,
            &format!("/api/v1/sync/pull?cursor={member_cursor}&limit=1000"),
        )
        .await
        .expect(200);
    let revoked = member_feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["operation"] == "revoke" && c["entity_id"] == shared.as_str());
    assert!(revoked, "{member_feed}");
    // Nobody pushes a purge.
    let device = s
        .post(
            &u,
            "/api/v1/devices",
            json!({"name": "laptop", "platform": "desktop"}),
        )
        .await
        .expect(201);
    let pushed = s
        .call(
            Method::POST,
            "/api/v1/sync/push",
            Some(device["token"].as_str().unwrap()),
            Some(&json!({"device_id": device["id"], "changes": [{
                "change_id": uuid::Uuid::now_v7(),
                "entity": "threads",
                "entity_id": kept_thread.thread,
                "operation": "purge",
                "hlc": "1",
                "values": {}
            }]})),
        )
        .await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    let outcome = &pushed.body["results"][0];
    assert_eq!(outcome["outcome"], "refused", "{pushed:?}");
    assert!(outcome.to_string().contains("never pushed"), "{outcome}");
    s.get(&u, &format!("/api/v1/threads/{}", kept_thread.thread))
        .await
        .expect(200);

    // Audited round by round, with ids and counts and never content; the chain holds.
    let admin = s.admin().await;
    let entries = s.audit_log(&admin, "action=maintenance.purge").await;
    assert_eq!(entries.len(), 5, "{entries:?}");
    let text = serde_json::to_string(&entries).unwrap();
    assert!(
        text.contains(&gone_thread.thread) && !text.contains(CANARY),
        "{text}"
    );
    assert_eq!(s.services.verify_audit_chain().await.unwrap().broken, None);

    // A second run finds nothing more to purge.
    let again = run(&s, false).await;
    assert!(again.purged.is_empty(), "{again:?}");
    // (The index goes before the data folder it writes to.)
    drop(index);
    drop(s);
}

async fn no_purge_when_the_rule_is_off(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        ServiceConfig {
            purge_after_days: 0,
            ..ServiceConfig::default()
        },
    )
    .await;
    let u = s.user("u").await;
    let ws = id(&s
        .post(&u, "/api/v1/workspaces", json!({"name": "Mine"}))
        .await
        .expect(201));
    let document = id(&s
        .post(
            &u,
            "/api/v1/documents",
            json!({"workspace_id": ws, "title": "old"}),
        )
        .await
        .expect(201));
    s.delete(&u, &format!("/api/v1/documents/{document}"))
        .await
        .expect(200);
    binned_long_ago(&s, &[&document]).await;
    let report = run(&s, false).await;
    assert_eq!(report.purge_after_days, 0);
    assert!(report.purged.is_empty(), "{report:?}");
    s.post(
        &u,
        &format!("/api/v1/documents/{document}/restore"),
        json!({}),
    )
    .await
    .expect(200);
}

/// Found by the attack: a workspace restored out of an organization in the bin, or a
/// message out of a thread in the bin, was purged with its parent though it was live.
async fn regression_a_row_restored_under_a_binned_parent_is_never_purged(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let org = id(&s
        .post(
            &u,
            "/api/v1/organizations",
            json!({"name": "Org", "slug": "org-restored"}),
        )
        .await
        .expect(201));
    let restored_ws = id(&s
        .post(
            &u,
            "/api/v1/workspaces",
            json!({"name": "Back", "organization_id": org}),
        )
        .await
        .expect(201));
    let ws = id(&s
        .post(&u, "/api/v1/workspaces", json!({"name": "Mine"}))
        .await
        .expect(201));
    let thread = id(&s
        .post(
            &u,
            "/api/v1/threads",
            json!({"workspace_id": ws, "title": "binned"}),
        )
        .await
        .expect(201));
    let message = id(&s
        .post(
            &u,
            &format!("/api/v1/threads/{thread}/messages"),
            json!({"role": "user", "content": "restored"}),
        )
        .await
        .expect(201));
    s.delete(&u, &format!("/api/v1/organizations/{org}"))
        .await
        .expect(200);
    s.post(
        &u,
        &format!("/api/v1/workspaces/{restored_ws}/restore"),
        json!({}),
    )
    .await
    .expect(200);
    s.delete(&u, &format!("/api/v1/threads/{thread}"))
        .await
        .expect(200);
    s.post(
        &u,
        &format!("/api/v1/messages/{message}/restore"),
        json!({}),
    )
    .await
    .expect(200);
    binned_long_ago(&s, &[&org, &thread]).await;

    let preview = run(&s, true).await;
    assert!(preview.purged.is_empty(), "{preview:?}");
    let report = run(&s, false).await;
    assert!(report.purged.is_empty(), "{report:?}");
    s.get(&u, &format!("/api/v1/workspaces/{restored_ws}"))
        .await
        .expect(200);
    s.get(&u, &format!("/api/v1/messages/{message}"))
        .await
        .expect(200);
    // Once what was restored goes to the bin too, the parent goes with it.
    s.delete(&u, &format!("/api/v1/messages/{message}"))
        .await
        .expect(200);
    binned_long_ago(&s, &[&thread]).await;
    let report = run(&s, false).await;
    assert_eq!(report.purged.get("threads"), Some(&1), "{report:?}");
    let gone = s
        .get(&u, &format!("/api/v1/messages/{message}?deleted=include"))
        .await;
    assert_eq!(gone.status, 404, "{gone:?}");
}

/// Found by the attack: a purged workspace of an organization was revoked from every
/// member of the organization, telling plain members of a workspace they could not see.
async fn regression_a_purged_workspace_is_revoked_only_from_who_could_read_it(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let plain = s.user("plain").await;
    let admin = s.user("orgadmin").await;
    let org = id(&s
        .post(
            &owner,
            "/api/v1/organizations",
            json!({"name": "Org", "slug": "org-revokes"}),
        )
        .await
        .expect(201));
    for (who, role) in [(&plain, "member"), (&admin, "admin")] {
        s.post(
            &owner,
            &format!("/api/v1/organizations/{org}/members"),
            json!({"user_id": who.id, "role": role}),
        )
        .await
        .expect(201);
    }
    let private = id(&s
        .post(
            &owner,
            "/api/v1/workspaces",
            json!({"name": "Private", "organization_id": org}),
        )
        .await
        .expect(201));
    let cursor = |who: &User| {
        let s = &s;
        let token = who.token.clone();
        async move {
            let page = s
                .call(
                    Method::GET,
                    "/api/v1/sync/pull?limit=1000",
                    Some(&token),
                    None,
                )
                .await
                .expect(200);
            page["cursor"].as_str().unwrap().to_owned()
        }
    };
    let (plain_at, admin_at) = (cursor(&plain).await, cursor(&admin).await);
    s.delete(&owner, &format!("/api/v1/workspaces/{private}"))
        .await
        .expect(200);
    binned_long_ago(&s, &[&private]).await;
    assert_eq!(run(&s, false).await.purged.get("workspaces"), Some(&1));
    let revoked = |who: &User, at: String| {
        let s = &s;
        let token = who.token.clone();
        let private = private.clone();
        async move {
            let page = s
                .call(
                    Method::GET,
                    &format!("/api/v1/sync/pull?cursor={at}&limit=1000"),
                    Some(&token),
                    None,
                )
                .await
                .expect(200);
            page["changes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["operation"] == "revoke" && c["entity_id"] == private.as_str())
        }
    };
    assert!(
        !revoked(&plain, plain_at).await,
        "a plain member learned of it"
    );
    assert!(
        revoked(&admin, admin_at).await,
        "its administrator was not told"
    );
}

/// Found by the attack: each message purged read every message (`parent_id`, set to
/// NULL, had no index), so a thread of 20,000 held the writer for 45 s.
async fn regression_references_set_to_null_by_a_purge_are_indexed(backend: Backend) {
    let s = TestServer::start(backend).await;
    let indexes = [
        "messages__parent_id",
        "ai_interactions__thread_id",
        "ai_interactions__message_id",
        "orchestration_step_results__interaction_id",
    ];
    for index in indexes {
        let sql = match backend {
            Backend::Sqlite => format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM sqlite_master WHERE type = 'index' AND name = '{index}'"
            ),
            Backend::Postgres => {
                format!("SELECT CAST(COUNT(*) AS TEXT) FROM pg_indexes WHERE indexname = '{index}'")
            }
        };
        assert_eq!(count(&s, &sql).await, 1, "no index {index}");
    }
}
