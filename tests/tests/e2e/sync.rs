//! Replication over real HTTP, on both engines: the change feed carries values and only
//! what the caller may read; pushed changes merge field by field by clock, apply once,
//! record what lost, and pass the checks of an API write; a removed member's devices are
//! told to drop the workspace; the stream delivers changes as they commit and resumes;
//! the zero-sync edition has none of it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ceneca_domain::Edition;
use ceneca_e2e::{Backend, TestServer, User, on_every_backend, world};
use ceneca_service::ServiceConfig;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

on_every_backend!(
    the_feed_carries_values_and_only_what_the_caller_may_read,
    the_feed_pages_and_refuses_cursors_it_cannot_continue,
    pushed_changes_apply_as_the_user_and_a_retry_applies_once,
    concurrent_edits_merge_by_field_and_the_later_clock_wins,
    an_edit_older_than_a_delete_is_kept_as_a_conflict,
    a_delete_that_arrives_before_its_create_leaves_a_tombstone,
    a_device_never_writes_where_its_user_cannot,
    forged_device_ids_and_other_users_device_tokens_are_refused,
    removing_a_member_revokes_the_workspace_from_their_feed,
    demoting_an_administrator_revokes_the_organization_s_workspaces_from_their_feed,
    a_binned_workspace_reaches_its_members_feeds_as_a_delete_and_a_restore,
    changes_stamped_too_far_ahead_are_refused,
    malformed_changes_are_refused_one_by_one,
    the_stream_delivers_changes_as_they_commit_and_resumes,
    sealed_content_travels_open_and_stays_sealed_in_the_log,
    zero_sync_has_no_sync_routes,
    regression_a_viewer_records_no_conflicts_and_lost_values_pass_validation_and_dlp,
    regression_the_stream_stops_at_a_revoke,
    regression_lost_sealed_content_stays_sealed_at_rest,
    regression_a_change_id_names_one_change,
    regression_api_tokens_neither_push_nor_hear_revocations,
    regression_cascaded_deletes_are_changes_of_their_own,
    regression_streams_per_account_are_capped,
    regression_a_write_between_merge_and_write_is_never_overwritten_by_an_older_change,
    pushed_creates_are_written_in_groups_and_a_bad_one_is_refused_alone,
    regression_pushes_racing_api_writes_on_one_row_answer_per_change_and_never_deadlock,
    a_device_learns_its_own_memberships_and_no_one_elses,
    compaction_loses_no_cursor_and_the_snapshot_is_the_state_in_fewer_changes,
    the_snapshot_refuses_what_it_cannot_continue,
    provider_keys_travel_only_to_devices_and_stay_sealed_in_the_log,
    regression_a_reader_of_a_shared_provider_setting_never_receives_its_key,
    regression_a_push_past_the_quota_refuses_those_changes_and_applies_the_rest,
);

/// A hybrid-logical-clock value `offset_ms` from now, as the protocol sends it.
fn hlc(offset_ms: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    (((now as i64 + offset_ms) as u64) << 16).to_string()
}

fn change(entity: &str, id: &str, operation: &str, hlc: &str, values: Value) -> Value {
    json!({
        "change_id": Uuid::now_v7(),
        "entity": entity,
        "entity_id": id,
        "operation": operation,
        "hlc": hlc,
        "values": values,
    })
}

async fn device(s: &TestServer, owner: &User, name: &str) -> (String, User) {
    let device = s
        .post(
            owner,
            "/api/v1/devices",
            json!({"name": name, "platform": "desktop"}),
        )
        .await
        .expect(201);
    let as_device = User {
        token: device["token"].as_str().unwrap().to_owned(),
        ..owner.clone()
    };
    (device["id"].as_str().unwrap().to_owned(), as_device)
}

async fn push(s: &TestServer, who: &User, device_id: &str, changes: Vec<Value>) -> Vec<Value> {
    let out = s
        .post(
            who,
            "/api/v1/sync/push",
            json!({"device_id": device_id, "changes": changes}),
        )
        .await
        .expect(200);
    out["results"].as_array().unwrap().clone()
}

/// Every change the caller may read, from the start (in pages of 3, so paging is used).
async fn pull_all(s: &TestServer, who: &User) -> Vec<Value> {
    pull_from(s, who, "0", 3).await
}

/// Every change the caller may read after `cursor`, in pages of `limit`.
async fn pull_from(s: &TestServer, who: &User, cursor: &str, limit: u32) -> Vec<Value> {
    let mut cursor = cursor.to_owned();
    let mut out = Vec::new();
    loop {
        let page = s
            .get(
                who,
                &format!("/api/v1/sync/pull?cursor={cursor}&limit={limit}"),
            )
            .await
            .expect(200);
        out.extend(page["changes"].as_array().unwrap().iter().cloned());
        cursor = page["cursor"].as_str().unwrap().to_owned();
        if page["has_more"] == false {
            return out;
        }
    }
}

async fn the_feed_carries_values_and_only_what_the_caller_may_read(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, b) = (s.user("a").await, s.user("b").await);
    let wa = world(&s, &a).await;
    let wb = world(&s, &b).await;
    s.patch(
        &a,
        &format!("/api/v1/threads/{}", wa.thread),
        json!({"title": "Liftoff"}),
    )
    .await
    .expect(200);

    let feed = pull_all(&s, &a).await;
    let thread: Vec<&Value> = feed
        .iter()
        .filter(|c| c["entity_id"] == wa.thread.as_str())
        .collect();
    assert_eq!(thread[0]["operation"], "create");
    assert_eq!(thread[0]["values"]["title"], "Launch");
    assert_eq!(thread[0]["entity"], "threads");
    assert_eq!(thread[0]["workspace_id"], wa.workspace.as_str());
    assert!(
        thread[0]["values"].get("message_count").is_none(),
        "counters are recomputed, never sent: {}",
        thread[0]
    );
    assert_eq!(thread[1]["operation"], "update");
    assert_eq!(thread[1]["values"], json!({"title": "Liftoff"}));
    assert!(thread[1]["hlc"].as_str().unwrap().parse::<u64>().unwrap() > 0);
    let message = feed
        .iter()
        .find(|c| c["entity_id"] == wa.message.as_str())
        .expect("the message is in the feed");
    assert_eq!(message["values"]["content"], "When do we launch?");
    // Cursors increase in commit order.
    let cursors: Vec<i64> = feed
        .iter()
        .map(|c| c["cursor"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");

    // Nothing of the other tenant, and no secret or hidden column.
    let text = Value::Array(feed.clone()).to_string();
    for id in [&wb.workspace, &wb.thread, &wb.message, &wb.document, &b.id] {
        assert!(!text.contains(id.as_str()), "b's {id} leaked into a's feed");
    }
    for hidden in ["password_hash", "token_hash", "api_key_ciphertext"] {
        assert!(!text.contains(hidden), "{hidden} in the feed");
    }

    // A denied document is left out of the feed, as it is of every read.
    let viewer = s.user("viewer").await;
    s.post(
        &a,
        &format!("/api/v1/workspaces/{}/members", wa.workspace),
        json!({"user_id": viewer.id, "role": "viewer"}),
    )
    .await
    .expect(201);
    s.post(
        &a,
        "/api/v1/permission-sets",
        json!({"workspace_id": wa.workspace, "subject_type": "user", "subject_user_id": viewer.id,
               "resource_type": "documents", "resource_id": wa.document, "actions": ["read"], "effect": "deny"}),
    )
    .await
    .expect(201);
    let seen = pull_all(&s, &viewer).await;
    assert!(seen.iter().any(|c| c["entity_id"] == wa.thread.as_str()));
    assert!(
        !seen.iter().any(|c| c["entity_id"] == wa.document.as_str()),
        "a denied document reached the feed"
    );
}

async fn the_feed_pages_and_refuses_cursors_it_cannot_continue(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    world(&s, &a).await;
    let first = s.get(&a, "/api/v1/sync/pull?limit=2").await.expect(200);
    assert_eq!(first["changes"].as_array().unwrap().len(), 2);
    assert_eq!(first["has_more"], true);
    let cursor = first["cursor"].as_str().unwrap();
    let next = s
        .get(&a, &format!("/api/v1/sync/pull?cursor={cursor}&limit=2"))
        .await
        .expect(200);
    assert!(
        next["changes"][0]["cursor"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > cursor.parse::<i64>().unwrap()
    );
    let all = pull_all(&s, &a).await;
    let end = all.last().unwrap()["cursor"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    let gone = s
        .get(&a, &format!("/api/v1/sync/pull?cursor={}", end + 1000))
        .await;
    assert_eq!(gone.status.as_u16(), 410, "{}", gone.body);
    assert_eq!(gone.code(), "cursor_expired");
    assert!(gone.body.to_string().contains("resynchronise"));
    for bad in [
        "cursor=-1",
        "cursor=abc",
        "limit=0",
        "limit=10001",
        "cursor=1&cursor=2",
        "since=3",
    ] {
        let reply = s.get(&a, &format!("/api/v1/sync/pull?{bad}")).await;
        assert_eq!(reply.status.as_u16(), 400, "{bad}: {}", reply.body);
    }
}

async fn pushed_changes_apply_as_the_user_and_a_retry_applies_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let w = world(&s, &a).await;
    let (device_id, laptop) = device(&s, &a, "laptop").await;
    let thread = Uuid::now_v7().to_string();
    let message = Uuid::now_v7().to_string();
    let created_at = "2026-11-30T08:00:00Z";
    let batch = vec![
        change(
            "threads",
            &thread,
            "create",
            &hlc(-3),
            json!({"workspace_id": w.workspace, "title": "Offline", "created_at": created_at}),
        ),
        change(
            "messages",
            &message,
            "create",
            &hlc(-2),
            json!({"thread_id": thread, "role": "user", "content": "typed on a plane"}),
        ),
        change(
            "threads",
            &thread,
            "update",
            &hlc(-1),
            json!({"title": "Offline notes"}),
        ),
    ];
    let results = push(&s, &laptop, &device_id, batch.clone()).await;
    assert!(
        results.iter().all(|r| r["outcome"] == "applied"),
        "{results:?}"
    );
    let got = s
        .get(&a, &format!("/api/v1/threads/{thread}"))
        .await
        .expect(200);
    assert_eq!(got["title"], "Offline notes");
    assert_eq!(got["created_at"], created_at);
    assert_eq!(got["message_count"], 1, "counters are recomputed here");

    // The same batch again (a retry after a lost answer): applied once.
    let again = push(&s, &laptop, &device_id, batch.clone()).await;
    assert!(again.iter().all(|r| r["outcome"] == "applied"), "{again:?}");
    let messages = s
        .list_all(&a, &format!("/api/v1/threads/{thread}/messages"))
        .await;
    assert_eq!(messages.len(), 1);
    let got = s
        .get(&a, &format!("/api/v1/threads/{thread}"))
        .await
        .expect(200);
    assert_eq!(got["message_count"], 1);

    // The feed shows the changes under the device's identity and clock.
    let feed = pull_all(&s, &a).await;
    let logged: Vec<&Value> = feed
        .iter()
        .filter(|c| c["entity_id"] == thread.as_str())
        .collect();
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert_eq!(logged[0]["change_id"], batch[0]["change_id"]);
    assert_eq!(logged[0]["hlc"], batch[0]["hlc"]);
    assert_eq!(logged[0]["device_id"], device_id.as_str());
    assert_eq!(logged[1]["change_id"], batch[2]["change_id"]);

    // The pushes are in the audit trail as the user's writes.
    let admin = s.admin().await;
    let entries = s.audit_log(&admin, &format!("resource_id={thread}")).await;
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "threads.create" && e["actor_id"] == a.id.as_str()),
        "{entries:?}"
    );
}

