//! `/admin/...`: operations for system administrators (others get 404).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use ceneca_wire::backup::{BackupList, BackupRun};
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
    .route(
        "/admin/backups",
        get(list_backups).post(start_backup),
        [
            op::get("listBackups", "List the server's backups (system administrators)")
                .tag("admin")
                .access(Access::Account)
                .describe(
                    "The complete backups in the backup folder (`backup.directory`), newest \
                     first, as their markers say (`ceneca backup verify DIR` opens every \
                     file), with the schedule (`backup.interval_hours`, `backup.keep`), when \
                     the next scheduled one is due, the run in progress and the last run \
                     since the server started. A backup being written is not listed until it \
                     is whole. Others than system administrators get 404.",
                )
                .answers_of::<BackupList>(200, "The backups and the schedule.")
                .answers_of::<ceneca_wire::ErrorBody>(503, "No backup folder is configured."),
            op::post("startBackup", "Take a backup now (system administrators)")
                .tag("admin")
                .access(Access::Account)
                .describe(
                    "Starts a backup into the backup folder and answers at once (202) with \
                     the run; `GET /admin/backups` shows it end (`last_run`). The backup is \
                     what `ceneca backup create` writes: the database as one consistent \
                     snapshot (on PostgreSQL, a logical export of every table) and every \
                     attachment file, sealed with a key derived from the key ring, then the \
                     oldest backups beyond `backup.keep` are removed. Audited as \
                     `backup.create`. One at a time: 409 while one is being written. Others \
                     than system administrators get 404.",
                )
                .answers_of::<BackupRun>(202, "The run, started.")
                .answers_of::<ceneca_wire::ErrorBody>(409, "A backup is being written.")
                .answers_of::<ceneca_wire::ErrorBody>(503, "No backup folder is configured."),
        ],
    )
}

/// Refuses a query string, once the caller is known to be an administrator: others
/// learn nothing of the route, bad input included.
fn no_query(pairs: &[(String, String)]) -> ApiResult<()> {
    match pairs.first() {
        Some((name, _)) => {
            Err(ceneca_wire::ParamError::new(name, "is not a parameter of this route").into())
        }
        None => Ok(()),
    }
}

async fn list_backups(
    State(state): State<AppState>,
    Auth(caller): Auth,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<BackupList>> {
    state.services.require_maintenance_caller(&caller)?;
    no_query(&pairs)?;
    Ok(Json(state.services.list_backups_as(&caller).await?))
}

async fn start_backup(
    State(state): State<AppState>,
    Auth(caller): Auth,
    QueryPairs(pairs): QueryPairs,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<BackupRun>)> {
    state.services.require_maintenance_caller(&caller)?;
    no_query(&pairs)?;
    if !body.is_empty() {
        return Err(ceneca_wire::ParamError::new("body", "this route takes no body").into());
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(state.services.start_backup_as(&caller).await?),
    ))
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
