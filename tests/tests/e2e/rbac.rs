//! Permission sets on top of roles: allow or deny actions on a resource type or a single
//! resource, for a user or a role; deny wins. Enforced in the same SQL scope filter as
//! roles.

use ceneca_e2e::{Backend, TestServer, on_every_backend, world};
use serde_json::json;

on_every_backend!(
    role_rules_deny_actions_to_a_role,
    user_rules_share_and_deny,
    only_admins_manage_permission_sets,
    regression_an_organization_keeps_an_owner_through_demotions
);

async fn role_rules_deny_actions_to_a_role(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let editor = s.user("editor").await;
    let w = world(&s, &owner).await;
    s.post(
        &owner,
        &format!("/api/v1/workspaces/{}/members", w.workspace),
        json!({"user_id": editor.id, "role": "editor"}),
    )
    .await
    .expect(201);
    let rule = s
        .post(
            &owner,
            "/api/v1/permission-sets",
            json!({"workspace_id": w.workspace, "subject_type": "role", "subject_role": "editor", "resource_type": "documents", "actions": ["delete"], "effect": "deny"}),
        )
        .await
        .expect(201);
    s.delete(&editor, &format!("/api/v1/documents/{}", w.document))
        .await
        .expect(403);
    s.patch(
        &editor,
        &format!("/api/v1/documents/{}", w.document),
        json!({"body": "still editable"}),
    )
    .await
    .expect(200);
    let thread = s
        .post(
            &editor,
            "/api/v1/threads",
            json!({"workspace_id": w.workspace}),
        )
        .await
        .expect(201);
    s.delete(
        &editor,
        &format!("/api/v1/threads/{}", thread["id"].as_str().unwrap()),
    )
    .await
    .expect(200);
    // The rule binds editors only: the owner (an admin of the workspace) still deletes.
    // Removing the rule restores the role's rights.
    s.delete(
        &owner,
        &format!("/api/v1/permission-sets/{}", rule["id"].as_str().unwrap()),
    )
    .await
    .expect(204);
    s.delete(&editor, &format!("/api/v1/documents/{}", w.document))
        .await
        .expect(200);
}

async fn user_rules_share_and_deny(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let guest = s.user("guest").await;
    let viewer = s.user("viewer").await;
    let w = world(&s, &owner).await;
    // A guest without membership gets read access to the workspace's threads, nothing else.
    s.get(&guest, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(404);
    let share = s
        .post(
            &owner,
            "/api/v1/permission-sets",
            json!({"workspace_id": w.workspace, "subject_type": "user", "subject_user_id": guest.id, "resource_type": "threads", "actions": ["read"], "effect": "allow"}),
        )
        .await
        .expect(201);
    s.get(&guest, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    assert_eq!(
        s.list_all(
            &guest,
            &format!("/api/v1/threads?workspace_id={}", w.workspace)
        )
        .await
        .len(),
        1
    );
    s.get(&guest, &format!("/api/v1/documents/{}", w.document))
        .await
        .expect(404);
    s.get(&guest, &format!("/api/v1/messages/{}", w.message))
        .await
        .expect(404);
    s.patch(
        &guest,
        &format!("/api/v1/threads/{}", w.thread),
        json!({"title": "x"}),
    )
    .await
    .expect(403);
    // Deny wins over allow.
    s.post(
        &owner,
        "/api/v1/permission-sets",
        json!({"workspace_id": w.workspace, "subject_type": "user", "subject_user_id": guest.id, "resource_type": "*", "actions": ["read"], "effect": "deny"}),
    )
    .await
    .expect(201);
    s.get(&guest, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(404);
    s.delete(
        &owner,
        &format!("/api/v1/permission-sets/{}", share["id"].as_str().unwrap()),
    )
    .await
    .expect(204);

    // One document hidden from one member, the others still visible.
    s.post(
        &owner,
        &format!("/api/v1/workspaces/{}/members", w.workspace),
        json!({"user_id": viewer.id}),
    )
    .await
    .expect(201);
    let other = s
        .post(
            &owner,
            "/api/v1/documents",
            json!({"workspace_id": w.workspace, "title": "Open"}),
        )
        .await
        .expect(201);
    s.post(
        &owner,
        "/api/v1/permission-sets",
        json!({"workspace_id": w.workspace, "subject_type": "user", "subject_user_id": viewer.id, "resource_type": "documents", "resource_id": w.document, "actions": ["read"], "effect": "deny"}),
    )
    .await
    .expect(201);
    s.get(&viewer, &format!("/api/v1/documents/{}", w.document))
        .await
        .expect(404);
    s.get(
        &viewer,
        &format!("/api/v1/documents/{}", other["id"].as_str().unwrap()),
    )
    .await
    .expect(200);
    let listed = s
        .list_all(
            &viewer,
            &format!("/api/v1/documents?workspace_id={}", w.workspace),
        )
        .await;
    assert!(listed.iter().all(|d| d["id"] != json!(w.document)));
    let hidden = s.get(&viewer, "/api/v1/search?q=step").await.expect(200);
    assert_eq!(
        hidden["items"].as_array().unwrap().len(),
        0,
        "search honours the deny too"
    );
    let seen = s.get(&owner, "/api/v1/search?q=step").await.expect(200);
    assert_eq!(seen["items"].as_array().unwrap().len(), 1);
    s.get(&owner, &format!("/api/v1/documents/{}", w.document))
        .await
        .expect(200);
}

async fn only_admins_manage_permission_sets(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let editor = s.user("editor").await;
    let w = world(&s, &owner).await;
    s.post(
        &owner,
        &format!("/api/v1/workspaces/{}/members", w.workspace),
        json!({"user_id": editor.id, "role": "editor"}),
    )
    .await
    .expect(201);
    let attempt = s
        .post(
            &editor,
            "/api/v1/permission-sets",
            json!({"workspace_id": w.workspace, "subject_type": "user", "subject_user_id": editor.id, "resource_type": "*", "actions": ["admin"], "effect": "allow"}),
        )
        .await;
    assert!(
        matches!(attempt.status.as_u16(), 403 | 404),
        "{}",
        attempt.body
    );
    assert!(
        s.list_all(&editor, "/api/v1/permission-sets")
            .await
            .is_empty(),
        "editors do not even see them"
    );
}

/// From the attack on demotions: the sole owner could make themselves an administrator
/// (and then a member), leaving the organization without an owner; removing them was
/// already refused.
async fn regression_an_organization_keeps_an_owner_through_demotions(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let b = s.user("b").await;
    let w = world(&s, &a).await;
    let members = format!("/api/v1/organizations/{}/members", w.organization);
    let listed = s.get(&a, &members).await.expect(200);
    let mine = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == a.id.as_str())
        .expect("the creator's membership")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mine = format!("{members}/{mine}");
    for role in ["admin", "member", "viewer"] {
        let r = s.patch(&a, &mine, json!({"role": role})).await;
        assert_eq!(r.status.as_u16(), 409, "{role}: {}", r.body);
    }
    // Another owner first, then the first may step down.
    s.post(&a, &members, json!({"user_id": b.id, "role": "owner"}))
        .await
        .expect(201);
    s.patch(&a, &mine, json!({"role": "admin"}))
        .await
        .expect(200);
}
