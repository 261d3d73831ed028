//! Full-text and hybrid search answers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// One full-text hit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    /// `message` or `document`.
    #[schema(example = "message")]
    pub kind: String,
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub thread_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    /// A document's title or a thread's title, when there is one.
    pub title: Option<String>,
    /// HTML: the stored text escaped, the matches in `<mark>` (the only tags).
    #[schema(example = "the <mark>quarterly</mark> report")]
    pub snippet: String,
    /// Higher is more relevant (comparable within one answer only).
    pub relevance: f64,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A page of full-text hits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchPage {
    pub items: Vec<SearchHit>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// `POST /search/hybrid`: text and an embedding, fused by reciprocal rank (k = 60).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HybridSearchRequest {
    /// The words to search for.
    pub q: String,
    /// The query embedding, with the collection's dimensions.
    pub vector: Vec<f32>,
    /// `messages` (default) or `documents`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<Uuid>,
    /// 1 to 100; 10 when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub score_threshold: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ids: Option<Vec<Uuid>>,
}

/// One fused hit: its ranks in each list it appeared in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HybridHit {
    pub id: Uuid,
    pub kind: String,
    pub workspace_id: Uuid,
    /// The reciprocal-rank fusion score.
    pub score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_rank: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_rank: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HybridPage {
    pub items: Vec<HybridHit>,
}
