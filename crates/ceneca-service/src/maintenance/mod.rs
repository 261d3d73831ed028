//! Maintenance: retention's purge, archive and compression, run by hand (`ceneca maintenance run`,
//! `POST /admin/maintenance`), on a schedule, or when a write finds its quota nearly full.
//!
//! A run applies the server's archive rule (`retention.archive_after_days`) and each
//! organization's own (`organizations.archive_after_days`): threads idle longer, never
//! pinned ones, are archived in rounds. Each round is one transaction
//! (`WriteOp::Archive`): the threads are marked archived, their attachments' files let go
//! and their embeddings deleted, every change logged for sync, counted off the storage
//! counters and audited with ids and counts. Files no row names any more are deleted
//! after the commit. One run at a time per database (the store's maintenance lease: a
//! file lock on SQLite, an advisory lock on PostgreSQL).
//!
//! Before that, the rows in the bin longer than `retention.purge_after_days` are deleted
//! for good (`purge.rs`), with everything below them. After it, the bodies of messages
//! nobody wrote to for `retention.compress_after_days` are stored compressed
//! (`compress.rs`), their text unchanged for every reader.
//!
//! What stays: the thread and its messages (unarchiving shows them again, searchable by
//! text as before), each attachment's row (`content_removed_at` says its file went; the
//! content answers 410). What goes for good: the files and the embeddings (a client
//! embeds again what it wants found by meaning).

mod compress;
mod purge;
mod worker;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ceneca_domain::clock::now;
use ceneca_domain::{Record, Value};
use ceneca_store::{
    ArchiveCandidate, ArchiveQuery, BlobKey, Lease, RuleScope, WriteBatch, WriteOp,
};
use ceneca_wire::maintenance::{ArchiveRuleReport, MaintenanceReport, MaintenanceTrigger};
use serde_json::json;
use uuid::Uuid;

pub use worker::MaintenanceWorker;

use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

/// Threads archived per transaction: a round holds the writer (SQLite) for a few
/// milliseconds, so requests are not held up behind a long archive.
const ROUND: u32 = 200;

/// The least time between two runs a nearly full quota starts.
const QUOTA_RUNS_APART: Duration = Duration::from_secs(600);

/// A run wanted soon (a quota nearly full), told to the worker.
#[derive(Default)]
pub(crate) struct Wanted {
    pub(crate) notify: tokio::sync::Notify,
    last: Mutex<Option<Instant>>,
}

impl Wanted {
    /// Asks for a run, at most once per [`QUOTA_RUNS_APART`].
    fn ask(&self) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| at.elapsed() < QUOTA_RUNS_APART) {
            return;
        }
        *last = Some(Instant::now());
        self.notify.notify_one();
    }
}

/// One archive rule: whose threads, and after how many idle days.
struct Rule {
    scope: RuleScope,
    days: u32,
}

impl Services {
    /// A write found its quota at least `retention.maintenance_at_percent` full.
    pub(crate) fn quota_nearly_full(&self, used: u64, quota: u64) {
        let at = u64::from(self.config.maintenance_at_percent);
        if at > 0 && quota > 0 && used.saturating_mul(100) >= quota.saturating_mul(at) {
            self.maintenance_wanted.ask();
        }
    }

    /// Refuses (404, as every administrators' route) a caller who is no system
    /// administrator.
    pub fn require_maintenance_caller(&self, caller: &Caller) -> Result<()> {
        if caller.system_admin {
            Ok(())
        } else {
            Err(ServiceError::NotFound("route"))
        }
    }

    /// A maintenance run asked for by `caller`, a system administrator (others: 404,
    /// as for every administrators' route).
    pub async fn run_maintenance_as(
        &self,
        caller: &Caller,
        dry_run: bool,
    ) -> Result<MaintenanceReport> {
        self.require_maintenance_caller(caller)?;
        // A task of its own: a client that hangs up (or a proxy's timeout) does not cut
        // the run short between two rounds, unaudited.
        let services = self.clone();
        let actor = Some(caller.user_id);
        tokio::spawn(async move {
            services
                .run_maintenance(MaintenanceTrigger::Manual, actor, dry_run, &|_| {})
                .await
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("the maintenance run ended abnormally: {e}")))?
    }

    /// Runs maintenance once: refused with 409 while another run holds the lease.
    /// `progress` is told the report so far after each round.
    pub async fn run_maintenance(
        &self,
        trigger: MaintenanceTrigger,
        actor: Option<Uuid>,
        dry_run: bool,
        progress: &(dyn Fn(&MaintenanceReport) + Sync),
    ) -> Result<MaintenanceReport> {
        self.run_maintenance_until(trigger, actor, dry_run, progress, None)
            .await
    }

