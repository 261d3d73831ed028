//! `/sync/...`: the change feed (pulled, or streamed as Server-Sent Events), changes
//! pushed by devices, and the conflicts merging recorded. The zero-sync edition answers
//! each with 404 `not_in_edition`.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ceneca_service::{Caller, Services};
use ceneca_wire::sync::{self as wire, ChangeOperation, PullPage, PullParams};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use super::Routes;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Body, ContentAuth, NoQuery, QueryPairs};
use crate::openapi::op;

/// Changes a stream subscriber may have waiting before it is told to pull instead: the
/// server never buffers more than this for a slow reader.
const STREAM_BUFFER: usize = 256;
/// Changes the stream reads per query (each can carry a large message: the page is what
/// one subscriber holds in memory besides its buffer).
const STREAM_PAGE: u32 = 100;
/// Streams one node serves at once, and one user may hold: each costs a task, a buffer
/// and a query per commit, so neither a crowd nor one account can exhaust the node.
const MAX_STREAMS: usize = 4096;
const MAX_STREAMS_PER_USER: usize = 32;
/// How often a stream looks for changes committed by other nodes (its own node's
/// commits wake it at once).
const STREAM_POLL: Duration = Duration::from_secs(1);
/// How often a stream checks that its caller still may read what it streams.
const STREAM_RECHECK: Duration = Duration::from_secs(5);
/// A comment line this often keeps proxies from closing a quiet stream.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long a slow reader has to make room before it is told to re-pull.
const SLOW_READER_GRACE: Duration = Duration::from_secs(5);

pub fn routes(batch_body_limit: usize) -> Routes {
    let cursor = || {
        op::query(
            "cursor",
            "The last change the client holds (from `cursor` of a page or `id:` of an \
             event); 0 or omitted: from the start.",
            op::string(),
        )
    };
    Routes::new()
        .route(
            "/sync/pull",
            get(pull),
            [op::get("syncPull", "Changes after a cursor")
                .tag("sync")
                .describe(
                    "The changes the caller may read, in commit order, each with the values \
                     it wrote and its hybrid-logical-clock stamp. `revoke` tells a device to \
                     drop a workspace (or organization) it lost access to. A cursor this \
                     server cannot continue from answers 410: resynchronise.",
                )
                .param(cursor())
                .param(op::query(
                    "limit",
                    "1 to 10,000; 1,000 when omitted.",
                    op::string(),
                ))
                .answers_of::<wire::PullPage>(200, "A page of changes.")
                .answers_of::<ceneca_wire::ErrorBody>(
                    410,
                    "The cursor cannot be continued from: resynchronise.",
                )],
        )
        .route(
            "/sync/snapshot",
            get(snapshot),
            [op::get("syncSnapshot", "What the caller may read, as the changes that make it")
                .tag("sync")
                .describe(
                    "For a device that starts out or must start again: the caller's feed up                      to one log position (`as_of`, fixed by the first page), keeping of each                      row its creation and each later change that still holds a field's value                      or the deletion, with only the fields it holds (so each field keeps its                      clock). Page with `cursor` and the same `as_of`; after the last page,                      pull from `as_of`.",
                )
                .param(op::query(
                    "as_of",
                    "`as_of` of the first page; omitted on the first page.",
                    op::string(),
                ))
                .param(op::query(
                    "cursor",
                    "`cursor` of the previous page; 0 or omitted on the first.",
                    op::string(),
                ))
                .param(op::query(
                    "limit",
                    "Log entries read per page: 1 to 10,000; 1,000 when omitted.",
                    op::string(),
                ))
                .answers_of::<wire::SnapshotPage>(200, "A page of the snapshot.")
                .answers_of::<ceneca_wire::ErrorBody>(
                    410,
                    "`as_of` is beyond this server's log (it was restored): start again.",
                )],
        )
        .route(
            "/sync/push",
            post(push).layer(crate::extract::body_limit(batch_body_limit)),
            [op::post("syncPush", "Apply a device's changes")
                .tag("sync")
                .describe(
                    "Each change is merged field by field (last writer wins by hybrid \
                     logical clock) and applied as the caller, with the checks of an API \
                     write; the result says `applied`, `merged`, `conflict` (with the \
                     recorded conflict) or `refused` (with the reason). A retried change \
                     (same `change_id`) applies once.",
                )
                .body_of::<wire::PushRequest>()
                .answers_of::<wire::PushResponse>(200, "One result per change, in order.")],
        )
        .route(
            "/sync/stream",
            get(stream),
            [
                op::get("syncStream", "Changes as they commit (Server-Sent Events)")
                    .tag("sync")
                    .describe(
                        "Each event is a change of the feed (`event: change`, `id:` its \
                     cursor, the data as in a pull). Resume with `Last-Event-ID` (or \
                     `cursor`); without either, the stream starts at the newest change. \
                     Comment lines are heartbeats. A reader too slow to keep up gets \
                     `event: resync` and the stream ends: pull from the cursor it names.",
                    )
                    .param(cursor())
                    .answers_media(200, "A stream of events.", "text/event-stream"),
            ],
        )
        .route(
            "/sync/status",
            get(status),
            [
                op::get("syncStatus", "How this local node stands with its upstream")
                    .tag("sync")
                    .describe(
                        "On a local node (a server with an upstream): whether the upstream \
                     answered last time, when the last sync ended, how many changes made \
                     here wait to be pushed, and the last error. Any other server answers \
                     404 `not_a_local_node`.",
                    )
                    .answers_of::<wire::SyncStatus>(200, "The node's state."),
            ],
        )
        .route(
            "/sync/conflicts",
            get(conflicts),
            [op::get("syncConflicts", "Recorded conflicts")
                .tag("sync")
                .describe(
                    "What lost in a merge, and to what: the caller's own changes, and every \
                     conflict in workspaces the caller administers. Newest first.",
                )
                .param(op::query(
                    "cursor",
                    "`next_cursor` of the previous page.",
                    op::string(),
                ))
                .answers_of::<wire::ConflictPage>(200, "A page of conflicts.")],
        )
}

