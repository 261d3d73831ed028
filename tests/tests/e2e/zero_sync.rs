//! The zero-sync edition keeps its promise that nothing stored points outside the
//! network: every write path refuses text that refers outside (422, naming the field path
//! and the host), stores nothing of a refused write, and lets ordinary text and internal
//! addresses through. The enterprise edition does the same only when asked.

use ceneca_domain::Edition;
use ceneca_domain::network::ReferenceScanner;
use ceneca_e2e::{Backend, TEST_VECTOR_DIMS, TestServer, on_every_backend, samples, world};
use ceneca_service::ServiceConfig;
use serde_json::{Value, json};

on_every_backend!(
    every_field_of_every_resource_refuses_external_references,
    ordinary_text_and_internal_addresses_are_stored,
    a_refused_batch_stores_nothing_and_names_the_item,
    provider_configs_need_an_internal_base_url,
    vector_points_names_and_tokens_are_screened,
    the_enterprise_edition_screens_only_when_asked,
);

async fn zero_sync(backend: Backend) -> TestServer {
    TestServer::start_with(
        backend,
        ServiceConfig {
            edition: Edition::ZeroSync,
            ..Default::default()
        },
    )
    .await
}

/// Every string leaf of a JSON value with its path, as error paths name it.
fn string_leaves(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::String(_) => out.push(path.to_owned()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                string_leaves(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let at = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                string_leaves(v, &at, out);
            }
        }
        _ => {}
    }
}

/// `value` with the string at `path` replaced by `text`.
fn replaced(value: &Value, path: &str, text: &str) -> Value {
    let mut out = value.clone();
    let mut cursor = &mut out;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cursor = &mut cursor[key];
        if let Some(i) = index {
            cursor = &mut cursor[i];
        }
    }
    *cursor = json!(text);
    out
}

