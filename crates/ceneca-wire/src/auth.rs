//! Accounts, log-in, MFA and API tokens.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /auth/register`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple", "display_name": "Ada"}))]
pub struct RegisterRequest {
    #[schema(max_length = 254, example = "ada@example.com")]
    pub email: String,
    /// 8 to 1,024 characters.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200)]
    pub display_name: Option<String>,
    /// Fields registration does not have: refused by the service together with every other
    /// invalid field, so a client learns all its mistakes at once.
    #[serde(flatten, default, skip_serializing)]
    #[schema(ignore)]
    pub unknown: std::collections::BTreeMap<String, Json>,
}

/// `POST /auth/login`. With MFA enabled, `mfa_code` (or a one-use `recovery_code`) is
/// required; without it the answer is 401 `mfa_required`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "password": "correct horse battery staple"}))]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_code: Option<String>,
}

/// A new session. With `?session=cookie` the token is in an `HttpOnly` cookie instead, and
/// `token_type` is `Cookie`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// The bearer token (absent when it was set as a cookie). Shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `Bearer` or `Cookie`.
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[schema(value_type = Object, example = json!({"id": "019ad7c6-7b3e-7cc0-9b7e-2d0c7f7f1a11", "email": "ada@example.com"}))]
    pub user: Json,
}

/// `POST /auth/password`: every session of the account ends, this one included.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: String,
}

/// `POST /auth/mfa/enroll`: MFA is on only after `confirm`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MfaEnrollment {
    /// Base32, for authenticator apps that cannot read the URI.
    pub secret: String,
    /// `otpauth://totp/...`, for a QR code.
    pub otpauth_uri: String,
}

/// `POST /auth/mfa/confirm`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MfaConfirmRequest {
    /// The 6-digit code the app shows now.
    #[schema(example = "123456")]
    pub code: String,
}

/// MFA is on; the recovery codes are shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MfaConfirmed {
    pub mfa_enabled: bool,
    pub recovery_codes: Vec<String>,
}

/// `POST /auth/mfa/disable`: a current code or a recovery code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MfaDisableRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_code: Option<String>,
}

/// `POST /api-tokens`: a token limited to one workspace's content.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "ci indexer", "workspace_id": "019ad7c6-7b3e-7cc0-9b7e-2d0c7f7f1a11", "expires_in_days": 30}))]
pub struct ApiTokenRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub workspace_id: Uuid,
    /// 1 to 366; 90 when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 366)]
    pub expires_in_days: Option<i64>,
}

/// Status of a readiness or liveness probe.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    pub status: String,
}