async fn pull(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<PullPage>> {
    let params = PullParams::from_pairs(&pairs, true)?;
    Ok(Json(
        state
            .services
            .pull(&caller, params.cursor, params.limit)
            .await?,
    ))
}

async fn snapshot(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<wire::SnapshotPage>> {
    let params = wire::SnapshotParams::from_pairs(&pairs)?;
    Ok(Json(
        state
            .services
            .snapshot(&caller, params.as_of, params.cursor, params.limit)
            .await?,
    ))
}

async fn push(
    State(state): State<AppState>,
    _: NoQuery,
    ContentAuth(caller): ContentAuth,
    Body(request): Body<wire::PushRequest>,
) -> ApiResult<Json<wire::PushResponse>> {
    Ok(Json(state.services.push(&caller, &request).await?))
}

async fn status(
    State(state): State<AppState>,
    _: NoQuery,
    Auth(caller): Auth,
) -> ApiResult<Json<wire::SyncStatus>> {
    Ok(Json(state.services.sync_status(&caller).await?))
}

async fn conflicts(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<wire::ConflictPage>> {
    ceneca_wire::params::refuse_repeats(&pairs)?;
    let mut after = None;
    for (name, value) in &pairs {
        match name.as_str() {
            "cursor" => {
                after = Some(Uuid::parse_str(value).map_err(|_| {
                    ApiError::bad_request("the cursor is not one this server gave")
                        .with_field("cursor", "must be the next_cursor of a page")
                })?)
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "{other} is not a parameter of this route"
                ))
                .with_field(other, "is not a parameter of this route"));
            }
        }
    }
    Ok(Json(state.services.list_conflicts(&caller, after).await?))
}

async fn stream(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    headers: HeaderMap,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Response> {
    let params = PullParams::from_pairs(&pairs, false)?;
    let resume = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ceneca_wire::ParamError::new("Last-Event-ID", "must be a cursor"))
                .and_then(wire::parse_cursor)?,
        ),
        None => pairs
            .iter()
            .any(|(n, _)| n == "cursor")
            .then_some(params.cursor),
    };
    let slot = StreamSlot::take(caller.user_id)?;
    let services = state.services.clone();
    // The first page is read here, so a bad cursor or the edition answers as HTTP.
    let first = match resume {
        Some(cursor) => services.pull(&caller, cursor, STREAM_PAGE).await?,
        None => services.pull_from_now().await?,
    };
    let (events, receiver) = mpsc::channel(STREAM_BUFFER + 1);
    let stopping = state.stopping.clone();
    tokio::spawn(async move {
        feed(services, caller, first, events, stopping).await;
        drop(slot);
    });
    let stream = ReceiverStream::new(receiver).map(Ok::<Event, Infallible>);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response())
}

