//! Regressions of the security review's findings, one story per finding, on SQLite and
//! PostgreSQL. (The data-folder modes are checked on the real binary in
//! `crates/ceneca-cli/tests/cli.rs`.)

use base64::Engine;
use ceneca_domain::model;
use ceneca_domain::schema::{Input, Kind, Tenancy};
use ceneca_e2e::{Backend, Reply, TestServer, User, on_every_backend, samples, world};
use serde_json::{Value, json};

on_every_backend!(
    a_500_from_input_time_overflow_is_refused_in_every_time_parameter_and_field,
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
