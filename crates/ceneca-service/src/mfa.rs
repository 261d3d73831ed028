//! Multi-factor authentication with TOTP (RFC 6238): enroll (a secret and an `otpauth://`
//! URI), confirm with a first code (which turns MFA on and returns one-use recovery codes,
//! stored hashed), check at log-in, disable. The secret is stored encrypted, bound to the
//! user's row.

use ceneca_crypto::totp;
use ceneca_domain::clock::now;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Record, Value, model};
use ceneca_store::{WriteBatch, WriteOp};
use serde_json::Value as Json;
use uuid::Uuid;

use ceneca_wire::auth::{MfaConfirmRequest, MfaConfirmed, MfaDisableRequest, MfaEnrollment};

use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError, from_store};
use crate::secrets::secret_context;
use crate::{Caller, Services};

fn unix_now() -> u64 {
    now().unix_timestamp().max(0) as u64
}

/// Outcome of checking a second factor at log-in.
pub(crate) enum SecondFactor {
    /// The account does not use MFA.
    NotEnabled,
    /// A valid TOTP code, not used before (its step is now claimed).
    Code,
    /// A valid recovery code; the remaining codes (its digest removed) must be stored.
    RecoveryCode(Vec<String>),
}

impl Services {
    pub(crate) async fn user_row(&self, id: Uuid) -> Result<Record> {
        self.store
            .lookup_unscoped(&model::USERS, "id", Value::Id(id))
            .await?
            .ok_or(ServiceError::NotFound("user"))
    }

    fn mfa_secret(&self, user: &Record) -> Result<Option<Vec<u8>>> {
        let (Some(Value::Bytes(ciphertext)), Some(id)) =
            (user.get("mfa_secret_ciphertext"), user.id())
        else {
            return Ok(None);
        };
        self.keys
            .decrypt(
                ciphertext,
                &secret_context(&model::USERS, id, "mfa_secret", user),
            )
            .map(Some)
            .map_err(|e| ServiceError::Internal(format!("MFA secret of user {id}: {e}")))
    }

    async fn update_self(&self, caller: &Caller, set: Record, action: &str) -> Result<()> {
        self.store
            .apply(
                WriteBatch::new(caller.actor())
                    .push(WriteOp::Update {
                        entity: &model::USERS,
                        id: caller.user_id,
                        filter: ScopeFilter::AnyOf(vec![("id", vec![caller.user_id])]),
                        set,
                    })
                    .push(
                        self.audit_op(
                            AuditEvent::new(action, "success")
                                .by(caller)
                                .on("users", Some(caller.user_id)),
                        ),
                    ),
            )
            .await
            .map_err(|e| from_store("user", false, e))?;
        Ok(())
    }

    /// Starts enrolment: a new secret, not yet active. Answers `{secret, otpauth_uri}`.
    pub async fn mfa_enroll(&self, caller: &Caller) -> Result<MfaEnrollment> {
        caller.require_whole_account("enrol MFA")?;
        self.require_local_write(&model::USERS)?;
        let user = self.user_row(caller.user_id).await?;
        if user.get("mfa_enabled").and_then(Value::as_bool) == Some(true) {
            return Err(ServiceError::conflict(
                "MFA is already enabled; disable it first to enrol a new device",
            ));
        }
        let secret = totp::new_secret();
        let mut set = Record::new();
        let context = secret_context(&model::USERS, caller.user_id, "mfa_secret", &user);
        set.set(
            "mfa_secret_ciphertext",
            Value::Bytes(self.keys.encrypt(&secret, &context)),
        );
        self.update_self(caller, set, "auth.mfa_enroll").await?;
        Ok(MfaEnrollment {
            secret: totp::secret_base32(&secret),
            otpauth_uri: totp::otpauth_uri(&secret, &caller.email),
        })
    }

    /// Confirms enrolment with a code from the app; turns MFA on and answers the recovery
    /// codes, once.
    pub async fn mfa_confirm(
        &self,
        caller: &Caller,
        request: &MfaConfirmRequest,
    ) -> Result<MfaConfirmed> {
        self.require_local_write(&model::USERS)?;
        caller.require_whole_account("confirm MFA")?;
        let _gate = self.secret_checks.enter(caller.user_id).await;
        let code = request.code.as_str();
        self.secret_check_allowed(caller, "auth.mfa_confirm")
            .await?;
        let user = self.user_row(caller.user_id).await?;
        if user.get("mfa_enabled").and_then(Value::as_bool) == Some(true) {
            return Err(ServiceError::conflict("MFA is already enabled"));
        }
        let secret = self
            .mfa_secret(&user)?
            .ok_or_else(|| ServiceError::conflict("start with POST /auth/mfa/enroll"))?;
        let fresh = match totp::verify_step(&secret, code, unix_now()) {
            Some(step) => {
                self.store
                    .claim_totp_step(caller.user_id, step as i64)
                    .await?
            }
            None => false,
        };
        if !fresh {
            self.audit_now(
                AuditEvent::new("auth.mfa_confirm", "failure")
                    .by(caller)
                    .on("users", Some(caller.user_id)),
            )
            .await?;
            return Err(ServiceError::invalid(
                "code",
                "is not the current code of the authenticator (or was already used)",
            ));
        }
        let codes = totp::new_recovery_codes();
        let salt = totp::new_recovery_salt();
        let digests: Vec<Json> = codes
            .iter()
            .map(|c| Json::String(totp::recovery_code_salted(c, &salt)))
            .collect();
        let mut set = Record::new();
        set.set("mfa_enabled", Value::Bool(true));
        set.set("mfa_recovery_codes", Value::Json(Json::Array(digests)));
        self.update_self(caller, set, "auth.mfa_enable").await?;
        Ok(MfaConfirmed {
            mfa_enabled: true,
            recovery_codes: codes,
        })
    }