async fn concurrent_edits_merge_by_field_and_the_later_clock_wins(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let w = world(&s, &a).await;
    let (laptop_id, laptop) = device(&s, &a, "laptop").await;
    let (phone_id, phone) = device(&s, &a, "phone").await;
    let thread = &w.thread;
    // Stamps after the row's creation (an edit stamped before it would lose to it).
    let (early, late) = (hlc(1000), hlc(2000));

    // The laptop's later title reaches the server first; the phone's earlier edit of the
    // title and of `pinned` arrives after it.
    let r = push(
        &s,
        &laptop,
        &laptop_id,
        vec![change(
            "threads",
            thread,
            "update",
            &late,
            json!({"title": "Laptop"}),
        )],
    )
    .await;
    assert_eq!(r[0]["outcome"], "applied");
    let lost = change(
        "threads",
        thread,
        "update",
        &early,
        json!({"title": "Phone", "pinned": true}),
    );
    let r = push(&s, &phone, &phone_id, vec![lost.clone()]).await;
    assert_eq!(r[0]["outcome"], "merged", "{r:?}");
    let conflict_id = r[0]["conflict_id"].as_str().unwrap().to_owned();
    let got = s
        .get(&a, &format!("/api/v1/threads/{thread}"))
        .await
        .expect(200);
    assert_eq!(got["title"], "Laptop", "the later clock keeps the field");
    assert_eq!(
        got["pinned"], true,
        "a different field of the same row survives"
    );

    // The loss is recorded, not dropped, and a retry records it once.
    let r = push(&s, &phone, &phone_id, vec![lost]).await;
    assert_eq!(r[0]["conflict_id"], conflict_id.as_str());
    let conflicts = s.get(&a, "/api/v1/sync/conflicts").await.expect(200);
    let items = conflicts["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], conflict_id.as_str());
    assert_eq!(items[0]["kind"], "concurrent_edit");
    assert_eq!(items[0]["lost_values"], json!({"title": "Phone"}));
    assert_eq!(items[0]["device_id"], phone_id.as_str());
    assert_eq!(items[0]["hlc"], early.as_str());
    assert_eq!(items[0]["winner_hlc"], late.as_str());

    // Whoever edits the field with a later clock wins it, on every node.
    let r = push(
        &s,
        &phone,
        &phone_id,
        vec![change(
            "threads",
            thread,
            "update",
            &hlc(3000),
            json!({"title": "Phone again"}),
        )],
    )
    .await;
    assert_eq!(r[0]["outcome"], "applied");
    let got = s
        .get(&a, &format!("/api/v1/threads/{thread}"))
        .await
        .expect(200);
    assert_eq!(got["title"], "Phone again");

    // Another user sees none of a's conflicts.
    let other = s.user("other").await;
    let theirs = s.get(&other, "/api/v1/sync/conflicts").await.expect(200);
    assert_eq!(theirs["items"], json!([]));
}

/// An edit stamped before the row was created loses every field to the creation.
async fn an_edit_older_than_the_row_loses_to_its_creation(
    s: &TestServer,
    a: &User,
    w: &ceneca_e2e::World,
) {
    let (id, laptop) = device(s, a, "old clock").await;
    let r = push(
        s,
        &laptop,
        &id,
        vec![change(
            "threads",
            &w.thread,
            "update",
            &hlc(-60_000),
            json!({"title": "stale"}),
        )],
    )
    .await;
    assert_eq!(r[0]["outcome"], "conflict", "{r:?}");
    let got = s
        .get(a, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    assert_eq!(got["title"], "Launch");
}

async fn an_edit_older_than_a_delete_is_kept_as_a_conflict(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let w = world(&s, &a).await;
    let (id, laptop) = device(&s, &a, "laptop").await;
    let doc = &w.document;
    an_edit_older_than_the_row_loses_to_its_creation(&s, &a, &w).await;
    let r = push(
        &s,
        &laptop,
        &id,
        vec![change("documents", doc, "delete", &hlc(2000), json!({}))],
    )
    .await;
    assert_eq!(r[0]["outcome"], "applied");
    s.get(&a, &format!("/api/v1/documents/{doc}"))
        .await
        .expect(404);

    let r = push(
        &s,
        &laptop,
        &id,
        vec![change(
            "documents",
            doc,
            "update",
            &hlc(1000),
            json!({"title": "Edited offline"}),
        )],
    )
    .await;
    assert_eq!(r[0]["outcome"], "conflict", "{r:?}");
    s.get(&a, &format!("/api/v1/documents/{doc}"))
        .await
        .expect(404);
    let conflicts = s.get(&a, "/api/v1/sync/conflicts").await.expect(200);
    assert_eq!(
        conflicts["items"].as_array().unwrap().len(),
        2,
        "{conflicts}"
    );
    assert_eq!(conflicts["items"][0]["kind"], "edit_lost_to_delete");
    assert_eq!(
        conflicts["items"][0]["lost_values"],
        json!({"title": "Edited offline"})
    );

    // A restore with a later clock brings the row back, with the edit it kept (as on a
    // replica that received the edit before the delete).
    let r = push(
        &s,
        &laptop,
        &id,
        vec![change("documents", doc, "restore", &hlc(3000), json!({}))],
    )
    .await;
    assert_eq!(r[0]["outcome"], "applied", "{r:?}");
    let got = s
        .get(&a, &format!("/api/v1/documents/{doc}"))
        .await
        .expect(200);
    assert_eq!(got["title"], "Edited offline");
    // An older delete loses to that restore.
    let r = push(
        &s,
        &laptop,
        &id,
        vec![change("documents", doc, "delete", &hlc(2500), json!({}))],
    )
    .await;
    assert_eq!(r[0]["outcome"], "applied");
    s.get(&a, &format!("/api/v1/documents/{doc}"))
        .await
        .expect(200);
}

async fn a_delete_that_arrives_before_its_create_leaves_a_tombstone(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let w = world(&s, &a).await;
    let (id, laptop) = device(&s, &a, "laptop").await;
    let project = Uuid::now_v7().to_string();
    // A delete of a row the server has never seen is refused: its create must come first.
    let r = push(
        &s,
        &laptop,
        &id,
        vec![change("projects", &project, "delete", &hlc(-1), json!({}))],
    )
    .await;
    assert_eq!(r[0]["outcome"], "refused");
    assert_eq!(r[0]["field"], "entity_id");
    // In one batch, create then delete: the row exists as a tombstone.
    let r = push(
        &s,
        &laptop,
        &id,
        vec![
            change(
                "projects",
                &project,
                "create",
                &hlc(-3),
                json!({"workspace_id": w.workspace, "name": "Short-lived"}),
            ),
            change("projects", &project, "delete", &hlc(-2), json!({})),
        ],
    )
    .await;
    assert!(r.iter().all(|r| r["outcome"] == "applied"), "{r:?}");
    s.get(&a, &format!("/api/v1/projects/{project}"))
        .await
        .expect(404);
    s.get(&a, &format!("/api/v1/projects/{project}?deleted=include"))
        .await
        .expect(200);
}

async fn a_device_never_writes_where_its_user_cannot(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, b) = (s.user("a").await, s.user("b").await);
    let w = world(&s, &a).await;
    s.post(
        &a,
        &format!("/api/v1/workspaces/{}/members", w.workspace),
        json!({"user_id": b.id, "role": "viewer"}),
    )
    .await
    .expect(201);
    let (id, b_laptop) = device(&s, &b, "laptop").await;
    let mine = world(&s, &b).await;
    let message = Uuid::now_v7().to_string();
    let r = push(
        &s,
        &b_laptop,
        &id,
        vec![
            // A viewer cannot write into a's thread.
            change(
                "messages",
                &message,
                "create",
                &hlc(-3),
                json!({"thread_id": w.thread, "role": "user", "content": "sneaky"}),
            ),
            // Nor edit a's document.
            change(
                "documents",
                &w.document,
                "update",
                &hlc(-2),
                json!({"title": "defaced"}),
            ),
            // Nor move their own thread into a's workspace.
            change(
                "threads",
                &mine.thread,
                "update",
                &hlc(-1),
                json!({"workspace_id": w.workspace}),
            ),
            // Governance never travels from a device.
            change(
                "workspace_members",
                &Uuid::now_v7().to_string(),
                "create",
                &hlc(0),
                json!({"workspace_id": w.workspace, "user_id": b.id, "role": "owner"}),
            ),
        ],
    )
    .await;
    assert!(r.iter().all(|r| r["outcome"] == "refused"), "{r:?}");
    assert!(
        r.iter()
            .all(|r| r["reason"].as_str().is_some_and(|m| !m.is_empty()))
    );
    assert_eq!(r[3]["field"], "entity");
    let messages = s
        .list_all(&a, &format!("/api/v1/threads/{}/messages", w.thread))
        .await;
    assert_eq!(messages.len(), 2, "nothing was stored");
    let doc = s
        .get(&a, &format!("/api/v1/documents/{}", w.document))
        .await
        .expect(200);
    assert_eq!(doc["title"], "Plan");
    let thread = s
        .get(&b, &format!("/api/v1/threads/{}", mine.thread))
        .await
        .expect(200);
    assert_eq!(thread["workspace_id"], mine.workspace.as_str());
    // A third user's workspace: not found, whatever the id.
    let c = s.user("c").await;
    let wc = world(&s, &c).await;
    let r = push(
        &s,
        &b_laptop,
        &id,
        vec![change(
            "threads",
            &wc.thread,
            "update",
            &hlc(0),
            json!({"title": "mine now"}),
        )],
    )
    .await;
    assert_eq!(r[0]["outcome"], "refused");
    let create_there = Uuid::now_v7().to_string();
    let r = push(
        &s,
        &b_laptop,
        &id,
        vec![change(
            "threads",
            &create_there,
            "create",
            &hlc(0),
            json!({"workspace_id": wc.workspace, "title": "planted"}),
        )],
    )
    .await;
    assert_eq!(r[0]["outcome"], "refused");
    s.get(&c, &format!("/api/v1/threads/{create_there}"))
        .await
        .expect(404);
    // A create reusing an id another tenant's row has is refused too.
    let r = push(
        &s,
        &b_laptop,
        &id,
        vec![change(
            "threads",
            &wc.thread,
            "create",
            &hlc(0),
            json!({"workspace_id": mine.workspace, "title": "same id"}),
        )],
    )
    .await;
    assert_eq!(r[0]["outcome"], "refused");
    let theirs = s
        .get(&c, &format!("/api/v1/threads/{}", wc.thread))
        .await
        .expect(200);
    assert_eq!(theirs["title"], "Launch");
}

async fn forged_device_ids_and_other_users_device_tokens_are_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, b) = (s.user("a").await, s.user("b").await);
    let w = world(&s, &a).await;
    let (a_laptop_id, a_laptop) = device(&s, &a, "laptop").await;
    let (a_phone_id, _) = device(&s, &a, "phone").await;
    let (b_device_id, _) = device(&s, &b, "b").await;
    let body = |device: &str| json!({"device_id": device, "changes": [change("threads", &w.thread, "update", &hlc(0), json!({"title": "x"}))]});
    // A session naming another user's device, or no device at all.
    for forged in [b_device_id.clone(), Uuid::now_v7().to_string()] {
        let r = s.post(&a, "/api/v1/sync/push", body(&forged)).await;
        assert_eq!(r.status.as_u16(), 403, "{}", r.body);
    }
    // A device token naming another device, even of the same user.
    let r = s
        .post(&a_laptop, "/api/v1/sync/push", body(&a_phone_id))
        .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.body);
    // Another user's device token acts as that user: a's thread is not theirs.
    let (b_token_id, b_token) = device(&s, &b, "b2").await;
    let r = s
        .post(&b_token, "/api/v1/sync/push", body(&b_token_id))
        .await
        .expect(200);
    assert_eq!(r["results"][0]["outcome"], "refused");
    // A revoked device pushes nothing.
    s.delete(&a, &format!("/api/v1/devices/{a_laptop_id}"))
        .await;
    let r = s.post(&a, "/api/v1/sync/push", body(&a_laptop_id)).await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.body);
    let got = s
        .get(&a, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    assert_eq!(got["title"], "Launch");
}

