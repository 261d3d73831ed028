//! Authorization of rows against the caller's scope: the parent a row hangs under (step
//! 2), the caller's role over the owner of a new row (step 4), the references a client
//! supplies (step 5), and why a write matched nothing (403 or 404).

use ceneca_domain::schema::{Kind, Tenancy};
use ceneca_domain::scope::Access;
use ceneca_domain::{Entity, Record, ValidationError, Value, model};
use ceneca_store::Deleted;
use uuid::Uuid;

use super::ParentRef;
use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

/// The columns through which a row belongs to a tenant (authorized by role, not by the
/// reference check).
pub(super) fn owner_columns(entity: &Entity) -> Vec<&'static str> {
    match entity.tenancy {
        Tenancy::Workspace { .. } => vec!["workspace_id"],
        Tenancy::Organization => vec!["organization_id"],
        Tenancy::SelfWorkspace => vec!["organization_id"],
        Tenancy::User => vec!["user_id"],
        Tenancy::Owners { owners, .. } => owners.iter().map(|o| o.column()).collect(),
        _ => vec![],
    }
}

fn owner_noun(column: &str) -> &'static str {
    match column {
        "workspace_id" => "workspace",
        "organization_id" => "organization",
        _ => "user",
    }
}

impl Services {
    /// The row a nested route hangs under, if the caller may read it.
    pub(super) async fn visible_parent(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        parent: ParentRef,
    ) -> Result<Record> {
        let table = entity
            .fields
            .iter()
            .find(|f| f.name == parent.field)
            .and_then(|f| match f.kind {
                Kind::Ref(t) => Some(t),
                _ => None,
            })
            .ok_or_else(|| {
                ServiceError::Internal(format!(
                    "{} has no reference {}",
                    entity.table, parent.field
                ))
            })?;
        self.parent_row(caller, table, parent.id).await
    }

    pub(crate) async fn parent_row(
        &self,
        caller: &Caller,
        table: &'static str,
        id: Uuid,
    ) -> Result<Record> {
        let target = model::by_table(table)
            .ok_or_else(|| ServiceError::Internal(format!("unknown table {table}")))?;
        self.store
            .get(
                target,
                id,
                caller.filter(target, Access::Read),
                Deleted::Exclude,
            )
            .await?
            .ok_or(ServiceError::NotFound(target.name))
    }

    pub(super) fn authorize_create(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        record: &Record,
    ) -> Result<()> {
        match entity.tenancy {
            Tenancy::SelfOrganization => Ok(()),
            Tenancy::SelfWorkspace => match record.id_of("organization_id") {
                None => Ok(()),
                Some(org) => match caller.scope.org_role(org) {
                    Some(role) if role >= ceneca_domain::roles::OrgRole::Member => Ok(()),
                    Some(_) => Err(ServiceError::Forbidden(
                        "viewers cannot create workspaces in this organization".into(),
                    )),
                    None => Err(ServiceError::NotFound("organization")),
                },
            },
            Tenancy::Catalog if caller.system_admin => Ok(()),
            Tenancy::Catalog => Err(ServiceError::Forbidden(format!(
                "only system administrators may create {}s",
                entity.name
            ))),
            Tenancy::SelfUser | Tenancy::Admin | Tenancy::Internal => {
                Err(ServiceError::NotAllowed(format!(
                    "{}s cannot be created through the API",
                    entity.name
                )))
            }
            Tenancy::Workspace { .. }
            | Tenancy::Organization
            | Tenancy::User
            | Tenancy::Owners { .. } => {
                let column = owner_columns(entity)
                    .into_iter()
                    .find(|c| record.id_of(c).is_some())
                    .ok_or_else(|| {
                        ServiceError::Internal(format!("{} has no owner", entity.name))
                    })?;
                let id = record.id_of(column).expect("found above");
                if caller.filter(entity, Access::Write).admits(column, id) {
                    Ok(())
                } else if caller.filter(entity, Access::Read).admits(column, id) {
                    Err(ServiceError::Forbidden(format!(
                        "your role in this {} does not allow creating {}s",
                        owner_noun(column),
                        entity.name
                    )))
                } else {
                    Err(ServiceError::NotFound(owner_noun(column)))
                }
            }
        }
    }

    /// Every reference the client supplied must name a live row the caller can read, in the
    /// same workspace as the new row. Checked here rather than left to foreign keys, which
    /// would accept another tenant's id.
    pub(super) async fn check_references(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        input: &Record,
        record: &Record,
        skip: &[&str],
    ) -> Result<()> {
        let mut errors = ValidationError::new();
        for field in entity.fields {
            let Kind::Ref(table) = field.kind else {
                continue;
            };
            if skip.contains(&field.name) {
                continue;
            }
            let Some(id) = input.id_of(field.name) else {
                continue;
            };
            let target = model::by_table(table)
                .ok_or_else(|| ServiceError::Internal(format!("unknown table {table}")))?;
            let row = if target.tenancy == Tenancy::SelfUser {
                self.store
                    .lookup_unscoped(target, "id", Value::Id(id))
                    .await?
                    .filter(|u| u.get("deleted_at").is_none_or(Value::is_null))
            } else {
                self.store
                    .get(
                        target,
                        id,
                        caller.filter(target, Access::Read),
                        Deleted::Exclude,
                    )
                    .await?
            };
            match row {
                None => errors.add(
                    field.name,
                    format!("no {} with this id exists", target.name),
                ),
                Some(row) => {
                    let theirs = row.id_of("workspace_id");
                    let ours = record.id_of("workspace_id");
                    if theirs.is_some() && ours.is_some() && theirs != ours {
                        errors.add(
                            field.name,
                            format!("this {} belongs to another workspace", target.name),
                        );
                    }
                }
            }
        }
        errors.into_result().map_err(ServiceError::from)
    }

    /// A write matched nothing: 403 if the caller can see the row (their role is too low),
    /// 404 if they cannot.
    pub(crate) async fn explain_missing(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        id: Uuid,
    ) -> ServiceError {
        match self
            .store
            .get(
                entity,
                id,
                caller.filter(entity, Access::Read),
                Deleted::Exclude,
            )
            .await
        {
            Ok(Some(_)) => ServiceError::Forbidden(format!(
                "your role does not allow changing this {}",
                entity.name
            )),
            Ok(None) => ServiceError::NotFound(entity.name),
            Err(e) => e.into(),
        }
    }
}
