//! Erasure of an account (right to be forgotten) over real HTTP, on SQLite and PostgreSQL:
//! `DELETE /users/{id}?erase=true` removes the account and everything that was its own —
//! rows, files, full-text entries, vectors, history, the personal fields of its audit
//! entries — so a byte search of the data folder (and, on PostgreSQL, of every row) finds
//! nothing of it; what others wrote stays, the audit chain still verifies, and only the
//! account (with its password) or an administrator (with MFA) may ask.

use ceneca_e2e::{Backend, TestServer, User, files_under, mfa_code, on_every_backend};
use ceneca_wire::maintenance::MaintenanceTrigger;
use reqwest::Method;
use serde_json::{Value, json};

on_every_backend!(
    an_erased_account_leaves_no_trace_and_others_keep_what_they_wrote,
    erasure_is_proven_again_and_refused_to_others,
    erasure_is_refused_while_the_account_alone_holds_a_shared_place,
    an_interrupted_erase_is_finished_by_the_next_maintenance_run,
    regression_an_erase_keeps_what_another_account_posted_in_its_threads,
    regression_a_thread_another_account_writes_in_after_it_was_chosen_stays,
    regression_an_administrator_erases_with_a_current_code_not_a_recovery_code,
    regression_a_row_pushed_under_another_rows_id_does_not_make_it_the_accounts,
);

/// Planted in everything of the erased account: nothing may keep it.
const CANARY: &str = "zanzibarerasecanary";
const PASSWORD: &str = "correct horse battery";

fn id(body: &Value) -> String {
    body["id"].as_str().unwrap().to_owned()
}

async fn count(s: &TestServer, sql: &str) -> i64 {
    s.raw_text(sql).await.unwrap().parse().unwrap()
}

/// How many times the canary's bytes appear in the files of the data folder (the
/// database and its WAL, blobs, the vector index, keys and head files).
fn traces_in_data_folder(s: &TestServer) -> usize {
    files_under(s.data_dir())
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).unwrap_or_default();
            bytes
                .windows(CANARY.len())
                .filter(|w| *w == CANARY.as_bytes())
                .count()
        })
        .sum()
}

/// On PostgreSQL, the rows of any table whose text holds the canary.
async fn rows_with_canary(s: &TestServer) -> i64 {
    let tables = s
        .raw_text(
            "SELECT string_agg(table_name, ',') FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        .await
        .unwrap();
    let mut total = 0;
    for table in tables.split(',') {
        total += count(
            s,
            &format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM {table} x WHERE CAST(x AS TEXT) LIKE '%{CANARY}%'"
            ),
        )
        .await;
    }
    total
}

/// A file that carries `words`.
fn file_with(words: &str, n: u8) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.extend_from_slice(words.as_bytes());
    bytes.resize(2048, n);
    bytes
}

/// Registers an account whose e-mail carries the canary (an e-mail is personal data the
/// audit trail records at a failed log-in).
async fn marked_user(s: &TestServer) -> User {
    let email = format!("{CANARY}-{}@example.com", uuid::Uuid::now_v7().simple());
    let body = s
        .register(
            json!({"email": email, "password": PASSWORD, "display_name": format!("Ann {CANARY}")}),
        )
        .await
        .expect(201);
    User {
        id: body["user"]["id"].as_str().unwrap().to_owned(),
        email,
        token: body["token"].as_str().unwrap().to_owned(),
    }
}

async fn thread_in(s: &TestServer, u: &User, ws: &str, title: &str) -> String {
    id(&s
        .post(
            u,
            "/api/v1/threads",
            json!({"workspace_id": ws, "title": title}),
        )
        .await
        .expect(201))
}

async fn say(s: &TestServer, u: &User, thread: &str, words: &str) -> String {
    id(&s
        .post(
            u,
            &format!("/api/v1/threads/{thread}/messages"),
            json!({"role": "user", "content": words, "metadata": {"note": words}}),
        )
        .await
        .expect(201))
}

/// An attachment on `message` whose name and file carry `words`, with an embedding.
async fn attach(s: &TestServer, u: &User, ws: &str, message: &str, words: &str, n: u8) -> String {
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
    let mut vector = vec![0.05; ceneca_e2e::TEST_VECTOR_DIMS];
    vector[usize::from(n) % ceneca_e2e::TEST_VECTOR_DIMS] = 1.0;
    s.post(
        u,
        "/api/v1/vectors/messages/points?wait=true",
        json!({"source_id": message, "workspace_id": ws, "vector": vector}),
    )
    .await
    .expect(200);
    attachment
}

