//! Exact cosine top-k by brute force: the ground truth for recall and the baseline for
//! search speed.

use crate::{Hit, Point, Query, cosine};

/// The exact top-k of `query` over `points`, with the same filters as the index.
pub fn top_k(points: &[Point], query: &Query) -> Vec<Hit> {
    let mut hits: Vec<Hit> = points
        .iter()
        .filter(|p| {
            query
                .workspaces
                .as_ref()
                .is_none_or(|ws| ws.contains(&p.workspace_id))
        })
        .filter(|p| query.source_ids.is_empty() || query.source_ids.contains(&p.source_id))
        .map(|p| Hit {
            id: p.id,
            score: cosine(&p.vector, &query.vector),
            workspace_id: p.workspace_id,
            source_id: p.source_id,
        })
        .filter(|h| query.score_threshold.is_none_or(|t| h.score >= t))
        .collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    hits.truncate(query.limit);
    hits
}
