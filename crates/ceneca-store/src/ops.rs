//! Applying a [`WriteBatch`], written once for both engines over the small [`Exec`]
//! interface each engine implements on a connection (its open transaction for writes; the
//! engine-neutral reads of [`crate::reads`] use it too).

use std::collections::HashMap;
use std::sync::Arc;

use ceneca_domain::clock::{HybridClock, now};
use ceneca_domain::roles::OrgRole;
use ceneca_domain::schema::Field;
use ceneca_domain::{Entity, Record, Value, model};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::query::{Deleted, ListQuery};
use crate::sql::{self, Dialect, Sql};
use crate::write::{Actor, ChainWatcher, Replay, WriteBatch, WriteOp, operation};
use crate::{Result, StoreError, change_record};
use ceneca_domain::audit::{self, ChainHead};
use ceneca_domain::scope::ScopeFilter;

/// What an engine must do inside an open transaction.
pub(crate) trait Exec {
    fn dialect(&self) -> &dyn Dialect;
    /// Serializes audit appends until the transaction ends (a no-op where the transaction
    /// already holds the only write lock).
    async fn lock_audit_chain(&mut self) -> Result<()>;
    /// Runs a statement whose columns are `fields`, in order, and decodes its rows by the
    /// fields' kinds.
    async fn fetch_columns(&mut self, fields: &[&Field], sql: &Sql) -> Result<Vec<Record>>;
    /// Runs a statement that returns rows of `entity` (its columns in model order).
    async fn fetch(&mut self, entity: &Entity, sql: &Sql) -> Result<Vec<Record>> {
        let fields: Vec<&Field> = entity.columns().collect();
        self.fetch_columns(&fields, sql).await
    }
    /// Runs a statement; returns the number of rows it changed.
    async fn execute(&mut self, sql: &Sql) -> Result<u64>;
    /// Inserts complete rows the fastest way the engine knows.
    async fn insert_many(
        &mut self,
        entity: &Entity,
        records: &[Record],
        returning: bool,
    ) -> Result<Vec<Record>>;
}

async fn fetch_one<E: Exec>(exec: &mut E, entity: &Entity, sql: &Sql) -> Result<Record> {
    exec.fetch(entity, sql)
        .await?
        .into_iter()
        .next()
        .ok_or(StoreError::NotFound)
}

/// What a batch wrote, and the audit heads to announce once it has committed.
pub(crate) struct Applied {
    rows: Vec<Record>,
    heads: Vec<(Arc<dyn ChainWatcher>, ChainHead)>,
    /// Whether the batch appended to the change log.
    logged: bool,
}

