//! Retention's purge: rows in the bin longer than `retention.purge_after_days` deleted for
//! good (`ceneca_store::purge`), with everything below them, their files, their full-text
//! entries, their vectors and their history.
//!
//! The bin is where a deletion can still be undone; past the rule it cannot, and what a
//! user deleted is gone from the disk too, as a data-protection officer expects. Each round
//! is one transaction and one audit entry (`maintenance.purge`, with the ids and counts,
//! never content); the files no row names any more are deleted after its commit. Devices
//! learn it from the change log: a `purge` change per row, a revocation per user for a
//! workspace or an organization.

use std::time::Instant;

use ceneca_domain::{Entity, Value};
use ceneca_store::purge::PURGED;
use ceneca_store::{Lease, PurgeQuery, PurgeRule, WriteBatch, WriteOp};
use ceneca_wire::maintenance::MaintenanceReport;
use uuid::Uuid;

use crate::Services;
use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError};

/// Rows purged per transaction. A workspace or an organization takes everything it holds
/// with it, so those go one at a time.
const ROUND: u32 = 100;
const ROUND_OF_PLACES: u32 = 1;

impl Services {
    /// Purges, entity by entity top down, the rows in the bin since before the rule's
    /// cutoff; a dry run reports what would go and deletes nothing.
    pub(super) async fn purge_bin(
        &self,
        lease: &mut dyn Lease,
        actor: Option<Uuid>,
        report: &mut MaintenanceReport,
        progress: &(dyn Fn(&MaintenanceReport) + Sync),
        stopping: &(dyn Fn() -> bool + Sync),
    ) -> Result<()> {
        let days = self.config.purge_after_days;
        report.purge_after_days = days;
        if days == 0 {
            return Ok(());
        }
        let deleted_before = ceneca_domain::clock::now() - time::Duration::days(i64::from(days));
        for entity in PURGED {
            let places = entity.table == "workspaces" || entity.table == "organizations";
            let limit = if places { ROUND_OF_PLACES } else { ROUND };
            let mut after = None;
            loop {
                if stopping() {
                    return Ok(());
                }
                lease.check().await?;
                let query = PurgeQuery {
                    entity,
                    deleted_before,
                    after,
                    limit,
                };
                let candidates = self.store.purge_candidates(query).await?;
                let Some(last) = candidates.last() else {
                    break;
                };
                // Paged on in a real run too: a row that stays (restored while its round
                // was chosen) is not read again and again.
                after = Some((last.deleted_at, last.id));
                let ids: Vec<Uuid> = candidates.iter().map(|c| c.id).collect();
                if report.dry_run {
                    let footprint = self.store.purge_footprint(entity, ids.clone()).await?;
                    *report.purged.entry(entity.table.to_owned()).or_default() += ids.len() as u64;
                    report.purged_messages_below += footprint.messages;
                    report.purged_attachments += footprint.attachments;
                    report.purged_attachment_bytes += footprint.attachment_bytes.max(0) as u64;
                    report.purged_embeddings += footprint.embeddings;
                    report.purged_changes += footprint.changes;
                } else {
                    self.purge_rows(
                        entity,
                        ids,
                        PurgeRule::InBinSince(deleted_before),
                        actor,
                        report,
                    )
                    .await?;
                }
                progress(report);
                if candidates.len() < limit as usize {
                    break;
                }
            }
        }
        if !report.dry_run && !report.purged.is_empty() {
            // What the deletes left behind in the engine's own structures goes too.
            let scrubbing = Instant::now();
            self.store.scrub_deleted().await?;
            report.database_us += scrubbing.elapsed().as_micros() as u64;
        }
        Ok(())
    }

    /// Purges those of `ids` (rows of `entity`) that `rule` covers in one transaction,
    /// then deletes the files no row names any more; adds what it did to `report`. A maintenance path: it reaches every tenant's rows, so it is for the job
    /// and the replicator, never a request.
    pub(crate) async fn purge_rows(
        &self,
        entity: &'static Entity,
        ids: Vec<Uuid>,
        rule: PurgeRule,
        actor: Option<Uuid>,
        report: &mut MaintenanceReport,
    ) -> Result<()> {
        let mut event = AuditEvent::new("maintenance.purge", "success");
        event.actor = actor;
        let grace = Some(crate::attachments::SWEEP_GRACE);
        self.purge_rows_as(entity, ids, rule, event, grace, report)
            .await
    }

    /// [`Services::purge_rows`], accounted for by `event` (an erase's round), deleting the
    /// files let go that were written before `grace` (`None`: all of them — an erase does
    /// not wait for the sweep).
    pub(crate) async fn purge_rows_as(
        &self,
        entity: &'static Entity,
        ids: Vec<Uuid>,
        rule: PurgeRule,
        event: AuditEvent,
        grace: Option<std::time::Duration>,
        report: &mut MaintenanceReport,
    ) -> Result<()> {
        let actor = event.actor;
        let (audit, chain) = self.audit_parts(event);
        let batch = WriteBatch::new(ceneca_store::Actor {
            user_id: actor,
            ..Default::default()
        })
        .push(WriteOp::Purge {
            entity,
            ids,
            rule,
            audit,
            chain,
        });
        let writing = Instant::now();
        let rows = self.store.apply(batch).await?;
        report.database_us += writing.elapsed().as_micros() as u64;
        let (audit_entry, attachments) = rows.split_first().ok_or(ServiceError::Internal(
            "a purge returned no audit entry".into(),
        ))?;
        let details = match audit_entry.get("details") {
            Some(Value::Json(details)) => details.clone(),
            _ => serde_json::Value::Null,
        };
        let count = |name: &str| details[name].as_u64().unwrap_or(0);
        let purged = details["ids"].as_array().map_or(0, Vec::len) as u64;
        if purged > 0 {
            *report.purged.entry(entity.table.to_owned()).or_default() += purged;
        }
        report.purged_messages_below += count("messages");
        report.purged_attachments += count("attachments");
        report.purged_attachment_bytes += count("attachment_bytes");
        report.purged_embeddings += count("embeddings");
        report.purged_changes += count("changes_dropped");
        self.remove_files_of(attachments, grace, report).await
    }
}
