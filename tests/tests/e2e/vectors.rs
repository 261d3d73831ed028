//! Vector search over HTTP on both engines: upsert with `wait`, search filtered to the
//! caller's workspaces, bad vectors refused, deletes, clear, scroll, collection info, the
//! outbox feeding the index from every write path, and hybrid (RRF) search.

use ceneca_e2e::{
    Backend, Switchable, TEST_VECTOR_DIMS, TestServer, default_vector_index, on_every_backend, sha,
    world,
};
use serde_json::{Value, json};

on_every_backend!(
    upsert_search_delete_and_tenant_isolation,
    bad_vectors_get_clear_errors,
    embeddings_written_anywhere_reach_the_index,
    hybrid_search_fuses_text_and_vectors,
    an_unavailable_index_loses_nothing_and_catches_up,
    one_indexer_at_a_time,
    upserts_take_batch_sized_bodies,
    embeddings_follow_their_source_into_the_bin_and_back,
    a_source_removed_for_good_takes_its_embeddings,
    a_rebuild_while_writes_go_on_leaves_no_drift,
    the_drift_check_finds_what_the_index_lost_kept_or_changed,
    the_change_log_keeps_vectors_as_bytes_and_the_feed_shows_their_numbers
);

#[tokio::test]
async fn postgres_a_second_node_never_answers_from_an_embedded_index_nothing_feeds() {
    a_second_node_never_answers_from_an_embedded_index_nothing_feeds().await;
}

fn axis(i: usize) -> Vec<f32> {
    let mut v = vec![0.05; TEST_VECTOR_DIMS];
    v[i % TEST_VECTOR_DIMS] = 1.0;
    v
}