async fn removing_a_member_revokes_the_workspace_from_their_feed(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, b) = (s.user("a").await, s.user("b").await);
    let w = world(&s, &a).await;
    let member = s
        .post(
            &a,
            &format!("/api/v1/workspaces/{}/members", w.workspace),
            json!({"user_id": b.id, "role": "editor"}),
        )
        .await
        .expect(201);
    let seen = pull_all(&s, &b).await;
    assert!(seen.iter().any(|c| c["entity_id"] == w.thread.as_str()));
    let cursor = seen.last().unwrap()["cursor"].as_str().unwrap().to_owned();

    s.delete(
        &a,
        &format!(
            "/api/v1/workspaces/{}/members/{}",
            w.workspace,
            member["id"].as_str().unwrap()
        ),
    )
    .await;
    s.patch(
        &a,
        &format!("/api/v1/threads/{}", w.thread),
        json!({"title": "after"}),
    )
    .await
    .expect(200);
    let page = s
        .get(&b, &format!("/api/v1/sync/pull?cursor={cursor}"))
        .await
        .expect(200);
    let changes = page["changes"].as_array().unwrap();
    let revoke = changes
        .iter()
        .find(|c| c["operation"] == "revoke")
        .unwrap_or_else(|| panic!("no revoke in {changes:?}"));
    assert_eq!(revoke["entity"], "workspaces");
    assert_eq!(revoke["entity_id"], w.workspace.as_str());
    assert!(
        !changes.iter().any(|c| c["entity_id"] == w.thread.as_str()),
        "b still receives the workspace: {changes:?}"
    );
    // a, still a member, is not told to drop anything.
    let a_feed = pull_all(&s, &a).await;
    assert!(!a_feed.iter().any(|c| c["operation"] == "revoke"));
}

