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

/// The right to apply the vector outbox. Exactly one holder at a time: two indexers could
/// otherwise apply one embedding's old and new states out of order (one reads the old
/// state, the other applies the new one and removes both entries, then the first writes
/// the old state over it) and leave the index stale with nothing left to repair it.
#[async_trait::async_trait]
pub trait Lease: Send {
    /// Fails once the lease may have passed to someone else (its connection is gone).
    async fn check(&mut self) -> crate::Result<()>;
    /// Whether a rebuild waits for this lease ([`crate::Store::vector_rebuild_lease`]): the
    /// indexer then lets go of it.
    async fn wanted(&mut self) -> crate::Result<bool> {
        Ok(false)
    }
    /// Lets go of the lease now, so the next holder need not wait until the engine sees
    /// the holder gone (dropping it lets go too, a moment later).
    async fn release(&mut self) -> crate::Result<()> {
        Ok(())
    }
}

/// How long a rebuild waits for a running indexer to give up its lease, and how often it
/// looks (an indexer looks between rounds, at least once a second).
pub(crate) const REBUILD_POLL: std::time::Duration = std::time::Duration::from_millis(100);
