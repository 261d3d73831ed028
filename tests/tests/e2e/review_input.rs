//! Regressions of the security review's input and storage findings (issue 9), one story per finding, on SQLite and
//! PostgreSQL. (The data-folder modes are checked on the real binary in
//! `crates/ceneca-cli/tests/cli.rs`.)

use base64::Engine;
use ceneca_domain::model;
use ceneca_domain::schema::{Input, Kind, Tenancy};
use ceneca_e2e::{Backend, Reply, TestServer, User, on_every_backend, samples, world};
use ceneca_service::ServiceConfig;
use reqwest::Method;
use serde_json::{Value, json};

on_every_backend!(
    a_500_from_input_time_overflow_is_refused_in_every_time_parameter_and_field,
    json_accepted_without_content_type_is_now_415,
    json_form_csrf_with_a_cookie_session_is_refused,
    search_snippets_escape_stored_html,
    pending_writes_are_shown_to_system_administrators_only,
    sharing_scope_check_normalises_and_is_closed,
);

/// Times that are valid RFC 3339 but outside what Ceneca stores: beyond year 9999 once in
/// UTC (the overflow that was a 500), year 0, negative and five-digit years.
const BAD_TIMES: &[&str] = &[
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59.999999999-00:01",
    "9999-12-31T23:59:60-23:59",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00+00:01",
    "0001-01-01T00:00:00+23:59",
    "-0001-01-01T00:00:00Z",
    "+10000-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
];
/// The earliest and latest times stored.
const MIN_TIME: &str = "0001-01-01T00:00:00Z";
const MAX_TIME: &str = "9999-12-31T23:59:59.999999Z";