/// An organization's owners and administrators read all of its workspaces: made a plain
/// member, a user's devices are told (a revoke carrying the role they keep) to drop what
/// the role opened, and the feed stops carrying it.
async fn demoting_an_administrator_revokes_the_organization_s_workspaces_from_their_feed(
    backend: Backend,
) {
    let s = TestServer::start(backend).await;
    let (a, b) = (s.user("a").await, s.user("b").await);
    let w = world(&s, &a).await;
    let members = format!("/api/v1/organizations/{}/members", w.organization);
    let member = s
        .post(&a, &members, json!({"user_id": b.id, "role": "admin"}))
        .await
        .expect(201);
    let membership = format!("{members}/{}", member["id"].as_str().unwrap());
    // A workspace of the organization b is not a member of: b reads it as administrator.
    let board = s
        .post(
            &a,
            "/api/v1/workspaces",
            json!({"name": "Board", "organization_id": w.organization}),
        )
        .await
        .expect(201);
    let board = board["id"].as_str().unwrap().to_owned();
    let thread = s
        .post(
            &a,
            "/api/v1/threads",
            json!({"workspace_id": board, "title": "minutes"}),
        )
        .await
        .expect(201);
    let thread = thread["id"].as_str().unwrap().to_owned();
    let seen = pull_all(&s, &b).await;
    assert!(seen.iter().any(|c| c["entity_id"] == thread.as_str()));
    let cursor = seen.last().unwrap()["cursor"].as_str().unwrap().to_owned();

    // Promotions and other edits of a membership revoke nothing.
    s.patch(&a, &membership, json!({"role": "owner"}))
        .await
        .expect(200);
    s.patch(&a, &membership, json!({"role": "member"}))
        .await
        .expect(200);
    // Changes between roles that never opened the workspaces revoke nothing more.
    for role in ["viewer", "member", "member"] {
        s.patch(&a, &membership, json!({"role": role}))
            .await
            .expect(200);
    }
    s.patch(
        &a,
        &format!("/api/v1/threads/{thread}"),
        json!({"title": "after"}),
    )
    .await
    .expect(200);
    let page = s
        .get(&b, &format!("/api/v1/sync/pull?cursor={cursor}"))
        .await
        .expect(200);
    let changes = page["changes"].as_array().unwrap();
    let revokes: Vec<&Value> = changes
        .iter()
        .filter(|c| c["operation"] == "revoke")
        .collect();
    assert_eq!(revokes.len(), 1, "{changes:?}");
    assert_eq!(revokes[0]["entity"], "organizations");
    assert_eq!(revokes[0]["entity_id"], w.organization.as_str());
    assert_eq!(revokes[0]["values"], json!({"role": "member"}));
    assert!(
        !changes.iter().any(|c| c["entity_id"] == thread.as_str()),
        "b still receives the workspace: {changes:?}"
    );
    // The membership itself is still b's to read, with its new role.
    assert!(
        changes
            .iter()
            .any(|c| c["entity_id"] == member["id"] && c["values"]["role"] == "member"),
        "{changes:?}"
    );
    let a_feed = pull_all(&s, &a).await;
    assert!(!a_feed.iter().any(|c| c["operation"] == "revoke"));
}

async fn a_binned_workspace_reaches_its_members_feeds_as_a_delete_and_a_restore(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, b, c) = (s.user("a").await, s.user("b").await, s.user("c").await);
    let w = world(&s, &a).await;
    s.post(
        &a,
        &format!("/api/v1/workspaces/{}/members", w.workspace),
        json!({"user_id": b.id, "role": "viewer"}),
    )
    .await
    .expect(201);
    let cursor = pull_all(&s, &b).await.last().unwrap()["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    s.delete(&a, &format!("/api/v1/workspaces/{}", w.workspace))
        .await
        .expect(200);
    let operations = |changes: &[Value]| -> Vec<String> {
        changes
            .iter()
            .filter(|c| c["entity_id"] == w.workspace.as_str())
            .map(|c| c["operation"].as_str().unwrap().to_owned())
            .collect()
    };
    let page = s
        .get(&b, &format!("/api/v1/sync/pull?cursor={cursor}"))
        .await
        .expect(200);
    let changes = page["changes"].as_array().unwrap().clone();
    assert_eq!(operations(&changes), ["delete"], "{changes:?}");
    // Nothing of its content, and nothing for someone who never belonged to it.
    assert!(!changes.iter().any(|c| c["entity_id"] == w.thread.as_str()));
    assert!(
        operations(&pull_all(&s, &c).await).is_empty(),
        "an outsider heard of it"
    );
    s.post(
        &a,
        &format!("/api/v1/workspaces/{}/restore", w.workspace),
        json!({}),
    )
    .await
    .expect(200);
    let page = s
        .get(
            &b,
            &format!(
                "/api/v1/sync/pull?cursor={}",
                page["cursor"].as_str().unwrap()
            ),
        )
        .await
        .expect(200);
    let changes = page["changes"].as_array().unwrap().clone();
    assert_eq!(operations(&changes), ["restore"], "{changes:?}");
}

