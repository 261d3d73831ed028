//! The contract of the embedded index (qdrant-edge behind the `VectorIndex` trait):
//! recall against exact cosine, filters, deletes, persistence across a restart, and a
//! rebuild swapped in while searches go on.

mod contract;

use std::sync::Arc;

use ceneca_vector::embedded::{EdgeIndex, EdgeSettings};
use ceneca_vector::{OnOtherDimensions, VectorIndex, sample};
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
    index
        .open_collection(C, dims, OnOtherDimensions::Refuse)
        .await
        .unwrap();
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
    uniform_index
        .open_collection(C, dims, OnOtherDimensions::Refuse)
        .await
        .unwrap();
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
        index
            .open_collection(C, 16, OnOtherDimensions::Refuse)
            .await
            .unwrap();
        contract::filters_deletes_thresholds(&index, &data).await;
        index.close();
    }
    // After a restart the same answers come back.
    let index = small_index(dir.path());
    index
        .open_collection(C, 16, OnOtherDimensions::Refuse)
        .await
        .unwrap();
    contract::same_answers_after_restart(&index, &data).await;
    // A changed dimension is an error, not a panic.
    assert!(
        index
            .open_collection(C, 32, OnOtherDimensions::Refuse)
            .await
            .is_err()
    );
    index.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_is_swapped_in_while_searches_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let index = small_index(dir.path());
    index
        .open_collection(C, 8, OnOtherDimensions::Refuse)
        .await
        .unwrap();
    contract::rebuild_swaps_in_new_content(&index).await;
    index.close();
    drop(index);
    // The swapped-in shard is the one that loads after a restart.
    let index = small_index(dir.path());
    index
        .open_collection(C, 8, OnOtherDimensions::Refuse)
        .await
        .unwrap();
    assert_eq!(index.stats(C).await.unwrap().points, 200);
    index.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_lists_and_retrieves_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let index = small_index(dir.path());
    index
        .open_collection(C, 8, OnOtherDimensions::Refuse)
        .await
        .unwrap();
    contract::lists_and_retrieves_what_it_holds(&index).await;
    index.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_dimensions_are_refused_unless_a_rebuild_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    contract::other_dimensions_are_refused_unless_replaced(|| {
        let path = path.clone();
        async move { ClosedOnDrop(small_index(&path)) }
    })
    .await;
}

#[test]
fn a_second_process_cannot_open_the_same_folder() {
    let dir = tempfile::tempdir().unwrap();
    let first = small_index(dir.path());
    // A lock of another open file description, as another process's would be.
    let second = EdgeIndex::open(dir.path(), EdgeSettings::default());
    assert!(
        matches!(second, Err(ceneca_vector::VectorError::InUse(_))),
        "the folder opened twice"
    );
    first.close();
    drop(first);
    EdgeIndex::open(dir.path(), EdgeSettings::default()).expect("free once the first is gone");
}

/// The embedded index, closed (flushed, its folder let go) when dropped, as a stopped
/// process leaves it.
struct ClosedOnDrop(Arc<EdgeIndex>);

impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[async_trait::async_trait]
impl VectorIndex for ClosedOnDrop {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    async fn open_collection(
        &self,
        collection: &str,
        dims: usize,
        other: OnOtherDimensions,
    ) -> ceneca_vector::Result<()> {
        self.0.open_collection(collection, dims, other).await
    }
    async fn upsert(
        &self,
        collection: &str,
        points: Vec<ceneca_vector::Point>,
    ) -> ceneca_vector::Result<()> {
        self.0.upsert(collection, points).await
    }
    async fn delete(&self, collection: &str, ids: Vec<Uuid>) -> ceneca_vector::Result<()> {
        self.0.delete(collection, ids).await
    }
    async fn search(
        &self,
        collection: &str,
        query: ceneca_vector::Query,
    ) -> ceneca_vector::Result<Vec<ceneca_vector::Hit>> {
        self.0.search(collection, query).await
    }
    async fn retrieve(
        &self,
        collection: &str,
        ids: Vec<Uuid>,
    ) -> ceneca_vector::Result<Vec<ceneca_vector::Point>> {
        self.0.retrieve(collection, ids).await
    }
    async fn ids(
        &self,
        collection: &str,
        from: Option<Uuid>,
        limit: usize,
    ) -> ceneca_vector::Result<(Vec<Uuid>, Option<Uuid>)> {
        self.0.ids(collection, from, limit).await
    }
    async fn stats(
        &self,
        collection: &str,
    ) -> ceneca_vector::Result<ceneca_vector::CollectionStats> {
        self.0.stats(collection).await
    }
    async fn persist(&self, collection: &str) -> ceneca_vector::Result<bool> {
        self.0.persist(collection).await
    }
    async fn rebuild(
        &self,
        collection: &str,
        points: Option<Vec<ceneca_vector::Point>>,
    ) -> ceneca_vector::Result<()> {
        self.0.rebuild(collection, points).await
    }
}

/// A collection's shard is loaded (or created) at its first use, not when the index
/// opens: a server that never touches a collection neither maps its files nor waits for
/// them at start. Its dimensions are still checked at open, from the shard's
/// configuration file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_is_loaded_at_its_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let shards = |dir: &std::path::Path| {
        std::fs::read_dir(dir.join(C))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("shard-"))
                    .count()
            })
            .unwrap_or(0)
    };
    let ws = Uuid::now_v7();
    let p = points(sample::clustered(10, 8, 1, 0.4, 8), &[ws]);
    {
        let index = small_index(dir.path());
        index
            .open_collection(C, 8, OnOtherDimensions::Refuse)
            .await
            .unwrap();
        assert_eq!(shards(dir.path()), 0, "a shard was made before any use");
        let found = index
            .search(C, contract::query(p[0].vector.clone(), vec![ws]))
            .await
            .unwrap();
        assert!(found.is_empty());
        assert_eq!(shards(dir.path()), 1, "the first use makes the shard");
        index.upsert(C, p.clone()).await.unwrap();
        assert!(index.persist(C).await.unwrap());
        index.close();
    }
    {
        let index = small_index(dir.path());
        // Checked without loading the shard.
        assert!(matches!(
            index
                .open_collection(C, 16, OnOtherDimensions::Refuse)
                .await,
            Err(ceneca_vector::VectorError::OtherDimensions { stored: 8, .. })
        ));
        index
            .open_collection(C, 8, OnOtherDimensions::Refuse)
            .await
            .unwrap();
        // Flushing a collection nobody used since the start has nothing to do.
        assert!(index.persist(C).await.unwrap());
        assert_eq!(index.retrieve(C, vec![p[3].id]).await.unwrap().len(), 1);
        index.close();
    }
}
