//! The indexer: applies the vector outbox to the index, deleting each entry only once
//! the index has made it durable, and rebuilds collections from SQL (when an engine's log
//! outgrows its bound, and for `ceneca reindex --vectors`). With several nodes on one
//! database only the holder of the indexer lease applies the outbox.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ceneca_store::{EmbeddingPoint, Lease};
use ceneca_vector::{CollectionStats, Point};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{COLLECTIONS, Vectors, kind_of, vector_error};
use crate::Services;
use crate::error::{Result, ServiceError};

const OUTBOX_ROUND: u32 = 512;
/// How often a node without the indexer lease tries to take it.
const LEASE_RETRY: Duration = Duration::from_secs(5);
/// How long `serve` waits for the lease its embedded index needs on a shared database.
const CLAIM_WAIT: Duration = Duration::from_secs(10);
/// How long a rebuild waits for a running indexer to give up the lease (it looks between
/// rounds, at least once a second).
const REBUILD_WAIT: Duration = Duration::from_secs(60);

/// One collection's share of an indexer round: upserts, deletes, and the outbox entries.
type RoundWork = (Vec<Point>, Vec<Uuid>, Vec<i64>);

/// Whether a collection's engine log has grown enough to rebuild it away: past the
/// configured bound *and* past twice what the live points take. A fresh rebuild's log
/// holds each point once, so a collection larger than the bound is not rebuilt again and
/// again; it is rebuilt once updates and deletes have doubled its log.
fn wal_needs_rebuild(stats: CollectionStats, dims: usize, limit: u64) -> bool {
    // A point in the log: its vector and about 128 bytes of id, payload and framing.
    let live = stats.points * (dims as u64 * 4 + 128);
    stats.wal_bytes > limit && stats.wal_bytes > 2 * live
}

pub(super) fn to_point(collection: &str, p: EmbeddingPoint) -> Point {
    Point {
        id: p.id,
        vector: p
            .vector
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        workspace_id: p.workspace_id,
        source_id: p.source_id,
        kind: kind_of(collection).unwrap_or("message"),
    }
}

/// The vector indexer as a worker: `serve` starts it beside the server and shuts it down
/// after the server has stopped, so no round is cut short and the lease is released for
/// another node at once rather than when it times out.
pub struct VectorIndexer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl VectorIndexer {
    /// Starts the indexer on the services' vector index; `None` when vector search is not
    /// enabled.
    pub fn start(services: &Services) -> Option<Self> {
        services.vectors.as_ref()?;
        Some(Self::spawn(services, None))
    }

