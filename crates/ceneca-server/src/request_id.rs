//! Request ids: every request gets one, in the `x-request-id` response header, in the
//! `request_id` of every JSON error body, and in the tracing span around the request, so
//! every log line written while serving it carries it.
//!
//! A client's own `x-request-id` (a balancer's, a caller correlating its logs) is kept
//! only when it is short and plain — at most [`MAX_LEN`] characters of `A–Z a–z 0–9 . _ -`
//! — so nothing a client sends can forge log lines or smuggle markup; any other value is
//! replaced by a new id (a UUIDv7, time-ordered).

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header the id travels in, both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-supplied id that is kept.
pub const MAX_LEN: usize = 64;

tokio::task_local! {
    /// The id of the request being served on this task.
    static CURRENT: HeaderValue;
}

/// Whether a client-supplied id may be kept as it is.
pub fn acceptable(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LEN
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The id of the request being served, if any (error bodies read it).
pub fn current() -> Option<String> {
    CURRENT
        .try_with(|id| id.to_str().ok().map(str::to_owned))
        .ok()
        .flatten()
}

/// Middleware: settles the request's id (the client's if [`acceptable`], else a new one),
/// puts it in the request (for the tracing span and handlers) and the response, and makes
/// it [`current`] while the request is served.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| acceptable(v.as_bytes()))
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
        });
    request
        .headers_mut()
        .insert(X_REQUEST_ID.clone(), id.clone());
    let mut response = CURRENT.scope(id.clone(), next.run(request)).await;
    response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    response
}

/// The tracing span around a request: its id, method and path (not the query string,
/// which may carry search terms). Made at `error` level so it is enabled whenever any log
/// line is, whatever the filter: a line without its request id is what this is for.
pub fn span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::error_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_kept() {
        assert!(acceptable(b"abc-DEF_0.9"));
        assert!(acceptable(&[b'a'; MAX_LEN]));
        assert!(!acceptable(&[b'a'; MAX_LEN + 1]));
        assert!(!acceptable(b""));
        assert!(!acceptable(b"a\nb"));
        assert!(!acceptable(b"a b"));
        assert!(!acceptable(b"<script>"));
        assert!(!acceptable("é".as_bytes()));
    }
}
