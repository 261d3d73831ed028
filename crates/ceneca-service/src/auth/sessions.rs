//! Sessions: opening them (with the per-user limit), turning a bearer token or a client
//! certificate into a [`Caller`], and logging out.

use ceneca_crypto::token;
use ceneca_domain::clock::now;
use ceneca_domain::credential::Credential;
use ceneca_domain::output::{View, to_json};
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::validate::fill_defaults;
use ceneca_domain::{Record, Value, model, new_id};
use ceneca_store::{Actor, LoadedSession, WriteBatch, WriteOp};
use serde_json::Value as Json;
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Login;
use super::cache::{CacheKey, Grant};
use crate::audit::{AuditEvent, RequestMeta};
use crate::error::{Result, ServiceError, from_store};
use crate::{Caller, Services};

/// `last_used_at` is written at most this often per session.
const TOUCH_INTERVAL: time::Duration = time::Duration::seconds(60);

impl Services {
    /// Opens a session; `recovery_codes` replaces the stored ones when a recovery code was
    /// just used.
    pub(super) async fn start_session(
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
            replay: None,
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
        if bearer.is_empty() || bearer.len() > 256 {
            return Err(ServiceError::Unauthorized("invalid or expired token"));
        }
        self.authenticate_digest(token::digest(bearer), meta).await
    }

    /// Checks again that a caller authenticated a while ago still may act, with their
    /// scope as it is now: what a long-lived request (the change stream) does from time
    /// to time, so a logout, a revoked token, a suspension or a removed membership ends
    /// what it sees.
    pub async fn recheck(&self, caller: &Caller) -> Result<Caller> {
        let meta = RequestMeta {
            source_ip: caller.source_ip.clone(),
        };
        if caller.credential == Credential::Certificate {
            let user = self
                .store
                .lookup_unscoped(&model::USERS, "email", Value::Text(caller.email.clone()))
                .await?
                .filter(|u| u.get("deleted_at").is_none_or(Value::is_null))
                .filter(|u| u.get("status").and_then(Value::as_str) == Some("active"))
                .ok_or(ServiceError::Unauthorized(
                    "this account is no longer active",
                ))?;
            if user.id() != Some(caller.user_id) {
                return Err(ServiceError::Unauthorized(
                    "this account is no longer active",
                ));
            }
            let system_admin = user.get("role").and_then(Value::as_str) == Some("admin")
                && (!self.config.mfa_required_for_admins
                    || user.get("mfa_enabled").and_then(Value::as_bool) == Some(true));
            let scope = self.store.load_scope(caller.user_id, system_admin).await?;
            return Ok(Caller {
                scope,
                system_admin,
                ..caller.clone()
            });
        }
        let session = self
            .store
            .get(
                &model::SESSIONS,
                caller.session_id,
                ScopeFilter::All,
                ceneca_store::Deleted::Include,
            )
            .await?
            .ok_or(ServiceError::Unauthorized("invalid or expired token"))?;
        let Some(Value::Bytes(digest)) = session.get("token_hash") else {
            return Err(ServiceError::Unauthorized("invalid or expired token"));
        };
        self.authenticate_digest(digest.clone(), &meta).await
    }

    async fn authenticate_digest(&self, digest: Vec<u8>, meta: &RequestMeta) -> Result<Caller> {
        let key = CacheKey::Token(digest);
        let now = now();
        if let Some(caller) = self.kept_caller(&key, meta, now).await? {
            return Ok(caller);
        }
        // One reload per token at a time: the others in flight wait and take what it kept.
        let _turn = self.sessions.reload_turn(&key).await;
        if let Some(caller) = self.kept_caller(&key, meta, now).await? {
            return Ok(caller);
        }
        let CacheKey::Token(digest) = key else {
            unreachable!("built above from a token's digest")
        };
        self.read_caller(digest, meta, now).await
    }