async fn erase(s: &TestServer, caller: &User, user: &str, proof: Value) -> ceneca_e2e::Reply {
    s.call(
        Method::DELETE,
        &format!("/api/v1/users/{user}?erase=true"),
        Some(&caller.token),
        Some(&proof),
    )
    .await
}

async fn an_erased_account_leaves_no_trace_and_others_keep_what_they_wrote(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin().await;
    let u = marked_user(&s).await;
    let owner = s.user("owner").await;
    let canary = |what: &str| format!("{what} {CANARY}");

    // Its own: a personal workspace with everything in it.
    let world = ceneca_e2e::world(&s, &u).await;
    let mine = thread_in(&s, &u, &world.workspace, &canary("my thread")).await;
    let my_message = say(&s, &u, &mine, &canary("my words")).await;
    attach(&s, &u, &world.workspace, &my_message, &canary("my file"), 1).await;
    s.post(
        &u,
        "/api/v1/documents",
        json!({"workspace_id": world.workspace, "title": canary("my doc"), "body": canary("my doc body")}),
    )
    .await
    .expect(201);
    // An organization it alone is in (`world` made it), with a workspace of content.
    let solo_thread = thread_in(&s, &u, &world.org_workspace, &canary("solo")).await;
    say(&s, &u, &solo_thread, &canary("solo words")).await;
    // Its settings, an API token, a failed log-in (its e-mail in the audit trail).
    s.post(
        &u,
        "/api/v1/settings",
        json!({"key": "signature", "value": {"text": canary("signature")}}),
    )
    .await;
    let token = s
        .post(
            &u,
            "/api/v1/api-tokens",
            json!({"name": canary("token"), "workspace_id": world.workspace}),
        )
        .await
        .expect(201);
    let api_token = token["token"].as_str().unwrap().to_owned();
    s.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(&json!({"email": u.email, "password": "not the password"})),
    )
    .await
    .expect(401);

    // Shared: an organization of another user, deleting what an erased member wrote.
    let slug = format!("team-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let team = id(&s
        .post(
            &owner,
            "/api/v1/organizations",
            json!({"name": "Team", "slug": slug}),
        )
        .await
        .expect(201));
    s.post(
        &owner,
        &format!("/api/v1/organizations/{team}/members"),
        json!({"user_id": u.id, "role": "admin"}),
    )
    .await
    .expect(201);
    let team_ws = id(&s
        .post(
            &owner,
            "/api/v1/workspaces",
            json!({"name": "Shared", "organization_id": team}),
        )
        .await
        .expect(201));
    let owners_thread = thread_in(&s, &owner, &team_ws, "Owner's thread").await;
    let owners_message = say(&s, &owner, &owners_thread, "the owner's words stay").await;
    let my_reply = say(&s, &u, &owners_thread, &canary("my reply")).await;
    attach(&s, &u, &team_ws, &my_reply, &canary("reply file"), 2).await;
    let my_shared_thread = thread_in(&s, &u, &team_ws, &canary("my shared thread")).await;
    say(&s, &u, &my_shared_thread, &canary("alone here")).await;
    // Documents it wrote there go (a document has no author column: the change log
    // says who created it), with the owner's file detached from it; the owner's stay.
    let my_shared_doc = id(&s
        .post(
            &u,
            "/api/v1/documents",
            json!({"workspace_id": team_ws, "title": canary("shared doc"), "body": canary("shared doc body")}),
        )
        .await
        .expect(201));
    let owners_doc = id(&s
        .post(
            &owner,
            "/api/v1/documents",
            json!({"workspace_id": team_ws, "title": "The owner's doc", "body": "stays"}),
        )
        .await
        .expect(201));
    let owners_file_on_my_doc = id(&s
        .post(
            &owner,
            "/api/v1/attachments",
            json!({"workspace_id": team_ws, "document_id": my_shared_doc, "file_name": "owners.txt"}),
        )
        .await
        .expect(201));
    // A thread it started where the owner wrote too: the owner's as much as its.
    let started = thread_in(&s, &u, &team_ws, "started by u").await;
    let owner_in_started = say(&s, &owner, &started, "the owner answered").await;
    // A workspace it created in the organization: the organization's, it stays.
    let created_ws = id(&s
        .post(
            &u,
            "/api/v1/workspaces",
            json!({"name": "Made by u", "organization_id": team}),
        )
        .await
        .expect(201));
    // Another organization, which keeps what an erased member wrote, without its author.
    let slug = format!("keep-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let keeping = id(&s
        .post(
            &owner,
            "/api/v1/organizations",
            json!({"name": "Keep", "slug": slug}),
        )
        .await
        .expect(201));
    s.patch(
        &owner,
        &format!("/api/v1/organizations/{keeping}"),
        json!({"erasure": "anonymise"}),
    )
    .await
    .expect(200);
    s.post(
        &owner,
        &format!("/api/v1/organizations/{keeping}/members"),
        json!({"user_id": u.id, "role": "member"}),
    )
    .await
    .expect(201);
    let keeping_ws = id(&s
        .post(
            &owner,
            "/api/v1/workspaces",
            json!({"name": "Kept", "organization_id": keeping}),
        )
        .await
        .expect(201));
    s.post(
        &owner,
        &format!("/api/v1/workspaces/{keeping_ws}/members"),
        json!({"user_id": u.id, "role": "editor"}),
    )
    .await
    .expect(201);
    let kept_thread = thread_in(&s, &owner, &keeping_ws, "Kept thread").await;
    let kept_message = say(&s, &u, &kept_thread, "words the organization keeps").await;

    // The canary is there before: the checks below can fail.
    if backend == Backend::Sqlite {
        s.raw_execute("PRAGMA wal_checkpoint(TRUNCATE)").await;
        assert!(traces_in_data_folder(&s) > 0, "nothing planted");
    } else {
        assert!(rows_with_canary(&s).await > 0, "nothing planted");
        assert!(traces_in_data_folder(&s) > 0, "no file planted");
    }
    // Found by the attack: files written within the orphan sweep's grace (an hour) were
    // left on disk; an erase deletes them at once (these were written a moment ago).
    let report = erase(&s, &u, &u.id, json!({"password": PASSWORD}))
        .await
        .expect(200);
    assert_eq!(report["user_id"], u.id.as_str());
    assert_eq!(report["resumed"], false);
    assert_eq!(report["organizations_purged"], 1, "{report}");
    assert_eq!(report["workspaces_purged"], 1, "{report}");
    assert_eq!(report["threads_purged"], 1, "{report}");
    assert_eq!(report["messages_purged"], 1, "{report}");
    assert_eq!(report["documents_purged"], 1, "{report}");
    assert!(report["files_deleted"].as_u64().unwrap() >= 2, "{report}");
    // A workspace of an organization has no owner to hand over (its organization holds it).
    assert_eq!(report["handed_over"], 0, "{report}");
    assert_eq!(report["removed"]["users"], 1, "{report}");
    assert!(
        report["removed"]["sessions"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert!(
        report["audit_entries_erased"].as_u64().unwrap() > 5,
        "{report}"
    );
    assert_eq!(report["audit_entries_kept"], 0, "{report}");

    // No trace: not in a file of the data folder, not in a row.
    assert_eq!(
        traces_in_data_folder(&s),
        0,
        "the data folder keeps the canary"
    );
    if backend == Backend::Postgres {
        assert_eq!(rows_with_canary(&s).await, 0, "a row keeps the canary");
    }
    let found = s
        .get(&owner, &format!("/api/v1/search?q={CANARY}"))
        .await
        .expect(200);
    assert_eq!(found["items"], json!([]), "{found}");
    // The account is gone: its sessions and tokens, its log-in, its row.
    assert_eq!(s.get(&u, "/api/v1/auth/me").await.status, 401);
    let by_token = s
        .http
        .get(format!("{}/api/v1/threads", s.base))
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_token.status(), 401);
    s.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(&json!({"email": u.email, "password": PASSWORD})),
    )
    .await
    .expect(401);
    let read = s
        .get(&admin, &format!("/api/v1/users/{}?deleted=include", u.id))
        .await;
    assert_eq!(read.status, 404, "{read:?}");
    assert_eq!(
        count(
            &s,
            &format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM users WHERE id = '{}'",
                u.id
            )
        )
        .await,
        0
    );
    // Asked again: nothing left to erase.
    let again = erase(&s, &admin, &u.id, json!({})).await;
    assert_eq!(again.status, 404, "{again:?}");

    // What others wrote stays, and so do the shared places.
    s.get(&owner, &format!("/api/v1/documents/{my_shared_doc}"))
        .await
        .expect(404);
    s.get(&owner, &format!("/api/v1/documents/{owners_doc}"))
        .await
        .expect(200);
    let detached = s
        .get(
            &owner,
            &format!("/api/v1/attachments/{owners_file_on_my_doc}"),
        )
        .await
        .expect(200);
    assert_eq!(detached["document_id"], Value::Null, "{detached}");
    let kept = s
        .get(&owner, &format!("/api/v1/messages/{owners_message}"))
        .await
        .expect(200);
    assert_eq!(kept["content"], "the owner's words stay");
    s.get(&owner, &format!("/api/v1/threads/{owners_thread}"))
        .await
        .expect(200);
    let started = s
        .get(&owner, &format!("/api/v1/threads/{started}"))
        .await
        .expect(200);
    assert_eq!(started["created_by"], Value::Null, "{started}");
    s.get(&owner, &format!("/api/v1/messages/{owner_in_started}"))
        .await
        .expect(200);
    let handed = s
        .get(&owner, &format!("/api/v1/workspaces/{created_ws}"))
        .await
        .expect(200);
    assert_eq!(handed["owner_user_id"], Value::Null, "{handed}");
    s.get(&owner, &format!("/api/v1/organizations/{team}"))
        .await
        .expect(200);
    for gone in [
        format!("/api/v1/messages/{my_reply}"),
        format!("/api/v1/threads/{my_shared_thread}"),
    ] {
        let read = s.get(&owner, &format!("{gone}?deleted=include")).await;
        assert_eq!(read.status, 404, "{gone}: {read:?}");
    }
    // Where the organization keeps what a member wrote: kept, without its author.
    let anonymised = s
        .get(&owner, &format!("/api/v1/messages/{kept_message}"))
        .await
        .expect(200);
    assert_eq!(anonymised["content"], "words the organization keeps");
    assert_eq!(anonymised["author_id"], Value::Null, "{anonymised}");
    // Found by the attack: the authorship was cleared by the schema, unlogged, so devices
    // kept it; now the change is logged.
    assert_eq!(report["unlinked"]["messages"], 1, "{report}");
    let kept_feed = s
        .get(&owner, "/api/v1/sync/pull?limit=1000")
        .await
        .expect(200);
    let cleared = kept_feed["changes"].as_array().unwrap().iter().any(|c| {
        c["entity_id"] == kept_message.as_str() && c["values"] == json!({"author_id": null})
    });
    assert!(cleared, "no change clears the author of {kept_message}");
    // Found by the attack: the storage counters and a thread's message count kept what
    // was purged live.
    let drift = s.services.store().reconcile_storage(false).await.unwrap();
    assert!(drift.is_empty(), "{drift:?}");
    let thread = s
        .get(&owner, &format!("/api/v1/threads/{owners_thread}"))
        .await
        .expect(200);
    assert_eq!(thread["message_count"], 1, "{thread}");
    // The owner's devices are told the erased member's memberships went.
    let feed = s
        .get(&owner, "/api/v1/sync/pull?limit=1000")
        .await
        .expect(200);
    assert!(
        !feed.to_string().contains(CANARY),
        "the feed keeps the canary"
    );
    assert!(
        feed["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(
                |c| c["entity"].as_str().is_some_and(|t| t.contains("member"))
                    && c["operation"] == "delete"
            ),
        "no membership deletion in {feed}"
    );

    // The audit trail still verifies, keeps the account's id, and says who erased it.
    assert_eq!(s.services.verify_audit_chain().await.unwrap().broken, None);
    let entries = s.audit_log(&admin, &format!("actor_id={}", u.id)).await;
    assert!(!entries.is_empty());
    for entry in &entries {
        assert_eq!(entry["source_ip"], Value::Null, "{entry}");
    }
    let erased = s.audit_log(&admin, "action=user.erase").await;
    assert_eq!(erased.len(), 1, "{erased:?}");
    assert_eq!(erased[0]["resource_id"], u.id.as_str());
    assert!(!serde_json::to_string(&erased).unwrap().contains(CANARY));
}

