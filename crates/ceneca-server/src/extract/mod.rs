//! Extractors that turn a request into typed input or a clear [`ApiError`]: the caller
//! ([`Auth`]), a JSON body ([`JsonBody`]), a UUID path segment ([`Id`]) and the query
//! string ([`QueryPairs`]); and the middleware that holds every body to JSON
//! ([`json_or_nothing`]). Axum's own rejections are plain text; these answer in the API's
//! JSON error format with the right status.

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use ceneca_service::Caller;
use ceneca_service::audit::RequestMeta;
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;

/// The authenticated caller with the whole account behind it: a log-in session (bearer
/// token or cookie) or a mapped client certificate. Its presence in a handler's signature
/// is what makes the route require a log-in, and it refuses API and device tokens, so a
/// route is closed to tokens unless its handler asks for [`ContentAuth`] instead
/// (DESIGN.md §3 rule 8: an allowlist, not a denylist).
pub struct Auth(pub Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ContentAuth(caller) = ContentAuth::from_request_parts(parts, state).await?;
        if let Some(reason) = caller.credential.refuse_account_action("use this route") {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", reason));
        }
        Ok(Auth(caller))
    }
}

/// An authenticated caller of any credential, API and device tokens included: for routes
/// over workspace content (resources, search, vectors), where the service still limits
/// what each kind of token reaches.
pub struct ContentAuth(pub Caller);

impl FromRequestParts<AppState> for ContentAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let meta = request_meta(parts);
        let token = match parts.headers.get(header::AUTHORIZATION) {
            Some(header) => header
                .to_str()
                .ok()
                .and_then(|h| h.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim().to_owned())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "the Authorization header must be 'Bearer <token>'",
                    )
                })?,
            None => match session_cookie(parts) {
                Some(token) => {
                    check_cookie_origin(parts, state)?;
                    token
                }
                None => match crate::tls::client_common_name(parts) {
                    Some(name) => {
                        let caller = state
                            .services
                            .authenticate_certificate(&name, &meta)
                            .await?;
                        return finish(state, &meta, caller);
                    }
                    None => {
                        return Err(ApiError::new(
                            StatusCode::UNAUTHORIZED,
                            "unauthorized",
                            "missing Authorization: Bearer token (or session cookie)",
                        ));
                    }
                },
            },
        };
        let caller = state.services.authenticate(&token, &meta).await?;
        finish(state, &meta, caller)
    }
}

/// The checks every authenticated caller passes, however it authenticated.
fn finish(state: &AppState, meta: &RequestMeta, caller: Caller) -> Result<ContentAuth, ApiError> {
    state.limits.account(caller.user_id)?;
    if caller.system_admin && !state.admin_networks.is_empty() {
        let allowed = meta
            .source_ip
            .as_deref()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| state.admin_networks.iter().any(|net| net.contains(&ip)));
        if !allowed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "administrator accounts may not be used from this address",
            ));
        }
    }
    Ok(ContentAuth(caller))
}

/// The cookie browsers carry their session token in.
pub const SESSION_COOKIE: &str = "ceneca_session";

fn session_cookie(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// Refuses a write sent with the session cookie by a page of another origin that CORS
/// does not allow.
///
/// Browsers attach the `SameSite=Strict` cookie to requests from every page of the same
/// *site*, including other origins (another subdomain). JSON bodies are safe: their
/// content type needs a CORS preflight only allowed origins pass. But a `POST` without a
/// body (logout, restore, clear) needs none, and neither does a form (an attachment with
/// its file), so browsers' `Sec-Fetch-Site` header decides: from another origin, the
/// `Origin` must be one of `cors_allowed_origins`. A browser that sends no fetch metadata
/// is judged by its `Origin` alone: one that is not this server's (by `Host`) must be
/// allowed too.
fn check_cookie_origin(parts: &Parts, state: &AppState) -> Result<(), ApiError> {
    use axum::http::Method;
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let header_text = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let origin = header_text(header::ORIGIN).unwrap_or("");
    if state.cors_origins.iter().any(|o| o == origin) {
        return Ok(());
    }
    match header_text(header::HeaderName::from_static("sec-fetch-site")) {
        Some(site) => {
            if !site.eq_ignore_ascii_case("same-site") && !site.eq_ignore_ascii_case("cross-site") {
                return Ok(());
            }
        }
        // A browser that sends no fetch metadata still names the page's origin on a
        // write: one that is not this server's own is another origin's page.
        None => {
            // HTTP/2 names the host in `:authority`, not in a `Host` header.
            let host =
                header_text(header::HOST).or_else(|| parts.uri.authority().map(|a| a.as_str()));
            let own = host.is_some_and(|host| {
                origin
                    .split_once("://")
                    .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
            });
            if origin.is_empty() || own {
                return Ok(());
            }
        }
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "the session cookie cannot be used by pages of another origin; add the origin to cors_allowed_origins or use a bearer token",
    ))
}

