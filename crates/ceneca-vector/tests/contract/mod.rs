//! The contract every `VectorIndex` keeps, written once and run on each implementation:
//! the embedded engine (`embedded.rs`) and a Qdrant server (`qdrant.rs`).

// Each test binary uses the part of the contract its engine can run.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use ceneca_vector::{OnOtherDimensions, Point, Query, VectorIndex, exact, sample};
use uuid::Uuid;

pub const C: &str = "messages";

pub fn points(vectors: Vec<Vec<f32>>, workspaces: &[Uuid]) -> Vec<Point> {
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

pub fn query(vector: Vec<f32>, workspaces: Vec<Uuid>) -> Query {
    Query {
        vector,
        limit: 10,
        workspaces: Some(workspaces),
        source_ids: Vec::new(),
        score_threshold: None,
    }
}

/// Mean recall@10 of the index against exact search over `queries`.
pub async fn recall(
    index: &dyn VectorIndex,
    all: &[Point],
    queries: &[Vec<f32>],
    ws: &[Uuid],
) -> f64 {
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

/// 600 points of 16 dimensions in two workspaces, for [`filters_deletes_thresholds`].
pub fn two_tenants() -> (Uuid, Uuid, Vec<Point>) {
    let (mine, theirs) = (Uuid::now_v7(), Uuid::now_v7());
    let all = points(sample::clustered(600, 16, 5, 0.4, 1), &[mine, theirs]);
    (mine, theirs, all)
}

/// Workspace and source filters, the score threshold and a delete, on an open collection
/// of 16 dimensions; leaves 599 points (`all[0]` deleted) persisted.
pub async fn filters_deletes_thresholds(
    index: &dyn VectorIndex,
    (mine, theirs, all): &(Uuid, Uuid, Vec<Point>),
) {
    let (mine, theirs) = (*mine, *theirs);
    index.upsert(C, all.clone()).await.unwrap();

    // Only the asked workspaces, only the asked sources.
    let hits = index
        .search(C, query(all[0].vector.clone(), vec![mine]))
        .await
        .unwrap();
    assert_eq!(hits.len(), 10);
    let by_id: HashMap<Uuid, &Point> = all.iter().map(|p| (p.id, p)).collect();
    assert!(hits.iter().all(|h| by_id[&h.id].workspace_id == mine));
    assert!(
        hits.iter()
            .all(|h| by_id[&h.id].source_id == h.source_id && h.workspace_id == mine)
    );
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
}

/// What [`filters_deletes_thresholds`] left, seen by a reopened index.
pub async fn same_answers_after_restart(
    index: &dyn VectorIndex,
    (mine, theirs, all): &(Uuid, Uuid, Vec<Point>),
) {
    assert_eq!(index.stats(C).await.unwrap().points, 599);
    let hits = index
        .search(C, query(all[1].vector.clone(), vec![*mine, *theirs]))
        .await
        .unwrap();
    assert_eq!(hits[0].id, all[1].id);
    assert!(
        index
            .search(C, query(all[0].vector.clone(), vec![*mine]))
            .await
            .unwrap()
            .iter()
            .all(|h| h.id != all[0].id)
    );
    // Unknown collections are errors, not panics.
    assert!(
        index
            .search("nope", query(vec![0.0; 16], vec![*mine]))
            .await
            .is_err()
    );
}

/// A rebuild fills new content aside while searches answer from the old, then swaps:
/// 300 old points of 8 dimensions replaced by 200 new ones.
pub async fn rebuild_swaps_in_new_content(index: &dyn VectorIndex) {
    let ws = Uuid::now_v7();
    let old = points(sample::clustered(300, 8, 3, 0.4, 2), &[ws]);
    let new = points(sample::clustered(200, 8, 3, 0.4, 3), &[ws]);
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
}

/// What the drift check reads: `retrieve` answers the points held (vector, payload), leaves
/// out the others, and `ids` pages through every id held, once each. On an open, empty
/// collection of 8 dimensions.
pub async fn lists_and_retrieves_what_it_holds(index: &dyn VectorIndex) {
    let ws = Uuid::now_v7();
    let all = points(sample::clustered(250, 8, 3, 0.4, 4), &[ws]);
    index.upsert(C, all.clone()).await.unwrap();
    index.delete(C, vec![all[7].id]).await.unwrap();
    let absent = Uuid::now_v7();
    let got = index
        .retrieve(C, vec![all[3].id, all[7].id, absent])
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "only the point held comes back: {got:?}");
    assert_eq!(got[0].id, all[3].id);
    assert_eq!(got[0].workspace_id, ws);
    assert_eq!(got[0].source_id, all[3].source_id);
    assert_eq!(got[0].kind, "message");
    let same = ceneca_vector::cosine(&got[0].vector, &all[3].vector);
    assert!(same > 0.9999, "the vector held points the same way: {same}");

    let mut seen = HashSet::new();
    let mut from = None;
    loop {
        let (page, next) = index.ids(C, from, 60).await.unwrap();
        assert!(page.len() <= 60);
        for id in page {
            assert!(seen.insert(id), "{id} listed twice");
        }
        match next {
            Some(n) => from = Some(n),
            None => break,
        }
    }
    let expected: HashSet<Uuid> = all
        .iter()
        .map(|p| p.id)
        .filter(|id| *id != all[7].id)
        .collect();
    assert_eq!(seen, expected);
}

/// A collection held with other dimensions is refused, unchanged, unless the caller asks
/// to replace it (an explicit rebuild). `open` opens the index afresh (a restarted
/// deployment with other settings).
pub async fn other_dimensions_are_refused_unless_replaced<I, F, Fut>(open: F)
where
    I: VectorIndex,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = I>,
{
    let ws = Uuid::now_v7();
    let eight = points(sample::clustered(20, 8, 2, 0.4, 5), &[ws]);
    {
        let index = open().await;
        index
            .open_collection(C, 8, OnOtherDimensions::Refuse)
            .await
            .unwrap();
        index.upsert(C, eight.clone()).await.unwrap();
        assert!(index.persist(C).await.unwrap());
    }
    {
        let index = open().await;
        let refused = index
            .open_collection(C, 16, OnOtherDimensions::Refuse)
            .await;
        assert!(
            matches!(
                refused,
                Err(ceneca_vector::VectorError::OtherDimensions {
                    stored: 8,
                    configured: 16,
                    ..
                })
            ),
            "{refused:?}"
        );
    }
    {
        // Nothing was deleted by the refusal.
        let index = open().await;
        index
            .open_collection(C, 8, OnOtherDimensions::Refuse)
            .await
            .unwrap();
        assert_eq!(index.retrieve(C, vec![eight[0].id]).await.unwrap().len(), 1);
    }
    // Replacing builds the new content aside: until the rebuild swaps it in, nothing
    // of the old is deleted.
    let index = open().await;
    index
        .open_collection(C, 16, OnOtherDimensions::Replace)
        .await
        .unwrap();
    let sixteen = points(sample::clustered(5, 16, 1, 0.4, 6), &[ws]);
    index.rebuild(C, Some(sixteen.clone())).await.unwrap();
    index.rebuild(C, None).await.unwrap();
    assert!(
        index
            .retrieve(C, vec![eight[0].id])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        index.retrieve(C, vec![sixteen[0].id]).await.unwrap().len(),
        1
    );
}