async fn erasure_is_proven_again_and_refused_to_others(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (admin, secret) = s.admin_with_mfa().await;
    let u = s.user("u").await;
    let other = s.user("other").await;
    let ws = id(&s
        .post(&u, "/api/v1/workspaces", json!({"name": "Mine"}))
        .await
        .expect(201));

    // Parameters and body are checked before anything else.
    for (query, field) in [("erase=maybe", "erase"), ("erase=true&force=1", "force")] {
        let reply = s
            .call(
                Method::DELETE,
                &format!("/api/v1/users/{}?{query}", u.id),
                Some(&u.token),
                Some(&json!({"password": PASSWORD})),
            )
            .await;
        assert_eq!(reply.status, 400, "{query}: {reply:?}");
        assert!(reply.body.to_string().contains(field), "{reply:?}");
    }
    // Found by the attack: a body without ?erase=true closed the account silently.
    let plain = s
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{}", u.id),
            Some(&u.token),
            Some(&json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(plain.status, 400, "{plain:?}");
    assert!(plain.body.to_string().contains("erase=true"), "{plain:?}");
    let unknown = erase(&s, &u, &u.id, json!({"password": PASSWORD, "really": true})).await;
    assert_eq!(unknown.status, 422, "{unknown:?}");
    // The account itself: its password, right.
    let missing = erase(&s, &u, &u.id, json!({})).await;
    assert_eq!(missing.status, 422, "{missing:?}");
    assert!(missing.body.to_string().contains("password"));
    let wrong = erase(&s, &u, &u.id, json!({"password": "guess"})).await;
    assert_eq!(wrong.status, 422, "{wrong:?}");
    // Another user: as if the account did not exist; an API token: refused.
    let theirs = erase(&s, &other, &u.id, json!({"password": PASSWORD})).await;
    assert_eq!(theirs.status, 404, "{theirs:?}");
    let token = s
        .post(
            &u,
            "/api/v1/api-tokens",
            json!({"name": "ci", "workspace_id": ws}),
        )
        .await
        .expect(201);
    let by_token = ceneca_e2e::User {
        token: token["token"].as_str().unwrap().to_owned(),
        ..u.clone()
    };
    let refused = erase(&s, &by_token, &u.id, json!({"password": PASSWORD})).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    // An administrator: MFA, with a right code.
    let no_code = erase(&s, &admin, &u.id, json!({})).await;
    assert_eq!(no_code.status, 401, "{no_code:?}");
    let bad_code = erase(&s, &admin, &u.id, json!({"mfa_code": "000000"})).await;
    assert_eq!(bad_code.status, 401, "{bad_code:?}");
    // Nothing happened: the account works, its workspace is there.
    s.get(&u, "/api/v1/auth/me").await.expect(200);
    s.get(&u, &format!("/api/v1/workspaces/{ws}"))
        .await
        .expect(200);
    let failures = s
        .audit_log(&admin, "action=user.erase&outcome=failure")
        .await;
    assert_eq!(failures.len(), 2, "{failures:?}");

    let done = erase(&s, &admin, &u.id, json!({"mfa_code": mfa_code(&secret)}))
        .await
        .expect(200);
    assert_eq!(done["workspaces_purged"], 1, "{done}");
    assert_eq!(s.get(&u, "/api/v1/auth/me").await.status, 401);
    s.get(&other, "/api/v1/auth/me").await.expect(200);
    assert_eq!(s.services.verify_audit_chain().await.unwrap().broken, None);
    // The plain delete still puts an account in the bin.
    let binned = s
        .delete(&other, &format!("/api/v1/users/{}", other.id))
        .await
        .expect(200);
    assert!(binned["deleted_at"].is_string(), "{binned}");
}

async fn erasure_is_refused_while_the_account_alone_holds_a_shared_place(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let member = s.user("member").await;
    let slug = format!("org-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let org = id(&s
        .post(
            &u,
            "/api/v1/organizations",
            json!({"name": "Mine", "slug": slug}),
        )
        .await
        .expect(201));
    s.post(
        &u,
        &format!("/api/v1/organizations/{org}/members"),
        json!({"user_id": member.id, "role": "member"}),
    )
    .await
    .expect(201);
    let refused = erase(&s, &u, &u.id, json!({"password": PASSWORD})).await;
    assert_eq!(refused.status, 409, "{refused:?}");
    assert!(refused.body.to_string().contains(&org), "{refused:?}");
    // Nothing was begun: the account still works.
    s.get(&u, "/api/v1/auth/me").await.expect(200);
    // A personal workspace with another member: the same.
    let ws = id(&s
        .post(&member, "/api/v1/workspaces", json!({"name": "Theirs"}))
        .await
        .expect(201));
    s.post(
        &member,
        &format!("/api/v1/workspaces/{ws}/members"),
        json!({"user_id": u.id, "role": "editor"}),
    )
    .await
    .expect(201);
    let refused = erase(&s, &member, &member.id, json!({"password": PASSWORD})).await;
    assert_eq!(refused.status, 409, "{refused:?}");
    assert!(refused.body.to_string().contains(&ws), "{refused:?}");
    // Made an owner, the member takes the organization over and u can go.
    let memberships = s
        .get(&u, &format!("/api/v1/organizations/{org}/members"))
        .await
        .expect(200);
    let membership = memberships["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == member.id.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.patch(
        &u,
        &format!("/api/v1/organizations/{org}/members/{membership}"),
        json!({"role": "owner"}),
    )
    .await
    .expect(200);
    let done = erase(&s, &u, &u.id, json!({"password": PASSWORD}))
        .await
        .expect(200);
    assert_eq!(done["handed_over"], 1, "{done}");
    assert_eq!(done["organizations_purged"], 0, "{done}");
    let org_now = s
        .get(&member, &format!("/api/v1/organizations/{org}"))
        .await
        .expect(200);
    assert_eq!(org_now["owner_user_id"], member.id.as_str(), "{org_now}");
    // The member's own workspace, where u was a member, stays.
    s.get(&member, &format!("/api/v1/workspaces/{ws}"))
        .await
        .expect(200);
}

async fn an_interrupted_erase_is_finished_by_the_next_maintenance_run(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let ws = id(&s
        .post(&u, "/api/v1/workspaces", json!({"name": "Mine"}))
        .await
        .expect(201));
    let thread = thread_in(&s, &u, &ws, "interrupted").await;
    say(&s, &u, &thread, "words").await;
    // As an erase leaves an account when the process dies after its first step.
    s.raw_execute(&format!(
        "UPDATE users SET erasing_since = created_at, deleted_at = created_at WHERE id = '{}'",
        u.id
    ))
    .await;
    // Closed for good: an administrator cannot bring it back meanwhile.
    let admin = s.admin().await;
    let restore = s
        .post(
            &admin,
            &format!("/api/v1/users/{}/restore", u.id),
            json!({}),
        )
        .await;
    assert_eq!(restore.status, 409, "{restore:?}");
    let report = s
        .services
        .run_maintenance(MaintenanceTrigger::Manual, None, false, &|_| {})
        .await
        .unwrap();
    assert_eq!(report.erasures_finished, 1, "{report:?}");
    assert_eq!(
        count(
            &s,
            &format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM users WHERE id = '{}'",
                u.id
            )
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &s,
            &format!("SELECT CAST(COUNT(*) AS TEXT) FROM workspaces WHERE id = '{ws}'")
        )
        .await,
        0
    );
    // Idempotent: the command line finds nothing, and says so.
    assert!(
        s.services
            .erase_user_by_email(&u.email)
            .await
            .unwrap()
            .is_none()
    );
    let again = s
        .services
        .run_maintenance(MaintenanceTrigger::Manual, None, false, &|_| {})
        .await
        .unwrap();
    assert_eq!(again.erasures_finished, 0);
    // The begin entry is missing (the erase was begun by hand here), which is allowed:
    // what matters is that the erase entry accounts for what was erased.
    assert_eq!(s.services.verify_audit_chain().await.unwrap().broken, None);
}