/// What the audit trail records about the transport: the peer's address.
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(Meta(request_meta(parts)))
    }
}

fn request_meta(parts: &Parts) -> RequestMeta {
    RequestMeta {
        source_ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string()),
    }
}

/// The most a route's JSON body may hold; set with [`body_limit`].
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;
/// How much of an oversized body is still read (and discarded) before answering 413.
const DRAIN_AT_MOST: usize = 64 * 1024 * 1024;

/// The layer that sets a route's body limit: for [`JsonBody`] and for axum's extractors.
pub fn body_limit(bytes: usize) -> (axum::extract::DefaultBodyLimit, axum::Extension<BodyLimit>) {
    (
        axum::extract::DefaultBodyLimit::max(bytes),
        axum::Extension(BodyLimit(bytes)),
    )
}

/// Reads a body of at most `limit` bytes. A larger one is still read to its end (up to
/// [`DRAIN_AT_MOST`] more) before it is refused: a server that closes a connection with
/// unread data makes the kernel reset it, and the client then sees a broken connection
/// instead of the 413.
async fn read_limited(mut body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|_| ApiError::bad_request("the request body could not be read"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total <= limit {
            buf.extend_from_slice(&data);
        } else if total > limit.saturating_add(DRAIN_AT_MOST) {
            break;
        }
    }
    if total > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than this endpoint accepts",
        ));
    }
    Ok(Bytes::from(buf))
}

/// Whether a `Content-Type` is JSON: `application/json`, in any case, with parameters
/// such as `; charset=utf-8` or without. Nothing else is: not `text/plain` and not the
/// `+json` family, since the point is a type that HTML forms cannot send and that makes
/// browsers ask (CORS preflight) before sending it from another origin.
pub fn is_json(content_type: &HeaderValue) -> bool {
    content_type.to_str().is_ok_and(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/json")
    })
}

/// Whether a `Content-Type` is `multipart/form-data` (with its boundary parameter).
fn is_form_data(content_type: &HeaderValue) -> bool {
    content_type.to_str().is_ok_and(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("multipart/form-data")
    })
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON with the header Content-Type: application/json",
    )
    .with_field("content-type", "must be application/json")
}

/// Middleware: the body of a write (any method but `GET`, `HEAD`, `OPTIONS`) is JSON or
/// nothing, on every route, so also on routes that read no body (logout, restore), where a
/// form post would otherwise be acted on. A `Content-Type`, when sent, must be
/// `application/json`; a request without one must have no body. Answers 415 otherwise,
/// before authentication and handlers run.
pub async fn json_or_nothing(
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::body::HttpBody;
    use axum::http::Method;
    use axum::response::IntoResponse;
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    // An attachment's file is its own body, of any type (the server reads the type from
    // the bytes). The route takes `PUT` only, which no HTML form can send, and a
    // cross-origin `PUT` needs the CORS preflight the configured origins decide.
    if *req.method() == Method::PUT && is_content_upload(req.uri().path()) {
        return next.run(req).await;
    }
    // An attachment created with its file: a form, which an HTML page of another site
    // could send, but without this server's credentials: the session cookie is
    // `SameSite=Strict`, and from another origin of the same site it is refused unless
    // CORS allows that origin (`check_cookie_origin`); a bearer token no form can send.
    if *req.method() == Method::POST
        && req.uri().path() == "/api/v1/attachments"
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(is_form_data)
    {
        return next.run(req).await;
    }
    let acceptable = match req.headers().get(header::CONTENT_TYPE) {
        Some(ct) => is_json(ct),
        None => req.body().is_end_stream() || req.body().size_hint().exact() == Some(0),
    };
    if acceptable {
        next.run(req).await
    } else {
        unsupported_media_type().into_response()
    }
}