/// For every resource, every string of its create body and of its patch body in turn
/// carries a reference outside the network (each in another disguise): each write is
/// refused naming that field, and the resource's rows are unchanged.
async fn every_field_of_every_resource_refuses_external_references(backend: Backend) {
    let s = zero_sync(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let disguises = [
        "see https://api.openai.com/v1/chat",
        "mirror at //cdn.example.net/lib.js",
        "ping 8.8.8.8 first",
        "open http://134744072/",
        "https%3A%2F%2Fevil.example.com%2Fx",
        "ｈｔｔｐｓ：／／ｅｖｉｌ．ｅｘａｍｐｌｅ．ｃｏｍ／ｘ",
        "weights on huggingface.co",
        "curl files.example.org",
    ];
    let mut tried = 0;
    for mut sample in samples(&w) {
        if sample.path == "provider-configs" {
            // Zero-sync needs a base URL inside the network.
            sample.create["base_url"] = json!("http://ollama:11434");
        }
        let path = format!("/api/v1/{}", sample.path);
        let before = s.list_all(&u, &path).await.len();
        let mut leaves = Vec::new();
        string_leaves(&sample.create, "", &mut leaves);
        for (n, leaf) in leaves.iter().enumerate() {
            let text = disguises[n % disguises.len()];
            let body = replaced(&sample.create, leaf, text);
            let r = s.post(&u, &path, body).await;
            assert_eq!(r.status, 422, "{path} {leaf} {text}: {}", r.body);
            let reason = r.body["error"]["fields"][leaf.as_str()]
                .as_str()
                .unwrap_or_else(|| panic!("{path}: {leaf} not named in {}", r.body));
            assert!(reason.contains("refers outside the network"), "{reason}");
            tried += 1;
        }
        assert_eq!(
            s.list_all(&u, &path).await.len(),
            before,
            "{path}: a refused write stored a row"
        );
        if let Some(patch) = &sample.patch {
            let id = s.post(&u, &path, sample.create.clone()).await.expect(201)["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let mut leaves = Vec::new();
            string_leaves(patch, "", &mut leaves);
            for leaf in leaves {
                let body = replaced(patch, &leaf, "moved to https://example.com/x");
                let r = s.patch(&u, &format!("{path}/{id}"), body).await;
                assert_eq!(r.status, 422, "{path} patch {leaf}: {}", r.body);
                assert!(
                    r.body["error"]["fields"][leaf.as_str()].is_string(),
                    "{}",
                    r.body
                );
                tried += 1;
            }
        }
    }
    assert!(tried > 40, "only {tried} fields tried");
}

async fn ordinary_text_and_internal_addresses_are_stored(backend: Backend) {
    let s = zero_sync(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    for content in [
        "Release 1.2.3 and v8.8.8 fix README.md, setup.py and main.rs:42.",
        "Ask alice@example.com; the wiki is https://wiki.internal/page.",
        "Ollama runs at http://localhost:11434 and http://10.1.2.3:8080/v1.",
        "e.g. node.js at 10:30, ratio 16:9, std::vector<int>",
        "I read about it on example.com last week.",
    ] {
        let m = s
            .post(
                &u,
                &format!("/api/v1/threads/{}/messages", w.thread),
                json!({"role": "user", "content": content}),
            )
            .await
            .expect(201);
        assert_eq!(m["content"], content);
    }
    s.post(
        &u,
        "/api/v1/documents",
        json!({"workspace_id": w.workspace, "title": "Links", "body": "[home](http://intranet.lan/)",
               "metadata": {"source": "http://192.168.1.20/share", "tags": ["a.b", "v1.2"]}}),
    )
    .await
    .expect(201);
}

async fn a_refused_batch_stores_nothing_and_names_the_item(backend: Backend) {
    let s = zero_sync(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let path = format!("/api/v1/threads/{}/messages", w.thread);
    let before = s.list_all(&u, &path).await.len();
    let mut items: Vec<Value> = (0..50)
        .map(|i| json!({"role": "user", "content": format!("line {i}")}))
        .collect();
    items[37] = json!({"role": "user", "content": "fine", "metadata": {"links": ["ok", "https:\\/\\/api.example.com\\/v1"]}});
    let r = s
        .post(&u, &format!("{path}/batch"), json!({"items": items}))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let reason = r.body["error"]["fields"]["items[37].metadata.links[1]"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", r.body));
    assert!(reason.contains("api.example.com"), "{reason}");
    assert_eq!(s.list_all(&u, &path).await.len(), before);
}

async fn provider_configs_need_an_internal_base_url(backend: Backend) {
    let s = zero_sync(backend).await;
    let u = s.user("u").await;
    // No base URL means the provider's public host.
    let r = s
        .post(
            &u,
            "/api/v1/provider-configs",
            json!({"provider": "openai", "name": "cloud"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["error"]["fields"]["base_url"].is_string());
    for external in [
        "https://api.openai.com/v1",
        "http://134744072/",
        "http://api.openai.com\\@10.0.0.1/",
        "http://169.254.169.254/",
    ] {
        let r = s
            .post(
                &u,
                "/api/v1/provider-configs",
                json!({"provider": "openai", "name": "x", "base_url": external}),
            )
            .await;
        assert_eq!(r.status, 422, "{external}: {}", r.body);
        assert!(
            r.body["error"]["fields"]["base_url"].is_string(),
            "{}",
            r.body
        );
    }
    let config = s
        .post(
            &u,
            "/api/v1/provider-configs",
            json!({"provider": "ollama", "name": "local", "base_url": "http://ollama:11434"}),
        )
        .await
        .expect(201);
    // Clearing it would fall back to a public host.
    let r = s
        .patch(
            &u,
            &format!(
                "/api/v1/provider-configs/{}",
                config["id"].as_str().unwrap()
            ),
            json!({"base_url": null}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
}

async fn vector_points_names_and_tokens_are_screened(backend: Backend) {
    let s = zero_sync(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let vector: Vec<f32> = (0..TEST_VECTOR_DIMS).map(|i| i as f32).collect();
    let r = s
        .post(
            &u,
            "/api/v1/vectors/messages/points/batch",
            json!({"points": [
                {"workspace_id": w.workspace, "source_id": w.message, "vector": vector},
                {"workspace_id": w.workspace, "source_id": w.message, "vector": vector, "model": "see https://huggingface.co/x"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["error"]["fields"]["points[1].model"].is_string(),
        "{}",
        r.body
    );
    let r = s
        .post(
            &u,
            "/api/v1/api-tokens",
            json!({"name": "for https://evil.example.com/x", "workspace_id": w.workspace}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["error"]["fields"]["name"].is_string(), "{}", r.body);
    let r = s
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/register",
            None,
            Some(&json!({"email": "n@example.com", "password": "long enough pw", "display_name": "www.example.com"})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["error"]["fields"]["display_name"].is_string(),
        "{}",
        r.body
    );
    // Review finding: an e-mail address can hold a URL, and the name derived from it too.
    let r = s
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/register",
            None,
            Some(&json!({"email": "https://evil.example.com/x@corp.io", "password": "long enough pw"})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["error"]["fields"]["email"].is_string(), "{}", r.body);
}

async fn the_enterprise_edition_screens_only_when_asked(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let body = json!({"role": "user", "content": "see https://api.openai.com/v1"});
    let path = format!("/api/v1/threads/{}/messages", w.thread);
    s.post(&u, &path, body.clone()).await.expect(201);
    let strict = TestServer::start_with(
        backend,
        ServiceConfig {
            reference_scanner: Some(std::sync::Arc::new(ReferenceScanner::default())),
            ..Default::default()
        },
    )
    .await;
    let u = strict.user("u").await;
    let w = world(&strict, &u).await;
    let r = strict
        .post(&u, &format!("/api/v1/threads/{}/messages", w.thread), body)
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
}
