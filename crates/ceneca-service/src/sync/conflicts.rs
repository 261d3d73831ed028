//! The conflicts merging recorded, for the user whose change lost and the workspace's
//! administrators.

use ceneca_domain::output::format_time;
use ceneca_domain::scope::Access;
use ceneca_domain::{Record, Value, model};
use ceneca_store::ListQuery;
use ceneca_wire::sync::{ConflictPage, ConflictRecord};
use serde_json::Value as Json;

use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

/// The most conflicts one page shows.
const PAGE: u32 = 100;

impl Services {
    /// The conflicts the caller may read, newest first; `after` is the `next_cursor` of
    /// the previous page (the last conflict's id).
    pub async fn list_conflicts(
        &self,
        caller: &Caller,
        after: Option<uuid::Uuid>,
    ) -> Result<ConflictPage> {
        self.require_sync()?;
        caller.require_reach(&model::SYNC_CONFLICTS)?;
        let filter = caller.filter(&model::SYNC_CONFLICTS, Access::Read);
        let mut query = ListQuery::new(filter.clone(), "created_at", true, PAGE + 1);
        if let Some(id) = after {
            // The cursor names the last conflict shown; the page goes on from its time.
            let last = self
                .store
                .get(
                    &model::SYNC_CONFLICTS,
                    id,
                    filter,
                    ceneca_store::Deleted::Include,
                )
                .await?
                .ok_or_else(|| {
                    ServiceError::bad_request("cursor", "the cursor is not one this server gave")
                })?;
            let at = last.get("created_at").cloned().unwrap_or(Value::Null);
            query.after = Some((at, id));
        }
        let rows = self.store.list(&model::SYNC_CONFLICTS, query).await?;
        let more = rows.len() > PAGE as usize;
        let items = rows
            .iter()
            .take(PAGE as usize)
            .map(|row| self.conflict_record(row))
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = more
            .then(|| items.last().map(|c| c.id.to_string()))
            .flatten();
        Ok(ConflictPage { items, next_cursor })
    }
}

impl Services {
    /// One conflict as the caller sees it: the lost values opened as a read of the row
    /// opens its content.
    pub(crate) fn conflict_record(&self, row: &Record) -> Result<ConflictRecord> {
        let mut record = conflict_record(row)?;
        if let (Json::Object(values), Some(entity)) =
            (&mut record.lost_values, model::by_table(&record.entity))
        {
            self.open_values(entity, record.entity_id, record.workspace_id, values)?;
        }
        Ok(record)
    }
}

fn conflict_record(row: &Record) -> Result<ConflictRecord> {
    let id = |name: &str| {
        row.id_of(name)
            .ok_or_else(|| ServiceError::Internal(format!("a conflict without {name}")))
    };
    let int = |name: &str| {
        row.get(name)
            .and_then(Value::as_int)
            .unwrap_or_default()
            .to_string()
    };
    Ok(ConflictRecord {
        id: id("id")?,
        created_at: row
            .get("created_at")
            .and_then(Value::as_time)
            .map(format_time)
            .unwrap_or_default(),
        kind: row
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        entity: row
            .get("entity_type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        entity_id: id("entity_id")?,
        workspace_id: row.id_of("workspace_id"),
        user_id: row.id_of("user_id"),
        device_id: row.id_of("device_id"),
        change_id: id("change_id")?,
        hlc: int("hlc"),
        lost_values: match row.get("lost_values") {
            Some(Value::Json(j)) => j.clone(),
            _ => Json::Object(Default::default()),
        },
        winner_change_id: id("winner_change_id")?,
        winner_hlc: int("winner_hlc"),
    })
}
