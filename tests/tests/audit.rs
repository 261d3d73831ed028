//! The audit trail: what is recorded, who may read it, and that tampering is detected.

use ceneca_e2e::{Backend, TestServer, on_every_backend, world};
use reqwest::Method;
use serde_json::{Value, json};

on_every_backend!(
    auth_events_and_writes_are_audited,
    tampering_is_detected,
    the_chain_holds_under_concurrent_writers,
    reads_are_audited_at_enhanced_level
);

async fn entries(s: &TestServer, admin: &ceneca_e2e::User, query: &str) -> Vec<Value> {
    s.list_all(admin, &format!("/api/v1/audit-log?{query}"))
        .await
}

async fn auth_events_and_writes_are_audited(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin().await;
    let u = s.user("u").await;
    let viewer = s.user("viewer").await;
    let registered = entries(
        &s,
        &admin,
        &format!("action=auth.register&actor_id={}", u.id),
    )
    .await;
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0]["source_ip"], "127.0.0.1");
    s.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(&json!({"email": u.email, "password": "wrong password"})),
    )
    .await
    .expect(401);
    let failures = entries(&s, &admin, "action=auth.login&outcome=failure").await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["details"]["email"], json!(u.email));

    let w = world(&s, &u).await;
    let created = entries(
        &s,
        &admin,
        &format!("action=threads.create&resource_id={}", w.thread),
    )
    .await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["actor_id"], json!(u.id));
    assert_eq!(created[0]["outcome"], "success");
    s.patch(
        &u,
        &format!("/api/v1/threads/{}", w.thread),
        json!({"title": "x"}),
    )
    .await
    .expect(200);
    let updated = entries(
        &s,
        &admin,
        &format!("action=threads.update&resource_id={}", w.thread),
    )
    .await;
    assert_eq!(updated[0]["details"]["fields"], json!(["title"]));
    let batch = entries(&s, &admin, "action=messages.create_many").await;
    assert_eq!(batch[0]["details"]["count"], 2);

    // A refused write is recorded as denied.
    s.post(
        &u,
        &format!("/api/v1/workspaces/{}/members", w.workspace),
        json!({"user_id": viewer.id}),
    )
    .await
    .expect(201);
    s.delete(&viewer, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(403);
    let denied = entries(
        &s,
        &admin,
        &format!(
            "action=threads.delete&outcome=denied&actor_id={}",
            viewer.id
        ),
    )
    .await;
    assert_eq!(denied.len(), 1);

    // Only system administrators read the trail.
    assert!(s.list_all(&u, "/api/v1/audit-log").await.is_empty());
    s.get(
        &u,
        &format!("/api/v1/audit-log/{}", created[0]["id"].as_str().unwrap()),
    )
    .await
    .expect(404);
    s.get(&u, "/api/v1/audit-log/export").await.expect(404);
    s.post(&u, "/api/v1/auth/logout", json!({}))
        .await
        .expect(204);
    assert_eq!(
        entries(&s, &admin, &format!("action=auth.logout&actor_id={}", u.id))
            .await
            .len(),
        1
    );

    // The export is JSON lines, in chain order, and the chain verifies.
    let res = s
        .http
        .get(format!("{}/api/v1/audit-log/export", s.base))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 10);
    assert!(
        lines.windows(2).all(|p| p[1]["prev_hash"] == p[0]["hash"]),
        "linked in sequence order"
    );
    let filtered = s
        .http
        .get(format!(
            "{}/api/v1/audit-log/export?action=auth.logout",
            s.base
        ))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(filtered.lines().count(), 1);
    let report = s.services.verify_audit_chain().await.unwrap();
    assert_eq!(report.broken, None);
    assert!(report.checked as usize >= lines.len());
}

async fn tampering_is_detected(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    world(&s, &u).await;
    let intact = s.services.verify_audit_chain().await.unwrap();
    assert_eq!(intact.broken, None);
    assert!(intact.checked >= 8, "{intact:?}");

    // Altering an entry breaks its own hash.
    s.raw_execute("UPDATE audit_log SET outcome = 'failure' WHERE sequence = 3")
        .await;
    let report = s.services.verify_audit_chain().await.unwrap();
    let broken = report.broken.expect("alteration detected");
    assert_eq!(broken.sequence, 3);
    assert!(broken.reason.contains("altered"));
    assert_eq!(report.checked, 2);
    s.raw_execute("UPDATE audit_log SET outcome = 'success' WHERE sequence = 3")
        .await;
    assert_eq!(
        s.services.verify_audit_chain().await.unwrap().broken,
        None,
        "restored content verifies again"
    );

    // Deleting one breaks the link of the next.
    s.raw_execute("DELETE FROM audit_log WHERE sequence = 5")
        .await;
    let broken = s
        .services
        .verify_audit_chain()
        .await
        .unwrap()
        .broken
        .expect("deletion detected");
    assert_eq!(broken.sequence, 6);
    assert!(broken.reason.contains("deleted"));
}

async fn the_chain_holds_under_concurrent_writers(backend: Backend) {
    let s = std::sync::Arc::new(TestServer::start(backend).await);
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (s, u, ws) = (s.clone(), u.clone(), w.workspace.clone());
        tasks.push(tokio::spawn(async move {
            s.post(
                &u,
                "/api/v1/threads",
                json!({"workspace_id": ws, "title": format!("t{i}")}),
            )
            .await
            .expect(201);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = s.services.verify_audit_chain().await.unwrap();
    assert_eq!(report.broken, None);
    assert!(report.checked >= 24);
}

async fn reads_are_audited_at_enhanced_level(backend: Backend) {
    let config = ceneca_service::ServiceConfig {
        audit_level: ceneca_domain::audit::AuditLevel::Maximum,
        ..Default::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let admin = s.admin().await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    s.get(&u, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    s.get(
        &u,
        &format!("/api/v1/threads/{}/messages?role=user", w.thread),
    )
    .await
    .expect(200);
    let reads = entries(
        &s,
        &admin,
        &format!("action=threads.read&resource_id={}", w.thread),
    )
    .await;
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0]["data_sources"], json!(["threads"]));
    assert_eq!(reads[0]["query_hash"].as_str().map(str::len), Some(64));
    let lists = entries(&s, &admin, "action=messages.list").await;
    assert_eq!(lists.len(), 1);
    assert_eq!(s.services.verify_audit_chain().await.unwrap().broken, None);
}
