//! Accounts: registering, creating one directly, reading one's own, changing a password.

use ceneca_crypto::password;
use ceneca_domain::clock::now;
use ceneca_domain::output::{View, to_json};
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::validate::{fill_defaults, parse_value};
use ceneca_domain::{Record, ValidationError, Value, model, new_id};
use ceneca_store::{Actor, WriteBatch, WriteOp};
use serde_json::Value as Json;
use uuid::Uuid;

use super::{Login, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
use ceneca_wire::auth::{ChangePasswordRequest, RegisterRequest};

use crate::audit::{AuditEvent, RequestMeta};
use crate::error::{Result, ServiceError, from_store};
use crate::{Caller, Services};

pub(super) fn check_password(
    errors: &mut ValidationError,
    field: &str,
    password: &str,
) -> Option<String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        errors.add(
            field,
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        );
    } else if chars > MAX_PASSWORD_CHARS {
        errors.add(
            field,
            format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        );
    } else {
        return Some(password.to_owned());
    }
    None
}

pub(crate) async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| ServiceError::Internal(format!("password hashing failed: {e}")))
}

pub(crate) async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || password::verify(&password, &hash))
        .await
        .unwrap_or(false)
}

impl Services {
    /// Creates an account and logs it in.
    pub async fn register(&self, request: &RegisterRequest, meta: &RequestMeta) -> Result<Login> {
        // Accounts are the upstream's: a local node knows the one enrolled on it.
        self.require_local_write(&model::USERS)?;
        if !self.config.allow_registration {
            return Err(ServiceError::Forbidden(
                "registration is disabled on this server".into(),
            ));
        }
        let mut errors = ValidationError::new();
        for key in request.unknown.keys() {
            errors.add(key.as_str(), "is not a field of registration");
        }
        let email = parse_value(
            model::USERS.field("email").expect("users.email"),
            &Json::String(request.email.clone()),
        )
        .map_err(|r| errors.add("email", r))
        .ok();
        let display_name = match &request.display_name {
            None => email
                .as_ref()
                .and_then(Value::as_str)
                .map(|e| Value::Text(e.split('@').next().unwrap_or(e).to_owned())),
            Some(n) => parse_value(
                model::USERS
                    .field("display_name")
                    .expect("users.display_name"),
                &Json::String(n.clone()),
            )
            .map_err(|r| errors.add("display_name", r))
            .ok(),
        };
        let password = check_password(&mut errors, "password", &request.password);
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
        let password = check_password(&mut errors, "password", password);
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

    pub(super) async fn insert_user(
        &self,
        mut email: Value,
        mut display_name: Value,
        password: &str,
        admin: bool,
        action: &str,
        meta: &RequestMeta,
    ) -> Result<Record> {
        // Every account comes through here (registration, `ceneca user create`): its
        // e-mail and name are client text like any other (`https://evil.example/x@corp.io`
        // is a valid address whose name would be the URL).
        let mut found = ValidationError::new();
        for (field, value) in [("email", &email), ("display_name", &display_name)] {
            if let Some(text) = value.as_str()
                && let Err(ServiceError::Validation(e)) = self.screen_text(field, text)
            {
                for (field, reason) in e.fields {
                    found.add(field, reason);
                }
            }
        }
        found.into_result()?;
        let id = new_id();
        let mut dlp_ops = Vec::new();
        if let (Value::Text(name), Value::Text(address)) = (&mut display_name, &mut email) {
            // The audit entry of a new account copies neither text, so the redacted forms
            // are not needed.
            self.apply_dlp_texts(
                crate::dlp::Actor::NewUser(id),
                ("users", Some(id)),
                None,
                &mut [
                    crate::dlp::ClientText {
                        field: "email",
                        email: true,
                        text: address,
                    },
                    crate::dlp::ClientText {
                        field: "display_name",
                        email: false,
                        text: name,
                    },
                ],
                &mut dlp_ops,
            )
            .await?;
        }
        let now = now();
        let mut user = Record::new();
        user.set("id", Value::Id(id));
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
            replay: None,
        };
        let mut event = AuditEvent::new(action, "success").on("users", user.id());
        event.actor = user.id();
        event.source_ip = meta.source_ip.clone();
        let mut batch = WriteBatch::new(actor).push(WriteOp::Insert {
            entity: &model::USERS,
            record: user,
        });
        batch.ops.extend(dlp_ops);
        let rows = self
            .store
            .apply(batch.push(self.audit_op(event)))
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

    /// Changes the caller's password. Every session of the account ends, this one
    /// included: a stolen token dies with the old password.
    pub async fn change_password(
        &self,
        caller: &Caller,
        request: &ChangePasswordRequest,
    ) -> Result<()> {
        // The account is the upstream's: a password changed here would differ there.
        self.require_local_write(&model::USERS)?;
        caller.require_whole_account("change the password")?;
        let mut errors = ValidationError::new();
        let new = check_password(&mut errors, "new_password", &request.new_password);
        errors.into_result()?;
        let (current, Some(new)) = (request.current_password.as_str(), new) else {
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
