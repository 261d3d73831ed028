//! `GET /api/v1/storage/stats`: what a workspace, a user's own workspaces or an
//! organization stores, by category, with the quota it counts against. Read from
//! counters (one grouped read of a few rows), never by scanning the data.

use ceneca_domain::model;
use ceneca_domain::roles::OrgRole;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::storage::Category;
use ceneca_store::{Deleted, UsageOf};
use ceneca_wire::storage::{CategoryUsage, StatsParams, StatsScope, StorageStats};

use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

impl Services {
    /// Storage statistics: a user's own (themselves, or a system administrator), an
    /// organization's (its owners and administrators), a workspace's (its readers).
    pub async fn storage_stats(
        &self,
        caller: &Caller,
        params: &StatsParams,
    ) -> Result<StorageStats> {
        caller.require_reach(&model::WORKSPACES)?;
        let of = match params.scope {
            StatsScope::User => {
                let user = params.id.unwrap_or(caller.user_id);
                if user != caller.user_id && !caller.system_admin {
                    return Err(ServiceError::NotFound("user"));
                }
                UsageOf::User(user)
            }
            StatsScope::Organization => {
                let org = params.id.ok_or(ServiceError::NotFound("organization"))?;
                match caller.scope.org_role(org) {
                    _ if caller.system_admin => {}
                    Some(role) if role >= OrgRole::Admin => {}
                    Some(_) => {
                        return Err(ServiceError::Forbidden(
                            "an organization's storage is for its owners and administrators".into(),
                        ));
                    }
                    None => return Err(ServiceError::NotFound("organization")),
                }
                UsageOf::Organization(org)
            }
            StatsScope::Workspace => {
                let workspace = params.id.ok_or(ServiceError::NotFound("workspace"))?;
                if caller.scope.workspace_role(workspace).is_none() && !caller.system_admin {
                    return Err(ServiceError::NotFound("workspace"));
                }
                UsageOf::Workspace(workspace)
            }
        };
        let id = match of {
            UsageOf::User(id) | UsageOf::Organization(id) | UsageOf::Workspace(id) => id,
        };
        // A system administrator reaches any id: one that names nothing is 404, not zeros.
        if caller.system_admin {
            let (entity, name) = match of {
                UsageOf::User(_) => (&model::USERS, "user"),
                UsageOf::Organization(_) => (&model::ORGANIZATIONS, "organization"),
                UsageOf::Workspace(_) => (&model::WORKSPACES, "workspace"),
            };
            self.store
                .get(entity, id, ScopeFilter::All, Deleted::Include)
                .await?
                .ok_or(ServiceError::NotFound(name))?;
        }
        let usage = self.store.storage_usage(of).await?;
        let of_category = |category: Category| {
            usage
                .iter()
                .find(|u| u.category == category)
                .map(|u| CategoryUsage {
                    count: u.rows.max(0) as u64,
                    bytes: u.bytes.max(0) as u64,
                })
                .unwrap_or_default()
        };
        let total_bytes = usage.iter().map(|u| u.bytes.max(0) as u64).sum();
        let quota = self.quota_of(of).await?;
        // A workspace shares its holder's quota: the holder's figures are shown only to
        // whom the holder's own statistics are (a viewer of one workspace does not learn
        // what its owner's other workspaces hold).
        let holder_visible = quota.of == of
            || caller.system_admin
            || match quota.of {
                UsageOf::User(user) => user == caller.user_id,
                UsageOf::Organization(org) => caller
                    .scope
                    .org_role(org)
                    .is_some_and(|r| r >= OrgRole::Admin),
                UsageOf::Workspace(_) => true,
            };
        let quota_used_bytes = match (quota.bytes, holder_visible) {
            (Some(_), true) if quota.of == of => Some(total_bytes),
            (Some(_), true) => Some(self.used_bytes(quota.of).await?),
            _ => None,
        };
        let quota_bytes = quota.bytes.filter(|_| holder_visible);
        Ok(StorageStats {
            scope: params.scope,
            id,
            messages: of_category(Category::Messages),
            documents: of_category(Category::Documents),
            attachments: of_category(Category::Attachments),
            embeddings: of_category(Category::Embeddings),
            metadata: of_category(Category::Metadata),
            total_bytes,
            quota_bytes,
            quota_used_bytes,
            percent_used: quota_bytes
                .zip(quota_used_bytes)
                .map(|(q, used)| (used as f64 * 100.0 / q as f64 * 100.0).round() / 100.0),
        })
    }
}
