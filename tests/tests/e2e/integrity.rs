//! Suite 8 of the seed report: unique, foreign-key and required-field integrity. Every
//! refusal is a clear 4xx naming the field, and nothing is written.

use ceneca_e2e::{Backend, TEST_VECTOR_DIMS, TestServer, on_every_backend, world};
use reqwest::Method;
use serde_json::json;

on_every_backend!(
    unique_keys_answer_409_with_the_field,
    references_must_exist_and_be_visible,
    required_fields_are_named,
    edition_policy_refuses_external_references
);

async fn unique_keys_answer_409_with_the_field(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    // E-mail uniqueness is case-insensitive.
    let again = s
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(&json!({"email": u.email.to_uppercase(), "password": "another password"})),
        )
        .await;
    assert_eq!(again.status.as_u16(), 409);
    assert_eq!(again.body["error"]["fields"]["email"], "is already taken");

    let org = s
        .get(&u, &format!("/api/v1/organizations/{}", w.organization))
        .await
        .expect(200);
    let dup = s
        .post(
            &u,
            "/api/v1/organizations",
            json!({"name": "Other", "slug": org["slug"]}),
        )
        .await;
    assert_eq!(dup.status.as_u16(), 409);
    assert_eq!(dup.body["error"]["fields"]["slug"], "is already taken");

    s.post(
        &u,
        "/api/v1/settings",
        json!({"key": "lang", "value": "en"}),
    )
    .await
    .expect(201);
    assert_eq!(
        s.post(
            &u,
            "/api/v1/settings",
            json!({"key": "lang", "value": "fr"})
        )
        .await
        .status
        .as_u16(),
        409
    );
    // Another user may use the same key.
    let v = s.user("v").await;
    s.post(
        &v,
        "/api/v1/settings",
        json!({"key": "lang", "value": "de"}),
    )
    .await
    .expect(201);

    let other = s.user("o").await;
    let members = format!("/api/v1/workspaces/{}/members", w.workspace);
    s.post(&u, &members, json!({"user_id": other.id}))
        .await
        .expect(201);
    assert_eq!(
        s.post(&u, &members, json!({"user_id": other.id, "role": "editor"}))
            .await
            .status
            .as_u16(),
        409
    );

    s.post(
        &u,
        "/api/v1/sharing-policies",
        json!({"scope": "export", "granted": true, "policy_version": "1"}),
    )
    .await
    .expect(201);
    assert_eq!(
        s.post(
            &u,
            "/api/v1/sharing-policies",
            json!({"scope": "export", "granted": false, "policy_version": "2"})
        )
        .await
        .status
        .as_u16(),
        409
    );
}

