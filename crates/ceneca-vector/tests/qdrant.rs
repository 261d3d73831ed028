//! The same contract on a Qdrant server, when the test command is given one:
//! `CENECA_TEST_QDRANT_URL=http://host:6334` (and `CENECA_TEST_QDRANT_API_KEY` if it needs
//! one). Each test works under its own collection prefix and drops nothing else.
//!
//! Without a server, only what needs none runs: an unreachable server is "unavailable"
//! (retry later), never a panic or a hang, and Ceneca still starts. The others are
//! `#[ignore]`d then, and the test command says so.

mod contract;

use std::time::Duration;

use ceneca_vector::server::{QdrantIndex, QdrantSettings};
use ceneca_vector::{OnOtherDimensions, VectorError, VectorIndex, sample};
use contract::{C, points, query, recall};
use uuid::Uuid;

fn settings(url: String) -> QdrantSettings {
    QdrantSettings {
        url,
        api_key: std::env::var("CENECA_TEST_QDRANT_API_KEY").ok(),
        collection_prefix: format!("test_{}_", Uuid::now_v7().simple()),
        timeout: Duration::from_secs(30),
        indexing_threshold_kb: None,
    }
}

/// The configured server. These tests are `#[ignore]`d unless the test command is given
/// one (it then runs them with `--run-ignored`); run by hand without one, they fail saying so.
fn server() -> QdrantSettings {
    let url = std::env::var("CENECA_TEST_QDRANT_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("set CENECA_TEST_QDRANT_URL=http://host:6334 to run the Qdrant-server contract");
    settings(url)
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_not_a_failure_to_start() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = settings(format!("http://127.0.0.1:{port}"));
    s.timeout = Duration::from_secs(3);
    let index = QdrantIndex::connect(&s).unwrap();
    // Opening succeeds: the collection is created once the server answers.
    index
        .open_collection(C, 8, OnOtherDimensions::Refuse)
        .await
        .unwrap();
    let ws = Uuid::now_v7();
    let p = points(sample::clustered(3, 8, 1, 0.4, 1), &[ws]);
    for result in [
        index.upsert(C, p.clone()).await.err(),
        index
            .search(C, query(p[0].vector.clone(), vec![ws]))
            .await
            .err(),
        index.persist(C).await.err(),
    ] {
        assert!(
            matches!(result, Some(VectorError::Unavailable(_))),
            "{result:?}"
        );
    }
    assert!(matches!(
        index.search("nope", query(vec![0.0; 8], vec![ws])).await,
        Err(VectorError::UnknownCollection(_))
    ));
    assert!(
        QdrantIndex::connect(&settings("not a url".into())).is_err(),
        "a malformed URL is refused up front"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Qdrant server: CENECA_TEST_QDRANT_URL"]
async fn qdrant_server_keeps_the_contract() {
    let s = server();
    let data = contract::two_tenants();
    {
        let index = QdrantIndex::connect(&s).unwrap();
        index
            .open_collection(C, 16, OnOtherDimensions::Refuse)
            .await
            .unwrap();
        contract::filters_deletes_thresholds(&index, &data).await;
    }
    // A new client (a restarted Ceneca) finds the same collection and answers.
    let index = QdrantIndex::connect(&s).unwrap();
    index
        .open_collection(C, 16, OnOtherDimensions::Refuse)
        .await
        .unwrap();
    contract::same_answers_after_restart(&index, &data).await;

    // Rebuild and swap through the alias, under another prefix.
    let index = QdrantIndex::connect(&server()).unwrap();
    index
        .open_collection(C, 8, OnOtherDimensions::Refuse)
        .await
        .unwrap();
    contract::rebuild_swaps_in_new_content(&index).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Qdrant server: CENECA_TEST_QDRANT_URL"]
async fn qdrant_server_recall_at_10_against_exact_cosine() {
    let mut s = server();
    // 20,000 × 64 floats is about 5 MB, under the server's default threshold (20 MB): without
    // this, the server never builds HNSW and the test would score exact search.
    s.indexing_threshold_kb = Some(200);
    let index = QdrantIndex::connect(&s).unwrap();
    let dims = 64;
    index
        .open_collection(C, dims, OnOtherDimensions::Refuse)
        .await
        .unwrap();
    let ws = [Uuid::now_v7()];
    let mut vectors = sample::clustered(20_200, dims, 100, 0.5, 7);
    let queries = vectors.split_off(20_000);
    let all = points(vectors, &ws);
    for chunk in all.chunks(1000) {
        index.upsert(C, chunk.to_vec()).await.unwrap();
    }
    // Let the server's optimizer build HNSW (searches are exact until then); a recall
    // measured on exact search would prove nothing, so an index never built fails.
    let mut stats = index.stats(C).await.unwrap();
    for _ in 0..120 {
        if stats.indexed >= 10_000 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        stats = index.stats(C).await.unwrap();
    }
    assert!(
        stats.indexed >= 10_000,
        "the server did not build HNSW: {stats:?}"
    );
    let r = recall(&index, &all, &queries, &ws).await;
    println!("Qdrant server recall@10, clustered 20k x {dims}: {r:.3}");
    assert!(r >= 0.95, "recall@10 {r:.3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Qdrant server: CENECA_TEST_QDRANT_URL"]
async fn qdrant_server_lists_and_retrieves_what_it_holds() {
    let index = QdrantIndex::connect(&server()).unwrap();
    index
        .open_collection(C, 8, OnOtherDimensions::Refuse)
        .await
        .unwrap();
    contract::lists_and_retrieves_what_it_holds(&index).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Qdrant server: CENECA_TEST_QDRANT_URL"]
async fn qdrant_server_refuses_other_dimensions_unless_a_rebuild_replaces_them() {
    // One prefix for every client: two deployments sharing it.
    let s = server();
    contract::other_dimensions_are_refused_unless_replaced(|| {
        let s = s.clone();
        async move { QdrantIndex::connect(&s).unwrap() }
    })
    .await;
}
