//! Logging in: the password check, and the lockout counted from the audit trail.

use ceneca_crypto::{password, token};
use ceneca_domain::clock::now;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Record, Value, model};
use time::OffsetDateTime;
use uuid::Uuid;

use ceneca_wire::auth::LoginRequest;

use super::accounts::verify_password;
use super::{
    LOCKOUT_AFTER, Login, MAX_FAILED_LOGINS_PER_HOUR, MAX_LOCKOUT_SECS, MAX_PASSWORD_CHARS,
};
use crate::Services;
use crate::audit::{AuditEvent, RequestMeta};
use crate::error::{Result, ServiceError};
use crate::mfa::SecondFactor;

/// The id failed log-ins of an identifier no account has are counted under: a keyed digest
/// of the normalised e-mail (HMAC under a subkey of the key ring), so the identifier is
/// never stored and cannot be confirmed from the audit trail by guessing. Only
/// identifiers that are e-mail addresses count (no account can have any other), which
/// keeps a password typed into the e-mail field out of the trail even as a digest.
fn login_identifier(key: &[u8], email: &str) -> Option<Uuid> {
    let (local, domain) = email.split_once('@')?;
    if local.is_empty() || !domain.contains('.') || email.contains(char::is_whitespace) {
        return None;
    }
    let digest = token::keyed_digest(key, format!("ceneca login identifier\0{email}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Some(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

fn remaining(until: OffsetDateTime, now: OffsetDateTime) -> Option<std::time::Duration> {
    let left = until - now;
    (left > time::Duration::ZERO).then(|| std::time::Duration::try_from(left).unwrap_or_default())
}

impl Services {
    /// Checks the e-mail and password (and the second factor, when the account has one)
    /// and opens a session.
    pub async fn login(&self, request: &LoginRequest, meta: &RequestMeta) -> Result<Login> {
        let unauthorized = ServiceError::Unauthorized("invalid e-mail or password");
        let (email, pass) = (request.email.as_str(), request.password.as_str());
        if pass.chars().count() > MAX_PASSWORD_CHARS {
            return Err(unauthorized);
        }
        let email = email.trim().to_lowercase();
        let user = self
            .store
            .lookup_unscoped(&model::USERS, "email", Value::Text(email.clone()))
            .await?
            .filter(|u| u.get("deleted_at").is_none_or(Value::is_null));
        // Attempts are counted per account, or per typed identifier when no account has it,
        // so an unknown e-mail is answered exactly like a known one (no enumeration).
        let attempts = match user.as_ref().and_then(Record::id) {
            Some(id) => Some(("users", id)),
            None => self
                .keys
                .audit_chain_key(self.keys.active_key_id())
                .and_then(|key| login_identifier(&key, &email))
                .map(|id| ("login_identifier", id)),
        };
        let failure = |outcome: &'static str, reason: &str| {
            // The typed identifier is recorded only when it is an account's e-mail: a
            // password typed into the e-mail field must not end up in the audit trail.
            let details = match &user {
                // An address stored under a DLP `flag` policy can hold a finding.
                Some(_) => {
                    serde_json::json!({ "email": self.dlp_audit_email(&email), "reason": reason })
                }
                None => serde_json::json!({ "reason": reason }),
            };
            let mut event = AuditEvent::new("auth.login", outcome).details(details);
            if let Some((kind, id)) = attempts {
                event = event.on(kind, Some(id));
            }
            event.actor = user.as_ref().and_then(Record::id);
            event.source_ip = meta.source_ip.clone();
            event
        };
        // One check at a time per account (or identifier) on this node, from the count of
        // earlier failures to this attempt's outcome, so a burst cannot pass the count at
        // once (see `gate.rs`).
        let _gate = match attempts {
            Some((_, key)) => Some(self.secret_checks.enter(key).await),
            None => None,
        };
        // Checked before the password, so nothing is learnt from an attempt while locked.
        if let Some((_, key)) = attempts
            && let Some(wait) = self.login_lockout(key, meta.source_ip.as_deref()).await?
        {
            self.audit_now(failure("denied", "locked after repeated failures"))
                .await?;
            self.metrics.lockout(crate::metrics::Lockout::Login);
            return Err(ServiceError::RateLimited {
                message: "too many failed log-ins for this account; try again later".into(),
                retry_after_secs: wait.as_millis().div_ceil(1000).max(1) as u64,
            });
        }
        // Verify against a dummy hash for unknown accounts: the answer takes as long either way.
        let hash = user
            .as_ref()
            .and_then(|u| u.get("password_hash"))
            .and_then(Value::as_str)
            .unwrap_or(password::dummy_hash())
            .to_owned();
        let valid = verify_password(pass.to_owned(), hash).await;
        if !valid || user.is_none() {
            self.audit_now(failure("failure", "invalid e-mail or password"))
                .await?;
            return Err(unauthorized);
        }
        let Some(user) = user.clone() else {
            return Err(unauthorized);
        };
        if user.get("status").and_then(Value::as_str) != Some("active") {
            self.audit_now(failure("denied", "account suspended"))
                .await?;
            return Err(ServiceError::Forbidden("this account is suspended".into()));
        }
        let remaining_recovery_codes = match self
            .check_second_factor(
                &user,
                request.mfa_code.as_deref(),
                request.recovery_code.as_deref(),
            )
            .await
        {
            Ok(SecondFactor::RecoveryCode(remaining)) => Some(remaining),
            Ok(SecondFactor::NotEnabled | SecondFactor::Code) => None,
            Err(ServiceError::MfaRequired) => return Err(ServiceError::MfaRequired),
            Err(e @ ServiceError::Unauthorized(_)) => {
                self.audit_now(failure("failure", "wrong second factor"))
                    .await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        self.start_session(&user, meta, remaining_recovery_codes)
            .await
    }

    /// How long log-ins for `key` (an account, or a typed identifier) must wait, read from
    /// the audit trail so every node agrees:
    /// - from one address, after 5 consecutive failures the wait doubles from 1 s up to
    ///   15 minutes, so an attacker's address does not lock out the owner's;
    /// - 100 failures within an hour, from anywhere, lock it until the hour has passed.
    ///
    /// Only real password checks count (`failure`); attempts refused while locked
    /// (`denied`) do not, so retrying during a lockout cannot extend it.
    async fn login_lockout(
        &self,
        key: Uuid,
        source_ip: Option<&str>,
    ) -> Result<Option<std::time::Duration>> {
        let now = now();
        let since = now - time::Duration::hours(1);
        let mut q = ceneca_store::ListQuery::new(
            ScopeFilter::All,
            "sequence",
            true,
            MAX_FAILED_LOGINS_PER_HOUR,
        );
        q.equals.push(("action", Value::Text("auth.login".into())));
        q.equals.push(("resource_id", Value::Id(key)));
        q.equals.push(("outcome", Value::Text("failure".into())));
        q.created_after = Some(since);
        let failures = self.store.list(&model::AUDIT_LOG, q).await?;
        let at = |r: &Record| r.get("at").and_then(Value::as_time);
        if failures.len() >= MAX_FAILED_LOGINS_PER_HOUR as usize
            && let Some(oldest) = failures.last().and_then(at)
        {
            return Ok(remaining(oldest + time::Duration::hours(1), now));
        }
        let mut q = ceneca_store::ListQuery::new(ScopeFilter::All, "sequence", true, 1);
        q.equals.push(("action", Value::Text("auth.login".into())));
        q.equals.push(("resource_id", Value::Id(key)));
        q.equals.push(("outcome", Value::Text("success".into())));
        q.created_after = Some(since);
        let last_success = self.store.list(&model::AUDIT_LOG, q).await?;
        let last_success = last_success.first().and_then(at).unwrap_or(since);
        let consecutive: Vec<OffsetDateTime> = failures
            .iter()
            .filter(|r| r.get("source_ip").and_then(Value::as_str) == source_ip)
            .filter_map(at)
            .filter(|t| *t > last_success)
            .collect();
        Ok(match (consecutive.len(), consecutive.first()) {
            (n, Some(last)) if n >= LOCKOUT_AFTER => {
                let backoff = (1u64 << (n - LOCKOUT_AFTER).min(10)).min(MAX_LOCKOUT_SECS);
                remaining(*last + time::Duration::seconds(backoff as i64), now)
            }
            _ => None,
        })
    }
}
