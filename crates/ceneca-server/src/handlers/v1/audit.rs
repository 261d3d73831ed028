use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ceneca_service::ListParams;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Auth, QueryPairs};
use crate::openapi::op::{self, Access, Op};

pub(crate) fn doc() -> Op {
    op::get(
        "exportAuditLog",
        "Every audit entry as JSON lines (system administrators)",
    )
    .tag("audit")
    .access(Access::Account)
    .describe(
        "In chain order unless `sort` says otherwise. Takes the list parameters of the \
             audit log (`sort`, `created_after`, `created_before`, and filters such as \
             `action`); `limit` and `cursor` are refused. Others than system administrators \
             get 404.",
    )
    .params(
        super::resources::list_parameters(&ceneca_domain::model::AUDIT_LOG)
            .into_iter()
            .filter(|p| !matches!(p.name.as_str(), "limit" | "cursor")),
    )
    .answers_media(200, "One JSON object per line.", "application/x-ndjson")
}

/// `GET /audit-log/export`: the entries an administrator filters for, as JSON lines.
pub async fn export(
    State(state): State<AppState>,
    Auth(caller): Auth,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Response> {
    // The export is every matching entry: paging parameters would be silently ignored.
    if let Some((k, _)) = pairs.iter().find(|(k, _)| k == "limit" || k == "cursor") {
        return Err(ceneca_wire::ParamError::new(
            k,
            format!("{k} is not a parameter of the export, which answers every matching entry"),
        )
        .into());
    }
    let lines = state
        .services
        .export_audit(&caller, &ListParams::from_pairs(pairs)?)
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], lines).into_response())
}
