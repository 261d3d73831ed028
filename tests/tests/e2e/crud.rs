//! Suite 1 of the seed report: create, read, list, update and delete every resource over
//! HTTP, on SQLite and PostgreSQL.

use ceneca_e2e::{Backend, TestServer, on_every_backend, samples, world};
use serde_json::json;

on_every_backend!(
    every_resource_round_trips,
    admin_catalogues_round_trip,
    users_read_and_change_themselves
);

async fn every_resource_round_trips(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let w = world(&s, &owner).await;
    for sample in samples(&w) {
        let path = format!("/api/v1/{}", sample.path);
        let created = s.post(&owner, &path, sample.create.clone()).await;
        let body = created.clone().expect(201);
        let id = created.id();
        for (k, v) in sample.create.as_object().unwrap() {
            if k == "api_key" {
                assert!(body.get("api_key").is_none(), "secrets are write-only");
                continue;
            }
            if k == "vector" {
                continue;
            }
            assert_eq!(&body[k], v, "{}: field {k} reads back", sample.path);
        }
        assert_eq!(
            s.get(&owner, &format!("{path}/{id}")).await.expect(200)["id"],
            json!(id)
        );
        let listed = s.list_all(&owner, &path).await;
        assert!(
            listed.iter().any(|i| i["id"] == json!(id)),
            "{}: listed",
            sample.path
        );
        if let Some(patch) = &sample.patch {
            let updated = s
                .patch(&owner, &format!("{path}/{id}"), patch.clone())
                .await
                .expect(200);
            for (k, v) in patch.as_object().unwrap() {
                assert_eq!(&updated[k], v, "{}: {k} updated", sample.path);
            }
            assert!(updated["updated_at"].as_str() >= body["updated_at"].as_str());
        }
        let deleted = s.delete(&owner, &format!("{path}/{id}")).await;
        if sample.soft_delete {
            assert!(
                deleted.clone().expect(200)["deleted_at"].is_string(),
                "{}: soft delete",
                sample.path
            );
            s.get(&owner, &format!("{path}/{id}")).await.expect(404);
            s.get(&owner, &format!("{path}/{id}?deleted=include"))
                .await
                .expect(200);
            s.post(&owner, &format!("{path}/{id}/restore"), json!({}))
                .await
                .expect(200);
            s.get(&owner, &format!("{path}/{id}")).await.expect(200);
        } else {
            deleted.expect(204);
            s.get(&owner, &format!("{path}/{id}")).await.expect(404);
        }
    }
}

async fn admin_catalogues_round_trip(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin().await;
    let user = s.user("customer").await;
    let plan = s
        .post(&admin, "/api/v1/plans", json!({"name": "Team", "price_micros": 20_000_000, "interval": "month", "limits": {"seats": 10, "monthly_tokens": 1000000}}))
        .await
        .expect(201);
    let plan_id = plan["id"].as_str().unwrap();
    assert_eq!(
        s.get(&user, &format!("/api/v1/plans/{plan_id}"))
            .await
            .expect(200)["name"],
        "Team"
    );
    s.post(
        &user,
        "/api/v1/plans",
        json!({"name": "Free", "price_micros": 0, "interval": "month"}),
    )
    .await
    .expect(403);
    s.patch(
        &admin,
        &format!("/api/v1/plans/{plan_id}"),
        json!({"active": false}),
    )
    .await
    .expect(200);

    let invoice = s
        .post(
            &admin,
            "/api/v1/invoices",
            json!({"user_id": user.id, "plan_id": plan_id, "period_start": "2026-01-01T00:00:00Z", "period_end": "2026-02-01T00:00:00Z", "amount_micros": 20_000_000, "line_items": [{"d": "Team"}]}),
        )
        .await
        .expect(201);
    let invoice_id = invoice["id"].as_str().unwrap();
    assert_eq!(
        s.get(&user, &format!("/api/v1/invoices/{invoice_id}"))
            .await
            .expect(200)["status"],
        "draft"
    );
    s.patch(
        &user,
        &format!("/api/v1/invoices/{invoice_id}"),
        json!({"status": "paid"}),
    )
    .await
    .expect(403);
    s.patch(
        &admin,
        &format!("/api/v1/invoices/{invoice_id}"),
        json!({"status": "paid", "paid_at": "2026-02-02T00:00:00Z"}),
    )
    .await
    .expect(200);
    // A plan an invoice refers to cannot be deleted.
    assert_eq!(
        s.delete(&admin, &format!("/api/v1/plans/{plan_id}"))
            .await
            .code(),
        "conflict"
    );
    s.delete(&admin, &format!("/api/v1/invoices/{invoice_id}"))
        .await
        .expect(204);
    s.delete(&admin, &format!("/api/v1/plans/{plan_id}"))
        .await
        .expect(204);

    // The audit log and the change log are read-only.
    s.post(&admin, "/api/v1/audit-log", json!({}))
        .await
        .expect(405);
    s.get(&admin, "/api/v1/audit-log").await.expect(200);
    s.get(&user, "/api/v1/audit-log").await.expect(200);
    s.post(&user, "/api/v1/sync-events", json!({}))
        .await
        .expect(405);
}

async fn users_read_and_change_themselves(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let b = s.user("b").await;
    let admin = s.admin().await;
    let me = s
        .get(&a, &format!("/api/v1/users/{}", a.id))
        .await
        .expect(200);
    assert_eq!(me["email"], json!(a.email));
    assert!(me.get("password_hash").is_none());
    s.get(&a, &format!("/api/v1/users/{}", b.id))
        .await
        .expect(404);
    let listed = s.list_all(&a, "/api/v1/users").await;
    assert_eq!(listed.len(), 1, "a user lists only themselves");
    assert_eq!(
        s.patch(
            &a,
            &format!("/api/v1/users/{}", a.id),
            json!({"display_name": "Ada"})
        )
        .await
        .expect(200)["display_name"],
        "Ada"
    );
    let r = s
        .patch(
            &a,
            &format!("/api/v1/users/{}", a.id),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.body);
    assert!(
        s.list_all(&admin, "/api/v1/users").await.len() >= 3,
        "admins list everyone"
    );
    s.patch(
        &admin,
        &format!("/api/v1/users/{}", b.id),
        json!({"status": "suspended"}),
    )
    .await
    .expect(200);
    s.get(&b, "/api/v1/auth/me").await.expect(401);
    s.delete(&a, &format!("/api/v1/users/{}", a.id))
        .await
        .expect(200);
    s.get(&a, "/api/v1/auth/me").await.expect(401);
}