    /// Turns MFA off, with a current code or a recovery code.
    pub async fn mfa_disable(&self, caller: &Caller, request: &MfaDisableRequest) -> Result<()> {
        caller.require_whole_account("disable MFA")?;
        self.require_local_write(&model::USERS)?;
        let _gate = self.secret_checks.enter(caller.user_id).await;
        self.secret_check_allowed(caller, "auth.mfa_disable")
            .await?;
        let user = self.user_row(caller.user_id).await?;
        match self
            .check_second_factor(
                &user,
                request.mfa_code.as_deref(),
                request.recovery_code.as_deref(),
            )
            .await
        {
            Ok(SecondFactor::NotEnabled) => {
                return Err(ServiceError::conflict("MFA is not enabled"));
            }
            Ok(SecondFactor::Code | SecondFactor::RecoveryCode(_)) => {}
            Err(e) => {
                self.audit_now(
                    AuditEvent::new("auth.mfa_disable", "failure")
                        .by(caller)
                        .on("users", Some(caller.user_id)),
                )
                .await?;
                return Err(e);
            }
        }
        let mut set = Record::new();
        set.set("mfa_enabled", Value::Bool(false));
        set.set("mfa_secret_ciphertext", Value::Null);
        set.set("mfa_recovery_codes", Value::Json(Json::Array(Vec::new())));
        self.update_self(caller, set, "auth.mfa_disable").await
    }

    /// Checks a TOTP code or a recovery code against the user's MFA.
    /// A TOTP code is accepted once: its time step is claimed atomically in the store, so a
    /// code seen by an onlooker (or replayed from a log) does not work a second time.
    pub(crate) async fn check_second_factor(
        &self,
        user: &Record,
        mfa_code: Option<&str>,
        recovery_code: Option<&str>,
    ) -> Result<SecondFactor> {
        if user.get("mfa_enabled").and_then(Value::as_bool) != Some(true) {
            return Ok(SecondFactor::NotEnabled);
        }
        if let Some(code) = mfa_code {
            let secret = self.mfa_secret(user)?.ok_or(ServiceError::MfaRequired)?;
            let user_id = user
                .id()
                .ok_or_else(|| ServiceError::Internal("user without id".into()))?;
            let fresh = match totp::verify_step(&secret, code, unix_now()) {
                Some(step) => self.store.claim_totp_step(user_id, step as i64).await?,
                None => false,
            };
            return if fresh {
                Ok(SecondFactor::Code)
            } else {
                Err(ServiceError::Unauthorized(
                    "the one-time code is wrong, expired or already used",
                ))
            };
        }
        if let Some(code) = recovery_code {
            let stored: Vec<String> = match user.get("mfa_recovery_codes") {
                Some(Value::Json(Json::Array(items))) => items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            // Every stored code is compared, so the time taken does not tell which matched.
            let matches: Vec<bool> = stored
                .iter()
                .map(|d| totp::recovery_code_matches(code, d))
                .collect();
            let remaining: Vec<String> = stored
                .iter()
                .zip(&matches)
                .filter(|(_, m)| !**m)
                .map(|(d, _)| d.clone())
                .collect();
            let user_id = user
                .id()
                .ok_or_else(|| ServiceError::Internal("user without id".into()))?;
            let consumed = matches.iter().any(|m| *m)
                && self
                    .store
                    .consume_recovery_code(user_id, stored, remaining.clone())
                    .await?;
            return if consumed {
                Ok(SecondFactor::RecoveryCode(remaining))
            } else {
                Err(ServiceError::Unauthorized(
                    "the recovery code is wrong or already used",
                ))
            };
        }
        Err(ServiceError::MfaRequired)
    }
}

/// Secret checks behind a session (the password on `/auth/password`, a code on
/// `/auth/mfa/*`) allowed per account and action within [`SECRET_CHECK_WINDOW`]: a stolen
/// session token must not become a way to guess the password or the second factor at the
/// general rate limit.
pub const SECRET_CHECKS_PER_WINDOW: usize = 5;
pub const SECRET_CHECK_WINDOW: time::Duration = time::Duration::minutes(15);

impl Services {
    /// Refuses with 429 once `action` has failed [`SECRET_CHECKS_PER_WINDOW`] times for the
    /// caller's account within the window (counted from the audit trail, so every node
    /// agrees).
    pub(crate) async fn secret_check_allowed(&self, caller: &Caller, action: &str) -> Result<()> {
        let now = now();
        let mut q = ceneca_store::ListQuery::new(
            ScopeFilter::All,
            "sequence",
            true,
            SECRET_CHECKS_PER_WINDOW as u32,
        );
        q.equals.push(("action", Value::Text(action.to_owned())));
        q.equals.push(("actor_id", Value::Id(caller.user_id)));
        q.equals.push(("outcome", Value::Text("failure".into())));
        q.created_after = Some(now - SECRET_CHECK_WINDOW);
        let failures = self.store.list(&model::AUDIT_LOG, q).await?;
        if failures.len() < SECRET_CHECKS_PER_WINDOW {
            return Ok(());
        }
        let oldest = failures
            .last()
            .and_then(|r| r.get("at"))
            .and_then(Value::as_time)
            .unwrap_or(now);
        let wait = (oldest + SECRET_CHECK_WINDOW - now).whole_seconds().max(1) as u64;
        self.metrics.lockout(crate::metrics::Lockout::SecretCheck);
        Err(ServiceError::RateLimited {
            message: "too many failed attempts for this account; try again later".into(),
            retry_after_secs: wait,
        })
    }
}
