//! The authorization matrix generated from the route table (DESIGN.md §3 rule 8): every
//! route the server serves (`ceneca_server::handlers::v1::routes`, the same value the
//! router is built from) × every method × every kind of caller × an object of the
//! caller's own tenant and one of another tenant. A new route is covered the day it is
//! added. Another tenant's workspace also holds permission sets that name this tenant's
//! resources and users (planted in the database, as the API now refuses them).
//!
//! What must hold, cell by cell:
//! - no caller succeeds on another tenant's object, and no successful answer carries an id
//!   of another tenant's objects;
//! - an API token succeeds only on workspace content, only in its workspace; a device
//!   token never on the account (users, devices, tokens, MFA, password, consent, audit)
//!   nor on who has access (members, permission sets);
//! - anonymous and suspended callers succeed only on log-in and registration;
//! - and so that the matrix cannot pass by refusing everything: the owner's session reads
//!   every object of its own tenant, and its tokens read the workspace content.

use std::collections::HashMap;

use ceneca_e2e::{Backend, Reply, TestServer, User, World, on_every_backend, samples, world};
use reqwest::Method;
use serde_json::{Value, json};

on_every_backend!(every_route_every_credential_two_tenants);

/// Route prefixes that are workspace content: all an API token may succeed on.
const CONTENT: &[&str] = &[
    "/projects",
    "/documents",
    "/threads",
    "/messages",
    "/attachments",
    "/ai-interactions",
    "/orchestration-flows",
    "/orchestration-step-results",
    "/embeddings",
    "/search",
    "/vectors",
    "/auth/me",
    // The change feed: each credential's own reach (an API token, its workspace's content).
    "/sync/pull",
    "/sync/snapshot",
    "/sync/stream",
];

/// Routes anyone may call: the credential sent with them is not used.
const PUBLIC: &[&str] = &["/auth/login", "/auth/register"];

/// Route prefixes of the account: never for a device token.
const ACCOUNT: &[&str] = &[
    "/users",
    "/devices",
    "/api-tokens",
    "/auth/mfa",
    "/auth/password",
    "/sharing-policies",
    "/audit-log",
    // Exporting is consent-governed and account-level; recording events is not.
    "/telemetry/export",
    // Who has access: a stolen token must not grant anyone lasting access.
    "/permission-sets",
];

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

struct Tenant {
    owner: User,
    world: World,
    /// An object per route prefix ("documents" → id).
    objects: HashMap<String, String>,
    bodies: HashMap<String, (Value, Option<Value>)>,
    org_member: String,
    workspace_member: String,
}

impl Tenant {
    /// Every id of this tenant's objects, to look for in the other tenant's answers.
    fn ids(&self) -> Vec<String> {
        let w = &self.world;
        let mut ids: Vec<String> = self.objects.values().cloned().collect();
        ids.extend([
            w.workspace.clone(),
            w.org_workspace.clone(),
            w.organization.clone(),
            self.org_member.clone(),
            self.workspace_member.clone(),
            self.owner.id.clone(),
        ]);
        ids.sort();
        ids.dedup();
        ids
    }
}