/// A shared workspace (of `owner`'s organization) where `u` is an editor.
async fn shared_workspace(s: &TestServer, owner: &User, u: &User) -> String {
    let slug = format!("org-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let org = id(&s
        .post(
            owner,
            "/api/v1/organizations",
            json!({"name": "Team", "slug": slug}),
        )
        .await
        .expect(201));
    let ws = id(&s
        .post(
            owner,
            "/api/v1/workspaces",
            json!({"name": "Shared", "organization_id": org}),
        )
        .await
        .expect(201));
    s.post(
        owner,
        &format!("/api/v1/workspaces/{ws}/members"),
        json!({"user_id": u.id, "role": "editor"}),
    )
    .await
    .expect(201);
    ws
}

/// Found by the attack: a reply another member posted as an assistant (no author) made
/// the thread look like the erased account's alone, and a file another member attached
/// to the account's message went with it.
async fn regression_an_erase_keeps_what_another_account_posted_in_its_threads(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let u = s.user("u").await;
    let ws = shared_workspace(&s, &owner, &u).await;
    let thread = thread_in(&s, &u, &ws, "u's thread").await;
    let mine = say(&s, &u, &thread, "u's words").await;
    let reply = id(&s
        .post(
            &owner,
            &format!("/api/v1/threads/{thread}/messages"),
            json!({"role": "assistant", "content": "the owner's reply"}),
        )
        .await
        .expect(201));
    // A thread of u's with its own assistant reply goes whole.
    let alone = thread_in(&s, &u, &ws, "u alone").await;
    say(&s, &u, &alone, "question").await;
    let answer = id(&s
        .post(
            &u,
            &format!("/api/v1/threads/{alone}/messages"),
            json!({"role": "assistant", "content": "answer"}),
        )
        .await
        .expect(201));
    // The owner's file on u's message.
    let file = id(&s
        .post(
            &owner,
            "/api/v1/attachments",
            json!({"workspace_id": ws, "message_id": mine, "file_name": "owners.png"}),
        )
        .await
        .expect(201));
    assert_eq!(
        s.put_content(&owner, &file, file_with("the owner's file", 7))
            .await,
        200
    );

    let report = erase(&s, &u, &u.id, json!({"password": PASSWORD}))
        .await
        .expect(200);
    assert_eq!(report["threads_purged"], 1, "{report}");
    assert_eq!(report["messages_purged"], 1, "{report}");
    s.get(&owner, &format!("/api/v1/threads/{thread}"))
        .await
        .expect(200);
    s.get(&owner, &format!("/api/v1/messages/{reply}"))
        .await
        .expect(200);
    for gone in [
        format!("/api/v1/messages/{mine}"),
        format!("/api/v1/messages/{answer}"),
    ] {
        let read = s.get(&owner, &format!("{gone}?deleted=include")).await;
        assert_eq!(read.status, 404, "{gone}: {read:?}");
    }
    let kept = s
        .get(&owner, &format!("/api/v1/attachments/{file}"))
        .await
        .expect(200);
    assert_eq!(kept["message_id"], Value::Null, "{kept}");
    let content = s
        .http
        .get(format!("{}/api/v1/attachments/{file}/content", s.base))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(content.status(), 200);
    assert_eq!(
        content.bytes().await.unwrap().as_ref(),
        file_with("the owner's file", 7).as_slice()
    );
    let drift = s.services.store().reconcile_storage(false).await.unwrap();
    assert!(drift.is_empty(), "{drift:?}");
}