    /// The caller kept for `key`, if it is still current: the counter has not moved since
    /// it was read, and the session is neither expired nor idle as far as this server
    /// knows.
    async fn kept_caller(
        &self,
        key: &CacheKey,
        meta: &RequestMeta,
        now: OffsetDateTime,
    ) -> Result<Option<Caller>> {
        let Some(kept) = self.sessions.get(key) else {
            return Ok(None);
        };
        if !kept.current_at(now) || self.store.auth_generation().await? != kept.generation {
            return Ok(None);
        }
        if self.touch_due(kept.last_used_at(), now) {
            kept.used_at(now);
            self.touch(kept.session_id(), now);
        }
        self.metrics.authenticated(true);
        Ok(Some(kept.caller(meta)))
    }

    /// Reads a token's session, user and scope, checks them, and keeps the caller.
    async fn read_caller(
        &self,
        digest: Vec<u8>,
        meta: &RequestMeta,
        now: OffsetDateTime,
    ) -> Result<Caller> {
        let invalid = ServiceError::Unauthorized("invalid or expired token");
        let LoadedSession {
            generation,
            session,
            user,
            mut scope,
        } = self
            .store
            .load_session(digest.clone())
            .await?
            .ok_or(ServiceError::Unauthorized("invalid or expired token"))?;
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
        let last_used_at = session.get("last_used_at").and_then(Value::as_time);
        let idle = idle_timeout.is_some_and(|limit| last_used_at.is_some_and(|t| now - t > limit));
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
        let mut used_at = last_used_at.unwrap_or(OffsetDateTime::UNIX_EPOCH);
        if last_used_at.is_none_or(|t| self.touch_due(t, now)) {
            self.touch(session_id, now);
            used_at = now;
        }
        let caller = Caller {
            user_id,
            email: user
                .get("email")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            system_admin,
            session_id,
            // On a local node the enrolled user's writes are this device's: the sync
            // loop pushes what the device's user made there, and only that.
            device_id: session.id_of("device_id").or(self
                .config
                .local_node
                .as_ref()
                .filter(|n| n.user_id == user_id)
                .map(|n| n.device_id)),
            scope,
            source_ip: meta.source_ip.clone(),
            credential,
            replaying: None,
        };
        let expires_at = session.get("expires_at").and_then(Value::as_time);
        self.sessions.keep(
            CacheKey::Token(digest),
            Arc::new(Grant::new(
                generation,
                caller.clone(),
                expires_at,
                idle_timeout.and_then(|t| time::Duration::try_from(t).ok()),
                used_at,
            )),
        );
        self.metrics.authenticated(false);
        Ok(caller)
    }

    /// Whether a use at `now` of a session last used at `last_used` is to be written:
    /// at most once a minute, and four times per idle timeout when that is shorter, so a
    /// session in use never looks idle.
    fn touch_due(&self, last_used: OffsetDateTime, now: OffsetDateTime) -> bool {
        let quarter_idle = time::Duration::try_from(self.config.session_idle_timeout / 4)
            .unwrap_or(TOUCH_INTERVAL);
        now - last_used > TOUCH_INTERVAL.min(quarter_idle)
    }

    /// Writes a use of the session, off the request's path.
    fn touch(&self, session_id: Uuid, now: OffsetDateTime) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_session(session_id, now).await {
                tracing::warn!(error = %e, "could not record session use");
            }
        });
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
        let key = CacheKey::Certificate(common_name.to_owned());
        // Read before the account, so what is kept is never older than its counter.
        let generation = self.store.auth_generation().await?;
        if let Some(kept) = self.sessions.get(&key)
            && kept.generation == generation
        {
            self.metrics.authenticated(true);
            return Ok(kept.caller(meta));
        }
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
        let caller = Caller {
            user_id,
            email: email.clone(),
            system_admin,
            session_id: Uuid::nil(),
            device_id: None,
            scope,
            source_ip: meta.source_ip.clone(),
            credential: Credential::Certificate,
            replaying: None,
        };
        self.sessions.keep(
            key,
            Arc::new(Grant::new(generation, caller.clone(), None, None, now())),
        );
        self.metrics.authenticated(false);
        Ok(caller)
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
}
