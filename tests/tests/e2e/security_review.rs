//! Regression tests for the findings of the security review (issue 9), one per finding,
//! named after it. Bob is the attacker, Alice the victim, each in their own workspace.

use ceneca_e2e::{Backend, TestServer, User, current_mfa_code, mfa_code, on_every_backend, world};
use reqwest::Method;
use serde_json::{Value, json};

on_every_backend!(
    permission_set_naming_another_tenants_resource_opens_nothing,
    permission_set_naming_another_tenants_user_takes_nothing,
    api_token_cannot_mint_a_device_token,
    device_tokens_follow_a_session_policy,
    api_token_cannot_do_account_level_actions,
    api_token_is_not_widened_by_rules_of_other_workspaces,
    totp_code_works_once,
    secret_checks_behind_a_session_are_limited,
    retrying_while_locked_does_not_extend_the_lockout,
    unknown_emails_are_answered_like_known_ones,
    failed_login_audit_keeps_no_typed_identifier,
    recovery_codes_are_stored_salted,
    permission_rule_cannot_open_membership,
    removed_member_keeps_no_access_through_rules,
    rules_of_a_deleted_workspace_are_dormant,
    parallel_guesses_do_not_pass_the_attempt_limits,
    a_recovery_code_works_once_under_parallel_use,
    device_token_cannot_manage_access,
    denied_messages_are_hidden_from_vector_search,
    permission_set_actions_are_checked_on_update,
);

async fn call(s: &TestServer, token: &str, method: Method, path: &str, body: Option<Value>) -> u16 {
    s.call(method, path, Some(token), body.as_ref())
        .await
        .status
        .as_u16()
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Plants a permission-set row straight in the database, as rows written before the fix
/// (or by anyone with database access) may be: the query filter must still hold.
async fn plant_rule(
    s: &TestServer,
    workspace: &str,
    subject: &str,
    resource_type: &str,
    resource_id: &str,
    actions: &str,
    effect: &str,
) {
    let id = uuid::Uuid::now_v7();
    let now = "2026-01-01T00:00:00.000000Z";
    let (now, actions) = match s.backend {
        Backend::Sqlite => (format!("'{now}'"), format!("'{actions}'")),
        Backend::Postgres => (
            format!("'{now}'::timestamptz"),
            format!("'{actions}'::jsonb"),
        ),
    };
    s.raw_execute(&format!(
        "INSERT INTO permission_sets (id, created_at, updated_at, workspace_id, subject_type,
         subject_user_id, resource_type, resource_id, actions, effect)
         VALUES ('{id}', {now}, {now}, '{workspace}', 'user', '{subject}', '{resource_type}',
         '{resource_id}', {actions}, '{effect}')"
    ))
    .await;
}

