//! The vector index: nearest-neighbour search over embeddings, always filtered to the
//! caller's workspaces.
//!
//! The index is derived data (DESIGN.md §3 rule 3): `embedding_records` rows in SQL are the
//! source of truth, and the service's indexer feeds the index from the SQL outbox. So an
//! implementation only has to apply what it is given, say when it is durable
//! ([`VectorIndex::persist`]), and be rebuildable from scratch.
//!
//! - [`embedded::EdgeIndex`]: Qdrant's in-process engine (`qdrant-edge`), one shard per
//!   collection in the data folder; the default.
//! - [`server::QdrantIndex`]: a Qdrant server through `qdrant-client`, when one is
//!   configured.
//! - [`exact`]: exact cosine top-k by brute force, the baseline that recall and speed are
//!   measured against.

pub mod embedded;
pub mod exact;
pub mod sample;
pub mod server;

use async_trait::async_trait;
use uuid::Uuid;

/// Errors of a vector index. Input errors (dimensions, values) are caught by the service
/// before they get here; these are engine failures.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error("unknown collection '{0}'")]
    UnknownCollection(String),
    #[error("vector index: {0}")]
    Engine(String),
    /// The index cannot be reached now (a Qdrant server down or overloaded): retry later.
    #[error("vector index unavailable: {0}")]
    Unavailable(String),
    #[error("vector index I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The index holds the collection with other dimensions than the configuration says.
    /// Nothing was changed: replacing its vectors takes an explicit `ceneca reindex
    /// --vectors`, never a start with other settings (two deployments sharing a Qdrant
    /// prefix would otherwise wipe each other's vectors).
    #[error(
        "vector collection '{collection}' holds {stored}-dimensional vectors, but {configured} \
         are configured; nothing was changed. Set the dimensions back, or rebuild the \
         collection from SQL with `ceneca reindex --vectors` (with the server stopped)"
    )]
    OtherDimensions {
        collection: String,
        stored: usize,
        configured: usize,
    },
    /// The collection's files do not load (damaged, or the shard its `CURRENT` names is
    /// gone): derived data, rebuilt from SQL by the indexer.
    #[error("vector collection files do not load: {0}")]
    Corrupt(String),
    /// The embedded index's folder is open in another process.
    #[error(
        "the vector index in {0} is open in another process (a running `ceneca serve`?); \
         one process at a time may open it: stop the other one first"
    )]
    InUse(String),
}

/// What opening a collection does when the index holds it with other dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOtherDimensions {
    /// Fail with [`VectorError::OtherDimensions`], changing nothing (`serve` and every
    /// command but a rebuild).
    Refuse,
    /// Start the collection empty with the new dimensions (`ceneca reindex --vectors`,
    /// which refills it from SQL at once).
    Replace,
}

pub type Result<T, E = VectorError> = std::result::Result<T, E>;

/// One embedding as the index stores it: its id (the EmbeddingRecord id), its vector, and
/// the payload every search filters on.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub id: Uuid,
    pub vector: Vec<f32>,
    pub workspace_id: Uuid,
    pub source_id: Uuid,
    /// What the source is: `message`, `document` or `attachment`.
    pub kind: &'static str,
}

/// The kind a payload names, as the `'static` name a [`Point`] carries (`unknown` for
/// anything else: the drift check reports it as a difference).
pub fn kind_named(kind: &str) -> &'static str {
    match kind {
        "message" => "message",
        "document" => "document",
        "attachment" => "attachment",
        _ => "unknown",
    }
}

/// A nearest-neighbour query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub vector: Vec<f32>,
    pub limit: usize,
    /// Only points of these workspaces (an empty list finds nothing); `None` for any
    /// workspace (system administrators).
    pub workspaces: Option<Vec<Uuid>>,
    /// When not empty, only points of these sources.
    pub source_ids: Vec<Uuid>,
    /// Cosine similarity below which hits are dropped.
    pub score_threshold: Option<f32>,
}

/// A hit: the point, its payload and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub id: Uuid,
    pub score: f32,
    pub workspace_id: Uuid,
    pub source_id: Uuid,
}

/// What an index holds for one collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CollectionStats {
    pub points: u64,
    /// Points in HNSW-indexed segments; the rest are searched exhaustively.
    pub indexed: u64,
    pub segments: u64,
    /// Bytes of the engine's write-ahead log (embedded engine only).
    pub wal_bytes: u64,
}

/// A vector index: the embedded engine or a Qdrant server.
///
/// Writes come from one indexer at a time; searches may run concurrently with them.
#[async_trait]
pub trait VectorIndex: Send + Sync + 'static {
    /// `embedded` or `qdrant`.
    fn kind(&self) -> &'static str;
    /// Which index this is, when it is one node's own (the embedded engine's folder keeps
    /// an id): the database records which one the outbox fed, so an index that missed
    /// what another applied is rebuilt before it serves. `None` for an index every node
    /// shares (a Qdrant server).
    fn identity(&self) -> Option<String> {
        None
    }
    /// The mark of the last round of the outbox applied to this index (kept with it, and
    /// in the database): a copy of the folder, or an older one restored, carries an older
    /// mark than the database, and is rebuilt. Empty when none was written.
    fn fed_mark(&self) -> String {
        String::new()
    }
    /// Records, durably, the mark of a round just applied, before the database records it
    /// (a crash between the two leaves marks that differ: a rebuild, never a stale index).
    async fn mark_fed(&self, _mark: &str) -> Result<()> {
        Ok(())
    }
    /// Opens or creates `collection` with cosine distance over `dims` dimensions; an
    /// existing collection of other dimensions is refused or replaced, as `other` says.
    async fn open_collection(
        &self,
        collection: &str,
        dims: usize,
        other: OnOtherDimensions,
    ) -> Result<()>;
    /// Inserts or replaces points; visible to searches when this returns.
    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<()>;
    async fn delete(&self, collection: &str, ids: Vec<Uuid>) -> Result<()>;
    async fn search(&self, collection: &str, query: Query) -> Result<Vec<Hit>>;
    /// The points of `ids` the index holds, with their vectors and payload (a point it
    /// does not hold is left out). The drift check compares them with SQL.
    async fn retrieve(&self, collection: &str, ids: Vec<Uuid>) -> Result<Vec<Point>>;
    /// A page of the ids the index holds, from `from` (inclusive) in the index's own
    /// order, and where the next page starts (`None` at the end).
    async fn ids(
        &self,
        collection: &str,
        from: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Uuid>, Option<Uuid>)>;
    async fn stats(&self, collection: &str) -> Result<CollectionStats>;
    /// Bytes of the engine's own write-ahead log, which the embedded engine never shrinks
    /// (the indexer rebuilds a collection past a bound); 0 for engines that manage their
    /// log themselves. Cheap: the indexer asks after every batch it applies.
    async fn log_bytes(&self, _collection: &str) -> Result<u64> {
        Ok(0)
    }
    /// Makes every applied write durable. `Ok(false)` means "not now" (the optimizer is
    /// working): the caller keeps its outbox entries and asks again later.
    async fn persist(&self, collection: &str) -> Result<bool>;
    /// Replaces the collection's content with `points`, built aside and swapped in, so
    /// searches keep answering from the old content meanwhile. Called in rounds:
    /// `rebuild(c, Some(points))`... then `rebuild(c, None)` to swap.
    async fn rebuild(&self, collection: &str, points: Option<Vec<Point>>) -> Result<()>;
}

/// Cosine similarity of two vectors of the same length (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}
