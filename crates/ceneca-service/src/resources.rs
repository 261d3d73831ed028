//! Create, read, list, update, delete and restore for every entity, driven by the entity
//! model. The order of checks is the same for all of them:
//!
//! 1. validate the input against the model (422);
//! 2. find the parent the row hangs under (a message's thread) inside the caller's scope
//!    (404), and inherit its workspace;
//! 3. apply the entity's own rules ([`crate::rules`]);
//! 4. authorize against the caller's roles (403, or 404 when the owner is not even
//!    visible, so other tenants' ids reveal nothing);
//! 5. check that every other referenced row exists and is visible to the caller, in the
//!    same workspace (422), so no reference can cross a tenant boundary;
//! 6. write through the one write path (`Store::apply`), with the scope filter in SQL.

use ceneca_domain::output::View;
use ceneca_domain::schema::{Kind, Owner, Tenancy};
use ceneca_domain::scope::Access;
use ceneca_domain::validate::{Mode, fill_defaults, parse_object};
use ceneca_domain::{Entity, Record, ValidationError, Value, model, new_id};
use ceneca_store::{Deleted, ListQuery, WriteBatch, WriteOp};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError, from_store};
use crate::page::{ListParams, Page, build_query, encode_cursor};
use crate::rules::{self, Extras};
use crate::{Caller, Services};

/// The parent named by a nested route (`/threads/{id}/messages` → `thread_id = id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentRef {
    pub field: &'static str,
    pub id: Uuid,
}

/// What happened on delete: soft deletes answer with the row (it can be restored).
#[derive(Debug)]
pub enum Deletion {
    Soft(Json),
    Hard,
}

fn object(body: &Json) -> Result<&Map<String, Json>> {
    body.as_object()
        .ok_or_else(|| ServiceError::invalid("body", "expected a JSON object"))
}

