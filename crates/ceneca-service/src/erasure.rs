//! Erasure of an account (right to be forgotten): `DELETE /users/{id}?erase=true`,
//! `ceneca user erase EMAIL`, and the maintenance run, which finishes an erase that was
//! interrupted.
//!
//! The erase begins by closing the account (`erasing_since`, `deleted_at`, every session
//! ended) with an audit entry of who asked, then goes in rounds, each one transaction
//! (`ceneca_store::erasure`): what was the account's alone is purged with everything below
//! it (files, vectors, full-text entries, history), and so is what it wrote in shared
//! workspaces whose organization deletes it (`organizations.erasure`, `delete` unless
//! `anonymise`); then one last transaction removes the account, what goes with it and the
//! personal fields of its audit entries, and appends `user.erase`. Afterwards the engine is
//! scrubbed (`Store::scrub_deleted`: FTS5 segments merged and the WAL cut on SQLite,
//! `VACUUM` on PostgreSQL). Every step reads what is left from the data, so an erase
//! started again — after a crash, by the command line or the maintenance run — takes up
//! where it stopped, and one that finished answers 404.

use ceneca_domain::clock::now;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Deleted, Entity, Record, Value, model};
use ceneca_store::{PurgeRule, StoreError, WriteBatch, WriteOp};
use ceneca_wire::erasure::{EraseRequest, ErasureReport};
use ceneca_wire::maintenance::MaintenanceReport;
use serde_json::json;
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::auth::accounts::verify_password;
use crate::error::{Result, ServiceError};
use crate::mfa::SecondFactor;
use crate::{Caller, Services};

/// Threads or messages purged per round; an organization or a workspace goes alone.
const ROUND: u32 = 100;

/// The action of the entry that begins an erase (the one that ends it is
/// `ceneca_domain::audit::ERASE_ACTION`, which accounts for the erased entries).
const BEGIN_ACTION: &str = "user.erase_begin";

/// An erase that was asked for and proven, not begun yet.
#[derive(Debug)]
pub struct ErasePermit {
    actor: Option<Uuid>,
    source_ip: Option<String>,
    user: Uuid,
}

impl Services {
    /// Whether `caller` may erase the account `user`, proven again in `request`: the
    /// account itself with its password (and its second factor when MFA is on), or a
    /// system administrator with MFA on and a current code. Logged in as the account (API
    /// and device tokens are refused). Others get 404; a wrong secret is audited and
    /// counted (5 per 15 minutes, then 429).
    pub async fn authorize_erase(
        &self,
        caller: &Caller,
        user: Uuid,
        request: &EraseRequest,
    ) -> Result<ErasePermit> {
        let own = caller.user_id == user;
        if !own && !caller.system_admin {
            return Err(ServiceError::NotFound("user"));
        }
        caller.require_whole_account("erase an account")?;
        // On a local node the account is the upstream's: erased there, forgotten here.
        self.require_local_write(&model::USERS)?;
        self.store
            .get(&model::USERS, user, ScopeFilter::All, Deleted::Include)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let _gate = self.secret_checks.enter(caller.user_id).await;
        self.secret_check_allowed(caller, ceneca_domain::audit::ERASE_ACTION)
            .await?;
        let me = self.user_row(caller.user_id).await?;
        let refused = |reason: &str| {
            AuditEvent::new(ceneca_domain::audit::ERASE_ACTION, "failure")
                .by(caller)
                .on("users", Some(user))
                .details(json!({ "reason": reason }))
        };
        if own {
            let Some(password) = request.password.as_deref() else {
                return Err(ServiceError::invalid(
                    "password",
                    "is required to erase your own account",
                ));
            };
            let hash = me
                .get("password_hash")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if !verify_password(password.to_owned(), hash).await {
                self.audit_now(refused("wrong password")).await?;
                return Err(ServiceError::invalid(
                    "password",
                    "is not the account's password",
                ));
            }
        }
        // An administrator proves it with a current code: a recovery code is for getting
        // back into one's own account, not for erasing someone else's.
        let recovery_code = if own {
            request.recovery_code.as_deref()
        } else {
            None
        };
        let second = self
            .check_second_factor(&me, request.mfa_code.as_deref(), recovery_code)
            .await;
        match second {
            Ok(SecondFactor::NotEnabled) if !own => Err(ServiceError::Forbidden(
                "an administrator erases another account only with MFA on: enable it first".into(),
            )),
            Ok(_) => Ok(ErasePermit {
                actor: Some(caller.user_id),
                source_ip: caller.source_ip.clone(),
                user,
            }),
            Err(ServiceError::MfaRequired) => Err(ServiceError::MfaRequired),
            Err(e) => {
                self.audit_now(refused("wrong second factor")).await?;
                Err(e)
            }
        }
    }

