//! The callers a server keeps in memory between requests (`service/auth/cache.rs`): every
//! change that concerns a caller applies to the very next request, whoever makes it — this
//! server, another process on its database (SQL run behind its back), or another node.
//!
//! Each story first proves the caller is kept (the `kept` count moves on a repeated
//! request), so that what follows tests the cache and not a server that reads every time.

use ceneca_e2e::{Backend, TestServer, User, on_every_backend, world};
use reqwest::Method;
use serde_json::json;

on_every_backend!(
    a_kept_caller_is_read_again_after_every_change_that_concerns_it,
    changes_made_behind_the_servers_back_apply_to_the_next_request,
    regression_rows_replaced_or_truncated_behind_the_servers_back_move_the_counter
);

#[tokio::test]
async fn postgres_a_change_through_one_node_applies_to_the_next_request_on_the_other() {
    a_change_through_one_node_applies_to_the_next_request_on_the_other().await;
}

/// (kept, read) authentications so far.
fn authentications(s: &TestServer) -> (u64, u64) {
    let [(_, kept), (_, read)] = s.services.metrics().counts().authentications;
    (kept, read)
}

/// Asks `path` as `user` twice and checks the second answer came from the kept caller.
async fn warm(s: &TestServer, user: &User, path: &str) {
    s.get(user, path).await.expect(200);
    let before = authentications(s);
    s.get(user, path).await.expect(200);
    let after = authentications(s);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 0),
        "the second request is answered from the kept caller"
    );
}