async fn references_must_exist_and_be_visible(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let ghost = uuid::Uuid::now_v7().to_string();
    s.post(&u, "/api/v1/threads", json!({"workspace_id": ghost}))
        .await
        .expect(404);
    let r = s
        .post(
            &u,
            "/api/v1/threads",
            json!({"workspace_id": w.workspace, "project_id": ghost}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422);
    assert_eq!(
        r.body["error"]["fields"]["project_id"],
        "no project with this id exists"
    );
    let r = s
        .post(
            &u,
            &format!("/api/v1/threads/{}/messages", w.thread),
            json!({"role": "user", "content": "x", "parent_id": ghost}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422);
    s.post(
        &u,
        &format!("/api/v1/threads/{ghost}/messages"),
        json!({"role": "user", "content": "x"}),
    )
    .await
    .expect(404);
    // A reference into another workspace of the same user is refused too.
    let other_ws = s
        .post(&u, "/api/v1/workspaces", json!({"name": "Other"}))
        .await
        .expect(201);
    let r = s
        .post(
            &u,
            "/api/v1/documents",
            json!({"workspace_id": other_ws["id"], "title": "t", "project_id": w.project}),
        )
        .await;
    assert_eq!(
        r.body["error"]["fields"]["project_id"],
        "this project belongs to another workspace"
    );
    let r = s
        .patch(
            &u,
            &format!("/api/v1/threads/{}", w.thread),
            json!({"project_id": ghost}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422);
    // An embedding's source must be a row of its collection in its workspace.
    let r = s
        .post(&u, "/api/v1/embeddings", json!({"collection": "documents", "source_id": w.message, "workspace_id": w.workspace, "model": "e", "dims": TEST_VECTOR_DIMS, "vector": vec![1.0; TEST_VECTOR_DIMS], "content_hash": ceneca_e2e::sha(3)}))
        .await;
    assert_eq!(
        r.body["error"]["fields"]["source_id"],
        "no document with this id exists"
    );
    let r = s
        .post(&u, "/api/v1/embeddings", json!({"collection": "messages", "source_id": w.message, "workspace_id": w.workspace, "model": "e", "dims": TEST_VECTOR_DIMS, "vector": [1.0, 0.0], "content_hash": ceneca_e2e::sha(3)}))
        .await;
    assert_eq!(
        r.body["error"]["fields"]["vector"],
        format!("has 2 dimensions but dims is {TEST_VECTOR_DIMS}").as_str()
    );
    // Flow definitions must be runnable graphs.
    let r = s
        .post(&u, "/api/v1/orchestration-flows", json!({"workspace_id": w.workspace, "name": "f", "definition": {"steps": [{"key": "a", "provider": "p", "model": "m", "prompt_template": "", "depends_on": ["a"]}]}}))
        .await;
    assert_eq!(r.status.as_u16(), 422);
    assert!(
        r.body["error"]["fields"]["definition"]
            .as_str()
            .unwrap()
            .contains("cycle")
    );
}

async fn required_fields_are_named(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let r = s.post(&u, "/api/v1/documents", json!({})).await;
    assert_eq!(r.status.as_u16(), 422);
    assert_eq!(r.body["error"]["code"], "validation_failed");
    assert_eq!(r.body["error"]["fields"]["workspace_id"], "is required");
    assert_eq!(r.body["error"]["fields"]["title"], "is required");
    let r = s
        .post(
            &u,
            &format!("/api/v1/threads/{}/messages", w.thread),
            json!({"role": "user"}),
        )
        .await;
    assert_eq!(r.body["error"]["fields"]["content"], "is required");
    let r = s
        .post(
            &u,
            "/api/v1/documents",
            json!({"workspace_id": w.workspace, "title": null}),
        )
        .await;
    assert_eq!(r.body["error"]["fields"]["title"], "must not be null");
    let r = s
        .patch(
            &u,
            &format!("/api/v1/documents/{}", w.document),
            json!({"title": null}),
        )
        .await;
    assert_eq!(r.body["error"]["fields"]["title"], "must not be null");
    let r = s
        .post(
            &u,
            "/api/v1/provider-configs",
            json!({"provider": "x", "name": "n", "user_id": u.id, "workspace_id": w.workspace}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422);
    assert!(
        r.body["error"]["fields"]["owner"]
            .as_str()
            .unwrap()
            .starts_with("set only one of")
    );
    let r = s.post(&u, "/api/v1/permission-sets", json!({"workspace_id": w.workspace, "subject_type": "user", "resource_type": "threads", "actions": ["read"], "effect": "allow"})).await;
    assert_eq!(
        r.body["error"]["fields"]["subject_user_id"],
        "is required when subject_type is user"
    );
    // Documents count their versions.
    let d = s
        .patch(
            &u,
            &format!("/api/v1/documents/{}", w.document),
            json!({"body": "v2"}),
        )
        .await
        .expect(200);
    assert_eq!(d["version"], 2);
}

async fn edition_policy_refuses_external_references(backend: Backend) {
    let config = ceneca_service::ServiceConfig {
        edition: ceneca_domain::Edition::ZeroSync,
        ..Default::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let u = s.user("u").await;
    let r = s
        .post(
            &u,
            "/api/v1/provider-configs",
            json!({"provider": "openai", "name": "n", "base_url": "https://api.openai.com/v1"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422);
    assert!(
        r.body["error"]["fields"]["base_url"]
            .as_str()
            .unwrap()
            .contains("outside the network")
    );
    s.post(
        &u,
        "/api/v1/provider-configs",
        json!({"provider": "ollama", "name": "local", "base_url": "http://ollama.internal:11434"}),
    )
    .await
    .expect(201);
    let r = s
        .post(
            &u,
            "/api/v1/sharing-policies",
            json!({"scope": "telemetry", "granted": true, "policy_version": "1"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422);
}

mod consent {
    use ceneca_e2e::{Backend, TestServer, on_every_backend};
    use serde_json::json;

    on_every_backend!(telemetry_export_needs_consent);

    async fn telemetry_export_needs_consent(backend: Backend) {
        let s = TestServer::start(backend).await;
        let u = s.user("u").await;
        s.post(&u, "/api/v1/telemetry", json!({"name": "app.opened"}))
            .await
            .expect(201);
        let refused = s.post(&u, "/api/v1/telemetry/export", json!({})).await;
        assert_eq!(refused.status.as_u16(), 403);
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("consent")
        );
        let policy = s
            .post(
                &u,
                "/api/v1/sharing-policies",
                json!({"scope": "telemetry", "granted": true, "policy_version": "1"}),
            )
            .await
            .expect(201);
        assert!(policy["granted_at"].is_string());
        let exported = s
            .post(&u, "/api/v1/telemetry/export", json!({}))
            .await
            .expect(200);
        assert_eq!(exported["items"].as_array().unwrap().len(), 1);
        // Revoking consent stops it again.
        let revoked = s
            .patch(
                &u,
                &format!(
                    "/api/v1/sharing-policies/{}",
                    policy["id"].as_str().unwrap()
                ),
                json!({"granted": false}),
            )
            .await
            .expect(200);
        assert!(revoked["revoked_at"].is_string());
        s.post(&u, "/api/v1/telemetry/export", json!({}))
            .await
            .expect(403);
        // The zero-sync edition has no export at all.
        let zero = TestServer::start_with(
            backend,
            ceneca_service::ServiceConfig {
                edition: ceneca_domain::Edition::ZeroSync,
                ..Default::default()
            },
        )
        .await;
        let z = zero.user("z").await;
        let absent = zero.post(&z, "/api/v1/telemetry/export", json!({})).await;
        assert_eq!(absent.status, 404, "{}", absent.body);
        assert_eq!(absent.body["error"]["code"], "not_in_edition");
        assert!(
            absent.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("zero-sync")
        );
    }
}
