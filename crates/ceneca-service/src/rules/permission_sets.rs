//! Permission sets: a rule names a subject (a user or a role), workspace content only
//! (never the tables that govern access) and, for a single resource, one inside the
//! rule's own workspace or organization; its actions are listed once each.

use async_trait::async_trait;
use ceneca_domain::roles::OrgRole;
use ceneca_domain::schema::Tenancy;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Entity, Record, ValidationError, Value, model};
use ceneca_store::Deleted;
use serde_json::Value as Json;
use uuid::Uuid;

use super::{Cx, EntityRules, text};
use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

pub(super) struct PermissionSets;

#[async_trait]
impl EntityRules for PermissionSets {
    fn table(&self) -> Option<&'static str> {
        Some("permission_sets")
    }

    fn check_create(&self, _cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        check_permission_subject(record)
    }

    async fn check_create_in_store(&self, cx: &Cx<'_>, record: &Record) -> Result<()> {
        check_permission_resource(cx.svc, cx.caller, record).await
    }

    fn check_update(
        &self,
        _cx: &Cx<'_>,
        _id: Uuid,
        _current: Option<&Record>,
        set: &mut Record,
    ) -> Result<()> {
        let mut errors = ValidationError::new();
        check_actions(&mut errors, set);
        errors.into_result()?;
        Ok(())
    }
}

fn check_permission_subject(record: &Record) -> Result<()> {
    let mut errors = ValidationError::new();
    match text(record, "subject_type") {
        Some("user") => {
            if record.id_of("subject_user_id").is_none() {
                errors.add("subject_user_id", "is required when subject_type is user");
            }
            if text(record, "subject_role").is_some() {
                errors.add("subject_role", "must be empty when subject_type is user");
            }
        }
        Some("role") => {
            let role = text(record, "subject_role");
            let known = role.is_some_and(|r| {
                OrgRole::parse(r).is_some()
                    || ceneca_domain::roles::WorkspaceRole::parse(r).is_some()
            });
            if !known {
                errors.add(
                    "subject_role",
                    "must name a role: owner, admin, member, editor or viewer",
                );
            }
            if record.id_of("subject_user_id").is_some() {
                errors.add("subject_user_id", "must be empty when subject_type is role");
            }
        }
        _ => {}
    }
    let resource = text(record, "resource_type");
    if let Some(resource) = resource
        && resource != "*"
        && permission_target(resource).is_none()
    {
        errors.add(
            "resource_type",
            format!(
                "must be '*' or a kind of workspace content: {}",
                model::ALL
                    .iter()
                    .filter(|e| permission_target(e.path).is_some())
                    .map(|e| e.path)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    if record.id_of("resource_id").is_some() && resource == Some("*") {
        errors.add(
            "resource_id",
            "needs resource_type to name the kind of resource it is (such as documents)",
        );
    }
    check_actions(&mut errors, record);
    errors.into_result().map_err(ServiceError::from)
}

/// A rule's actions: at least one, none repeated (on create and on update).
fn check_actions(errors: &mut ValidationError, record: &Record) {
    if let Some(Value::Json(Json::Array(actions))) = record.get("actions") {
        if actions.is_empty() {
            errors.add("actions", "must list at least one action");
        } else if actions
            .iter()
            .enumerate()
            .any(|(i, a)| actions[..i].contains(a))
        {
            errors.add("actions", "must not repeat an action");
        }
    }
}

/// The workspace content a permission rule may name: permission sets refine access to
/// rows of one workspace, nothing else.
fn permission_target(resource_type: &str) -> Option<&'static Entity> {
    model::ALL.iter().copied().find(|e| {
        (e.path == resource_type || e.table == resource_type)
            && matches!(e.tenancy, Tenancy::Workspace { .. })
            && !ceneca_domain::credential::ACCESS_TABLES.contains(&e.table)
    })
}

/// A rule may name only a resource inside its own workspace (or, for an organization
/// rule, a workspace of its organization): whoever administers the rule has authority
/// there and nowhere else (DESIGN.md §3 rule 8). The answer is the same whether the id
/// does not exist or belongs to someone else, so it tells nothing about other tenants.
async fn check_permission_resource(svc: &Services, caller: &Caller, record: &Record) -> Result<()> {
    let (Some(id), Some(entity)) = (
        record.id_of("resource_id"),
        text(record, "resource_type").and_then(permission_target),
    ) else {
        return Ok(());
    };
    let workspaces = match (
        record.id_of("workspace_id"),
        record.id_of("organization_id"),
    ) {
        (Some(ws), _) => vec![ws],
        (None, Some(org)) => caller.scope.org_workspaces(org),
        (None, None) => Vec::new(),
    };
    let found = svc
        .store
        .get(
            entity,
            id,
            ScopeFilter::AnyOf(vec![("workspace_id", workspaces)]),
            Deleted::Include,
        )
        .await?;
    if found.is_none() {
        return Err(ServiceError::invalid(
            "resource_id",
            format!(
                "no {} with this id in the rule's {}",
                entity.name,
                if record.id_of("workspace_id").is_some() {
                    "workspace"
                } else {
                    "organization"
                }
            ),
        ));
    }
    Ok(())
}
