//! The upstream's API as a local node calls it. Every request goes to the checked
//! address (`policy.rs`); TLS trusts the enrolment's private CA when one was given, and
//! presents the device's client certificate when the upstream asks for one.

use std::time::Duration;

use ceneca_wire::sync::{PullPage, PushRequest, PushResponse, SnapshotPage};
use reqwest::StatusCode;
use serde_json::{Value as Json, json};
use uuid::Uuid;

use crate::credentials::Credentials;
use crate::policy::CheckedUpstream;

/// How an exchange with the upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No answer: the upstream is down or unreachable. The node keeps working and retries.
    #[error("the upstream cannot be reached: {0}")]
    Unreachable(String),
    /// The upstream answered with an error.
    #[error("the upstream answered {status} ({code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// The upstream's answer is not what its API promises.
    #[error("the upstream's answer is not understood: {0}")]
    Protocol(String),
}

impl UpstreamError {
    /// A 410: the cursor is beyond the upstream's log (it was restored from a backup).
    pub fn is_gone(&self) -> bool {
        matches!(self, UpstreamError::Refused { status: 410, .. })
    }
    /// A 401: the device's token no longer opens the upstream (revoked, expired).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, UpstreamError::Refused { status: 401, .. })
    }
}

/// A client of one upstream.
#[derive(Clone)]
pub struct Upstream {
    http: reqwest::Client,
    base: String,
    /// The device token (after enrolment).
    token: Option<String>,
}

/// How long one exchange may take before the upstream counts as unreachable.
const TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Upstream {
    /// A client of `upstream`, with the TLS material `tls` carries (the private CA, the
    /// client certificate and its key, all PEM).
    pub fn new(upstream: &CheckedUpstream, tls: &Credentials) -> Result<Self, UpstreamError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ceneca-node/", env!("CARGO_PKG_VERSION")));
        if let Some(address) = upstream.pinned {
            builder = builder.resolve(&upstream.host, address);
        }
        if let Some(ca) = &tls.ca_pem {
            let cert = reqwest::Certificate::from_pem(ca.as_bytes())
                .map_err(|e| UpstreamError::Protocol(format!("the CA certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        if let (Some(cert), Some(key)) = (&tls.client_cert_pem, &tls.client_key_pem) {
            let identity = reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes())
                .map_err(|e| UpstreamError::Protocol(format!("the client certificate: {e}")))?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| UpstreamError::Protocol(format!("the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: upstream.base.clone(),
            token: (!tls.device_token.is_empty()).then(|| tls.device_token.clone()),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let request = match token.or(self.token.as_deref()) {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| UpstreamError::Unreachable(describe(&e)))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: Json = response.json().await.unwrap_or(Json::Null);
        let error = body.get("error").unwrap_or(&Json::Null);
        let text = |name: &str| error.get(name).and_then(Json::as_str).unwrap_or_default();
        let mut message = match text("message") {
            "" => status.canonical_reason().unwrap_or("error").to_owned(),
            m => m.to_owned(),
        };
        if let Some(fields) = error.get("fields").and_then(Json::as_object) {
            for (field, reason) in fields {
                message.push_str(&format!(
                    "; {field}: {}",
                    reason.as_str().unwrap_or_default()
                ));
            }
        }
        Err(UpstreamError::Refused {
            status: status.as_u16(),
            code: text("code").to_owned(),
            message,
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> Result<T, UpstreamError> {
        self.send(request.timeout(TIMEOUT), token)
            .await?
            .json()
            .await
            .map_err(|e| UpstreamError::Protocol(e.to_string()))
    }

    /// Logs in with the account's password (and one-time code): a whole-account session,
    /// used only to enrol.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        mfa_code: Option<&str>,
    ) -> Result<String, UpstreamError> {
        let mut body = json!({"email": email, "password": password});
        if let Some(code) = mfa_code {
            body["mfa_code"] = Json::String(code.to_owned());
        }
        let answer: Json = self
            .json(self.http.post(self.url("/auth/login")).json(&body), None)
            .await?;
        answer
            .get("token")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| UpstreamError::Protocol("a log-in without a token".into()))
    }

    pub async fn me(&self, session: &str) -> Result<Json, UpstreamError> {
        self.json(self.http.get(self.url("/auth/me")), Some(session))
            .await
    }

    /// Registers this device for the session's account; the answer carries the device's
    /// token, shown once.
    pub async fn register_device(&self, session: &str, name: &str) -> Result<Json, UpstreamError> {
        self.json(
            self.http
                .post(self.url("/devices"))
                .json(&json!({"name": name, "platform": "desktop"})),
            Some(session),
        )
        .await
    }

    pub async fn logout(&self, session: &str) -> Result<(), UpstreamError> {
        self.send(
            self.http.post(self.url("/auth/logout")).timeout(TIMEOUT),
            Some(session),
        )
        .await
        .map(|_| ())
    }

    pub async fn pull(&self, cursor: i64, limit: u32) -> Result<PullPage, UpstreamError> {
        self.json(
            self.http
                .get(self.url("/sync/pull"))
                .query(&[("cursor", cursor.to_string()), ("limit", limit.to_string())]),
            None,
        )
        .await
    }

    /// A page of the device's snapshot (`as_of` of the first page after it).
    pub async fn snapshot(
        &self,
        as_of: Option<i64>,
        cursor: i64,
        limit: u32,
    ) -> Result<SnapshotPage, UpstreamError> {
        let mut query = vec![("cursor", cursor.to_string()), ("limit", limit.to_string())];
        if let Some(as_of) = as_of {
            query.push(("as_of", as_of.to_string()));
        }
        self.json(
            self.http.get(self.url("/sync/snapshot")).query(&query),
            None,
        )
        .await
    }

    pub async fn push(
        &self,
        device_id: Uuid,
        changes: Vec<ceneca_wire::sync::PushedChange>,
    ) -> Result<PushResponse, UpstreamError> {
        let request = PushRequest { device_id, changes };
        self.json(self.http.post(self.url("/sync/push")).json(&request), None)
            .await
    }

    /// Opens the upstream's change stream from now; `Ok` while it is open. Each received
    /// chunk calls `on_event` (the node then pulls: the stream is only its trigger).
    pub async fn follow_stream(&self, mut on_event: impl FnMut()) -> Result<(), UpstreamError> {
        let mut response = self
            .send(self.http.get(self.url("/sync/stream")), None)
            .await?;
        if response.status() != StatusCode::OK {
            return Err(UpstreamError::Protocol("the stream did not open".into()));
        }
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    // Heartbeats are comment lines (`:`); anything else is news.
                    if chunk
                        .split(|b| *b == b'\n')
                        .any(|line| !line.is_empty() && !line.starts_with(b":"))
                    {
                        on_event();
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(UpstreamError::Unreachable(describe(&e))),
            }
        }
    }
}

/// A transport error with its causes (reqwest's own message names only the outermost).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
