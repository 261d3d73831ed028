//! Accounts and sessions over HTTP.

use ceneca_e2e::{Backend, TestServer, on_every_backend};
use ceneca_store::Store;
use reqwest::Method;
use serde_json::json;

on_every_backend!(
    browsers_get_a_secure_http_only_cookie,
    the_oldest_session_ends_beyond_the_limit,
    idle_sessions_end,
    register_login_logout,
    password_change_ends_sessions,
    registration_is_validated,
    device_tokens_authenticate,
    secrets_are_write_only_and_encrypted
);

async fn register_login_logout(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let wrong = s
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&json!({"email": u.email, "password": "wrong password"})),
        )
        .await;
    assert_eq!(wrong.status.as_u16(), 401);
    let unknown = s
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&json!({"email": "nobody@example.com", "password": "wrong password"})),
        )
        .await;
    assert_eq!(unknown.status.as_u16(), 401);
    // Alike but for the request id, which differs per request by design.
    let without_id = |mut body: serde_json::Value| {
        body["error"]
            .as_object_mut()
            .unwrap()
            .remove("request_id")
            .expect("errors carry a request id");
        body
    };
    assert_eq!(
        without_id(wrong.body),
        without_id(unknown.body),
        "unknown accounts and wrong passwords look alike"
    );
    let login = s
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&json!({"email": u.email.to_uppercase(), "password": "correct horse battery"})),
        )
        .await
        .expect(200);
    let token = login["token"].as_str().unwrap();
    assert_ne!(token, u.token, "a new token per log-in");
    assert_eq!(login["user"]["email"], json!(u.email));
    assert!(login["user"]["last_login_at"].is_string());
    s.call(Method::GET, "/api/v1/auth/me", Some(token), None)
        .await
        .expect(200);
    s.call(Method::POST, "/api/v1/auth/logout", Some(token), None)
        .await
        .expect(204);
    s.call(Method::GET, "/api/v1/auth/me", Some(token), None)
        .await
        .expect(401);
    s.call(Method::GET, "/api/v1/auth/me", Some(&u.token), None)
        .await
        .expect(200);
}

async fn password_change_ends_sessions(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let r = s
        .post(
            &u,
            "/api/v1/auth/password",
            json!({"current_password": "nope nope", "new_password": "a new password"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422);
    s.post(
        &u,
        "/api/v1/auth/password",
        json!({"current_password": "correct horse battery", "new_password": "a new password"}),
    )
    .await
    .expect(204);
    s.call(Method::GET, "/api/v1/auth/me", Some(&u.token), None)
        .await
        .expect(401);
    s.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(&json!({"email": u.email, "password": "correct horse battery"})),
    )
    .await
    .expect(401);
    s.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(&json!({"email": u.email, "password": "a new password"})),
    )
    .await
    .expect(200);
}

