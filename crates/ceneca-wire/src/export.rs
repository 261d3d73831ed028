//! A user's export run as a job: `POST /users/{id}/export` (202), `GET /exports/{id}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ParamError;
use crate::params::refuse_repeats;

/// `POST /users/{id}/export?job=true|false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportParams {
    /// `Some(true)`: run as a job; `Some(false)`: stream now, whatever the size; `None`:
    /// a job when the account stores more than `export.job_threshold_bytes`.
    pub job: Option<bool>,
}

impl ExportParams {
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, ParamError> {
        refuse_repeats(pairs)?;
        let mut out = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "job" => {
                    out.job = Some(match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(ParamError::new("job", "must be true or false")),
                    })
                }
                other => return Err(ParamError::new(other, "is not a parameter of this route")),
            }
        }
        Ok(out)
    }
}

/// Where an export job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportJobStatus {
    Running,
    /// The archive is ready: `GET /exports/{id}/content` until `expires_at`.
    Ready,
    Failed,
}

/// An export run as a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExportJob {
    pub id: uuid::Uuid,
    /// The account exported.
    pub user_id: uuid::Uuid,
    pub status: ExportJobStatus,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// When the archive is deleted (a ready job), or the job forgotten (a failed one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Bytes of the archive, once ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_bytes: Option<u64>,
    /// The archive's SHA-256, once ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Attachment files in the archive, once ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the archive is read once ready (`/api/v1/exports/{id}/content`).
    pub content_url: String,
}
