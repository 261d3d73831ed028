//! The contract of the embedded index (qdrant-edge behind the `VectorIndex` trait):
//! recall against exact cosine, filters, deletes, persistence across a restart, and a
//! rebuild swapped in while searches go on.

mod contract;

use std::sync::Arc;

use ceneca_vector::embedded::{EdgeIndex, EdgeSettings};
use ceneca_vector::{VectorIndex, sample};
use contract::{C, points, recall};
use uuid::Uuid;

/// An index small enough to build HNSW in seconds: segments above 200 KB get indexed.
fn small_index(dir: &std::path::Path) -> Arc<EdgeIndex> {
    EdgeIndex::open(
        dir,
        EdgeSettings {
            indexing_threshold_kb: Some(200),
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hnsw_recall_at_10_against_exact_cosine() {
    let dir = tempfile::tempdir().unwrap();
    let index = small_index(dir.path());
    let dims = 64;
    index.open_collection(C, dims).await.unwrap();
    let ws = [Uuid::now_v7()];
    // Queries are held out of the same distribution: near the data, as real ones are.
    let mut vectors = sample::clustered(20_200, dims, 100, 0.5, 7);
    let queries = vectors.split_off(20_000);
    let clustered = points(vectors, &ws);
    for chunk in clustered.chunks(1000) {
        index.upsert(C, chunk.to_vec()).await.unwrap();
    }
    index.optimize_now(C).unwrap();
    let stats = index.stats(C).await.unwrap();
    assert_eq!(stats.points, 20_000);
    assert!(stats.indexed > 10_000, "HNSW was not built: {stats:?}");
    let r = recall(&index, &clustered, &queries, &ws).await;
    println!("recall@10, clustered 20k x {dims}: {r:.3}");
    assert!(r >= 0.95, "recall@10 {r:.3} on clustered data");

    // Uniform random directions: the worst case, reported, with a lower bar.
    let dir2 = tempfile::tempdir().unwrap();
    let uniform_index = small_index(dir2.path());
    uniform_index.open_collection(C, dims).await.unwrap();
    let uniform = points(sample::uniform(20_000, dims, 9), &ws);
    for chunk in uniform.chunks(1000) {
        uniform_index.upsert(C, chunk.to_vec()).await.unwrap();
    }
    uniform_index.optimize_now(C).unwrap();
    let r = recall(
        &uniform_index,
        &uniform,
        &sample::uniform(100, dims, 10),
        &ws,
    )
    .await;
    println!("recall@10, uniform 20k x {dims}: {r:.3}");
    assert!(r >= 0.80, "recall@10 {r:.3} on uniform data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_deletes_thresholds_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = contract::two_tenants();
    {
        let index = small_index(dir.path());
        index.open_collection(C, 16).await.unwrap();
        contract::filters_deletes_thresholds(&index, &data).await;
        index.close();
    }
    // After a restart the same answers come back.
    let index = small_index(dir.path());
    index.open_collection(C, 16).await.unwrap();
    contract::same_answers_after_restart(&index, &data).await;
    // A changed dimension is an error, not a panic.
    assert!(index.open_collection(C, 32).await.is_err());
    index.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_is_swapped_in_while_searches_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let index = small_index(dir.path());
    index.open_collection(C, 8).await.unwrap();
    contract::rebuild_swaps_in_new_content(&index).await;
    index.close();
    drop(index);
    // The swapped-in shard is the one that loads after a restart.
    let index = small_index(dir.path());
    index.open_collection(C, 8).await.unwrap();
    assert_eq!(index.stats(C).await.unwrap().points, 200);
    index.close();
}