async fn registration_is_validated(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = s
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(&json!({"email": "not-an-email", "password": "short", "role": "admin"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422);
    let fields = &r.body["error"]["fields"];
    assert!(
        fields["email"].is_string() && fields["password"].is_string() && fields["role"].is_string(),
        "{fields}"
    );
    let r = s
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(&json!({"email": "x@example.com", "password": "p".repeat(2000)})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422);
    let closed = ceneca_service::ServiceConfig {
        allow_registration: false,
        ..Default::default()
    };
    let s2 = TestServer::start_with(backend, closed).await;
    let r = s2
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(&json!({"email": "x@example.com", "password": "long enough"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 403);
}

async fn device_tokens_authenticate(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let device = s
        .post(
            &u,
            "/api/v1/devices",
            json!({"name": "phone", "platform": "ios"}),
        )
        .await
        .expect(201);
    let token = device["token"].as_str().unwrap();
    assert!(device.get("token_hash").is_none());
    let again = s
        .get(
            &u,
            &format!("/api/v1/devices/{}", device["id"].as_str().unwrap()),
        )
        .await
        .expect(200);
    assert!(
        again.get("token").is_none(),
        "the device token is shown once"
    );
    let me = s
        .call(Method::GET, "/api/v1/auth/me", Some(token), None)
        .await
        .expect(200);
    assert_eq!(me["id"], json!(u.id));
    // Writes made with a device token are attributed to the device.
    let ws = s
        .call(
            Method::POST,
            "/api/v1/workspaces",
            Some(token),
            Some(&json!({"name": "from phone"})),
        )
        .await
        .expect(201);
    let events = s.list_all(&u, "/api/v1/sync-events").await;
    let event = events.iter().find(|e| e["entity_id"] == ws["id"]).unwrap();
    assert_eq!(event["device_id"], device["id"]);
    s.delete(
        &u,
        &format!("/api/v1/devices/{}", device["id"].as_str().unwrap()),
    )
    .await
    .expect(204);
    s.call(Method::GET, "/api/v1/auth/me", Some(token), None)
        .await
        .expect(401);
}

async fn secrets_are_write_only_and_encrypted(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let key = "sk-live-abcdefghijklmnop1234";
    let created = s
        .post(
            &u,
            "/api/v1/provider-configs",
            json!({"provider": "openai", "name": "Prod", "api_key": key}),
        )
        .await
        .expect(201);
    let text = created.to_string();
    assert!(!text.contains("abcdefghijklmnop"), "{text}");
    assert_eq!(created["api_key_hint"], "…1234");
    let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let listed = s
        .get(&u, "/api/v1/provider-configs")
        .await
        .expect(200)
        .to_string();
    assert!(!listed.contains("abcdefghijklmnop") && !listed.contains("ciphertext"));
    let row = s
        .services
        .store()
        .lookup_unscoped(
            &ceneca_domain::model::AI_PROVIDER_CONFIGS,
            "id",
            ceneca_domain::Value::Id(id),
        )
        .await
        .unwrap()
        .unwrap();
    let ciphertext = match row.get("api_key_ciphertext") {
        Some(ceneca_domain::Value::Bytes(b)) => b.clone(),
        other => panic!("no ciphertext: {other:?}"),
    };
    assert!(
        !ciphertext.windows(key.len()).any(|w| w == key.as_bytes()),
        "stored encrypted"
    );
    let updated = s
        .patch(
            &u,
            &format!("/api/v1/provider-configs/{id}"),
            json!({"api_key": "sk-rotated-000000009999"}),
        )
        .await
        .expect(200);
    assert_eq!(updated["api_key_hint"], "…9999");
    let revealed = s
        .services
        .reveal_secret(&ceneca_domain::model::AI_PROVIDER_CONFIGS, id, "api_key")
        .await
        .unwrap();
    assert_eq!(
        revealed.as_deref(),
        Some("sk-rotated-000000009999"),
        "the server itself can still read it"
    );

    let _ = Store::engine(&**s.services.store());
}

async fn the_oldest_session_ends_beyond_the_limit(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let mut tokens = vec![u.token.clone()];
    for _ in 0..3 {
        let login = s
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(&json!({"email": u.email, "password": "correct horse battery"})),
            )
            .await
            .expect(200);
        tokens.push(login["token"].as_str().unwrap().to_owned());
    }
    // Four log-ins, three allowed: the first (from registration) ended.
    s.call(Method::GET, "/api/v1/auth/me", Some(&tokens[0]), None)
        .await
        .expect(401);
    for t in &tokens[1..] {
        s.call(Method::GET, "/api/v1/auth/me", Some(t), None)
            .await
            .expect(200);
    }
    // Device tokens do not count against the limit.
    let device = s
        .post(
            &ceneca_e2e::User {
                token: tokens[3].clone(),
                ..u.clone()
            },
            "/api/v1/devices",
            json!({"name": "d", "platform": "cli"}),
        )
        .await
        .expect(201);
    s.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(&json!({"email": u.email, "password": "correct horse battery"})),
    )
    .await
    .expect(200);
    s.call(
        Method::GET,
        "/api/v1/auth/me",
        Some(device["token"].as_str().unwrap()),
        None,
    )
    .await
    .expect(200);
    s.call(Method::GET, "/api/v1/auth/me", Some(&tokens[1]), None)
        .await
        .expect(401);
}

async fn idle_sessions_end(backend: Backend) {
    let config = ceneca_service::ServiceConfig {
        session_idle_timeout: std::time::Duration::from_millis(2000),
        ..Default::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let u = s.user("u").await;
    // Use keeps it alive...
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        s.call(Method::GET, "/api/v1/auth/me", Some(&u.token), None)
            .await
            .expect(200);
    }
    // ...and inactivity ends it.
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    let r = s
        .call(Method::GET, "/api/v1/auth/me", Some(&u.token), None)
        .await;
    assert_eq!(r.status.as_u16(), 401);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("inactivity")
    );
}

async fn browsers_get_a_secure_http_only_cookie(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let res = s
        .http
        .post(format!("{}/api/v1/auth/login?session=cookie", s.base))
        .json(&json!({"email": u.email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in [
        "ceneca_session=",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body.get("token").is_none(),
        "the token stays out of page scripts' reach"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let me = s
        .http
        .get(format!("{}/api/v1/auth/me", s.base))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let out = s
        .http
        .post(format!("{}/api/v1/auth/logout", s.base))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = s
        .http
        .get(format!("{}/api/v1/auth/me", s.base))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}

mod api_tokens {
    use ceneca_e2e::{Backend, TestServer, on_every_backend, world};
    use reqwest::Method;
    use serde_json::json;

    on_every_backend!(api_tokens_are_named_scoped_listable_and_revocable);

    async fn api_tokens_are_named_scoped_listable_and_revocable(backend: Backend) {
        let s = TestServer::start(backend).await;
        let u = s.user("u").await;
        let w = world(&s, &u).await;
        let created = s
            .post(
                &u,
                "/api/v1/api-tokens",
                json!({"name": "ci bot", "workspace_id": w.workspace, "expires_in_days": 30}),
            )
            .await
            .expect(201);
        let token = created["token"].as_str().unwrap().to_owned();
        assert_eq!(created["name"], "ci bot");
        // Works inside its workspace, with the owner's role there...
        s.call(
            Method::GET,
            &format!("/api/v1/threads/{}", w.thread),
            Some(&token),
            None,
        )
        .await
        .expect(200);
        s.call(
            Method::POST,
            "/api/v1/threads",
            Some(&token),
            Some(&json!({"workspace_id": w.workspace})),
        )
        .await
        .expect(201);
        // ...and nowhere else: not another workspace, not the organization, not more tokens.
        s.call(
            Method::POST,
            "/api/v1/threads",
            Some(&token),
            Some(&json!({"workspace_id": w.org_workspace})),
        )
        .await
        .expect(404);
        // Organizations are not workspace content: refused to the token whatever the id.
        s.call(
            Method::GET,
            &format!("/api/v1/organizations/{}", w.organization),
            Some(&token),
            None,
        )
        .await
        .expect(403);
        s.call(
            Method::POST,
            "/api/v1/api-tokens",
            Some(&token),
            Some(&json!({"name": "x", "workspace_id": w.workspace})),
        )
        .await
        .expect(403);
        // Listed without its value.
        let listed = s.get(&u, "/api/v1/api-tokens").await.expect(200);
        let items = listed["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert!(items[0].get("token").is_none() && items[0].get("token_hash").is_none());
        // Bad input and foreign workspaces are refused.
        assert_eq!(
            s.post(
                &u,
                "/api/v1/api-tokens",
                json!({"workspace_id": w.workspace})
            )
            .await
            .status
            .as_u16(),
            422
        );
        assert_eq!(
            s.post(
                &u,
                "/api/v1/api-tokens",
                json!({"name": "n", "workspace_id": w.workspace, "expires_in_days": 9999})
            )
            .await
            .status
            .as_u16(),
            422
        );
        let other = s.user("other").await;
        let theirs = world(&s, &other).await;
        s.post(
            &u,
            "/api/v1/api-tokens",
            json!({"name": "n", "workspace_id": theirs.workspace}),
        )
        .await
        .expect(404);
        s.delete(
            &other,
            &format!("/api/v1/api-tokens/{}", created["id"].as_str().unwrap()),
        )
        .await
        .expect(404);
        // Revoked: stops at once.
        s.delete(
            &u,
            &format!("/api/v1/api-tokens/{}", created["id"].as_str().unwrap()),
        )
        .await
        .expect(204);
        s.call(
            Method::GET,
            &format!("/api/v1/threads/{}", w.thread),
            Some(&token),
            None,
        )
        .await
        .expect(401);
    }
}

mod expiry {
    use ceneca_e2e::{Backend, TestServer, on_every_backend};
    use reqwest::Method;

    on_every_backend!(expired_sessions_are_refused);

    async fn expired_sessions_are_refused(backend: Backend) {
        let config = ceneca_service::ServiceConfig {
            session_lifetime: std::time::Duration::from_secs(1),
            ..Default::default()
        };
        let s = TestServer::start_with(backend, config).await;
        let u = s.user("u").await;
        s.call(Method::GET, "/api/v1/auth/me", Some(&u.token), None)
            .await
            .expect(200);
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        s.call(Method::GET, "/api/v1/auth/me", Some(&u.token), None)
            .await
            .expect(401);
    }
}