/// Found by the attack: the threads to purge were chosen in one transaction and purged
/// in another, so a message another member posted in between went with the thread. The
/// purge checks again under the rows' locks.
async fn regression_a_thread_another_account_writes_in_after_it_was_chosen_stays(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let u = s.user("u").await;
    let ws = shared_workspace(&s, &owner, &u).await;
    let thread = thread_in(&s, &u, &ws, "u's thread").await;
    say(&s, &u, &thread, "u's words").await;
    let user: uuid::Uuid = u.id.parse().unwrap();
    let chosen = s.services.store().erasure_work(user, 100).await.unwrap();
    assert_eq!(chosen.threads, vec![thread.parse::<uuid::Uuid>().unwrap()]);
    let later = say(&s, &owner, &thread, "the owner's words, after").await;
    // The erase's round, as the service writes it (its audit entry made by hand).
    let now = ceneca_domain::clock::now();
    let mut audit = ceneca_domain::Record::new();
    for (name, value) in [
        ("id", ceneca_domain::Value::Id(uuid::Uuid::now_v7())),
        ("created_at", ceneca_domain::Value::Time(now)),
        ("updated_at", ceneca_domain::Value::Time(now)),
        ("at", ceneca_domain::Value::Time(now)),
        (
            "action",
            ceneca_domain::Value::Text("user.erase_round".into()),
        ),
        ("outcome", ceneca_domain::Value::Text("success".into())),
    ] {
        audit.set(name, value);
    }
    ceneca_domain::validate::fill_defaults(&ceneca_domain::model::AUDIT_LOG, &mut audit, now);
    let chain = ceneca_store::AuditChain {
        key: std::sync::Arc::new(ceneca_domain::audit::ChainKey::new("test", [7; 32])),
        watcher: None,
    };
    let purge = ceneca_store::WriteOp::Purge {
        entity: &ceneca_domain::model::THREADS,
        ids: chosen.threads,
        rule: ceneca_store::PurgeRule::AuthoredBy(user),
        audit,
        chain,
    };
    let rows = s
        .services
        .store()
        .apply(ceneca_store::WriteBatch::new(ceneca_store::Actor::default()).push(purge))
        .await
        .unwrap();
    let details = match rows[0].get("details") {
        Some(ceneca_domain::Value::Json(details)) => details.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        details["ids"],
        json!([]),
        "the thread was purged: {details}"
    );
    s.get(&owner, &format!("/api/v1/threads/{thread}"))
        .await
        .expect(200);
    s.get(&owner, &format!("/api/v1/messages/{later}"))
        .await
        .expect(200);
}

