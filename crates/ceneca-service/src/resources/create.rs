//! Creating rows: one, or many under one parent in one transaction.

use ceneca_domain::output::View;
use ceneca_domain::validate::{Mode, fill_defaults, parse_object};
use ceneca_domain::{Entity, Record, ValidationError, Value, new_id};
use ceneca_store::{WriteBatch, WriteOp};
use serde_json::{Map, Value as Json};

use super::authorize::owner_columns;
use super::{ParentRef, action, object};
use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError, from_store};
use crate::rules::{self, Cx, Extras, rules_for};
use crate::{Caller, Services};

impl Services {
    /// Creates one row from a JSON object.
    pub async fn create(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        body: &Json,
        parent: Option<ParentRef>,
    ) -> Result<Json> {
        match self.create_one(caller, entity, body, parent).await {
            Err(e) => Err(self
                .audit_refusal(caller, action(entity, "create"), entity.table, None, e)
                .await),
            ok => ok,
        }
    }

    async fn create_one(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        body: &Json,
        parent: Option<ParentRef>,
    ) -> Result<Json> {
        let (record, extras) = self.prepare_create(caller, entity, body, parent).await?;
        self.commit_create(caller, entity, record, extras, None)
            .await
    }

    /// Everything a create checks, without writing: the caller may create here, the
    /// parent is theirs to see, and the body is a valid row. Answers the row and what
    /// goes with it; [`Self::commit_create`] writes them.
    pub(crate) async fn prepare_create(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        body: &Json,
        parent: Option<ParentRef>,
    ) -> Result<(Record, Extras)> {
        self.check_creatable(caller, entity)?;
        let parent_row = match parent {
            Some(p) => Some(self.visible_parent(caller, entity, p).await?),
            None => None,
        };
        let cx = Cx {
            svc: self,
            caller,
            entity,
        };
        let rewritten = rules_for(entity).resolve_input(&cx, object(body)?).await?;
        let body = rewritten.as_ref().unwrap_or(object(body)?);
        self.prepare_new(caller, entity, body, parent, parent_row.as_ref())
            .await
    }

    /// Writes a row [`Self::prepare_create`] made, with its audit entry (carrying
    /// `details` when given), and answers it as the API shows it.
    pub(crate) async fn commit_create(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        record: Record,
        extras: Extras,
        details: Option<Json>,
    ) -> Result<Json> {
        let mut event = AuditEvent::new(action(entity, "create"), "success")
            .by(caller)
            .on(entity.table, record.id());
        if let Some(details) = details {
            event = event.details(details);
        }
        // One row: checked before its write only (see `check_quota_of_rows`).
        self.check_quota_of_rows(entity, std::slice::from_ref(&record))
            .await?;
        let mut batch = caller
            .write_batch()
            .push(WriteOp::Insert { entity, record });
        batch.ops.extend(extras.ops);
        batch.ops.push(self.audit_op(event));
        let rows = self
            .store
            .apply(batch)
            .await
            .map_err(|e| from_store(entity.name, false, e))?;
        if std::ptr::eq(entity, &ceneca_domain::model::DEVICES) {
            // Registering a device issued its token (`rules/devices.rs`).
            self.metrics
                .session_created(crate::metrics::SessionKind::Device);
        }
        let row = rows
            .first()
            .ok_or_else(|| ServiceError::Internal("insert returned no row".into()))?;
        let mut json = self.present(entity, row, View::Detail)?;
        if let Some(out) = json.as_object_mut() {
            out.extend(extras.response);
        }
        Ok(json)
    }

    /// Creates many rows under one parent in one transaction: all or none. `body` is
    /// `{"items": [...]}`; errors name the item (`items[3].content`).
    pub async fn create_many(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        parent: ParentRef,
        body: &Json,
    ) -> Result<Vec<Json>> {
        match self.create_batch(caller, entity, parent, body).await {
            Err(e) => Err(self
                .audit_refusal(caller, action(entity, "create_many"), entity.table, None, e)
                .await),
            ok => ok,
        }
    }

