//! The authorization matrix: endpoints × (owner, organization admin, member, viewer,
//! outsider of another organization, anonymous, suspended) → expected status. No outsider
//! request may succeed.

use ceneca_e2e::{Backend, Reply, TestServer, User, on_every_backend, world};
use reqwest::Method;
use serde_json::{Value, json};

on_every_backend!(every_endpoint_answers_each_role_as_expected);

const ROLES: [&str; 7] = [
    "owner",
    "org_admin",
    "member",
    "viewer",
    "outsider",
    "anonymous",
    "suspended",
];

async fn call(
    s: &TestServer,
    who: Option<&User>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    s.call(method, path, who.map(|u| u.token.as_str()), body.as_ref())
        .await
}

async fn every_endpoint_answers_each_role_as_expected(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let org_admin = s.user("orgadmin").await;
    let member = s.user("member").await;
    let viewer = s.user("viewer").await;
    let outsider = s.user("outsider").await;
    let suspended = s.user("suspended").await;
    let sysadmin = s.admin().await;
    let w = world(&s, &owner).await;
    world(&s, &outsider).await;
    let (org, ws) = (w.organization.clone(), w.org_workspace.clone());
    let org_members = format!("/api/v1/organizations/{org}/members");
    let ws_members = format!("/api/v1/workspaces/{ws}/members");
    s.post(
        &owner,
        &org_members,
        json!({"user_id": org_admin.id, "role": "admin"}),
    )
    .await
    .expect(201);
    s.post(
        &owner,
        &org_members,
        json!({"user_id": member.id, "role": "member"}),
    )
    .await
    .expect(201);
    s.post(
        &owner,
        &org_members,
        json!({"user_id": viewer.id, "role": "viewer"}),
    )
    .await
    .expect(201);
    s.post(
        &owner,
        &ws_members,
        json!({"user_id": member.id, "role": "editor"}),
    )
    .await
    .expect(201);
    s.post(
        &owner,
        &ws_members,
        json!({"user_id": viewer.id, "role": "viewer"}),
    )
    .await
    .expect(201);
    s.post(
        &owner,
        &ws_members,
        json!({"user_id": suspended.id, "role": "editor"}),
    )
    .await
    .expect(201);
    s.patch(
        &sysadmin,
        &format!("/api/v1/users/{}", suspended.id),
        json!({"status": "suspended"}),
    )
    .await
    .expect(200);
    let thread = s
        .post(
            &owner,
            "/api/v1/threads",
            json!({"workspace_id": ws, "title": "t"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let users = [
        Some(&owner),
        Some(&org_admin),
        Some(&member),
        Some(&viewer),
        Some(&outsider),
        None,
        Some(&suspended),
    ];
    let mut table: Vec<(&str, Vec<u16>)> = Vec::new();
    let check = |table: &mut Vec<(&'static str, Vec<u16>)>,
                 name: &'static str,
                 statuses: Vec<u16>,
                 expected: [u16; 7]| {
        assert_eq!(
            statuses,
            expected.to_vec(),
            "{name}: statuses for {ROLES:?}"
        );
        table.push((name, statuses));
    };

    let statuses = row(&users, async |u| {
        call(
            &s,
            u,
            Method::GET,
            &format!("/api/v1/threads/{thread}"),
            None,
        )
        .await
        .status
        .as_u16()
    })
    .await;
    check(
        &mut table,
        "GET thread",
        statuses,
        [200, 200, 200, 200, 404, 401, 401],
    );

    let statuses = row(&users, async |u| {
        call(
            &s,
            u,
            Method::POST,
            "/api/v1/threads",
            Some(json!({"workspace_id": ws})),
        )
        .await
        .status
        .as_u16()
    })
    .await;
    check(
        &mut table,
        "POST thread",
        statuses,
        [201, 201, 201, 403, 404, 401, 401],
    );

    let statuses = row(&users, async |u| {
        call(
            &s,
            u,
            Method::PATCH,
            &format!("/api/v1/threads/{thread}"),
            Some(json!({"pinned": true})),
        )
        .await
        .status
        .as_u16()
    })
    .await;
    check(
        &mut table,
        "PATCH thread",
        statuses,
        [200, 200, 200, 403, 404, 401, 401],
    );

    let statuses = row(&users, async |u| {
        let doc = s
            .post(
                &owner,
                "/api/v1/documents",
                json!({"workspace_id": ws, "title": "d"}),
            )
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        call(
            &s,
            u,
            Method::DELETE,
            &format!("/api/v1/documents/{doc}"),
            None,
        )
        .await
        .status
        .as_u16()
    })
    .await;
    check(
        &mut table,
        "DELETE document",
        statuses,
        [200, 200, 200, 403, 404, 401, 401],
    );

    let statuses = row(&users, async |u| {
        let newcomer = s.user("newcomer").await;
        call(
            &s,
            u,
            Method::POST,
            &ws_members,
            Some(json!({"user_id": newcomer.id})),
        )
        .await
        .status
        .as_u16()
    })
    .await;
    check(
        &mut table,
        "POST workspace member",
        statuses,
        [201, 201, 403, 403, 404, 401, 401],
    );

    let statuses = row(&users, async |u| {
        call(&s, u, Method::GET, &org_members, None)
            .await
            .status
            .as_u16()
    })
    .await;
    check(
        &mut table,
        "GET organization members",
        statuses,
        [200, 200, 200, 200, 404, 401, 401],
    );

    let statuses = row(&users, async |u| {
        call(
            &s,
            u,
            Method::PATCH,
            &format!("/api/v1/organizations/{org}"),
            Some(json!({"name": "Renamed"})),
        )
        .await
        .status
        .as_u16()
    })
    .await;
    check(
        &mut table,
        "PATCH organization",
        statuses,
        [200, 200, 403, 403, 404, 401, 401],
    );

    let statuses = row(&users, async |u| {
        call(
            &s,
            u,
            Method::PATCH,
            &format!("/api/v1/workspaces/{ws}"),
            Some(json!({"description": "x"})),
        )
        .await
        .status
        .as_u16()
    })
    .await;
    check(
        &mut table,
        "PATCH workspace",
        statuses,
        [200, 200, 403, 403, 404, 401, 401],
    );

    let statuses = row(&users, async |u| {
        let plan = json!({"name": format!("p{}", uuid::Uuid::now_v7()), "price_micros": 1, "interval": "month"});
        call(&s, u, Method::POST, "/api/v1/plans", Some(plan)).await.status.as_u16()
    })
    .await;
    check(
        &mut table,
        "POST plan (system admins only)",
        statuses,
        [403, 403, 403, 403, 403, 401, 401],
    );

    let statuses = row(&users, async |u| {
        let r = call(&s, u, Method::GET, "/api/v1/audit-log", None).await;
        if r.status.as_u16() == 200 {
            assert!(
                r.body["items"].as_array().unwrap().is_empty(),
                "the audit trail is for system administrators"
            );
        }
        r.status.as_u16()
    })
    .await;
    // The outsider's 200 here is an empty list, not data.
    check(
        &mut table,
        "GET audit log (empty unless system admin)",
        statuses,
        [200, 200, 200, 200, 200, 401, 401],
    );

    // In this row the owner goes last (the deletion succeeds).
    let order = [
        Some(&org_admin),
        Some(&member),
        Some(&viewer),
        Some(&outsider),
        None,
        Some(&suspended),
        Some(&owner),
    ];
    let statuses = row(&order, async |u| {
        call(
            &s,
            u,
            Method::DELETE,
            &format!("/api/v1/organizations/{org}"),
            None,
        )
        .await
        .status
        .as_u16()
    })
    .await;
    assert_eq!(
        statuses,
        vec![403, 403, 403, 404, 401, 401, 200],
        "DELETE organization"
    );

    // No request of the outsider succeeded on another tenant's data.
    let cross_tenant_successes = table
        .iter()
        .filter(|(name, st)| (200..300).contains(&st[4]) && !name.starts_with("GET audit log"))
        .count();
    assert_eq!(cross_tenant_successes, 0);
    assert_eq!(table.len(), 10);
}

/// Sends one request per caller, in order; returns the statuses.
async fn row<'u>(
    users: &[Option<&'u User>],
    mut send: impl AsyncFnMut(Option<&'u User>) -> u16,
) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(users.len());
    for u in users {
        statuses.push(send(*u).await);
    }
    statuses
}
