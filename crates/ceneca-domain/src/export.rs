//! What belongs to a user, for an export of their data (right of access and portability):
//! read off the model, so an entity added later is exported the day it is declared.
//!
//! A row is the user's when one of its references to `users` names them (their account,
//! memberships, devices, settings, what they authored, the audit entries of what they
//! did), or when it lives in one of their personal workspaces (a workspace they own
//! outside any organization: everything in it is theirs), or — for content that names
//! nobody — when the change log records them creating it.

use crate::model;
use crate::schema::{Entity, Kind, Owner, Tenancy};

/// The columns of `entity` whose value naming the user makes a row theirs: every
/// reference to `users`, and the id of the account itself.
pub fn user_columns(entity: &Entity) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = entity
        .columns()
        .filter(|f| f.kind == Kind::Ref(model::USERS.table))
        // Who invited a member names the user, but the membership is the member's.
        .filter(|f| f.name != "invited_by")
        .map(|f| f.name)
        .collect();
    if std::ptr::eq(entity, &model::USERS) {
        out.push("id");
    }
    out
}

/// Whether an export carries `entity`. The change log does not: each entry copies values
/// of rows the export carries as they are, and of rows that no longer exist.
pub fn exported(entity: &Entity) -> bool {
    !std::ptr::eq(entity, &model::SYNC_EVENTS)
}

/// Every entity an export carries: the API's, and the sync conflicts, which the API
/// reaches through `/sync/conflicts` only (a user's edits that lost a merge are theirs).
pub fn exported_entities() -> impl Iterator<Item = &'static Entity> {
    model::ALL
        .iter()
        .copied()
        .chain([&model::SYNC_CONFLICTS])
        .filter(|e| exported(e))
}

/// Whether `entity` is workspace content (a row in a workspace, `workspace_id`): in a
/// personal workspace of the user, it is theirs whoever wrote it. A row that only names
/// a workspace is not content (another member's API token for it is that member's).
pub fn in_workspace(entity: &Entity) -> bool {
    let content = match entity.tenancy {
        Tenancy::Workspace { .. } => true,
        Tenancy::Owners { owners, .. } => owners.iter().any(|o| matches!(o, Owner::Workspace(_))),
        _ => false,
    };
    content && entity.has_column("workspace_id")
}

/// Whether a row of `entity` is also the user's when they created it, as the change log
/// records (it keeps every row's creation): workspace content without a column that
/// names who wrote it (documents, files, projects, flows), in a workspace shared with
/// others.
pub fn created_per_log(entity: &Entity) -> bool {
    in_workspace(entity) && user_columns(entity).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entity_that_names_a_user_is_exported() {
        assert!(exported_entities().any(|e| std::ptr::eq(e, &model::SYNC_CONFLICTS)));
        for entity in exported_entities() {
            if !std::ptr::eq(entity, &model::SUBSCRIPTION_PLANS) {
                assert!(
                    !user_columns(entity).is_empty() || in_workspace(entity),
                    "{} has no way to be a user's",
                    entity.table
                );
            }
        }
        assert_eq!(user_columns(&model::USERS), ["id"]);
        assert!(user_columns(&model::MESSAGES).contains(&"author_id"));
        assert!(user_columns(&model::AUDIT_LOG).contains(&"actor_id"));
        assert!(!user_columns(&model::WORKSPACE_MEMBERS).contains(&"invited_by"));
        assert!(in_workspace(&model::MESSAGES) && in_workspace(&model::WORKSPACE_MEMBERS));
        assert!(!in_workspace(&model::SESSIONS) && !in_workspace(&model::WORKSPACES));
        assert!(created_per_log(&model::DOCUMENTS) && created_per_log(&model::ATTACHMENTS));
        assert!(!created_per_log(&model::MESSAGES) && !created_per_log(&model::THREADS));
    }
}
