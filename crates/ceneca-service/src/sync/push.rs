//! Changes a device made, applied as its user: each through the same validation,
//! authorization, tenant scope, DLP, screening and audit as an API write, after the merge
//! decided which of its fields win (`ceneca_domain::sync::merge`).

use std::collections::{HashMap, HashSet};

use ceneca_domain::clock::HybridClock;
use ceneca_domain::credential::Credential;
use ceneca_domain::error::push_path_key;
use ceneca_domain::output::value_to_json;
use ceneca_domain::scope::{Access, ScopeFilter};
use ceneca_domain::sync::{
    Conflict, ConflictKind, Decision, Operation, RowClocks, Stamp, decide, entity_logged_as,
    entity_named, pushable, refuse_future, replicated, replicated_fields,
};
use ceneca_domain::validate::{Mode, parse_object, parse_time};
use ceneca_domain::{Entity, Record, Value, model};
use ceneca_store::{Deleted, Replay, WriteBatch, WriteOp};
use ceneca_wire::sync::{
    ChangeOperation, MAX_PUSH, PushOutcome, PushRequest, PushResponse, PushResult, PushedChange,
};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::caller::Replaying;
use crate::error::{Result, ServiceError};
use crate::resources::ParentRef;
use crate::{Caller, Services};

impl Services {
    /// Applies a device's changes in the order sent; answers one result per change.
    /// Idempotent by change id: a change already applied is recognised by the clocks the
    /// change log keeps, so a retried batch applies once and answers alike.
    pub async fn push(&self, caller: &Caller, request: &PushRequest) -> Result<PushResponse> {
        self.require_sync()?;
        if request.changes.len() > MAX_PUSH {
            return Err(ServiceError::invalid(
                "changes",
                format!("at most {MAX_PUSH} changes per push"),
            ));
        }
        self.check_pushing_device(caller, request.device_id).await?;
        let mut ids: Vec<Uuid> = request.changes.iter().map(|c| c.entity_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let (mut clocks, mut logged) = self.row_clocks(ids).await?;
        let caller = Caller {
            device_id: Some(request.device_id),
            ..caller.clone()
        };
        self.note_device_seen(&caller).await?;
        let clock = self.store.clock();
        let mut results: Vec<Option<PushResult>> = vec![None; request.changes.len()];
        let mut group = InsertGroup::default();
        for (i, change) in request.changes.iter().enumerate() {
            let key = group_key(change, &clocks, &logged);
            if !group.inserts.is_empty()
                && (key != group.key || group.inserts.len() >= self.config.max_batch_items)
            {
                self.flush(
                    &caller,
                    &mut group,
                    request,
                    &mut clocks,
                    &mut logged,
                    &clock,
                    &mut results,
                )
                .await?;
            }
            match self
                .push_merged(
                    &caller,
                    change,
                    &mut clocks,
                    &mut logged,
                    &clock,
                    key.is_some(),
                )
                .await
            {
                Ok(Step::Done(result)) => results[i] = Some(result),
                Ok(Step::Insert(insert)) => {
                    group.key = key;
                    group.inserts.push((i, insert));
                }
                Err(e) => results[i] = Some(refused(change.change_id, e)?),
            }
        }
        self.flush(
            &caller,
            &mut group,
            request,
            &mut clocks,
            &mut logged,
            &clock,
            &mut results,
        )
        .await?;
        let results = results
            .into_iter()
            .map(|r| r.ok_or_else(|| ServiceError::Internal("a change without a result".into())))
            .collect::<Result<_>>()?;
        Ok(PushResponse { results })
    }

    /// Writes a group of new rows in one transaction (one validation, one audit entry),
    /// each under its change's identity; answers them `applied`. When the group fails as
    /// a whole (one of them is invalid, a unique key clashes), its changes are applied one
    /// by one instead, so each gets its own answer.
    #[allow(clippy::too_many_arguments)]
    async fn flush(
        &self,
        caller: &Caller,
        group: &mut InsertGroup,
        request: &PushRequest,
        clocks: &mut RowHistories,
        logged: &mut Logged,
        clock: &HybridClock,
        results: &mut [Option<PushResult>],
    ) -> Result<()> {
        let inserts = std::mem::take(&mut group.inserts);
        let Some((_, first)) = inserts.first() else {
            return Ok(());
        };
        let (entity, parent) = (first.entity, group.key.and_then(|(_, p)| p));
        let items = inserts
            .iter()
            .map(|(_, insert)| (insert.replaying(), &insert.values))
            .collect();
        match self.create_replayed(caller, entity, parent, items).await {
            Ok(()) => {
                for (i, insert) in inserts {
                    let fields: Vec<&str> = insert.fields.iter().map(String::as_str).collect();
                    clocks
                        .entry((entity.name.to_owned(), insert.entity_id))
                        .or_default()
                        .absorb(Operation::Create, insert.stamp, &fields);
                    logged.insert((insert.entity_id, insert.stamp.change));
                    results[i] = Some(result(insert.stamp.change, PushOutcome::Applied, None));
                }
            }
            Err(_) => {
                for (i, _) in inserts {
                    let change = &request.changes[i];
                    results[i] = Some(
                        match self
                            .push_merged(caller, change, clocks, logged, clock, false)
                            .await
                        {
                            Ok(Step::Done(result)) => result,
                            Ok(Step::Insert(_)) => {
                                return Err(ServiceError::Internal(
                                    "a change grouped again".into(),
                                ));
                            }
                            Err(e) => refused(change.change_id, e)?,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// A device token may name only its own device; any other caller only a live device
    /// of their own. Anything else is a forged device id.
    async fn check_pushing_device(&self, caller: &Caller, device_id: Uuid) -> Result<()> {
        let refuse = || {
            ServiceError::Forbidden(
                "device_id does not name a registered device of yours: changes are pushed \
                 from an enrolled device"
                    .into(),
            )
        };
        if matches!(caller.credential, Credential::ApiToken { .. }) {
            return Err(ServiceError::Forbidden(
                "an API token reaches one workspace's content; changes are pushed by a \
                 device (its device token) or a log-in session"
                    .into(),
            ));
        }
        if let Some(own) = caller.device_id {
            return if own == device_id {
                Ok(())
            } else {
                Err(refuse())
            };
        }
        let device = self
            .store
            .get(
                &model::DEVICES,
                device_id,
                caller.filter(&model::DEVICES, Access::Read),
                Deleted::Exclude,
            )
            .await?;
        match device {
            Some(row)
                if row.id_of("user_id") == Some(caller.user_id)
                    && row.get("revoked_at").is_none_or(Value::is_null) =>
            {
                Ok(())
            }
            _ => Err(refuse()),
        }
    }

    /// The field clocks of these rows, folded from their change-log entries, per
    /// `(entity, id)` (ids are chosen by devices, so the entity is part of the key); and
    /// every `(row, change id)` logged for them: a change whose fields have all been
    /// overwritten since leaves no stamp in its row's registers, but its id is there, so
    /// its retry is still recognised; and where each row's history ends, which a write
    /// merged against it insists on.
    pub(super) async fn row_clocks(&self, ids: Vec<Uuid>) -> Result<(RowHistories, Logged)> {
        let mut out: RowHistories = HashMap::new();
        let mut logged = Logged::default();
        for row in self.store.change_history(ids).await? {
            let (Some(change), Some(id)) = (row.id(), row.id_of("entity_id")) else {
                continue;
            };
            logged.insert((id, change));
            let seq = row.get("seq").and_then(Value::as_int).unwrap_or_default();
            let end = logged.ends.entry(id).or_default();
            *end = (*end).max(seq);
            let text = |n: &str| row.get(n).and_then(Value::as_str).unwrap_or_default();
            let Some(operation) = Operation::parse(text("operation")) else {
                continue;
            };
            let hlc = row.get("hlc").and_then(Value::as_int).unwrap_or_default() as u64;
            // A create wrote every replicated field and every secret (whose register is
            // its ciphertext column's); an update, those it lists.
            let fields: Vec<&str> = match (operation, row.get("changed_fields")) {
                (Operation::Create, _) => entity_logged_as(text("entity_type"))
                    .map(|e| {
                        replicated_fields(e)
                            .map(|f| f.name)
                            .chain(ceneca_domain::sync::secrets(e).map(|(_, column)| column))
                            .collect()
                    })
                    .unwrap_or_default(),
                (_, Some(Value::Json(Json::Array(items)))) => {
                    items.iter().filter_map(Json::as_str).collect()
                }
                _ => Vec::new(),
            };
            out.entry((text("entity_type").to_owned(), id))
                .or_default()
                .absorb(operation, Stamp { hlc, change }, &fields);
        }
        Ok((out, logged))
    }

    /// [`Self::push_one`], decided again on what the row holds now when another write
    /// reached it between the merge and the write.
    async fn push_merged(
        &self,
        caller: &Caller,
        change: &PushedChange,
        clocks: &mut RowHistories,
        logged: &mut Logged,
        clock: &HybridClock,
        may_group: bool,
    ) -> Result<Step> {
        let mut attempt = 0;
        loop {
            match self
                .push_one(caller, change, clocks, logged, clock, may_group)
                .await
            {
                Err(ServiceError::Stale) if attempt < STALE_RETRIES => {
                    attempt += 1;
                    self.reread_history(change.entity_id, clocks, logged)
                        .await?;
                }
                other => return other,
            }
        }
    }

    /// Checks one change and decides what it does; writes it, or — when `may_group` and
    /// it only creates a new row — hands it back to be written with others.
    async fn push_one(
        &self,
        caller: &Caller,
        change: &PushedChange,
        clocks: &mut RowHistories,
        logged: &mut Logged,
        clock: &HybridClock,
        may_group: bool,
    ) -> Result<Step> {
        let entity = entity_named(&change.entity)
            .filter(|e| pushable(e))
            .ok_or_else(|| {
                ServiceError::invalid(
                    "entity",
                    "cannot be pushed: devices push workspace content (projects, documents, \
                     threads, messages, ...); accounts, workspaces and who has access change \
                     on the upstream",
                )
            })?;
        caller.require_reach(entity)?;
        let operation = match change.operation {
            ChangeOperation::Create => Operation::Create,
            ChangeOperation::Update => Operation::Update,
            ChangeOperation::Delete => Operation::Delete,
            ChangeOperation::Restore => Operation::Restore,
            ChangeOperation::Revoke | ChangeOperation::Purge => {
                return Err(ServiceError::invalid(
                    "operation",
                    "revoke and purge are sent by servers, never pushed",
                ));
            }
        };
        for (name, id) in [
            ("change_id", change.change_id),
            ("entity_id", change.entity_id),
        ] {
            if id.get_version_num() != 7 {
                return Err(ServiceError::invalid(
                    name,
                    "must be a UUIDv7 (time-ordered, made where the change was)",
                ));
            }
        }
        let hlc = parse_hlc(&change.hlc)?;
        let max_ahead = self.config.sync_max_clock_ahead;
        if let Err(ahead) = refuse_future(
            hlc,
            HybridClock::physical_now(),
            max_ahead.as_millis() as u64,
        ) {
            return Err(ServiceError::invalid(
                "hlc",
                format!(
                    "is {ahead} ms ahead of this server's clock (at most {} s allowed): the \
                     device's clock is wrong",
                    max_ahead.as_secs()
                ),
            ));
        }
        let (values, created_at) = split_values(entity, operation, &change.values)?;
        let key = (entity.name.to_owned(), change.entity_id);
        let row_clocks = clocks.entry(key).or_default();
        // Whose row: one that exists must be readable by the caller, whatever it is.
        if row_clocks.exists {
            self.store
                .get(
                    entity,
                    change.entity_id,
                    caller.filter(entity, Access::Read),
                    Deleted::Include,
                )
                .await?
                .ok_or(ServiceError::NotFound(entity.name))?;
        } else if operation != Operation::Create {
            return Err(ServiceError::NotFound(entity.name));
        }
        let pushed = Pushed {
            change,
            entity,
            stamp: Stamp {
                hlc,
                change: change.change_id,
            },
            values,
            created_at,
        };
        let fields: Vec<&str> = pushed.values.keys().map(String::as_str).collect();
        let decision = decide(row_clocks, operation, pushed.stamp, &fields);
        if decision.duplicate || logged.contains(&(change.entity_id, change.change_id)) {
            // A retry: answered as the first time (what it wrote is logged; what it lost,
            // if anything, is recorded under an id derived from it).
            return Ok(Step::Done(self.answer_again(change.change_id).await?));
        }
        // Past a retry, the row must be one the caller may change, whatever the merge
        // decides (a change that loses every field is recorded, and recording is
        // writing). A row they can read but not change is 403; any other, not found.
        let current = if row_clocks.exists {
            let access = match operation {
                Operation::Delete | Operation::Restore => Access::Delete,
                _ => Access::Write,
            };
            let id = change.entity_id;
            match self
                .store
                .get(entity, id, caller.filter(entity, access), Deleted::Include)
                .await?
            {
                Some(row) => Some(row),
                None => {
                    let readable = self
                        .store
                        .get(
                            entity,
                            id,
                            caller.filter(entity, Access::Read),
                            Deleted::Include,
                        )
                        .await?
                        .is_some();
                    return Err(if readable {
                        ServiceError::Forbidden(format!(
                            "your role cannot change this {}",
                            entity.name
                        ))
                    } else {
                        ServiceError::NotFound(entity.name)
                    });
                }
            }
        } else if operation != Operation::Create {
            return Err(ServiceError::NotFound(entity.name));
        } else {
            None
        };
        if may_group
            && current.is_none()
            && decision.insert
            && decision.set_deleted.is_none()
            && decision.conflicts.is_empty()
        {
            // A new row and nothing else: validated with its group, as a batch create.
            clock.observe(hlc);
            return Ok(Step::Insert(GroupedInsert {
                entity,
                entity_id: change.entity_id,
                stamp: pushed.stamp,
                created_at: pushed.created_at,
                values: pushed.values_of(&decision.apply),
                fields: pushed.values.keys().cloned().collect(),
            }));
        }
        // The values must be what an API write of this kind accepts, whether they win or
        // not: a losing value is kept in the conflict record.
        let mode = match (operation, &current) {
            (Operation::Create, None) => Mode::Create,
            _ => Mode::Patch,
        };
        self.screen("values", &pushed.values).await?;
        let parsed = parse_object(entity, &pushed.values, mode, caller.system_admin, &[])
            .map_err(ServiceError::Validation)?;
        clock.observe(hlc);
        match self
            .write_decision(
                caller,
                &pushed,
                &decision,
                row_clocks,
                logged.end_of(change.entity_id),
            )
            .await
        {
            Ok(()) => {}
            Err(ServiceError::Conflict { .. }) if self.change_id_taken(change).await? => {
                return Err(ServiceError::invalid(
                    "change_id",
                    "is the id of another change: each change needs an id of its own",
                ));
            }
            Err(ServiceError::Conflict { .. })
                if decision.insert
                    && self
                        .store
                        .get(entity, change.entity_id, ScopeFilter::All, Deleted::Include)
                        .await?
                        .is_some() =>
            {
                // The row was created meanwhile (the same change, retried in parallel;
                // another device's): decide again on what it holds now.
                return Err(ServiceError::Stale);
            }
            Err(ServiceError::Conflict { .. }) if decision.insert && !entity.unique.is_empty() => {
                // Another row holds the unique key: the row the upstream has keeps it,
                // and the change is recorded as lost.
                let (winner, workspace) = self.unique_key_holder(&pushed).await?;
                let lost = Decision {
                    conflicts: vec![Conflict {
                        kind: ConflictKind::UniqueKey,
                        fields: pushed.values.keys().cloned().collect(),
                        winner,
                    }],
                    ..Decision::default()
                };
                let id = self
                    .record_conflicts(caller, &pushed, &lost, (workspace, None), parsed)
                    .await?;
                return Ok(Step::Done(result(
                    change.change_id,
                    PushOutcome::Conflict,
                    id,
                )));
            }
            Err(e) => return Err(e),
        }
        row_clocks.absorb(operation, pushed.stamp, &fields);
        logged.insert((change.entity_id, change.change_id));
        let conflict_id = if decision.conflicts.is_empty() {
            None
        } else {
            let workspace = self
                .store
                .get(
                    entity,
                    change.entity_id,
                    caller.filter(entity, Access::Read),
                    Deleted::Include,
                )
                .await?
                .and_then(|row| row.id_of("workspace_id"));
            self.record_conflicts(
                caller,
                &pushed,
                &decision,
                (workspace, current.as_ref()),
                parsed,
            )
            .await?
        };
        let outcome = match (&conflict_id, decision.writes()) {
            (None, _) => PushOutcome::Applied,
            (Some(_), true)
                if decision
                    .conflicts
                    .iter()
                    .all(|c| c.kind == ConflictKind::ConcurrentEdit) =>
            {
                PushOutcome::Merged
            }
            (Some(_), _) => PushOutcome::Conflict,
        };
        Ok(Step::Done(result(change.change_id, outcome, conflict_id)))
    }

    /// Whether the change's id is already the id of a logged change of another row (a
    /// write that failed on it failed for that).
    async fn change_id_taken(&self, change: &PushedChange) -> Result<bool> {
        Ok(self
            .store
            .lookup_unscoped(&model::SYNC_EVENTS, "id", Value::Id(change.change_id))
            .await?
            .is_some_and(|row| row.id_of("entity_id") != Some(change.entity_id)))
    }

    /// The answer to a change applied before: `merged`, with its conflict, when it lost
    /// some fields then; `applied` otherwise.
    async fn answer_again(&self, change_id: Uuid) -> Result<PushResult> {
        for kind in [ConflictKind::ConcurrentEdit, ConflictKind::EditLostToDelete] {
            let id = conflict_id(change_id, kind);
            let recorded = self
                .store
                .get(
                    &model::SYNC_CONFLICTS,
                    id,
                    ScopeFilter::All,
                    Deleted::Include,
                )
                .await?;
            if recorded.is_some() {
                let outcome = match kind {
                    ConflictKind::ConcurrentEdit => PushOutcome::Merged,
                    _ => PushOutcome::Conflict,
                };
                return Ok(result(change_id, outcome, Some(id)));
            }
        }
        Ok(result(change_id, PushOutcome::Applied, None))
    }

    /// Writes what the decision says, as the change's author, through the API's paths.
    async fn write_decision(
        &self,
        caller: &Caller,
        pushed: &Pushed<'_>,
        decision: &Decision,
        clocks: &RowClocks,
        history_ends_at: i64,
    ) -> Result<()> {
        let (entity, id) = (pushed.entity, pushed.change.entity_id);
        let winners = pushed.values_of(&decision.apply);
        // The first write insists nothing came since the merge; what follows it in this
        // change (its delete) follows its own write.
        let mut first = Some(history_ends_at);
        let mut as_change = |stamp| pushed.as_change(caller, stamp, first.take());
        if decision.insert {
            self.create(
                &as_change(pushed.stamp),
                entity,
                &Json::Object(winners),
                None,
            )
            .await?;
            if decision.set_deleted == Some(true)
                && let Some((true, deleted)) = clocks.deletion
            {
                // Its delete came first: the row is born a tombstone, under the delete's
                // own identity.
                self.delete(&as_change(deleted), entity, id).await?;
            }
            return Ok(());
        }
        if !winners.is_empty() {
            self.update(&as_change(pushed.stamp), entity, id, &Json::Object(winners))
                .await?;
        }
        match decision.set_deleted {
            Some(true) => {
                self.delete(&as_change(pushed.stamp), entity, id).await?;
            }
            Some(false) => {
                self.restore(&as_change(pushed.stamp), entity, id).await?;
            }
            None => {}
        }
        Ok(())
    }

    /// The row holding the unique key a pushed create wanted, and the stamp of its
    /// creation (what won), with its workspace.
    async fn unique_key_holder(&self, pushed: &Pushed<'_>) -> Result<(Stamp, Option<Uuid>)> {
        let entity = pushed.entity;
        for key in entity.unique {
            let mut query = ceneca_store::ListQuery::new(ScopeFilter::All, "id", false, 1);
            query.deleted = Deleted::Include;
            let mut complete = true;
            for column in *key {
                match pushed.values.get(*column).and_then(|v| {
                    entity
                        .field(column)
                        .and_then(|f| ceneca_domain::validate::parse_value(f, v).ok())
                }) {
                    Some(value) => query.equals.push((column, value)),
                    None => complete = false,
                }
            }
            if !complete {
                continue;
            }
            if let Some(row) = self.store.list(entity, query).await?.into_iter().next()
                && let Some(holder) = row.id()
            {
                let (clocks, _) = self.row_clocks(vec![holder]).await?;
                let created = clocks
                    .get(&(entity.name.to_owned(), holder))
                    .and_then(|c| c.fields.values().min().copied())
                    .unwrap_or(Stamp {
                        hlc: 0,
                        change: holder,
                    });
                return Ok((created, row.id_of("workspace_id")));
            }
        }
        Err(ServiceError::conflict(format!(
            "the {} clashes with an existing row",
            entity.name
        )))
    }

    /// Records what lost; answers the first conflict's id. A conflict's id is derived
    /// from the change and the kind, so a retried change records nothing twice.
    ///
    /// What lost is kept as a write would keep it: validated (`parsed`), through the
    /// data-loss policy (refused, redacted or flagged) and with content sealed at rest.
    async fn record_conflicts(
        &self,
        caller: &Caller,
        pushed: &Pushed<'_>,
        decision: &Decision,
        (workspace, row): (Option<Uuid>, Option<&Record>),
        parsed: Record,
    ) -> Result<Option<Uuid>> {
        let (entity, change, stamp) = (pushed.entity, pushed.change, pushed.stamp);
        let mut first = None;
        for conflict in &decision.conflicts {
            let id = conflict_id(change.change_id, conflict.kind);
            first.get_or_insert(id);
            let exists = self
                .store
                .get(
                    &model::SYNC_CONFLICTS,
                    id,
                    ScopeFilter::All,
                    Deleted::Include,
                )
                .await?
                .is_some();
            if exists {
                continue;
            }
            let mut lost = Record::with_capacity(conflict.fields.len() + 1);
            for (name, value) in parsed.iter() {
                if conflict.fields.iter().any(|f| f == name) {
                    lost.set(name, value.clone());
                }
            }
            let mut side_ops = Vec::new();
            let names: Vec<&str> = lost.names().collect();
            self.apply_dlp(
                caller,
                entity,
                names.into_iter(),
                &mut lost,
                row,
                &mut side_ops,
            )
            .await?;
            self.seal_content(entity, change.entity_id, workspace, &mut lost);
            let lost_values: Map<String, Json> = lost
                .iter()
                .filter_map(|(name, value)| {
                    let field = entity.field(name)?;
                    Some((name.to_owned(), value_to_json(field.kind, value)))
                })
                .collect();
            let now = ceneca_domain::clock::now();
            let mut record = Record::with_capacity(15);
            record.set("id", Value::Id(id));
            record.set("created_at", Value::Time(now));
            record.set("updated_at", Value::Time(now));
            record.set("user_id", Value::Id(caller.user_id));
            record.set("device_id", caller.device_id.map_or(Value::Null, Value::Id));
            record.set("workspace_id", workspace.map_or(Value::Null, Value::Id));
            record.set("entity_type", Value::Text(entity.table.to_owned()));
            record.set("entity_id", Value::Id(change.entity_id));
            record.set("kind", Value::Text(conflict.kind.as_str().to_owned()));
            record.set("change_id", Value::Id(change.change_id));
            record.set("hlc", Value::Int(stamp.hlc as i64));
            record.set("lost_values", Value::Json(Json::Object(lost_values)));
            record.set("winner_change_id", Value::Id(conflict.winner.change));
            record.set("winner_hlc", Value::Int(conflict.winner.hlc as i64));
            let event = crate::audit::AuditEvent::new("sync.conflict", "success")
                .by(caller)
                .on(entity.table, Some(change.entity_id))
                .details(serde_json::json!({
                    "conflict_id": id.to_string(),
                    "kind": conflict.kind.as_str(),
                    "fields": conflict.fields,
                }));
            let mut batch = WriteBatch::new(caller.actor()).push(WriteOp::Insert {
                entity: &model::SYNC_CONFLICTS,
                record,
            });
            batch.ops.extend(side_ops);
            let batch = batch.push(self.audit_op(event));
            self.store.apply(batch).await?;
        }
        Ok(first)
    }
}

/// What checking one pushed change came to.
enum Step {
    Done(PushResult),
    /// A new row to create with the others of its group.
    Insert(GroupedInsert),
}

/// A pushed create of a new row, checked and merged (every field wins), waiting for the
/// rest of its group.
struct GroupedInsert {
    entity: &'static Entity,
    entity_id: Uuid,
    stamp: Stamp,
    created_at: Option<time::OffsetDateTime>,
    /// The values to write.
    values: Map<String, Json>,
    /// Every field the change carried (the clocks it sets).
    fields: Vec<String>,
}

impl GroupedInsert {
    fn replaying(&self) -> Replaying {
        Replaying {
            stamp: Replay {
                row: self.entity_id,
                change_id: self.stamp.change,
                hlc: self.stamp.hlc,
            },
            created_at: self.created_at,
            history_ends_at: None,
        }
    }
}

/// Consecutive creates of new rows of one entity under one parent (a thread's new
/// messages), written together.
#[derive(Default)]
struct InsertGroup {
    key: Option<GroupKey>,
    inserts: Vec<(usize, GroupedInsert)>,
}

/// An entity (by table) and the parent its rows are created under, when it has one.
type GroupKey = (&'static str, Option<ParentRef>);

/// The group a change may join: a create of a row the upstream does not hold, of an
/// entity devices push, keyed by the parent its values name. `None`: it is written alone.
fn group_key(change: &PushedChange, clocks: &RowHistories, logged: &Logged) -> Option<GroupKey> {
    if change.operation != ChangeOperation::Create
        || logged.contains(&(change.entity_id, change.change_id))
    {
        return None;
    }
    let entity = entity_named(&change.entity).filter(|e| pushable(e))?;
    if clocks
        .get(&(entity.name.to_owned(), change.entity_id))
        .is_some_and(|c| c.exists || c.deletion.is_some())
    {
        return None;
    }
    let parent = match entity.parent {
        None => None,
        Some(p) => Some(ParentRef {
            field: p.field,
            id: change
                .values
                .get(p.field)
                .and_then(Json::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())?,
        }),
    };
    Some((entity.table, parent))
}

/// Each row's field clocks, by `(entity name as the log keeps it, id)`.
pub(super) type RowHistories = HashMap<(String, Uuid), RowClocks>;

/// What the change log holds of some rows besides their clocks: every `(row, change
/// id)`, and the `seq` its last change of each row has.
#[derive(Debug, Default)]
pub(super) struct Logged {
    changes: HashSet<(Uuid, Uuid)>,
    ends: HashMap<Uuid, i64>,
}

impl Logged {
    pub(super) fn contains(&self, change: &(Uuid, Uuid)) -> bool {
        self.changes.contains(change)
    }
    pub(super) fn insert(&mut self, change: (Uuid, Uuid)) {
        self.changes.insert(change);
    }
    /// Where `row`'s history ended when it was read (0: it had none).
    pub(super) fn end_of(&self, row: Uuid) -> i64 {
        self.ends.get(&row).copied().unwrap_or(0)
    }
}

impl Services {
    /// Reads `row`'s history again (another write came in since it was read): its clocks
    /// and log entries replace what `clocks` and `logged` held of it.
    pub(super) async fn reread_history(
        &self,
        row: Uuid,
        clocks: &mut RowHistories,
        logged: &mut Logged,
    ) -> Result<()> {
        let (fresh, fresh_logged) = self.row_clocks(vec![row]).await?;
        clocks.retain(|(_, id), _| *id != row);
        clocks.extend(fresh);
        logged.changes.retain(|(id, _)| *id != row);
        logged.changes.extend(fresh_logged.changes);
        logged.ends.remove(&row);
        logged.ends.extend(fresh_logged.ends);
        Ok(())
    }
}

/// How often a change merged against a row that changed meanwhile is decided again.
pub(super) const STALE_RETRIES: usize = 5;

/// One pushed change, checked: its entity, its stamp and the values it may write.
struct Pushed<'a> {
    change: &'a PushedChange,
    entity: &'static Entity,
    stamp: Stamp,
    values: Map<String, Json>,
    created_at: Option<time::OffsetDateTime>,
}

impl Pushed<'_> {
    /// The caller, acting as the change `stamp` names (this one, or its row's delete);
    /// its write insists the row's history still ends at `history_ends_at`.
    fn as_change(&self, caller: &Caller, stamp: Stamp, history_ends_at: Option<i64>) -> Caller {
        Caller {
            replaying: Some(Replaying {
                stamp: Replay {
                    row: self.change.entity_id,
                    change_id: stamp.change,
                    hlc: stamp.hlc,
                },
                created_at: self.created_at,
                history_ends_at,
            }),
            ..caller.clone()
        }
    }

    /// The values of these fields.
    fn values_of<'f>(&self, fields: impl IntoIterator<Item = &'f String>) -> Map<String, Json> {
        fields
            .into_iter()
            .filter_map(|f| self.values.get(f).map(|v| (f.clone(), v.clone())))
            .collect()
    }
}

/// Splits a change's values into the fields to merge and the creation time (a create's
/// own, kept so replicas order rows alike); refuses fields that do not travel.
fn split_values(
    entity: &Entity,
    operation: Operation,
    values: &Map<String, Json>,
) -> Result<(Map<String, Json>, Option<time::OffsetDateTime>)> {
    let mut fields = Map::new();
    let mut created_at = None;
    if matches!(operation, Operation::Delete | Operation::Restore) {
        if let Some(name) = values.keys().next() {
            return Err(ServiceError::invalid(
                &format!("values.{name}"),
                "a delete or restore carries no values",
            ));
        }
        return Ok((fields, None));
    }
    for (name, value) in values {
        if name == "created_at" {
            if operation != Operation::Create {
                return Err(ServiceError::invalid(
                    "values.created_at",
                    "is set once, by the change that creates the row",
                ));
            }
            created_at = Some(
                parse_time(value)
                    .map_err(|reason| ServiceError::invalid("values.created_at", reason))?,
            );
            continue;
        }
        match entity.field(name) {
            Some(field) if replicated(entity, field) => {
                fields.insert(name.clone(), value.clone());
            }
            _ => {
                let mut path = "values".to_owned();
                push_path_key(&mut path, name);
                return Err(ServiceError::invalid(
                    &path,
                    format!("is not a field a {} change carries", entity.name),
                ));
            }
        }
    }
    if operation == Operation::Update && fields.is_empty() {
        return Err(ServiceError::invalid(
            "values",
            "an update writes at least one field",
        ));
    }
    Ok((fields, created_at))
}

fn parse_hlc(text: &str) -> Result<u64> {
    Some(text)
        .filter(|t| !t.is_empty() && t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|h| *h > 0 && *h <= i64::MAX as u64)
        .ok_or_else(|| {
            ServiceError::invalid(
                "hlc",
                "must be a hybrid-logical-clock value as a decimal string",
            )
        })
}

fn conflict_id(change: Uuid, kind: ConflictKind) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"ceneca sync conflict\0")
        .chain_update(change.as_bytes())
        .chain_update(kind.as_str().as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

fn result(change_id: Uuid, outcome: PushOutcome, conflict_id: Option<Uuid>) -> PushResult {
    PushResult {
        change_id,
        outcome,
        conflict_id,
        reason: None,
        field: None,
    }
}

/// A change the service would not apply, answered as `refused` with the reason. Faults
/// of ours (a database error) fail the whole push instead: the device retries it.
fn refused(change_id: Uuid, error: ServiceError) -> Result<PushResult> {
    let (reason, field) = match error {
        ServiceError::Validation(e) => {
            let field = e.fields.keys().next().cloned();
            let reason = e
                .fields
                .iter()
                .map(|(f, r)| format!("{f}: {r}"))
                .collect::<Vec<_>>()
                .join("; ");
            (reason, field)
        }
        ServiceError::BadRequest { message, field } => (message, field),
        ServiceError::Forbidden(m) | ServiceError::NotAllowed(m) => (m, None),
        ServiceError::NotFound(what) => (
            format!("{what} not found (or not yours to change)"),
            Some("entity_id".to_owned()),
        ),
        ServiceError::Conflict { message, fields } => (message, fields.keys().next().cloned()),
        // Past the storage quota: this change is refused, the others get their answers
        // (a node must not retry the whole push for ever).
        e @ ServiceError::QuotaExceeded { .. } => (e.to_string(), None),
        // The row kept changing under it (other writers): this change alone is refused,
        // and the device sends it again (it is idempotent); the others get their answers.
        ServiceError::Stale => (
            "the row kept changing while this change was merged: send it again".to_owned(),
            Some("entity_id".to_owned()),
        ),
        other => return Err(other),
    };
    Ok(PushResult {
        change_id,
        outcome: PushOutcome::Refused,
        conflict_id: None,
        reason: Some(reason),
        field,
    })
}