    /// Erases the account `permit` names (see the module).
    pub async fn erase_user(&self, permit: ErasePermit) -> Result<ErasureReport> {
        self.erase_account(permit.user, permit.actor, permit.source_ip)
            .await
    }

    /// Erases the account with `email`, by the command line (no caller: whoever runs it
    /// holds the data folder). `None` when no account has it (already erased): the engine
    /// is scrubbed again all the same, in case an erase stopped just before.
    pub async fn erase_user_by_email(&self, email: &str) -> Result<Option<ErasureReport>> {
        let email = email.trim().to_lowercase();
        let user = self
            .store
            .lookup_unscoped(&model::USERS, "email", Value::Text(email))
            .await?
            .and_then(|row| row.id());
        match user {
            Some(user) => self.erase_account(user, None, None).await.map(Some),
            None => {
                self.store.scrub_deleted().await?;
                Ok(None)
            }
        }
    }

    /// Finishes the erases that were begun and interrupted (a maintenance round). An
    /// erase blocked meanwhile (a place it holds gained a member) stays begun and is
    /// reported in the log; the others' reports are returned.
    pub async fn resume_erasures(&self) -> Result<Vec<ErasureReport>> {
        let pending = self.store.pending_erasures().await?;
        let mut out = Vec::new();
        for user in pending {
            match self.erase_account(user, None, None).await {
                Ok(report) => out.push(report),
                Err(ServiceError::NotFound(_)) => {}
                Err(e @ ServiceError::Conflict { .. }) => {
                    tracing::warn!(%user, error = %e, "an erase cannot finish yet");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn erase_account(
        &self,
        user: Uuid,
        actor: Option<Uuid>,
        source_ip: Option<String>,
    ) -> Result<ErasureReport> {
        let row = self
            .store
            .get(&model::USERS, user, ScopeFilter::All, Deleted::Include)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let begun = |name: &str| row.get(name).is_some_and(|v| !v.is_null());
        let mut report = ErasureReport {
            user_id: user,
            resumed: begun("erasing_since"),
            ..Default::default()
        };
        let blocked = |blockers: Vec<String>| {
            ServiceError::conflict(format!(
                "the account cannot be erased yet: {}",
                blockers.join("; ")
            ))
        };
        let work = self.store.erasure_work(user, ROUND).await?;
        if !work.blockers.is_empty() {
            return Err(blocked(work.blockers));
        }
        if !report.resumed {
            self.begin_erase(user, begun("deleted_at"), actor, source_ip.clone())
                .await?;
            // Its exports are read by nobody from now on (the last step deletes any
            // started meanwhile).
            report.export_jobs_deleted = self.drop_export_jobs_of(user) as u64;
        }
        let mut rounds = MaintenanceReport::default();
        loop {
            let work = self.store.erasure_work(user, ROUND).await?;
            if !work.blockers.is_empty() {
                return Err(blocked(work.blockers));
            }
            // What was the account's alone goes whole; what it wrote in shared places is
            // checked again inside the purge (another account may write there meanwhile).
            let authored = PurgeRule::AuthoredBy(user);
            let (entity, ids, rule): (&'static Entity, Vec<Uuid>, PurgeRule) =
                if !work.organizations.is_empty() {
                    let one = work.organizations[..1].to_vec();
                    (&model::ORGANIZATIONS, one, PurgeRule::Upstream)
                } else if !work.workspaces.is_empty() {
                    let one = work.workspaces[..1].to_vec();
                    (&model::WORKSPACES, one, PurgeRule::Upstream)
                } else if !work.threads.is_empty() {
                    (&model::THREADS, work.threads, authored)
                } else if !work.messages.is_empty() {
                    (&model::MESSAGES, work.messages, authored)
                } else if !work.documents.is_empty() {
                    (&model::DOCUMENTS, work.documents, authored)
                } else {
                    break;
                };
            let mut event = AuditEvent::new("user.erase_round", "success").on("users", Some(user));
            event.actor = actor;
            // The files of what went are deleted now, not after the sweep's grace: an
            // erase leaves nothing behind for later.
            self.purge_rows_as(entity, ids, rule, event, None, &mut rounds)
                .await?;
        }
        let count = |table: &str| rounds.purged.get(table).copied().unwrap_or(0);
        report.organizations_purged = count("organizations");
        report.workspaces_purged = count("workspaces");
        report.threads_purged = count("threads");
        report.messages_purged = count("messages");
        report.documents_purged = count("documents");
        report.messages_below = rounds.purged_messages_below;
        report.attachments = rounds.purged_attachments;
        report.attachment_bytes = rounds.purged_attachment_bytes;
        report.embeddings = rounds.purged_embeddings;
        report.files_deleted = rounds.blob_files_deleted;
        report.changes_dropped = rounds.purged_changes;

        let mut event = AuditEvent::new(ceneca_domain::audit::ERASE_ACTION, "success")
            .on("users", Some(user))
            .details(json!({
                "purged": rounds.purged,
                "messages_below": rounds.purged_messages_below,
                "attachments": rounds.purged_attachments,
                "embeddings": rounds.purged_embeddings,
                "resumed": report.resumed,
            }));
        event.actor = actor;
        // The address an account erased itself from is its own personal data: the entry
        // that accounts for the erase keeps an administrator's only.
        if actor != Some(user) {
            event.source_ip = source_ip;
        }
        let (audit, chain) = self.audit_parts(event);
        let batch = WriteBatch::new(ceneca_store::Actor::default()).push(WriteOp::EraseAccount {
            user,
            audit,
            chain,
        });
        let rows = match self.store.apply(batch).await {
            Ok(rows) => rows,
            // Another erase of the account (a second request, the command line, a
            // maintenance run) ended it first: what was asked is done.
            Err(StoreError::NotFound) => {
                tracing::info!(%user, "the erase was finished by another run");
                return Ok(report);
            }
            Err(StoreError::MustKeep(why)) => return Err(ServiceError::conflict(why)),
            Err(other) => return Err(other.into()),
        };
        let details = match rows.first().and_then(|r| r.get("details")) {
            Some(Value::Json(details)) => details.clone(),
            _ => serde_json::Value::Null,
        };
        let number = |name: &str| details[name].as_u64().unwrap_or(0);
        report.changes_dropped += number("changes_dropped");
        report.audit_entries_erased = number("audit_entries_erased");
        report.audit_entries_kept = number("audit_entries_kept");
        report.handed_over = details["handed_over"].as_array().map_or(0, Vec::len) as u64;
        for (name, into) in [
            ("removed", &mut report.removed),
            ("unlinked", &mut report.unlinked),
        ] {
            if let Some(counts) = details[name].as_object() {
                for (table, n) in counts {
                    into.insert(table.clone(), n.as_u64().unwrap_or(0));
                }
            }
        }
        // Exports of the account (or by it) kept on this server go with it: an archive
        // of its data must not outlive it.
        report.export_jobs_deleted += self.drop_export_jobs_of(user) as u64;
        // The account is gone; what the engine keeps of deleted rows goes too. A failure
        // here leaves that to the next purge or erase, and is no failure of the erase.
        if let Err(e) = self.store.scrub_deleted().await {
            tracing::warn!(error = %e, "scrubbing after an erase failed");
        }
        Ok(report)
    }

    /// Closes the account for the erase: `erasing_since` (and `deleted_at`, unless it is
    /// in the bin already), every session ended, and an audit entry of who asked.
    async fn begin_erase(
        &self,
        user: Uuid,
        closed_already: bool,
        actor: Option<Uuid>,
        source_ip: Option<String>,
    ) -> Result<()> {
        let at = now();
        let mut set = Record::new();
        set.set("erasing_since", Value::Time(at));
        if !closed_already {
            set.set("deleted_at", Value::Time(at));
        }
        let only = |column: &'static str| ScopeFilter::AnyOf(vec![(column, vec![user])]);
        let mut revoke = Record::new();
        revoke.set("revoked_at", Value::Time(at));
        let mut event = AuditEvent::new(BEGIN_ACTION, "success").on("users", Some(user));
        event.actor = actor;
        event.source_ip = source_ip;
        let batch = WriteBatch::new(ceneca_store::Actor::default())
            .push(WriteOp::UpdateAll {
                entity: &model::USERS,
                filter: only("id"),
                set,
            })
            .push(WriteOp::UpdateAll {
                entity: &model::SESSIONS,
                filter: only("user_id"),
                set: revoke,
            })
            .push(self.audit_op(event));
        self.store.apply(batch).await?;
        Ok(())
    }
}