/// The columns through which a row belongs to a tenant (authorized by role, not by the
/// reference check).
fn owner_columns(entity: &Entity) -> Vec<&'static str> {
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
        caller.require_reach(entity)?;
        if !entity.api.create {
            return Err(ServiceError::NotAllowed(format!(
                "{}s cannot be created through the API",
                entity.name
            )));
        }
        let parent_row = match parent {
            Some(p) => Some(self.visible_parent(caller, entity, p).await?),
            None => None,
        };
        let rewritten = rules::resolve_member_email(self, entity, object(body)?).await?;
        let body = rewritten.as_ref().unwrap_or(object(body)?);
        let (record, extras) = self
            .prepare_new(caller, entity, body, parent, parent_row.as_ref())
            .await?;
        let event = AuditEvent::new(action(entity, "create"), "success")
            .by(caller)
            .on(entity.table, record.id());
        let mut batch = WriteBatch::new(caller.actor()).push(WriteOp::Insert { entity, record });
        batch.ops.extend(extras.ops);
        batch.ops.push(self.audit_op(event));
        let rows = self
            .store
            .apply(batch)
            .await
            .map_err(|e| from_store(entity.name, false, e))?;
        if std::ptr::eq(entity, &model::DEVICES) {
            // Registering a device issued its token (`rules.rs`).
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
        for (i, item) in items.iter().enumerate() {
            let prepared = match item.as_object() {
                Some(obj) => {
                    self.prepare_new(caller, entity, obj, Some(parent), Some(&parent_row))
                        .await
                }
                None => Err(ServiceError::invalid("body", "expected a JSON object")),
            };
            match prepared {
                Ok((record, _)) => records.push(record),
                Err(ServiceError::Validation(e)) => {
                    for (field, reason) in e.fields {
                        errors.add(format!("items[{i}].{field}"), reason);
                    }
                }
                Err(other) => return Err(other),
            }
        }
        errors.into_result()?;
        let count = records.len();
        let event = AuditEvent::new(action(entity, "create_many"), "success")
            .by(caller)
            .on(entity.table, None)
            .details(serde_json::json!({ "count": count, parent.field: parent.id.to_string() }));
        let batch = WriteBatch::new(caller.actor())
            .push(WriteOp::InsertMany { entity, records })
            .push(self.audit_op(event));
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
        record.set("id", Value::Id(new_id()));
        record.set("created_at", Value::Time(now));
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
        let mut extras = Extras::default();
        rules::before_create(self, caller, entity, &mut record, &mut extras)?;
        self.authorize_create(caller, entity, &record)?;
        let mut skip = owner_columns(entity);
        skip.extend(entity.parent.map(|p| p.field));
        skip.extend(parent.map(|p| p.field));
        self.check_references(caller, entity, &input, &record, &skip)
            .await?;
        rules::check_create(self, caller, entity, &record).await?;
        fill_defaults(entity, &mut record, now);
        if let Some(id) = record.id() {
            let workspace = record.id_of("workspace_id");
            self.seal_content(entity, id, workspace, &mut record);
        }
        Ok((record, extras))
    }

    /// The row a nested route hangs under, if the caller may read it.
    async fn visible_parent(
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

    async fn parent_row(&self, caller: &Caller, table: &'static str, id: Uuid) -> Result<Record> {
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

    fn authorize_create(
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
    async fn check_references(
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

    /// One row the caller may read.
    pub async fn get(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        id: Uuid,
        deleted: Deleted,
    ) -> Result<Json> {
        caller.require_reach(entity)?;
        let row = self
            .store
            .get(entity, id, read_filter(caller, entity, deleted), deleted)
            .await?
            .ok_or(ServiceError::NotFound(entity.name))?;
        self.audit_read(
            caller,
            action(entity, "read"),
            entity.table,
            Some(id),
            self.hashes_queries()
                .then(|| format!("{}:{id}:{deleted:?}", entity.table)),
        )
        .await?;
        self.present(entity, &row, View::Detail)
    }

    /// A page of the rows the caller may read, optionally under a parent.
    pub async fn list(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        params: &ListParams,
        parent: Option<ParentRef>,
    ) -> Result<Page> {
        caller.require_reach(entity)?;
        let mut query = ListQuery::new(
            caller.filter(entity, Access::Read),
            entity.sort,
            entity.sort_desc,
            50,
        );
        build_query(entity, params, &mut query)?;
        query.filter = read_filter(caller, entity, query.deleted);
        if let Some(p) = parent {
            self.visible_parent(caller, entity, p).await?;
            query.equals.retain(|(c, _)| *c != p.field);
            query.equals.push((p.field, Value::Id(p.id)));
        }
        let (sort, descending, limit) = (query.sort, query.descending, query.limit as usize);
        let description = self
            .hashes_queries()
            .then(|| format!("{}:{query:?}", entity.table));
        let mut rows = self.store.list(entity, query).await?;
        self.audit_read(
            caller,
            action(entity, "list"),
            entity.table,
            parent.map(|p| p.id),
            description,
        )
        .await?;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .and_then(|last| encode_cursor(entity, last, sort, descending))
        } else {
            None
        };
        Ok(Page {
            items: rows
                .iter()
                .map(|r| self.present(entity, r, View::Summary))
                .collect::<Result<_>>()?,
            next_cursor,
        })
    }

    /// Changes the fields a `PATCH` body names.
    pub async fn update(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        id: Uuid,
        body: &Json,
    ) -> Result<Json> {
        match self.update_one(caller, entity, id, body).await {
            Err(e) => Err(self
                .audit_refusal(caller, action(entity, "update"), entity.table, Some(id), e)
                .await),
            ok => ok,
        }
    }

    async fn update_one(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        id: Uuid,
        body: &Json,
    ) -> Result<Json> {
        caller.require_reach(entity)?;
        if !entity.api.update {
            return Err(ServiceError::NotAllowed(format!(
                "{}s cannot be changed through the API",
                entity.name
            )));
        }
        let input = parse_object(entity, object(body)?, Mode::Patch, caller.system_admin, &[])?;
        if input.is_empty() {
            return self.get(caller, entity, id, Deleted::Exclude).await;
        }
        let write = caller.filter(entity, Access::Write);
        let current = if rules::needs_current_row(entity) || self.seals_on_update(entity, &input) {
            Some(
                self.store
                    .get(entity, id, write.clone(), Deleted::Exclude)
                    .await?
                    .ok_or(self.explain_missing(caller, entity, id).await)?,
            )
        } else {
            None
        };
        let mut set = input.clone();
        let mut extras = Extras::default();
        rules::before_update(
            self,
            caller,
            entity,
            id,
            current.as_ref(),
            &mut set,
            &mut extras,
        )?;
        let workspace = current.as_ref().and_then(|row| row.id_of("workspace_id"));
        self.seal_content(entity, id, workspace, &mut set);
        let owners = owner_columns(entity);
        let changes_refs = input.names().any(|n| {
            !owners.contains(&n)
                && entity
                    .field(n)
                    .is_some_and(|f| matches!(f.kind, Kind::Ref(_)))
        });
        if changes_refs {
            // References must stay inside the row's workspace: compare against the row.
            let context = match &current {
                Some(row) => row.clone(),
                None => self
                    .store
                    .get(
                        entity,
                        id,
                        caller.filter(entity, Access::Read),
                        Deleted::Exclude,
                    )
                    .await?
                    .ok_or(ServiceError::NotFound(entity.name))?,
            };
            self.check_references(caller, entity, &input, &context, &owners)
                .await?;
        }
        let fields: Vec<&str> = set.names().collect();
        let event = AuditEvent::new(action(entity, "update"), "success")
            .by(caller)
            .on(entity.table, Some(id))
            .details(serde_json::json!({ "fields": fields }));
        let mut batch = WriteBatch::new(caller.actor()).push(WriteOp::Update {
            entity,
            id,
            filter: write,
            set,
        });
        batch.ops.extend(extras.ops);
        batch.ops.push(self.audit_op(event));
        match self.store.apply(batch).await {
            Ok(rows) => self.present(entity, &rows[0], View::Detail),
            Err(ceneca_store::StoreError::NotFound) => {
                Err(self.explain_missing(caller, entity, id).await)
            }
            Err(e) => Err(from_store(entity.name, false, e)),
        }
    }

    /// Deletes a row: softly (restorable, with its cascade) where the model says so.
    pub async fn delete(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        id: Uuid,
    ) -> Result<Deletion> {
        match self.delete_one(caller, entity, id).await {
            Err(e) => Err(self
                .audit_refusal(caller, action(entity, "delete"), entity.table, Some(id), e)
                .await),
            ok => ok,
        }
    }

    async fn delete_one(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        id: Uuid,
    ) -> Result<Deletion> {
        caller.require_reach(entity)?;
        if !entity.api.delete {
            return Err(ServiceError::NotAllowed(format!(
                "{}s cannot be deleted through the API",
                entity.name
            )));
        }
        let filter = caller.filter(entity, Access::Delete);
        let mut extras = Extras::default();
        rules::before_delete(self, caller, entity, id, &mut extras).await?;
        let op = if entity.soft_delete {
            WriteOp::SoftDelete { entity, id, filter }
        } else {
            WriteOp::Delete { entity, id, filter }
        };
        let mut batch = WriteBatch::new(caller.actor()).push(op);
        batch.ops.extend(extras.ops);
        batch.ops.push(
            self.audit_op(
                AuditEvent::new(action(entity, "delete"), "success")
                    .by(caller)
                    .on(entity.table, Some(id)),
            ),
        );
        match self.store.apply(batch).await {
            Ok(rows) if entity.soft_delete => Ok(Deletion::Soft(self.present(
                entity,
                &rows[0],
                View::Detail,
            )?)),
            Ok(_) => Ok(Deletion::Hard),
            Err(ceneca_store::StoreError::NotFound) => {
                Err(self.explain_missing(caller, entity, id).await)
            }
            Err(e) => Err(from_store(entity.name, true, e)),
        }
    }

    /// Undoes a soft delete, with everything its cascade deleted at the same moment.
    pub async fn restore(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        id: Uuid,
    ) -> Result<Json> {
        caller.require_reach(entity)?;
        if !entity.soft_delete || !entity.api.delete {
            return Err(ServiceError::NotAllowed(format!(
                "{}s cannot be restored",
                entity.name
            )));
        }
        let filter = caller.filter(entity, Access::Restore);
        match self
            .store
            .apply(
                WriteBatch::new(caller.actor())
                    .push(WriteOp::Restore { entity, id, filter })
                    .push(
                        self.audit_op(
                            AuditEvent::new(action(entity, "restore"), "success")
                                .by(caller)
                                .on(entity.table, Some(id)),
                        ),
                    ),
            )
            .await
        {
            Ok(rows) => self.present(entity, &rows[0], View::Detail),
            Err(ceneca_store::StoreError::NotFound) => Err(ServiceError::NotFound(entity.name)),
            Err(e) => Err(from_store(entity.name, false, e)),
        }
    }

    /// A write matched nothing: 403 if the caller can see the row (their role is too low),
    /// 404 if they cannot.
    async fn explain_missing(
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

/// The audit action name of an operation on an entity (`threads.create`).
fn action(entity: &Entity, operation: &str) -> String {
    format!("{}.{operation}", entity.table)
}

/// Reading deleted organizations and workspaces takes the right to restore them: they are
/// outside the live scope.
fn read_filter(
    caller: &Caller,
    entity: &Entity,
    deleted: Deleted,
) -> ceneca_domain::scope::ScopeFilter {
    let read = caller.filter(entity, Access::Read);
    match (deleted, entity.tenancy) {
        (Deleted::Include | Deleted::Only, Tenancy::SelfOrganization | Tenancy::SelfWorkspace) => {
            read.or(caller.filter(entity, Access::Restore))
        }
        _ => read,
    }
}

/// The owner column of an `Owners` row that is set, if exactly one is.
pub(crate) fn single_owner(
    entity: &Entity,
    record: &Record,
) -> std::result::Result<Option<Owner>, String> {
    let Tenancy::Owners { owners, .. } = entity.tenancy else {
        return Ok(None);
    };
    let set: Vec<Owner> = owners
        .iter()
        .copied()
        .filter(|o| record.id_of(o.column()).is_some())
        .collect();
    match set.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(format!(
            "set only one of {}",
            owners
                .iter()
                .map(|o| o.column())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