impl Applied {
    /// Call after the commit: tells the chain's watchers of the new heads and the change
    /// feed's listeners of new changes, returns the rows.
    pub(crate) fn committed(self, changes: &tokio::sync::watch::Sender<u64>) -> Vec<Record> {
        for (watcher, head) in &self.heads {
            watcher.committed(head);
        }
        if self.logged {
            changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        self.rows
    }
}

/// Applies every operation of `batch` through `exec`; the caller commits on `Ok`, then
/// calls [`Applied::committed`].
pub(crate) async fn apply_batch<E: Exec>(
    exec: &mut E,
    clock: &HybridClock,
    batch: WriteBatch,
) -> Result<Applied> {
    let now = now();
    let actor = batch.actor;
    let replays: HashMap<Uuid, Replay> = batch.replays.iter().map(|r| (r.row, *r)).collect();
    let mut expected: Vec<(Uuid, i64)> = Vec::new();
    let mut heads = Vec::new();
    let mut out = Vec::new();
    let mut changes: Vec<Record> = Vec::new();
    // Ownership first: each takes its locks (a user's row, then organizations in id
    // order) before any write of the batch takes a lock of its own, and decides on the
    // memberships as committed.
    crate::ownership::check_batch(exec, &batch.ops).await?;
    let mut quotas = Vec::new();
    for op in &batch.ops {
        if let WriteOp::WithinQuota { of, quota } = op {
            crate::usage::lock_holder(exec, *of).await?;
            quotas.push((*of, *quota));
        }
    }
    let mut usage = crate::usage::UsageDeltas::default();
    for op in batch.ops {
        match op {
            WriteOp::Insert { entity, record } => {
                let rows = insert_rows(exec, entity, vec![record], now).await?;
                usage.count_live(entity, &rows, 1);
                log_created(&mut changes, entity, &rows, &replays, actor, clock, now);
                out.extend(rows);
            }
            WriteOp::InsertMany { entity, records } => {
                if records.is_empty() {
                    continue;
                }
                let rows = insert_rows(exec, entity, records, now).await?;
                usage.count_live(entity, &rows, 1);
                log_created(&mut changes, entity, &rows, &replays, actor, clock, now);
                out.extend(rows);
            }
            WriteOp::Upsert {
                entity,
                records,
                key,
                update,
            } => {
                let text = sql::upsert_text(exec.dialect(), entity, key, update);
                let sized = ceneca_domain::storage::sizing(entity).is_some();
                for record in records {
                    // A row this replaces is read first (locked), for the counters.
                    let before = if sized {
                        existing_by_key(exec, entity, key, &record).await?
                    } else {
                        None
                    };
                    let statement = sql::Sql {
                        text: text.clone(),
                        params: sql::insert_params(entity, &record),
                    };
                    let row = fetch_one(exec, entity, &statement).await?;
                    if let Some(before) = &before {
                        usage.resize(entity, before, &row);
                    }
                    if row.id() == record.id() {
                        usage.count_live(entity, std::slice::from_ref(&row), 1);
                        log(
                            &mut changes,
                            entity,
                            &row,
                            operation::CREATE,
                            &[],
                            actor,
                            clock,
                            now,
                        );
                    } else {
                        log(
                            &mut changes,
                            entity,
                            &row,
                            operation::UPDATE,
                            update,
                            actor,
                            clock,
                            now,
                        );
                    }
                    out.push(row);
                }
            }
            WriteOp::Update {
                entity,
                id,
                filter,
                mut set,
            } => {
                // A body written is stored plain, whatever it was stored as before (unless
                // the write packs it itself: a rewrap); the change log names only what the
                // caller changed.
                let changed = sql::changed_fields(&set);
                ceneca_domain::storage::store_plain(entity, &mut set);
                // A replayed edit may land on a deleted row (it lost to the delete, and a
                // later restore shows it, as on the replica that applied it first).
                let deleted = match actor.replay {
                    Some(replay) if replay.row == id => Deleted::Include,
                    _ => Deleted::Exclude,
                };
                // A role that changes is read first: a demotion is logged as a revoke. So
                // is a row whose size changes, for the storage counters.
                let role_changes =
                    std::ptr::eq(entity, &model::ORGANIZATION_MEMBERS) && set.get("role").is_some();
                let resizes =
                    ceneca_domain::storage::sizing(entity).is_some_and(|s| s.resizes(set.names()));
                let before = if role_changes || resizes {
                    // Locked until the commit: two edits of one row must not both measure
                    // it as it was.
                    let mut sql = sql::get(exec.dialect(), entity, id, &filter, deleted);
                    sql.text.push_str(exec.dialect().lock_rows());
                    Some(fetch_one(exec, entity, &sql).await?)
                } else {
                    None
                };
                let role_before = before.as_ref().filter(|_| role_changes).and_then(org_role);
                let sql = sql::update(exec.dialect(), entity, id, &filter, &set, deleted, now);
                let row = fetch_one(exec, entity, &sql).await?;
                if let Some(before) = before.as_ref().filter(|_| resizes) {
                    usage.resize(entity, before, &row);
                }
                log(
                    &mut changes,
                    entity,
                    &row,
                    operation::UPDATE,
                    &changed,
                    actor,
                    clock,
                    now,
                );
                if let Some(role) = demoted_to(role_before, &row)
                    && entity.changelog
                {
                    let cx = LogContext { actor, clock, now };
                    log_revocation(&mut changes, entity, &row, &cx, Some(role));
                }
                out.push(row);
            }
            WriteOp::SoftDelete { entity, id, filter } => {
                let sql = sql::soft_delete(exec.dialect(), entity, id, &filter, now);
                let row = fetch_one(exec, entity, &sql).await?;
                // What goes to the bin is no longer charged to its quota.
                usage.count(entity, std::slice::from_ref(&row), -1);
                for cascade in entity.cascade {
                    let sql = sql::cascade_soft_delete(exec.dialect(), cascade, id, now);
                    let rows = cascaded(exec, cascade, &sql).await?;
                    for (entity, row) in &rows {
                        usage.count(entity, std::slice::from_ref(row), -1);
                    }
                    log_cascade(&mut changes, &rows, operation::DELETE, actor, clock, now);
                }
                bump_counters(exec, entity, std::slice::from_ref(&row), -1, now).await?;
                log(
                    &mut changes,
                    entity,
                    &row,
                    operation::DELETE,
                    &["deleted_at"],
                    actor,
                    clock,
                    now,
                );
                out.push(row);
            }
            WriteOp::Restore { entity, id, filter } => {
                if std::ptr::eq(entity, &model::USERS) {
                    crate::erasure::refuse_if_erasing(exec, id).await?;
                }
                let sql = sql::get(exec.dialect(), entity, id, &filter, Deleted::Only);
                let deleted = fetch_one(exec, entity, &sql).await?;
                let deleted_at = deleted
                    .get("deleted_at")
                    .and_then(Value::as_time)
                    .ok_or(StoreError::NotFound)?;
                let sql = sql::restore(exec.dialect(), entity, id, &filter, deleted_at, now);
                let row = fetch_one(exec, entity, &sql).await?;
                usage.count(entity, std::slice::from_ref(&row), 1);
                for cascade in entity.cascade {
                    let sql = sql::cascade_restore(exec.dialect(), cascade, id, deleted_at, now);
                    let rows = cascaded(exec, cascade, &sql).await?;
                    for (entity, row) in &rows {
                        usage.count(entity, std::slice::from_ref(row), 1);
                    }
                    log_cascade(&mut changes, &rows, operation::RESTORE, actor, clock, now);
                }
                bump_counters(exec, entity, std::slice::from_ref(&row), 1, now).await?;
                log(
                    &mut changes,
                    entity,
                    &row,
                    operation::RESTORE,
                    &["deleted_at"],
                    actor,
                    clock,
                    now,
                );
                out.push(row);
            }
            WriteOp::Audit { record, chain } => {
                out.push(append_audit(exec, record, chain, &mut heads, now).await?);
            }
            WriteOp::Archive {
                threads,
                idle_before,
                mut audit,
                chain,
            } => {
                let archived = crate::retention::archive(exec, &threads, idle_before, now).await?;
                let threads = &model::THREADS;
                for row in &archived.threads {
                    let changed = &["is_archived", "archived_at"];
                    log(
                        &mut changes,
                        threads,
                        row,
                        operation::UPDATE,
                        changed,
                        actor,
                        clock,
                        now,
                    );
                }
                let attachments = &model::ATTACHMENTS;
                for (before, after) in &archived.files {
                    usage.resize(attachments, before, after);
                    let changed = &["content_removed_at"];
                    log(
                        &mut changes,
                        attachments,
                        after,
                        operation::UPDATE,
                        changed,
                        actor,
                        clock,
                        now,
                    );
                }
                let embeddings = &model::EMBEDDING_RECORDS;
                usage.count_live(embeddings, &archived.embeddings, -1);
                for row in &archived.embeddings {
                    log(
                        &mut changes,
                        embeddings,
                        row,
                        operation::DELETE,
                        &[],
                        actor,
                        clock,
                        now,
                    );
                }
                audit.set("details", Value::Json(archived.details(idle_before)));
                out.push(append_audit(exec, audit, chain, &mut heads, now).await?);
                // The files let go, as they were: the caller removes the blobs they name.
                out.extend(archived.files.into_iter().map(|(before, _)| before));
            }
            WriteOp::Purge {
                entity,
                ids,
                rule,
                mut audit,
                chain,
            } => {
                let purged = crate::purge::purge(exec, entity, &ids, rule).await?;
                if !purged.takes_workspaces() {
                    // What was still counted: a purged workspace's counters go with it.
                    usage.count_live(&model::ATTACHMENTS, &purged.attachments, -1);
                    usage.count_live(&model::MESSAGES, &purged.live_messages, -1);
                    // Rows purged live (an erase, a node told by its upstream): counted
                    // until now, and in their parent's counters.
                    let live: Vec<Record> = purged
                        .rows
                        .iter()
                        .filter(|r| r.get("deleted_at").is_none_or(Value::is_null))
                        .cloned()
                        .collect();
                    usage.count(entity, &live, -1);
                    bump_counters(exec, entity, &live, -1, now).await?;
                }
                for row in &purged.detached {
                    log(
                        &mut changes,
                        &model::ATTACHMENTS,
                        row,
                        operation::UPDATE,
                        &["message_id"],
                        actor,
                        clock,
                        now,
                    );
                }
                let cx = LogContext { actor, clock, now };
                if purged.takes_workspaces() {
                    for (members, row) in &purged.told {
                        log_revocation(&mut changes, members, row, &cx, None);
                    }
                } else {
                    for row in &purged.rows {
                        log(
                            &mut changes,
                            entity,
                            row,
                            operation::PURGE,
                            &[],
                            actor,
                            clock,
                            now,
                        );
                    }
                }
                audit.set("details", Value::Json(purged.details(rule)));
                out.push(append_audit(exec, audit, chain, &mut heads, now).await?);
                out.extend(purged.attachments);
            }
            WriteOp::EraseAccount {
                user,
                mut audit,
                chain,
            } => {
                let erased = crate::erasure::erase_account(exec, user).await?;
                for (entity, row) in &erased.handed_over {
                    log(
                        &mut changes,
                        entity,
                        row,
                        operation::UPDATE,
                        &["owner_user_id"],
                        actor,
                        clock,
                        now,
                    );
                }
                for (entity, column, row) in &erased.unlinked {
                    log(
                        &mut changes,
                        entity,
                        row,
                        operation::UPDATE,
                        std::slice::from_ref(column),
                        actor,
                        clock,
                        now,
                    );
                }
                for (entity, row) in &erased.gone {
                    usage.count_live(entity, std::slice::from_ref(row), -1);
                    log(
                        &mut changes,
                        entity,
                        row,
                        operation::DELETE,
                        &[],
                        actor,
                        clock,
                        now,
                    );
                }
                let rounds = match audit.get("details") {
                    Some(Value::Json(details)) => details.clone(),
                    _ => serde_json::Value::Null,
                };
                audit.set("details", Value::Json(erased.details(rounds)));
                out.push(append_audit(exec, audit, chain, &mut heads, now).await?);
            }
            WriteOp::Pack {
                bodies,
                written_before,
                mut audit,
                chain,
            } => {
                let packed = crate::compression::pack(exec, &bodies, &mut usage).await?;
                audit.set("details", Value::Json(packed.details(written_before)));
                out.push(append_audit(exec, audit, chain, &mut heads, now).await?);
            }
            WriteOp::SetThumbnail {
                attachment,
                source_key,
                state,
                made,
            } => {
                let rows = crate::thumbnails::record(
                    exec, attachment, source_key, state, made, &mut usage,
                )
                .await?;
                out.extend(rows);
            }
            WriteOp::UpdateAll {
                entity,
                filter,
                set,
            } => {
                let sql = sql::update_all(exec.dialect(), entity, &filter, &set, now);
                exec.execute(&sql).await?;
            }
            // Checked at the end, under the chain lock: see below.
            WriteOp::ExpectHistory { row, last_seq } => expected.push((row, last_seq)),
            // Checked before the writes: see above.
            WriteOp::OwnershipChange { .. }
            | WriteOp::AccountCloses { .. }
            | WriteOp::WithinQuota { .. } => {}
            WriteOp::Forget { entity, filter } => {
                let sql = sql::forget(exec.dialect(), entity, &filter);
                exec.execute(&sql).await?;
            }
            WriteOp::Delete { entity, id, filter } => {
                let sql = sql::delete(exec.dialect(), entity, id, &filter);
                let row = fetch_one(exec, entity, &sql).await?;
                usage.count_live(entity, std::slice::from_ref(&row), -1);
                log(
                    &mut changes,
                    entity,
                    &row,
                    operation::DELETE,
                    &[],
                    actor,
                    clock,
                    now,
                );
                out.push(row);
            }
        }
    }
    let grows = usage.grows();
    usage.flush(exec).await?;
    if grows {
        for (of, quota) in quotas {
            crate::usage::check_quota(exec, of, quota).await?;
        }
    }
    let logged = !changes.is_empty();
    if logged || !expected.is_empty() {
        // The cursor is `seq`, assigned at insert: taking the chain lock first (held until
        // commit) makes `seq` order commit order on PostgreSQL, so no change can appear
        // behind a cursor a client has already passed. Every audited write holds it
        // already; on SQLite the writer lock does the same.
        exec.lock_audit_chain().await?;
    }
    // A replayed change's rows must not have changed since it was merged. Checked here,
    // after the batch's own writes and under the chain lock, as every batch takes its
    // locks (rows first, the chain last): taking the chain lock first would invert that
    // order against a concurrent API write and deadlock on PostgreSQL. With the lock
    // held, every change logged by a commit before this one is visible; this batch's
    // own are not logged yet.
    for (row, last_seq) in expected {
        let sql = crate::changes::row_last_seq(exec.dialect(), row);
        let fields: Vec<&Field> = crate::changes::LAST_SEQ.iter().collect();
        let now_last = crate::changes::seq_answer(&exec.fetch_columns(&fields, &sql).await?);
        if now_last != last_seq {
            return Err(StoreError::Stale);
        }
    }
    if logged {
        exec.insert_many(&model::SYNC_EVENTS, &changes, false)
            .await?;
    }
    Ok(Applied {
        rows: out,
        heads,
        logged,
    })
}

/// Links `record` to the audit chain under its lock and inserts it; the new head is
/// announced once the batch commits.
async fn append_audit<E: Exec>(
    exec: &mut E,
    mut record: Record,
    chain: crate::write::AuditChain,
    heads: &mut Vec<(Arc<dyn ChainWatcher>, ChainHead)>,
    now: OffsetDateTime,
) -> Result<Record> {
    exec.lock_audit_chain().await?;
    let mut last = ListQuery::new(ScopeFilter::All, "sequence", true, 1);
    last.deleted = Deleted::Include;
    let sql = sql::list(exec.dialect(), &model::AUDIT_LOG, &last);
    let prev = exec
        .fetch(&model::AUDIT_LOG, &sql)
        .await?
        .first()
        .and_then(ChainHead::of)
        .unwrap_or_else(ChainHead::genesis);
    if let Some(watcher) = &chain.watcher {
        watcher.linking(&prev);
    }
    let head = audit::seal(&chain.key, &prev, &mut record);
    let row = insert_rows(exec, &model::AUDIT_LOG, vec![record], now)
        .await?
        .into_iter()
        .next()
        .ok_or(StoreError::NotFound)?;
    if let Some(watcher) = chain.watcher {
        heads.push((watcher, head));
    }
    Ok(row)
}

/// Inserts complete rows and keeps their parents' counters. Rows are read back only when
/// the database assigns a column: otherwise the rows written are exactly the records given.
async fn insert_rows<E: Exec>(
    exec: &mut E,
    entity: &Entity,
    records: Vec<Record>,
    now: OffsetDateTime,
) -> Result<Vec<Record>> {
    let rows = if sql::has_generated_columns(entity) {
        exec.insert_many(entity, &records, true).await?
    } else {
        exec.insert_many(entity, &records, false).await?;
        records
    };
    bump_counters(exec, entity, &rows, 1, now).await?;
    Ok(rows)
}

/// The row of `entity` with `record`'s values in the `key` columns, locked until the
/// commit; `None` when there is none.
async fn existing_by_key<E: Exec>(
    exec: &mut E,
    entity: &Entity,
    key: &[&'static str],
    record: &Record,
) -> Result<Option<Record>> {
    let mut query = ListQuery::new(ScopeFilter::All, "id", false, 1);
    query.deleted = Deleted::Include;
    for column in key {
        query
            .equals
            .push((column, record.get(column).cloned().unwrap_or(Value::Null)));
    }
    let mut sql = sql::list(exec.dialect(), entity, &query);
    sql.text.push_str(exec.dialect().lock_rows());
    Ok(exec.fetch(entity, &sql).await?.into_iter().next())
}

/// Runs a cascade; the rows it touched, with their entity (none for a table outside the
/// model, whose statement returns nothing).
async fn cascaded<E: Exec>(
    exec: &mut E,
    cascade: &ceneca_domain::schema::Cascade,
    sql: &Sql,
) -> Result<Vec<(&'static Entity, Record)>> {
    match model::by_table(cascade.table) {
        Some(entity) => Ok(exec
            .fetch(entity, sql)
            .await?
            .into_iter()
            .map(|row| (entity, row))
            .collect()),
        None => {
            exec.execute(sql).await?;
            Ok(Vec::new())
        }
    }
}

/// Logs each row a cascade deleted or restored as a change of its own (a replica that
/// missed the root's change, or holds rows the root's cascade would not reach there,
/// still ends in the same state).
fn log_cascade(
    changes: &mut Vec<Record>,
    rows: &[(&'static Entity, Record)],
    op: &str,
    actor: Actor,
    clock: &HybridClock,
    now: OffsetDateTime,
) {
    // The cascade is this node's own consequence: it never takes a replayed change's
    // identity, which belongs to the root row.
    let actor = Actor {
        replay: None,
        ..actor
    };
    for (entity, row) in rows {
        log(changes, entity, row, op, &["deleted_at"], actor, clock, now);
    }
}

#[allow(clippy::too_many_arguments)]
fn log_created(
    changes: &mut Vec<Record>,
    entity: &Entity,
    rows: &[Record],
    replays: &HashMap<Uuid, Replay>,
    actor: Actor,
    clock: &HybridClock,
    now: OffsetDateTime,
) {
    // A create lists no fields: every field of the row is new.
    for row in rows {
        let replay = row.id().and_then(|id| replays.get(&id)).copied();
        let actor = Actor {
            replay: replay.or(actor.replay),
            ..actor
        };
        log(
            changes,
            entity,
            row,
            operation::CREATE,
            &[],
            actor,
            clock,
            now,
        );
    }
}

/// What every change-log entry of a batch shares.
struct LogContext<'a> {
    actor: Actor,
    clock: &'a HybridClock,
    now: OffsetDateTime,
}

#[allow(clippy::too_many_arguments)]
fn log(
    changes: &mut Vec<Record>,
    entity: &Entity,
    row: &Record,
    op: &str,
    changed: &[&'static str],
    actor: Actor,
    clock: &HybridClock,
    now: OffsetDateTime,
) {
    if !entity.changelog {
        return;
    }
    let cx = LogContext { actor, clock, now };
    // A replayed change keeps its identity on the row it is about; anything else the
    // batch writes (an audit entry, a DLP finding) is this node's own change.
    let (change_id, hlc) = match actor.replay {
        Some(replay) if row.id() == Some(replay.row) => (replay.change_id, replay.hlc),
        _ => (ceneca_domain::new_id(), cx.clock.tick()),
    };
    let payload = payload(entity, row, op, changed);
    let mut record = change_record(entity, row, op, changed, cx.actor, hlc, cx.now);
    record.set("id", Value::Id(change_id));
    record.set("payload", Value::Json(payload));
    changes.push(record);
    let membership = std::ptr::eq(entity, &model::WORKSPACE_MEMBERS)
        || std::ptr::eq(entity, &model::ORGANIZATION_MEMBERS);
    if membership && op == operation::DELETE {
        log_revocation(changes, entity, row, &cx, None);
    }
}

/// The new values a change wrote, as stored (a vector as its bytes, `sync::logged`): every replicated field for a create, the
/// changed ones for an update, none for a delete or restore (the deletion is a register
/// of its own).
fn payload(entity: &Entity, row: &Record, op: &str, changed: &[&'static str]) -> serde_json::Value {
    use ceneca_domain::sync::{logged_value, replicated};
    let mut out = serde_json::Map::new();
    let mut put = |field: &Field| {
        if let Some(value) = row.get(field.name) {
            out.insert(field.name.to_owned(), logged_value(field.kind, value));
        }
    };
    match op {
        // A create writes every replicated field (`changed_fields` stays empty: the names
        // are the model's, and a write should not store them again per row).
        operation::CREATE => ceneca_domain::sync::replicated_fields(entity).for_each(&mut put),
        operation::UPDATE => {
            for name in changed {
                if let Some(field) = entity.field(name).filter(|f| replicated(entity, f)) {
                    put(field);
                }
            }
        }
        _ => {}
    }
    serde_json::Value::Object(out)
}

fn org_role(row: &Record) -> Option<OrgRole> {
    OrgRole::parse(row.get("role")?.as_str()?)
}

/// The role an organization membership was just lowered to, when it administered the
/// organization before (`before`) and no longer does: owners and administrators read
/// every workspace of it, other members only their own, so the change takes workspaces
/// away like a removal.
fn demoted_to(before: Option<OrgRole>, row: &Record) -> Option<OrgRole> {
    let after = org_role(row)?;
    (before? >= OrgRole::Admin && after < OrgRole::Admin).then_some(after)
}

/// Removing a member is logged once more, for the member: an entry in their own scope
/// that tells their devices to drop what they hold of the workspace (or organization)
/// and to learn again what they may still read. A demotion (`demoted_to`) is logged the
/// same way with the new role as its payload: the devices keep the membership and drop
/// the workspaces it no longer opens.
fn log_revocation(
    changes: &mut Vec<Record>,
    entity: &Entity,
    row: &Record,
    cx: &LogContext<'_>,
    demoted_to: Option<OrgRole>,
) {
    let (target, column) = if std::ptr::eq(entity, &model::WORKSPACE_MEMBERS) {
        (&model::WORKSPACES, "workspace_id")
    } else {
        (&model::ORGANIZATIONS, "organization_id")
    };
    let (Some(place), Some(user)) = (row.id_of(column), row.id_of("user_id")) else {
        return;
    };
    let mut about = Record::with_capacity(1);
    about.set("id", Value::Id(place));
    let mut record = change_record(
        target,
        &about,
        operation::REVOKE,
        &[],
        cx.actor,
        cx.clock.tick(),
        cx.now,
    );
    record.set("scope_workspace_id", Value::Null);
    record.set("scope_organization_id", Value::Null);
    record.set("scope_user_id", Value::Id(user));
    let payload = match demoted_to {
        Some(role) => serde_json::json!({ "role": role.as_str() }),
        None => serde_json::json!({}),
    };
    record.set("payload", Value::Json(payload));
    changes.push(record);
}

/// Keeps parent counters (a thread's `message_count`, `last_message_at`) current: one
/// update per distinct parent, however many rows the batch touched.
async fn bump_counters<E: Exec>(
    exec: &mut E,
    entity: &Entity,
    rows: &[Record],
    sign: i64,
    now: OffsetDateTime,
) -> Result<()> {
    let Some(counter) = entity.counter else {
        return Ok(());
    };
    let mut per_parent: HashMap<Uuid, (i64, Option<OffsetDateTime>)> = HashMap::new();
    let mut order = Vec::new();
    for row in rows {
        let Some(parent) = row.id_of(counter.field) else {
            continue;
        };
        let created = row.get("created_at").and_then(Value::as_time);
        let entry = per_parent.entry(parent).or_insert_with(|| {
            order.push(parent);
            (0, None)
        });
        entry.0 += sign;
        if sign > 0 {
            entry.1 = entry.1.max(created);
        }
    }
    for parent in order {
        let (delta, touch) = per_parent[&parent];
        let sql = sql::bump_counter(exec.dialect(), &counter, parent, delta, touch, now);
        exec.execute(&sql).await?;
    }
    Ok(())
}

/// Drives a future that never waits (SQLite's [`Exec`] does all work synchronously) to
/// completion on the current thread.
pub(crate) fn run_ready<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("synchronous executors never return Pending"),
    }
}
