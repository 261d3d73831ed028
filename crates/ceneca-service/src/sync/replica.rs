//! A local node's side of replication: the upstream's changes applied here, this node's
//! own changes read out for pushing, and the enrolled account kept for offline log-in.
//!
//! What the upstream sends has passed its validation and authorization already; here it
//! is merged with the same rules (`ceneca_domain::sync::merge`) against this node's
//! clocks, so a local edit not yet pushed keeps winning where its clock is later, and
//! written directly under the change's own identity (its id and clock in the local log).

use std::collections::HashSet;

use ceneca_domain::clock::HybridClock;
use ceneca_domain::roles::OrgRole;
use ceneca_domain::schema::Kind;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::sync::{
    Operation, Stamp, decide, entity_logged_as, entity_named, pushable, refuse_future, replicated,
};
use ceneca_domain::validate::{fill_defaults, parse_time, parse_value};
use ceneca_domain::{Entity, Record, Value, model};
use ceneca_store::changes::{FeedPart, FeedQuery};
use ceneca_store::{Actor, Deleted, Replay, WriteBatch, WriteOp};
use ceneca_wire::sync::{Change, ChangeOperation, PushedChange};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use super::node::LocalNode;
use super::pull::{hlc_text, logged_operation};
use super::push::{Logged, RowHistories, STALE_RETRIES};
use crate::Services;
use crate::error::{Result, ServiceError};

/// What applying a page of the upstream's feed did.
#[derive(Debug, Default)]
pub struct UpstreamApplied {
    /// Changes written here (a change already held counts as applied too).
    pub applied: usize,
    /// Changes that could not be applied, each with why (logged by the loop).
    pub failed: Vec<String>,
    /// The user was given access to a workspace this node has never held (by the change
    /// at this cursor: a new membership, or being made an organization's administrator):
    /// its earlier history is behind the cursor, so the node reads the upstream's snapshot
    /// before it moves on.
    pub resync: Option<i64>,
    /// Changes made here and not pushed yet, dropped with a workspace the user lost.
    pub lost: Vec<String>,
}

/// The workspaces and organizations a snapshot showed: what a node keeps after it.
#[derive(Debug, Default)]
pub struct Shown {
    workspaces: HashSet<Uuid>,
    organizations: HashSet<Uuid>,
}

impl Shown {
    /// Takes note of a page of the snapshot.
    pub fn note(&mut self, changes: &[Change]) {
        for change in changes {
            if change.entity == model::WORKSPACES.table {
                self.workspaces.insert(change.entity_id);
            } else if change.entity == model::ORGANIZATIONS.table {
                self.organizations.insert(change.entity_id);
            }
        }
    }
}

/// What the upstream may send a node: workspace content, the workspaces and
/// organizations it lives in, the user's own memberships, and the AI provider settings
/// the user may read (their keys sealed here again), so the device's apps work offline. Accounts, devices, tokens,
/// rules and anything else the upstream keeps to itself are never taken from a feed:
/// a hostile or broken upstream cannot make a log-in here.
fn accepted_from_upstream(entity: &Entity) -> bool {
    pushable(entity)
        || is_membership(entity)
        || std::ptr::eq(entity, &model::WORKSPACES)
        || std::ptr::eq(entity, &model::ORGANIZATIONS)
        || std::ptr::eq(entity, &model::AI_PROVIDER_CONFIGS)
}

/// Why one change was not applied.
enum Skip {
    /// A membership in a workspace not held here yet (see [`UpstreamApplied::resync`]).
    NewWorkspace,
    Failed(ServiceError),
}

impl From<ServiceError> for Skip {
    fn from(e: ServiceError) -> Self {
        Skip::Failed(e)
    }
}

impl From<ceneca_store::StoreError> for Skip {
    fn from(e: ceneca_store::StoreError) -> Self {
        Skip::Failed(e.into())
    }
}

impl Services {
    fn local_node(&self) -> Result<&LocalNode> {
        self.config.local_node.as_ref().ok_or_else(|| {
            ServiceError::NotLocalNode(
                "this server is not a local node (it has no upstream)".into(),
            )
        })
    }

