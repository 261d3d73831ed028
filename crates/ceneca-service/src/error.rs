use std::collections::BTreeMap;

use ceneca_domain::ValidationError;
use ceneca_store::StoreError;

/// Why a use case failed, in terms a client can act on. The server maps each variant to
/// one HTTP status in one place; internal details stay in the logs.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input breaks the model's rules (422).
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The request itself is malformed: a bad query parameter or cursor (400).
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<String>,
    },
    /// No valid credentials (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The password was right; the account also needs a one-time code (401,
    /// `mfa_required`).
    #[error("this account uses multi-factor authentication: send mfa_code (or recovery_code)")]
    MfaRequired,
    /// Authenticated, but the caller's role does not allow it (403).
    #[error("{0}")]
    Forbidden(String),
    /// Does not exist, or is outside the caller's scope (404): the two are indistinguishable
    /// on purpose, so ids of other tenants leak nothing.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Conflicts with existing data: a duplicate, or a row still referenced (409).
    #[error("{message}")]
    Conflict {
        message: String,
        fields: BTreeMap<String, String>,
    },
    /// The body is larger than this server takes (413).
    #[error("{message}")]
    TooLarge { message: String, limit: u64 },
    /// The write would take its holder past its storage quota (413, `quota_exceeded`).
    #[error(
        "storage quota exceeded: {used} of {quota} bytes are used; delete content or raise the quota"
    )]
    QuotaExceeded { quota: u64, used: u64 },
    /// Content of a type this server does not take (415).
    #[error("{0}")]
    UnsupportedType(String),
    /// Too many attempts; try again after `retry_after_secs` (429).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// The operation does not exist for this resource (405).
    #[error("{0}")]
    NotAllowed(String),
    /// The feature does not exist in this edition (404, `not_in_edition`): the zero-sync
    /// edition has no telemetry export, sync or webhooks. The message says why.
    #[error("{0}")]
    NotInEdition(String),
    /// What the client holds can no longer be continued from (410): a change-log cursor
    /// this server cannot serve. The message says what to do instead.
    #[error("{0}")]
    Gone(String),
    /// What was asked for was removed for good (410, `content_removed`): an attachment's
    /// file that retention let go when its thread was archived.
    #[error("{0}")]
    Removed(String),
    /// What was asked for is being made and is not there yet (404, `not_ready`, with a
    /// time to ask again): an image's thumbnail just after its upload.
    #[error("{0}")]
    NotReady(String),
    /// The row changed while a replayed change was merged against it (409, `stale`):
    /// replication decides again; a client never sees it unless that keeps happening.
    #[error("the row changed while this change was merged: retry")]
    Stale,
    /// On a local node: what only the upstream changes (409, `upstream_only`).
    #[error("{0}")]
    UpstreamOnly(String),
    /// A route of local nodes asked of a server that is not one (404, `not_a_local_node`).
    #[error("{0}")]
    NotLocalNode(String),
    /// A component we depend on (a Qdrant server) cannot be reached now (503): retry.
    #[error("{0}")]
    Unavailable(String),
    /// A fault of ours; logged with detail, answered as a bare 500.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl ServiceError {
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        ServiceError::BadRequest {
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }
    /// A file larger than the `limit` bytes an upload may carry (413).
    pub fn too_large(limit: u64) -> Self {
        ServiceError::TooLarge {
            message: format!("the file is larger than the {limit} bytes an upload may carry"),
            limit,
        }
    }
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ServiceError::Validation(ValidationError::field(field, reason))
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        ServiceError::Conflict {
            message: message.into(),
            fields: BTreeMap::new(),
        }
    }
}

/// What a store failure means for a write on `entity_name`.
pub(crate) fn from_store(entity_name: &'static str, deleting: bool, e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::NotFound(entity_name),
        StoreError::Unique { fields, .. } => {
            let fields: BTreeMap<String, String> = fields
                .into_iter()
                .map(|f| (f, "is already taken".to_owned()))
                .collect();
            let names = fields.keys().cloned().collect::<Vec<_>>().join(", ");
            ServiceError::Conflict {
                message: format!("a {entity_name} with the same {names} already exists"),
                fields,
            }
        }
        StoreError::ForeignKey { .. } if deleting => ServiceError::conflict(format!(
            "this {entity_name} is still referenced by other records"
        )),
        StoreError::ForeignKey { .. } => {
            ServiceError::invalid("body", "references a record that does not exist")
        }
        StoreError::Check { .. } => {
            ServiceError::invalid("body", "breaks a constraint of the data model")
        }
        // What does not depend on the entity means what it means anywhere.
        other => other.into(),
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ServiceError::NotFound("record"),
            StoreError::Stale => ServiceError::Stale,
            StoreError::MustKeep(keep) => ServiceError::conflict(keep),
            StoreError::Refused(why) => ServiceError::Forbidden(why.into()),
            StoreError::QuotaExceeded { quota, used } => ServiceError::QuotaExceeded {
                quota: quota.max(0) as u64,
                used: used.max(0) as u64,
            },
            StoreError::Unavailable(why) => ServiceError::Unavailable(why),
            StoreError::Cancelled => ServiceError::Unavailable(StoreError::Cancelled.to_string()),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}