async fn tenant(s: &TestServer, name: &str) -> Tenant {
    let owner = s.user(name).await;
    let w = world(s, &owner).await;
    let mut objects = HashMap::new();
    let mut bodies = HashMap::new();
    for sample in samples(&w) {
        let created = s
            .post(
                &owner,
                &format!("/api/v1/{}", sample.path),
                sample.create.clone(),
            )
            .await;
        if created.status.as_u16() == 201 {
            objects.insert(sample.path.to_owned(), created.id());
        }
        bodies.insert(sample.path.to_owned(), (sample.create, sample.patch));
    }
    for (path, id) in [
        ("workspaces", &w.workspace),
        ("organizations", &w.organization),
        ("projects", &w.project),
        ("threads", &w.thread),
        ("messages", &w.message),
        ("documents", &w.document),
        ("orchestration-flows", &w.flow),
        ("users", &owner.id),
    ] {
        objects.insert(path.to_owned(), id.clone());
    }
    let token = s
        .post(
            &owner,
            "/api/v1/api-tokens",
            json!({"name": "matrix", "workspace_id": w.workspace}),
        )
        .await
        .expect(201);
    objects.insert(
        "api-tokens".into(),
        token["id"].as_str().unwrap().to_owned(),
    );
    let point = s
        .post(
            &owner,
            "/api/v1/vectors/messages/points?wait=true",
            json!({"source_id": w.message, "workspace_id": w.workspace, "vector": vector()}),
        )
        .await
        .expect(200);
    objects.insert(
        "vectors".into(),
        point["ids"][0].as_str().unwrap().to_owned(),
    );
    // A member of the organization and its workspace, whose rows the member routes name.
    let helper = s.user(&format!("{name}-member")).await;
    let org_member = s
        .post(
            &owner,
            &format!("/api/v1/organizations/{}/members", w.organization),
            json!({"user_id": helper.id, "role": "member"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let workspace_member = s
        .post(
            &owner,
            &format!("/api/v1/workspaces/{}/members", w.org_workspace),
            json!({"user_id": helper.id, "role": "viewer"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Tenant {
        owner,
        world: w,
        objects,
        bodies,
        org_member,
        workspace_member,
    }
}

fn vector() -> Value {
    json!([0.5, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2])
}

/// The route template with the tenant's objects in its placeholders, and the body the
/// method sends (aimed at that tenant).
fn request(template: &str, method: &Method, t: &Tenant) -> (String, Option<Value>) {
    let w = &t.world;
    let segments: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let root = segments[0];
    let parent = match (root, segments.get(2)) {
        ("workspaces", Some(&"members")) => w.org_workspace.clone(),
        _ => t
            .objects
            .get(root)
            .cloned()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
    };
    let child = match root {
        "organizations" => t.org_member.clone(),
        "workspaces" => t.workspace_member.clone(),
        _ => t.objects["vectors"].clone(),
    };
    let mut path = template
        .replace("{collection}", "messages")
        .replace("{child}", &child);
    if root == "vectors" {
        path = path.replace("{id}", &t.objects["vectors"]);
    }
    path = path.replace("{id}", &parent);
    let collection = segments.len() == 1;
    let body = match (method.as_str(), template) {
        ("GET" | "DELETE", _) => None,
        (_, "/auth/login") => Some(json!({"email": t.owner.email, "password": "wrong password"})),
        (_, "/auth/register") => Some(
            json!({"email": format!("new-{}@example.com", uuid::Uuid::now_v7().simple()), "password": "correct horse battery"}),
        ),
        (_, "/auth/password") => Some(
            json!({"current_password": "wrong guess", "new_password": "another horse battery"}),
        ),
        (_, "/auth/mfa/confirm") => Some(json!({"code": "000000"})),
        (_, "/auth/mfa/disable") => Some(json!({"mfa_code": "000000"})),
        (_, "/api-tokens") => Some(json!({"name": "n", "workspace_id": w.workspace})),
        (_, "/search/hybrid") => {
            Some(json!({"q": "launch", "vector": vector(), "workspace_id": w.workspace}))
        }
        (_, "/vectors/{collection}/search") => {
            Some(json!({"vector": vector(), "workspace_id": w.workspace}))
        }
        (_, "/vectors/{collection}/points") => {
            Some(json!({"source_id": w.message, "workspace_id": w.workspace, "vector": vector()}))
        }
        (_, "/vectors/{collection}/points/batch") => Some(
            json!({"points": [{"source_id": w.message, "workspace_id": w.workspace, "vector": vector()}]}),
        ),
        (_, "/threads/{id}/messages") => Some(json!({"role": "user", "content": "hello"})),
        (_, "/threads/{id}/messages/batch") => {
            Some(json!({"items": [{"role": "user", "content": "hello"}]}))
        }
        (_, t_) if t_.ends_with("/members") => {
            Some(json!({"user_id": t.owner.id, "role": "viewer"}))
        }
        (_, t_) if t_.ends_with("/{child}") => Some(json!({"role": "viewer"})),
        ("POST", _) if collection => t.bodies.get(root).map(|(create, _)| create.clone()),
        ("PATCH", _) => t
            .bodies
            .get(root)
            .and_then(|(_, patch)| patch.clone())
            .or(Some(json!({"name": "renamed"}))),
        _ => None,
    };
    if template == "/search" {
        path = format!("{path}?q=launch");
    }
    (format!("/api/v1{path}"), body)
}

/// Whether the request names the tenant's objects at all (a list without filters names
/// none: what it may return is checked by the leak rule instead).
fn names_objects(template: &str, method: &Method) -> bool {
    template.contains("{id}")
        || template.contains("{child}")
        || (*method != Method::GET
            && !template.starts_with("/auth")
            && template != "/telemetry/export")
}

struct Caller {
    name: &'static str,
    token: Option<String>,
    /// The tenant whose objects are its own: 0 (A) or 1 (B); `None`: nobody's.
    tenant: Option<usize>,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Session,
    /// Limited to A's personal workspace (where A's objects are).
    ApiToken,
    /// Limited to A's organization workspace: A's objects are in another workspace.
    ApiTokenOtherWorkspace,
    Device,
    Anonymous,
    Suspended,
}

struct Cell {
    caller: &'static str,
    kind: Kind,
    method: Method,
    template: String,
    target: usize,
    status: u16,
}

async fn every_route_every_credential_two_tenants(backend: Backend) {
    let mut http = ceneca_server::HttpConfig::default();
    http.rate.per_ip_per_minute = 1_000_000;
    http.rate.per_account_per_minute = 1_000_000;
    http.rate.logins_per_ip_per_minute = 1_000_000;
    http.rate.registrations_per_ip_per_hour = 1_000_000;
    let s = TestServer::start_full(backend, Default::default(), http).await;
    let tenants = [tenant(&s, "alice").await, tenant(&s, "bob").await];
    let (a, b) = (&tenants[0], &tenants[1]);

    // A's organization: an admin, an editor, a viewer and a member later suspended.
    let org_admin = s.user("orgadmin").await;
    let editor = s.user("editor").await;
    let viewer = s.user("viewer").await;
    let suspended = s.user("suspended").await;
    let org_members = format!("/api/v1/organizations/{}/members", a.world.organization);
    let ws_members = format!("/api/v1/workspaces/{}/members", a.world.org_workspace);
    for (u, org_role, ws_role) in [
        (&org_admin, "admin", None),
        (&editor, "member", Some("editor")),
        (&viewer, "viewer", Some("viewer")),
        (&suspended, "member", Some("editor")),
    ] {
        s.post(
            &a.owner,
            &org_members,
            json!({"user_id": u.id, "role": org_role}),
        )
        .await
        .expect(201);
        if let Some(role) = ws_role {
            s.post(
                &a.owner,
                &ws_members,
                json!({"user_id": u.id, "role": role}),
            )
            .await
            .expect(201);
        }
    }
    let sysadmin = s.admin().await;
    s.patch(
        &sysadmin,
        &format!("/api/v1/users/{}", suspended.id),
        json!({"status": "suspended"}),
    )
    .await
    .expect(200);

    // B's workspace holds rules that name A's resources and users.
    let plant = |subject: &str, kind: &str, resource: &str, effect: &str| {
        let (now, actions) = match backend {
            Backend::Sqlite => ("'2026-01-01T00:00:00.000000Z'", "'[\"admin\"]'"),
            Backend::Postgres => ("now()", "'[\"admin\"]'::jsonb"),
        };
        format!(
            "INSERT INTO permission_sets (id, created_at, updated_at, workspace_id, subject_type,
             subject_user_id, resource_type, resource_id, actions, effect)
             VALUES ('{}', {now}, {now}, '{}', 'user', '{subject}', '{kind}', '{resource}', {actions}, '{effect}')",
            uuid::Uuid::now_v7(),
            b.world.workspace
        )
    };
    // The ids B's own rules hold: B may of course read its rules back.
    let planted: [Vec<String>; 2] = [
        Vec::new(),
        vec![
            a.world.document.clone(),
            a.world.message.clone(),
            a.world.thread.clone(),
            a.world.project.clone(),
            a.owner.id.clone(),
        ],
    ];
    for (kind, resource) in [
        ("documents", &a.world.document),
        ("messages", &a.world.message),
        ("threads", &a.world.thread),
        ("*", &a.world.project),
    ] {
        s.raw_execute(&plant(&b.owner.id, kind, resource, "allow"))
            .await;
        s.raw_execute(&plant(&a.owner.id, kind, resource, "deny"))
            .await;
    }

    // A's tokens: one for the workspace holding A's objects, one for another workspace,
    // and a device's.
    let api_token = |ws: &str| {
        let ws = ws.to_owned();
        let s = &s;
        let owner = &a.owner;
        async move {
            s.post(
                owner,
                "/api/v1/api-tokens",
                json!({"name": "t", "workspace_id": ws}),
            )
            .await
            .expect(201)["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let token_here = api_token(&a.world.workspace).await;
    let token_elsewhere = api_token(&a.world.org_workspace).await;
    let device = s
        .post(
            &a.owner,
            "/api/v1/devices",
            json!({"name": "laptop", "platform": "desktop"}),
        )
        .await
        .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let callers = [
        Caller {
            name: "owner",
            token: Some(a.owner.token.clone()),
            tenant: Some(0),
            kind: Kind::Session,
        },
        Caller {
            name: "org_admin",
            token: Some(org_admin.token.clone()),
            tenant: Some(0),
            kind: Kind::Session,
        },
        Caller {
            name: "editor",
            token: Some(editor.token.clone()),
            tenant: Some(0),
            kind: Kind::Session,
        },
        Caller {
            name: "viewer",
            token: Some(viewer.token.clone()),
            tenant: Some(0),
            kind: Kind::Session,
        },
        Caller {
            name: "outsider",
            token: Some(b.owner.token.clone()),
            tenant: Some(1),
            kind: Kind::Session,
        },
        Caller {
            name: "anonymous",
            token: None,
            tenant: None,
            kind: Kind::Anonymous,
        },
        Caller {
            name: "suspended",
            token: Some(suspended.token.clone()),
            tenant: Some(0),
            kind: Kind::Suspended,
        },
        Caller {
            name: "api_token",
            token: Some(token_here),
            tenant: Some(0),
            kind: Kind::ApiToken,
        },
        Caller {
            name: "api_token_other_ws",
            token: Some(token_elsewhere),
            tenant: Some(0),
            kind: Kind::ApiTokenOtherWorkspace,
        },
        Caller {
            name: "device_token",
            token: Some(device),
            tenant: Some(0),
            kind: Kind::Device,
        },
    ];

    let routes = ceneca_server::handlers::v1::routes(64 * 1024 * 1024).paths;
    assert!(routes.len() > 50, "the route table: {routes:?}");
    // Logging out would end the callers' sessions mid-matrix, and the change stream never
    // ends on its own; their own tests cover them (`auth.rs`, `sync.rs`).
    let routes: Vec<String> = routes
        .into_iter()
        .filter(|r| r != "/auth/logout" && r != "/sync/stream")
        .collect();
    let mut cells: Vec<Cell> = Vec::new();
    let mut leaks: Vec<String> = Vec::new();
    // Deletions last, so every other cell meets live objects; the owner deletes last.
    for deleting in [false, true] {
        for template in &routes {
            for method in METHODS
                .iter()
                .filter(|m| (**m == Method::DELETE) == deleting)
            {
                for target in [1usize, 0] {
                    let order: Vec<&Caller> = if deleting {
                        callers
                            .iter()
                            .filter(|c| c.name != "owner")
                            .chain(callers.iter().filter(|c| c.name == "owner"))
                            .collect()
                    } else {
                        callers.iter().collect()
                    };
                    for caller in order {
                        let (path, body) = request(template, method, &tenants[target]);
                        let reply: Reply = s
                            .call(
                                method.clone(),
                                &path,
                                caller.token.as_deref(),
                                body.as_ref(),
                            )
                            .await;
                        let status = reply.status.as_u16();
                        if status == 405 {
                            continue;
                        }
                        if (200..300).contains(&status)
                            && let Some(mine) = caller.tenant
                        {
                            let text = reply.body.to_string();
                            let body_text = body.as_ref().map(Value::to_string).unwrap_or_default();
                            for id in tenants[1 - mine].ids() {
                                if text.contains(&id)
                                    && !body_text.contains(&id)
                                    && !path.contains(&id)
                                    && !planted[mine].contains(&id)
                                {
                                    leaks.push(format!("{} {method} {path}: {id}", caller.name));
                                }
                            }
                        }
                        cells.push(Cell {
                            caller: caller.name,
                            kind: caller.kind,
                            method: method.clone(),
                            template: template.clone(),
                            target,
                            status,
                        });
                    }
                }
            }
        }
    }

    let ok = |c: &&Cell| (200..300).contains(&c.status);
    let starts = |c: &Cell, prefixes: &[&str]| prefixes.iter().any(|p| c.template.starts_with(p));
    let catalogue = |c: &Cell| c.template.starts_with("/plans");
    let failures = |name: &str, found: Vec<&Cell>| {
        let lines: Vec<String> = found
            .iter()
            .map(|c| {
                format!(
                    "{} {} {} (tenant {}) -> {}",
                    c.caller, c.method, c.template, c.target, c.status
                )
            })
            .collect();
        assert!(lines.is_empty(), "{name}:\n{}", lines.join("\n"));
    };
    let tenant_of = |c: &Cell| {
        callers
            .iter()
            .find(|k| k.name == c.caller)
            .and_then(|k| k.tenant)
    };

    failures(
        "cross-tenant successes",
        cells
            .iter()
            .filter(ok)
            .filter(|c| tenant_of(c).is_some_and(|t| t != c.target))
            .filter(|c| names_objects(&c.template, &c.method) && !catalogue(c))
            // Creating one's own account-level rows (devices, organizations, settings) from
            // a body that names nobody is not another tenant's data.
            .filter(|c| {
                let (_, body) = request(&c.template, &c.method, &tenants[c.target]);
                c.template.contains('{')
                    || body.is_some_and(|b| {
                        let b = b.to_string();
                        tenants[c.target].ids().iter().any(|id| b.contains(id))
                    })
            })
            .collect(),
    );
    assert!(
        leaks.is_empty(),
        "answers carrying another tenant's ids:\n{}",
        leaks.join("\n")
    );
    failures(
        "API-token successes beyond workspace content",
        cells
            .iter()
            .filter(ok)
            .filter(|c| matches!(c.kind, Kind::ApiToken | Kind::ApiTokenOtherWorkspace))
            .filter(|c| !starts(c, CONTENT) && !starts(c, PUBLIC))
            .collect(),
    );
    failures(
        "API-token successes on objects of another workspace",
        cells
            .iter()
            .filter(ok)
            .filter(|c| c.kind == Kind::ApiTokenOtherWorkspace)
            .filter(|c| names_objects(&c.template, &c.method))
            .collect(),
    );
    failures(
        "device-token successes on the account",
        cells
            .iter()
            .filter(ok)
            .filter(|c| {
                c.kind == Kind::Device && (starts(c, ACCOUNT) || c.template.contains("/members"))
            })
            .collect(),
    );
    failures(
        "anonymous or suspended successes",
        cells
            .iter()
            .filter(ok)
            .filter(|c| matches!(c.kind, Kind::Anonymous | Kind::Suspended))
            .filter(|c| !matches!(c.template.as_str(), "/auth/login" | "/auth/register"))
            .collect(),
    );

    // The matrix is not passing by refusing everything.
    let reads = |kind: Kind| {
        cells
            .iter()
            .filter(|c| c.kind == kind && c.target == 0 && c.method == Method::GET)
            .filter(|c| c.template.ends_with("/{id}") && (200..300).contains(&c.status))
            .map(|c| c.template.clone())
            .collect::<Vec<_>>()
    };
    let owner_reads = reads(Kind::Session)
        .into_iter()
        .filter(|t| !t.is_empty())
        .count();
    for must in [
        "/documents/{id}",
        "/threads/{id}",
        "/messages/{id}",
        "/projects/{id}",
        "/workspaces/{id}",
        "/organizations/{id}",
        "/devices/{id}",
        "/provider-configs/{id}",
        "/users/{id}",
    ] {
        assert!(
            cells.iter().any(|c| c.caller == "owner"
                && c.target == 0
                && c.method == Method::GET
                && c.template == must
                && c.status == 200),
            "the owner reads {must}"
        );
    }
    assert!(
        owner_reads >= 15,
        "the owner's session reads its objects: {owner_reads}"
    );
    let token_reads = reads(Kind::ApiToken);
    for must in [
        "/documents/{id}",
        "/threads/{id}",
        "/messages/{id}",
        "/projects/{id}",
    ] {
        assert!(
            token_reads.iter().any(|t| t == must),
            "the API token reads {must}: {token_reads:?}"
        );
    }
    let device_reads = reads(Kind::Device);
    for must in ["/documents/{id}", "/threads/{id}", "/workspaces/{id}"] {
        assert!(
            device_reads.iter().any(|t| t == must),
            "the device token reads {must}: {device_reads:?}"
        );
    }
    // The planted deny rules in B's workspace took nothing from A's owner.
    assert!(cells.iter().any(|c| c.caller == "owner"
        && c.target == 0
        && c.method == Method::PATCH
        && c.template == "/threads/{id}"
        && c.status == 200));
    println!(
        "route matrix: {} routes, {} cells answered (405s skipped), {} successes",
        routes.len(),
        cells.len(),
        cells.iter().filter(ok).count()
    );
}
