//! The contract of the embedded index (qdrant-edge behind the `VectorIndex` trait):
//! recall against exact cosine, filters, deletes, persistence across a restart, and a
//! rebuild swapped in while searches go on.

use std::collections::HashSet;
use std::sync::Arc;

use ceneca_vector::embedded::{EdgeIndex, EdgeSettings};
use ceneca_vector::{Point, Query, VectorIndex, exact, sample};
use uuid::Uuid;

const C: &str = "messages";

fn points(vectors: Vec<Vec<f32>>, workspaces: &[Uuid]) -> Vec<Point> {
    vectors
        .into_iter()
        .enumerate()
        .map(|(i, vector)| Point {
            id: Uuid::now_v7(),
            vector,
            workspace_id: workspaces[i % workspaces.len()],
            source_id: Uuid::now_v7(),
            kind: "message",
        })
        .collect()
}

fn query(vector: Vec<f32>, workspaces: Vec<Uuid>) -> Query {
    Query {
        vector,
        limit: 10,
        workspaces: Some(workspaces),
        source_ids: Vec::new(),
        score_threshold: None,
    }
}

/// Mean recall@10 of the index against exact search over `queries`.
async fn recall(index: &Arc<EdgeIndex>, all: &[Point], queries: &[Vec<f32>], ws: &[Uuid]) -> f64 {
    let mut total = 0.0;
    for q in queries {
        let q = query(q.clone(), ws.to_vec());
        let truth: HashSet<Uuid> = exact::top_k(all, &q).iter().map(|h| h.id).collect();
        let got: HashSet<Uuid> = index
            .search(C, q)
            .await
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        total += truth.intersection(&got).count() as f64 / truth.len().max(1) as f64;
    }
    total / queries.len() as f64
}

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
    let clustered = points(sample::clustered(20_000, dims, 100, 0.5, 7), &ws);
    for chunk in clustered.chunks(1000) {
        index.upsert(C, chunk.to_vec()).await.unwrap();
    }
    index.optimize_now(C).unwrap();
    let stats = index.stats(C).await.unwrap();
    assert_eq!(stats.points, 20_000);
    assert!(stats.indexed > 10_000, "HNSW was not built: {stats:?}");
    let queries = sample::clustered(200, dims, 100, 0.5, 8);
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
    let (mine, theirs) = (Uuid::now_v7(), Uuid::now_v7());
    let all = points(sample::clustered(600, 16, 5, 0.4, 1), &[mine, theirs]);
    {
        let index = small_index(dir.path());
        index.open_collection(C, 16).await.unwrap();
        index.upsert(C, all.clone()).await.unwrap();

        // Only the asked workspaces, only the asked sources.
        let hits = index
            .search(C, query(all[0].vector.clone(), vec![mine]))
            .await
            .unwrap();
        assert_eq!(hits.len(), 10);
        let by_id: std::collections::HashMap<Uuid, &Point> =
            all.iter().map(|p| (p.id, p)).collect();
        assert!(hits.iter().all(|h| by_id[&h.id].workspace_id == mine));
        assert_eq!(hits[0].id, all[0].id);
        assert!((hits[0].score - 1.0).abs() < 1e-4, "{hits:?}");
        let mut q = query(all[0].vector.clone(), vec![mine, theirs]);
        q.source_ids = vec![all[2].source_id, all[3].source_id];
        let hits = index.search(C, q).await.unwrap();
        let ids: HashSet<Uuid> = hits.iter().map(|h| h.id).collect();
        assert_eq!(ids, HashSet::from([all[2].id, all[3].id]));
        assert!(
            index
                .search(C, query(all[0].vector.clone(), vec![]))
                .await
                .unwrap()
                .is_empty()
        );
        let mut q = query(all[0].vector.clone(), vec![mine]);
        q.score_threshold = Some(0.999);
        assert_eq!(index.search(C, q).await.unwrap().len(), 1);

        // Deletes are honoured.
        index.delete(C, vec![all[0].id]).await.unwrap();
        let hits = index
            .search(C, query(all[0].vector.clone(), vec![mine]))
            .await
            .unwrap();
        assert!(hits.iter().all(|h| h.id != all[0].id));
        assert!(index.persist(C).await.unwrap());
        index.close();
    }
    // After a restart the same answers come back.
    let index = small_index(dir.path());
    index.open_collection(C, 16).await.unwrap();
    assert_eq!(index.stats(C).await.unwrap().points, 599);
    let hits = index
        .search(C, query(all[1].vector.clone(), vec![mine, theirs]))
        .await
        .unwrap();
    assert_eq!(hits[0].id, all[1].id);
    assert!(
        index
            .search(C, query(all[0].vector.clone(), vec![mine]))
            .await
            .unwrap()
            .iter()
            .all(|h| h.id != all[0].id)
    );
    // Unknown collections and a changed dimension are errors, not panics.
    assert!(
        index
            .search("nope", query(vec![0.0; 16], vec![mine]))
            .await
            .is_err()
    );
    assert!(index.open_collection(C, 32).await.is_err());
    index.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_is_swapped_in_while_searches_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Uuid::now_v7();
    let old = points(sample::clustered(300, 8, 3, 0.4, 2), &[ws]);
    let new = points(sample::clustered(200, 8, 3, 0.4, 3), &[ws]);
    let index = small_index(dir.path());
    index.open_collection(C, 8).await.unwrap();
    index.upsert(C, old.clone()).await.unwrap();
    index.rebuild(C, Some(new[..100].to_vec())).await.unwrap();
    // Still the old content until the swap.
    let hits = index
        .search(C, query(old[5].vector.clone(), vec![ws]))
        .await
        .unwrap();
    assert_eq!(hits[0].id, old[5].id);
    index.rebuild(C, Some(new[100..].to_vec())).await.unwrap();
    index.rebuild(C, None).await.unwrap();
    assert_eq!(index.stats(C).await.unwrap().points, 200);
    let hits = index
        .search(C, query(new[150].vector.clone(), vec![ws]))
        .await
        .unwrap();
    assert_eq!(hits[0].id, new[150].id);
    assert!(index.persist(C).await.unwrap());
    index.close();
    drop(index);
    // The swapped-in shard is the one that loads after a restart.
    let index = small_index(dir.path());
    index.open_collection(C, 8).await.unwrap();
    assert_eq!(index.stats(C).await.unwrap().points, 200);
    index.close();
}
