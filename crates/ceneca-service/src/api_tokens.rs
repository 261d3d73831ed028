//! Long-lived API tokens for scripts and integrations: named, limited to one workspace,
//! listable and revocable. A token acts with its owner's current role in that workspace
//! and nothing else (no organization or administrator powers).

use ceneca_crypto::token;
use ceneca_domain::clock::now;
use ceneca_domain::output::{View, to_json};
use ceneca_domain::roles::WorkspaceRole;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::validate::fill_defaults;
use ceneca_domain::{Record, ValidationError, Value, model, new_id};
use ceneca_store::{ListQuery, WriteBatch, WriteOp};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use ceneca_wire::auth::ApiTokenRequest;

use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError, from_store};
use crate::{Caller, Services};

/// The longest an API token may live.
pub const MAX_DAYS: i64 = 366;

fn mine(caller: &Caller) -> ScopeFilter {
    ScopeFilter::AnyOf(vec![("user_id", vec![caller.user_id])])
}

impl Services {
    /// Creates a token for one workspace; answers its row with the token, once.
    pub async fn create_api_token(
        &self,
        caller: &Caller,
        request: &ApiTokenRequest,
    ) -> Result<Json> {
        caller.require_whole_account("create API tokens")?;
        let mut errors = ValidationError::new();
        let name = Some(request.name.trim()).filter(|n| {
            !n.is_empty() && n.chars().count() <= 200 && !n.chars().any(char::is_control)
        });
        if name.is_none() {
            errors.add(
                "name",
                "is required: 1-200 characters, no control characters",
            );
        }
        if let Some(name) = name
            && let Err(ServiceError::Validation(found)) = self.screen_text("name", name)
        {
            for (field, reason) in found.fields {
                errors.add(field, reason);
            }
        }
        let days = match request.expires_in_days {
            None => 90,
            Some(d) if (1..=MAX_DAYS).contains(&d) => d,
            Some(_) => {
                errors.add(
                    "expires_in_days",
                    format!("must be an integer from 1 to {MAX_DAYS}"),
                );
                0
            }
        };
        errors.into_result()?;
        let (Some(name), workspace) = (name, request.workspace_id) else {
            return Err(ServiceError::Internal(
                "validated token lacks a field".into(),
            ));
        };
        if caller.scope.workspace_role(workspace).is_none() {
            return Err(ServiceError::NotFound("workspace"));
        }
        let id = new_id();
        let mut name = name.to_owned();
        let mut dlp_ops = Vec::new();
        let redacted = self
            .apply_dlp_texts(
                crate::dlp::Actor::Caller(caller),
                ("sessions", Some(id)),
                Some(workspace),
                &mut [crate::dlp::ClientText {
                    field: "name",
                    email: false,
                    text: &mut name,
                }],
                &mut dlp_ops,
            )
            .await?;
        // The audit trail never holds a matched value: under `flag` the name is stored as
        // sent, and the entry copies it redacted.
        let audit_name = redacted
            .into_iter()
            .next()
            .flatten()
            .unwrap_or_else(|| name.clone());
        let secret = token::generate();
        let now = now();
        let mut record = Record::new();
        record.set("id", Value::Id(id));
        record.set("created_at", Value::Time(now));
        record.set("updated_at", Value::Time(now));
        record.set("user_id", Value::Id(caller.user_id));
        record.set("token_hash", Value::Bytes(token::digest(&secret)));
        record.set("kind", Value::Text("api".into()));
        record.set("name", Value::Text(name.clone()));
        record.set("workspace_id", Value::Id(workspace));
        record.set("expires_at", Value::Time(now + time::Duration::days(days)));
        record.set("last_used_at", Value::Time(now));
        fill_defaults(&model::SESSIONS, &mut record, now);
        let event = AuditEvent::new("api_tokens.create", "success")
            .by(caller)
            .on("sessions", Some(id))
            .details(json!({ "workspace_id": workspace.to_string(), "name": audit_name }));
        let mut batch = WriteBatch::new(caller.actor()).push(WriteOp::Insert {
            entity: &model::SESSIONS,
            record,
        });
        batch.ops.extend(dlp_ops);
        let rows = self
            .store
            .apply(batch.push(self.audit_op(event)))
            .await
            .map_err(|e| from_store("api token", false, e))?;
        self.metrics
            .session_created(crate::metrics::SessionKind::Api);
        let mut json = to_json(&model::SESSIONS, &rows[0], View::Detail);
        if let Some(o) = json.as_object_mut() {
            o.insert("token".into(), Json::String(secret));
        }
        Ok(json)
    }

