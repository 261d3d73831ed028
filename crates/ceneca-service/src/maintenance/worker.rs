//! The maintenance worker: `serve` starts it beside the server (never on a local node,
//! whose upstream decides retention) and stops it after the server has stopped.

use std::time::Duration;

use ceneca_wire::maintenance::MaintenanceTrigger;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Services;

/// Runs maintenance every `retention.maintenance_interval_hours`, and soon after a write
/// finds its quota nearly full.
pub struct MaintenanceWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MaintenanceWorker {
    /// Starts the worker; `None` when neither a schedule nor a quota threshold is set.
    pub fn start(services: &Services) -> Option<Self> {
        let config = services.config();
        if config.maintenance_interval_hours == 0 && config.maintenance_at_percent == 0 {
            return None;
        }
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(services.clone().maintenance_loop(stopped));
        Some(Self { stop, task })
    }

    /// Asks the worker to stop and waits until it has: a round in progress finishes first.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "maintenance: ended abnormally");
        }
    }
}

/// How soon after start a server whose last run is unknown (or overdue) runs.
const FIRST_RUN_AFTER: Duration = Duration::from_secs(60);

impl Services {
    async fn maintenance_loop(self, mut stop: watch::Receiver<bool>) {
        let hours = u64::from(self.config.maintenance_interval_hours);
        // No schedule: wait for a quota's call only.
        let every = Duration::from_secs(if hours == 0 {
            u64::MAX / 4
        } else {
            hours * 3600
        });
        // The schedule survives restarts: the next run is due an interval after the last
        // one the audit trail records (a server restarted daily still runs daily).
        let mut next = tokio::time::Instant::now()
            + match self.since_last_maintenance().await {
                Some(since) if hours > 0 => every.saturating_sub(since).max(FIRST_RUN_AFTER),
                _ if hours > 0 => FIRST_RUN_AFTER,
                _ => every,
            };
        loop {
            let trigger = tokio::select! {
                () = tokio::time::sleep_until(next) => MaintenanceTrigger::Schedule,
                () = self.maintenance_wanted.notify.notified() => MaintenanceTrigger::Quota,
                _ = stop.wait_for(|s| *s) => return,
            };
            if trigger == MaintenanceTrigger::Schedule {
                next = tokio::time::Instant::now() + every;
            }
            // A stop during a run ends it between two rounds (each commits whole), audited.
            let run = self.run_maintenance_until(trigger, None, false, &|_| {}, Some(&stop));
            if let Err(e) = run.await {
                tracing::warn!(error = %e, trigger = ?trigger, "maintenance: the run failed; it runs again later");
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// How long ago the last maintenance run (not a dry run) ended, from the audit trail.
    async fn since_last_maintenance(&self) -> Option<Duration> {
        use ceneca_domain::scope::ScopeFilter;
        use ceneca_domain::{Value, model};
        let mut query = ceneca_store::ListQuery::new(ScopeFilter::All, "sequence", true, 20);
        query.equals = vec![("action", Value::Text("maintenance.run".into()))];
        let rows = self.store.list(&model::AUDIT_LOG, query).await.ok()?;
        let last = rows.iter().find(
            |row| !matches!(row.get("details"), Some(Value::Json(d)) if d["dry_run"] == true),
        )?;
        let at = last.get("at").and_then(Value::as_time)?;
        let since = ceneca_domain::clock::now() - at;
        Some(Duration::try_from(since).unwrap_or_default())
    }
}
