//! Vector search (the seed's `qdrant.config` API): upsert, batch upsert with `wait`,
//! search with filters and a score threshold, delete, collection info, clear.
//!
//! `embedding_records` rows are the truth (DESIGN.md §3 rule 3). A write here is an SQL
//! write; the database's triggers add outbox entries in the same transaction, and the
//! [indexer](VectorIndexer) applies them to the index, deleting each entry
//! only once the index has made it durable. A crash, or an index that is unavailable for a
//! while, loses nothing: the outbox catches up.
//!
//! - `points.rs`: the points API (upsert, search, delete, clear, collection info);
//! - `indexer.rs`: the background indexer that applies the outbox, under a lease, as a
//!   worker `serve` starts and stops ([`VectorIndexer`]), and rebuilds (which take the
//!   lease from a running indexer, so what is written meanwhile reaches the new content);
//! - `check.rs`: the drift check, the index compared with SQL point by point;
//! - hybrid search lives beside full-text search (`search/hybrid.rs`).

mod check;
mod indexer;
pub(crate) mod points;

pub use check::{CollectionDrift, DriftKind};
pub use indexer::VectorIndexer;
pub(crate) use points::{MAX_LIMIT, checked_limit};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ceneca_vector::{OnOtherDimensions, VectorIndex};
use tokio::sync::{Notify, watch};

use crate::Services;
use crate::error::{Result, ServiceError};

/// The collections, and the kind of source each holds.
pub const COLLECTIONS: [(&str, &str); 3] = [
    ("messages", "message"),
    ("documents", "document"),
    ("attachments", "attachment"),
];
/// The default dimension (the seed's, OpenAI's `text-embedding-3-small`).
pub const DEFAULT_DIMS: usize = 1536;

/// The vector index wired into the services, with the indexer's progress.
pub struct Vectors {
    index: Arc<dyn VectorIndex>,
    dims: HashMap<String, usize>,
    /// Wakes the indexer after a write.
    wake: Notify,
    /// Rounds the indexer has started, and the last round that drained the outbox.
    started: AtomicU64,
    drained: watch::Sender<u64>,
    /// Bytes of WAL above which a collection is rebuilt (embedded engine).
    wal_limit: u64,
    /// Whether this node's indexer holds the lease (applies the outbox).
    leader: AtomicBool,
    /// The index is this node's own (the embedded engine), not one shared by every node
    /// (a Qdrant server): on a shared database only the lease holder's is fed.
    node_local: bool,
    /// Collections whose files a search found damaged: the indexer rebuilds them from SQL
    /// at its next round, writes or not.
    damaged: std::sync::Mutex<std::collections::HashSet<String>>,
    /// When this node's indexer last found the outbox applied (Unix milliseconds; the
    /// wiring time until the first round): how far behind it is, for monitoring.
    caught_up_at_ms: AtomicU64,
}

impl Vectors {
    /// Asks the indexer to rebuild `collection`, whose files did not load.
    pub(crate) fn report_damaged(&self, collection: &str) {
        self.damaged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(collection.to_owned());
        self.wake.notify_one();
    }
}

/// The indexer's state as monitoring sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexerStatus {
    /// This node applies the outbox (holds the lease).
    pub leader: bool,
    /// When it last found the outbox applied.
    pub caught_up_at: std::time::SystemTime,
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn kind_of(collection: &str) -> Option<&'static str> {
    COLLECTIONS
        .iter()
        .find(|(c, _)| *c == collection)
        .map(|(_, k)| *k)
}

fn vector_error(e: ceneca_vector::VectorError) -> ServiceError {
    match e {
        e @ ceneca_vector::VectorError::OtherDimensions { .. } => {
            ServiceError::Internal(e.to_string())
        }
        ceneca_vector::VectorError::Corrupt(_) => ServiceError::Unavailable(
            "the vector index is being rebuilt from the database; try again shortly".into(),
        ),
        ceneca_vector::VectorError::Unavailable(_) => ServiceError::Unavailable(
            "the vector index is unreachable; writes are kept and applied when it is back".into(),
        ),
        e => ServiceError::Internal(format!("vector index: {e}")),
    }
}

impl Services {
    /// Wires a vector index in: opens the collections with their dimensions and returns
    /// services that use it. Start a [`VectorIndexer`] beside the server.
    pub async fn with_vectors(
        mut self,
        index: Arc<dyn VectorIndex>,
        dims: HashMap<String, usize>,
        wal_limit: u64,
        other: OnOtherDimensions,
    ) -> Result<Self> {
        let mut resolved = HashMap::new();
        for (collection, _) in COLLECTIONS {
            let d = dims.get(collection).copied().unwrap_or(DEFAULT_DIMS);
            index
                .open_collection(collection, d, other)
                .await
                .map_err(vector_error)?;
            resolved.insert(collection.to_owned(), d);
        }
        let node_local = index.kind() == "embedded";
        self.vectors = Some(Arc::new(Vectors {
            index,
            dims: resolved,
            wake: Notify::new(),
            started: AtomicU64::new(0),
            drained: watch::channel(0).0,
            wal_limit,
            leader: AtomicBool::new(false),
            node_local,
            damaged: Default::default(),
            caught_up_at_ms: AtomicU64::new(unix_ms()),
        }));
        Ok(self)
    }

    /// The vector indexer's state, when vectors are enabled.
    pub fn vector_indexer_status(&self) -> Option<IndexerStatus> {
        self.vectors.as_ref().map(|v| IndexerStatus {
            leader: v.leader.load(Ordering::Relaxed),
            caught_up_at: std::time::UNIX_EPOCH
                + Duration::from_millis(v.caught_up_at_ms.load(Ordering::Relaxed)),
        })
    }

    /// The dimension the index takes for `collection`, when this server has an index.
    pub(crate) fn index_dimension(&self, collection: &str) -> Option<usize> {
        self.vectors.as_ref()?.dims.get(collection).copied()
    }

    fn vectors(&self) -> Result<&Arc<Vectors>> {
        self.vectors
            .as_ref()
            .ok_or_else(|| ServiceError::NotAllowed("vector search is not enabled".into()))
    }

    /// The index, to search: refused (503) when it is this node's own on a shared
    /// database and this node does not feed it (another node holds the indexer's lease),
    /// where it would answer from stale content, or nothing, without saying so.
    fn searchable_vectors(&self) -> Result<&Arc<Vectors>> {
        let v = self.vectors()?;
        if v.node_local
            && self.store.engine() == ceneca_store::Engine::Postgres
            && !v.leader.load(Ordering::Relaxed)
        {
            return Err(ServiceError::Unavailable(
                "this node's embedded vector index is not fed: another node applies the \
                 vector outbox. Several nodes on one database share a Qdrant server \
                 (vectors.qdrant_url)"
                    .into(),
            ));
        }
        Ok(v)
    }
}
