//! Accounts and sessions: register, log in and out, change password, and turn a bearer
//! token into a [`Caller`].
//!
//! Tokens are 256 random bits; only their SHA-256 is stored, so the sessions table is
//! useless to a thief. Passwords are Argon2id-hashed on the blocking pool (the hash is
//! deliberately slow and must not stall the async workers).

use ceneca_crypto::{password, token};
use ceneca_domain::clock::now;
use ceneca_domain::credential::Credential;
use ceneca_domain::output::{View, to_json};
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::validate::{fill_defaults, parse_value};
use ceneca_domain::{Record, ValidationError, Value, model, new_id};
use ceneca_store::{Actor, WriteBatch, WriteOp};
use serde_json::{Value as Json, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{AuditEvent, RequestMeta};
use crate::error::{Result, ServiceError, from_store};
use crate::mfa::SecondFactor;
use crate::{Caller, Services};

pub const MIN_PASSWORD_CHARS: usize = 8;
/// Bounded so a huge "password" cannot make hashing a denial of service.
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// Consecutive failed log-ins after which an account waits before the next attempt.
const LOCKOUT_AFTER: usize = 5;
/// The longest wait between attempts once locked.
const MAX_LOCKOUT_SECS: u64 = 15 * 60;
/// Failed log-ins per account per hour after which the account is locked for the hour.
pub const MAX_FAILED_LOGINS_PER_HOUR: u32 = 100;

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

/// `last_used_at` is written at most this often per session.
const TOUCH_INTERVAL: time::Duration = time::Duration::seconds(60);

/// A new session: the token is shown once, here.
#[derive(Debug, Clone)]
pub struct Login {
    pub token: String,
    pub expires_at: OffsetDateTime,
    pub user: Json,
}

impl Login {
    pub fn to_json(&self) -> Json {
        json!({
            "token": self.token,
            "token_type": "Bearer",
            "expires_at": ceneca_domain::output::format_time(self.expires_at),
            "user": self.user,
        })
    }
}

fn check_password(
    errors: &mut ValidationError,
    field: &str,
    password: Option<&Json>,
) -> Option<String> {
    match password.map(|p| p.as_str()) {
        None => errors.add(field, "is required"),
        Some(None) => errors.add(field, "must be a string"),
        Some(Some(p)) if p.chars().count() < MIN_PASSWORD_CHARS => errors.add(
            field,
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ),
        Some(Some(p)) if p.chars().count() > MAX_PASSWORD_CHARS => errors.add(
            field,
            format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        ),
        Some(Some(p)) => return Some(p.to_owned()),
    }
    None
}

async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| ServiceError::Internal(format!("password hashing failed: {e}")))
}

async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || password::verify(&password, &hash))
        .await
        .unwrap_or(false)
}

impl Services {
    /// Creates an account from `{email, password, display_name?}` and logs it in.
    pub async fn register(&self, body: &Json, meta: &RequestMeta) -> Result<Login> {
        if !self.config.allow_registration {
            return Err(ServiceError::Forbidden(
                "registration is disabled on this server".into(),
            ));
        }
        let object = body
            .as_object()
            .ok_or_else(|| ServiceError::invalid("body", "expected a JSON object"))?;
        let mut errors = ValidationError::new();
        for key in object.keys() {
            if !matches!(key.as_str(), "email" | "password" | "display_name") {
                errors.add(key.as_str(), "is not a field of registration");
            }
        }
        let email = match object.get("email") {
            None => {
                errors.add("email", "is required");
                None
            }
            Some(e) => parse_value(model::USERS.field("email").expect("users.email"), e)
                .map_err(|r| errors.add("email", r))
                .ok(),
        };
        let display_name = match object.get("display_name") {
            None => email
                .as_ref()
                .and_then(Value::as_str)
                .map(|e| Value::Text(e.split('@').next().unwrap_or(e).to_owned())),
            Some(n) => parse_value(
                model::USERS
                    .field("display_name")
                    .expect("users.display_name"),
                n,
            )
            .map_err(|r| errors.add("display_name", r))
            .ok(),
        };
        let password = check_password(&mut errors, "password", object.get("password"));
        errors.into_result()?;
        let (Some(email), Some(display_name), Some(password)) = (email, display_name, password)
        else {
            return Err(ServiceError::Internal(
                "validated registration lacks a field".into(),
            ));
        };
        let user = self
            .insert_user(email, display_name, &password, false, "auth.register", meta)
            .await?;
        self.start_session(&user, meta, None).await
    }

