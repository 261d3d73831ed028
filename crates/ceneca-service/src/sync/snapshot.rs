//! `GET /sync/snapshot`: what a caller may read, as the changes that make it.
//!
//! A device that starts out, or must start again (its cursor is beyond the log after a
//! restore, or it was given a workspace whose history is behind its cursor), needs the
//! state, not the history. The snapshot is the caller's feed up to one log position
//! (`as_of`, fixed by the first page so later pages read the same log), keeping of each
//! row only what still stands: its creation, and each later change that holds one of the
//! row's registers, with only the fields it holds; a change every register of which was
//! overwritten since is left out. Each change keeps its stamp, so the device's field
//! clocks are what the upstream's are, and its next pull (from `as_of`) merges exactly.
//! Rows removed for good (not kept as tombstones) come as their removal alone.

use std::collections::HashSet;

use ceneca_domain::sync::{Stamp, entity_logged_as};
use ceneca_domain::{Record, Value};
use ceneca_store::changes::FeedQuery;
use ceneca_wire::sync::{Change, SnapshotPage};
use uuid::Uuid;

use super::pull::{feed_parts, seq_of};
use super::push::RowHistories;
use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

impl Services {
    /// A page of the caller's snapshot as of `as_of` (the newest position when `None`:
    /// the first page), after `cursor`.
    pub async fn snapshot(
        &self,
        caller: &Caller,
        as_of: Option<i64>,
        cursor: i64,
        limit: u32,
    ) -> Result<SnapshotPage> {
        self.require_sync()?;
        let last = self.store.last_change().await?;
        let as_of = match as_of {
            Some(as_of) if as_of > last => {
                return Err(ServiceError::Gone(format!(
                    "the snapshot as of {as_of} is beyond this server's change log (which \
                     ends at {last}): start the snapshot again without as_of"
                )));
            }
            Some(as_of) => as_of,
            None => last,
        };
        if cursor > as_of {
            return Err(ServiceError::bad_request(
                "cursor",
                "is beyond the snapshot's as_of: pass back the cursor of its previous page",
            ));
        }
        let (parts, account) = feed_parts(caller);
        let rows = self
            .store
            .feed(FeedQuery {
                after: cursor,
                limit: limit.saturating_add(1),
                parts,
                // Revocations are history: the snapshot holds only what may be read now.
                revocations_of: None,
                memberships_of: account.then_some(caller.user_id),
                made_on: None,
                until: Some(as_of),
            })
            .await?;
        self.note_device_seen(caller).await?;
        let has_more = rows.len() > limit as usize;
        let rows = &rows[..rows.len().min(limit as usize)];
        // A creation always stands unless its row was removed for good, which only rows
        // that are not kept deleted can be: only the others need their registers.
        let ids: HashSet<Uuid> = rows
            .iter()
            .filter(|r| needs_registers(r))
            .filter_map(|r| r.id_of("entity_id"))
            .collect();
        let (clocks, _) = self.row_clocks(ids.into_iter().collect()).await?;
        let mut changes = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(change) = self.standing_change(row, &clocks)? {
                changes.push(change);
            }
        }
        self.attach_secrets(caller, &mut changes).await?;
        let next = match rows.last() {
            Some(row) if has_more => seq_of(row),
            _ => as_of,
        };
        Ok(SnapshotPage {
            changes,
            cursor: next.to_string(),
            as_of: as_of.to_string(),
            has_more,
        })
    }

    /// What of one logged change still stands, given its row's registers (folded from
    /// the whole log): `None` when nothing does.
    fn standing_change(&self, row: &Record, clocks: &RowHistories) -> Result<Option<Change>> {
        let text = |name: &str| row.get(name).and_then(Value::as_str).unwrap_or_default();
        let entity_type = text("entity_type");
        let (Some(change), Some(id), Some(entity)) = (
            row.id(),
            row.id_of("entity_id"),
            entity_logged_as(entity_type),
        ) else {
            return Ok(None);
        };
        if !needs_registers(row) {
            return Ok(Some(self.feed_change(row)?));
        }
        let Some(registers) = clocks.get(&(entity_type.to_owned(), id)) else {
            return Ok(None);
        };
        let hlc = row.get("hlc").and_then(Value::as_int).unwrap_or_default() as u64;
        let stamp = Stamp { hlc, change };
        // Removed for good: only the removal (a replica that holds the row drops it).
        let removed = !entity.soft_delete && registers.deleted();
        let holds_deletion = registers.deletion.map(|(_, s)| s) == Some(stamp);
        match text("operation") {
            "create" if !removed => Ok(Some(self.feed_change(row)?)),
            "update" if !removed => {
                let mut out = self.feed_change(row)?;
                out.values
                    .retain(|name, _| registers.fields.get(name) == Some(&stamp));
                // A change that set a secret and nothing else still stands: the secret
                // comes with it (`attach_secrets`).
                let holds_secret = ceneca_domain::sync::secrets(entity)
                    .any(|(_, column)| registers.fields.get(column) == Some(&stamp));
                Ok((!out.values.is_empty() || holds_secret).then_some(out))
            }
            "delete" | "restore" if holds_deletion => Ok(Some(self.feed_change(row)?)),
            _ => Ok(None),
        }
    }
}

/// Whether what stands of this logged change depends on its row's registers: everything
/// but the creation of a row kept deleted (a tombstone), which always stands.
fn needs_registers(row: &Record) -> bool {
    let text = |name: &str| row.get(name).and_then(Value::as_str).unwrap_or_default();
    text("operation") != "create"
        || entity_logged_as(text("entity_type")).is_none_or(|entity| !entity.soft_delete)
}
