//! Organization and workspace members: who invited them is recorded; they may be named
//! by e-mail; only owners make, change or remove owners and an organization keeps one;
//! removing a member ends the permission rules of that workspace or organization naming
//! them.

use async_trait::async_trait;
use ceneca_domain::roles::OrgRole;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Record, Value, model};
use ceneca_store::{ListQuery, WriteOp};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use super::{Cx, EntityRules, Extras, me, text};
use crate::error::{Result, ServiceError};

pub(super) struct OrganizationMembers;
pub(super) struct WorkspaceMembers;

/// Members may be added by e-mail instead of user id: `{"email": "bob@example.com"}`
/// becomes `{"user_id": ...}` when an account with that address exists.
async fn resolve_member_email(
    cx: &Cx<'_>,
    object: &Map<String, Json>,
) -> Result<Option<Map<String, Json>>> {
    if !object.contains_key("email") {
        return Ok(None);
    }
    if object.contains_key("user_id") {
        return Err(ServiceError::invalid(
            "email",
            "give user_id or email, not both",
        ));
    }
    let field = model::USERS
        .field("email")
        .ok_or_else(|| ServiceError::Internal("users.email".into()))?;
    let email = ceneca_domain::validate::parse_value(field, &object["email"])
        .map_err(|r| ServiceError::invalid("email", r))?;
    let user = cx
        .svc
        .store
        .lookup_unscoped(&model::USERS, "email", email)
        .await?
        .filter(|u| u.get("deleted_at").is_none_or(Value::is_null))
        .ok_or_else(|| ServiceError::invalid("email", "no account uses this e-mail address"))?;
    let mut rewritten = object.clone();
    rewritten.remove("email");
    let id = user
        .id()
        .ok_or_else(|| ServiceError::Internal("user without id".into()))?;
    rewritten.insert("user_id".into(), Json::String(id.to_string()));
    Ok(Some(rewritten))
}

/// Removing a member ends the permission rules of that workspace (or organization) that
/// name them: a removed member must not keep access through a rule they were given, or
/// wrote for themselves while they were an administrator.
async fn end_rules_of_removed_member(
    cx: &Cx<'_>,
    owner_column: &'static str,
    member: &Record,
    extras: &mut Extras,
) -> Result<()> {
    let (Some(parent), Some(user)) = (member.id_of(owner_column), member.id_of("user_id")) else {
        return Ok(());
    };
    let mut q = ListQuery::new(
        ScopeFilter::AnyOf(vec![(owner_column, vec![parent])]),
        "created_at",
        false,
        1000,
    );
    q.equals.push(("subject_user_id", Value::Id(user)));
    for rule in cx.svc.store.list(&model::PERMISSION_SETS, q).await? {
        if let Some(rule_id) = rule.id() {
            extras.ops.push(WriteOp::Delete {
                entity: &model::PERMISSION_SETS,
                id: rule_id,
                filter: ScopeFilter::AnyOf(vec![(owner_column, vec![parent])]),
            });
        }
    }
    Ok(())
}

/// A change to who owns the organization of `member` (its new role, or removed), for the
/// store to decide inside the write's transaction on the memberships as committed: only
/// an owner may give or take the owner role, and another owner must stay. The checks
/// made before (on rows read earlier) answer the common case; these hold under races.
fn ownership_change(cx: &Cx<'_>, member: &Record, grants_owner: bool) -> Result<WriteOp> {
    let organization = member
        .id_of("organization_id")
        .ok_or_else(|| ServiceError::Internal("member without organization".into()))?;
    Ok(WriteOp::OwnershipChange {
        organization,
        member: member.id(),
        actor: Some(cx.caller.user_id),
        grants_owner,
        grantee: member.id_of("user_id"),
    })
}

/// Removing or demoting the owner `member`: only an owner may (checked here on the row
/// as read, and again by the store as committed).
fn require_owner_caller(cx: &Cx<'_>, member: &Record) -> Result<()> {
    let org = member.id_of("organization_id");
    if org.and_then(|o| cx.caller.scope.org_role(o)) != Some(OrgRole::Owner) {
        return Err(ServiceError::Forbidden(
            "only owners may remove an owner".into(),
        ));
    }
    Ok(())
}

