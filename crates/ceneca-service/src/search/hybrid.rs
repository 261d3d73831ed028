//! Hybrid search: full-text and vector results fused by reciprocal-rank fusion.

use std::collections::HashMap;

use ceneca_wire::search::{HybridHit, HybridPage, HybridSearchRequest};
use ceneca_wire::vectors::VectorSearchRequest;
use ceneca_wire::{SearchKind, SearchParams};
use uuid::Uuid;

use crate::error::{Result, ServiceError};
use crate::vectors::{MAX_LIMIT, checked_limit, kind_of};
use crate::{Caller, Services};

impl Services {
    /// Full-text and vector results fused by reciprocal-rank fusion (k = 60): for clients
    /// that send both a query string and an embedding.
    pub async fn hybrid_search(
        &self,
        caller: &Caller,
        request: &HybridSearchRequest,
    ) -> Result<HybridPage> {
        const K: f64 = 60.0;
        let collection = request.collection.as_deref().unwrap_or("messages");
        let limit = checked_limit(request.limit)?;
        let kind = match collection {
            "messages" => SearchKind::Messages,
            "documents" => SearchKind::Documents,
            _ => {
                return Err(ServiceError::bad_request(
                    "collection",
                    "hybrid search covers messages or documents",
                ));
            }
        };
        // Each list is asked for twice the page, so fusion has candidates to reorder.
        let wider = (limit * 2).min(MAX_LIMIT) as u32;
        let text = self
            .search(
                caller,
                &SearchParams {
                    q: request.q.clone(),
                    kind,
                    workspace_id: request.workspace_id,
                    project_id: None,
                    thread_id: None,
                    author_id: None,
                    created_after: None,
                    created_before: None,
                    include_deleted: false,
                    limit: wider,
                    cursor: None,
                },
            )
            .await?;
        let vector_hits = self
            .vector_hits(
                caller,
                collection,
                &VectorSearchRequest {
                    vector: request.vector.clone(),
                    limit: Some(wider),
                    score_threshold: request.score_threshold,
                    workspace_id: request.workspace_id,
                    source_ids: request.source_ids.clone(),
                },
            )
            .await?;

        let mut fused: HashMap<Uuid, HybridHit> = HashMap::new();
        let vector_kind = kind_of(collection).unwrap_or(collection);
        for (rank, item) in text.items.iter().enumerate() {
            let hit = fused
                .entry(item.id)
                .or_insert_with(|| unranked(item.id, &item.kind, item.workspace_id));
            hit.score += 1.0 / (K + rank as f64 + 1.0);
            hit.text_rank = Some(rank as u32 + 1);
            hit.snippet = Some(item.snippet.clone());
        }
        for (rank, found) in vector_hits.iter().enumerate() {
            let hit = fused
                .entry(found.source_id)
                .or_insert_with(|| unranked(found.source_id, vector_kind, found.workspace_id));
            hit.score += 1.0 / (K + rank as f64 + 1.0);
            hit.vector_rank = Some(rank as u32 + 1);
            hit.similarity = Some(found.score);
        }
        let mut items: Vec<HybridHit> = fused.into_values().collect();
        // Ties broken by id, so equal scores come back in the same order every time.
        items.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        items.truncate(limit);
        Ok(HybridPage { items })
    }
}

/// A fused hit before either list has ranked it.
fn unranked(id: Uuid, kind: &str, workspace_id: Uuid) -> HybridHit {
    HybridHit {
        id,
        kind: kind.to_owned(),
        workspace_id,
        score: 0.0,
        text_rank: None,
        snippet: None,
        vector_rank: None,
        similarity: None,
    }
}