    /// [`Services::run_maintenance`], stopping between two rounds once `stop` turns true
    /// (the worker, at shutdown): what was done stays done, and the run is audited as
    /// stopped.
    pub(crate) async fn run_maintenance_until(
        &self,
        trigger: MaintenanceTrigger,
        actor: Option<Uuid>,
        dry_run: bool,
        progress: &(dyn Fn(&MaintenanceReport) + Sync),
        stop: Option<&tokio::sync::watch::Receiver<bool>>,
    ) -> Result<MaintenanceReport> {
        if let Some(node) = &self.config.local_node {
            return Err(ServiceError::UpstreamOnly(format!(
                "this server is a local node of {}: its upstream decides what is archived; \
                 run maintenance there",
                node.upstream
            )));
        }
        let Some(mut lease) = self.store.maintenance_lease().await? else {
            return Err(ServiceError::conflict(
                "a maintenance run is already in progress on this database; try again once it ends",
            ));
        };
        let mut report = MaintenanceReport {
            dry_run,
            trigger: Some(trigger),
            ..MaintenanceReport::default()
        };
        let stopping = || stop.is_some_and(|s| *s.borrow());
        // Erases that were interrupted first: they were asked for and promised.
        let mut outcome = if dry_run {
            Ok(())
        } else {
            self.resume_erasures().await.map(|done| {
                report.erasures_finished = done.len() as u64;
            })
        };
        // The bin next: what was deleted long enough ago is not archived or packed.
        if outcome.is_ok() {
            outcome = self
                .purge_bin(&mut *lease, actor, &mut report, progress, &stopping)
                .await;
        }
        if outcome.is_ok() {
            outcome = self
                .archive_by_rules(&mut *lease, actor, &mut report, progress, stop)
                .await;
        }
        if outcome.is_ok() {
            outcome = self
                .compress_old_bodies(&mut *lease, actor, &mut report, progress, &stopping)
                .await;
        }
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "maintenance: the lease is let go when its connection closes");
        }
        let stopped = stopping();
        // The run is audited as a whole (each round was, with its ids), failed or not.
        let outcome_text = if outcome.is_ok() {
            "success"
        } else {
            "failure"
        };
        let mut event = AuditEvent::new("maintenance.run", outcome_text).details(json!({
            "trigger": trigger,
            "dry_run": dry_run,
            "stopped_early": stopped,
            "threads_archived": report.threads_archived,
            "attachment_files_removed": report.attachment_files_removed,
            "embeddings_removed": report.embeddings_removed,
            "blob_files_deleted": report.blob_files_deleted,
            "messages_compressed": report.messages_compressed,
            "purged": report.purged,
            "purged_attachments": report.purged_attachments,
            "purged_changes": report.purged_changes,
            "compressed_bytes_before": report.compressed_bytes_before,
            "compressed_bytes_after": report.compressed_bytes_after,
        }));
        event.actor = actor;
        self.audit_now(event).await?;
        outcome?;
        tracing::info!(
            trigger = ?trigger,
            dry_run,
            threads = report.threads_archived,
            files = report.attachment_files_removed,
            embeddings = report.embeddings_removed,
            compressed = report.messages_compressed,
            "maintenance run finished"
        );
        Ok(report)
    }

    /// The rules in force: the server's for every workspace outside an organization with
    /// a policy of its own, then each such organization's.
    async fn archive_rules(&self) -> Result<Vec<Rule>> {
        let policies = self.store.archive_policies().await?;
        let mut rules = vec![Rule {
            scope: RuleScope::ServerDefault {
                except: policies.iter().map(|(id, _)| *id).collect(),
            },
            days: self.config.archive_after_days,
        }];
        rules.extend(policies.into_iter().map(|(organization, days)| Rule {
            scope: RuleScope::Organization(organization),
            days: days.clamp(0, i64::from(u32::MAX)) as u32,
        }));
        rules.retain(|rule| rule.days > 0);
        Ok(rules)
    }

    async fn archive_by_rules(
        &self,
        lease: &mut dyn Lease,
        actor: Option<Uuid>,
        report: &mut MaintenanceReport,
        progress: &(dyn Fn(&MaintenanceReport) + Sync),
        stop: Option<&tokio::sync::watch::Receiver<bool>>,
    ) -> Result<()> {
        let started = now();
        let stopping = || stop.is_some_and(|s| *s.borrow());
        for rule in self.archive_rules().await? {
            let idle_before = started - time::Duration::days(i64::from(rule.days));
            let mut rule_report = ArchiveRuleReport {
                organization_id: match rule.scope {
                    RuleScope::Organization(id) => Some(id),
                    RuleScope::ServerDefault { .. } => None,
                },
                archive_after_days: rule.days,
                threads: 0,
            };
            let mut after = None;
            loop {
                if stopping() {
                    report.rules.push(rule_report);
                    return Ok(());
                }
                // Another node may have taken the lease if this one lost its connection.
                lease.check().await?;
                let query = ArchiveQuery {
                    scope: rule.scope.clone(),
                    idle_before,
                    after,
                    limit: ROUND,
                };
                let candidates = self.store.archive_candidates(query).await?;
                let Some(last) = candidates.last() else {
                    break;
                };
                after = Some((last.last_message_at, last.thread));
                let archived = if report.dry_run {
                    self.preview_round(&candidates, report).await?
                } else {
                    let threads: Vec<Uuid> = candidates.iter().map(|c| c.thread).collect();
                    self.archive_threads(&threads, idle_before, actor, report)
                        .await?
                };
                rule_report.threads += archived;
                progress(report);
                if candidates.len() < ROUND as usize {
                    break;
                }
            }
            report.rules.push(rule_report);
        }
        Ok(())
    }

    /// What archiving these threads would remove, added to the report.
    async fn preview_round(
        &self,
        candidates: &[ArchiveCandidate],
        report: &mut MaintenanceReport,
    ) -> Result<u64> {
        let threads: Vec<Uuid> = candidates.iter().map(|c| c.thread).collect();
        let footprint = self.store.archive_footprint(threads).await?;
        report.threads_archived += candidates.len() as u64;
        report.messages_in_archived_threads += footprint.messages;
        report.attachment_files_removed += footprint.attachment_files;
        report.attachment_bytes_removed += footprint.attachment_bytes.max(0) as u64;
        report.embeddings_removed += footprint.embeddings;
        report.embedding_bytes_removed += footprint.embedding_bytes.max(0) as u64;
        Ok(candidates.len() as u64)
    }

    /// Archives those of `threads` that are, when written, idle since before
    /// `idle_before` (and neither pinned, archived nor in the bin), in one transaction,
    /// then deletes the files no row names any more; adds what it did to `report` and
    /// answers how many threads it archived. A maintenance path: it reaches every
    /// tenant's threads, so it is for the job and administrators' tools, never a request.
    pub async fn archive_threads(
        &self,
        threads: &[Uuid],
        idle_before: time::OffsetDateTime,
        actor: Option<Uuid>,
        report: &mut MaintenanceReport,
    ) -> Result<u64> {
        let threads = threads.to_vec();
        let mut event = AuditEvent::new("maintenance.archive", "success");
        event.actor = actor;
        let (audit, chain) = self.audit_parts(event);
        let batch = WriteBatch::new(ceneca_store::Actor {
            user_id: actor,
            ..Default::default()
        })
        .push(WriteOp::Archive {
            threads,
            idle_before,
            audit,
            chain,
        });
        let writing = Instant::now();
        let rows = self.store.apply(batch).await?;
        report.database_us += writing.elapsed().as_micros() as u64;
        let (audit_entry, files) = rows.split_first().ok_or(ServiceError::Internal(
            "an archive returned no audit entry".into(),
        ))?;
        let details = match audit_entry.get("details") {
            Some(Value::Json(details)) => details.clone(),
            _ => serde_json::Value::Null,
        };
        let count = |name: &str| details[name].as_u64().unwrap_or(0);
        let archived = details["threads"].as_array().map_or(0, Vec::len) as u64;
        report.threads_archived += archived;
        report.messages_in_archived_threads += count("messages_kept");
        report.attachment_files_removed += count("attachment_files_removed");
        report.attachment_bytes_removed += count("attachment_bytes_removed");
        report.embeddings_removed += count("embeddings_removed");
        report.embedding_bytes_removed += count("embedding_bytes_removed");
        self.remove_files_of(files, Some(crate::attachments::SWEEP_GRACE), report)
            .await?;
        Ok(archived)
    }
}

impl Services {
    /// After a round that let attachments go (`rows`, as they were): deletes each blob
    /// they named, file and thumbnail, that no row names any more and that was written
    /// before the sweep's grace (an upload in another process may be about to name a
    /// newer one; the sweep takes it later). Adds what it did to `report`.
    async fn remove_files_of(
        &self,
        rows: &[Record],
        grace: Option<std::time::Duration>,
        report: &mut MaintenanceReport,
    ) -> Result<()> {
        let deleting = Instant::now();
        let mut keys: Vec<BlobKey> = rows
            .iter()
            .flat_map(|row| ["storage_key", "thumbnail_key"].map(|c| row.get(c)))
            .filter_map(|value| value.and_then(Value::as_str))
            .filter_map(BlobKey::parse)
            .collect();
        keys.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        keys.dedup();
        for key in keys {
            if self.remove_blob_if_unnamed(&key, grace).await? {
                report.blob_files_deleted += 1;
            }
        }
        report.files_us += deleting.elapsed().as_micros() as u64;
        Ok(())
    }
}