async fn changes_stamped_too_far_ahead_are_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let w = world(&s, &a).await;
    let (id, laptop) = device(&s, &a, "laptop").await;
    let r = push(
        &s,
        &laptop,
        &id,
        vec![
            change(
                "threads",
                &w.thread,
                "update",
                &hlc(10 * 60 * 1000),
                json!({"title": "from the future"}),
            ),
            change(
                "threads",
                &w.thread,
                "update",
                &hlc(60 * 1000),
                json!({"title": "a minute ahead"}),
            ),
        ],
    )
    .await;
    assert_eq!(r[0]["outcome"], "refused");
    assert_eq!(r[0]["field"], "hlc");
    assert!(r[0]["reason"].as_str().unwrap().contains("ahead"));
    assert_eq!(r[1]["outcome"], "applied", "within the allowed skew: {r:?}");
    // The server's clock observed the remote one: a later API edit sorts after it.
    s.patch(
        &a,
        &format!("/api/v1/threads/{}", w.thread),
        json!({"title": "typed here"}),
    )
    .await
    .expect(200);
    let feed = pull_all(&s, &a).await;
    let stamps: Vec<u64> = feed
        .iter()
        .filter(|c| c["entity_id"] == w.thread.as_str() && c["operation"] == "update")
        .map(|c| c["hlc"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(stamps[1] > stamps[0], "{stamps:?}");
}

async fn malformed_changes_are_refused_one_by_one(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let w = world(&s, &a).await;
    let (id, laptop) = device(&s, &a, "laptop").await;
    let v4 = Uuid::new_v4().to_string();
    let mut bad_change_id = change(
        "threads",
        &w.thread,
        "update",
        &hlc(0),
        json!({"title": "x"}),
    );
    bad_change_id["change_id"] = json!(Uuid::new_v4());
    let cases = vec![
        (
            change(
                "nonsense",
                &w.thread,
                "update",
                &hlc(0),
                json!({"title": "x"}),
            ),
            "entity",
        ),
        (
            change("threads", &w.thread, "revoke", &hlc(0), json!({})),
            "operation",
        ),
        (
            change(
                "threads",
                &w.thread,
                "update",
                "12abc",
                json!({"title": "x"}),
            ),
            "hlc",
        ),
        (
            change("threads", &w.thread, "update", "0", json!({"title": "x"})),
            "hlc",
        ),
        (
            change(
                "threads",
                &w.thread,
                "update",
                &hlc(0),
                json!({"message_count": 99}),
            ),
            "values.message_count",
        ),
        (
            change("threads", &w.thread, "update", &hlc(0), json!({"title": 5})),
            "title",
        ),
        (
            change("threads", &w.thread, "update", &hlc(0), json!({})),
            "values",
        ),
        (
            change(
                "threads",
                &w.thread,
                "update",
                &hlc(0),
                json!({"created_at": "2020-01-01T00:00:00Z"}),
            ),
            "values.created_at",
        ),
        (
            change(
                "threads",
                &w.thread,
                "delete",
                &hlc(0),
                json!({"title": "x"}),
            ),
            "values.title",
        ),
        (
            change(
                "threads",
                &v4,
                "create",
                &hlc(0),
                json!({"workspace_id": w.workspace, "title": "v4"}),
            ),
            "entity_id",
        ),
        (bad_change_id, "change_id"),
    ];
    let (changes, fields): (Vec<Value>, Vec<&str>) = cases.into_iter().unzip();
    let r = push(&s, &laptop, &id, changes).await;
    for (result, field) in r.iter().zip(&fields) {
        assert_eq!(result["outcome"], "refused", "{field}: {result}");
        assert_eq!(result["field"], *field, "{result}");
    }
    let got = s
        .get(&a, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    assert_eq!(got["title"], "Launch");
    assert_eq!(got["message_count"], 2);
    // The request itself: unknown keys, wrong types, too many changes.
    for body in [
        json!({"device_id": id, "changes": [], "extra": 1}),
        json!({"device_id": "nope", "changes": []}),
        json!({"changes": []}),
        json!({"device_id": id, "changes": [{"change_id": Uuid::now_v7()}]}),
    ] {
        let reply = s.post(&laptop, "/api/v1/sync/push", body.clone()).await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 422),
            "{body}: {} {}",
            reply.status,
            reply.body
        );
    }
    let many: Vec<Value> = (0..10_001)
        .map(|_| {
            change(
                "threads",
                &w.thread,
                "update",
                &hlc(0),
                json!({"title": "x"}),
            )
        })
        .collect();
    let reply = s
        .post(
            &laptop,
            "/api/v1/sync/push",
            json!({"device_id": id, "changes": many}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 422, "{}", reply.body);
}

/// Reads Server-Sent Events until `want` change events have come (or 10 s pass).
async fn read_events(response: &mut reqwest::Response, want: usize) -> Vec<(String, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.len() < want {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("events in time")
            .expect("stream")
            .expect("stream still open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut data, mut kind) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_owned();
                }
            }
            if kind == "change" {
                events.push((id, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    events
}

async fn the_stream_delivers_changes_as_they_commit_and_resumes(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, b) = (s.user("a").await, s.user("b").await);
    let w = world(&s, &a).await;
    let wb = world(&s, &b).await;
    let open = |token: String, last: Option<String>| {
        let mut request = s
            .http
            .get(format!("{}/api/v1/sync/stream", s.base))
            .bearer_auth(token);
        if let Some(last) = last {
            request = request.header("Last-Event-ID", last);
        }
        request.send()
    };
    let mut stream = open(a.token.clone(), None).await.unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // b's write is not a's to see; a's own is.
    s.patch(
        &b,
        &format!("/api/v1/threads/{}", wb.thread),
        json!({"title": "b's"}),
    )
    .await
    .expect(200);
    s.patch(
        &a,
        &format!("/api/v1/threads/{}", w.thread),
        json!({"title": "streamed"}),
    )
    .await
    .expect(200);
    let events = read_events(&mut stream, 1).await;
    assert_eq!(events[0].1["entity_id"], w.thread.as_str());
    assert_eq!(events[0].1["values"]["title"], "streamed");
    assert_eq!(events[0].0, events[0].1["cursor"].as_str().unwrap());
    drop(stream);

    // Changes made while disconnected arrive on resuming from the last event's id.
    s.patch(
        &a,
        &format!("/api/v1/threads/{}", w.thread),
        json!({"title": "while away"}),
    )
    .await
    .expect(200);
    let mut resumed = open(a.token.clone(), Some(events[0].0.clone()))
        .await
        .unwrap();
    let more = read_events(&mut resumed, 1).await;
    assert_eq!(more[0].1["values"]["title"], "while away");

    // A bad or unservable Last-Event-ID answers as HTTP, before any event.
    let bad = open(a.token.clone(), Some("nope".into())).await.unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let gone = open(a.token.clone(), Some("99999999".into()))
        .await
        .unwrap();
    assert_eq!(gone.status().as_u16(), 410);
    // Without credentials there is no stream.
    let anonymous = s
        .http
        .get(format!("{}/api/v1/sync/stream", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    // Logging out ends a stream within its recheck interval.
    let mut ending = open(a.token.clone(), None).await.unwrap();
    s.call(Method::POST, "/api/v1/auth/logout", Some(&a.token), None)
        .await;
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        let mut text = String::new();
        while let Ok(Some(chunk)) = ending.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    })
    .await
    .expect("the stream ends after logout");
    assert!(ended.contains("event: end"), "{ended}");
}

async fn sealed_content_travels_open_and_stays_sealed_in_the_log(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        ServiceConfig {
            encrypt_content: true,
            ..ServiceConfig::default()
        },
    )
    .await;
    let a = s.user("a").await;
    let w = world(&s, &a).await;
    let feed = pull_all(&s, &a).await;
    let message = feed
        .iter()
        .find(|c| c["entity_id"] == w.message.as_str())
        .unwrap();
    assert_eq!(message["values"]["content"], "When do we launch?");
    assert!(message["values"].get("content_key_id").is_none());
    let stored = s
        .raw_text(match backend {
            Backend::Sqlite => {
                "SELECT payload FROM sync_events WHERE operation = 'create' AND entity_type = 'message'"
            }
            Backend::Postgres => {
                "SELECT payload::text FROM sync_events WHERE operation = 'create' AND entity_type = 'message'"
            }
        })
        .await
        .unwrap();
    assert!(
        !stored.contains("When do we launch?"),
        "plaintext in the log: {stored}"
    );
    assert!(stored.contains("content_key_id"), "{stored}");
}

async fn zero_sync_has_no_sync_routes(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        ServiceConfig {
            edition: Edition::ZeroSync,
            ..ServiceConfig::default()
        },
    )
    .await;
    let a = s.user("a").await;
    for (method, path, body) in [
        (Method::GET, "/api/v1/sync/pull", None),
        (Method::GET, "/api/v1/sync/stream", None),
        (Method::GET, "/api/v1/sync/conflicts", None),
        (
            Method::POST,
            "/api/v1/sync/push",
            Some(json!({"device_id": Uuid::now_v7(), "changes": []})),
        ),
    ] {
        let reply = s.call(method, path, Some(&a.token), body.as_ref()).await;
        assert_eq!(reply.status.as_u16(), 404, "{path}: {}", reply.body);
        assert_eq!(reply.code(), "not_in_edition", "{path}");
        assert!(reply.body.to_string().contains("zero-sync"));
    }
}

async fn regression_a_viewer_records_no_conflicts_and_lost_values_pass_validation_and_dlp(
    backend: Backend,
) {
    let s = TestServer::start_with(
        backend,
        ServiceConfig {
            dlp_policy: ceneca_domain::dlp::DlpPolicy::Reject,
            ..ServiceConfig::default()
        },
    )
    .await;
    let (a, viewer) = (s.user("a").await, s.user("viewer").await);
    let w = world(&s, &a).await;
    s.post(
        &a,
        &format!("/api/v1/workspaces/{}/members", w.workspace),
        json!({"user_id": viewer.id, "role": "viewer"}),
    )
    .await
    .expect(201);
    let (vid, vdev) = device(&s, &viewer, "viewer laptop").await;
    // Stamped before the rows existed, so every field would lose: still refused, as the
    // viewer may not write here at all.
    let r = push(
        &s,
        &vdev,
        &vid,
        vec![
            change(
                "messages",
                &w.message,
                "update",
                &hlc(-60_000),
                json!({"content": "card 4111 1111 1111 1111"}),
            ),
            change(
                "threads",
                &w.thread,
                "update",
                &hlc(-60_000),
                json!({"title": {"deep": [1]}, "pinned": "yes"}),
            ),
            change(
                "threads",
                &w.thread,
                "create",
                &hlc(-60_000),
                json!({"workspace_id": w.workspace, "title": "again"}),
            ),
            change("documents", &w.document, "restore", &hlc(0), json!({})),
        ],
    )
    .await;
    assert!(r.iter().all(|r| r["outcome"] == "refused"), "{r:?}");
    let conflicts = s.get(&a, "/api/v1/sync/conflicts").await.expect(200);
    assert_eq!(conflicts["items"], json!([]), "a viewer recorded conflicts");
    // The owner's own losing values are validated and pass DLP before they are kept.
    let (id, laptop) = device(&s, &a, "laptop").await;
    let r = push(
        &s,
        &laptop,
        &id,
        vec![
            change(
                "messages",
                &w.message,
                "update",
                &hlc(-60_000),
                json!({"content": "card 4111 1111 1111 1111"}),
            ),
            change(
                "threads",
                &w.thread,
                "update",
                &hlc(-60_000),
                json!({"title": {"deep": [1]}}),
            ),
        ],
    )
    .await;
    assert_eq!(r[0]["outcome"], "refused", "{r:?}");
    assert!(r[0]["reason"].as_str().unwrap().contains("card"), "{r:?}");
    assert_eq!(r[1]["outcome"], "refused");
    assert_eq!(r[1]["field"], "title");
    let conflicts = s.get(&a, "/api/v1/sync/conflicts").await.expect(200);
    assert_eq!(conflicts["items"], json!([]));
}

/// Reads events until `until` says stop or `quiet` passes with nothing; returns them.
async fn read_until_quiet(response: &mut reqwest::Response, quiet: Duration) -> Vec<Value> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    while let Ok(Some(chunk)) = tokio::time::timeout(quiet, response.chunk())
        .await
        .unwrap_or(Ok(None))
    {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if block.lines().any(|l| l.trim() == "event: change") {
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim)
                    .collect();
                events.push(serde_json::from_str(&data).unwrap());
            }
        }
    }
    events
}

async fn regression_the_stream_stops_at_a_revoke(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, b) = (s.user("a").await, s.user("b").await);
    let w = world(&s, &a).await;
    let member = s
        .post(
            &a,
            &format!("/api/v1/workspaces/{}/members", w.workspace),
            json!({"user_id": b.id, "role": "viewer"}),
        )
        .await
        .expect(201);
    let mut stream = s
        .http
        .get(format!("{}/api/v1/sync/stream", s.base))
        .bearer_auth(&b.token)
        .send()
        .await
        .unwrap();
    // The removal and the writes after it commit before the stream reads them: one page
    // holds the revoke and what followed.
    s.delete(
        &a,
        &format!(
            "/api/v1/workspaces/{}/members/{}",
            w.workspace,
            member["id"].as_str().unwrap()
        ),
    )
    .await;
    for i in 0..3 {
        s.post(
            &a,
            &format!("/api/v1/threads/{}/messages", w.thread),
            json!({"role": "user", "content": format!("after the removal {i}")}),
        )
        .await
        .expect(201);
    }
    let events = read_until_quiet(&mut stream, Duration::from_secs(3)).await;
    assert!(
        events.iter().any(|e| e["operation"] == "revoke"),
        "no revoke: {events:?}"
    );
    let leaked: Vec<&Value> = events
        .iter()
        .filter(|e| e.to_string().contains("after the removal"))
        .collect();
    assert!(leaked.is_empty(), "the stream sent {leaked:?}");
}