#[async_trait]
impl EntityRules for OrganizationMembers {
    fn table(&self) -> Option<&'static str> {
        Some("organization_members")
    }

    async fn resolve_input(
        &self,
        cx: &Cx<'_>,
        object: &Map<String, Json>,
    ) -> Result<Option<Map<String, Json>>> {
        resolve_member_email(cx, object).await
    }

    fn check_create(&self, cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        record.set("invited_by", me(cx.caller));
        let org = record.id_of("organization_id");
        if text(record, "role") == Some("owner")
            && org.and_then(|o| cx.caller.scope.org_role(o)) != Some(OrgRole::Owner)
        {
            return Err(ServiceError::Forbidden("only owners may add owners".into()));
        }
        Ok(())
    }

    /// A new owner is an owner's decision, as things stand when it is written.
    fn create_effects(&self, cx: &Cx<'_>, record: &mut Record, extras: &mut Extras) -> Result<()> {
        if text(record, "role") == Some("owner")
            && let Some(organization) = record.id_of("organization_id")
        {
            extras.ops.push(WriteOp::OwnershipChange {
                organization,
                member: None,
                actor: Some(cx.caller.user_id),
                grants_owner: true,
                grantee: record.id_of("user_id"),
            });
        }
        Ok(())
    }

    fn needs_current_row(&self) -> bool {
        true
    }

    fn check_update(
        &self,
        cx: &Cx<'_>,
        _id: Uuid,
        current: Option<&Record>,
        set: &mut Record,
    ) -> Result<()> {
        let current =
            current.ok_or_else(|| ServiceError::Internal("member row not loaded".into()))?;
        let org = current.id_of("organization_id");
        let caller_is_owner = org.and_then(|o| cx.caller.scope.org_role(o)) == Some(OrgRole::Owner);
        let touches_owner =
            text(current, "role") == Some("owner") || text(set, "role") == Some("owner");
        if touches_owner && !caller_is_owner {
            return Err(ServiceError::Forbidden(
                "only owners may grant or change the owner role".into(),
            ));
        }
        Ok(())
    }

    /// Every role change goes through the store's ownership check: a membership read as
    /// an administrator's may be an owner's by the time it is written.
    async fn update_effects(
        &self,
        cx: &Cx<'_>,
        current: Option<&Record>,
        set: &Record,
        extras: &mut Extras,
    ) -> Result<()> {
        let (Some(member), Some(role)) = (current, text(set, "role")) else {
            return Ok(());
        };
        extras
            .ops
            .push(ownership_change(cx, member, role == "owner")?);
        Ok(())
    }

    fn loads_row_on_delete(&self) -> bool {
        true
    }

    async fn delete_effects(
        &self,
        cx: &Cx<'_>,
        _id: Uuid,
        row: Option<&Record>,
        extras: &mut Extras,
    ) -> Result<()> {
        let Some(member) = row else {
            return Ok(());
        };
        if text(member, "role") == Some("owner") {
            require_owner_caller(cx, member)?;
        }
        extras.ops.push(ownership_change(cx, member, false)?);
        end_rules_of_removed_member(cx, "organization_id", member, extras).await
    }
}

#[async_trait]
impl EntityRules for WorkspaceMembers {
    fn table(&self) -> Option<&'static str> {
        Some("workspace_members")
    }

    async fn resolve_input(
        &self,
        cx: &Cx<'_>,
        object: &Map<String, Json>,
    ) -> Result<Option<Map<String, Json>>> {
        resolve_member_email(cx, object).await
    }

    fn check_create(&self, cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        record.set("invited_by", me(cx.caller));
        Ok(())
    }

    fn loads_row_on_delete(&self) -> bool {
        true
    }

    async fn delete_effects(
        &self,
        cx: &Cx<'_>,
        _id: Uuid,
        row: Option<&Record>,
        extras: &mut Extras,
    ) -> Result<()> {
        match row {
            Some(member) => end_rules_of_removed_member(cx, "workspace_id", member, extras).await,
            None => Ok(()),
        }
    }
}