/// Found by the attack: an administrator erased another account with a recovery code.
async fn regression_an_administrator_erases_with_a_current_code_not_a_recovery_code(
    backend: Backend,
) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let email = format!("admin-{}@example.com", uuid::Uuid::now_v7().simple());
    s.services
        .create_user(&email, "Admin", PASSWORD, true)
        .await
        .unwrap();
    let login = json!({"email": email, "password": PASSWORD});
    let first = s
        .call(Method::POST, "/api/v1/auth/login", None, Some(&login))
        .await
        .expect(200);
    let token = first["token"].as_str().unwrap().to_owned();
    let enrolled = s
        .call(Method::POST, "/api/v1/auth/mfa/enroll", Some(&token), None)
        .await
        .expect(200);
    let secret = enrolled["secret"].as_str().unwrap().to_owned();
    let confirmed = s
        .call(
            Method::POST,
            "/api/v1/auth/mfa/confirm",
            Some(&token),
            Some(&json!({"code": mfa_code(&secret)})),
        )
        .await
        .expect(200);
    let recovery = confirmed["recovery_codes"][0].as_str().unwrap().to_owned();
    let body = s
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&json!({"email": email, "password": PASSWORD, "mfa_code": mfa_code(&secret)})),
        )
        .await
        .expect(200);
    let admin = User {
        id: body["user"]["id"].as_str().unwrap().to_owned(),
        email,
        token: body["token"].as_str().unwrap().to_owned(),
    };
    let refused = erase(&s, &admin, &u.id, json!({"recovery_code": recovery})).await;
    assert_eq!(refused.status, 401, "{refused:?}");
    s.get(&u, "/api/v1/auth/me").await.expect(200);
    erase(&s, &admin, &u.id, json!({"mfa_code": mfa_code(&secret)}))
        .await
        .expect(200);
}

