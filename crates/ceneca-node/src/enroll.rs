//! `ceneca device enroll`: the account logs in upstream once, registers this device, and
//! keeps only the device's token (the whole-account session is ended at once). The
//! account is kept here with an Argon2id hash of the same password, so its user logs in
//! to the local node offline too.

use ceneca_crypto::KeyRing;
use ceneca_service::Services;
use uuid::Uuid;

use crate::credentials::{Credentials, NodeFiles, SyncCursors};
use crate::policy::CheckedUpstream;
use crate::upstream::Upstream;
use crate::{NodeError, UpstreamError};

/// What enrolment needs.
pub struct EnrollRequest {
    pub upstream: CheckedUpstream,
    pub email: String,
    pub password: String,
    pub mfa_code: Option<String>,
    pub device_name: String,
    /// PEM, see [`Credentials`].
    pub ca_pem: Option<String>,
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<String>,
}

/// A device registered upstream and kept here.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub device_id: Uuid,
    pub user_id: Uuid,
}

/// Enrols this node. Nothing is stored unless the upstream accepted the log-in and
/// registered the device; a folder enrolled before is enrolled anew (its cursors reset:
/// the next sync reads the new device's feed from the start, which recognises what is
/// held already).
pub async fn enroll(
    services: &Services,
    keys: &KeyRing,
    files: &NodeFiles,
    request: EnrollRequest,
) -> Result<Enrolled, NodeError> {
    let mut credentials = Credentials {
        upstream: request.upstream.base.clone(),
        email: request.email.trim().to_lowercase(),
        ca_pem: request.ca_pem,
        client_cert_pem: request.client_cert_pem,
        client_key_pem: request.client_key_pem,
        ..Credentials::default()
    };
    let client = Upstream::new(&request.upstream, &credentials)?;
    let session = client
        .login(
            &credentials.email,
            &request.password,
            request.mfa_code.as_deref(),
        )
        .await
        .map_err(|e| match e {
            UpstreamError::Refused {
                status: 401,
                message,
                ..
            } => NodeError::Policy(format!(
                "the upstream refused the log-in of {}: {message}",
                credentials.email
            )),
            other => other.into(),
        })?;
    let registered = async {
        let me = client.me(&session).await?;
        // Refused before a device is registered upstream for nothing.
        if let Some(user_id) = me
            .get("id")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
        {
            services.check_adoptable(user_id).await?;
        }
        let device = client
            .register_device(&session, &request.device_name)
            .await?;
        Ok::<_, NodeError>((me, device))
    }
    .await;
    // The session was only for enrolling: it ends whatever happened.
    if let Err(e) = client.logout(&session).await {
        tracing::warn!(error = %e, "the enrolment's log-in session was not ended upstream");
    }
    let (me, device) = registered?;
    let id = |json: &serde_json::Value| {
        json.get("id")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
    };
    let (Some(user_id), Some(device_id), Some(token)) = (
        id(&me),
        id(&device),
        device.get("token").and_then(serde_json::Value::as_str),
    ) else {
        return Err(
            UpstreamError::Protocol("an account or device without its id or token".into()).into(),
        );
    };
    services
        .adopt_account(&me, &request.password, &device)
        .await?;
    credentials.user_id = user_id;
    credentials.device_id = device_id;
    credentials.device_token = token.to_owned();
    files.save_cursors(SyncCursors::default())?;
    files.save_credentials(keys, &credentials)?;
    Ok(Enrolled { device_id, user_id })
}
