//! Abuse resistance: rate limits trip with 429 and Retry-After and recover; repeated
//! failed log-ins lock an account with back-off.

use std::time::Duration;

use ceneca_e2e::{Backend, TestServer, on_every_backend};
use ceneca_server::HttpConfig;
use ceneca_server::limits::RateConfig;
use reqwest::Method;
use serde_json::json;

on_every_backend!(
    login_attempts_per_address_are_limited,
    requests_per_account_are_limited_and_recover,
    failed_logins_lock_the_account_with_back_off,
    security_headers_and_cors,
    administrators_work_only_from_allowed_networks,
);

fn limited(rate: RateConfig) -> HttpConfig {
    HttpConfig {
        rate,
        ..HttpConfig::default()
    }
}

async fn login_attempts_per_address_are_limited(backend: Backend) {
    let rate = RateConfig {
        logins_per_ip_per_minute: 3,
        ..RateConfig::default()
    };
    let s = TestServer::start_full(backend, Default::default(), limited(rate)).await;
    let body = json!({"email": "nobody@example.com", "password": "wrong password"});
    for _ in 0..3 {
        s.call(Method::POST, "/api/v1/auth/login", None, Some(&body))
            .await
            .expect(401);
    }
    let res = s
        .http
        .post(format!("{}/api/v1/auth/login", s.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    let error: serde_json::Value = res.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limited");
}

async fn requests_per_account_are_limited_and_recover(backend: Backend) {
    let rate = RateConfig {
        per_account_per_minute: 60,
        ..RateConfig::default()
    };
    let s = TestServer::start_full(backend, Default::default(), limited(rate)).await;
    let u = s.user("u").await;
    let other = s.user("other").await;
    let mut tripped = false;
    for _ in 0..70 {
        let r = s.get(&u, "/api/v1/auth/me").await;
        if r.status.as_u16() == 429 {
            tripped = true;
            break;
        }
        assert_eq!(r.status.as_u16(), 200);
    }
    assert!(tripped, "the 61st request in a minute is refused");
    s.get(&other, "/api/v1/auth/me").await.expect(200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.get(&u, "/api/v1/auth/me").await.expect(200);
}

async fn failed_logins_lock_the_account_with_back_off(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let wrong = json!({"email": u.email, "password": "wrong password"});
    let right = json!({"email": u.email, "password": "correct horse battery"});
    for _ in 0..5 {
        s.call(Method::POST, "/api/v1/auth/login", None, Some(&wrong))
            .await
            .expect(401);
    }
    // Locked: even the right password waits.
    let res = s
        .http
        .post(format!("{}/api/v1/auth/login", s.base))
        .json(&right)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    // The refused attempt counted: the wait has doubled.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    s.call(Method::POST, "/api/v1/auth/login", None, Some(&right))
        .await
        .expect(200);
    // A success clears the streak.
    s.call(Method::POST, "/api/v1/auth/login", None, Some(&wrong))
        .await
        .expect(401);
    s.call(Method::POST, "/api/v1/auth/login", None, Some(&right))
        .await
        .expect(200);
}

async fn security_headers_and_cors(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let res = s
        .http
        .get(format!("{}/api/v1/auth/me", s.base))
        .bearer_auth(&u.token)
        .send()
        .await
        .unwrap();
    let h = res.headers();
    assert_eq!(h["content-security-policy"], "default-src 'self'");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let preflight = |s: &TestServer, origin: &str| {
        s.http
            .request(Method::OPTIONS, format!("{}/api/v1/threads", s.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let off = preflight(&s, "https://app.example.com").await.unwrap();
    assert!(
        off.headers().get("access-control-allow-origin").is_none(),
        "CORS is off by default"
    );
    let http = HttpConfig {
        cors_origins: vec!["https://app.example.com".into()],
        ..HttpConfig::default()
    };
    let s2 = TestServer::start_full(backend, Default::default(), http).await;
    let on = preflight(&s2, "https://app.example.com").await.unwrap();
    assert_eq!(
        on.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = preflight(&s2, "https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

async fn administrators_work_only_from_allowed_networks(backend: Backend) {
    let elsewhere = HttpConfig {
        admin_networks: vec!["10.0.0.0/8".parse().unwrap()],
        ..HttpConfig::default()
    };
    let s = TestServer::start_full(backend, Default::default(), elsewhere).await;
    let admin = s.admin().await;
    let user = s.user("u").await;
    let r = s.get(&admin, "/api/v1/audit-log").await;
    assert_eq!(r.status.as_u16(), 403);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("address")
    );
    s.get(&user, "/api/v1/auth/me").await.expect(200);
    let here = HttpConfig {
        admin_networks: vec!["127.0.0.0/8".parse().unwrap()],
        ..HttpConfig::default()
    };
    let s2 = TestServer::start_full(backend, Default::default(), here).await;
    let admin2 = s2.admin().await;
    s2.get(&admin2, "/api/v1/audit-log").await.expect(200);
}
