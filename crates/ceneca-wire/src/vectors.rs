//! The vector API (`/vectors/{collection}/...`), in the shape of Qdrant's.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /vectors/{collection}/points/batch`: up to 1,000 points; each point is an
/// embedding row without `collection` and `dims` (taken from the URL and the collection).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointBatch {
    #[schema(value_type = Vec<Object>, min_items = 1, max_items = 1000)]
    pub points: Vec<Json>,
}

/// The points of an upsert, as the service takes them: one point (`/points`) or a batch
/// (`/points/batch`). Each point is an embedding row checked by the model; the two differ
/// in how errors name a field (`vector` or `points[3].vector`).
#[derive(Debug, Clone)]
pub enum Points {
    One(serde_json::Map<String, Json>),
    Batch(Vec<Json>),
}

/// How far a write has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WriteState {
    /// Durable in SQL; the index follows from the outbox.
    Acknowledged,
    /// Already applied by the index (with `?wait=true`): a search sees it.
    Completed,
}

/// Whether a write is durable only (`acknowledged`: in SQL, the index will follow) or
/// already applied by the index (`completed`, with `?wait=true`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WriteStatus {
    pub status: WriteState,
    /// The ids of the points written (upserts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<Uuid>>,
    /// How many points were deleted (clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<u64>,
}

/// `POST /vectors/{collection}/search`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VectorSearchRequest {
    /// The query embedding, with the collection's dimensions.
    pub vector: Vec<f32>,
    /// 1 to 100; 10 when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub score_threshold: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<Uuid>,
    /// At most 1,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ids: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VectorHit {
    pub id: Uuid,
    /// Cosine similarity.
    pub score: f32,
    pub source_id: Uuid,
    pub workspace_id: Uuid,
    /// `message`, `document` or `attachment`.
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VectorHits {
    pub items: Vec<VectorHit>,
}

/// `POST /vectors/{collection}/clear`: every point of one workspace (its administrators).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    pub workspace_id: Uuid,
}

/// A collection's settings; the index figures only for system administrators.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CollectionInfo {
    pub name: String,
    pub dimension: u32,
    /// Always `cosine`.
    pub distance: String,
    /// `embedded` or `qdrant`.
    pub engine: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_writes: Option<u64>,
    /// `green` (nothing pending) or `yellow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexed_points: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<u64>,
}
