//! The one mapping from service errors to HTTP (DESIGN.md §3 rule 7): a stable `code`, a
//! human `message`, `fields` for validation, and the `request_id` of the request (the
//! `x-request-id` response header), so a report can be matched with the server's log.
//! Internal details are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ceneca_service::ServiceError;
use std::collections::BTreeMap;

use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Field → reason (a `BTreeMap`: stable order, and small enough to return by value).
    pub fields: BTreeMap<String, String>,
    /// Seconds to wait, for 429 answers (`Retry-After`).
    pub retry_after: Option<u64>,
    /// A storage quota and what its holder uses, for `quota_exceeded` answers.
    pub quota: Option<(u64, u64)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: BTreeMap::new(),
            retry_after: None,
            quota: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn with_field(mut self, field: &str, reason: impl Into<String>) -> Self {
        self.fields.insert(field.to_owned(), reason.into());
        self
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
}

impl From<ceneca_wire::ParamError> for ApiError {
    fn from(e: ceneca_wire::ParamError) -> Self {
        ApiError::bad_request(e.message.clone()).with_field(&e.field, e.message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Validation(v) => {
                let mut out = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    format!("invalid input: {}", v.summary()),
                );
                for (field, reason) in v.fields {
                    out.fields.insert(field, reason);
                }
                out
            }
            ServiceError::BadRequest { message, field } => {
                let out = ApiError::bad_request(message.clone());
                match field {
                    Some(f) => out.with_field(&f, message),
                    None => out,
                }
            }
            ServiceError::Unauthorized(m) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m)
            }
            ServiceError::MfaRequired => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "mfa_required",
                ServiceError::MfaRequired.to_string(),
            ),
            ServiceError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            ServiceError::NotFound(what) => ApiError::not_found(what),
            ServiceError::Conflict { message, fields } => {
                let mut out = ApiError::new(StatusCode::CONFLICT, "conflict", message);
                for (field, reason) in fields {
                    out.fields.insert(field, reason);
                }
                out
            }
            ServiceError::TooLarge { message, limit } => {
                let mut out = ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    message.clone(),
                );
                out.fields
                    .insert("file".into(), format!("at most {limit} bytes"));
                out
            }
            ServiceError::QuotaExceeded { quota, used } => {
                let mut out = ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "quota_exceeded",
                    format!(
                        "storage quota exceeded: {used} of {quota} bytes are used; delete \
                         content or raise the quota"
                    ),
                );
                out.quota = Some((quota, used));
                out
            }
            ServiceError::UnsupportedType(m) => {
                let mut out = ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    m.clone(),
                );
                out.fields.insert("file".into(), m);
                out
            }
            ServiceError::RateLimited {
                message,
                retry_after_secs,
            } => {
                let mut out = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
                out.retry_after = Some(retry_after_secs);
                out
            }
            ServiceError::NotAllowed(m) => {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", m)
            }
            ServiceError::NotInEdition(m) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_in_edition", m)
            }
            ServiceError::Gone(m) => ApiError::new(StatusCode::GONE, "cursor_expired", m),
            ServiceError::Removed(m) => ApiError::new(StatusCode::GONE, "content_removed", m),
            ServiceError::NotReady(m) => {
                let mut out = ApiError::new(StatusCode::NOT_FOUND, "not_ready", m);
                out.retry_after = Some(2);
                out
            }
            ServiceError::Stale => ApiError::new(
                StatusCode::CONFLICT,
                "stale",
                ServiceError::Stale.to_string(),
            ),
            ServiceError::UpstreamOnly(m) => {
                ApiError::new(StatusCode::CONFLICT, "upstream_only", m)
            }
            ServiceError::NotLocalNode(m) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_a_local_node", m)
            }
            ServiceError::Unavailable(m) => {
                tracing::warn!(%m, "dependency unavailable");
                let mut out = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m);
                out.retry_after = Some(5);
                out
            }
            ServiceError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if !self.fields.is_empty() {
            error["fields"] = json!(self.fields);
        }
        if let Some((quota, used)) = self.quota {
            error["quota_bytes"] = json!(quota);
            error["used_bytes"] = json!(used);
        }
        if let Some(id) = crate::request_id::current() {
            error["request_id"] = json!(id);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
