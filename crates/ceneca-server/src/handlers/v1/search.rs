use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ContentAuth, QueryPairs};

/// `GET /search?q=...`: ranked full-text hits with highlighted snippets.
pub async fn search(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Response> {
    Ok(Json(state.services.search(&caller, &pairs).await?).into_response())
}