async fn regression_lost_sealed_content_stays_sealed_at_rest(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        ServiceConfig {
            encrypt_content: true,
            ..ServiceConfig::default()
        },
    )
    .await;
    let a = s.user("a").await;
    let w = world(&s, &a).await;
    let (id, laptop) = device(&s, &a, "laptop").await;
    let r = push(
        &s,
        &laptop,
        &id,
        vec![change(
            "messages",
            &w.message,
            "update",
            &hlc(-60_000),
            json!({"content": "SEALED-LOSER"}),
        )],
    )
    .await;
    assert_eq!(r[0]["outcome"], "conflict", "{r:?}");
    let stored = s
        .raw_text(match backend {
            Backend::Sqlite => "SELECT lost_values FROM sync_conflicts",
            Backend::Postgres => "SELECT lost_values::text FROM sync_conflicts",
        })
        .await
        .unwrap();
    assert!(
        !stored.contains("SEALED-LOSER"),
        "plaintext at rest: {stored}"
    );
    let conflicts = s.get(&a, "/api/v1/sync/conflicts").await.expect(200);
    assert_eq!(
        conflicts["items"][0]["lost_values"],
        json!({"content": "SEALED-LOSER"})
    );
}

async fn regression_a_change_id_names_one_change(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, b) = (s.user("a").await, s.user("b").await);
    let w = world(&s, &a).await;
    let wb = world(&s, &b).await;
    let taken = pull_all(&s, &a).await[0]["change_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (id, b_laptop) = device(&s, &b, "laptop").await;
    let mut reuse = change(
        "threads",
        &Uuid::now_v7().to_string(),
        "create",
        &hlc(0),
        json!({"workspace_id": wb.workspace, "title": "mine"}),
    );
    reuse["change_id"] = json!(taken);
    let r = push(&s, &b_laptop, &id, vec![reuse]).await;
    assert_eq!(r[0]["outcome"], "refused", "{r:?}");
    assert_eq!(r[0]["field"], "change_id", "{r:?}");
    let _ = w;
}

async fn regression_api_tokens_neither_push_nor_hear_revocations(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, b) = (s.user("a").await, s.user("b").await);
    let w = world(&s, &a).await;
    let wb = world(&s, &b).await;
    let member = s
        .post(
            &a,
            &format!("/api/v1/workspaces/{}/members", w.workspace),
            json!({"user_id": b.id, "role": "editor"}),
        )
        .await
        .expect(201);
    let token = s
        .post(
            &b,
            "/api/v1/api-tokens",
            json!({"name": "ci", "workspace_id": wb.workspace}),
        )
        .await
        .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let api = User { token, ..b.clone() };
    let (device_id, _) = device(&s, &b, "laptop").await;
    let r = s
        .post(
            &api,
            "/api/v1/sync/push",
            json!({"device_id": device_id, "changes": [change("threads", &wb.thread, "update", &hlc(0), json!({"title": "x"}))]}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.body);
    s.delete(
        &a,
        &format!(
            "/api/v1/workspaces/{}/members/{}",
            w.workspace,
            member["id"].as_str().unwrap()
        ),
    )
    .await;
    let feed = pull_all(&s, &api).await;
    assert!(feed.iter().any(|c| c["entity_id"] == wb.thread.as_str()));
    assert!(
        !feed.iter().any(|c| c["operation"] == "revoke"),
        "an API token heard of another workspace: {feed:?}"
    );
    assert!(
        pull_all(&s, &b)
            .await
            .iter()
            .any(|c| c["operation"] == "revoke")
    );
}

async fn regression_cascaded_deletes_are_changes_of_their_own(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let w = world(&s, &a).await;
    s.delete(&a, &format!("/api/v1/projects/{}", w.project))
        .await;
    let feed = pull_all(&s, &a).await;
    let deleted: Vec<&str> = feed
        .iter()
        .filter(|c| c["operation"] == "delete")
        .map(|c| c["entity_id"].as_str().unwrap())
        .collect();
    for child in [&w.project, &w.thread, &w.document] {
        assert!(
            deleted.contains(&child.as_str()),
            "{child} not in {deleted:?}"
        );
    }
    // A device that deleted the thread too, offline: the row is already gone here.
    let (id, laptop) = device(&s, &a, "laptop").await;
    let r = push(
        &s,
        &laptop,
        &id,
        vec![change(
            "threads",
            &w.thread,
            "delete",
            &hlc(1000),
            json!({}),
        )],
    )
    .await;
    assert_eq!(r[0]["outcome"], "applied", "{r:?}");
    // Restoring the project restores what its cascade deleted, each in the feed.
    s.post(
        &a,
        &format!("/api/v1/projects/{}/restore", w.project),
        json!({}),
    )
    .await
    .expect(200);
    let restored: Vec<Value> = pull_all(&s, &a)
        .await
        .into_iter()
        .filter(|c| c["operation"] == "restore")
        .collect();
    assert!(
        restored
            .iter()
            .any(|c| c["entity_id"] == w.document.as_str()),
        "{restored:?}"
    );
}

