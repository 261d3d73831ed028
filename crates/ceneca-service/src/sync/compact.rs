//! Keeping the change log bounded (`sync.log_retention_days`).
//!
//! A change older than the retention is dropped when nothing depends on it any more: every
//! register it set (a field, the deletion) has since been won by a later stamp that the
//! log still holds. What stays is each row's creation, the winner of each of its
//! registers, its newest change, and every revocation; so the log from any cursor, even
//! one older than the compaction, still brings a replica to the same state: a dropped
//! change's every field is carried by a kept winner, which the replica either pulls now
//! (it is after its cursor) or already applied (it is before). No cursor expires, and a
//! replica that was away for a year catches up by reading the feed, not a dump.
//!
//! What is lost with a dropped change: its own values (they were overwritten) and the
//! recognition of its id. A device retrying a push of it years later is answered by the
//! merge (its fields lose to the later winners, recorded as a conflict) instead of
//! `applied`.
//!
//! On a local node the log is also the queue of changes not pushed yet: those stay,
//! whatever their age.

use std::collections::HashSet;

use ceneca_domain::model;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Record, Value};
use ceneca_store::{Actor, ListQuery, WriteBatch, WriteOp};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Services;
use crate::error::Result;

/// Log entries read per step: each step reads the whole history of the rows they name.
const PAGE: u32 = 1_000;

/// What one compaction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Changes older than the retention that were looked at.
    pub examined: u64,
    /// Changes dropped (overwritten since in every register they set).
    pub dropped: u64,
}

impl Services {
    /// Drops the changes made before `older_than` that no row's state depends on any more
    /// (see the module). Safe while the server serves: a concurrent write only adds later
    /// changes, which can make a kept change droppable, never a dropped one needed.
    pub async fn compact_change_log(&self, older_than: OffsetDateTime) -> Result<Compacted> {
        // A node's own changes after the pushed cursor are still to be pushed.
        let keep_after = match self.config.local_node {
            Some(_) => self.node_status.get().pushed,
            None => i64::MAX,
        };
        let mut out = Compacted::default();
        let mut after: Option<(Value, Uuid)> = None;
        loop {
            let mut query = ListQuery::new(ScopeFilter::All, "seq", false, PAGE);
            query.created_before = Some(older_than);
            query.after = after.take();
            let mut page = self.store.list(&model::SYNC_EVENTS, query).await?;
            // A list answers one row more than asked when there are more.
            let full = page.len() > PAGE as usize;
            page.truncate(PAGE as usize);
            let candidates: Vec<&Record> = page
                .iter()
                .filter(|entry| seq_of(entry) <= keep_after)
                .filter(|entry| {
                    matches!(
                        entry.get("operation").and_then(Value::as_str),
                        Some("update" | "delete" | "restore")
                    )
                })
                .collect();
            out.examined += candidates.len() as u64;
            let dropped = self.droppable(&candidates).await?;
            if !dropped.is_empty() {
                out.dropped += dropped.len() as u64;
                let actor = Actor {
                    user_id: None,
                    device_id: None,
                    replay: None,
                };
                self.store
                    .apply(WriteBatch::new(actor).push(WriteOp::Forget {
                        entity: &model::SYNC_EVENTS,
                        filter: ScopeFilter::AnyOf(vec![("id", dropped)]),
                    }))
                    .await?;
                // Reads shared before this moment may still show what was dropped.
                self.shared_feed.forget();
            }
            let last = page.last().filter(|_| full);
            match last.and_then(|entry| Some((seq_of(entry), entry.id()?))) {
                Some((seq, id)) if seq < keep_after => after = Some((Value::Int(seq), id)),
                _ => break,
            }
        }
        if out.dropped > 0 {
            tracing::info!(
                examined = out.examined,
                dropped = out.dropped,
                "compacted the change log: dropped changes overwritten since"
            );
        }
        Ok(out)
    }

    /// Which of these changes hold none of their row's registers and are not its newest.
    async fn droppable(&self, candidates: &[&Record]) -> Result<Vec<Uuid>> {
        let rows: HashSet<Uuid> = candidates
            .iter()
            .filter_map(|entry| entry.id_of("entity_id"))
            .collect();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let (clocks, logged) = self.row_clocks(rows.into_iter().collect()).await?;
        let winners: HashSet<(Uuid, Uuid)> = clocks
            .iter()
            .flat_map(|((_, row), clocks)| {
                clocks
                    .fields
                    .values()
                    .copied()
                    .chain(clocks.deletion.map(|(_, stamp)| stamp))
                    .map(move |stamp| (*row, stamp.change))
            })
            .collect();
        Ok(candidates
            .iter()
            .filter_map(|entry| {
                let (change, row) = (entry.id()?, entry.id_of("entity_id")?);
                let needed =
                    winners.contains(&(row, change)) || logged.end_of(row) == seq_of(entry);
                (!needed).then_some(change)
            })
            .collect())
    }

    /// Compacts the change log every hour while the server runs, keeping `retention`.
    pub async fn run_log_compaction(self, retention: std::time::Duration) {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3_600));
        loop {
            every.tick().await;
            let older_than = ceneca_domain::clock::now() - retention;
            if let Err(e) = self.compact_change_log(older_than).await {
                tracing::warn!(error = %e, "compacting the change log failed; retried in an hour");
            }
        }
    }
}

fn seq_of(entry: &Record) -> i64 {
    entry.get("seq").and_then(Value::as_int).unwrap_or_default()
}
