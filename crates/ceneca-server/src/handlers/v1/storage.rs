//! `/storage/stats`: what is stored, by category, and the quota it counts against.

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use ceneca_wire::storage::{StatsParams, StorageStats};

use super::Routes;
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Auth, QueryPairs};
use crate::openapi::op;

pub fn routes() -> Routes {
    Routes::new().route(
        "/storage/stats",
        get(stats),
        [
            op::get("storageStats", "What is stored, by category, and the quota")
                .tag("storage")
                .describe(
                    "Bytes and counts by category (messages, documents, attachments, \
                 embeddings; threads and projects as metadata) for `scope=user` (the \
                 caller's own workspaces, or any user's for a system administrator), \
                 `scope=organization` (its owners and administrators) or `scope=workspace` \
                 (its readers), read from counters every write keeps. With the quota those \
                 bytes count against and how much of it is used: a write that would pass \
                 it is refused with 413 `quota_exceeded`.",
                )
                .param(op::query(
                    "scope",
                    "`user` (default), `organization` or `workspace`.",
                    op::string(),
                ))
                .param(op::query(
                    "id",
                    "The user, organization or workspace; for `user`, the caller when omitted.",
                    op::string(),
                ))
                .answers_of::<StorageStats>(200, "The statistics."),
        ],
    )
}

async fn stats(
    State(state): State<AppState>,
    Auth(caller): Auth,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<StorageStats>> {
    let params = StatsParams::from_pairs(&pairs)?;
    Ok(Json(state.services.storage_stats(&caller, &params).await?))
}
