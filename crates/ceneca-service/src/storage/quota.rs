//! Quotas: whose a workspace's bytes are, how many that holder may store, and the check a
//! write that adds bytes passes before it is stored.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Value, model};
use ceneca_store::{Deleted, UsageOf, WriteOp};
use uuid::Uuid;

use crate::Services;
use crate::error::{Result, ServiceError};

/// The quota a workspace's bytes count against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    /// The quota's holder: an organization, or a user's own workspaces.
    pub of: UsageOf,
    /// Bytes the holder may store; `None`: no quota.
    pub bytes: Option<u64>,
}

/// How long a workspace's quota is remembered: a plan or setting change applies within
/// it, and a write checks its quota without reading the workspace, organization and plan
/// again each time.
const REMEMBERED: std::time::Duration = std::time::Duration::from_secs(10);
/// Workspaces remembered at most (the cache is emptied when full).
const MAX_REMEMBERED: usize = 10_000;

/// Workspaces' quotas, each with when it was read.
#[derive(Default)]
pub(crate) struct QuotaCache(Mutex<HashMap<Uuid, (Instant, Quota)>>);

impl QuotaCache {
    fn get(&self, workspace: Uuid) -> Option<Quota> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(&workspace)
            .filter(|(at, _)| at.elapsed() < REMEMBERED)
            .map(|(_, quota)| *quota)
    }

    fn put(&self, workspace: Uuid, quota: Quota) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_REMEMBERED {
            cache.clear();
        }
        cache.insert(workspace, (Instant::now(), quota));
    }
}

fn some_quota(bytes: u64) -> Option<u64> {
    (bytes > 0).then_some(bytes)
}

impl Services {
    /// The quota `workspace`'s bytes count against (remembered a few seconds).
    pub(crate) async fn quota_of_workspace(&self, workspace: Uuid) -> Result<Quota> {
        if let Some(quota) = self.quotas.get(workspace) {
            return Ok(quota);
        }
        let quota = self.read_quota_of_workspace(workspace).await?;
        self.quotas.put(workspace, quota);
        Ok(quota)
    }

    async fn read_quota_of_workspace(&self, workspace: Uuid) -> Result<Quota> {
        let row = self
            .store
            .get(
                &model::WORKSPACES,
                workspace,
                ScopeFilter::All,
                Deleted::Include,
            )
            .await?
            .ok_or(ServiceError::NotFound("workspace"))?;
        match (row.id_of("organization_id"), row.id_of("owner_user_id")) {
            (Some(organization), _) => self.quota_of(UsageOf::Organization(organization)).await,
            (None, Some(user)) => self.quota_of(UsageOf::User(user)).await,
            (None, None) => Ok(Quota {
                of: UsageOf::Workspace(workspace),
                bytes: None,
            }),
        }
    }

    /// The quota of a holder: a user's setting, or an organization's plan or setting.
    pub(crate) async fn quota_of(&self, of: UsageOf) -> Result<Quota> {
        let bytes = match of {
            UsageOf::User(_) => some_quota(self.config.user_quota_bytes),
            UsageOf::Workspace(workspace) => {
                return Box::pin(self.quota_of_workspace(workspace)).await;
            }
            UsageOf::Organization(organization) => {
                let plan_limit = match self
                    .store
                    .get(
                        &model::ORGANIZATIONS,
                        organization,
                        ScopeFilter::All,
                        Deleted::Include,
                    )
                    .await?
                    .and_then(|org| org.id_of("plan_id"))
                {
                    Some(plan) => self
                        .store
                        .get(
                            &model::SUBSCRIPTION_PLANS,
                            plan,
                            ScopeFilter::All,
                            Deleted::Include,
                        )
                        .await?
                        .and_then(|plan| match plan.get("limits") {
                            Some(Value::Json(limits)) => limits["storage_quota_bytes"].as_u64(),
                            _ => None,
                        }),
                    None => None,
                };
                some_quota(plan_limit.unwrap_or(self.config.organization_quota_bytes))
            }
        };
        Ok(Quota { of, bytes })
    }

