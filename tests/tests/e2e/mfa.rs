//! TOTP multi-factor authentication: enrol, confirm, log in with a code or a one-use
//! recovery code, disable; administrators' powers wait for it.

use ceneca_e2e::{Backend, TestServer, mfa_code, on_every_backend};
use reqwest::Method;
use serde_json::json;

on_every_backend!(
    mfa_enrol_login_recover_disable,
    administrators_need_mfa_for_their_powers
);

async fn login(s: &TestServer, body: serde_json::Value) -> ceneca_e2e::Reply {
    s.call(Method::POST, "/api/v1/auth/login", None, Some(&body))
        .await
}

async fn mfa_enrol_login_recover_disable(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let password = "correct horse battery";
    let enrolled = s
        .call(
            Method::POST,
            "/api/v1/auth/mfa/enroll",
            Some(&u.token),
            None,
        )
        .await
        .expect(200);
    let secret = enrolled["secret"].as_str().unwrap().to_owned();
    assert!(
        enrolled["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Ceneca:")
    );
    // Not on until confirmed.
    login(&s, json!({"email": u.email, "password": password}))
        .await
        .expect(200);
    let wrong = s
        .call(
            Method::POST,
            "/api/v1/auth/mfa/confirm",
            Some(&u.token),
            Some(&json!({"code": "000000"})),
        )
        .await;
    assert_eq!(wrong.status.as_u16(), 422);
    let confirmed = s
        .call(
            Method::POST,
            "/api/v1/auth/mfa/confirm",
            Some(&u.token),
            Some(&json!({"code": mfa_code(&secret)})),
        )
        .await
        .expect(200);
    let recovery: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    assert_eq!(
        s.get(&u, "/api/v1/auth/me").await.expect(200)["mfa_enabled"],
        true
    );
    s.call(
        Method::POST,
        "/api/v1/auth/mfa/enroll",
        Some(&u.token),
        None,
    )
    .await
    .expect(409);

    let needs = login(&s, json!({"email": u.email, "password": password})).await;
    assert_eq!(needs.status.as_u16(), 401);
    assert_eq!(needs.code(), "mfa_required");
    assert_eq!(
        login(
            &s,
            json!({"email": u.email, "password": password, "mfa_code": "123456"})
        )
        .await
        .status
        .as_u16(),
        401
    );
    // A code does not help without the password.
    assert_eq!(
        login(
            &s,
            json!({"email": u.email, "password": "wrong password", "mfa_code": mfa_code(&secret)})
        )
        .await
        .code(),
        "unauthorized"
    );
    login(
        &s,
        json!({"email": u.email, "password": password, "mfa_code": mfa_code(&secret)}),
    )
    .await
    .expect(200);

    // A recovery code works once.
    login(&s, json!({"email": u.email, "password": password, "recovery_code": recovery[3].to_uppercase()})).await.expect(200);
    assert_eq!(
        login(
            &s,
            json!({"email": u.email, "password": password, "recovery_code": recovery[3]})
        )
        .await
        .status
        .as_u16(),
        401
    );
    let fresh = login(
        &s,
        json!({"email": u.email, "password": password, "recovery_code": recovery[4]}),
    )
    .await
    .expect(200);
    let token = fresh["token"].as_str().unwrap();

    // Disabling takes a second factor too.
    s.call(
        Method::POST,
        "/api/v1/auth/mfa/disable",
        Some(token),
        Some(&json!({})),
    )
    .await;
    assert_eq!(
        s.get(&u, "/api/v1/auth/me").await.status.as_u16(),
        401,
        "older sessions ended with the session limit"
    );
    let r = s
        .call(
            Method::POST,
            "/api/v1/auth/mfa/disable",
            Some(token),
            Some(&json!({"mfa_code": mfa_code(&secret)})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.body);
    login(&s, json!({"email": u.email, "password": password}))
        .await
        .expect(200);
    // The secret is stored encrypted, never shown again.
    let me = s
        .call(Method::GET, "/api/v1/auth/me", Some(token), None)
        .await
        .expect(200);
    assert!(me.get("mfa_secret_ciphertext").is_none() && me.get("mfa_recovery_codes").is_none());
}

async fn administrators_need_mfa_for_their_powers(backend: Backend) {
    let s = TestServer::start(backend).await;
    let email = "root@example.com";
    s.services
        .create_user(email, "Root", "correct horse battery", true)
        .await
        .unwrap();
    let body = login(
        &s,
        json!({"email": email, "password": "correct horse battery"}),
    )
    .await
    .expect(200);
    let token = body["token"].as_str().unwrap().to_owned();
    let plan = json!({"name": "Pro", "price_micros": 1, "interval": "month"});
    assert_eq!(
        s.call(Method::POST, "/api/v1/plans", Some(&token), Some(&plan))
            .await
            .status
            .as_u16(),
        403
    );
    let secret = s.enable_mfa(&token).await;
    // Powers apply on the next request of the same session once MFA is on.
    s.call(Method::POST, "/api/v1/plans", Some(&token), Some(&plan))
        .await
        .expect(201);
    let again = login(
        &s,
        json!({"email": email, "password": "correct horse battery", "mfa_code": mfa_code(&secret)}),
    )
    .await
    .expect(200);
    assert_eq!(again["user"]["role"], "admin");
}