async fn permission_set_naming_another_tenants_resource_opens_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let a = world(&s, &alice).await;
    let b = world(&s, &bob).await;
    let doc = format!("/api/v1/documents/{}", a.document);
    // Through the API: the rule is refused, whatever it names.
    for (resource_type, field) in [("documents", "resource_id"), ("*", "resource_id")] {
        let r = s
            .post(
                &bob,
                "/api/v1/permission-sets",
                json!({"workspace_id": b.workspace, "subject_type": "user", "subject_user_id": bob.id,
                       "resource_type": resource_type, "resource_id": a.document, "actions": ["admin"], "effect": "allow"}),
            )
            .await;
        assert_eq!(r.status.as_u16(), 422, "{}", r.body);
        assert!(r.body["error"]["fields"][field].is_string(), "{}", r.body);
    }
    // Account-level and access tables cannot be rule targets.
    let r = s
        .post(
            &bob,
            "/api/v1/permission-sets",
            json!({"workspace_id": b.workspace, "subject_type": "user", "subject_user_id": bob.id,
                   "resource_type": "users", "actions": ["read"], "effect": "allow"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    // A rule naming a resource of the rule's own workspace is accepted.
    s.post(
        &bob,
        "/api/v1/permission-sets",
        json!({"workspace_id": b.workspace, "subject_type": "user", "subject_user_id": alice.id,
               "resource_type": "documents", "resource_id": b.document, "actions": ["read"], "effect": "allow"}),
    )
    .await
    .expect(201);
    s.get(&alice, &format!("/api/v1/documents/{}", b.document))
        .await
        .expect(200);
    // Planted in the database, the same rule still opens nothing: the query pairs the id
    // with the rule's workspace.
    for (kind, target) in [("documents", &a.document), ("messages", &a.message)] {
        plant_rule(
            &s,
            &b.workspace,
            &bob.id,
            kind,
            target,
            r#"["admin"]"#,
            "allow",
        )
        .await;
    }
    plant_rule(
        &s,
        &b.workspace,
        &bob.id,
        "*",
        &a.document,
        r#"["admin"]"#,
        "allow",
    )
    .await;
    assert_eq!(s.get(&bob, &doc).await.status.as_u16(), 404);
    assert_eq!(
        s.patch(&bob, &doc, json!({"body": "tampered"}))
            .await
            .status
            .as_u16(),
        404
    );
    assert_eq!(s.delete(&bob, &doc).await.status.as_u16(), 404);
    s.delete(&alice, &doc).await.expect(200);
    assert_eq!(
        s.post(&bob, &format!("{doc}/restore"), json!({}))
            .await
            .status
            .as_u16(),
        404
    );
    s.post(&alice, &format!("{doc}/restore"), json!({}))
        .await
        .expect(200);
    assert_eq!(
        s.get(&bob, &format!("/api/v1/messages/{}", a.message))
            .await
            .status
            .as_u16(),
        404
    );
    let found = s.get(&bob, "/api/v1/search?q=Step").await.expect(200);
    let hits = found["items"].as_array().unwrap();
    assert!(
        hits.iter().all(|h| h["id"] != json!(a.document)),
        "search lists another tenant's document: {found}"
    );
    let found = s.get(&bob, "/api/v1/search?q=launch").await.expect(200);
    assert!(
        found["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["id"] != json!(a.message)),
        "{found}"
    );
    // Alice's document is untouched.
    assert_eq!(s.get(&alice, &doc).await.expect(200)["body"], "Step one");
}

async fn permission_set_naming_another_tenants_user_takes_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let a = world(&s, &alice).await;
    let b = world(&s, &bob).await;
    let thread = format!("/api/v1/threads/{}", a.thread);
    // A deny rule naming Alice's thread is refused...
    let r = s
        .post(
            &bob,
            "/api/v1/permission-sets",
            json!({"workspace_id": b.workspace, "subject_type": "user", "subject_user_id": alice.id,
                   "resource_type": "threads", "resource_id": a.thread, "actions": ["read"], "effect": "deny"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    // ...a whole-workspace deny naming Alice speaks only for Bob's workspace...
    s.post(
        &bob,
        "/api/v1/permission-sets",
        json!({"workspace_id": b.workspace, "subject_type": "user", "subject_user_id": alice.id,
               "resource_type": "*", "actions": ["read", "write", "delete"], "effect": "deny"}),
    )
    .await
    .expect(201);
    // ...and planted in the database, the single-resource deny hides nothing of hers.
    plant_rule(
        &s,
        &b.workspace,
        &alice.id,
        "threads",
        &a.thread,
        r#"["admin"]"#,
        "deny",
    )
    .await;
    plant_rule(
        &s,
        &b.workspace,
        &alice.id,
        "*",
        &a.thread,
        r#"["admin"]"#,
        "deny",
    )
    .await;
    s.get(&alice, &thread).await.expect(200);
    s.patch(&alice, &thread, json!({"title": "still mine"}))
        .await
        .expect(200);
    let listed = s
        .get(
            &alice,
            &format!("/api/v1/threads?workspace_id={}", a.workspace),
        )
        .await
        .expect(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    let found = s.get(&alice, "/api/v1/search?q=launch").await.expect(200);
    assert!(
        !found["items"].as_array().unwrap().is_empty(),
        "her own message is still found: {found}"
    );
}

async fn api_token(s: &TestServer, owner: &User, workspace: &str) -> String {
    s.post(
        owner,
        "/api/v1/api-tokens",
        json!({"name": "script", "workspace_id": workspace}),
    )
    .await
    .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A device of `owner`'s, and its token (shown once).
async fn new_device(s: &TestServer, owner: &User, name: &str, platform: &str) -> (Value, String) {
    let device = s
        .post(
            owner,
            "/api/v1/devices",
            json!({"name": name, "platform": platform}),
        )
        .await
        .expect(201);
    let token = device["token"].as_str().unwrap().to_owned();
    (device, token)
}

async fn api_token_cannot_mint_a_device_token(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin().await;
    let w = world(&s, &admin).await;
    let token = api_token(&s, &admin, &w.workspace).await;
    let r = s
        .call(
            Method::POST,
            "/api/v1/devices",
            Some(&token),
            Some(&json!({"name": "laptop", "platform": "desktop"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API token"),
        "{}",
        r.body
    );
    // A device token made by the administrator's own session carries no admin powers.
    let (_, device_token) = new_device(&s, &admin, "laptop", "desktop").await;
    let log = s
        .call(Method::GET, "/api/v1/audit-log", Some(&device_token), None)
        .await;
    assert_eq!(log.status.as_u16(), 403, "{}", log.body);
    let other = s.user("other").await;
    assert_eq!(
        call(
            &s,
            &device_token,
            Method::PATCH,
            &format!("/api/v1/users/{}", other.id),
            Some(json!({"role": "admin"})),
        )
        .await,
        403
    );
    // The administrator's session still has them.
    s.get(&admin, "/api/v1/audit-log").await.expect(200);
}

async fn device_tokens_follow_a_session_policy(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let (device, token) = new_device(&s, &u, "laptop", "desktop").await;
    // Bounded lifetime (90 days by default), shown when the token is made.
    let expires = time::OffsetDateTime::parse(
        device["token_expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let days = (expires - time::OffsetDateTime::now_utc()).whole_days();
    assert!((89..=90).contains(&days), "{days} days");
    // Works on content, not on the account.
    assert_eq!(
        call(
            &s,
            &token,
            Method::GET,
            &format!("/api/v1/threads/{}", w.thread),
            None
        )
        .await,
        200
    );
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/devices",
            Some(json!({"name": "x", "platform": "desktop"})),
        ),
        (
            Method::POST,
            "/api/v1/api-tokens",
            Some(json!({"name": "x", "workspace_id": w.workspace})),
        ),
        (Method::POST, "/api/v1/auth/mfa/enroll", None),
        (
            Method::POST,
            "/api/v1/auth/password",
            Some(
                json!({"current_password": "correct horse battery", "new_password": "another horse battery"}),
            ),
        ),
        (Method::DELETE, &format!("/api/v1/users/{}", u.id), None),
    ] {
        assert_eq!(
            call(&s, &token, method.clone(), path, body).await,
            403,
            "{method} {path}"
        );
    }
    // Idle timeout: a device token unused for longer than the limit ends.
    s.raw_execute(&format!(
        "UPDATE sessions SET last_used_at = {} WHERE device_id = '{}'",
        match backend {
            Backend::Sqlite => "'2020-01-01T00:00:00.000000Z'",
            Backend::Postgres => "'2020-01-01T00:00:00Z'::timestamptz",
        },
        id(&device)
    ))
    .await;
    assert_eq!(
        call(&s, &token, Method::GET, "/api/v1/auth/me", None).await,
        401
    );
    // Revoked with its device.
    let (device, token) = new_device(&s, &u, "phone", "ios").await;
    assert_eq!(
        call(&s, &token, Method::GET, "/api/v1/auth/me", None).await,
        200
    );
    s.delete(&u, &format!("/api/v1/devices/{}", id(&device)))
        .await
        .expect(204);
    assert_eq!(
        call(&s, &token, Method::GET, "/api/v1/auth/me", None).await,
        401
    );
}

async fn api_token_cannot_do_account_level_actions(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let config = s
        .post(
            &u,
            "/api/v1/provider-configs",
            json!({"provider": "local", "name": "Local", "base_url": "http://llm.internal:8080", "api_key": "sk-test-1234567890"}),
        )
        .await
        .expect(201);
    let token = api_token(&s, &u, &w.workspace).await;
    let refused = [
        (Method::POST, "/api/v1/auth/mfa/enroll".to_owned(), None),
        (
            Method::POST,
            "/api/v1/auth/mfa/confirm".to_owned(),
            Some(json!({"code": "123456"})),
        ),
        (
            Method::POST,
            "/api/v1/auth/mfa/disable".to_owned(),
            Some(json!({"mfa_code": "123456"})),
        ),
        (
            Method::POST,
            "/api/v1/auth/password".to_owned(),
            Some(
                json!({"current_password": "correct horse battery", "new_password": "another horse battery"}),
            ),
        ),
        (Method::DELETE, format!("/api/v1/users/{}", u.id), None),
        (Method::GET, format!("/api/v1/users/{}", u.id), None),
        (
            Method::POST,
            "/api/v1/sharing-policies".to_owned(),
            Some(json!({"scope": "telemetry", "granted": true, "policy_version": "1"})),
        ),
        (Method::GET, "/api/v1/sharing-policies".to_owned(), None),
        (Method::GET, "/api/v1/api-tokens".to_owned(), None),
        (Method::GET, "/api/v1/devices".to_owned(), None),
        (Method::GET, "/api/v1/provider-configs".to_owned(), None),
        (
            Method::GET,
            format!("/api/v1/provider-configs/{}", id(&config)),
            None,
        ),
        (Method::POST, "/api/v1/telemetry/export".to_owned(), None),
        (
            Method::GET,
            format!("/api/v1/workspaces/{}/members", w.workspace),
            None,
        ),
        (
            Method::POST,
            "/api/v1/permission-sets".to_owned(),
            Some(
                json!({"workspace_id": w.workspace, "subject_type": "role", "subject_role": "viewer", "resource_type": "*", "actions": ["read"], "effect": "allow"}),
            ),
        ),
    ];
    for (method, path, body) in refused {
        let r = s
            .call(method.clone(), &path, Some(&token), body.as_ref())
            .await;
        assert_eq!(r.status.as_u16(), 403, "{method} {path}: {}", r.body);
    }
    // The account is intact: MFA off, still there.
    let me = s.get(&u, "/api/v1/auth/me").await.expect(200);
    assert_eq!(me["mfa_enabled"], false);
    // Content of its workspace stays open to it.
    assert_eq!(
        call(
            &s,
            &token,
            Method::GET,
            &format!("/api/v1/documents/{}", w.document),
            None
        )
        .await,
        200
    );
    assert_eq!(
        call(&s, &token, Method::GET, "/api/v1/auth/me", None).await,
        200
    );
}

async fn api_token_is_not_widened_by_rules_of_other_workspaces(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let sharer = s.user("sharer").await;
    let mine = world(&s, &u).await;
    let theirs = world(&s, &sharer).await;
    // The sharer shares their workspace's threads with u by a user-subject rule.
    s.post(
        &sharer,
        "/api/v1/permission-sets",
        json!({"workspace_id": theirs.workspace, "subject_type": "user", "subject_user_id": u.id,
               "resource_type": "threads", "actions": ["read"], "effect": "allow"}),
    )
    .await
    .expect(201);
    let shared = format!("/api/v1/threads/{}", theirs.thread);
    s.get(&u, &shared).await.expect(200);
    // A token limited to u's own workspace does not reach it.
    let token = api_token(&s, &u, &mine.workspace).await;
    assert_eq!(call(&s, &token, Method::GET, &shared, None).await, 404);
    let listed = s
        .call(Method::GET, "/api/v1/threads", Some(&token), None)
        .await
        .expect(200);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["workspace_id"] == json!(mine.workspace)),
        "{listed}"
    );
}

async fn login(s: &TestServer, body: Value) -> ceneca_e2e::Reply {
    s.call(Method::POST, "/api/v1/auth/login", None, Some(&body))
        .await
}

async fn totp_code_works_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let secret = s.enable_mfa(&u.token).await;
    let password = "correct horse battery";
    // The next step's code (accepted with one step of skew) logs in once...
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = ceneca_crypto::totp::code_from_base32(&secret, now + 30).unwrap();
    login(
        &s,
        json!({"email": u.email, "password": password, "mfa_code": code}),
    )
    .await
    .expect(200);
    // ...and never again, nor does an earlier step's code.
    let again = login(
        &s,
        json!({"email": u.email, "password": password, "mfa_code": code}),
    )
    .await;
    assert_eq!(again.status.as_u16(), 401, "{}", again.body);
    let earlier = login(
        &s,
        json!({"email": u.email, "password": password, "mfa_code": current_mfa_code(&secret)}),
    )
    .await;
    assert_eq!(earlier.status.as_u16(), 401, "{}", earlier.body);
    // Disabling MFA with a used code fails too.
    let r = s
        .call(
            Method::POST,
            "/api/v1/auth/mfa/disable",
            Some(&u.token),
            Some(&json!({"mfa_code": code})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);
}

async fn secret_checks_behind_a_session_are_limited(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let secret = s.enable_mfa(&u.token).await;
    for _ in 0..5 {
        let r = s
            .call(
                Method::POST,
                "/api/v1/auth/mfa/disable",
                Some(&u.token),
                Some(&json!({"mfa_code": "000000"})),
            )
            .await;
        assert_eq!(r.status.as_u16(), 401, "{}", r.body);
    }
    // Even the right code is not checked now.
    let r = s
        .call(
            Method::POST,
            "/api/v1/auth/mfa/disable",
            Some(&u.token),
            Some(&json!({"mfa_code": mfa_code(&secret)})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 429, "{}", r.body);
    let me = s.get(&u, "/api/v1/auth/me").await.expect(200);
    assert_eq!(me["mfa_enabled"], true);
    // The password behind a session likewise.
    let other = s.user("other").await;
    for _ in 0..5 {
        let r = s
            .post(
                &other,
                "/api/v1/auth/password",
                json!({"current_password": "wrong guess!", "new_password": "another horse battery"}),
            )
            .await;
        assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    }
    let r = s
        .post(
            &other,
            "/api/v1/auth/password",
            json!({"current_password": "correct horse battery", "new_password": "another horse battery"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 429, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().is_some());
}

async fn retrying_while_locked_does_not_extend_the_lockout(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    for _ in 0..5 {
        let r = login(&s, json!({"email": u.email, "password": "wrong password"})).await;
        assert_eq!(r.status.as_u16(), 401);
    }
    // Locked for a second; hammering meanwhile is refused and not counted.
    let mut refused = 0;
    for _ in 0..20 {
        let r = login(&s, json!({"email": u.email, "password": "wrong password"})).await;
        if r.status.as_u16() == 429 {
            refused += 1;
        }
    }
    assert!(refused > 0, "the lockout applies");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    login(
        &s,
        json!({"email": u.email, "password": "correct horse battery"}),
    )
    .await
    .expect(200);
}

async fn unknown_emails_are_answered_like_known_ones(backend: Backend) {
    let s = TestServer::start(backend).await;
    let known = s.user("known").await;
    let unknown = "nobody-here@example.com";
    let mut answers = Vec::new();
    for email in [known.email.as_str(), unknown] {
        let mut statuses = Vec::new();
        for _ in 0..7 {
            let r = login(&s, json!({"email": email, "password": "wrong password"})).await;
            statuses.push(r.status.as_u16());
        }
        answers.push(statuses);
    }
    assert_eq!(answers[0], answers[1], "known vs unknown e-mail");
    assert!(answers[0].contains(&429), "{:?}", answers[0]);
}

async fn failed_login_audit_keeps_no_typed_identifier(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    for typed in ["Tr0ub4dor&3-secret", "someone-else@example.com"] {
        login(&s, json!({"email": typed, "password": "wrong password"}))
            .await
            .expect(401);
        let details = s
            .raw_text(
                "SELECT CAST(details AS TEXT) FROM audit_log WHERE action = 'auth.login' ORDER BY sequence DESC LIMIT 1",
            )
            .await
            .unwrap();
        assert!(!details.contains(typed), "{details}");
    }
    login(&s, json!({"email": u.email, "password": "wrong password"}))
        .await
        .expect(401);
    let details = s
        .raw_text(
            "SELECT CAST(details AS TEXT) FROM audit_log WHERE action = 'auth.login' ORDER BY sequence DESC LIMIT 1",
        )
        .await
        .unwrap();
    assert!(
        details.contains(&u.email),
        "a known account's e-mail is kept: {details}"
    );
}

async fn recovery_codes_are_stored_salted(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let b = s.user("b").await;
    s.enable_mfa(&a.token).await;
    s.enable_mfa(&b.token).await;
    let stored = |u: &User| {
        format!(
            "SELECT CAST(mfa_recovery_codes AS TEXT) FROM users WHERE id = '{}'",
            u.id
        )
    };
    let a_codes = s.raw_text(&stored(&a)).await.unwrap();
    let b_codes = s.raw_text(&stored(&b)).await.unwrap();
    let a_codes: Vec<String> = serde_json::from_str(&a_codes).unwrap();
    let b_codes: Vec<String> = serde_json::from_str(&b_codes).unwrap();
    assert_eq!(a_codes.len(), 10);
    assert!(a_codes.iter().all(|c| c.starts_with("s1$")), "{a_codes:?}");
    let salt = |c: &str| c.split('$').nth(1).unwrap().to_owned();
    assert_ne!(salt(&a_codes[0]), salt(&b_codes[0]), "a salt per account");
}

// Findings of the attack on the first version of the fixes (each named after it).

async fn permission_rule_cannot_open_membership(backend: Backend) {
    let s = TestServer::start(backend).await;
    let alice = s.user("alice").await;
    let gina = s.user("gina").await;
    let w = world(&s, &alice).await;
    let members = format!("/api/v1/workspaces/{}/members", w.org_workspace);
    let row = s
        .post(
            &alice,
            &members,
            json!({"user_id": gina.id, "role": "viewer"}),
        )
        .await
        .expect(201);
    for resource in ["members", "workspace_members", "permission-sets"] {
        let r = s
            .post(
                &alice,
                "/api/v1/permission-sets",
                json!({"workspace_id": w.org_workspace, "subject_type": "role", "subject_role": "viewer",
                       "resource_type": resource, "actions": ["write"], "effect": "allow"}),
            )
            .await;
        assert_eq!(r.status.as_u16(), 422, "{resource}: {}", r.body);
    }
    // `*` opens content, never membership.
    s.post(
        &alice,
        "/api/v1/permission-sets",
        json!({"workspace_id": w.org_workspace, "subject_type": "user", "subject_user_id": gina.id,
               "resource_type": "*", "actions": ["admin"], "effect": "allow"}),
    )
    .await
    .expect(201);
    let promote = s
        .patch(
            &gina,
            &format!("{members}/{}", id(&row)),
            json!({"role": "admin"}),
        )
        .await;
    assert!(
        matches!(promote.status.as_u16(), 403 | 404),
        "{}",
        promote.body
    );
    let newcomer = s.user("newcomer").await;
    let add = s
        .post(
            &gina,
            &members,
            json!({"user_id": newcomer.id, "role": "admin"}),
        )
        .await;
    assert!(matches!(add.status.as_u16(), 403 | 404), "{}", add.body);
    // Content is open to her, as the rule says.
    s.post(
        &gina,
        "/api/v1/threads",
        json!({"workspace_id": w.org_workspace, "title": "by rule"}),
    )
    .await
    .expect(201);
}

async fn removed_member_keeps_no_access_through_rules(backend: Backend) {
    let s = TestServer::start(backend).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let w = world(&s, &alice).await;
    let members = format!("/api/v1/workspaces/{}/members", w.org_workspace);
    let row = s
        .post(
            &alice,
            &members,
            json!({"user_id": bob.id, "role": "admin"}),
        )
        .await
        .expect(201);
    let doc = s
        .post(
            &alice,
            "/api/v1/documents",
            json!({"workspace_id": w.org_workspace, "title": "Team plan", "body": "secret"}),
        )
        .await
        .expect(201);
    // While an administrator, bob writes himself a rule.
    s.post(
        &bob,
        "/api/v1/permission-sets",
        json!({"workspace_id": w.org_workspace, "subject_type": "user", "subject_user_id": bob.id,
               "resource_type": "*", "actions": ["read", "write", "delete"], "effect": "allow"}),
    )
    .await
    .expect(201);
    s.delete(&alice, &format!("{members}/{}", id(&row)))
        .await
        .expect(204);
    let path = format!("/api/v1/documents/{}", id(&doc));
    assert_eq!(s.get(&bob, &path).await.status.as_u16(), 404);
    assert_eq!(
        s.patch(&bob, &path, json!({"body": "tampered"}))
            .await
            .status
            .as_u16(),
        404
    );
    let listed = s.get(&alice, "/api/v1/permission-sets").await.expect(200);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["subject_user_id"] != json!(bob.id)),
        "the removed member's rules ended with the membership: {listed}"
    );
}

async fn rules_of_a_deleted_workspace_are_dormant(backend: Backend) {
    let s = TestServer::start(backend).await;
    let alice = s.user("alice").await;
    let dave = s.user("dave").await;
    let w = world(&s, &alice).await;
    s.post(
        &alice,
        "/api/v1/permission-sets",
        json!({"workspace_id": w.workspace, "subject_type": "user", "subject_user_id": dave.id,
               "resource_type": "*", "actions": ["read", "delete"], "effect": "allow"}),
    )
    .await
    .expect(201);
    let doc = format!("/api/v1/documents/{}", w.document);
    s.get(&dave, &doc).await.expect(200);
    s.delete(&alice, &format!("/api/v1/workspaces/{}", w.workspace))
        .await
        .expect(200);
    for path in [
        format!("{doc}?deleted=include"),
        "/api/v1/documents?deleted=only".to_owned(),
        "/api/v1/search?q=Step&deleted=include".to_owned(),
    ] {
        let r = s.get(&dave, &path).await;
        if r.status.as_u16() == 200 {
            assert!(
                !r.body.to_string().contains(&w.document),
                "{path}: {}",
                r.body
            );
        } else {
            assert_eq!(r.status.as_u16(), 404, "{path}: {}", r.body);
        }
    }
    let restore = s.post(&dave, &format!("{doc}/restore"), json!({})).await;
    assert_eq!(restore.status.as_u16(), 404, "{}", restore.body);
}

/// Sends `n` copies of a request at once; returns the statuses.
async fn burst(s: &TestServer, n: usize, path: &str, token: Option<&str>, body: Value) -> Vec<u16> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let mut req = s.http.post(format!("{}{path}", s.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        tasks.push(tokio::spawn(async move {
            req.send().await.expect("request").status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

async fn parallel_guesses_do_not_pass_the_attempt_limits(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let statuses = burst(
        &s,
        30,
        "/api/v1/auth/password",
        Some(&u.token),
        json!({"current_password": "wrong guess!", "new_password": "another horse battery"}),
    )
    .await;
    let checked = statuses.iter().filter(|s| **s == 422).count();
    assert_eq!(
        checked, 5,
        "password checks of 30 parallel guesses: {statuses:?}"
    );
    let v = s.user("v").await;
    let statuses = burst(
        &s,
        30,
        "/api/v1/auth/login",
        None,
        json!({"email": v.email, "password": "wrong password"}),
    )
    .await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(
        checked, 5,
        "log-in checks of 30 parallel guesses: {statuses:?}"
    );
}

async fn a_recovery_code_works_once_under_parallel_use(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let enrolled = s
        .call(
            Method::POST,
            "/api/v1/auth/mfa/enroll",
            Some(&u.token),
            None,
        )
        .await
        .expect(200);
    let secret = enrolled["secret"].as_str().unwrap();
    let confirmed = s
        .call(
            Method::POST,
            "/api/v1/auth/mfa/confirm",
            Some(&u.token),
            Some(&json!({"code": mfa_code(secret)})),
        )
        .await
        .expect(200);
    let code = confirmed["recovery_codes"][0].as_str().unwrap().to_owned();
    let statuses = burst(
        &s,
        10,
        "/api/v1/auth/login",
        None,
        json!({"email": u.email, "password": "correct horse battery", "recovery_code": code}),
    )
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
}

async fn device_token_cannot_manage_access(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let (_, token) = new_device(&s, &u, "laptop", "desktop").await;
    let attacker = s.user("attacker").await;
    for (method, path, body) in [
        (
            Method::POST,
            format!("/api/v1/workspaces/{}/members", w.org_workspace),
            Some(json!({"user_id": attacker.id, "role": "admin"})),
        ),
        (
            Method::POST,
            format!("/api/v1/organizations/{}/members", w.organization),
            Some(json!({"user_id": attacker.id, "role": "admin"})),
        ),
        (
            Method::POST,
            "/api/v1/permission-sets".to_owned(),
            Some(
                json!({"workspace_id": w.workspace, "subject_type": "user", "subject_user_id": attacker.id, "resource_type": "*", "actions": ["admin"], "effect": "allow"}),
            ),
        ),
        (Method::GET, "/api/v1/permission-sets".to_owned(), None),
    ] {
        assert_eq!(
            call(&s, &token, method.clone(), &path, body).await,
            403,
            "{method} {path}"
        );
    }
    // Content still syncs.
    assert_eq!(
        call(
            &s,
            &token,
            Method::POST,
            "/api/v1/threads",
            Some(json!({"workspace_id": w.workspace}))
        )
        .await,
        201
    );
}

async fn denied_messages_are_hidden_from_vector_search(backend: Backend) {
    let s = TestServer::start(backend).await;
    let alice = s.user("alice").await;
    let viewer = s.user("viewer").await;
    let w = world(&s, &alice).await;
    s.post(
        &alice,
        &format!("/api/v1/workspaces/{}/members", w.org_workspace),
        json!({"user_id": viewer.id, "role": "viewer"}),
    )
    .await
    .expect(201);
    let thread = s
        .post(
            &alice,
            "/api/v1/threads",
            json!({"workspace_id": w.org_workspace, "title": "t"}),
        )
        .await
        .expect(201);
    let message = s
        .post(
            &alice,
            &format!("/api/v1/threads/{}/messages", id(&thread)),
            json!({"role": "user", "content": "quarterly numbers"}),
        )
        .await
        .expect(201);
    let vector = json!([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    s.post(
        &alice,
        "/api/v1/vectors/messages/points?wait=true",
        json!({"source_id": id(&message), "workspace_id": w.org_workspace, "vector": vector}),
    )
    .await
    .expect(200);
    let search = json!({"vector": vector, "limit": 5});
    let before = s
        .post(&viewer, "/api/v1/vectors/messages/search", search.clone())
        .await
        .expect(200);
    assert_eq!(before["items"].as_array().unwrap().len(), 1, "{before}");
    s.post(
        &alice,
        "/api/v1/permission-sets",
        json!({"workspace_id": w.org_workspace, "subject_type": "user", "subject_user_id": viewer.id,
               "resource_type": "messages", "actions": ["read"], "effect": "deny"}),
    )
    .await
    .expect(201);
    let after = s
        .post(&viewer, "/api/v1/vectors/messages/search", search)
        .await
        .expect(200);
    assert!(after["items"].as_array().unwrap().is_empty(), "{after}");
    let hybrid = s
        .post(
            &viewer,
            "/api/v1/search/hybrid",
            json!({"q": "quarterly", "vector": vector, "limit": 5}),
        )
        .await
        .expect(200);
    assert!(!hybrid.to_string().contains(&id(&message)), "{hybrid}");
    let r = s
        .post(
            &viewer,
            "/api/v1/search/hybrid",
            json!({"q": "x", "vector": vector, "limit": 0}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.body);
}

async fn permission_set_actions_are_checked_on_update(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let rule = s
        .post(
            &u,
            "/api/v1/permission-sets",
            json!({"workspace_id": w.workspace, "subject_type": "role", "subject_role": "viewer",
                   "resource_type": "threads", "actions": ["read"], "effect": "allow"}),
        )
        .await
        .expect(201);
    let path = format!("/api/v1/permission-sets/{}", id(&rule));
    for actions in [json!([]), json!(["read", "read"])] {
        let r = s.patch(&u, &path, json!({"actions": actions})).await;
        assert_eq!(r.status.as_u16(), 422, "{actions}: {}", r.body);
    }
    let r = s
        .post(
            &u,
            "/api/v1/permission-sets",
            json!({"workspace_id": w.workspace, "subject_type": "role", "subject_role": "viewer",
                   "resource_type": "threads", "actions": vec!["read"; 1000], "effect": "allow"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    let r = s
        .post(
            &u,
            "/api/v1/api-tokens",
            json!({"name": "\u{0}", "workspace_id": w.workspace}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
}
