//! Content encrypted at rest (`encrypt_content`): clients read and write plaintext, the
//! database holds only ciphertext bound to its row, and full-text search covers document
//! titles only — the documented trade-off.

use ceneca_e2e::{Backend, TestServer, on_every_backend, world};
use std::sync::Arc;

use ceneca_crypto::KeyRing;
use ceneca_crypto::keyring::{decode_key_base64, generate_key_base64};
use ceneca_service::audit::RequestMeta;
use ceneca_service::{ServiceConfig, Services};
use serde_json::json;

on_every_backend!(
    content_is_sealed_at_rest_and_plain_to_readers,
    sealed_content_moved_to_another_row_does_not_decrypt,
    rewrap_seals_old_content_and_follows_key_rotation,
    sealed_content_is_compressed_as_stored_and_read_in_the_clear,
    regression_a_key_rewrap_keeps_compressed_bodies_compressed
);

async fn sealed_server(backend: Backend) -> TestServer {
    let config = ServiceConfig {
        encrypt_content: true,
        ..ServiceConfig::default()
    };
    TestServer::start_with(backend, config).await
}

async fn content_is_sealed_at_rest_and_plain_to_readers(backend: Backend) {
    let s = sealed_server(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let messages = format!("/api/v1/threads/{}/messages", w.thread);

    let created = s
        .post(
            &u,
            &messages,
            json!({"role": "user", "content": "the zanzibar merger closes friday"}),
        )
        .await
        .expect(201);
    assert_eq!(created["content"], "the zanzibar merger closes friday");
    let id = created["id"].as_str().unwrap().to_owned();
    let stored = s
        .raw_text(&format!("SELECT content FROM messages WHERE id = '{id}'"))
        .await
        .unwrap();
    assert!(!stored.contains("zanzibar"), "stored in clear: {stored}");
    let key = s
        .raw_text(&format!(
            "SELECT content_key_id FROM messages WHERE id = '{id}'"
        ))
        .await;
    assert_eq!(key.as_deref(), Some("test"));
    assert!(
        created.get("content_key_id").is_none(),
        "internal column shown"
    );

    // Every read path opens it: get, list, batch create, update.
    let got = s
        .get(&u, &format!("/api/v1/messages/{id}"))
        .await
        .expect(200);
    assert_eq!(got["content"], "the zanzibar merger closes friday");
    let batch = s
        .post(
            &u,
            &format!("{messages}/batch"),
            json!({"items": [{"role": "assistant", "content": "noted: zanzibar"}]}),
        )
        .await
        .expect(201);
    assert_eq!(batch["items"][0]["content"], "noted: zanzibar");
    let listed = s.list_all(&u, &messages).await;
    assert!(listed.iter().any(|m| m["content"] == "noted: zanzibar"));
    let patched = s
        .patch(
            &u,
            &format!("/api/v1/messages/{id}"),
            json!({"content": "the zanzibar merger is off"}),
        )
        .await
        .expect(200);
    assert_eq!(patched["content"], "the zanzibar merger is off");
    let stored_after = s
        .raw_text(&format!("SELECT content FROM messages WHERE id = '{id}'"))
        .await
        .unwrap();
    assert!(!stored_after.contains("zanzibar") && stored_after != stored);

    // Documents: the body is sealed, the title stays searchable.
    let doc = s
        .post(
            &u,
            "/api/v1/documents",
            json!({"workspace_id": w.workspace, "title": "Quarterly zanzibar report", "body": "confidential figures inside"}),
        )
        .await
        .expect(201);
    assert_eq!(doc["body"], "confidential figures inside");
    let doc_id = doc["id"].as_str().unwrap();
    let body = s
        .raw_text(&format!("SELECT body FROM documents WHERE id = '{doc_id}'"))
        .await
        .unwrap();
    assert!(!body.contains("confidential"));

    // The trade-off: sealed text is not in the full-text index.
    let hits = s.get(&u, "/api/v1/search?q=zanzibar").await.expect(200);
    let items = hits["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{hits}");
    assert_eq!(items[0]["id"], doc_id);
    assert!(
        items[0]["snippet"].as_str().unwrap().contains("zanzibar"),
        "{hits}"
    );
    let hits = s.get(&u, "/api/v1/search?q=confidential").await.expect(200);
    assert_eq!(hits["items"].as_array().unwrap().len(), 0, "{hits}");
    s.services.store().reindex_text().await.unwrap();
    let hits = s.get(&u, "/api/v1/search?q=confidential").await.expect(200);
    assert_eq!(hits["items"].as_array().unwrap().len(), 0, "after reindex");
}

async fn sealed_content_moved_to_another_row_does_not_decrypt(backend: Backend) {
    let s = sealed_server(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let messages = format!("/api/v1/threads/{}/messages", w.thread);
    let secret = s
        .post(
            &u,
            &messages,
            json!({"role": "user", "content": "launch codes 0000"}),
        )
        .await
        .expect(201);
    let decoy = s
        .post(&u, &messages, json!({"role": "user", "content": "hello"}))
        .await
        .expect(201);
    let (from, to) = (
        secret["id"].as_str().unwrap(),
        decoy["id"].as_str().unwrap(),
    );
    s.raw_execute(&format!(
        "UPDATE messages SET content = (SELECT content FROM messages WHERE id = '{from}') WHERE id = '{to}'"
    ))
    .await;
    let res = s.get(&u, &format!("/api/v1/messages/{to}")).await;
    assert_eq!(res.status, 500);
    assert!(!res.body.to_string().contains("launch"), "{}", res.body);
    // The original still reads.
    let ok = s
        .get(&u, &format!("/api/v1/messages/{from}"))
        .await
        .expect(200);
    assert_eq!(ok["content"], "launch codes 0000");
}

async fn rewrap_seals_old_content_and_follows_key_rotation(backend: Backend) {
    // Written while the setting was off: plaintext at rest.
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let m = s
        .post(
            &u,
            &format!("/api/v1/threads/{}/messages", w.thread),
            json!({"role": "user", "content": "written before sealing"}),
        )
        .await
        .expect(201);
    let id = m["id"].as_str().unwrap().to_owned();
    let stored = format!("SELECT content FROM messages WHERE id = '{id}'");
    let key_of = format!("SELECT content_key_id FROM messages WHERE id = '{id}'");
    assert_eq!(s.raw_text(&stored).await.unwrap(), "written before sealing");

    let sealed = ServiceConfig {
        encrypt_content: true,
        ..ServiceConfig::default()
    };
    let key = |_: ()| decode_key_base64(&generate_key_base64()).unwrap();
    let (k1, k2) = (key(()), key(()));
    let services =
        |ring: KeyRing| Services::new(s.services.store().clone(), Arc::new(ring), sealed.clone());

    // Turned on, `keys rewrap` seals what was written before.
    let r1 = KeyRing::new("k1", &k1).unwrap();
    let report = services(KeyRing::new("k1", &k1).unwrap())
        .rewrap_secrets(&r1, |_| {})
        .await
        .unwrap();
    assert!(
        report.rewrapped >= 1 && report.unreadable.is_empty(),
        "{report:?}"
    );
    assert!(!s.raw_text(&stored).await.unwrap().contains("before"));
    assert_eq!(s.raw_text(&key_of).await.as_deref(), Some("k1"));

    // Rotated: rewrap moves it to the new key; the old key can then go.
    let rotated = || {
        let mut ring = KeyRing::new("k1", &k1).unwrap();
        ring.add("k2", &k2).unwrap();
        ring.activate("k2").unwrap();
        ring
    };
    let report = services(rotated())
        .rewrap_secrets(&rotated(), |_| {})
        .await
        .unwrap();
    assert!(report.rewrapped >= 1, "{report:?}");
    assert_eq!(s.raw_text(&key_of).await.as_deref(), Some("k2"));
    let only_k2 = services(KeyRing::new("k2", &k2).unwrap());
    let caller = only_k2
        .authenticate(&u.token, &RequestMeta::default())
        .await
        .unwrap();
    let read = only_k2
        .get(
            &caller,
            &ceneca_domain::model::MESSAGES,
            id.parse().unwrap(),
            ceneca_store::Deleted::Exclude,
        )
        .await
        .unwrap();
    assert_eq!(read["content"], "written before sealing");
}

/// Retention packs what a message stores: sealed text stays sealed inside the frame, and
/// readers get the plaintext back.
async fn sealed_content_is_compressed_as_stored_and_read_in_the_clear(backend: Backend) {
    let s = sealed_server(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let body = "the zanzibar merger closes on friday, pending review. ".repeat(30);
    let id = s
        .post(
            &u,
            &format!("/api/v1/threads/{}/messages", w.thread),
            json!({"role": "user", "content": body}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.raw_execute(&format!(
        "UPDATE messages SET updated_at = '2020-01-01T00:00:00.000000Z' WHERE id = '{id}'"
    ))
    .await;
    let report = s
        .services
        .run_maintenance(
            ceneca_wire::maintenance::MaintenanceTrigger::Manual,
            None,
            false,
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(report.messages_compressed, 1, "{report:?}");
    let hex_frame = match backend {
        Backend::Sqlite => format!("SELECT hex(content_packed) FROM messages WHERE id = '{id}'"),
        Backend::Postgres => {
            format!("SELECT encode(content_packed, 'hex') FROM messages WHERE id = '{id}'")
        }
    };
    let frame = hex::decode(s.raw_text(&hex_frame).await.unwrap().to_lowercase()).unwrap();
    let inside = ceneca_store::packing::unpack(&frame).unwrap();
    assert!(!inside.contains("zanzibar"), "packed in clear: {inside}");
    assert_eq!(
        s.raw_text(&format!("SELECT content FROM messages WHERE id = '{id}'"))
            .await
            .as_deref(),
        Some("")
    );
    let read = s
        .get(&u, &format!("/api/v1/messages/{id}"))
        .await
        .expect(200);
    assert_eq!(read["content"], body.as_str());
    assert_eq!(read["compressed"], true);
}

/// Found by the attack: sealing and key rotation stored every compressed body plain again,
/// growing what each stored (past quotas) until the next compression.
async fn regression_a_key_rewrap_keeps_compressed_bodies_compressed(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let body = "quarterly numbers for the zanzibar office, line by line. ".repeat(20);
    let id = s
        .post(
            &u,
            &format!("/api/v1/threads/{}/messages", w.thread),
            json!({"role": "user", "content": body}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.raw_execute(&format!(
        "UPDATE messages SET updated_at = '2020-01-01T00:00:00.000000Z' WHERE id = '{id}'"
    ))
    .await;
    let run = s
        .services
        .run_maintenance(
            ceneca_wire::maintenance::MaintenanceTrigger::Manual,
            None,
            false,
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(run.messages_compressed, 1);

    // Sealing turned on: the rewrap seals the compressed body, and keeps it compressed.
    let sealed = ServiceConfig {
        encrypt_content: true,
        ..ServiceConfig::default()
    };
    let k1 = decode_key_base64(&generate_key_base64()).unwrap();
    let ring = || KeyRing::new("k1", &k1).unwrap();
    let services = Services::new(s.services.store().clone(), Arc::new(ring()), sealed);
    let report = services.rewrap_secrets(&ring(), |_| {}).await.unwrap();
    assert!(
        report.rewrapped >= 1 && report.unreadable.is_empty(),
        "{report:?}"
    );
    let packed = format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM messages WHERE id = '{id}' AND content_packed IS NOT NULL AND content_key_id = 'k1'"
    );
    assert_eq!(s.raw_text(&packed).await.as_deref(), Some("1"));
    let caller = services
        .authenticate(&u.token, &RequestMeta::default())
        .await
        .unwrap();
    let read = services
        .get(
            &caller,
            &ceneca_domain::model::MESSAGES,
            id.parse().unwrap(),
            ceneca_store::Deleted::Exclude,
        )
        .await
        .unwrap();
    assert_eq!(read["content"], body.as_str());
    assert_eq!(read["compressed"], true);
    // Sealed text is not searchable (the documented trade-off): the words went with it.
    let found = s.get(&u, "/api/v1/search?q=zanzibar").await.expect(200);
    assert_eq!(found["items"], json!([]), "{found}");
    assert!(
        s.services
            .store()
            .reconcile_storage(false)
            .await
            .unwrap()
            .is_empty()
    );
}
