//! Tenant isolation, for every resource: another tenant can neither read, list, change,
//! delete, restore nor reference what a user owns. The expected answer is always 404 (the
//! row does not exist for them) or an empty list — never the data.

use ceneca_e2e::{Backend, TEST_VECTOR_DIMS, TestServer, on_every_backend, samples, world};
use serde_json::json;

on_every_backend!(
    no_resource_crosses_tenants,
    no_reference_crosses_tenants,
    nested_routes_are_isolated
);

async fn no_resource_crosses_tenants(backend: Backend) {
    let s = TestServer::start(backend).await;
    let alice = s.user("alice").await;
    let mallory = s.user("mallory").await;
    let w = world(&s, &alice).await;
    world(&s, &mallory).await;
    let mut checked = 0;
    for sample in samples(&w) {
        let path = format!("/api/v1/{}", sample.path);
        let id = s.post(&alice, &path, sample.create.clone()).await.id();
        let item = format!("{path}/{id}");
        assert_eq!(
            s.get(&mallory, &item).await.status.as_u16(),
            404,
            "{item}: read"
        );
        assert_eq!(
            s.get(&mallory, &format!("{item}?deleted=include"))
                .await
                .status
                .as_u16(),
            404,
            "{item}: read deleted"
        );
        let listed = s.list_all(&mallory, &path).await;
        assert!(
            listed.iter().all(|i| i["id"] != json!(id)),
            "{path}: listed to another tenant"
        );
        let patch = sample.patch.clone().unwrap_or(json!({"name": "x"}));
        let status = s.patch(&mallory, &item, patch).await.status.as_u16();
        assert!(
            status == 404 || (sample.patch.is_none() && matches!(status, 405 | 422)),
            "{item}: patch gave {status}"
        );
        assert_eq!(
            s.delete(&mallory, &item).await.status.as_u16(),
            404,
            "{item}: delete"
        );
        if sample.soft_delete {
            s.delete(&alice, &item).await.expect(200);
            assert_eq!(
                s.post(&mallory, &format!("{item}/restore"), json!({}))
                    .await
                    .status
                    .as_u16(),
                404,
                "{item}: restore"
            );
            s.post(&alice, &format!("{item}/restore"), json!({}))
                .await
                .expect(200);
        }
        // Still there, unchanged, for its owner.
        s.get(&alice, &item).await.expect(200);
        checked += 1;
    }
    assert_eq!(checked, 17);
    for path in [
        "/api/v1/sync-events",
        "/api/v1/users",
        "/api/v1/invoices",
        "/api/v1/audit-log",
    ] {
        let items = s.list_all(&mallory, path).await;
        assert!(
            items.iter().all(|i| i.to_string().find(&alice.id).is_none()
                && i.to_string().find(&w.workspace).is_none()),
            "{path} leaks alice's data"
        );
    }
    s.get(&mallory, &format!("/api/v1/users/{}", alice.id))
        .await
        .expect(404);
}

async fn no_reference_crosses_tenants(backend: Backend) {
    let s = TestServer::start(backend).await;
    let alice = s.user("alice").await;
    let mallory = s.user("mallory").await;
    let a = world(&s, &alice).await;
    let m = world(&s, &mallory).await;
    // Creating inside another tenant's workspace or thread.
    s.post(
        &mallory,
        "/api/v1/threads",
        json!({"workspace_id": a.workspace}),
    )
    .await
    .expect(404);
    s.post(
        &mallory,
        &format!("/api/v1/threads/{}/messages", a.thread),
        json!({"role": "user", "content": "x"}),
    )
    .await
    .expect(404);
    s.post(
        &mallory,
        &format!("/api/v1/threads/{}/messages/batch", a.thread),
        json!({"items": [{"role": "user", "content": "x"}]}),
    )
    .await
    .expect(404);
    s.get(&mallory, &format!("/api/v1/threads/{}/messages", a.thread))
        .await
        .expect(404);
    s.post(
        &mallory,
        "/api/v1/orchestration-step-results",
        json!({"flow_id": a.flow, "run_id": uuid::Uuid::now_v7().to_string(), "step_key": "k"}),
    )
    .await
    .expect(404);
    s.post(
        &mallory,
        "/api/v1/workspaces",
        json!({"name": "x", "organization_id": a.organization}),
    )
    .await
    .expect(404);
    // Pointing one's own rows at another tenant's rows.
    let r = s
        .post(
            &mallory,
            "/api/v1/threads",
            json!({"workspace_id": m.workspace, "project_id": a.project}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    let r = s
        .post(
            &mallory,
            "/api/v1/attachments",
            json!({"workspace_id": m.workspace, "message_id": a.message, "file_name": "f"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422);
    let r = s
        .post(&mallory, "/api/v1/embeddings", json!({"collection": "messages", "source_id": a.message, "workspace_id": m.workspace, "model": "e", "dims": TEST_VECTOR_DIMS, "vector": vec![1.0; TEST_VECTOR_DIMS], "content_hash": ceneca_e2e::sha(4)}))
        .await;
    assert_eq!(r.status.as_u16(), 422);
    let r = s
        .patch(
            &mallory,
            &format!("/api/v1/documents/{}", m.document),
            json!({"project_id": a.project}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422);
    s.post(
        &mallory,
        "/api/v1/provider-configs",
        json!({"provider": "p", "name": "n", "workspace_id": a.workspace}),
    )
    .await
    .expect(404);
    s.post(
        &mallory,
        "/api/v1/provider-configs",
        json!({"provider": "p", "name": "n", "user_id": alice.id}),
    )
    .await
    .expect(404);
    s.post(&mallory, "/api/v1/permission-sets", json!({"organization_id": a.organization, "subject_type": "role", "subject_role": "admin", "resource_type": "*", "actions": ["admin"], "effect": "allow"})).await.expect(404);
    s.post(&mallory, "/api/v1/sharing-policies", json!({"organization_id": a.organization, "scope": "export", "granted": true, "policy_version": "1"})).await.expect(404);
    // Nothing of alice's changed.
    assert_eq!(
        s.list_all(&alice, &format!("/api/v1/threads/{}/messages", a.thread))
            .await
            .len(),
        2
    );
}

async fn nested_routes_are_isolated(backend: Backend) {
    let s = TestServer::start(backend).await;
    let alice = s.user("alice").await;
    let mallory = s.user("mallory").await;
    let a = world(&s, &alice).await;
    let m = world(&s, &mallory).await;
    let members = format!("/api/v1/organizations/{}/members", a.organization);
    s.get(&mallory, &members).await.expect(404);
    s.post(
        &mallory,
        &members,
        json!({"user_id": mallory.id, "role": "owner"}),
    )
    .await
    .expect(404);
    let alice_member = s.list_all(&alice, &members).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.get(&mallory, &format!("{members}/{alice_member}"))
        .await
        .expect(404);
    // A member id under the wrong parent is not found either.
    let own = format!(
        "/api/v1/organizations/{}/members/{alice_member}",
        m.organization
    );
    s.get(&mallory, &own).await.expect(404);
    s.delete(&mallory, &own).await.expect(404);
    s.post(
        &mallory,
        &format!("/api/v1/workspaces/{}/members", a.workspace),
        json!({"user_id": mallory.id, "role": "admin"}),
    )
    .await
    .expect(404);
}
