//! Deleting rows (softly where the model says so) and restoring soft-deleted ones.

use ceneca_domain::Entity;
use ceneca_domain::output::View;
use ceneca_domain::scope::Access;
use ceneca_store::{Deleted, WriteOp};
use serde_json::Value as Json;
use uuid::Uuid;

use super::{Deletion, action};
use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError, from_store};
use crate::rules::{Cx, Extras, rules_for};
use crate::{Caller, Services};

impl Services {
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
        self.require_local_write(entity)?;
        if !entity.api.delete {
            return Err(ServiceError::NotAllowed(format!(
                "{}s cannot be deleted through the API",
                entity.name
            )));
        }
        let filter = caller.filter(entity, Access::Delete);
        let cx = Cx {
            svc: self,
            caller,
            entity,
        };
        let rules = rules_for(entity);
        // The row, loaded once for the rules that need it (a row the caller cannot read is
        // left to the delete itself to refuse).
        let row = if rules.loads_row_on_delete() {
            self.store
                .get(
                    entity,
                    id,
                    caller.filter(entity, Access::Read),
                    Deleted::Exclude,
                )
                .await?
        } else {
            None
        };
        rules.check_delete(&cx, id, row.as_ref()).await?;
        let mut extras = Extras::default();
        rules
            .delete_effects(&cx, id, row.as_ref(), &mut extras)
            .await?;
        let op = if entity.soft_delete {
            WriteOp::SoftDelete { entity, id, filter }
        } else {
            WriteOp::Delete { entity, id, filter }
        };
        let mut batch = caller.write_batch().push(op);
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
        self.require_local_write(entity)?;
        if !entity.soft_delete || !entity.api.delete {
            return Err(ServiceError::NotAllowed(format!(
                "{}s cannot be restored",
                entity.name
            )));
        }
        let filter = caller.filter(entity, Access::Restore);
        // What comes back from the bin is charged again: checked inside the write, under
        // the quota holder's lock, once the restore has counted it.
        let guard = self.restore_guard(entity, id).await?;
        let mut batch = caller
            .write_batch()
            .push(WriteOp::Restore { entity, id, filter });
        batch.ops.extend(guard);
        let batch = batch.push(
            self.audit_op(
                AuditEvent::new(action(entity, "restore"), "success")
                    .by(caller)
                    .on(entity.table, Some(id)),
            ),
        );
        match self.store.apply(batch).await {
            Ok(rows) => self.present(entity, &rows[0], View::Detail),
            Err(ceneca_store::StoreError::NotFound) => Err(ServiceError::NotFound(entity.name)),
            Err(e) => Err(from_store(entity.name, false, e)),
        }
    }
}
