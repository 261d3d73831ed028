//! `POST /users/{id}/export`: a user's data as a ZIP archive, streamed as it is written
//! (`ceneca_service::export`).

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::post;

use super::Routes;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Id, NoQuery};
use crate::openapi::op::{self, Access};

pub fn routes() -> Routes {
    Routes::new().route(
        "/users/{id}/export",
        post(export_user),
        [op::post("exportUser", "Export a user's data (ZIP)")
            .tag("users")
            .access(Access::Account)
            .describe(
                "The user themselves (logged in as the account: API and device tokens are \
                 refused) or a system administrator; others get 404. A ZIP archive, \
                 streamed: one JSON Lines file per entity (`<table>.jsonl`) with every row \
                 that names the user or lives in one of their personal workspaces, in the \
                 bin too, as the API shows it (secrets as masked hints only); their \
                 attachments' files (`files/<attachment id>/<name>`); and `manifest.json`, \
                 last, with the row counts and the SHA-256 and size of every file. An \
                 export that fails midway ends the body early, without the archive's \
                 central directory, and so does one whose client stops reading for 60 s. \
                 At most 2 exports per account run at once on a server (16 in all): 429 \
                 beyond. Audited as `user.export`.",
            )
            .answers_media(200, "The archive.", "application/zip")],
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
    _: NoQuery,
    Id(user): Id,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    state.services.authorize_export(&caller, user).await?;
    if !body.is_empty() {
        return Err(ceneca_wire::ParamError::new("body", "this route takes no body").into());
    }
    let permit = state.services.begin_export(&caller, user).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    let sink = std::io::BufWriter::with_capacity(
        256 * 1024,
        BodySink {
            sender: sender.clone(),
            runtime: tokio::runtime::Handle::current(),
        },
    );
    let services = state.services.clone();
    tokio::spawn(async move {
        let exported = services.export_user(permit, Box::new(sink), &|_| {}).await;
        if let Err(e) = exported {
            // Headers are sent: the body is cut short, so no client takes it for whole.
            tracing::warn!(user = %user, error = %e, "an export failed midway");
            let _ = sender
                .send(Err(std::io::Error::other("the export failed")))
                .await;
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/zip")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"ceneca-export-{user}.zip\""),
        )
        .header(header::CACHE_CONTROL, "no-store")
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