    /// Starts the indexer as `serve` does. An index of this node's own (the embedded
    /// engine) on a database other nodes share (PostgreSQL) is fed only by the lease
    /// holder's indexer, so this node must hold the lease from the start: if another node
    /// holds it, this fails and says why, rather than answer every search from an index
    /// nothing feeds. A shared index (a Qdrant server) needs no lease to answer.
    pub async fn start_claiming(services: &Services) -> Result<Option<Self>> {
        let Some(v) = services.vectors.as_ref() else {
            return Ok(None);
        };
        if !v.node_local || services.store.engine() != ceneca_store::Engine::Postgres {
            return Ok(Some(Self::spawn(services, None)));
        }
        // The previous run of this node may still be letting go of it.
        let started = std::time::Instant::now();
        loop {
            if let Some(lease) = services.store.vector_indexer_lease().await? {
                // It serves once its index is known to be the one the outbox fed (or is
                // rebuilt to be): the loop's first step.
                return Ok(Some(Self::spawn(services, Some(lease))));
            }
            if started.elapsed() >= CLAIM_WAIT {
                return Err(ServiceError::Unavailable(format!(
                    "another Ceneca node applies this database's vector outbox to its own \
                     embedded vector index, so this node's would never be fed. Several \
                     nodes on one PostgreSQL database share one vector index: set \
                     vectors.qdrant_url (a Qdrant server) on every node (waited {} s for \
                     the lease)",
                    CLAIM_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn spawn(services: &Services, lease: Option<Box<dyn Lease>>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(services.clone().indexer_loop(Some(stopped), lease));
        Self { stop, task }
    }

    /// Asks the indexer to stop and waits until it has: a round in progress finishes
    /// first (its entries are then done, or left in the outbox for the next start).
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "vector indexer: ended abnormally");
        }
    }
}

/// Waits for `wait`; true if the indexer was asked to stop meanwhile (the wait is then
/// cut short). Without a stop channel, the indexer never stops.
async fn stopped_during(
    stop: &mut Option<watch::Receiver<bool>>,
    wait: impl std::future::Future<Output = ()>,
) -> bool {
    match stop {
        None => {
            wait.await;
            false
        }
        Some(stop) if *stop.borrow() => true,
        Some(stop) => {
            let stopped = tokio::select! {
                () = wait => false,
                // A dropped sender (the worker's handle is gone) stops it too.
                _ = stop.wait_for(|s| *s) => true,
            };
            stopped || *stop.borrow()
        }
    }
}

impl Services {
    /// Applies the vector outbox to the index, forever. `serve` runs the same loop as a
    /// [`VectorIndexer`], which it can stop; this form never stops (tests, benchmarks).
    /// Entries are deleted only after the index made them durable; if the index fails,
    /// they stay and are retried. With several nodes on one database, only the holder of
    /// the indexer lease applies them; the others stand by and take over if it dies.
    pub async fn run_vector_indexer(self) {
        self.indexer_loop(None, None).await;
    }

    /// The indexer's loop; with `stop`, it ends at the first pause after `stop` turns true
    /// (or its sender is gone), never in the middle of a round, and releases its lease.
    async fn indexer_loop(
        self,
        mut stop: Option<watch::Receiver<bool>>,
        mut lease: Option<Box<dyn Lease>>,
    ) {
        let Ok(v) = self.vectors().cloned() else {
            return;
        };
        let mut failures = 0u32;
        // Whether this index is known to be the one the outbox feeds, since the lease was
        // taken (`adopt_index`).
        let mut fed = false;
        loop {
            let held = match lease.as_mut() {
                Some(l) => {
                    let wanted = match l.check().await {
                        Ok(()) => l.wanted().await,
                        Err(e) => Err(e),
                    };
                    match wanted {
                        Ok(false) => true,
                        Ok(true) => {
                            // A rebuild takes it, applies what was written meanwhile to
                            // the new content, and gives it back.
                            tracing::info!("vector indexer: a rebuild runs; standing by");
                            let _ = l.release().await;
                            lease = None;
                            false
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "vector indexer: lost its lease");
                            lease = None;
                            false
                        }
                    }
                }
                None => match self.store.vector_indexer_lease().await {
                    Ok(Some(l)) => {
                        tracing::info!("vector indexer: this node applies the vector outbox");
                        lease = Some(l);
                        true
                    }
                    Ok(None) => false,
                    Err(e) => {
                        tracing::warn!(error = %e, "vector indexer: cannot take its lease");
                        false
                    }
                },
            };
            if !held {
                fed = false;
                v.leader.store(false, Ordering::Relaxed);
                if stopped_during(&mut stop, tokio::time::sleep(LEASE_RETRY)).await {
                    break;
                }
                continue;
            }
            if !fed {
                match self.adopt_index(&v).await {
                    Ok(()) => fed = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "vector indexer: cannot bring this index up to date; will retry");
                        if stopped_during(&mut stop, tokio::time::sleep(LEASE_RETRY)).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            v.leader.store(true, Ordering::Relaxed);
            let pause = match self.index_round(&v).await {
                Ok(more) => {
                    if failures > 0 {
                        tracing::info!(failures, "vector indexer: the index is back, catching up");
                    }
                    failures = 0;
                    (!more).then_some(Duration::from_secs(1))
                }
                Err(e) => {
                    // Entries stay in the outbox; back off up to 30 s while the index is
                    // down, but a new write retries at once.
                    failures += 1;
                    let delay =
                        Duration::from_secs(1 << failures.min(5)).min(Duration::from_secs(30));
                    tracing::warn!(error = %e, retry_in = ?delay, "vector indexer: will retry");
                    Some(delay)
                }
            };
            let wait = async {
                if let Some(delay) = pause {
                    let _ = tokio::time::timeout(delay, v.wake.notified()).await;
                }
            };
            if stopped_during(&mut stop, wait).await {
                break;
            }
        }
        if let Some(mut l) = lease {
            let _ = l.release().await;
        }
        tracing::info!("vector indexer: stopped");
    }

    /// Makes this node's index the one the outbox feeds, under the lease it just took. An
    /// index of its own (the embedded engine) that the database does not name missed what
    /// the named one applied (another node's, or this folder emptied or replaced): it is
    /// rebuilt from the database first, then named. An index every node shares (a Qdrant
    /// server) needs nothing.
    async fn adopt_index(&self, v: &Vectors) -> Result<()> {
        let Some(id) = v.index.identity() else {
            return Ok(());
        };
        match self.store.vector_index_owner().await? {
            Some((owner, fed)) if owner == id && fed == v.index.fed_mark() => return Ok(()),
            // The first index fed (a new database, or one from before owners were kept).
            None => {}
            Some((other, _)) => {
                tracing::warn!(
                    recorded = %other,
                    this = %id,
                    "vector index: the outbox fed another index, or this one is behind it (a \
                     copied or restored folder); rebuilding it from the database before it serves"
                );
                for (collection, _) in COLLECTIONS {
                    self.rebuild_collection(v, collection).await?;
                }
            }
        }
        self.mark_round(v).await
    }

    /// Records that a round was applied to this node's own index: a new mark, kept in the
    /// index first, then in the database (see `VectorIndex::fed_mark`).
    pub(super) async fn mark_round(&self, v: &Vectors) -> Result<()> {
        let Some(id) = v.index.identity() else {
            return Ok(());
        };
        let mark = Uuid::now_v7().to_string();
        v.index.mark_fed(&mark).await.map_err(vector_error)?;
        self.store.set_vector_index_owner(id, mark).await?;
        Ok(())
    }

    /// One round: returns whether there may be more to do at once.
    pub async fn index_round(&self, v: &Vectors) -> Result<bool> {
        let round = v.started.fetch_add(1, Ordering::AcqRel) + 1;
        let damaged: Vec<String> = v
            .damaged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        let mut applied = false;
        for collection in damaged {
            applied = true;
            tracing::error!(
                collection,
                "vector index: the collection's files do not load; rebuilding it from the database"
            );
            if let Err(e) = self.rebuild_collection(v, &collection).await {
                v.report_damaged(&collection);
                return Err(e);
            }
        }
        let entries = self.store.vector_outbox(OUTBOX_ROUND).await?;
        let full = entries.len() as u32 == OUTBOX_ROUND;
        let mut by_collection: HashMap<String, RoundWork> = HashMap::new();
        for e in entries {
            let slot = by_collection.entry(e.collection.clone()).or_default();
            slot.2.push(e.seq);
            match e.current {
                Some(p) => slot.0.push(to_point(&e.collection, p)),
                None => slot.1.push(e.point_id),
            }
        }
        let mut deferred = false;
        // One collection that fails does not hold the others back; the first failure is
        // reported once all were tried.
        let mut failed = None;
        for (collection, (upserts, deletes, seqs)) in by_collection {
            if !v.dims.contains_key(&collection) {
                self.store.vector_outbox_done(seqs).await?;
                continue;
            }
            match self.apply_to(v, &collection, upserts, deletes, seqs).await {
                Ok(durable) => {
                    deferred |= !durable;
                    applied |= durable;
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if applied {
            self.mark_round(v).await?;
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if !full {
            v.drained.send_replace(round);
            if !deferred {
                v.caught_up_at_ms
                    .store(super::unix_ms(), std::sync::atomic::Ordering::Relaxed);
            }
        }
        if deferred {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(full)
    }

    /// Applies one collection's share of a round; returns whether its entries are done
    /// (`false`: the engine could not make them durable yet). A collection whose files no
    /// longer load (corrupt, or its live shard gone) is rebuilt from SQL, which holds
    /// every entry of the round too.
    async fn apply_to(
        &self,
        v: &Vectors,
        collection: &str,
        upserts: Vec<Point>,
        deletes: Vec<Uuid>,
        seqs: Vec<i64>,
    ) -> Result<bool> {
        // A point changed twice in a round appears twice with the same (current) state.
        let mut seen = std::collections::HashSet::new();
        let upserts: Vec<Point> = upserts
            .into_iter()
            .rev()
            .filter(|p| seen.insert(p.id))
            .collect();
        let mut applied = v.index.upsert(collection, upserts).await;
        if applied.is_ok() {
            applied = v.index.delete(collection, deletes).await;
        }
        if let Err(ceneca_vector::VectorError::Corrupt(why)) = &applied {
            tracing::error!(
                collection,
                error = %why,
                "vector index: the collection's files do not load; rebuilding it from the database"
            );
            self.rebuild_collection(v, collection).await?;
            self.store.vector_outbox_done(seqs).await?;
            return Ok(true);
        }
        applied.map_err(vector_error)?;
        let durable = v.index.persist(collection).await.map_err(vector_error)?;
        if durable {
            self.store.vector_outbox_done(seqs).await?;
        }
        // Only an engine whose log passed the bound is asked for its full stats.
        let log = v.index.log_bytes(collection).await.map_err(vector_error)?;
        if log > v.wal_limit {
            let stats = v.index.stats(collection).await.map_err(vector_error)?;
            if wal_needs_rebuild(stats, v.dims[collection], v.wal_limit) {
                tracing::info!(
                    collection,
                    wal_bytes = stats.wal_bytes,
                    points = stats.points,
                    "vector index WAL over its bound: rebuilding from SQL"
                );
                self.rebuild_collection(v, collection).await?;
            }
        }
        Ok(durable)
    }

    /// Rebuilds one collection from SQL aside and swaps it in; returns the points.
    async fn rebuild_collection(&self, v: &Vectors, collection: &str) -> Result<u64> {
        let mut after = None;
        let mut total = 0u64;
        loop {
            let page = self
                .store
                .embeddings_page(collection.to_owned(), after, 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            total += page.len() as u64;
            // Checked before anything is swapped: rows of another size cannot go into this
            // collection, and the index stays as it was.
            let dims = v.dims[collection];
            if let Some(p) = page.iter().find(|p| p.vector.len() != dims * 4) {
                return Err(ServiceError::conflict(format!(
                    "embedding {} in the database has {} dimensions, but collection \
                     '{collection}' is configured for {dims}: re-embed or delete the rows of \
                     the old size before changing the dimension (nothing was replaced)",
                    p.id,
                    p.vector.len() / 4
                )));
            }
            let points = page.into_iter().map(|p| to_point(collection, p)).collect();
            v.index
                .rebuild(collection, Some(points))
                .await
                .map_err(vector_error)?;
        }
        v.index
            .rebuild(collection, None)
            .await
            .map_err(vector_error)?;
        Ok(total)
    }

    /// Rebuilds every collection of the index from SQL (`ceneca reindex --vectors`), while
    /// writes go on. It holds the indexer's lease throughout (a running indexer gives it
    /// up at its next round), so nothing else applies the outbox meanwhile: a write made
    /// during the rebuild, whether the pages read already passed it or not, keeps its
    /// outbox entry, which is applied to the new content before the lease goes back.
    pub async fn reindex_vectors(&self) -> Result<Vec<(String, u64)>> {
        let v = self.vectors()?.clone();
        let mut lease = self.rebuild_lease().await?;
        let result = async {
            let mut out = Vec::new();
            for (collection, _) in COLLECTIONS {
                // A rebuild that lost its lease (its session ended) stops: an indexer may
                // be applying entries meanwhile.
                lease.check().await?;
                out.push((
                    collection.to_owned(),
                    self.rebuild_collection(&v, collection).await?,
                ));
            }
            lease.check().await?;
            while self.index_round(&v).await? {}
            // Complete now: this index is the one the outbox feeds (another node's index
            // rebuilds itself when it takes the lease back).
            self.mark_round(&v).await?;
            Ok(out)
        }
        .await;
        let _ = lease.release().await;
        result
    }

    /// The indexer's lease for a rebuild or a check: taken from a running indexer, which
    /// stands by meanwhile.
    pub(super) async fn rebuild_lease(&self) -> Result<Box<dyn Lease>> {
        self.store
            .vector_rebuild_lease(REBUILD_WAIT)
            .await?
            .ok_or_else(|| {
                ServiceError::conflict(format!(
                    "the vector indexer's lease could not be taken within {} s: another \
                     rebuild or check runs, or the indexer is stuck in a round",
                    REBUILD_WAIT.as_secs()
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(points: u64, wal_bytes: u64) -> CollectionStats {
        CollectionStats {
            points,
            wal_bytes,
            ..Default::default()
        }
    }

    #[test]
    fn the_log_is_rebuilt_away_once_it_outgrows_the_bound_and_the_data() {
        const MB: u64 = 1024 * 1024;
        // Small collection, log past the bound: rebuild.
        assert!(wal_needs_rebuild(stats(1_000, 600 * MB), 1536, 512 * MB));
        // Under the bound: never.
        assert!(!wal_needs_rebuild(stats(10, 500 * MB), 1536, 512 * MB));
        // 100k × 1536 takes ~600 MB: a freshly rebuilt log of that size is not rebuilt
        // again (it would be, forever, on the bound alone)...
        assert!(!wal_needs_rebuild(stats(100_000, 640 * MB), 1536, 512 * MB));
        // ...until churn has doubled it.
        assert!(wal_needs_rebuild(stats(100_000, 1300 * MB), 1536, 512 * MB));
    }
}

/// The indexer as a worker, on a real store and the embedded engine.
#[cfg(test)]
mod worker_tests {
    use ceneca_domain::model;
    use serde_json::json;

    use super::VectorIndexer;
    use crate::resources::ParentRef;
    use crate::testing::{id_of, refresh, services, services_with_vectors, sign_up};

    #[tokio::test]
    async fn the_worker_applies_writes_stops_on_shutdown_and_a_successor_takes_over() {
        let t = services_with_vectors(4).await;
        let svc = &t.svc;
        let (ann, token) = sign_up(svc, "ann@example.com").await;
        let ws = svc
            .create(&ann, &model::WORKSPACES, &json!({"name": "Lab"}), None)
            .await
            .unwrap();
        let ann = refresh(svc, &token).await;
        let thread = svc
            .create(
                &ann,
                &model::THREADS,
                &json!({"workspace_id": ws["id"], "title": "t"}),
                None,
            )
            .await
            .unwrap();
        let under = ParentRef {
            field: "thread_id",
            id: id_of(&thread),
        };
        let mut messages = Vec::new();
        for text in ["first", "second"] {
            messages.push(
                svc.create(
                    &ann,
                    &model::MESSAGES,
                    &json!({"role": "user", "content": text}),
                    Some(under),
                )
                .await
                .unwrap(),
            );
        }

        let worker = VectorIndexer::start(svc).expect("vector search is enabled");
        let point = |m: &serde_json::Value, v: [f32; 4]| {
            ceneca_wire::vectors::Points::One(ceneca_wire::vectors::PointInput::from_json(
                json!({"workspace_id": ws["id"], "source_id": m["id"], "vector": v}),
            ))
        };
        let search = |v: [f32; 4], limit: Option<u32>| ceneca_wire::vectors::VectorSearchRequest {
            vector: v.to_vec(),
            limit,
            ..Default::default()
        };
        let done = svc
            .upsert_vectors(
                &ann,
                "messages",
                &point(&messages[0], [1.0, 0.0, 0.0, 0.0]),
                true,
            )
            .await
            .unwrap();
        assert_eq!(done.status, ceneca_wire::vectors::WriteState::Completed);
        let hits = svc
            .search_vectors(&ann, "messages", &search([1.0, 0.0, 0.0, 0.0], None))
            .await
            .unwrap();
        assert_eq!(hits.items[0].source_id.to_string(), messages[0]["id"]);
        tokio::time::timeout(std::time::Duration::from_secs(10), worker.shutdown())
            .await
            .expect("the worker stops promptly");

        // A new worker takes the lease and applies what was written meanwhile.
        let worker = VectorIndexer::start(svc).expect("vector search is enabled");
        let done = svc
            .upsert_vectors(
                &ann,
                "messages",
                &point(&messages[1], [0.0, 1.0, 0.0, 0.0]),
                true,
            )
            .await
            .unwrap();
        assert_eq!(done.status, ceneca_wire::vectors::WriteState::Completed);
        let hits = svc
            .search_vectors(&ann, "messages", &search([0.0, 1.0, 0.0, 0.0], Some(1)))
            .await
            .unwrap();
        assert_eq!(hits.items[0].source_id.to_string(), messages[1]["id"]);
        worker.shutdown().await;
    }

    #[tokio::test]
    async fn without_vector_search_there_is_no_worker() {
        let t = services().await;
        assert!(VectorIndexer::start(&t.svc).is_none());
    }
}
