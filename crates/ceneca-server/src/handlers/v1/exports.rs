//! `POST /users/{id}/export`: a user's data as a ZIP archive, streamed as it is written
//! (`ceneca_service::export`).

use axum::Json;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{get, post};
use ceneca_wire::export::{ExportJob, ExportParams};

use super::Routes;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Id, NoQuery, QueryPairs};
use crate::openapi::op::{self, Access};

pub fn routes() -> Routes {
    Routes::new()
        .route(
            "/users/{id}/export",
            post(export_user),
            [op::post(
                "exportUser",
                "Export a user's data (ZIP, or a job when large)",
            )
            .tag("users")
            .access(Access::Account)
            .describe(
                "The user themselves (logged in as the account: API and device tokens are \
                     refused) or a system administrator; others get 404. A ZIP archive: one \
                     JSON Lines file per entity (`<table>.jsonl`) with every row that names \
                     the user or lives in one of their personal workspaces, in the bin too, \
                     as the API shows it (secrets as masked hints only); their attachments' \
                     files (`files/<attachment id>/<name>`); and `manifest.json`, last, with \
                     the row counts and the SHA-256 and size of every file.\n\n\
                     Streamed at once (200) unless the account stores more than \
                     `export.job_threshold_bytes`, or `job=true` is asked: then it runs as a \
                     job (202, `Location: /api/v1/exports/{job id}`), read from \
                     `GET /exports/{id}/content` once `GET /exports/{id}` says `ready`, until \
                     it expires (`export.keep_hours`). `job=false` streams whatever the size. \
                     A streamed export that fails midway ends the body early, without the \
                     archive's central directory, and so does one whose client stops reading \
                     for 60 s. At most 2 exports per account run at once on a server (16 in \
                     all), jobs included: 429 beyond. Audited as `user.export`.",
            )
            .param(op::query(
                "job",
                "`true`: run as a job; `false`: stream now, whatever the size.",
                op::string().enum_values(Some(["true", "false"])),
            ))
            .answers_media(200, "The archive.", "application/zip")
            .answers_of::<ExportJob>(202, "The job, started.")],
        )
        .route(
            "/exports/{id}",
            get(export_job).delete(delete_export_job),
            [
                op::get("getExportJob", "An export job")
                    .tag("users")
                    .access(Access::Account)
                    .describe(
                        "The job as its requester sees it: `running`, `ready` (with the \
                         archive's size, SHA-256 and when it is deleted) or `failed`. Only the \
                         account that asked, logged in as the account, sees it; others, and \
                         everyone once it expired, get 404.",
                    )
                    .answers_of::<ExportJob>(200, "The job."),
                op::delete("deleteExportJob", "Delete an export job and its archive")
                    .tag("users")
                    .access(Access::Account)
                    .describe(
                        "Deletes the archive now rather than at `expires_at`. 409 while the \
                         job runs; others than its requester get 404.",
                    )
                    .empty(204, "Deleted."),
            ],
        )
        .route(
            "/exports/{id}/content",
            get(export_job_content),
            [
                op::get("getExportJobContent", "Read an export job's archive (ZIP)")
                    .tag("users")
                    .access(Access::Account)
                    .describe(
                        "The archive of a `ready` job, streamed, for its requester (others: 404); \
                     409 while it runs or when it failed. It is kept sealed on the server and \
                     opened as it is read, every chunk authenticated: a byte changed on disk \
                     ends the body early. Audited as `user.export_download`.",
                    )
                    .answers_media(200, "The archive.", "application/zip"),
            ],
        )
}

/// How long an export waits for its client to read on before it gives up: a client that
/// stops reading must not hold a thread and its buffers for ever.
const CLIENT_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// A `Write` that hands what it gets to the response body, in pieces.
struct BodySink {
    sender: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    runtime: tokio::runtime::Handle,
}

impl std::io::Write for BodySink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Called on the archive's blocking thread: waiting here holds the export back to
        // the client's pace, up to `CLIENT_IDLE` at a time.
        let piece = Ok(Bytes::copy_from_slice(buf));
        match self
            .runtime
            .block_on(tokio::time::timeout(CLIENT_IDLE, self.sender.send(piece)))
        {
            Ok(Ok(())) => Ok(buf.len()),
            Ok(Err(_)) => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client left",
            )),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            )),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn export_user(
    State(state): State<AppState>,
    Auth(caller): Auth,
    QueryPairs(pairs): QueryPairs,
    Id(user): Id,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    state.services.authorize_export(&caller, user).await?;
    let params = ExportParams::from_pairs(&pairs)?;
    if !body.is_empty() {
        return Err(ceneca_wire::ParamError::new("body", "this route takes no body").into());
    }
    let permit = state.services.begin_export(&caller, user).await?;
    if state.services.wants_export_job(user, params.job).await? {
        let job = state.services.start_export_job(permit).await?;
        let location = format!("/api/v1/exports/{}", job.id);
        return Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, location)],
            Json(job),
        )
            .into_response());
    }
    let services = state.services.clone();
    // Headers are sent once the body starts: a failure cuts it short instead.
    stream_zip(
        format!("ceneca-export-{user}.zip"),
        None,
        "the export failed",
        move |sink| async move {
            services
                .export_user(permit, sink, &|_| {})
                .await
                .map(|_| ())
        },
    )
}

/// Answers a ZIP archive that `write` writes, on a task of its own, into a sink that
/// goes at the client's pace; a failure ends the body early (headers are sent by then),
/// so no client takes a cut archive for whole.
fn stream_zip<F, Fut>(
    file_name: String,
    length: Option<u64>,
    failed: &'static str,
    write: F,
) -> ApiResult<Response>
where
    F: FnOnce(Box<dyn std::io::Write + Send>) -> Fut,
    Fut: std::future::Future<Output = Result<(), ceneca_service::ServiceError>> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    let sink = std::io::BufWriter::with_capacity(
        256 * 1024,
        BodySink {
            sender: sender.clone(),
            runtime: tokio::runtime::Handle::current(),
        },
    );
    let written = write(Box::new(sink));
    let name = file_name.clone();
    tokio::spawn(async move {
        if let Err(e) = written.await {
            tracing::warn!(file = %name, error = %e, "{failed}");
            let _ = sender.send(Err(std::io::Error::other(failed))).await;
        }
    });
    zip_response(receiver, &file_name, length)
}

/// A ZIP archive answered as it comes from `receiver`.
fn zip_response(
    receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    file_name: &str,
    length: Option<u64>,
) -> ApiResult<Response> {
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/zip")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file_name}\""),
        )
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(length) = length {
        response = response.header(header::CONTENT_LENGTH, length);
    }
    response
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        ))
        .map_err(|e| {
            tracing::error!(error = %e, "answering an export");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the server log",
            )
        })
}

async fn export_job(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    Id(id): Id,
) -> ApiResult<Json<ExportJob>> {
    Ok(Json(state.services.export_job_as(&caller, id).await?))
}

async fn delete_export_job(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    state.services.delete_export_job_as(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn export_job_content(
    State(state): State<AppState>,
    Auth(caller): Auth,
    _: NoQuery,
    Id(id): Id,
) -> ApiResult<Response> {
    let content = state.services.export_job_content_as(&caller, id).await?;
    let length = content.bytes;
    let services = state.services.clone();
    stream_zip(
        format!("ceneca-export-{id}.zip"),
        Some(length),
        "the archive was not read whole",
        move |sink| async move { services.write_export_job(content, sink).await },
    )
}