    /// Creates an account directly (the `ceneca user create` command: an administrative
    /// path with no caller).
    pub async fn create_user(
        &self,
        email: &str,
        display_name: &str,
        password: &str,
        admin: bool,
    ) -> Result<Json> {
        let mut errors = ValidationError::new();
        let email = parse_value(
            model::USERS.field("email").expect("users.email"),
            &Json::from(email),
        )
        .map_err(|r| errors.add("email", r))
        .ok();
        let name = parse_value(
            model::USERS
                .field("display_name")
                .expect("users.display_name"),
            &Json::from(display_name),
        )
        .map_err(|r| errors.add("display_name", r))
        .ok();
        let password = check_password(&mut errors, "password", Some(&Json::from(password)));
        errors.into_result()?;
        let (Some(email), Some(name), Some(password)) = (email, name, password) else {
            return Err(ServiceError::Internal(
                "validated user lacks a field".into(),
            ));
        };
        let user = self
            .insert_user(
                email,
                name,
                &password,
                admin,
                "users.create",
                &RequestMeta::default(),
            )
            .await?;
        Ok(to_json(&model::USERS, &user, View::Detail))
    }

    async fn insert_user(
        &self,
        email: Value,
        display_name: Value,
        password: &str,
        admin: bool,
        action: &str,
        meta: &RequestMeta,
    ) -> Result<Record> {
        let now = now();
        let mut user = Record::new();
        user.set("id", Value::Id(new_id()));
        user.set("created_at", Value::Time(now));
        user.set("updated_at", Value::Time(now));
        user.set("email", email);
        user.set("display_name", display_name);
        user.set(
            "password_hash",
            Value::Text(hash_password(password.to_owned()).await?),
        );
        user.set(
            "role",
            Value::Text(if admin { "admin" } else { "user" }.into()),
        );
        fill_defaults(&model::USERS, &mut user, now);
        let actor = Actor {
            user_id: user.id(),
            device_id: None,
        };
        let mut event = AuditEvent::new(action, "success").on("users", user.id());
        event.actor = user.id();
        event.source_ip = meta.source_ip.clone();
        let rows = self
            .store
            .apply(
                WriteBatch::new(actor)
                    .push(WriteOp::Insert {
                        entity: &model::USERS,
                        record: user,
                    })
                    .push(self.audit_op(event)),
            )
            .await
            .map_err(|e| match from_store("user", false, e) {
                ServiceError::Conflict { fields, .. } => ServiceError::Conflict {
                    message: "an account with this e-mail already exists".into(),
                    fields,
                },
                other => other,
            })?;
        rows.into_iter()
            .next()
            .ok_or_else(|| ServiceError::Internal("insert returned no row".into()))
    }