    /// The caller's API tokens (never their values).
    pub async fn list_api_tokens(&self, caller: &Caller) -> Result<Json> {
        caller.require_whole_account("list API tokens")?;
        let mut q = ListQuery::new(mine(caller), "created_at", true, 200);
        q.equals.push(("kind", Value::Text("api".into())));
        let rows = self.store.list(&model::SESSIONS, q).await?;
        Ok(
            json!({ "items": rows.iter().take(200).map(|r| to_json(&model::SESSIONS, r, View::Summary)).collect::<Vec<_>>() }),
        )
    }

    /// Revokes one of the caller's API tokens; it stops working at once.
    pub async fn revoke_api_token(&self, caller: &Caller, id: Uuid) -> Result<()> {
        caller.require_whole_account("revoke API tokens")?;
        let token = self
            .store
            .get(
                &model::SESSIONS,
                id,
                mine(caller),
                ceneca_store::Deleted::Exclude,
            )
            .await?
            .filter(|t| t.get("kind").and_then(Value::as_str) == Some("api"))
            .ok_or(ServiceError::NotFound("api token"))?;
        let mut set = Record::new();
        set.set("revoked_at", Value::Time(now()));
        let event = AuditEvent::new("api_tokens.revoke", "success")
            .by(caller)
            .on("sessions", token.id());
        self.store
            .apply(
                WriteBatch::new(caller.actor())
                    .push(WriteOp::Update {
                        entity: &model::SESSIONS,
                        id,
                        filter: mine(caller),
                        set,
                    })
                    .push(self.audit_op(event)),
            )
            .await
            .map_err(|e| from_store("api token", false, e))?;
        self.metrics
            .sessions_ended(crate::metrics::SessionEnd::Revoked, 1);
        Ok(())
    }
}

/// Narrows a scope to one workspace for an API token: the owner's role there, nothing else.
pub(crate) fn restrict_to_workspace(scope: &mut ceneca_domain::scope::Scope, workspace: Uuid) {
    let role: Option<WorkspaceRole> = scope.workspace_role(workspace);
    scope.workspaces = role.map(|r| vec![(workspace, r)]).unwrap_or_default();
    scope.organizations.clear();
    scope.deleted_organizations.clear();
    scope.deleted_workspaces.clear();
    scope.workspace_orgs.retain(|(w, _)| *w == workspace);
    // Only rules of this workspace (or of its organization) may refine the token's reach:
    // a rule of another workspace speaks for content the token must never see.
    let org = scope.workspace_orgs.first().map(|(_, o)| *o);
    scope
        .permissions
        .retain(|rule| match (rule.workspace_id, rule.organization_id) {
            (Some(ws), _) => ws == workspace,
            (None, Some(o)) => Some(o) == org,
            (None, None) => false,
        });
    scope.system_admin = false;
}

#[cfg(test)]
mod tests {
    use ceneca_domain::model;
    use ceneca_store::Deleted;
    use serde_json::json;

    use crate::audit::RequestMeta;
    use crate::error::ServiceError;
    use crate::testing::{id_of, refresh, services, sign_up};

    #[tokio::test]
    async fn an_api_token_reaches_its_workspace_only_until_revoked() {
        let t = services().await;
        let svc = &t.svc;
        let meta = RequestMeta::default();
        let (ann, session) = sign_up(svc, "ann@example.com").await;
        let mut workspaces = Vec::new();
        for name in ["One", "Two"] {
            workspaces.push(
                svc.create(&ann, &model::WORKSPACES, &json!({"name": name}), None)
                    .await
                    .unwrap(),
            );
        }
        let ann = refresh(svc, &session).await;
        let mut threads = Vec::new();
        for ws in &workspaces {
            threads.push(
                svc.create(
                    &ann,
                    &model::THREADS,
                    &json!({"workspace_id": ws["id"], "title": ws["name"]}),
                    None,
                )
                .await
                .unwrap(),
            );
        }
        let created = svc
            .create_api_token(
                &ann,
                &serde_json::from_value(json!({"name": "ci", "workspace_id": workspaces[0]["id"]}))
                    .unwrap(),
            )
            .await
            .unwrap();
        let secret = created["token"].as_str().expect("shown once");
        let listed = svc.list_api_tokens(&ann).await.unwrap();
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
        assert!(listed["items"][0].get("token").is_none());

        let robot = svc.authenticate(secret, &meta).await.unwrap();
        for (thread, reachable) in threads.iter().zip([true, false]) {
            let read = svc
                .get(&robot, &model::THREADS, id_of(thread), Deleted::Exclude)
                .await;
            assert_eq!(read.is_ok(), reachable, "{}", thread["title"]);
        }
        assert!(matches!(
            svc.create_api_token(
                &robot,
                &serde_json::from_value(json!({"name": "x", "workspace_id": workspaces[0]["id"]}))
                    .unwrap()
            )
            .await,
            Err(ServiceError::Forbidden(_))
        ));
        svc.revoke_api_token(&ann, id_of(&created)).await.unwrap();
        assert!(svc.authenticate(secret, &meta).await.is_err());
    }
}