    /// A node is one account's: its writes are pushed as that account's. A folder
    /// holding another account that can log in is not enrolled over it.
    pub async fn check_adoptable(&self, user_id: Uuid) -> Result<()> {
        let mut others = ceneca_store::ListQuery::new(ScopeFilter::All, "id", false, 2);
        others.equals = vec![("status", Value::Text("active".into()))];
        if let Some(other) = self
            .store
            .list(&model::USERS, others)
            .await?
            .iter()
            .find(|row| row.id() != Some(user_id))
        {
            return Err(ServiceError::conflict(format!(
                "this data folder holds the account {}: a local node is one account's, so \
                 another account is enrolled in a data folder of its own",
                other
                    .get("email")
                    .and_then(Value::as_str)
                    .unwrap_or("of someone else")
            )));
        }
        Ok(())
    }

    /// Keeps the enrolled account here: its id and profile as the upstream has them (`me`,
    /// the answer of `GET /auth/me`), with an Argon2id hash of `password`, so its user can
    /// log in with the upstream down; and this node's device row, which its changes name.
    /// Enrolling again (a new password, another device) replaces both.
    pub async fn adopt_account(&self, me: &Json, password: &str, device: &Json) -> Result<()> {
        let id_of = |json: &Json, what: &str| {
            json.get("id")
                .and_then(Json::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| ServiceError::Internal(format!("the upstream's {what} has no id")))
        };
        let (user_id, device_id) = (id_of(me, "account")?, id_of(device, "device")?);
        self.check_adoptable(user_id).await?;
        let text = |json: &Json, name: &str| {
            json.get(name)
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let now = ceneca_domain::clock::now();
        let hash = crate::auth::accounts::hash_password(password.to_owned()).await?;
        let mut user = Record::new();
        user.set("email", Value::Text(text(me, "email").to_lowercase()));
        user.set("display_name", Value::Text(text(me, "display_name")));
        user.set("password_hash", Value::Text(hash));
        user.set("status", Value::Text("active".into()));
        let actor = Actor {
            user_id: None,
            device_id: None,
            replay: None,
        };
        let users = &model::USERS;
        let mut batch = WriteBatch::new(actor);
        if self.exists(users, user_id).await? {
            batch = batch.push(WriteOp::Update {
                entity: users,
                id: user_id,
                filter: ScopeFilter::All,
                set: user,
            });
        } else {
            user.set("id", Value::Id(user_id));
            user.set("created_at", Value::Time(now));
            user.set("updated_at", Value::Time(now));
            user.set("updated_at", Value::Time(now));
            fill_defaults(users, &mut user, now);
            batch = batch.push(WriteOp::Insert {
                entity: users,
                record: user,
            });
        }
        if !self.exists(&model::DEVICES, device_id).await? {
            let mut row = Record::new();
            row.set("id", Value::Id(device_id));
            row.set("created_at", Value::Time(now));
            row.set("updated_at", Value::Time(now));
            row.set("user_id", Value::Id(user_id));
            row.set("name", Value::Text(text(device, "name")));
            row.set("platform", Value::Text(text(device, "platform")));
            // Devices are not signed in here: a digest no token has.
            row.set(
                "token_hash",
                Value::Bytes(ceneca_crypto::token::digest(
                    &ceneca_crypto::token::generate(),
                )),
            );
            fill_defaults(&model::DEVICES, &mut row, now);
            batch = batch.push(WriteOp::Insert {
                entity: &model::DEVICES,
                record: row,
            });
        }
        self.store.apply(batch).await?;
        Ok(())
    }

    /// Locks the enrolled account here: the upstream no longer accepts this device
    /// (revoked, expired, the password changed or the account suspended there), so its
    /// log-ins and sessions end here too, offline ones included, until the device is
    /// enrolled again (which opens the account with the password the upstream accepts).
    pub async fn lock_adopted_account(&self) -> Result<()> {
        let node = self.local_node()?;
        let mut suspend = Record::new();
        suspend.set("status", Value::Text("suspended".into()));
        let mut revoke = Record::new();
        revoke.set("revoked_at", Value::Time(ceneca_domain::clock::now()));
        let actor = Actor {
            user_id: None,
            device_id: None,
            replay: None,
        };
        let event = crate::audit::AuditEvent::new("sync.device_locked", "success")
            .on("users", Some(node.user_id))
            .details(serde_json::json!({ "device_id": node.device_id.to_string() }));
        self.store
            .apply(
                WriteBatch::new(actor)
                    .push(WriteOp::UpdateAll {
                        entity: &model::USERS,
                        filter: ScopeFilter::AnyOf(vec![("id", vec![node.user_id])]),
                        set: suspend,
                    })
                    .push(WriteOp::UpdateAll {
                        entity: &model::SESSIONS,
                        filter: ScopeFilter::AnyOf(vec![("user_id", vec![node.user_id])]),
                        set: revoke,
                    })
                    .push(self.audit_op(event)),
            )
            .await?;
        Ok(())
    }

    /// Applies a page of the upstream's feed, oldest first. A change this node already
    /// holds (its own, come back; one applied before a crash) is recognised and skipped.
    ///
    /// Revocations before the cursor `revokes_from` are history (a snapshot, which shows
    /// what may be read now, passes `i64::MAX`): re-applying an old revoke would drop a
    /// workspace given back since. `pushed` is where this node's own changes
    /// were pushed up to: what is dropped with a lost workspace after it is reported.
    pub async fn apply_upstream(
        &self,
        changes: &[Change],
        revokes_from: i64,
        pushed: i64,
    ) -> Result<UpstreamApplied> {
        let node = self.local_node()?.clone();
        let ids: Vec<Uuid> = changes.iter().map(|c| c.entity_id).collect();
        let (mut clocks, mut logged) = self.row_clocks(ids).await?;
        let mut known = HashSet::new();
        let mut out = UpstreamApplied::default();
        for change in changes {
            let mut attempt = 0;
            if change.operation == ChangeOperation::Revoke {
                let at: i64 = change.cursor.parse().unwrap_or(i64::MAX);
                if at >= revokes_from {
                    // A demotion carries the role the user keeps: the membership stays.
                    let keeps_membership = change.values.contains_key("role");
                    let lost = self
                        .forget_access(
                            &node,
                            &change.entity,
                            change.entity_id,
                            keeps_membership,
                            pushed,
                        )
                        .await?;
                    out.lost.extend(lost);
                }
                out.applied += 1;
                continue;
            }
            if change.operation == ChangeOperation::Purge {
                match self.apply_purge(change).await {
                    Ok(()) => out.applied += 1,
                    Err(e) => out.failed.push(format!(
                        "purge of {} {} (cursor {}): {e}",
                        change.entity, change.entity_id, change.cursor
                    )),
                }
                continue;
            }
            let applied = loop {
                match self
                    .apply_change(&node, change, &mut clocks, &mut logged, &mut known)
                    .await
                {
                    // A local write reached the row since its history was read.
                    Err(Skip::Failed(ServiceError::Stale)) if attempt < STALE_RETRIES => {
                        attempt += 1;
                        self.reread_history(change.entity_id, &mut clocks, &mut logged)
                            .await?;
                    }
                    other => break other,
                }
            };
            match applied {
                Ok(()) => {
                    out.applied += 1;
                    let at: i64 = change.cursor.parse().unwrap_or(0);
                    if at >= revokes_from && self.made_administrator(&node, change).await? {
                        out.resync = Some(out.resync.map_or(at, |r: i64| r.min(at)));
                    }
                }
                // The row keeps changing here: the page is not applied past it, and the
                // loop reads it again on its next round (nothing is skipped).
                Err(Skip::Failed(ServiceError::Stale)) => return Err(ServiceError::Stale),
                Err(Skip::NewWorkspace) => {
                    let at = change.cursor.parse().unwrap_or(0);
                    out.resync = Some(out.resync.map_or(at, |r: i64| r.min(at)));
                }
                Err(Skip::Failed(e)) => out.failed.push(format!(
                    "{:?} of {} {} (cursor {}): {e}",
                    change.operation, change.entity, change.entity_id, change.cursor
                )),
            }
        }
        Ok(out)
    }

    /// The upstream deleted a row for good: this node deletes its copy, in the bin or
    /// not, with everything below it and its history here (a change of it made here and
    /// not pushed yet goes too: its row is gone upstream).
    async fn apply_purge(&self, change: &Change) -> Result<()> {
        let entity = entity_named(&change.entity)
            .filter(|e| {
                ceneca_store::purge::PURGED
                    .iter()
                    .any(|p| std::ptr::eq(*p, *e))
            })
            .ok_or_else(|| {
                ServiceError::Internal(format!(
                    "a purge of '{}', which is never purged",
                    change.entity
                ))
            })?;
        let mut report = ceneca_wire::maintenance::MaintenanceReport::default();
        self.purge_rows(
            entity,
            vec![change.entity_id],
            ceneca_store::PurgeRule::Upstream,
            None,
            &mut report,
        )
        .await
    }

    async fn apply_change(
        &self,
        node: &LocalNode,
        change: &Change,
        clocks: &mut RowHistories,
        logged: &mut Logged,
        known: &mut HashSet<Uuid>,
    ) -> Result<(), Skip> {
        let refuse = |why: String| Skip::Failed(ServiceError::Internal(why));
        let hlc: u64 = change
            .hlc
            .parse()
            .map_err(|_| refuse(format!("a change stamped '{}'", change.hlc)))?;
        let max_ahead = self.config.sync_max_clock_ahead;
        if refuse_future(
            hlc,
            HybridClock::physical_now(),
            max_ahead.as_millis() as u64,
        )
        .is_err()
            || i64::try_from(hlc).is_err()
        {
            return Err(refuse(format!(
                "a change stamped {hlc}, more than {} s ahead of this node's clock",
                max_ahead.as_secs()
            )));
        }
        let operation = match change.operation {
            ChangeOperation::Create => Operation::Create,
            ChangeOperation::Update => Operation::Update,
            ChangeOperation::Delete => Operation::Delete,
            ChangeOperation::Restore => Operation::Restore,
            ChangeOperation::Revoke | ChangeOperation::Purge => return Ok(()),
        };
        let entity = entity_named(&change.entity)
            .filter(|e| accepted_from_upstream(e))
            .ok_or_else(|| {
                refuse(format!(
                    "a change of '{}', which a node never takes",
                    change.entity
                ))
            })?;
        if is_membership(entity)
            && let Some(member) = change.values.get("user_id")
            && member.as_str() != Some(node.user_id.to_string().as_str())
        {
            return Err(refuse("a membership of another user".into()));
        }
        // Only what travels: never a hidden or server-kept column of the upstream's.
        let register_of =
            |name: &str| ceneca_domain::sync::secrets(entity).find(|(secret, _)| *secret == name);
        if let Some(name) = change.values.keys().find(|name| {
            name.as_str() != "created_at"
                && register_of(name).is_none()
                && !entity.field(name).is_some_and(|f| replicated(entity, f))
        }) {
            return Err(refuse(format!(
                "{}.{name}, which does not travel between nodes",
                entity.table
            )));
        }
        self.store.clock().observe(hlc);
        let mut values = change.values.clone();
        let created_at =
            match values.remove("created_at") {
                Some(json) => Some(parse_time(&json).map_err(|r| {
                    ServiceError::Internal(format!("a change's created_at that {r}"))
                })?),
                None => None,
            };
        // A secret arrives open (over TLS or loopback) and is sealed here under this
        // node's key ring; its register is its ciphertext column's, as upstream.
        let mut secrets = Vec::new();
        for (secret, column) in ceneca_domain::sync::secrets(entity) {
            match values.remove(secret) {
                Some(Json::String(plain)) => secrets.push((secret, column, Some(plain))),
                // Set upstream, but not for this device (or cleared): its copy goes.
                Some(Json::Null) => secrets.push((secret, column, None)),
                Some(_) => {
                    return Err(refuse(format!(
                        "{}.{secret} that is not text",
                        entity.table
                    )));
                }
                None => {}
            }
        }
        let fields: Vec<&str> = values
            .keys()
            .map(String::as_str)
            .chain(secrets.iter().map(|(_, column, _)| *column))
            .collect();
        let stamp = Stamp {
            hlc,
            change: change.change_id,
        };
        let row_clocks = clocks
            .entry((entity.name.to_owned(), change.entity_id))
            .or_default();
        let decision = decide(row_clocks, operation, stamp, &fields);
        if decision.duplicate || logged.contains(&(change.entity_id, change.change_id)) {
            return Ok(());
        }
        // The row as this node holds it, read once (its clocks may not know it: a row
        // written here before its history was folded).
        let current = self
            .store
            .get(entity, change.entity_id, ScopeFilter::All, Deleted::Include)
            .await?;
        let actor = |stamp: Stamp| Actor {
            user_id: change.user_id,
            // Only this node's own changes are pushed: others keep no device here.
            device_id: change.device_id.filter(|d| *d == node.device_id),
            replay: Some(Replay {
                row: change.entity_id,
                change_id: stamp.change,
                hlc: stamp.hlc,
            }),
        };
        if let Some(user) = change.user_id {
            self.ensure_user(user, known).await?;
        }
        let id = change.entity_id;
        let now = ceneca_domain::clock::now();
        let mut batches = Vec::new();
        if decision.insert && current.is_none() {
            let mut record = self.parsed(entity, &values, &decision.apply)?;
            record.set("id", Value::Id(id));
            record.set("created_at", Value::Time(created_at.unwrap_or(now)));
            record.set("updated_at", Value::Time(now));
            fill_defaults(entity, &mut record, now);
            let owner = record.clone();
            self.seal_secrets_from_upstream(
                entity,
                id,
                &owner,
                &secrets,
                &decision.apply,
                &mut record,
            );
            self.ensure_references(entity, &mut record, known)
                .await
                .map_err(|e| match is_membership(entity) {
                    true => Skip::NewWorkspace,
                    false => Skip::Failed(e),
                })?;
            self.seal_content(entity, id, record.id_of("workspace_id"), &mut record);
            batches.push(WriteBatch::new(actor(stamp)).push(WriteOp::Insert { entity, record }));
            if decision.set_deleted == Some(true)
                && let Some((true, deleted)) = row_clocks.deletion
            {
                // Deleted before it arrived: a tombstone, or nothing where rows are not
                // kept deleted.
                if entity.soft_delete {
                    batches.push(WriteBatch::new(actor(deleted)).push(WriteOp::SoftDelete {
                        entity,
                        id,
                        filter: ScopeFilter::All,
                    }));
                } else {
                    batches.pop();
                }
            }
        } else if let Some(current) = current {
            let mut batch = WriteBatch::new(actor(stamp));
            if !decision.apply.is_empty() {
                let mut set = self.parsed(entity, &values, &decision.apply)?;
                self.ensure_references(entity, &mut set, known).await?;
                self.seal_content(entity, id, current.id_of("workspace_id"), &mut set);
                self.seal_secrets_from_upstream(
                    entity,
                    id,
                    &current,
                    &secrets,
                    &decision.apply,
                    &mut set,
                );
                batch = batch.push(WriteOp::Update {
                    entity,
                    id,
                    filter: ScopeFilter::All,
                    set,
                });
            }
            let deleted = current.get("deleted_at").is_some_and(|v| !v.is_null());
            match decision.set_deleted {
                // Rows without soft deletion (attachments, memberships) go for good.
                Some(true) if !entity.soft_delete => {
                    batch = batch.push(WriteOp::Delete {
                        entity,
                        id,
                        filter: ScopeFilter::All,
                    });
                }
                Some(true) if !deleted => {
                    batch = batch.push(WriteOp::SoftDelete {
                        entity,
                        id,
                        filter: ScopeFilter::All,
                    });
                }
                Some(false) if deleted => {
                    batch = batch.push(WriteOp::Restore {
                        entity,
                        id,
                        filter: ScopeFilter::All,
                    });
                }
                _ => {}
            }
            if !batch.ops.is_empty() {
                batches.push(batch);
            }
        }
        if let Some(first) = batches.first_mut() {
            // Nothing may have reached the row since the merge read its history.
            first.ops.insert(
                0,
                WriteOp::ExpectHistory {
                    row: id,
                    last_seq: logged.end_of(id),
                },
            );
        }
        for batch in batches {
            match self.store.apply(batch).await {
                Ok(_) => {}
                Err(
                    ceneca_store::StoreError::ForeignKey { .. }
                    | ceneca_store::StoreError::NotFound,
                ) if is_membership(entity) => {
                    return Err(Skip::NewWorkspace);
                }
                Err(e) => return Err(Skip::Failed(e.into())),
            }
        }
        // A row this node has not got (deleted before the user could read it) keeps
        // its clocks all the same, so a late create is born as what it became.
        row_clocks.absorb(operation, stamp, &fields);
        logged.insert((change.entity_id, change.change_id));
        known.insert(id);
        Ok(())
    }

    /// Whether `change` made the node's user an owner or administrator of an organization
    /// they already belonged to: every workspace of it opens to them, and those workspaces'
    /// history is behind the cursor, as a new workspace's is ([`UpstreamApplied::resync`]).
    async fn made_administrator(&self, node: &LocalNode, change: &Change) -> Result<bool> {
        let promoted = change.entity == model::ORGANIZATION_MEMBERS.table
            && change
                .values
                .get("role")
                .and_then(Json::as_str)
                .and_then(OrgRole::parse)
                .is_some_and(|role| role >= OrgRole::Admin);
        if !promoted {
            return Ok(false);
        }
        let mine = self
            .rows_where(
                &model::ORGANIZATION_MEMBERS,
                vec![
                    ("id", Value::Id(change.entity_id)),
                    ("user_id", Value::Id(node.user_id)),
                ],
            )
            .await?;
        Ok(!mine.is_empty())
    }

    /// The user lost access: a workspace's copy is dropped with its history here (its
    /// content, memberships and change-log entries), so a later invitation brings it back
    /// whole. Losing an organization drops the user's membership of it (unless
    /// `keeps_membership`: a demotion from administrator) and every workspace of it the
    /// user is not a member of in their own right (an organization's administrators read
    /// all of its workspaces). Answers what was made here in the dropped workspaces and
    /// not pushed yet: it is lost, and said so.
    async fn forget_access(
        &self,
        node: &LocalNode,
        entity: &str,
        id: Uuid,
        keeps_membership: bool,
        pushed: i64,
    ) -> Result<Vec<String>> {
        let mut workspaces = Vec::new();
        let mut batch = WriteBatch::new(Actor {
            user_id: None,
            device_id: None,
            replay: None,
        });
        if entity == model::WORKSPACES.table {
            workspaces.push(id);
        } else {
            if !keeps_membership {
                let mine = self
                    .rows_where(
                        &model::ORGANIZATION_MEMBERS,
                        vec![
                            ("organization_id", Value::Id(id)),
                            ("user_id", Value::Id(node.user_id)),
                        ],
                    )
                    .await?;
                batch = batch.push(WriteOp::Forget {
                    entity: &model::ORGANIZATION_MEMBERS,
                    filter: ScopeFilter::AnyOf(vec![("id", mine)]),
                });
            }
            for workspace in self
                .rows_where(&model::WORKSPACES, vec![("organization_id", Value::Id(id))])
                .await?
            {
                let member = self
                    .rows_where(
                        &model::WORKSPACE_MEMBERS,
                        vec![
                            ("workspace_id", Value::Id(workspace)),
                            ("user_id", Value::Id(node.user_id)),
                        ],
                    )
                    .await?;
                if member.is_empty() {
                    workspaces.push(workspace);
                }
            }
        }
        let mut lost = Vec::new();
        for workspace in &workspaces {
            let mut own = own_changes(node, pushed, 0);
            for part in &mut own.parts {
                part.filter = ScopeFilter::AnyOf(vec![("workspace_id", vec![*workspace])]);
            }
            let count = self.store.count_feed(own).await?;
            if count > 0 {
                lost.push(format!(
                    "{count} change(s) made here in workspace {workspace} were never pushed and \
                     are dropped with it: the user no longer has access to it"
                ));
            }
        }
        if !workspaces.is_empty() {
            batch = batch
                .push(WriteOp::Forget {
                    entity: &model::SYNC_EVENTS,
                    filter: ScopeFilter::AnyOf(vec![("scope_workspace_id", workspaces.clone())]),
                })
                .push(WriteOp::Forget {
                    entity: &model::WORKSPACES,
                    filter: ScopeFilter::AnyOf(vec![("id", workspaces)]),
                });
        }
        self.store.apply(batch).await?;
        Ok(lost)
    }

    /// After a snapshot: drops every workspace and organization held here that the
    /// snapshot did not show and that the user neither owns nor is a member of (the snapshot
    /// brought the user's memberships as they stand: a removed one as its removal), as a
    /// revocation would; the revocations that said so may be behind the snapshot. One
    /// the user still belongs to stays, though the snapshot did not show it: it is in the
    /// bin upstream (a restore brings it back), or the upstream lost it (restored from a
    /// backup), and this node may hold its only copy. Answers what was lost.
    pub async fn keep_only(&self, shown: &Shown, pushed: i64) -> Result<Vec<String>> {
        let node = self.local_node()?.clone();
        // What the user still has a role in here, as every read here decides it: owned,
        // a member of, or through an organization's owners and administrators (live or
        // in the bin).
        let scope = self.store.load_scope(node.user_id, false).await?;
        let mut lost = Vec::new();
        for org in self.rows_where(&model::ORGANIZATIONS, Vec::new()).await? {
            if shown.organizations.contains(&org)
                || holds(&scope.organizations, org)
                || holds(&scope.deleted_organizations, org)
            {
                continue;
            }
            lost.extend(
                self.forget_access(&node, model::ORGANIZATIONS.table, org, false, pushed)
                    .await?,
            );
        }
        for workspace in self.rows_where(&model::WORKSPACES, Vec::new()).await? {
            if shown.workspaces.contains(&workspace)
                || holds(&scope.workspaces, workspace)
                || holds(&scope.deleted_workspaces, workspace)
            {
                continue;
            }
            lost.extend(
                self.forget_access(&node, model::WORKSPACES.table, workspace, false, pushed)
                    .await?,
            );
        }
        Ok(lost)
    }

    /// Seals the secrets a change brought (those whose register it won) under this
    /// node's key ring, bound to the row and its owner as an API write binds them; one
    /// that came as `null` (cleared, or not this device's to hold) is cleared here.
    fn seal_secrets_from_upstream(
        &self,
        entity: &Entity,
        id: Uuid,
        owner: &Record,
        secrets: &[(&'static str, &'static str, Option<String>)],
        won: &[String],
        set: &mut Record,
    ) {
        let mut open = Record::with_capacity(secrets.len());
        for (secret, column, plain) in secrets {
            if won.iter().any(|w| w == column) {
                let value = plain.clone().map(Value::Text).unwrap_or(Value::Null);
                open.set(secret, value);
            }
        }
        if open.is_empty() {
            return;
        }
        crate::secrets::seal_secrets(self, entity, id, owner, &mut open);
        for (name, value) in open.iter() {
            set.set(name, value.clone());
        }
    }

    /// The ids of the rows of `entity` (deleted ones too) with these column values.
    async fn rows_where(
        &self,
        entity: &'static Entity,
        equals: Vec<(&'static str, Value)>,
    ) -> Result<Vec<Uuid>> {
        let mut query = ceneca_store::ListQuery::new(ScopeFilter::All, "id", false, 10_000);
        query.equals = equals;
        query.deleted = Deleted::Include;
        Ok(self
            .store
            .list(entity, query)
            .await?
            .iter()
            .filter_map(Record::id)
            .collect())
    }

    /// The values of `names`, parsed by their fields' kinds.
    fn parsed(
        &self,
        entity: &Entity,
        values: &Map<String, Json>,
        names: &[String],
    ) -> Result<Record> {
        let mut record = Record::with_capacity(names.len() + 4);
        for name in names {
            let (Some(field), Some(json)) = (entity.field(name), values.get(name)) else {
                continue;
            };
            let value = parse_value(field, json).map_err(|reason| {
                ServiceError::Internal(format!("the upstream's {}.{name} {reason}", entity.name))
            })?;
            record.set(field.name, value);
        }
        Ok(record)
    }

    async fn exists(&self, entity: &'static Entity, id: Uuid) -> Result<bool> {
        Ok(self
            .store
            .get(entity, id, ScopeFilter::All, Deleted::Include)
            .await?
            .is_some())
    }

    /// Every row `record` refers to must be here: an account the node has never seen
    /// (another member, who wrote in a shared workspace) is kept as a placeholder that
    /// cannot log in; a reference to a row this user may not read is left empty where it
    /// may be, and otherwise the change cannot be applied.
    async fn ensure_references(
        &self,
        entity: &'static Entity,
        record: &mut Record,
        known: &mut HashSet<Uuid>,
    ) -> Result<()> {
        for field in entity.columns() {
            let Kind::Ref(target) = field.kind else {
                continue;
            };
            let Some(id) = record.id_of(field.name) else {
                continue;
            };
            if known.contains(&id) {
                continue;
            }
            if target == model::USERS.table {
                self.ensure_user(id, known).await?;
                continue;
            }
            let held = match model::by_table(target) {
                Some(parent) => self.exists(parent, id).await?,
                None => false,
            };
            if held {
                known.insert(id);
            } else if field.nullable {
                record.set(field.name, Value::Null);
            } else {
                return Err(ServiceError::NotFound(
                    model::by_table(target).map_or("row", |e| e.name),
                ));
            }
        }
        Ok(())
    }

    /// A placeholder for an account this node does not hold: suspended, with no
    /// password, so it names an author and nothing more.
    async fn ensure_user(&self, id: Uuid, known: &mut HashSet<Uuid>) -> Result<()> {
        if known.contains(&id) || self.exists(&model::USERS, id).await? {
            known.insert(id);
            return Ok(());
        }
        let now = ceneca_domain::clock::now();
        let mut user = Record::new();
        user.set("id", Value::Id(id));
        user.set("created_at", Value::Time(now));
        user.set("updated_at", Value::Time(now));
        user.set("email", Value::Text(format!("{id}@replica.invalid")));
        user.set("display_name", Value::Text(String::new()));
        user.set("password_hash", Value::Text("!".into()));
        user.set("status", Value::Text("suspended".into()));
        fill_defaults(&model::USERS, &mut user, now);
        let actor = Actor {
            user_id: None,
            device_id: None,
            replay: None,
        };
        let batch = WriteBatch::new(actor).push(WriteOp::Insert {
            entity: &model::USERS,
            record: user,
        });
        match self.store.apply(batch).await {
            Ok(_) | Err(ceneca_store::StoreError::Unique { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        known.insert(id);
        Ok(())
    }

    /// This node's own changes after `after` (its log's `seq`), oldest first, at most
    /// `limit`, as the upstream's push takes them; and the `seq` of the last one read.
    pub async fn pending_changes(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<(Vec<PushedChange>, Option<i64>)> {
        let node = self.local_node()?;
        let rows = self.store.feed(own_changes(node, after, limit)).await?;
        let last = rows
            .last()
            .and_then(|r| r.get("seq"))
            .and_then(Value::as_int);
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let text = |name: &str| row.get(name).and_then(Value::as_str).unwrap_or_default();
            let (Some(entity), Some(entity_id), Some(change_id)) = (
                entity_logged_as(text("entity_type")),
                row.id_of("entity_id"),
                row.id(),
            ) else {
                continue;
            };
            let operation = match logged_operation(text("operation")) {
                Some(ChangeOperation::Revoke | ChangeOperation::Purge) | None => continue,
                Some(operation) => operation,
            };
            let mut values = match row.get("payload") {
                Some(Value::Json(Json::Object(map))) => map.clone(),
                _ => Map::new(),
            };
            self.open_values(
                entity,
                entity_id,
                row.id_of("scope_workspace_id"),
                &mut values,
            )?;
            // What the upstream's push takes: on a create, what a client may set (and
            // the creation time); on an update, what a client may change.
            values.retain(|name, _| match operation {
                ChangeOperation::Create => {
                    name == "created_at"
                        || entity
                            .field(name)
                            .is_some_and(|f| f.input != ceneca_domain::schema::Input::Server)
                }
                _ => entity.field(name).is_some_and(|f| f.patch),
            });
            if operation == ChangeOperation::Update && values.is_empty() {
                continue;
            }
            out.push(PushedChange {
                change_id,
                entity: entity.table.to_owned(),
                entity_id,
                operation,
                hlc: hlc_text(row),
                values,
            });
        }
        Ok((out, last))
    }

    /// How many of this node's own changes after `after` wait to be pushed.
    pub async fn count_pending(&self, after: i64) -> Result<i64> {
        let node = self.local_node()?;
        Ok(self.store.count_feed(own_changes(node, after, 0)).await?)
    }
}

/// The feed of what this node's device wrote to content it may push.
fn own_changes(node: &LocalNode, after: i64, limit: u32) -> FeedQuery {
    FeedQuery {
        after,
        limit,
        parts: model::ALL
            .iter()
            .copied()
            .filter(|e| pushable(e))
            .map(|entity| FeedPart {
                entity,
                filter: ScopeFilter::All,
            })
            .collect(),
        revocations_of: None,
        memberships_of: None,
        made_on: Some((node.device_id, node.user_id)),
        until: None,
    }
}

/// Whether `roles` names `id`.
fn holds<R>(roles: &[(Uuid, R)], id: Uuid) -> bool {
    roles.iter().any(|(r, _)| *r == id)
}

fn is_membership(entity: &Entity) -> bool {
    std::ptr::eq(entity, &model::WORKSPACE_MEMBERS)
        || std::ptr::eq(entity, &model::ORGANIZATION_MEMBERS)
}