    /// Checks `{email, password}` and opens a session.
    pub async fn login(&self, body: &Json, meta: &RequestMeta) -> Result<Login> {
        let unauthorized = ServiceError::Unauthorized("invalid e-mail or password");
        let object = body
            .as_object()
            .ok_or_else(|| ServiceError::invalid("body", "expected a JSON object"))?;
        let mut errors = ValidationError::new();
        let email = object.get("email").and_then(Json::as_str);
        let pass = object.get("password").and_then(Json::as_str);
        if email.is_none() {
            errors.add("email", "is required and must be a string");
        }
        if pass.is_none() {
            errors.add("password", "is required and must be a string");
        }
        errors.into_result()?;
        let (Some(email), Some(pass)) = (email, pass) else {
            return Err(unauthorized);
        };
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
                Some(_) => serde_json::json!({ "email": email, "reason": reason }),
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
        let remaining_recovery_codes = match self.check_second_factor(&user, body).await {
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

    /// Opens a session; `recovery_codes` replaces the stored ones when a recovery code was
    /// just used.
    async fn start_session(
        &self,
        user: &Record,
        meta: &RequestMeta,
        recovery_codes: Option<Vec<String>>,
    ) -> Result<Login> {
        let user_id = user
            .id()
            .ok_or_else(|| ServiceError::Internal("user without id".into()))?;
        let now = now();
        let expires_at = now + self.config.session_lifetime;
        let token = token::generate();
        let mut session = Record::new();
        session.set("id", Value::Id(new_id()));
        session.set("created_at", Value::Time(now));
        session.set("updated_at", Value::Time(now));
        session.set("user_id", Value::Id(user_id));
        session.set("token_hash", Value::Bytes(token::digest(&token)));
        session.set("kind", Value::Text("session".into()));
        session.set("expires_at", Value::Time(expires_at));
        session.set("last_used_at", Value::Time(now));
        fill_defaults(&model::SESSIONS, &mut session, now);
        let mut login_at = Record::new();
        login_at.set("last_login_at", Value::Time(now));
        if let Some(codes) = recovery_codes {
            login_at.set(
                "mfa_recovery_codes",
                Value::Json(Json::Array(codes.into_iter().map(Json::String).collect())),
            );
        }
        let ended = self.sessions_to_end(user_id, now).await?;
        let actor = Actor {
            user_id: Some(user_id),
            device_id: None,
        };
        let mut event = AuditEvent::new("auth.login", "success").on("users", Some(user_id));
        event.actor = Some(user_id);
        event.source_ip = meta.source_ip.clone();
        let mut batch = WriteBatch::new(actor)
            .push(WriteOp::Insert {
                entity: &model::SESSIONS,
                record: session,
            })
            .push(WriteOp::Update {
                entity: &model::USERS,
                id: user_id,
                filter: ScopeFilter::AnyOf(vec![("id", vec![user_id])]),
                set: login_at,
            });
        // Beyond the session limit, the oldest sessions end with this log-in.
        let evicted = ended.len() as u64;
        for id in ended {
            let mut set = Record::new();
            set.set("revoked_at", Value::Time(now));
            batch.ops.push(WriteOp::Update {
                entity: &model::SESSIONS,
                id,
                filter: ScopeFilter::AnyOf(vec![("user_id", vec![user_id])]),
                set,
            });
        }
        batch.ops.push(self.audit_op(event));
        let rows = self
            .store
            .apply(batch)
            .await
            .map_err(|e| from_store("user", false, e))?;
        self.metrics
            .session_created(crate::metrics::SessionKind::Login);
        self.metrics
            .sessions_ended(crate::metrics::SessionEnd::Limit, evicted);
        let user = rows.get(1).unwrap_or(user);
        Ok(Login {
            token,
            expires_at,
            user: to_json(&model::USERS, user, View::Detail),
        })
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

    /// The user's oldest live log-in sessions beyond the limit, once a new one is added.
    async fn sessions_to_end(&self, user_id: Uuid, now: OffsetDateTime) -> Result<Vec<Uuid>> {
        let mut q = ceneca_store::ListQuery::new(
            ScopeFilter::AnyOf(vec![("user_id", vec![user_id])]),
            "created_at",
            false,
            200,
        );
        q.equals.push(("kind", Value::Text("session".into())));
        q.equals.push(("revoked_at", Value::Null));
        let live: Vec<Uuid> = self
            .store
            .list(&model::SESSIONS, q)
            .await?
            .iter()
            .filter(|s| {
                s.get("expires_at")
                    .and_then(Value::as_time)
                    .is_some_and(|t| t > now)
            })
            .filter_map(Record::id)
            .collect();
        let keep = self.config.max_sessions_per_user.max(1) - 1;
        Ok(live[..live.len().saturating_sub(keep)].to_vec())
    }

    /// The caller a bearer token stands for, or 401.
    pub async fn authenticate(&self, bearer: &str, meta: &RequestMeta) -> Result<Caller> {
        let invalid = ServiceError::Unauthorized("invalid or expired token");
        if bearer.is_empty() || bearer.len() > 256 {
            return Err(invalid);
        }
        let (session, user, mut scope) = self
            .store
            .load_session(token::digest(bearer))
            .await?
            .ok_or(ServiceError::Unauthorized("invalid or expired token"))?;
        let now = now();
        let live = session.get("revoked_at").is_some_and(Value::is_null)
            && session
                .get("expires_at")
                .and_then(Value::as_time)
                .is_some_and(|t| t > now);
        let (Some(session_id), Some(user_id), true) =
            (session.id(), session.id_of("user_id"), live)
        else {
            return Err(invalid);
        };
        if user.get("deleted_at").is_some_and(|d| !d.is_null()) {
            return Err(invalid);
        }
        let kind = session.get("kind").and_then(Value::as_str);
        let idle_timeout = match kind {
            Some("session") => Some(self.config.session_idle_timeout),
            Some("device") => Some(self.config.device_idle_timeout),
            _ => None,
        };
        let idle = idle_timeout.is_some_and(|limit| {
            session
                .get("last_used_at")
                .and_then(Value::as_time)
                .is_some_and(|t| now - t > limit)
        });
        if idle {
            return Err(ServiceError::Unauthorized(
                "the session ended after a period of inactivity; log in again",
            ));
        }
        if user.get("status").and_then(Value::as_str) != Some("active") {
            return Err(ServiceError::Unauthorized("this account is suspended"));
        }
        // Administrator powers wait until the administrator has enabled MFA (if required).
        let system_admin = user.get("role").and_then(Value::as_str) == Some("admin")
            && (!self.config.mfa_required_for_admins
                || user.get("mfa_enabled").and_then(Value::as_bool) == Some(true));
        let credential = match kind {
            Some("session") => Credential::Session,
            Some("device") => Credential::Device {
                device_id: session
                    .id_of("device_id")
                    .ok_or(ServiceError::Unauthorized("invalid or expired token"))?,
            },
            Some("api") => {
                let ws = session
                    .id_of("workspace_id")
                    .ok_or(ServiceError::Unauthorized("invalid or expired token"))?;
                crate::api_tokens::restrict_to_workspace(&mut scope, ws);
                Credential::ApiToken { workspace_id: ws }
            }
            _ => return Err(invalid),
        };
        // Administrator powers belong to the whole account, never to a token of one part.
        let system_admin = system_admin && credential.is_whole_account();
        scope.system_admin = system_admin;
        if session
            .get("last_used_at")
            .and_then(Value::as_time)
            .is_none_or(|t| {
                let quarter_idle = time::Duration::try_from(self.config.session_idle_timeout / 4)
                    .unwrap_or(TOUCH_INTERVAL);
                now - t > TOUCH_INTERVAL.min(quarter_idle)
            })
        {
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.touch_session(session_id, now).await {
                    tracing::warn!(error = %e, "could not record session use");
                }
            });
        }
        Ok(Caller {
            user_id,
            email: user
                .get("email")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            system_admin,
            session_id,
            device_id: session.id_of("device_id"),
            scope,
            source_ip: meta.source_ip.clone(),
            credential,
        })
    }

    /// Authenticates a service by the client certificate it presented on a mutual-TLS
    /// connection. The TLS layer has already verified the certificate against the client
    /// CA; here its common name must be mapped (`tls_client_accounts`) to an active
    /// account, whose roles the service then acts with. Such a caller has no session:
    /// revoking it means removing the mapping or suspending the account.
    pub async fn authenticate_certificate(
        &self,
        common_name: &str,
        meta: &RequestMeta,
    ) -> Result<Caller> {
        let unmapped = ServiceError::Unauthorized(
            "the client certificate is not mapped to an account; send a bearer token",
        );
        let email = self
            .config
            .client_certificate_accounts
            .get(common_name)
            .ok_or(unmapped)?;
        let user = self
            .store
            .lookup_unscoped(&model::USERS, "email", Value::Text(email.clone()))
            .await?
            .filter(|u| u.get("deleted_at").is_none_or(Value::is_null))
            .ok_or(ServiceError::Unauthorized(
                "the account of this client certificate does not exist",
            ))?;
        if user.get("status").and_then(Value::as_str) != Some("active") {
            return Err(ServiceError::Unauthorized("this account is suspended"));
        }
        let user_id = user
            .id()
            .ok_or_else(|| ServiceError::Internal("user without id".into()))?;
        let system_admin = user.get("role").and_then(Value::as_str) == Some("admin")
            && (!self.config.mfa_required_for_admins
                || user.get("mfa_enabled").and_then(Value::as_bool) == Some(true));
        let scope = self.store.load_scope(user_id, system_admin).await?;
        Ok(Caller {
            user_id,
            email: email.clone(),
            system_admin,
            session_id: Uuid::nil(),
            device_id: None,
            scope,
            source_ip: meta.source_ip.clone(),
            credential: Credential::Certificate,
        })
    }

    /// Ends the caller's session; its token stops working at once.
    pub async fn logout(&self, caller: &Caller) -> Result<()> {
        let mut set = Record::new();
        set.set("revoked_at", Value::Time(now()));
        self.store
            .apply(
                WriteBatch::new(caller.actor())
                    .push(WriteOp::Update {
                        entity: &model::SESSIONS,
                        id: caller.session_id,
                        filter: ScopeFilter::AnyOf(vec![("user_id", vec![caller.user_id])]),
                        set,
                    })
                    .push(
                        self.audit_op(
                            AuditEvent::new("auth.logout", "success")
                                .by(caller)
                                .on("sessions", Some(caller.session_id)),
                        ),
                    ),
            )
            .await
            .map_err(|e| from_store("session", false, e))?;
        self.metrics
            .sessions_ended(crate::metrics::SessionEnd::Logout, 1);
        Ok(())
    }

    /// The caller's own account.
    pub async fn me(&self, caller: &Caller) -> Result<Json> {
        let user = self
            .store
            .get(
                &model::USERS,
                caller.user_id,
                ScopeFilter::AnyOf(vec![("id", vec![caller.user_id])]),
                ceneca_store::Deleted::Exclude,
            )
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        Ok(to_json(&model::USERS, &user, View::Detail))
    }

    /// Changes the caller's password from `{current_password, new_password}`. Every session
    /// of the account ends, this one included: a stolen token dies with the old password.
    pub async fn change_password(&self, caller: &Caller, body: &Json) -> Result<()> {
        caller.require_whole_account("change the password")?;
        let object = body
            .as_object()
            .ok_or_else(|| ServiceError::invalid("body", "expected a JSON object"))?;
        let mut errors = ValidationError::new();
        let current = object.get("current_password").and_then(Json::as_str);
        if current.is_none() {
            errors.add("current_password", "is required and must be a string");
        }
        let new = check_password(&mut errors, "new_password", object.get("new_password"));
        errors.into_result()?;
        let (Some(current), Some(new)) = (current, new) else {
            return Err(ServiceError::Internal(
                "validated password change lacks a field".into(),
            ));
        };
        let _gate = self.secret_checks.enter(caller.user_id).await;
        self.secret_check_allowed(caller, "auth.password_change")
            .await?;
        let user = self
            .store
            .lookup_unscoped(&model::USERS, "id", Value::Id(caller.user_id))
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let hash = user
            .get("password_hash")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !verify_password(current.to_owned(), hash).await {
            let event = AuditEvent::new("auth.password_change", "failure")
                .by(caller)
                .on("users", Some(caller.user_id));
            self.audit_now(event).await?;
            return Err(ServiceError::invalid(
                "current_password",
                "is not the account's password",
            ));
        }
        let mut set = Record::new();
        set.set("password_hash", Value::Text(hash_password(new).await?));
        let mut revoke = Record::new();
        revoke.set("revoked_at", Value::Time(now()));
        let every_session: Vec<Uuid> = vec![caller.user_id];
        self.store
            .apply(
                WriteBatch::new(caller.actor())
                    .push(WriteOp::Update {
                        entity: &model::USERS,
                        id: caller.user_id,
                        filter: ScopeFilter::AnyOf(vec![("id", vec![caller.user_id])]),
                        set,
                    })
                    .push(WriteOp::UpdateAll {
                        entity: &model::SESSIONS,
                        filter: ScopeFilter::AnyOf(vec![("user_id", every_session)]),
                        set: revoke,
                    })
                    .push(
                        self.audit_op(
                            AuditEvent::new("auth.password_change", "success")
                                .by(caller)
                                .on("users", Some(caller.user_id)),
                        ),
                    ),
            )
            .await
            .map_err(|e| from_store("user", false, e))?;
        Ok(())
    }
}