fn enc(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[track_caller]
fn assert_refused(r: &Reply, field: &str, what: &str) {
    assert!(
        matches!(r.status.as_u16(), 400 | 422),
        "{what}: expected 400/422, got {}: {}",
        r.status,
        r.body
    );
    assert!(
        r.body["error"]["fields"].get(field).is_some(),
        "{what}: the error names '{field}': {}",
        r.body
    );
}

/// Every time a client may send — query parameters of every list, search and export,
/// list cursors over every time sort key, and every client-settable time field of the
/// model (on create and on patch) — refuses out-of-range times with 400/422 naming the
/// parameter or field; the extremes that are in range are stored and read back.
async fn a_500_from_input_time_overflow_is_refused_in_every_time_parameter_and_field(
    backend: Backend,
) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let admin = s.admin().await;
    let w = world(&s, &owner).await;

    // Query parameters and cursors, on every list route (as an administrator, who may
    // list everything), the nested lists, search, the audit export and vector scrolls.
    let mut lists: Vec<(String, &'static ceneca_domain::Entity)> = model::ALL
        .iter()
        .copied()
        .filter(|e| {
            e.tenancy != Tenancy::Internal
                && !std::ptr::eq(*e, &model::ORGANIZATION_MEMBERS)
                && !std::ptr::eq(*e, &model::WORKSPACE_MEMBERS)
        })
        .map(|e| (format!("/api/v1/{}", e.path), e))
        .collect();
    lists.push((
        format!("/api/v1/threads/{}/messages", w.thread),
        &model::MESSAGES,
    ));
    lists.push((
        format!("/api/v1/organizations/{}/members", w.organization),
        &model::ORGANIZATION_MEMBERS,
    ));
    lists.push((
        format!("/api/v1/workspaces/{}/members", w.workspace),
        &model::WORKSPACE_MEMBERS,
    ));
    let caller_for = |path: &str| -> &User {
        if path.contains("/threads/") || path.contains("/members") {
            &owner
        } else {
            &admin
        }
    };
    for (path, entity) in &lists {
        let who = caller_for(path);
        s.get(who, path).await.expect(200);
        for bad in BAD_TIMES {
            for param in ["created_after", "created_before"] {
                let r = s.get(who, &format!("{path}?{param}={}", enc(bad))).await;
                assert_refused(&r, param, &format!("{path}?{param}={bad}"));
            }
            for field in entity.columns().filter(|f| f.kind == Kind::Time) {
                if field.filter {
                    let r = s
                        .get(who, &format!("{path}?{}={}", field.name, enc(bad)))
                        .await;
                    assert_refused(&r, field.name, &format!("{path}?{}={bad}", field.name));
                }
                if field.sort {
                    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
                        json!({"s": field.name, "d": false, "v": bad, "i": uuid::Uuid::now_v7().to_string()})
                            .to_string(),
                    );
                    let r = s
                        .get(who, &format!("{path}?sort={}&cursor={cursor}", field.name))
                        .await;
                    assert_refused(
                        &r,
                        "cursor",
                        &format!("{path} cursor on {} = {bad}", field.name),
                    );
                }
            }
        }
    }
    for bad in BAD_TIMES {
        for param in ["created_after", "created_before"] {
            for (who, path) in [
                (&owner, "/api/v1/search?q=launch&".to_owned()),
                (&admin, "/api/v1/audit-log/export?".to_owned()),
                (&owner, "/api/v1/vectors/messages/points?".to_owned()),
            ] {
                let r = s.get(who, &format!("{path}{param}={}", enc(bad))).await;
                assert_refused(&r, param, &format!("{path}{param}={bad}"));
            }
        }
    }

    // Body fields: every time field of the model a client may set, on create and patch.
    let plan = s
        .post(
            &admin,
            "/api/v1/plans",
            json!({"name": "Team", "price_micros": 1, "interval": "month"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let invoice = json!({"user_id": owner.id, "plan_id": plan, "period_start": "2026-01-01T00:00:00Z", "period_end": "2026-02-01T00:00:00Z", "amount_micros": 1});
    let bodies: Vec<(&str, Value, &User)> = samples(&w)
        .into_iter()
        .map(|sample| (sample.path, sample.create, &owner))
        .chain([("invoices", invoice.clone(), &admin)])
        .collect();
    let mut checked = 0;
    for entity in model::ALL {
        let fields: Vec<_> = entity
            .fields
            .iter()
            .filter(|f| f.kind == Kind::Time && f.input != Input::Server)
            .collect();
        if fields.is_empty() {
            continue;
        }
        let (_, create, who) = bodies
            .iter()
            .find(|(path, _, _)| *path == entity.path)
            .unwrap_or_else(|| {
                panic!(
                    "{} has client-settable times: add a create body for it to this test",
                    entity.path
                )
            });
        let path = format!("/api/v1/{}", entity.path);
        let id = s.post(who, &path, create.clone()).await.expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for field in fields {
            for bad in BAD_TIMES {
                let mut body = create.clone();
                body[field.name] = json!(bad);
                let r = s.post(who, &path, body).await;
                assert_refused(&r, field.name, &format!("POST {path} {}={bad}", field.name));
                if field.patch {
                    let r = s
                        .patch(who, &format!("{path}/{id}"), json!({ field.name: bad }))
                        .await;
                    assert_refused(
                        &r,
                        field.name,
                        &format!("PATCH {path} {}={bad}", field.name),
                    );
                }
                checked += 1;
            }
        }
    }
    // projects.archived_at, step results' started_at and finished_at, and the four times
    // of an invoice, at least.
    assert!(
        checked >= 7 * BAD_TIMES.len(),
        "time fields checked: {checked}"
    );

    // The extremes in range are stored, read back (by the invoice's user), filtered on and
    // paged through.
    let mut extreme = invoice.clone();
    extreme["period_start"] = json!(MIN_TIME);
    extreme["period_end"] = json!(MAX_TIME);
    let created = s
        .post(&admin, "/api/v1/invoices", extreme)
        .await
        .expect(201);
    let id = created["id"].as_str().unwrap();
    let read = s
        .get(&owner, &format!("/api/v1/invoices/{id}"))
        .await
        .expect(200);
    assert_eq!(read["period_start"], MIN_TIME);
    assert_eq!(read["period_end"], MAX_TIME);
    let page = s
        .get(
            &owner,
            &format!(
                "/api/v1/invoices?sort=period_start&limit=1&created_after={}&created_before={}",
                enc(MIN_TIME),
                enc(MAX_TIME)
            ),
        )
        .await
        .expect(200);
    assert_eq!(page["items"][0]["id"], json!(id));
    let cursor = page["next_cursor"].as_str().expect("a next page");
    s.get(
        &owner,
        &format!("/api/v1/invoices?sort=period_start&limit=1&cursor={cursor}"),
    )
    .await
    .expect(200);
    let search = s
        .get(
            &owner,
            &format!(
                "/api/v1/search?q=launch&created_after={}&created_before={}",
                enc(MIN_TIME),
                enc(MAX_TIME)
            ),
        )
        .await
        .expect(200);
    assert!(!search["items"].as_array().unwrap().is_empty());
}

async fn raw(
    s: &TestServer,
    method: Method,
    path: &str,
    auth: (&str, &str),
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut req = s
        .http
        .request(method, format!("{}{path}", s.base))
        .header(auth.0, auth.1);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b.to_owned());
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let bytes = res.bytes().await.unwrap();
    Reply {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

#[track_caller]
fn assert_415(r: &Reply, what: &str) {
    assert_eq!(r.status.as_u16(), 415, "{what}: {}", r.body);
    assert_eq!(r.code(), "unsupported_media_type", "{what}");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("application/json")),
        "{what}: says what to send: {}",
        r.body
    );
}

/// JSON is read only with `Content-Type: application/json` (any case, with parameters);
/// no type, text, forms, multipart and other `+json` types are 415. Routes that read no
/// body accept none without a type, and refuse a body that is not declared JSON.
async fn json_accepted_without_content_type_is_now_415(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let bearer = format!("Bearer {}", u.token);
    let auth = ("authorization", bearer.as_str());
    let thread = json!({"workspace_id": w.workspace, "title": "t"}).to_string();
    for ct in [
        None,
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("application/foo+json"),
        Some("application/merge-patch+json"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        Some(""),
    ] {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
        let r = raw(
            &s,
            Method::POST,
            "/api/v1/threads",
            auth,
            &headers,
            Some(&thread),
        )
        .await;
        assert_415(&r, &format!("POST with {ct:?}"));
        let r = raw(
            &s,
            Method::PATCH,
            &format!("/api/v1/threads/{}", w.thread),
            auth,
            &headers,
            Some(r#"{"title": "x"}"#),
        )
        .await;
        assert_415(&r, &format!("PATCH with {ct:?}"));
    }
    for ct in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/json;charset=UTF-8",
    ] {
        raw(
            &s,
            Method::POST,
            "/api/v1/threads",
            auth,
            &[("content-type", ct)],
            Some(&thread),
        )
        .await
        .expect(201);
    }
    // Routes without a body: none needed, and no type needed for none.
    s.delete(&u, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    let restore = format!("/api/v1/threads/{}/restore", w.thread);
    for (ct, body) in [
        (Some("application/x-www-form-urlencoded"), Some("a=b")),
        (Some("text/plain"), Some("{}")),
        (Some("text/plain"), None),
        (None, Some("{}")),
    ] {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
        let r = raw(&s, Method::POST, &restore, auth, &headers, body).await;
        assert_415(&r, &format!("restore with {ct:?} {body:?}"));
    }
    raw(&s, Method::POST, &restore, auth, &[], None)
        .await
        .expect(200);
    s.delete(&u, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    raw(
        &s,
        Method::POST,
        &restore,
        auth,
        &[("content-type", "application/json")],
        Some("{}"),
    )
    .await
    .expect(200);
    raw(&s, Method::POST, "/api/v1/auth/mfa/enroll", auth, &[], None)
        .await
        .expect(200);
    raw(&s, Method::POST, "/api/v1/auth/logout", auth, &[], None)
        .await
        .expect(204);
}

/// A page of another origin on the same site holds the user's cookie session: an HTML
/// form (urlencoded, multipart, or text/plain dressed as JSON) is refused without being
/// acted on, and a body-less `POST` from another origin CORS does not allow is refused.
async fn json_form_csrf_with_a_cookie_session_is_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let res = s
        .http
        .post(format!("{}/api/v1/auth/login?session=cookie", s.base))
        .json(&json!({"email": u.email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let auth = ("cookie", cookie.as_str());
    let browser = [
        ("origin", "https://evil.example.com"),
        ("sec-fetch-site", "same-site"),
    ];
    let forms = [
        (
            "application/x-www-form-urlencoded",
            format!("workspace_id={}&title=csrf", w.workspace),
        ),
        (
            "multipart/form-data; boundary=X",
            "--X\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\ncsrf\r\n--X--\r\n"
                .to_owned(),
        ),
        (
            "text/plain",
            json!({"workspace_id": w.workspace, "title": "csrf"}).to_string(),
        ),
    ];
    for (ct, body) in &forms {
        let mut headers = browser.to_vec();
        headers.push(("content-type", ct));
        let r = raw(
            &s,
            Method::POST,
            "/api/v1/threads",
            auth,
            &headers,
            Some(body),
        )
        .await;
        assert_415(&r, &format!("form post as {ct}"));
    }
    let titles: Vec<Value> = s
        .list_all(&u, "/api/v1/threads")
        .await
        .into_iter()
        .map(|t| t["title"].clone())
        .collect();
    assert!(!titles.contains(&json!("csrf")), "nothing was created");

    // A body-less POST needs no preflight: from another origin, the cookie is refused.
    s.delete(&u, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    let restore = format!("/api/v1/threads/{}/restore", w.thread);
    for site in ["same-site", "cross-site"] {
        let r = raw(
            &s,
            Method::POST,
            &restore,
            auth,
            &[
                ("origin", "https://evil.example.com"),
                ("sec-fetch-site", site),
            ],
            None,
        )
        .await;
        assert_eq!(r.status.as_u16(), 403, "{site}: {}", r.body);
    }
    s.get(&u, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(404);
    // The application's own pages (same origin) and non-browser clients still can.
    raw(
        &s,
        Method::POST,
        &restore,
        auth,
        &[("sec-fetch-site", "same-origin")],
        None,
    )
    .await
    .expect(200);
    raw(&s, Method::POST, "/api/v1/auth/logout", auth, &[], None)
        .await
        .expect(204);
}

/// Stored HTML comes back escaped in snippets; the only tags are Ceneca's `<mark>`s, and
/// the private marker characters in stored text cannot forge one.
async fn search_snippets_escape_stored_html(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    s.post(
        &u,
        &format!("/api/v1/threads/{}/messages/batch", w.thread),
        json!({"items": [
            {"role": "user", "content": "<script>alert(1)</script> zeppelin &amp; <b onmouseover=\"x()\">bold</b>"},
            {"role": "user", "content": "quasar \u{E000}forged\u{E001} \u{E000} end"}
        ]}),
    )
    .await
    .expect(201);
    s.post(
        &u,
        "/api/v1/documents",
        json!({"workspace_id": w.workspace, "title": "<img src=x onerror=alert(2)> nebula", "body": "a <i>nebula</i> & more"}),
    )
    .await
    .expect(201);
    let snippet = |hits: &Value| -> String {
        let items = hits["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{hits}");
        items[0]["snippet"].as_str().unwrap().to_owned()
    };
    let only_marks = |html: &str| {
        let tags = html.matches('<').count();
        let marks = html.matches("<mark>").count() + html.matches("</mark>").count();
        assert_eq!(tags, marks, "the only tags are marks: {html}");
        assert!(
            !html.contains('>') || html.matches('>').count() == marks,
            "{html}"
        );
        assert!(!html.contains('"'), "{html}");
    };

    let html = snippet(&s.get(&u, "/api/v1/search?q=zeppelin").await.expect(200));
    only_marks(&html);
    assert!(html.contains("<mark>zeppelin</mark>"), "{html}");
    assert!(html.contains("&amp;amp;"), "{html}");
    if backend == Backend::Sqlite {
        // FTS5 keeps the text as stored; PostgreSQL's parser leaves tags out of headlines.
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;b onmouseover=&quot;x()&quot;&gt;"),
            "{html}"
        );
    }

    let html = snippet(&s.get(&u, "/api/v1/search?q=quasar").await.expect(200));
    only_marks(&html);
    assert_eq!(html.matches("<mark>").count(), 1, "{html}");
    assert!(html.contains("<mark>quasar</mark>"), "{html}");
    assert!(html.contains("forged"), "{html}");

    let html = snippet(&s.get(&u, "/api/v1/search?q=nebula").await.expect(200));
    only_marks(&html);
    assert!(html.contains("<mark>nebula</mark>"), "{html}");
    if backend == Backend::Sqlite {
        assert!(
            html.contains("&lt;img src=x onerror=alert(2)&gt;"),
            "{html}"
        );
    }
}

/// The outbox backlog counts every tenant's writes: ordinary users see the collection's
/// settings only; system administrators also see `pending_writes` and the totals.
async fn pending_writes_are_shown_to_system_administrators_only(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let admin = s.admin().await;
    let w = world(&s, &u).await;
    let mut vector = vec![0.1; ceneca_e2e::TEST_VECTOR_DIMS];
    vector[0] = 1.0;
    s.post(
        &u,
        "/api/v1/vectors/messages/points",
        json!({"source_id": w.message, "workspace_id": w.workspace, "vector": vector}),
    )
    .await
    .expect(200);
    let info = s.get(&u, "/api/v1/vectors/messages").await.expect(200);
    assert_eq!(info["dimension"], ceneca_e2e::TEST_VECTOR_DIMS);
    for hidden in [
        "pending_writes",
        "status",
        "points",
        "indexed_points",
        "segments",
    ] {
        assert!(info.get(hidden).is_none(), "{hidden} hidden: {info}");
    }
    let info = s.get(&admin, "/api/v1/vectors/messages").await.expect(200);
    assert!(info["pending_writes"].is_u64(), "{info}");
    assert!(info["status"].is_string(), "{info}");
    assert!(info["points"].is_u64(), "{info}");
}

/// Scopes are trimmed and lower-cased, then checked against the closed list: no spelling
/// of `telemetry` is granted in zero-sync, an unknown scope is refused with the list, and
/// the stored scope is the normalised one (so consent checks find it).
async fn sharing_scope_check_normalises_and_is_closed(backend: Backend) {
    let zero = TestServer::start_with(
        backend,
        ServiceConfig {
            edition: ceneca_domain::Edition::ZeroSync,
            ..ServiceConfig::default()
        },
    )
    .await;
    let u = zero.user("u").await;
    for scope in [
        "Telemetry",
        " telemetry ",
        "TELEMETRY",
        "telemetry",
        "Model_Training",
    ] {
        let r = zero
            .post(
                &u,
                "/api/v1/sharing-policies",
                json!({"scope": scope, "granted": true, "policy_version": "1"}),
            )
            .await;
        assert_eq!(r.status.as_u16(), 422, "{scope:?}: {}", r.body);
        assert!(r.body["error"]["fields"]["scope"].is_string(), "{}", r.body);
    }
    let unknown = zero
        .post(
            &u,
            "/api/v1/sharing-policies",
            json!({"scope": "telemetrie", "granted": false, "policy_version": "1"}),
        )
        .await;
    assert_eq!(unknown.status.as_u16(), 422, "{}", unknown.body);
    let reason = unknown.body["error"]["fields"]["scope"].as_str().unwrap();
    for allowed in ["export", "model_training", "telemetry", "telemetry_export"] {
        assert!(reason.contains(allowed), "{reason}");
    }
    // Refusing consent is fine in zero-sync, under any spelling; it is stored normalised.
    let refused = zero
        .post(
            &u,
            "/api/v1/sharing-policies",
            json!({"scope": " Telemetry", "granted": false, "policy_version": "1"}),
        )
        .await
        .expect(201);
    assert_eq!(refused["scope"], "telemetry");
    let id = refused["id"].as_str().unwrap();
    zero.patch(
        &u,
        &format!("/api/v1/sharing-policies/{id}"),
        json!({"granted": true}),
    )
    .await
    .expect(422);

    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let granted = s
        .post(
            &u,
            "/api/v1/sharing-policies",
            json!({"scope": " TELEMETRY ", "granted": true, "policy_version": "1"}),
        )
        .await
        .expect(201);
    assert_eq!(granted["scope"], "telemetry");
    s.post(
        &u,
        "/api/v1/sharing-policies",
        json!({"scope": "telemetry", "granted": true, "policy_version": "2"}),
    )
    .await
    .expect(409);
    // Consent given under any spelling is the consent the export checks for.
    s.post(&u, "/api/v1/telemetry", json!({"name": "app.opened"}))
        .await
        .expect(201);
    s.call(
        Method::POST,
        "/api/v1/telemetry/export",
        Some(&u.token),
        None,
    )
    .await
    .expect(200);
}
