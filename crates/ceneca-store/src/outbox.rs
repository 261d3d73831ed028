//! The vector outbox as the indexer reads it: pending entries joined to the current state
//! of their embedding rows, and pages of embeddings for a rebuild. The rows are written by
//! triggers (migration 0003), so every path that changes an embedding leaves an entry.

use uuid::Uuid;

/// An embedding as the vector index needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingPoint {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub source_id: Uuid,
    /// Little-endian `f32`s, as stored.
    pub vector: Vec<u8>,
}

/// One pending change: the point and, if it still exists, its current state (`None`
/// means it was deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub seq: i64,
    pub collection: String,
    pub point_id: Uuid,
    pub current: Option<EmbeddingPoint>,
}
