//! Abuse resistance: rate limits trip with 429 and Retry-After and recover; repeated
//! failed log-ins lock an account with back-off. And what surrounds every request at the
//! edge: request ids, metrics (for administrators and the metrics listener only) and
//! response compression.

use std::io::Read;
use std::time::Duration;

use ceneca_e2e::{Backend, TestServer, on_every_backend, world};
use ceneca_server::HttpConfig;
use ceneca_server::limits::RateConfig;
use reqwest::Method;
use serde_json::json;

on_every_backend!(
    login_attempts_per_address_are_limited,
    regression_the_probes_answer_an_address_past_its_limit,
    requests_per_account_are_limited_and_recover,
    failed_logins_lock_the_account_with_back_off,
    security_headers_and_cors,
    administrators_work_only_from_allowed_networks,
    metrics_are_for_administrators_and_the_metrics_listener_only,
    large_answers_are_compressed_as_the_client_asks,
    request_ids_are_in_every_answer_and_error_body,
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

/// Found by the second attack on issue 15: a flood from the probe's own address turned
/// `/readyz` into 429, so the node looked unready while it served.
async fn regression_the_probes_answer_an_address_past_its_limit(backend: Backend) {
    let rate = RateConfig {
        per_ip_per_minute: 5,
        ..RateConfig::default()
    };
    let s = TestServer::start_full(backend, Default::default(), limited(rate)).await;
    let mut refused = false;
    for _ in 0..10 {
        let r = s.call(Method::GET, "/api/v1/auth/me", None, None).await;
        refused |= r.status.as_u16() == 429;
    }
    assert!(refused, "the address is past its limit");
    for probe in ["/healthz", "/readyz"] {
        for _ in 0..10 {
            s.call(Method::GET, probe, None, None).await.expect(200);
        }
    }
    let r = s.call(Method::GET, "/api/v1/auth/me", None, None).await;
    assert_eq!(r.status.as_u16(), 429, "the API stays limited");
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

async fn metrics_are_for_administrators_and_the_metrics_listener_only(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin().await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    for _ in 0..3 {
        s.get(&u, &format!("/api/v1/threads/{}", w.thread))
            .await
            .expect(200);
    }
    s.call(Method::GET, "/no/such/route/42", None, None)
        .await
        .expect(404);

    let scrape = |token: Option<String>| {
        let mut req = s.http.get(format!("{}/metrics", s.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let res = scrape(Some(admin.token.clone())).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
    );
    let text = res.text().await.unwrap();
    let engine = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    for expected in [
        r#"ceneca_http_requests_total{method="GET",route="/api/v1/threads/{id}",status="200"} 3"#,
        r#"ceneca_http_request_duration_seconds_count{method="GET",route="/api/v1/threads/{id}",status="200"} 3"#,
        r#"ceneca_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"ceneca_http_requests_total{method="POST",route="/api/v1/threads/{parent}/messages/batch",status="201"} 1"#,
        &format!(r#"ceneca_db_connections_in_use{{engine="{engine}""#),
        "# TYPE ceneca_db_write_wait_seconds histogram",
        "ceneca_db_writes_waiting ",
        r#"ceneca_sessions_created_total{kind="login"} "#,
        "ceneca_audit_appends_total ",
        r#"ceneca_lockout_refusals_total{kind="login"} 0"#,
        "ceneca_vector_indexer_leader ",
        r#"ceneca_rate_limited_total{limit="address"} 0"#,
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    // Templates, never raw paths: no id ever becomes a label.
    assert!(!text.contains(&w.thread), "{text}");
    assert!(!text.contains("/no/such/route"), "{text}");
    let appends: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("ceneca_audit_appends_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        appends >= 5,
        "registrations, log-ins and writes were audited: {appends}"
    );

    // Tenants never: no credential, a user's session, an API token, a device token.
    assert_eq!(scrape(None).await.unwrap().status(), 401);
    let refused = scrape(Some(u.token.clone())).await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    let api_token = s
        .post(
            &admin,
            "/api/v1/api-tokens",
            json!({"name": "scraper", "workspace_id": s.post(&admin, "/api/v1/workspaces", json!({"name": "Ops"})).await.expect(201)["id"], "expires_in_days": 1}),
        )
        .await
        .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(scrape(Some(api_token)).await.unwrap().status(), 403);
    let device_token = s
        .post(
            &admin,
            "/api/v1/devices",
            json!({"name": "laptop", "platform": "desktop"}),
        )
        .await
        .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(scrape(Some(device_token)).await.unwrap().status(), 403);

    // The metrics listener: no authentication, the same figures, and nothing else.
    let listener = s.metrics_listener().await;
    let open = s
        .http
        .get(format!("{listener}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    let text = open.text().await.unwrap();
    assert!(text.contains(r#"route="/api/v1/threads/{id}",status="200"} 3"#));
    assert!(
        text.contains(r#"ceneca_sessions_created_total{kind="api"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"ceneca_sessions_created_total{kind="device"} 1"#),
        "{text}"
    );
    let api = s
        .http
        .get(format!("{listener}/api/v1/auth/me"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
}

fn decode(encoding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::stream::decode_all(bytes).unwrap(),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

async fn large_answers_are_compressed_as_the_client_asks(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let items: Vec<_> = (0..40)
        .map(|i| json!({"role": "user", "content": format!("message number {i}, long enough to add up")}))
        .collect();
    s.post(
        &u,
        &format!("/api/v1/threads/{}/messages/batch", w.thread),
        json!({ "items": items }),
    )
    .await
    .expect(201);
    let url = format!("{}/api/v1/threads/{}/messages?limit=50", s.base, w.thread);
    let get = |encoding: Option<&str>| {
        let mut req = s.http.get(&url).bearer_auth(&u.token);
        if let Some(e) = encoding {
            req = req.header("accept-encoding", e);
        }
        req.send()
    };

    // Without Accept-Encoding: identity, with its length.
    let plain = get(None).await.unwrap();
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("content-encoding").is_none());
    let length: usize = plain.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let plain = plain.bytes().await.unwrap();
    assert_eq!(plain.len(), length);
    assert!(plain.len() > 4096, "a large answer: {} bytes", plain.len());
    let expected: serde_json::Value = serde_json::from_slice(&plain).unwrap();

    for encoding in ["gzip", "br", "zstd"] {
        let res = get(Some(encoding)).await.unwrap();
        assert_eq!(res.status(), 200);
        let h = res.headers();
        assert_eq!(h["content-encoding"], encoding);
        assert!(
            h.get_all("vary").iter().any(|v| v
                .to_str()
                .unwrap()
                .to_ascii_lowercase()
                .contains("accept-encoding")),
            "Vary names Accept-Encoding"
        );
        // A length, if sent, is the encoded body's.
        let sent_length = h
            .get("content-length")
            .map(|v| v.to_str().unwrap().parse::<usize>().unwrap());
        let body = res.bytes().await.unwrap();
        if let Some(n) = sent_length {
            assert_eq!(n, body.len());
        }
        assert!(
            body.len() < plain.len() / 2,
            "{encoding}: {} bytes",
            body.len()
        );
        let decoded: serde_json::Value = serde_json::from_slice(&decode(encoding, &body)).unwrap();
        assert_eq!(decoded, expected, "{encoding}");
    }

    // The client's preference among several is honoured; small answers stay as they are.
    let res = get(Some("gzip;q=0.5, zstd")).await.unwrap();
    assert_eq!(res.headers()["content-encoding"], "zstd");
    let small = s
        .http
        .get(format!("{}/healthz", s.base))
        .header("accept-encoding", "gzip, br, zstd")
        .send()
        .await
        .unwrap();
    assert!(small.headers().get("content-encoding").is_none());
    assert_eq!(small.text().await.unwrap(), r#"{"status":"ok"}"#);
    let error = s
        .http
        .get(format!("{}/api/v1/threads/nope", s.base))
        .bearer_auth(&u.token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(error.status(), 400);
    assert!(error.headers().get("content-encoding").is_none());
}

async fn request_ids_are_in_every_answer_and_error_body(backend: Backend) {
    let rate = RateConfig {
        logins_per_ip_per_minute: 1,
        ..RateConfig::default()
    };
    let s = TestServer::start_full(backend, Default::default(), limited(rate)).await;
    let u = s.user("u").await;
    // Every kind of error answer: a bad id (400), no credential (401), no route (404),
    // a wrong method (405), a form body (415), a rate limit (429).
    let login = json!({"email": "nobody@example.com", "password": "wrong password"});
    let requests = [
        s.http
            .get(format!("{}/api/v1/threads/not-a-uuid", s.base))
            .bearer_auth(&u.token),
        s.http.get(format!("{}/api/v1/auth/me", s.base)),
        s.http.get(format!("{}/no/such/route", s.base)),
        s.http
            .put(format!("{}/api/v1/auth/me", s.base))
            .bearer_auth(&u.token),
        s.http
            .post(format!("{}/api/v1/threads", s.base))
            .bearer_auth(&u.token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("title=x"),
        s.http
            .post(format!("{}/api/v1/auth/login", s.base))
            .json(&login),
        s.http
            .post(format!("{}/api/v1/auth/login", s.base))
            .json(&login),
    ];
    let mut statuses = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for request in requests {
        let res = request.send().await.unwrap();
        statuses.push(res.status().as_u16());
        let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        uuid::Uuid::parse_str(&header).expect("a generated id is a UUID");
        assert!(seen.insert(header.clone()), "ids differ per request");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["request_id"], header.as_str(), "{body}");
    }
    assert_eq!(statuses, [400, 401, 404, 405, 415, 401, 429]);

    // A plain client id is kept; a hostile one is replaced.
    let with_id = |id: &[u8]| {
        s.http
            .get(format!("{}/api/v1/threads/not-a-uuid", s.base))
            .bearer_auth(&u.token)
            .header(
                "x-request-id",
                reqwest::header::HeaderValue::from_bytes(id).unwrap(),
            )
            .send()
    };
    let kept = with_id(b"lb-7f3a.trace_01").await.unwrap();
    assert_eq!(kept.headers()["x-request-id"], "lb-7f3a.trace_01");
    let body: serde_json::Value = kept.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], "lb-7f3a.trace_01");
    let long = vec![b'a'; 500];
    for hostile in [
        &long[..],
        b"abc\tdef",
        b"x\" level=error msg=\"forged",
        "caf\u{e9}".as_bytes(),
        &[b'a'; 65][..],
    ] {
        let res = with_id(hostile).await.unwrap();
        let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        uuid::Uuid::parse_str(&header).expect("replaced by a generated id");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["request_id"], header.as_str());
    }
    // Successful answers carry one too.
    let ok = s
        .http
        .get(format!("{}/api/v1/auth/me", s.base))
        .bearer_auth(&u.token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains_key("x-request-id"));
}