/// Found by the second attack: "posted by the account" read the change log by id alone,
/// and a pushed create chooses its id: the account pushed documents under the ids of
/// another member's reply and file, and its erase then took them.
async fn regression_a_row_pushed_under_another_rows_id_does_not_make_it_the_accounts(
    backend: Backend,
) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let u = s.user("u").await;
    let ws = shared_workspace(&s, &owner, &u).await;
    let thread = thread_in(&s, &u, &ws, "u's thread").await;
    let mine = say(&s, &u, &thread, "u's words").await;
    let reply = id(&s
        .post(
            &owner,
            &format!("/api/v1/threads/{thread}/messages"),
            json!({"role": "assistant", "content": "the owner's reply"}),
        )
        .await
        .expect(201));
    let file = id(&s
        .post(
            &owner,
            "/api/v1/attachments",
            json!({"workspace_id": ws, "message_id": mine, "file_name": "owners.png"}),
        )
        .await
        .expect(201));
    let device = s
        .post(
            &u,
            "/api/v1/devices",
            json!({"name": "laptop", "platform": "desktop"}),
        )
        .await
        .expect(201);
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let hlc = ((now as u64) << 16).to_string();
    let changes: Vec<Value> = [&reply, &file]
        .iter()
        .map(|taken| {
            json!({
                "change_id": uuid::Uuid::now_v7(),
                "entity": "documents",
                "entity_id": taken,
                "operation": "create",
                "hlc": hlc,
                "values": {"workspace_id": ws, "title": "x"},
            })
        })
        .collect();
    let as_device = User {
        token: device["token"].as_str().unwrap().to_owned(),
        ..u.clone()
    };
    s.post(
        &as_device,
        "/api/v1/sync/push",
        json!({"device_id": device["id"], "changes": changes}),
    )
    .await
    .expect(200);

    let report = erase(&s, &u, &u.id, json!({"password": PASSWORD}))
        .await
        .expect(200);
    assert_eq!(report["threads_purged"], 0, "{report}");
    s.get(&owner, &format!("/api/v1/threads/{thread}"))
        .await
        .expect(200);
    s.get(&owner, &format!("/api/v1/messages/{reply}"))
        .await
        .expect(200);
    let kept = s
        .get(&owner, &format!("/api/v1/attachments/{file}"))
        .await
        .expect(200);
    assert_eq!(kept["message_id"], Value::Null, "{kept}");
}