/// `/api/v1/attachments/{id}/content`.
fn is_content_upload(path: &str) -> bool {
    path.strip_prefix("/api/v1/attachments/")
        .and_then(|rest| rest.strip_suffix("/content"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// A JSON request body (any JSON value; the service validates its shape), sent with
/// `Content-Type: application/json`.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req).await?;
        let value = serde_json::from_slice(&bytes).map_err(|e| malformed(&e))?;
        Ok(JsonBody(value))
    }
}

/// The bytes of a JSON body: `Content-Type: application/json`, within the route's limit,
/// not empty.
async fn json_bytes(req: Request) -> Result<axum::body::Bytes, ApiError> {
    if !req.headers().get(header::CONTENT_TYPE).is_some_and(is_json) {
        return Err(unsupported_media_type());
    }
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(DEFAULT_BODY_LIMIT, |l| l.0);
    let bytes = read_limited(req.into_body(), limit).await?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    Ok(bytes)
}

/// A body that is not JSON: 400, saying where.
fn malformed(e: &serde_json::Error) -> ApiError {
    let reason = match e.classify() {
        serde_json::error::Category::Data => "JSON does not fit",
        serde_json::error::Category::Eof => "JSON ends early",
        _ => "malformed JSON",
    };
    ApiError::bad_request(format!(
        "{reason} at line {} column {}",
        e.line(),
        e.column()
    ))
}

/// A JSON body parsed straight from its bytes into a wire type, with no JSON tree first:
/// for the vector upserts, whose bodies are up to 64 MB of numbers, which a tree would
/// hold in tens of times their size. Errors as [`Body`]'s.
pub struct StreamBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for StreamBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req).await?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            // Not an object: malformed (400), or JSON of another kind (422), told apart
            // without building it.
            serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).map_err(|e| malformed(&e))?;
            return Err(invalid("body", "expected a JSON object".into()));
        }
        // Read at full speed first: tracking the path of every element costs a third of
        // the read of a batch of vectors. Only a body that fails is read again, to name
        // where it failed.
        if let Ok(value) = serde_json::from_slice::<T>(&bytes) {
            return Ok(StreamBody(value));
        }
        let mut json = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize::<_, T>(&mut json).map_err(|e| {
            if e.inner().is_data() {
                typed_error(e)
            } else {
                malformed(e.inner())
            }
        })?;
        json.end().map_err(|e| malformed(&e))?;
        Ok(StreamBody(value))
    }
}

/// A JSON body parsed into a wire type (`ceneca_wire`): a field of the wrong type, a
/// missing field or an unknown one answers 422 naming the field, as the service's own
/// validation does.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let JsonBody(value) = JsonBody::from_request(req, state).await?;
        typed(value).map(Body)
    }
}

/// Converts a JSON value into `T`, with the error naming the field it concerns.
pub fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(invalid("body", "expected a JSON object".into()));
    }
    serde_path_to_error::deserialize::<_, T>(value).map_err(typed_error)
}

/// A value that does not fit a wire type: 422, naming the field.
fn typed_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // serde names missing and unknown fields only in its message: `missing field `x``.
        let named = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned)
        };
        let join = |field: String| {
            if path == "." || path.is_empty() {
                field
            } else if path == field || path.ends_with(&format!(".{field}")) {
                // The path already ends at the field (an unknown one).
                path.clone()
            } else {
                format!("{path}.{field}")
            }
        };
        if let Some(field) = named("missing field `") {
            invalid(&join(field), "is required".into())
        } else if let Some(field) = named("unknown field `") {
            invalid(&join(field), "is not a field of this body".into())
        } else {
            let reason = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .replace("invalid type: ", "has the wrong type: ");
            invalid(if path == "." { "body" } else { &path }, reason)
        }
    }
}

fn invalid(field: &str, reason: String) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        format!("invalid input: {field}: {reason}"),
    )
    .with_field(field, reason)
}

/// A UUID path segment (the last one when there are several).
pub struct Id(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(segments) = Path::<Vec<String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("malformed path"))?;
        parse_id(segments.last().map(String::as_str).unwrap_or("")).map(Id)
    }
}

/// Two UUID path segments: a parent and a child (`/organizations/{id}/members/{member}`).
pub struct Ids(pub Uuid, pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for Ids {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(segments) = Path::<Vec<String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("malformed path"))?;
        match segments.as_slice() {
            [a, b] => Ok(Ids(parse_id(a)?, parse_id(b)?)),
            _ => Err(ApiError::bad_request("malformed path")),
        }
    }
}

fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError::bad_request("the id in the URL must be a UUID").with_field("id", "must be a UUID")
    })
}

/// A route that takes no query parameters: any one is refused (400 naming it) rather than
/// silently ignored, so `?wait=true` on a route without it is not mistaken for a promise.
pub struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let QueryPairs(pairs) = QueryPairs::from_request_parts(parts, state).await?;
        ceneca_wire::params::no_params(&pairs)?;
        Ok(NoQuery)
    }
}

/// The query string as name/value pairs, in order.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(pairs)| QueryPairs(pairs))
            .map_err(|_| ApiError::bad_request("the query string is malformed"))
    }
}