/// One subscriber: sends the caller's changes as they commit, until the client goes,
/// falls too far behind, or may no longer read.
async fn feed(
    services: Services,
    mut caller: Caller,
    mut page: PullPage,
    events: mpsc::Sender<Event>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut signal = services.change_signal();
    let mut checked = Instant::now();
    loop {
        let mut revoked = false;
        let mut cursor: i64 = page.cursor.parse().unwrap_or_default();
        for change in &page.changes {
            if events.capacity() <= 1 && !make_room(&events).await {
                let resync = Event::default().event("resync").data(format!(
                    "{{\"cursor\":\"{}\",\"reason\":\"the reader fell behind: pull from this cursor\"}}",
                    previous_cursor(&page, change)
                ));
                let _ = events.send(resync).await;
                return;
            }
            let event = match Event::default()
                .id(change.cursor.clone())
                .event("change")
                .json_data(change)
            {
                Ok(event) => event,
                Err(_) => return,
            };
            if events.send(event).await.is_err() {
                return;
            }
            if change.operation == ChangeOperation::Revoke {
                // What follows was read with the access the caller had before: stop here,
                // learn what they may read now, and read on from this change.
                revoked = true;
                cursor = change.cursor.parse().unwrap_or(cursor);
                break;
            }
        }
        if !page.has_more && !revoked {
            tokio::select! {
                _ = signal.changed() => {}
                _ = tokio::time::sleep(STREAM_POLL) => {}
                _ = events.closed() => return,
                // The server is stopping: the reader resumes elsewhere or after the restart.
                _ = until_stopping(&mut stopping) => {
                    let _ = events
                        .send(Event::default().event("end").data(
                            "the server is shutting down: resume from the last id when it is back",
                        ))
                        .await;
                    return;
                }
            }
        }
        if revoked || checked.elapsed() >= STREAM_RECHECK {
            caller = match services.recheck(&caller).await {
                Ok(caller) => caller,
                Err(e) => {
                    let _ = events
                        .send(Event::default().event("end").data(e.to_string()))
                        .await;
                    return;
                }
            };
            checked = Instant::now();
        }
        page = match services.pull(&caller, cursor, STREAM_PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "change stream ended");
                let _ = events
                    .send(Event::default().event("end").data(e.to_string()))
                    .await;
                return;
            }
        };
    }
}

/// Returns when the server starts shutting down (never, where no one can say it will:
/// a router served without a shutdown signal).
async fn until_stopping(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    if stopping.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Waits a little for a slow reader; whether room was made.
async fn make_room(events: &mpsc::Sender<Event>) -> bool {
    let deadline = Instant::now() + SLOW_READER_GRACE;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if events.capacity() > 1 {
            return true;
        }
    }
    false
}

/// The cursor just before `change`: where a pull resumes without missing it.
fn previous_cursor(page: &PullPage, change: &wire::Change) -> String {
    page.changes
        .iter()
        .take_while(|c| c.change_id != change.change_id)
        .last()
        .map(|c| c.cursor.clone())
        .unwrap_or_else(|| {
            let seq: i64 = change.cursor.parse().unwrap_or(1);
            (seq - 1).max(0).to_string()
        })
}

/// A stream's place in the node's and its user's allowance, given back when dropped.
struct StreamSlot {
    user: Uuid,
}

/// Streams open now: on this node, and per user.
static OPEN_STREAMS: std::sync::Mutex<(usize, Option<std::collections::HashMap<Uuid, usize>>)> =
    std::sync::Mutex::new((0, None));

impl StreamSlot {
    fn take(user: Uuid) -> ApiResult<Self> {
        let mut open = OPEN_STREAMS.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_user) = &mut *open;
        let per_user = per_user.get_or_insert_with(Default::default);
        let mine = per_user.get(&user).copied().unwrap_or(0);
        if mine >= MAX_STREAMS_PER_USER {
            return Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                format!(
                    "this account has {MAX_STREAMS_PER_USER} change streams open: close one first"
                ),
            ));
        }
        if *total >= MAX_STREAMS {
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "this node serves as many change streams as it can: pull, or retry later",
            ));
        }
        *per_user.entry(user).or_insert(0) += 1;
        *total += 1;
        Ok(Self { user })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = OPEN_STREAMS.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(per_user) = open.1.as_mut()
            && let Some(n) = per_user.get_mut(&self.user)
        {
            *n -= 1;
            if *n == 0 {
                per_user.remove(&self.user);
            }
        }
    }
}
