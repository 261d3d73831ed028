use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ceneca_service::ListParams;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Auth, QueryPairs};

/// `GET /audit-log/export`: the entries an administrator filters for, as JSON lines.
pub async fn export(
    State(state): State<AppState>,
    Auth(caller): Auth,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Response> {
    let lines = state
        .services
        .export_audit(&caller, &ListParams::from_pairs(pairs))
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response())
}
