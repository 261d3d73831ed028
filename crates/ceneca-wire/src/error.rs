//! The error body every route answers with, and the error of a bad parameter.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error answer: `{"error": {"code", "message", "fields"?}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": {"code": "validation_failed", "message": "invalid input: title: must be at most 500 characters", "fields": {"title": "must be at most 500 characters"}}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `bad_request`, `validation_failed`, `unauthorized`,
    /// `mfa_required`, `forbidden`, `not_found`, `conflict`, `rate_limited`,
    /// `method_not_allowed`, `payload_too_large`, `quota_exceeded`, `unsupported_media_type`, `unavailable`,
    /// `internal`.
    pub code: String,
    /// For people; never holds SQL, paths or secrets.
    pub message: String,
    /// Field (or parameter) → why it was refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// For `quota_exceeded`: the storage quota the write counted against, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    /// For `quota_exceeded`: what the quota's holder stores, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// The request's id (the `x-request-id` header), to find its log lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A query-string parameter the server cannot accept: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    pub field: String,
    pub message: String,
}

impl ParamError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
    /// A parameter the endpoint does not have: refused rather than ignored, so a typo
    /// (`limt=5`) is not silently a different query.
    pub fn unknown(field: &str, known: &[&str]) -> Self {
        Self::new(
            field,
            format!("unknown parameter '{field}'; use {}", known.join(", ")),
        )
    }
}