    /// What a quota's holder stores now, all its workspaces together.
    pub(crate) async fn used_bytes(&self, of: UsageOf) -> Result<u64> {
        let usage = self.store.storage_usage(of).await?;
        Ok(usage.iter().map(|u| u.bytes.max(0) as u64).sum())
    }

    /// Checks that `workspace` may take `adding` more bytes, as its holder stands now:
    /// refused with `quota_exceeded` (413) otherwise. Answers the room left (`None`: no
    /// quota), with the operation that checks again inside the write, under the holder's
    /// lock, for a write that must never overshoot (a file).
    pub(crate) async fn check_quota(&self, workspace: Uuid, adding: u64) -> Result<Option<Room>> {
        let quota = self.quota_of_workspace(workspace).await?;
        let Some(limit) = quota.bytes else {
            return Ok(None);
        };
        let used = self.used_bytes(quota.of).await?;
        self.quota_nearly_full(used.saturating_add(adding), limit);
        if used.saturating_add(adding) > limit {
            return Err(ServiceError::QuotaExceeded { quota: limit, used });
        }
        Ok(Some(Room {
            quota: limit,
            left: limit - used,
            guard: WriteOp::WithinQuota {
                of: quota.of,
                quota: limit as i64,
            },
        }))
    }
}

/// What a holder may still store, when it has a quota.
pub(crate) struct Room {
    pub quota: u64,
    pub left: u64,
    /// Checks the quota again inside the write, under the holder's lock.
    pub guard: WriteOp,
}

impl Room {
    /// The refusal of a write `over` bytes past what is left.
    pub(crate) fn exceeded(&self) -> ServiceError {
        ServiceError::QuotaExceeded {
            quota: self.quota,
            used: self.quota - self.left,
        }
    }
}

impl Services {
    /// Checks that new rows of `entity` fit their workspaces' quotas (before any is
    /// written). Rows of entities that do not count, or of no workspace, pass. Answers
    /// the operations that check again inside the write, under each quota holder's lock:
    /// a batch adds them, so concurrent batches (each up to thousands of rows) cannot pass
    /// a quota together; a single row's write does not, for speed (it may pass a quota by
    /// its own size when others race it).
    pub(crate) async fn check_quota_of_rows(
        &self,
        entity: &ceneca_domain::Entity,
        rows: &[ceneca_domain::Record],
    ) -> Result<Vec<WriteOp>> {
        let Some(sizing) = ceneca_domain::storage::sizing(entity) else {
            return Ok(Vec::new());
        };
        let mut per_workspace: Vec<(Uuid, u64)> = Vec::new();
        for row in rows {
            let Some(workspace) = row.id_of("workspace_id") else {
                continue;
            };
            let bytes = sizing.bytes(row).max(0) as u64;
            match per_workspace.iter_mut().find(|(w, _)| *w == workspace) {
                Some((_, total)) => *total += bytes,
                None => per_workspace.push((workspace, bytes)),
            }
        }
        let mut guards = Vec::new();
        for (workspace, bytes) in per_workspace {
            if let Some(room) = self.check_quota(workspace, bytes).await? {
                guards.push(room.guard);
            }
        }
        Ok(guards)
    }
}

impl Services {
    /// The quota check of a restore of `entity` row `id`: the operation that refuses it
    /// inside its write when what comes back from the bin passes the holder's quota;
    /// `None` when there is no quota (or no such row: the restore finds nothing).
    pub(crate) async fn restore_guard(
        &self,
        entity: &'static ceneca_domain::Entity,
        id: Uuid,
    ) -> Result<Option<WriteOp>> {
        let quota = if std::ptr::eq(entity, &model::ORGANIZATIONS) {
            self.quota_of(UsageOf::Organization(id)).await?
        } else if std::ptr::eq(entity, &model::WORKSPACES) {
            self.quota_of_workspace(id).await?
        } else {
            let row = self
                .store
                .get(entity, id, ScopeFilter::All, Deleted::Only)
                .await?;
            match row.and_then(|r| r.id_of("workspace_id")) {
                Some(workspace) => self.quota_of_workspace(workspace).await?,
                None => return Ok(None),
            }
        };
        Ok(quota.bytes.map(|limit| WriteOp::WithinQuota {
            of: quota.of,
            quota: limit as i64,
        }))
    }
}
