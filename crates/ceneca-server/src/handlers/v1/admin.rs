//! `/admin/...`: operations for system administrators (others get 404).

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use ceneca_wire::maintenance::{MaintenanceParams, MaintenanceReport};

use super::Routes;
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Auth, QueryPairs};
use crate::openapi::op::{self, Access};

pub fn routes() -> Routes {
    Routes::new().route(
        "/admin/maintenance",
        post(maintenance),
        [op::post(
            "runMaintenance",
            "Run maintenance now (system administrators)",
        )
        .tag("admin")
        .access(Access::Account)
        .describe(
            "Purges the rows in the bin longer than `retention.purge_after_days` (with \
                     everything below them, their files, full-text entries, vectors and \
                     change history), then archives threads idle past the archive rule in force for their workspace \
                     (`retention.archive_after_days`, or the organization's \
                     `archive_after_days`), never pinned ones: each thread and its messages \
                     are kept, its attachments' files and its embeddings removed. Answers \
                     when the run is done, with what it did; with `dry_run=true`, what it \
                     would do, changing nothing. One run at a time per database: 409 while \
                     another is in progress. Others than system administrators get 404.",
        )
        .param(op::query(
            "dry_run",
            "`true`: report what a run would do, and change nothing.",
            op::string().enum_values(Some(["true", "false"])),
        ))
        .answers_of::<MaintenanceReport>(200, "What the run did, or would do.")
        .answers_of::<ceneca_wire::ErrorBody>(409, "Another run is in progress.")],
    )
}

async fn maintenance(
    State(state): State<AppState>,
    Auth(caller): Auth,
    QueryPairs(pairs): QueryPairs,
    body: axum::body::Bytes,
) -> ApiResult<Json<MaintenanceReport>> {
    // Others than system administrators learn nothing of the route, bad input included.
    state.services.require_maintenance_caller(&caller)?;
    // What a run does is said in the query: a body (`{"dry_run": true}`) would be
    // ignored, and a real run is what runs then.
    if !body.is_empty() {
        return Err(ceneca_wire::ParamError::new(
            "body",
            "this route takes no body: say `?dry_run=true` in the query",
        )
        .into());
    }
    let params = MaintenanceParams::from_pairs(&pairs)?;
    Ok(Json(
        state
            .services
            .run_maintenance_as(&caller, params.dry_run)
            .await?,
    ))
}