async fn regression_streams_per_account_are_capped(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let mut open = Vec::new();
    for _ in 0..32 {
        let r = s
            .http
            .get(format!("{}/api/v1/sync/stream", s.base))
            .bearer_auth(&a.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        open.push(r);
    }
    let over = s
        .http
        .get(format!("{}/api/v1/sync/stream", s.base))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(over.status().as_u16(), 429);
    // Closing one gives its place back (once the server notices the client went).
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = s
            .http
            .get(format!("{}/api/v1/sync/stream", s.base))
            .bearer_auth(&a.token)
            .send()
            .await
            .unwrap();
        if again.status().as_u16() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was never given back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Found while building the local node: a push merged each change against the clocks it
/// read at its start, and wrote later; a write that came in between (an API write, another
/// device's push) was overwritten by an older change, and the upstream kept the loser
/// while every replica kept the winner. The write now insists on the history it merged
/// against, and decides again when it moved.
async fn regression_a_write_between_merge_and_write_is_never_overwritten_by_an_older_change(
    backend: Backend,
) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let w = world(&s, &a).await;
    let (device_id, laptop) = device(&s, &a, "laptop").await;
    let path = format!("/api/v1/threads/{}", w.thread);
    for round in 0..20 {
        // A device's edit made a second ago, and an edit through the API now: the API's
        // is the later one, whichever reaches the server first.
        let older = vec![change(
            "threads",
            &w.thread,
            "update",
            &hlc(-1_000),
            json!({"title": format!("device {round}")}),
        )];
        let api_title = format!("api {round}");
        let (_, edited) = tokio::join!(
            push(&s, &laptop, &device_id, older),
            s.patch(&a, &path, json!({"title": api_title}))
        );
        edited.expect(200);
        let got = s.get(&a, &path).await.expect(200);
        assert_eq!(got["title"], api_title.as_str(), "round {round}");
    }
    // Two devices pushing the same field at once: the later stamp stands.
    let (phone_id, phone) = device(&s, &a, "phone").await;
    for round in 0..20 {
        // Each round later than the last (and than the API's edits above), within the
        // clock skew a server accepts.
        let early = vec![change(
            "threads",
            &w.thread,
            "update",
            &hlc(100_000 + round * 1_000),
            json!({"title": format!("early {round}")}),
        )];
        let late = vec![change(
            "threads",
            &w.thread,
            "update",
            &hlc(100_500 + round * 1_000),
            json!({"title": format!("late {round}")}),
        )];
        let (first, second) = tokio::join!(
            push(&s, &laptop, &device_id, early),
            push(&s, &phone, &phone_id, late)
        );
        assert!(
            first
                .iter()
                .chain(&second)
                .all(|r| r["outcome"] != "refused"),
            "{first:?} {second:?}"
        );
        let got = s.get(&a, &path).await.expect(200);
        assert_eq!(
            got["title"],
            format!("late {round}").as_str(),
            "round {round}"
        );
        // What lost was recorded, not dropped.
        assert!(
            first[0]["outcome"] == "conflict" || first[0]["outcome"] == "applied",
            "{first:?}"
        );
    }
}

/// A device back online sends its new messages together: they are written as groups (one
/// transaction per thread), keep their ids, creation times and change ids in the log, and
/// one invalid message is refused alone while the rest apply.
async fn pushed_creates_are_written_in_groups_and_a_bad_one_is_refused_alone(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let w = world(&s, &a).await;
    let (device_id, laptop) = device(&s, &a, "laptop").await;
    let other_thread = s
        .post(
            &a,
            "/api/v1/threads",
            json!({"workspace_id": w.workspace, "title": "second"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = s
        .get(&a, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200)["message_count"]
        .as_i64()
        .unwrap();
    let mut changes = Vec::new();
    let mut ids = Vec::new();
    for i in 0..60 {
        let thread = if i < 30 { &w.thread } else { &other_thread };
        let id = Uuid::now_v7().to_string();
        let content = if i == 42 {
            Value::from(17)
        } else {
            Value::from(format!("offline {i}"))
        };
        changes.push(change(
            "messages",
            &id,
            "create",
            &hlc(-60 + i as i64),
            json!({"thread_id": thread, "role": "user", "content": content}),
        ));
        ids.push(id);
    }
    let results = push(&s, &laptop, &device_id, changes.clone()).await;
    for (i, r) in results.iter().enumerate() {
        if i == 42 {
            assert_eq!(r["outcome"], "refused", "{r}");
            assert_eq!(r["field"], "content", "{r}");
        } else {
            assert_eq!(r["outcome"], "applied", "{i}: {r}");
        }
    }
    for (i, id) in ids.iter().enumerate() {
        let reply = s.get(&a, &format!("/api/v1/messages/{id}")).await;
        if i == 42 {
            assert_eq!(reply.status.as_u16(), 404);
        } else {
            assert_eq!(reply.status.as_u16(), 200, "{i}");
        }
    }
    let thread = s
        .get(&a, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    assert_eq!(thread["message_count"], before + 30);
    // Each row is logged under its own change's id and clock.
    let feed = pull_all(&s, &a).await;
    for (i, sent) in changes.iter().enumerate().filter(|(i, _)| *i != 42) {
        let logged = feed
            .iter()
            .find(|c| c["entity_id"] == ids[i].as_str())
            .unwrap_or_else(|| panic!("{i} not in the feed"));
        assert_eq!(logged["change_id"], sent["change_id"], "{i}");
        assert_eq!(logged["hlc"], sent["hlc"], "{i}");
        assert_eq!(logged["device_id"], device_id.as_str(), "{i}");
    }
    // Sent again, every change is recognised: nothing is written twice.
    let again = push(&s, &laptop, &device_id, changes).await;
    for (i, r) in again.iter().enumerate().filter(|(i, _)| *i != 42) {
        assert_eq!(r["outcome"], "applied", "{i}: {r}");
    }
    let thread = s
        .get(&a, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    assert_eq!(thread["message_count"], before + 30);
}

/// From the second attack: the write guard took the change log's lock before the row's,
/// the reverse of every other write, so on PostgreSQL a pushed update and an API write to
/// the same thread deadlocked (500 on both); and a change that kept meeting other writes
/// failed its whole push with 409. Pushes, message posts (which update the thread's
/// counters) and edits of the same thread now run together without either.
async fn regression_pushes_racing_api_writes_on_one_row_answer_per_change_and_never_deadlock(
    backend: Backend,
) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let w = world(&s, &a).await;
    let (device_id, laptop) = device(&s, &a, "laptop").await;
    let path = format!("/api/v1/threads/{}", w.thread);
    let pushes = async {
        let mut outcomes = Vec::new();
        for i in 0..40 {
            let results = push(
                &s,
                &laptop,
                &device_id,
                vec![change(
                    "threads",
                    &w.thread,
                    "update",
                    &hlc(500 + i),
                    json!({"title": format!("pushed {i}")}),
                )],
            )
            .await;
            outcomes.push(results[0]["outcome"].as_str().unwrap().to_owned());
        }
        outcomes
    };
    let posts = async {
        for i in 0..40 {
            s.post(
                &a,
                &format!("/api/v1/threads/{}/messages", w.thread),
                json!({"role": "user", "content": format!("posted {i}")}),
            )
            .await
            .expect(201);
        }
    };
    let edits = async {
        for i in 0..40 {
            s.patch(&a, &path, json!({"pinned": i % 2 == 0}))
                .await
                .expect(200);
        }
    };
    let (outcomes, (), ()) = tokio::join!(pushes, posts, edits);
    assert!(
        outcomes
            .iter()
            .all(|o| ["applied", "merged", "conflict", "refused"].contains(&o.as_str())),
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().filter(|o| *o == "applied").count() > 20,
        "{outcomes:?}"
    );
    // The last pushed title that was applied is the thread's (the API edits another field).
    let got = s.get(&a, &path).await.expect(200);
    let last_applied = outcomes.iter().rposition(|o| o == "applied").unwrap();
    assert_eq!(got["title"], format!("pushed {last_applied}").as_str());
}

/// A device token may not read who has access, yet its node needs its user's roles: the
/// feed carries the user's own memberships, never another member's.
async fn a_device_learns_its_own_memberships_and_no_one_elses(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, b, c) = (s.user("a").await, s.user("b").await, s.user("c").await);
    let w = world(&s, &a).await;
    for (who, role) in [(&b, "editor"), (&c, "viewer")] {
        s.post(
            &a,
            &format!("/api/v1/workspaces/{}/members", w.workspace),
            json!({"user_id": who.id, "role": role}),
        )
        .await
        .expect(201);
    }
    let (_, laptop) = device(&s, &b, "laptop").await;
    let feed = pull_all(&s, &laptop).await;
    let memberships: Vec<&Value> = feed
        .iter()
        .filter(|c| c["entity"] == "workspace_members")
        .collect();
    assert_eq!(memberships.len(), 1, "{memberships:?}");
    assert_eq!(memberships[0]["values"]["user_id"], b.id.as_str());
    assert_eq!(memberships[0]["values"]["role"], "editor");
    let text = serde_json::to_string(&feed).unwrap();
    assert!(
        !text.contains(c.id.as_str()),
        "c's membership reached b's device"
    );
}

/// What a replica holding these changes (one server's, so their order is their clocks')
/// shows: each live row's values, and which rows are deleted.
fn replay(changes: &[Value]) -> (BTreeMap<String, Value>, BTreeSet<String>) {
    let mut rows: BTreeMap<String, (serde_json::Map<String, Value>, bool)> = BTreeMap::new();
    for c in changes {
        let key = format!("{} {}", c["entity"], c["entity_id"]);
        let row = rows.entry(key).or_default();
        match c["operation"].as_str().unwrap() {
            "create" | "update" => {
                for (k, v) in c["values"].as_object().unwrap() {
                    row.0.insert(k.clone(), v.clone());
                }
            }
            "delete" => row.1 = true,
            "restore" => row.1 = false,
            _ => {}
        }
    }
    let live = rows
        .iter()
        .filter(|(_, (_, deleted))| !deleted)
        .map(|(k, (values, _))| (k.clone(), Value::Object(values.clone())))
        .collect();
    let deleted = rows
        .iter()
        .filter(|(_, (_, deleted))| *deleted)
        .map(|(k, _)| k.clone())
        .collect();
    (live, deleted)
}

/// The caller's whole snapshot, in pages of `limit`, and its `as_of`.
async fn snapshot_all(s: &TestServer, who: &User, limit: u32) -> (Vec<Value>, String) {
    let mut query = format!("limit={limit}");
    let mut out = Vec::new();
    loop {
        let page = s
            .get(who, &format!("/api/v1/sync/snapshot?{query}"))
            .await
            .expect(200);
        out.extend(page["changes"].as_array().unwrap().iter().cloned());
        let as_of = page["as_of"].as_str().unwrap().to_owned();
        if page["has_more"] == false {
            return (out, as_of);
        }
        query = format!(
            "limit={limit}&as_of={as_of}&cursor={}",
            page["cursor"].as_str().unwrap()
        );
    }
}

async fn compaction_loses_no_cursor_and_the_snapshot_is_the_state_in_fewer_changes(
    backend: Backend,
) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let b = s.user("b").await;
    let w = world(&s, &a).await;
    let theirs = world(&s, &b).await;
    for n in 1..=6 {
        s.patch(
            &a,
            &format!("/api/v1/threads/{}", w.thread),
            json!({"title": format!("rename {n}")}),
        )
        .await
        .expect(200);
        s.patch(
            &a,
            &format!("/api/v1/documents/{}", w.document),
            json!({"body": format!("body {n}")}),
        )
        .await
        .expect(200);
    }
    let removed = s
        .delete(&a, &format!("/api/v1/documents/{}", w.document))
        .await;
    assert!(removed.status.is_success(), "{}", removed.body);
    let before = pull_all(&s, &a).await;
    let truth = replay(&before);
    assert!(truth.1.iter().any(|k| k.contains(&w.document)));

    // The snapshot: the same state, in fewer changes, with nothing of another tenant's.
    let (snapshot, as_of) = snapshot_all(&s, &a, 2).await;
    assert_eq!(replay(&snapshot), truth);
    assert!(
        snapshot.len() < before.len(),
        "{} of {}",
        snapshot.len(),
        before.len()
    );
    assert_eq!(as_of, before.last().unwrap()["cursor"].as_str().unwrap());
    let text = serde_json::to_string(&snapshot).unwrap();
    assert!(!text.contains(&theirs.workspace) && !text.contains(&theirs.thread));

    // Compaction drops what was overwritten; every cursor still reaches the same state.
    let compacted = s
        .services
        .compact_change_log(time::OffsetDateTime::now_utc() + Duration::from_secs(60))
        .await
        .unwrap();
    assert!(compacted.dropped >= 10, "{compacted:?}");
    let after = pull_all(&s, &a).await;
    assert!(
        after.len() < before.len(),
        "{} then {}: {compacted:?}",
        before.len(),
        after.len()
    );
    assert_eq!(replay(&after), truth, "from the start");
    for mid in [1, before.len() / 3, before.len() / 2, before.len() - 2] {
        let cursor = before[mid]["cursor"].as_str().unwrap();
        let mut held = before[..=mid].to_vec();
        held.extend(pull_from(&s, &a, cursor, 50).await);
        assert_eq!(replay(&held), truth, "from cursor {cursor}");
    }
    let (snapshot, _) = snapshot_all(&s, &a, 1000).await;
    assert_eq!(replay(&snapshot), truth, "the snapshot of a compacted log");

    // The clocks survived: a device's rename stamped before the last one loses to it.
    let (device_id, laptop) = device(&s, &a, "laptop").await;
    let results = push(
        &s,
        &laptop,
        &device_id,
        vec![change(
            "threads",
            &w.thread,
            "update",
            &hlc(-3_600_000),
            json!({"title": "an hour old"}),
        )],
    )
    .await;
    assert_ne!(results[0]["outcome"], "applied", "{results:?}");
    let thread = s
        .get(&a, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    assert_eq!(thread["title"], "rename 6");
}

async fn the_snapshot_refuses_what_it_cannot_continue(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    world(&s, &a).await;
    let first = s.get(&a, "/api/v1/sync/snapshot?limit=1").await.expect(200);
    let as_of: i64 = first["as_of"].as_str().unwrap().parse().unwrap();
    for bad in [
        "as_of=abc",
        "as_of=-1",
        "cursor=1",
        &format!("as_of={as_of}&cursor={}", as_of + 1),
        "limit=0",
        "limit=10001",
        "as_of=1&as_of=2",
        "since=3",
    ] {
        let reply = s.get(&a, &format!("/api/v1/sync/snapshot?{bad}")).await;
        assert_eq!(reply.status.as_u16(), 400, "{bad}: {}", reply.body);
        assert!(
            reply.body["error"]["fields"].is_object(),
            "{bad}: {}",
            reply.body
        );
    }
    let gone = s
        .get(&a, &format!("/api/v1/sync/snapshot?as_of={}", as_of + 1000))
        .await;
    assert_eq!(gone.status.as_u16(), 410, "{}", gone.body);
    assert!(gone.body.to_string().contains("without as_of"));
    let anonymous = s
        .call(Method::GET, "/api/v1/sync/snapshot", None, None)
        .await;
    assert_eq!(anonymous.status.as_u16(), 401);
}

async fn provider_keys_travel_only_to_devices_and_stay_sealed_in_the_log(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let (_, laptop) = device(&s, &a, "laptop").await;
    let key = "sk-live-abcdefghijklmnop1234";
    let config = s
        .post(
            &a,
            "/api/v1/provider-configs",
            json!({"provider": "openai", "name": "Mine", "api_key": key}),
        )
        .await
        .expect(201);
    let id = config["id"].as_str().unwrap().to_owned();
    let of_config = |changes: &[Value]| -> Vec<Value> {
        changes
            .iter()
            .filter(|c| c["entity_id"] == id.as_str())
            .cloned()
            .collect()
    };
    // The device (over loopback) gets the key, to seal it again under its own ring.
    let to_device = of_config(&pull_all(&s, &laptop).await);
    assert_eq!(to_device.len(), 1, "{to_device:?}");
    assert_eq!(to_device[0]["values"]["api_key"], key);
    assert!(to_device[0]["values"].get("api_key_ciphertext").is_none());
    // A log-in session (a browser) gets the row without it: keys stay write-only there.
    let to_session = of_config(&pull_all(&s, &a).await);
    assert_eq!(to_session.len(), 1);
    let text = to_session[0].to_string();
    assert!(
        !text.contains(key) && !text.contains("ciphertext"),
        "{text}"
    );

    // A new key travels with its update; the first key is never sent again.
    let rotated = "sk-live-rotated-000000009999";
    s.patch(
        &a,
        &format!("/api/v1/provider-configs/{id}"),
        json!({"api_key": rotated}),
    )
    .await
    .expect(200);
    let to_device = of_config(&pull_all(&s, &laptop).await);
    assert_eq!(to_device.len(), 2);
    assert!(
        to_device[0]["values"].get("api_key").is_none(),
        "{to_device:?}"
    );
    assert_eq!(to_device[1]["values"]["api_key"], rotated);
    let (snapshot, _) = snapshot_all(&s, &laptop, 1000).await;
    let keys: Vec<_> = of_config(&snapshot)
        .iter()
        .filter_map(|c| c["values"]["api_key"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(keys, vec![rotated.to_owned()], "only the standing key");
    let (snapshot, _) = snapshot_all(&s, &a, 1000).await;
    assert!(!serde_json::to_string(&snapshot).unwrap().contains(rotated));

    // The log never holds the key, not even sealed: a rotation re-encrypts rows only.
    let all_payloads = match backend {
        Backend::Sqlite => "group_concat(payload, ' ')",
        Backend::Postgres => "string_agg(payload::text, ' ')",
    };
    let stored = s
        .raw_text(&format!(
            "SELECT {all_payloads} FROM sync_events WHERE entity_id = '{id}'"
        ))
        .await
        .unwrap_or_default();
    assert!(!stored.contains("api_key"), "{stored}");

    // Deleted, the key is sent to no one any more.
    let removed = s
        .delete(&a, &format!("/api/v1/provider-configs/{id}"))
        .await;
    assert!(removed.status.is_success(), "{}", removed.body);
    let after = serde_json::to_string(&pull_all(&s, &laptop).await).unwrap();
    assert!(!after.contains(rotated) && !after.contains(key));
}

/// From the attack: a member of an organization (who may read its provider settings, not
/// change them) had their own device pull the organization's key in plain text.
async fn regression_a_reader_of_a_shared_provider_setting_never_receives_its_key(backend: Backend) {
    let s = TestServer::start(backend).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let w = world(&s, &alice).await;
    s.post(
        &alice,
        &format!("/api/v1/organizations/{}/members", w.organization),
        json!({"user_id": bob.id, "role": "member"}),
    )
    .await
    .expect(201);
    s.post(
        &alice,
        &format!("/api/v1/workspaces/{}/members", w.workspace),
        json!({"user_id": bob.id, "role": "viewer"}),
    )
    .await
    .expect(201);
    let key = "sk-live-org-secret-0123456789";
    for owner in [
        json!({"organization_id": w.organization}),
        json!({"workspace_id": w.workspace}),
    ] {
        let mut body = json!({"provider": "openai", "name": "Shared", "api_key": key});
        body.as_object_mut()
            .unwrap()
            .extend(owner.as_object().unwrap().clone());
        s.post(&alice, "/api/v1/provider-configs", body)
            .await
            .expect(201);
    }
    let (_, bobs_laptop) = device(&s, &bob, "bob's laptop").await;
    let seen = pull_all(&s, &bobs_laptop).await;
    let configs = seen
        .iter()
        .filter(|c| c["entity"] == "ai_provider_configs")
        .count();
    assert_eq!(configs, 2, "bob reads both settings: {seen:?}");
    let text = serde_json::to_string(&seen).unwrap();
    assert!(!text.contains(key), "a reader's device got the key");
    let (snapshot, _) = snapshot_all(&s, &bobs_laptop, 1000).await;
    assert!(!serde_json::to_string(&snapshot).unwrap().contains(key));
    // Alice, who manages them, gets both keys on her device.
    let (_, alices_laptop) = device(&s, &alice, "alice's laptop").await;
    let text = serde_json::to_string(&pull_all(&s, &alices_laptop).await).unwrap();
    assert_eq!(text.matches(key).count(), 2);
}

/// Attack on quotas, finding 6: a push that crossed the storage quota was answered 413 as
/// a whole after some of its changes had been written, and every retry got the same 413
/// (a local node stopped syncing for good). The changes past the quota are now refused
/// one by one, and the rest applied.
async fn regression_a_push_past_the_quota_refuses_those_changes_and_applies_the_rest(
    backend: Backend,
) {
    let config = ceneca_service::ServiceConfig {
        user_quota_bytes: 4_000,
        ..ceneca_service::ServiceConfig::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let a = s.user("a").await;
    let ws = s
        .post(&a, "/api/v1/workspaces", json!({"name": "Mine"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let thread = s
        .post(&a, "/api/v1/threads", json!({"workspace_id": ws}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (device_id, laptop) = device(&s, &a, "laptop").await;
    let mut changes = Vec::new();
    for i in 0..4 {
        changes.push(change(
            "messages",
            &Uuid::now_v7().to_string(),
            "create",
            &hlc(-10 + i),
            json!({"thread_id": thread, "role": "user", "content": "m".repeat(1500)}),
        ));
    }
    changes.push(change(
        "threads",
        &thread,
        "update",
        &hlc(-1),
        json!({"title": "t"}),
    ));
    let results = push(&s, &laptop, &device_id, changes).await;
    let outcomes: Vec<&str> = results
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"refused"), "{results:?}");
    assert!(outcomes.contains(&"applied"), "{results:?}");
    assert_eq!(
        outcomes.last(),
        Some(&"applied"),
        "the update after them: {results:?}"
    );
    let refusal = results.iter().find(|r| r["outcome"] == "refused").unwrap();
    assert!(
        refusal["reason"].as_str().unwrap().contains("quota"),
        "{refusal}"
    );
}