/// Adds `member` to `workspace` with `role`; the membership's id.
async fn add_member(
    s: &TestServer,
    owner: &User,
    workspace: &str,
    member: &User,
    role: &str,
) -> String {
    s.post(
        owner,
        &format!("/api/v1/workspaces/{workspace}/members"),
        json!({"user_id": member.id, "role": role}),
    )
    .await
    .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn logout(s: &TestServer, user: &User) {
    s.call(Method::POST, "/api/v1/auth/logout", Some(&user.token), None)
        .await
        .expect(204);
}

async fn a_kept_caller_is_read_again_after_every_change_that_concerns_it(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let member = s.user("member").await;
    let w = world(&s, &owner).await;
    let thread = format!("/api/v1/threads/{}", w.thread);
    let document = format!("/api/v1/documents/{}", w.document);

    // Added to a workspace: the very next request reaches it.
    s.get(&member, &thread).await.expect(404);
    s.get(&member, "/api/v1/auth/me").await.expect(200);
    let membership = add_member(&s, &owner, &w.workspace, &member, "editor").await;
    warm(&s, &member, &thread).await;

    // A role lowered: the next write is refused.
    s.patch(&member, &document, json!({"title": "edited"}))
        .await
        .expect(200);
    s.patch(
        &owner,
        &format!("/api/v1/workspaces/{}/members/{membership}", w.workspace),
        json!({"role": "viewer"}),
    )
    .await
    .expect(200);
    s.patch(&member, &document, json!({"title": "again"}))
        .await
        .expect(403);

    // A permission rule added, then removed.
    let rule = s
        .post(
            &owner,
            "/api/v1/permission-sets",
            json!({"workspace_id": w.workspace, "subject_type": "user", "subject_user_id": member.id,
                   "resource_type": "threads", "actions": ["read"], "effect": "deny"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Not readable any more: as if it were not there.
    assert_eq!(s.get(&member, &thread).await.status.as_u16(), 404);
    s.delete(&owner, &format!("/api/v1/permission-sets/{rule}"))
        .await
        .expect(204);
    warm(&s, &member, &thread).await;

    // The workspace in the bin: gone from the next request.
    s.delete(&owner, &format!("/api/v1/workspaces/{}", w.workspace))
        .await
        .expect(200);
    assert_eq!(s.get(&member, &thread).await.status.as_u16(), 404);
    s.post(
        &owner,
        &format!("/api/v1/workspaces/{}/restore", w.workspace),
        json!({}),
    )
    .await
    .expect(200);
    warm(&s, &member, &thread).await;

    // The membership removed.
    s.delete(
        &owner,
        &format!("/api/v1/workspaces/{}/members/{membership}", w.workspace),
    )
    .await
    .expect(204);
    assert_eq!(s.get(&member, &thread).await.status.as_u16(), 404);

    // An API token revoked.
    let created = s
        .post(
            &owner,
            "/api/v1/api-tokens",
            json!({"name": "bot", "workspace_id": w.workspace}),
        )
        .await
        .expect(201);
    let bot = User {
        id: owner.id.clone(),
        email: owner.email.clone(),
        token: created["token"].as_str().unwrap().to_owned(),
    };
    warm(&s, &bot, &thread).await;
    s.delete(
        &owner,
        &format!("/api/v1/api-tokens/{}", created["id"].as_str().unwrap()),
    )
    .await
    .expect(204);
    assert_eq!(s.get(&bot, &thread).await.status.as_u16(), 401);

    // Logged out.
    warm(&s, &owner, &thread).await;
    logout(&s, &owner).await;
    assert_eq!(s.get(&owner, &thread).await.status.as_u16(), 401);
}

/// What another process does to the database (a command, an operator's SQL) moves the
/// counter too: the triggers move it, not the server's write path.
async fn changes_made_behind_the_servers_back_apply_to_the_next_request(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let member = s.user("member").await;
    let w = world(&s, &owner).await;
    let thread = format!("/api/v1/threads/{}", w.thread);
    add_member(&s, &owner, &w.workspace, &member, "viewer").await;
    warm(&s, &member, &thread).await;
    s.raw_execute(&format!(
        "DELETE FROM workspace_members WHERE user_id = '{}'",
        member.id
    ))
    .await;
    assert_eq!(s.get(&member, &thread).await.status.as_u16(), 404);

    warm(&s, &owner, &thread).await;
    s.raw_execute(&format!(
        "UPDATE users SET status = 'suspended' WHERE id = '{}'",
        owner.id
    ))
    .await;
    let refused = s.get(&owner, &thread).await;
    assert_eq!(refused.status.as_u16(), 401, "{:?}", refused.body);
    s.raw_execute(&format!(
        "UPDATE users SET status = 'active' WHERE id = '{}'",
        owner.id
    ))
    .await;
    warm(&s, &owner, &thread).await;
    s.raw_execute(&format!(
        "UPDATE sessions SET revoked_at = created_at WHERE user_id = '{}'",
        owner.id
    ))
    .await;
    assert_eq!(s.get(&owner, &thread).await.status.as_u16(), 401);

    // A use recorded by another node moves `last_used_at` forward, which changes nothing
    // the server keeps; set back, it may make the session idle, and is read again.
    let other = s.user("other").await;
    warm(&s, &other, "/api/v1/auth/me").await;
    s.raw_execute(&format!(
        "UPDATE sessions SET last_used_at = expires_at WHERE user_id = '{}'",
        other.id
    ))
    .await;
    warm(&s, &other, "/api/v1/auth/me").await;
    s.raw_execute(&format!(
        "UPDATE sessions SET last_used_at = {} WHERE user_id = '{}'",
        match backend {
            Backend::Sqlite => "'2020-01-01T00:00:00.000000Z'",
            Backend::Postgres => "'2020-01-01T00:00:00Z'::timestamptz",
        },
        other.id
    ))
    .await;
    let idle = s.get(&other, "/api/v1/auth/me").await;
    assert_eq!(idle.status.as_u16(), 401, "{:?}", idle.body);
}

async fn a_change_through_one_node_applies_to_the_next_request_on_the_other() {
    let one = TestServer::start(Backend::Postgres).await;
    let two = one.second_node().await;
    let owner = one.user("owner").await;
    let member = one.user("member").await;
    let w = world(&one, &owner).await;
    let thread = format!("/api/v1/threads/{}", w.thread);
    let membership = add_member(&one, &owner, &w.workspace, &member, "viewer").await;
    warm(&two, &member, &thread).await;
    one.delete(
        &owner,
        &format!("/api/v1/workspaces/{}/members/{membership}", w.workspace),
    )
    .await
    .expect(204);
    assert_eq!(two.get(&member, &thread).await.status.as_u16(), 404);

    warm(&two, &owner, &thread).await;
    logout(&one, &owner).await;
    assert_eq!(two.get(&owner, &thread).await.status.as_u16(), 401);

    // And the other way: a password changed through node 2 ends node 1's other sessions.
    let again = one
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&json!({"email": member.email, "password": "correct horse battery"})),
        )
        .await
        .expect(200);
    let second = User {
        token: again["token"].as_str().unwrap().to_owned(),
        ..member.clone()
    };
    warm(&one, &second, "/api/v1/auth/me").await;
    two.post(
        &member,
        "/api/v1/auth/password",
        json!({"current_password": "correct horse battery", "new_password": "a new horse battery"}),
    )
    .await
    .expect(204);
    assert_eq!(
        one.get(&second, "/api/v1/auth/me").await.status.as_u16(),
        401
    );
}

/// Found by the attack: SQLite's `INSERT OR REPLACE` deletes the old row without a delete
/// trigger and inserts the new one, so a user suspended or a session revoked that way moved
/// no counter and the kept caller went on. PostgreSQL's counterparts are an upsert and
/// `TRUNCATE` (which fires no delete trigger).
async fn regression_rows_replaced_or_truncated_behind_the_servers_back_move_the_counter(
    backend: Backend,
) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let member = s.user("member").await;
    let w = world(&s, &owner).await;
    let thread = format!("/api/v1/threads/{}", w.thread);
    let users = "id, created_at, updated_at, email, display_name, password_hash, role, {status}, \
                 mfa_secret_ciphertext, mfa_enabled, mfa_recovery_codes, last_login_at, deleted_at, \
                 mfa_last_step, erasing_since";
    warm(&s, &member, "/api/v1/auth/me").await;
    let suspend = match backend {
        Backend::Sqlite => format!(
            "INSERT OR REPLACE INTO users ({}) SELECT {} FROM users WHERE id = '{}'",
            users.replace("{status}", "status"),
            users.replace("{status}", "'suspended'"),
            member.id
        ),
        Backend::Postgres => format!(
            "INSERT INTO users ({0}) SELECT {0} FROM users WHERE id = '{1}' \
             ON CONFLICT (id) DO UPDATE SET status = 'suspended'",
            users.replace("{status}", "status"),
            member.id
        ),
    };
    s.raw_execute(&suspend).await;
    let refused = s.get(&member, "/api/v1/auth/me").await;
    assert_eq!(refused.status.as_u16(), 401, "{:?}", refused.body);

    warm(&s, &owner, &thread).await;
    let revoke = match backend {
        Backend::Sqlite => format!(
            "INSERT OR REPLACE INTO sessions (id, created_at, updated_at, user_id, token_hash, \
             kind, device_id, name, workspace_id, expires_at, last_used_at, revoked_at) \
             SELECT id, created_at, updated_at, user_id, token_hash, kind, device_id, name, \
             workspace_id, expires_at, last_used_at, created_at FROM sessions WHERE user_id = '{}'",
            owner.id
        ),
        Backend::Postgres => "TRUNCATE sessions CASCADE".to_owned(),
    };
    s.raw_execute(&revoke).await;
    let refused = s.get(&owner, &thread).await;
    assert_eq!(refused.status.as_u16(), 401, "{:?}", refused.body);

    // Found by the second attack: an organization's slug taken over by another with
    // `UPDATE OR REPLACE` deleted the first without a delete trigger.
    if backend == Backend::Sqlite {
        let other = s.user("other").await;
        let first = world(&s, &other).await.organization;
        let second = s
            .post(
                &other,
                "/api/v1/organizations",
                json!({"name": "Second", "slug": format!("second-{}", uuid::Uuid::now_v7().simple())}),
            )
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let counter = "SELECT CAST(generation AS TEXT) FROM auth_generation";
        let before: i64 = s.raw_text(counter).await.unwrap().parse().unwrap();
        s.raw_execute(&format!(
            // The sqlite3 shell's default: no cascade moves the counter for it.
            "PRAGMA foreign_keys = OFF; UPDATE OR REPLACE organizations SET slug = (SELECT slug FROM organizations WHERE id = '{first}') \
             WHERE id = '{second}'"
        ))
        .await;
        let after: i64 = s.raw_text(counter).await.unwrap().parse().unwrap();
        assert!(after > before, "{before} -> {after}");
    }
}