    async fn create_batch(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        parent: ParentRef,
        body: &Json,
    ) -> Result<Vec<Json>> {
        caller.require_reach(entity)?;
        self.require_local_write(entity)?;
        let items = object(body)?
            .get("items")
            .and_then(Json::as_array)
            .ok_or_else(|| ServiceError::invalid("items", "must be an array of objects"))?;
        let max = self.config.max_batch_items;
        if items.is_empty() || items.len() > max {
            return Err(ServiceError::invalid(
                "items",
                format!("must hold between 1 and {max} items"),
            ));
        }
        let parent_row = self.visible_parent(caller, entity, parent).await?;
        let mut errors = ValidationError::new();
        let mut records = Vec::with_capacity(items.len());
        // Audit entries of DLP findings, written with the rows.
        let mut side_ops = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let prepared = match item.as_object() {
                Some(obj) => {
                    self.prepare_new(caller, entity, obj, Some(parent), Some(&parent_row))
                        .await
                }
                None => Err(ServiceError::invalid("body", "expected a JSON object")),
            };
            match prepared {
                Ok((record, extras)) => {
                    records.push(record);
                    side_ops.extend(extras.ops);
                }
                Err(ServiceError::Validation(e)) => {
                    for (field, reason) in e.fields {
                        errors.add(format!("items[{i}].{field}"), reason);
                    }
                }
                Err(other) => return Err(other),
            }
        }
        errors.into_result()?;
        let guards = self.check_quota_of_rows(entity, &records).await?;
        let count = records.len();
        let event = AuditEvent::new(action(entity, "create_many"), "success")
            .by(caller)
            .on(entity.table, None)
            .details(serde_json::json!({ "count": count, parent.field: parent.id.to_string() }));
        let mut batch =
            WriteBatch::new(caller.actor()).push(WriteOp::InsertMany { entity, records });
        batch.ops.extend(side_ops);
        batch.ops.extend(guards);
        let batch = batch.push(self.audit_op(event));
        let rows = self
            .store
            .apply(batch)
            .await
            .map_err(|e| from_store(entity.name, false, e))?;
        rows.iter()
            .take(count)
            .map(|r| self.present(entity, r, View::Detail))
            .collect()
    }

    /// Creates rows for changes made on another node (a device's pushed creates), in one
    /// transaction: each validated, authorized and completed as [`Self::create`] would, with
    /// the id and creation time its change gave it, logged under the change's identity;
    /// one audit entry for the group. All or none.
    pub(crate) async fn create_replayed(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        parent: Option<ParentRef>,
        items: Vec<(crate::caller::Replaying, &Map<String, Json>)>,
    ) -> Result<()> {
        self.check_creatable(caller, entity)?;
        let parent_row = match parent {
            Some(p) => Some(self.visible_parent(caller, entity, p).await?),
            None => None,
        };
        let mut records = Vec::with_capacity(items.len());
        let mut side_ops = Vec::new();
        let mut replays = Vec::with_capacity(items.len());
        let mut as_author = Caller {
            replaying: None,
            ..caller.clone()
        };
        for (replaying, object) in items {
            as_author.replaying = Some(replaying);
            let (record, extras) = self
                .prepare_new(&as_author, entity, object, parent, parent_row.as_ref())
                .await?;
            records.push(record);
            side_ops.extend(extras.ops);
            replays.push(replaying.stamp);
        }
        let guards = self.check_quota_of_rows(entity, &records).await?;
        // One row is audited as any create of it; a group as the batch it is.
        let event = match records.as_slice() {
            [one] => AuditEvent::new(action(entity, "create"), "success")
                .by(caller)
                .on(entity.table, one.id()),
            _ => AuditEvent::new(action(entity, "create_many"), "success")
                .by(caller)
                .on(entity.table, None)
                .details(serde_json::json!({
                    "count": records.len(),
                    "replayed": true,
                    "parent": parent.map(|p| p.id.to_string()),
                })),
        };
        let mut batch = WriteBatch::new(
            Caller {
                replaying: None,
                ..caller.clone()
            }
            .actor(),
        )
        .push(WriteOp::InsertMany { entity, records });
        batch.ops.extend(guards);
        batch.replays = replays;
        batch.ops.extend(side_ops);
        let batch = batch.push(self.audit_op(event));
        self.store
            .apply(batch)
            .await
            .map_err(|e| from_store(entity.name, false, e))?;
        Ok(())
    }

    /// Whether the caller may create rows of `entity` at all (its credential, this node,
    /// the API).
    fn check_creatable(&self, caller: &Caller, entity: &'static Entity) -> Result<()> {
        caller.require_reach(entity)?;
        self.require_local_write(entity)?;
        if !entity.api.create {
            return Err(ServiceError::NotAllowed(format!(
                "{}s cannot be created through the API",
                entity.name
            )));
        }
        Ok(())
    }

    /// Validates, derives, authorizes and completes one new row.
    async fn prepare_new(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        object: &Map<String, Json>,
        parent: Option<ParentRef>,
        parent_row: Option<&Record>,
    ) -> Result<(Record, Extras)> {
        let supplied: &[&str] = match &parent {
            Some(p) => std::slice::from_ref(&p.field),
            None => &[],
        };
        self.screen("", object).await?;
        let mut input = parse_object(entity, object, Mode::Create, caller.system_admin, supplied)?;
        if let Some(p) = parent {
            match input.get(p.field) {
                Some(Value::Id(id)) if *id != p.id => {
                    return Err(ServiceError::invalid(
                        p.field,
                        "does not match the parent in the URL",
                    ));
                }
                _ => input.set(p.field, Value::Id(p.id)),
            }
        }
        let now = ceneca_domain::clock::now();
        let mut record = input.clone();
        // A replayed change keeps the id and creation time its node gave the row.
        let (id, created_at) = match caller.replaying {
            Some(r) => (r.stamp.row, r.created_at.unwrap_or(now)),
            None => (new_id(), now),
        };
        record.set("id", Value::Id(id));
        record.set("created_at", Value::Time(created_at));
        record.set("updated_at", Value::Time(now));
        if let Some(p) = entity.parent {
            let row = match parent_row {
                Some(row) => row.clone(),
                None => {
                    let id = record
                        .id_of(p.field)
                        .ok_or_else(|| ServiceError::invalid(p.field, "is required"))?;
                    self.parent_row(caller, p.table, id).await?
                }
            };
            if let Some(ws) = row.id_of("workspace_id") {
                record.set("workspace_id", Value::Id(ws));
            }
        }
        let cx = Cx {
            svc: self,
            caller,
            entity,
        };
        let rules = rules_for(entity);
        rules::settle_tenancy(&cx, &mut record)?;
        rules.check_create(&cx, &mut record)?;
        self.authorize_create(caller, entity, &record)?;
        let mut skip = owner_columns(entity);
        skip.extend(entity.parent.map(|p| p.field));
        skip.extend(parent.map(|p| p.field));
        self.check_references(caller, entity, &input, &record, &skip)
            .await?;
        rules.check_create_in_store(&cx, &record).await?;
        // Every check has passed: now what the create does besides its row.
        let mut extras = Extras::default();
        self.apply_dlp(
            caller,
            entity,
            input.names(),
            &mut record,
            None,
            &mut extras.ops,
        )
        .await?;
        if caller.replaying.is_none() {
            // Effects ran where the row was made; their rows arrive as changes of their own.
            rules.create_effects(&cx, &mut record, &mut extras)?;
        }
        fill_defaults(entity, &mut record, now);
        if let Some(id) = record.id() {
            let workspace = record.id_of("workspace_id");
            self.seal_content(entity, id, workspace, &mut record);
        }
        Ok((record, extras))
    }
}