fn ids(items: &Value, key: &str) -> Vec<String> {
    items["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[key].as_str().unwrap().to_owned())
        .collect()
}

async fn upsert_search_delete_and_tenant_isolation(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let up = s
        .post(
            &u,
            "/api/v1/vectors/messages/points?wait=true",
            json!({"source_id": w.message, "workspace_id": w.workspace, "vector": axis(0)}),
        )
        .await
        .expect(200);
    assert_eq!(up["status"], "completed");
    let point = up["ids"][0].as_str().unwrap().to_owned();

    let found = s
        .post(
            &u,
            "/api/v1/vectors/messages/search",
            json!({"vector": axis(0), "limit": 5}),
        )
        .await
        .expect(200);
    assert_eq!(ids(&found, "id"), vec![point.clone()]);
    assert_eq!(found["items"][0]["source_id"], w.message.as_str());
    assert!((found["items"][0]["score"].as_f64().unwrap() - 1.0).abs() < 1e-4);

    // Upserting the same source again replaces the vector, keeping the point.
    let again = s
        .post(
            &u,
            "/api/v1/vectors/messages/points?wait=true",
            json!({"source_id": w.message, "workspace_id": w.workspace, "vector": axis(3)}),
        )
        .await
        .expect(200);
    assert_eq!(again["ids"][0], point.as_str());
    let found = s
        .post(
            &u,
            "/api/v1/vectors/messages/search",
            json!({"vector": axis(3), "score_threshold": 0.99}),
        )
        .await
        .expect(200);
    assert_eq!(ids(&found, "id"), vec![point.clone()]);

    // Another tenant never sees it, even asking for that workspace.
    let other = s.user("other").await;
    world(&s, &other).await;
    let theirs = s
        .post(
            &other,
            "/api/v1/vectors/messages/search",
            json!({"vector": axis(3)}),
        )
        .await
        .expect(200);
    assert!(theirs["items"].as_array().unwrap().is_empty(), "{theirs}");
    s.post(
        &other,
        "/api/v1/vectors/messages/search",
        json!({"vector": axis(3), "workspace_id": w.workspace}),
    )
    .await
    .expect(404);
    s.post(
        &other,
        "/api/v1/vectors/messages/points",
        json!({"source_id": w.message, "workspace_id": w.workspace, "vector": axis(1)}),
    )
    .await
    .expect(403);

    // Info, scroll, delete.
    let info = s.get(&u, "/api/v1/vectors/messages").await.expect(200);
    assert_eq!(info["dimension"], TEST_VECTOR_DIMS);
    assert_eq!(info["distance"], "cosine");
    assert_eq!(info["engine"], "embedded");
    let scrolled = s
        .get(&u, "/api/v1/vectors/messages/points")
        .await
        .expect(200);
    assert_eq!(ids(&scrolled, "id"), vec![point.clone()]);
    s.delete(
        &u,
        &format!("/api/v1/vectors/messages/points/{point}?wait=true"),
    )
    .await
    .expect(200);
    let found = s
        .post(
            &u,
            "/api/v1/vectors/messages/search",
            json!({"vector": axis(3)}),
        )
        .await
        .expect(200);
    assert!(found["items"].as_array().unwrap().is_empty(), "{found}");

    // A batch, filtered by source; then clearing the workspace empties it.
    let thread = format!("/api/v1/threads/{}/messages", w.thread);
    let mut points = Vec::new();
    let mut sources = Vec::new();
    for i in 0..3 {
        let m = s
            .post(
                &u,
                &thread,
                json!({"role": "user", "content": format!("note {i}")}),
            )
            .await
            .expect(201);
        sources.push(m["id"].as_str().unwrap().to_owned());
        points.push(json!({"source_id": m["id"], "workspace_id": w.workspace, "vector": axis(i)}));
    }
    let batch = s
        .post(
            &u,
            "/api/v1/vectors/messages/points/batch?wait=true",
            json!({"points": points}),
        )
        .await
        .expect(200);
    assert_eq!(batch["ids"].as_array().unwrap().len(), 3);
    let found = s
        .post(
            &u,
            "/api/v1/vectors/messages/search",
            json!({"vector": axis(0), "source_ids": [sources[1], sources[2]]}),
        )
        .await
        .expect(200);
    let mut got = ids(&found, "source_id");
    got.sort();
    let mut want = vec![sources[1].clone(), sources[2].clone()];
    want.sort();
    assert_eq!(got, want);
    let cleared = s
        .post(
            &u,
            "/api/v1/vectors/messages/clear?wait=true",
            json!({"workspace_id": w.workspace}),
        )
        .await
        .expect(200);
    assert_eq!(cleared["deleted"], 3);
    let found = s
        .post(
            &u,
            "/api/v1/vectors/messages/search",
            json!({"vector": axis(0)}),
        )
        .await
        .expect(200);
    assert!(found["items"].as_array().unwrap().is_empty());
}

async fn bad_vectors_get_clear_errors(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let point = |vector: Value| json!({"source_id": w.message, "workspace_id": w.workspace, "vector": vector});
    let cases = [
        (
            "/api/v1/vectors/messages/points",
            point(json!([1.0, 2.0])),
            "vector",
        ),
        (
            "/api/v1/vectors/messages/points",
            point(json!(vec![1e39; TEST_VECTOR_DIMS])),
            "vector",
        ),
        (
            "/api/v1/vectors/messages/points",
            point(json!("not a vector")),
            "vector",
        ),
        (
            "/api/v1/vectors/messages/points",
            point(json!(vec![0.0; TEST_VECTOR_DIMS])),
            "no direction",
        ),
        (
            "/api/v1/vectors/messages/points",
            point(json!(vec![3e38; TEST_VECTOR_DIMS])),
            "no direction",
        ),
        (
            "/api/v1/vectors/messages/search",
            json!({"vector": vec![0.0; TEST_VECTOR_DIMS]}),
            "no direction",
        ),
        (
            "/api/v1/vectors/nope/points",
            point(json!(axis(0))),
            "collection",
        ),
        (
            "/api/v1/vectors/messages/search",
            json!({"vector": [1.0]}),
            "vector",
        ),
        (
            "/api/v1/vectors/messages/search",
            json!({"vector": axis(0), "limit": 0}),
            "limit",
        ),
        (
            "/api/v1/vectors/messages/search",
            json!({"vector": axis(0), "score_threshold": 7}),
            "score_threshold",
        ),
        (
            "/api/v1/vectors/nope/search",
            json!({"vector": axis(0)}),
            "collection",
        ),
    ];
    for (path, body, field) in cases {
        let r = s.post(&u, path, body.clone()).await;
        assert_eq!(r.status, 400, "{path} {body}: {}", r.body);
        assert!(r.body.to_string().contains(field), "{path}: {}", r.body);
    }
    // NaN is not JSON: the body is refused as malformed.
    let raw = s
        .http
        .post(format!("{}/api/v1/vectors/messages/search", s.base))
        .bearer_auth(&u.token)
        .header("content-type", "application/json")
        .body("{\"vector\": [NaN, 1, 1, 1, 1, 1, 1, 1]}")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    s.post(
        &u,
        "/api/v1/vectors/messages/points?wait=maybe",
        point(json!(axis(0))),
    )
    .await
    .expect(400);
    // A source in no workspace of the caller's.
    let r = s
        .post(
            &u,
            "/api/v1/vectors/messages/points",
            json!({"source_id": uuid::Uuid::now_v7(), "workspace_id": w.workspace, "vector": axis(0)}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = s.get(&u, "/api/v1/vectors/messages").await;
    assert_eq!(r.status, 200);

    // A batch's sources are checked together; the first point that fails is named, and
    // nothing of the batch is written. Another tenant's message is no source of mine.
    let other = s.user("other").await;
    let theirs = world(&s, &other).await;
    let good = |model: &str| json!({"source_id": w.message, "workspace_id": w.workspace, "model": model, "vector": axis(1)});
    for (bad, field, why) in [
        (
            json!({"source_id": theirs.message, "workspace_id": w.workspace, "vector": axis(1)}),
            "points[2].source_id",
            "no message with this id in your workspaces",
        ),
        (
            json!({"source_id": w.message, "workspace_id": theirs.workspace, "vector": axis(1)}),
            "points[2].workspace_id",
            "",
        ),
        (
            json!({"source_id": w.document, "workspace_id": w.workspace, "vector": axis(1)}),
            "points[2].source_id",
            "no message with this id",
        ),
        (json!([1, 2]), "points[2]", "must be an object"),
        (
            json!({"source_id": w.message, "workspace_id": w.workspace, "vector": {"a": 1}}),
            "points[2].vector",
            "must be an array",
        ),
        (
            json!({"source_id": w.message, "workspace_id": w.workspace, "vector": [true]}),
            "points[2].vector",
            "",
        ),
    ] {
        let r = s
            .post(
                &u,
                "/api/v1/vectors/messages/points/batch",
                json!({"points": [good("a"), good("b"), bad, good("c")]}),
            )
            .await;
        assert!(
            matches!(r.status.as_u16(), 400 | 403 | 422),
            "{field}: {} {}",
            r.status,
            r.body
        );
        let text = r.body.to_string();
        assert!(
            text.contains(field) && text.contains(why),
            "{field} {why}: {text}"
        );
    }
    // Several points fail: the first is named, whatever fails in it (regression, second
    // attack: a later point's field was named before an earlier point's source).
    let r = s
        .post(
            &u,
            "/api/v1/vectors/messages/points/batch",
            json!({"points": [
                {"source_id": uuid::Uuid::now_v7(), "workspace_id": w.workspace, "vector": axis(1)},
                {"source_id": w.message, "workspace_id": w.workspace, "model": 5, "vector": axis(1)},
            ]}),
        )
        .await;
    assert!(
        r.body.to_string().contains("points[0].source_id"),
        "{}",
        r.body
    );
    // The body is read straight into points: a key sent twice, a body that is not JSON,
    // or not an object, answer as any other body does.
    for (body, status, says) in [
        (r#"{"points": [], "points": []}"#, 422, "duplicate field"),
        (r#"{"points": [{"vector": [1, 2]"#, 400, "JSON ends early"),
        (r#"[{"vector": [1]}]"#, 422, "expected a JSON object"),
        (r#"{"points": {"vector": [1]}}"#, 422, "points"),
        (r#"{"points": [], "extra": 1}"#, 422, "extra"),
    ] {
        let raw = s
            .http
            .post(format!("{}/api/v1/vectors/messages/points/batch", s.base))
            .bearer_auth(&u.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status().as_u16(), status, "{body}");
        let text = raw.text().await.unwrap();
        assert!(text.contains(says), "{body}: {text}");
    }
    // A batch is refused at its 1,001st point, not read to its end; a point's field that
    // is an array or object is skipped unbuilt and refused by name (third attack: such
    // bodies took gigabytes to parse).
    let many = format!("{{\"points\": [{}]}}", vec!["{}"; 5000].join(","));
    let raw = s
        .http
        .post(format!("{}/api/v1/vectors/messages/points/batch", s.base))
        .bearer_auth(&u.token)
        .header("content-type", "application/json")
        .body(many)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 422);
    let text = raw.text().await.unwrap();
    assert!(text.contains("between 1 and 1000 points"), "{text}");
    let r = s
        .post(
            &u,
            "/api/v1/vectors/messages/points",
            json!({"source_id": w.message, "workspace_id": w.workspace, "vector": axis(1), "model": vec![0; 10_000]}),
        )
        .await;
    assert!(matches!(r.status.as_u16(), 400 | 422), "{}", r.body);
    assert!(r.body.to_string().contains("model"), "{}", r.body);
    // A single point that is no object is refused, naming the body.
    let r = s
        .post(&u, "/api/v1/vectors/messages/points", json!([good("a")]))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.to_string().contains("expected a JSON object"),
        "{}",
        r.body
    );
    // Nothing of the refused batches was written.
    let written = s
        .raw_text(
            "SELECT CAST(COUNT(*) AS TEXT) FROM embedding_records WHERE model IN ('a', 'b', 'c')",
        )
        .await;
    assert_eq!(written.as_deref(), Some("0"));
}

/// Embeddings written through the generic REST resource, or removed by a cascade, reach
/// the index through the outbox like those written through the vectors API.
async fn embeddings_written_anywhere_reach_the_index(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    s.post(
        &u,
        "/api/v1/embeddings",
        json!({"collection": "messages", "source_id": w.message, "workspace_id": w.workspace,
               "model": "mini", "dims": TEST_VECTOR_DIMS, "vector": axis(5), "content_hash": sha(1)}),
    )
    .await
    .expect(201);
    let search = || async {
        s.post(
            &u,
            "/api/v1/vectors/messages/search",
            json!({"vector": axis(5)}),
        )
        .await
        .expect(200)["items"]
            .as_array()
            .unwrap()
            .len()
    };
    let mut seen = 0;
    for _ in 0..100 {
        seen = search().await;
        if seen == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen, 1, "the outbox did not reach the index");
    // Applied entries are removed once the index made them durable.
    outbox_drains(&s).await;
    // Deleting the workspace (hard, with its rows) removes its points from the index.
    let ws = w.workspace.clone();
    s.raw_execute(&format!(
        "DELETE FROM embedding_records WHERE workspace_id = '{ws}'"
    ))
    .await;
    for _ in 0..100 {
        seen = search().await;
        if seen == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen, 0,
        "a delete made outside the API still reached the index"
    );
}

async fn hybrid_search_fuses_text_and_vectors(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let thread = format!("/api/v1/threads/{}/messages", w.thread);
    let both = s
        .post(
            &u,
            &thread,
            json!({"role": "user", "content": "the zebra crossing report"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let text_only = s
        .post(
            &u,
            &thread,
            json!({"role": "user", "content": "a zebra at the zoo"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let vector_only = s
        .post(
            &u,
            &thread,
            json!({"role": "user", "content": "pedestrian safety"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let points = json!({"points": [
        {"source_id": both, "workspace_id": w.workspace, "vector": axis(2)},
        {"source_id": vector_only, "workspace_id": w.workspace, "vector": axis(2).iter().enumerate().map(|(i, x)| if i == 3 { 0.5 } else { *x }).collect::<Vec<_>>()},
        {"source_id": text_only, "workspace_id": w.workspace, "vector": axis(6)},
    ]});
    s.post(
        &u,
        "/api/v1/vectors/messages/points/batch?wait=true",
        points,
    )
    .await
    .expect(200);
    let fused = s
        .post(
            &u,
            "/api/v1/search/hybrid",
            json!({"q": "zebra crossing", "vector": axis(2), "limit": 3}),
        )
        .await
        .expect(200);
    let items = fused["items"].as_array().unwrap();
    assert_eq!(items[0]["id"], both.as_str(), "{fused}");
    assert!(items[0]["text_rank"].is_number() && items[0]["vector_rank"].is_number());
    assert!(items.iter().any(|i| i["id"] == vector_only.as_str()));
    let r = s
        .post(&u, "/api/v1/search/hybrid", json!({"vector": axis(2)}))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["error"]["fields"]["q"].is_string(), "{}", r.body);
    // Typed bodies refuse what they do not know rather than ignoring it.
    let r = s
        .post(
            &u,
            "/api/v1/search/hybrid",
            json!({"q": "zebra", "vector": axis(2), "limt": 3}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["error"]["fields"]["limt"].is_string(), "{}", r.body);
}

/// The vector store goes away (a Qdrant server down): writes are still accepted and kept
/// in the outbox, searches answer 503 with a clear message, and once it is back the
/// indexer catches up and searches find everything written meanwhile.
async fn an_unavailable_index_loses_nothing_and_catches_up(backend: Backend) {
    let mut switch = None;
    let s = TestServer::start_with_index(backend, |dir| {
        let index = Switchable::new(default_vector_index(dir));
        switch = Some(index.clone());
        index
    })
    .await;
    let switch = switch.unwrap();
    let u = s.user("u").await;
    let w = world(&s, &u).await;

    switch.set_up(false);
    let up = s
        .post(
            &u,
            "/api/v1/vectors/messages/points",
            json!({"source_id": w.message, "workspace_id": w.workspace, "vector": axis(1)}),
        )
        .await
        .expect(200);
    assert_eq!(up["status"], "acknowledged");
    let kept = up["ids"][0].as_str().unwrap().to_owned();
    let down = s
        .post(
            &u,
            "/api/v1/vectors/messages/search",
            json!({"vector": axis(1)}),
        )
        .await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.code(), "unavailable");
    assert!(
        down.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{}",
        down.body
    );
    // Let the indexer fail a few rounds: the entry stays queued.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_ne!(
        s.raw_text("SELECT CAST(COUNT(*) AS TEXT) FROM vector_outbox")
            .await
            .as_deref(),
        Some("0"),
        "the outbox lost the write made while the index was down"
    );

    // Back up: the next write wakes the indexer, which applies both.
    switch.set_up(true);
    let again = s
        .post(
            &u,
            "/api/v1/vectors/messages/points?wait=true",
            json!({"source_id": w.message, "workspace_id": w.workspace, "vector": axis(2), "model": "v2"}),
        )
        .await
        .expect(200);
    assert_eq!(again["status"], "completed");
    let found = s
        .post(
            &u,
            "/api/v1/vectors/messages/search",
            json!({"vector": axis(1), "limit": 1}),
        )
        .await
        .expect(200);
    assert_eq!(ids(&found, "id"), vec![kept]);
    assert_eq!(
        s.raw_text("SELECT CAST(COUNT(*) AS TEXT) FROM vector_outbox")
            .await
            .as_deref(),
        Some("0")
    );
}

/// Several nodes on one database: one indexer lease, held by one node at a time and
/// passed on when its holder goes away; a rebuild takes it from its holder, which stands
/// by until the rebuild gives it back.
async fn one_indexer_at_a_time(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(ceneca_e2e::ScratchDatabase::create().await),
    };
    let url = match &database {
        None => format!("sqlite://{}", dir.path().join("lease.db").display()),
        Some(database) => database.url.clone(),
    };
    let node = |url: String| async move {
        ceneca_store::open(&ceneca_store::StoreOptions::new(url))
            .await
            .unwrap()
    };
    let (a, b) = (node(url.clone()).await, node(url).await);
    let mut held = a
        .vector_indexer_lease()
        .await
        .unwrap()
        .expect("the first node leads");
    held.check().await.unwrap();
    // On SQLite too: another process may open the file (a command beside the server).
    assert!(
        b.vector_indexer_lease().await.unwrap().is_none(),
        "a second node got the lease"
    );
    // The holder goes away: its session ends and the other node takes over.
    drop(held);
    let mut taken = None;
    for _ in 0..100 {
        taken = b.vector_indexer_lease().await.unwrap();
        if taken.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut taken = taken.expect("the lease passed on");
    taken.check().await.unwrap();
    assert!(a.vector_indexer_lease().await.unwrap().is_none());

    // A rebuild on `a` asks for it: `b` is told, lets go, and takes none meanwhile.
    assert!(!taken.wanted().await.unwrap());
    let rebuild = tokio::spawn(async move {
        a.vector_rebuild_lease(std::time::Duration::from_secs(10))
            .await
            .unwrap()
    });
    let mut asked = false;
    for _ in 0..100 {
        if taken.wanted().await.unwrap() {
            asked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(asked, "the holder was never told a rebuild waits");
    taken.release().await.unwrap();
    drop(taken);
    let mut rebuilding = rebuild.await.unwrap().expect("the rebuild got the lease");
    assert!(
        b.vector_indexer_lease().await.unwrap().is_none(),
        "an indexer took the lease while a rebuild held it"
    );
    assert!(
        b.vector_rebuild_lease(std::time::Duration::from_millis(300))
            .await
            .unwrap()
            .is_none(),
        "two rebuilds at once"
    );
    rebuilding.release().await.unwrap();
    drop(rebuilding);
    let mut back = None;
    for _ in 0..100 {
        back = b.vector_indexer_lease().await.unwrap();
        if back.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(back.is_some(), "the indexer never got the lease back");
}

/// `count` points in `collection` of the world's message, one per model.
async fn upsert_models(
    s: &TestServer,
    u: &ceneca_e2e::User,
    w: &ceneca_e2e::World,
    range: std::ops::Range<usize>,
    shift: usize,
) -> Vec<String> {
    let points: Vec<Value> = range
        .map(|i| json!({"source_id": w.message, "workspace_id": w.workspace, "model": format!("m{i}"), "vector": axis(i + shift)}))
        .collect();
    let reply = s
        .post(
            u,
            "/api/v1/vectors/messages/points/batch?wait=true",
            json!({"points": points}),
        )
        .await
        .expect(200);
    reply["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// `ceneca reindex --vectors` beside a running indexer, while replacements, deletes and
/// new points keep coming: the rebuild takes the indexer's lease, so what is written
/// meanwhile stays in the outbox and reaches the new content. The check then finds the
/// index and SQL the same, point by point.
async fn a_rebuild_while_writes_go_on_leaves_no_drift(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let ids = upsert_models(&s, &u, &w, 0..300, 0).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (s2, u2, w2, ids, stop) = (
            s.http.clone(),
            u.token.clone(),
            (w.message.clone(), w.workspace.clone()),
            ids.clone(),
            stop.clone(),
        );
        let base = s.base.clone();
        tokio::spawn(async move {
            let mut round = 0usize;
            let mut writes = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || writes < 30 {
                round += 1;
                // Replace ten points, delete one, add one.
                let points: Vec<Value> = (0..10)
                    .map(|k| {
                        let i = (round * 10 + k) % 300;
                        json!({"source_id": w2.0, "workspace_id": w2.1, "model": format!("m{i}"), "vector": axis(i + round)})
                    })
                    .collect();
                let r = s2
                    .post(format!("{base}/api/v1/vectors/messages/points/batch"))
                    .bearer_auth(&u2)
                    .json(&json!({"points": points}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let gone = &ids[round % ids.len()];
                let r = s2
                    .delete(format!("{base}/api/v1/vectors/messages/points/{gone}"))
                    .bearer_auth(&u2)
                    .send()
                    .await
                    .unwrap();
                assert!(matches!(r.status().as_u16(), 200 | 404), "{}", r.status());
                let r = s2
                    .post(format!("{base}/api/v1/vectors/messages/points"))
                    .bearer_auth(&u2)
                    .json(&json!({"source_id": w2.0, "workspace_id": w2.1, "model": format!("new{round}"), "vector": axis(round)}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                writes += 1;
            }
            writes
        })
    };
    let rebuilt = s
        .services
        .reindex_vectors()
        .await
        .expect("the rebuild runs");
    assert!(
        rebuilt.iter().any(|(c, n)| c == "messages" && *n > 0),
        "{rebuilt:?}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.await.unwrap();
    assert!(writes >= 30, "{writes} rounds of writes");
    // The last write waits for the index: everything before it is applied too.
    upsert_models(&s, &u, &w, 0..1, 999).await;
    let reports = s.services.check_vectors().await.unwrap();
    for r in &reports {
        assert!(!r.drifted(), "the index drifted from SQL: {r:?}");
    }
    let messages = reports.iter().find(|r| r.collection == "messages").unwrap();
    assert_eq!(messages.sql_points, messages.index_points);
    assert!(messages.sql_points > 250, "{messages:?}");
}

/// The check compares point by point: a point the index lost, one it kept after its row
/// went, and one whose vector it holds wrong are each reported, by id; a rebuild repairs
/// all three.
async fn the_drift_check_finds_what_the_index_lost_kept_or_changed(backend: Backend) {
    let mut index = None;
    let s = TestServer::start_with_index(backend, |dir| {
        let i = default_vector_index(dir);
        index = Some(i.clone());
        i
    })
    .await;
    let index = index.unwrap();
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let ids = upsert_models(&s, &u, &w, 0..40, 0).await;
    let clean = s.services.check_vectors().await.unwrap();
    assert!(clean.iter().all(|r| !r.drifted()), "{clean:?}");
    let id = |i: usize| uuid::Uuid::parse_str(&ids[i]).unwrap();
    // Lost: the index forgets a point. Changed: it holds another vector for one.
    // Kept: it holds a point no row has.
    index.delete("messages", vec![id(3)]).await.unwrap();
    let mut wrong = index.retrieve("messages", vec![id(5)]).await.unwrap();
    wrong[0].vector = axis(17);
    let mut ghost = wrong[0].clone();
    ghost.id = uuid::Uuid::now_v7();
    index
        .upsert("messages", vec![wrong[0].clone(), ghost.clone()])
        .await
        .unwrap();
    assert!(index.persist("messages").await.unwrap());
    let drifted = s.services.check_vectors().await.unwrap();
    let r = drifted.iter().find(|r| r.collection == "messages").unwrap();
    assert_eq!((r.missing, r.stale, r.extra), (1, 1, 1), "{r:?}");
    use ceneca_service::vectors::DriftKind;
    for (kind, expected) in [
        (DriftKind::Missing, id(3)),
        (DriftKind::Stale, id(5)),
        (DriftKind::Extra, ghost.id),
    ] {
        assert!(
            r.examples.contains(&(kind, expected)),
            "{kind:?} {expected} not in {r:?}"
        );
    }
    s.services.reindex_vectors().await.unwrap();
    let repaired = s.services.check_vectors().await.unwrap();
    assert!(repaired.iter().all(|r| !r.drifted()), "{repaired:?}");
}

/// Two nodes on one PostgreSQL database, each with an embedded index: only the lease
/// holder's is fed, so the other refuses to search (503, saying why) instead of
/// answering from an index nothing feeds; a write through it with `wait=true` completes
/// once the holder applied it, and is then found through the holder.
async fn a_second_node_never_answers_from_an_embedded_index_nothing_feeds() {
    let one = TestServer::start(Backend::Postgres).await;
    let u = one.user("u").await;
    let w = world(&one, &u).await;
    // Node 1 leads once its indexer applied something.
    upsert_models(&one, &u, &w, 0..1, 0).await;
    let two = one.second_node().await;
    let written = two
        .post(
            &u,
            "/api/v1/vectors/messages/points?wait=true",
            json!({"source_id": w.message, "workspace_id": w.workspace, "model": "via-two", "vector": axis(7)}),
        )
        .await
        .expect(200);
    assert_eq!(written["status"], "completed", "{written}");
    let refused = two
        .post(
            &u,
            "/api/v1/vectors/messages/search",
            json!({"vector": axis(7), "limit": 1}),
        )
        .await;
    assert_eq!(refused.status.as_u16(), 503, "{:?}", refused.body);
    assert!(
        refused.body.to_string().contains("qdrant_url"),
        "the refusal says what to do: {:?}",
        refused.body
    );
    let found = one
        .post(
            &u,
            "/api/v1/vectors/messages/search",
            json!({"vector": axis(7), "limit": 1}),
        )
        .await
        .expect(200);
    assert_eq!(
        ids(&found, "id"),
        vec![written["ids"][0].as_str().unwrap().to_owned()]
    );
    // Entities answer the same on both.
    for node in [&one, &two] {
        let thread = node
            .get(&u, &format!("/api/v1/threads/{}", w.thread))
            .await
            .expect(200);
        assert_eq!(thread["id"], w.thread.as_str());
    }

    // Node 2's folder checks nothing: its index is not the one the outbox feeds, and a
    // check that applied the outbox to it would take entries node 1 then never sees.
    let refused = two.services.check_vectors().await.unwrap_err().to_string();
    assert!(
        refused.contains("is not the one this database's outbox feeds"),
        "{refused}"
    );

    // A rebuild from node 2's folder takes the lease from node 1, completes node 2's index
    // and names it; writes made meanwhile reach it. Node 1, taking the lease back, finds
    // another index named and rebuilds its own before it serves again: nothing it missed
    // while node 2 held the lease is lost.
    let rebuild = {
        let services = two.services.clone();
        tokio::spawn(async move { services.reindex_vectors().await })
    };
    let during = upsert_models(&one, &u, &w, 10..20, 3).await;
    rebuild.await.unwrap().expect("the rebuild from node 2");
    let after = upsert_models(&two, &u, &w, 20..30, 5).await;
    let mut expected: Vec<String> = during.into_iter().chain(after).collect();
    expected.push(written["ids"][0].as_str().unwrap().to_owned());
    // 22 points in all: one search of 30 lists every point node 1's index holds.
    let mut missing = expected.clone();
    for _ in 0..200 {
        let r = one
            .post(
                &u,
                "/api/v1/vectors/messages/search",
                json!({"vector": axis(1), "limit": 30}),
            )
            .await;
        if r.status == 200 {
            let held = ids(&r.body, "id");
            missing = expected
                .iter()
                .filter(|id| !held.contains(id))
                .cloned()
                .collect();
            if missing.is_empty() {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(missing.is_empty(), "node 1 serves without {missing:?}");
    let reports = one.services.check_vectors().await.unwrap();
    assert!(reports.iter().all(|r| !r.drifted()), "{reports:?}");
}

/// A hundred 1536-dimension vectors are about 3 MB of JSON: upserts take bodies up to the
/// batch limit (64 MB), other vector routes keep the ordinary 2 MB.
async fn upserts_take_batch_sized_bodies(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    // 3 MB: a small point padded with JSON whitespace.
    let padded = |body: Value| format!("{body}{}", " ".repeat(3 * 1024 * 1024));
    let send = |path: &'static str, body: String| {
        s.http
            .post(format!("{}{path}", s.base))
            .bearer_auth(&u.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for path in [
        "/api/v1/vectors/messages/points",
        "/api/v1/vectors/messages/points/batch",
    ] {
        let point = json!({"source_id": w.message, "workspace_id": w.workspace, "vector": axis(3)});
        let body = if path.ends_with("batch") {
            json!({ "points": [point] })
        } else {
            point
        };
        let res = send(path, padded(body)).await.unwrap();
        assert_eq!(res.status(), 200, "{path}: {}", res.text().await.unwrap());
    }
    let res = send(
        "/api/v1/vectors/messages/search",
        padded(json!({"vector": axis(3)})),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 413);
}

/// A message in the bin hides its embedding from vector and hybrid search (the page is
/// filled from the next nearest, not answered short); a restore brings it back; a thread
/// in the bin hides the embeddings of all its messages.
async fn embeddings_follow_their_source_into_the_bin_and_back(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let messages = format!("/api/v1/threads/{}/messages", w.thread);
    let mut sources = Vec::new();
    for i in 0..3 {
        let id = s
            .post(
                &u,
                &messages,
                json!({"role": "user", "content": format!("quokka report {i}")}),
            )
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        sources.push(id);
    }
    // The first is nearest to axis(1), the second next, the third furthest.
    let near = |weight: f32| {
        let mut v = axis(1);
        v[4] = weight;
        v
    };
    let points: Vec<Value> = sources
        .iter()
        .zip([0.0, 0.5, 1.0])
        .map(|(id, weight)| json!({"source_id": id, "workspace_id": w.workspace, "vector": near(weight)}))
        .collect();
    s.post(
        &u,
        "/api/v1/vectors/messages/points/batch?wait=true",
        json!({ "points": points }),
    )
    .await
    .expect(200);
    let nearest = |limit: u32| {
        let s = &s;
        let u = &u;
        async move {
            let found = s
                .post(
                    u,
                    "/api/v1/vectors/messages/search",
                    json!({"vector": axis(1), "limit": limit}),
                )
                .await
                .expect(200);
            ids(&found, "source_id")
        }
    };
    let hybrid = || {
        let s = &s;
        let u = &u;
        async move {
            let found = s
                .post(
                    u,
                    "/api/v1/search/hybrid",
                    json!({"q": "quokka", "vector": axis(1), "limit": 10}),
                )
                .await
                .expect(200);
            ids(&found, "id")
        }
    };
    assert_eq!(nearest(1).await, vec![sources[0].clone()]);

    s.delete(&u, &format!("/api/v1/messages/{}", sources[0]))
        .await
        .expect(200);
    assert_eq!(
        nearest(1).await,
        vec![sources[1].clone()],
        "the page is filled"
    );
    assert_eq!(nearest(5).await, sources[1..].to_vec());
    assert!(!hybrid().await.contains(&sources[0]));

    s.post(
        &u,
        &format!("/api/v1/messages/{}/restore", sources[0]),
        json!({}),
    )
    .await
    .expect(200);
    assert_eq!(nearest(5).await, sources);
    assert!(hybrid().await.contains(&sources[0]));

    s.delete(&u, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    assert!(nearest(5).await.is_empty());
    assert!(hybrid().await.is_empty());
}

/// An attachment deleted (for good: attachments have no bin) takes its embeddings with
/// it, from SQL and from the index, and from the storage counters.
async fn a_source_removed_for_good_takes_its_embeddings(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let attachment = s
        .post(
            &u,
            "/api/v1/attachments",
            json!({"workspace_id": w.workspace, "message_id": w.message, "file_name": "a.png"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.post(
        &u,
        "/api/v1/vectors/attachments/points?wait=true",
        json!({"source_id": attachment, "workspace_id": w.workspace, "vector": axis(5)}),
    )
    .await
    .expect(200);
    let found = || {
        let (s, u) = (&s, &u);
        async move {
            ids(
                &s.post(
                    u,
                    "/api/v1/vectors/attachments/search",
                    json!({"vector": axis(5), "limit": 5}),
                )
                .await
                .expect(200),
                "source_id",
            )
        }
    };
    assert_eq!(found().await, vec![attachment.clone()]);
    s.delete(&u, &format!("/api/v1/attachments/{attachment}"))
        .await
        .expect(204);
    let scrolled = s
        .get(&u, "/api/v1/vectors/attachments/points")
        .await
        .expect(200);
    assert!(
        scrolled["items"].as_array().unwrap().is_empty(),
        "{scrolled}"
    );
    let stats = s
        .get(
            &u,
            &format!("/api/v1/storage/stats?scope=workspace&id={}", w.workspace),
        )
        .await
        .expect(200);
    assert_eq!(stats["embeddings"]["count"], 0, "{stats}");
    // A message removed for good by any path (here SQL, as a purge would) does the same.
    s.post(
        &u,
        "/api/v1/vectors/messages/points?wait=true",
        json!({"source_id": w.message, "workspace_id": w.workspace, "vector": axis(6)}),
    )
    .await
    .expect(200);
    s.raw_execute(&format!("DELETE FROM messages WHERE id = '{}'", w.message))
        .await;
    assert_eq!(
        s.raw_text("SELECT CAST(COUNT(*) AS TEXT) FROM embedding_records")
            .await
            .as_deref(),
        Some("0")
    );
    // The embeddings' counters followed (the message's own did not: SQL went around the
    // write path, which is what a recount is for).
    let drift = s.services.store().reconcile_storage(false).await.unwrap();
    assert!(
        drift.iter().all(|d| d.category.as_str() == "messages"),
        "{drift:?}"
    );
    // The index follows through the outbox: it drains.
    outbox_drains(&s).await;
    assert!(found().await.is_empty());
}

/// Waits (up to 5 s) until the indexer has applied every outbox entry and the index made
/// them durable.
async fn outbox_drains(s: &TestServer) {
    let mut pending = None;
    for _ in 0..100 {
        pending = s
            .raw_text("SELECT CAST(COUNT(*) AS TEXT) FROM vector_outbox")
            .await;
        if pending.as_deref() == Some("0") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(pending.as_deref(), Some("0"), "the outbox did not drain");
}

/// The change log keeps a vector as the base64 of its bytes (a fifth of its size as JSON
/// numbers, and nothing to print), on a create and on a replacement; the feed shows the
/// numbers sent, exactly. An entry logged before, with the numbers as an array, is shown
/// as it was.
/// The operation and the vector of every embedding change `who` can pull.
async fn embedding_changes(s: &TestServer, who: &ceneca_e2e::User) -> Vec<(Value, Value)> {
    let page = s
        .get(who, "/api/v1/sync/pull?cursor=0&limit=1000")
        .await
        .expect(200);
    page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["entity"] == "embedding_records")
        .map(|c| (c["operation"].clone(), c["values"]["vector"].clone()))
        .collect()
}

async fn the_change_log_keeps_vectors_as_bytes_and_the_feed_shows_their_numbers(backend: Backend) {
    use base64::Engine as _;
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    // Numbers with no short decimal form, so printing and parsing them is put to the test.
    let first: Vec<f32> = (0..TEST_VECTOR_DIMS)
        .map(|i| (i as f32 + 1.0) / 7.0 - 0.3)
        .collect();
    let second: Vec<f32> = first.iter().map(|x| -x * 1.0e-3).collect();
    let mut point = String::new();
    for vector in [&first, &second] {
        let up = s
            .post(
                &u,
                "/api/v1/vectors/messages/points",
                json!({"source_id": w.message, "workspace_id": w.workspace, "vector": vector}),
            )
            .await
            .expect(200);
        point = up["ids"][0].as_str().unwrap().to_owned();
    }
    let as_f32 = |numbers: &Value| -> Vec<f32> {
        numbers
            .as_array()
            .unwrap_or_else(|| panic!("numbers, not {numbers}"))
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let changes = embedding_changes(&s, &u).await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0].0, "create");
    assert_eq!(changes[1].0, "update");
    assert_eq!(
        as_f32(&changes[0].1),
        first,
        "the create shows the numbers sent"
    );
    assert_eq!(as_f32(&changes[1].1), second, "the replacement too");

    let payloads = match backend {
        Backend::Sqlite => "SELECT group_concat(payload, ' ') FROM sync_events",
        Backend::Postgres => "SELECT string_agg(payload::text, ' ') FROM sync_events",
    };
    let stored = s
        .raw_text(&format!("{payloads} WHERE entity_id = '{point}'"))
        .await
        .unwrap();
    for vector in [&first, &second] {
        let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        let kept = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert!(stored.contains(&kept), "{kept} is not in {stored}");
    }

    // An entry logged with the numbers as an array reads as it was.
    let old = json!({ "vector": [0.5, -0.25] });
    s.raw_execute(&match backend {
        Backend::Sqlite => format!(
            "UPDATE sync_events SET payload = '{old}' WHERE entity_id = '{point}' AND operation = 'update'"
        ),
        Backend::Postgres => format!(
            "UPDATE sync_events SET payload = '{old}'::jsonb WHERE entity_id = '{point}' AND operation = 'update'"
        ),
    })
    .await;
    // Reads of the feed are shared for a quarter second; an edit by hand does not end it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let changes = embedding_changes(&s, &u).await;
    assert_eq!(changes[1].1, json!([0.5, -0.25]));
}
