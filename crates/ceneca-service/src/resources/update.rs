//! Changing the fields a `PATCH` body names.

use ceneca_domain::Entity;
use ceneca_domain::output::View;
use ceneca_domain::schema::Kind;
use ceneca_domain::scope::Access;
use ceneca_domain::validate::{Mode, parse_object};
use ceneca_store::{Deleted, WriteOp};
use serde_json::Value as Json;
use uuid::Uuid;

use super::authorize::owner_columns;
use super::{action, object};
use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError, from_store};
use crate::rules::{Cx, Extras, rules_for};
use crate::{Caller, Services};

impl Services {
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
        self.require_local_write(entity)?;
        if !entity.api.update {
            return Err(ServiceError::NotAllowed(format!(
                "{}s cannot be changed through the API",
                entity.name
            )));
        }
        self.screen("", object(body)?).await?;
        let input = parse_object(entity, object(body)?, Mode::Patch, caller.system_admin, &[])?;
        if input.is_empty() {
            return self.get(caller, entity, id, Deleted::Exclude).await;
        }
        let write = caller.filter(entity, Access::Write);
        let cx = Cx {
            svc: self,
            caller,
            entity,
        };
        let rules = rules_for(entity);
        let resizes = ceneca_domain::storage::sizing(entity).filter(|s| s.resizes(input.names()));
        let current = if rules.needs_current_row()
            || resizes.is_some()
            || self.seals_on_update(entity, &input)
            || self.dlp_may_apply(caller)
        {
            Some(
                self.store
                    .get(entity, id, write.clone(), replayed_rows(caller))
                    .await?
                    .ok_or(self.explain_missing(caller, entity, id).await)?,
            )
        } else {
            None
        };
        let mut set = input.clone();
        rules.check_update(&cx, id, current.as_ref(), &mut set)?;
        let mut extras = Extras::default();
        rules
            .update_effects(&cx, current.as_ref(), &set, &mut extras)
            .await?;
        let mut side_ops = extras.ops;
        self.apply_dlp(
            caller,
            entity,
            input.names(),
            &mut set,
            current.as_ref(),
            &mut side_ops,
        )
        .await?;
        let workspace = current.as_ref().and_then(|row| row.id_of("workspace_id"));
        self.seal_content(entity, id, workspace, &mut set);
        if let (Some(sizing), Some(row)) = (resizes, current.as_ref())
            && let Some(workspace) = row.id_of("workspace_id")
        {
            // What the row grows by, as stored (sealed content is measured sealed, as the
            // counters measure it), counts against its quota.
            // A compressed body edited is stored plain: its frame goes.
            let mut written = set.clone();
            ceneca_domain::storage::store_plain(entity, &mut written);
            let mut after = row.clone();
            for (name, value) in written.iter() {
                after.set(name, value.clone());
            }
            let growth = sizing.bytes(&after) - sizing.bytes(row);
            if growth > 0 {
                self.check_quota(workspace, growth as u64).await?;
            }
        }
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
                        replayed_rows(caller),
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
        let mut batch = caller.write_batch().push(WriteOp::Update {
            entity,
            id,
            filter: write,
            set,
        });
        batch.ops.extend(side_ops);
        let batch = batch.push(self.audit_op(event));
        match self.store.apply(batch).await {
            Ok(rows) => self.present(entity, &rows[0], View::Detail),
            Err(ceneca_store::StoreError::NotFound) => {
                Err(self.explain_missing(caller, entity, id).await)
            }
            Err(e) => Err(from_store(entity.name, false, e)),
        }
    }
}

/// The rows an update may change: live ones, and deleted ones too for a replayed change
/// (an edit that lost to a delete is kept in the tombstone, so every replica holds the
/// same row whichever it received first).
fn replayed_rows(caller: &Caller) -> Deleted {
    if caller.replaying.is_some() {
        Deleted::Include
    } else {
        Deleted::Exclude
    }
}
