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

impl Services {
    async fn maintenance_loop(self, mut stop: watch::Receiver<bool>) {
        let hours = u64::from(self.config.maintenance_interval_hours);
        // No schedule: wait for a quota's call only.
        let every = Duration::from_secs(if hours == 0 {
            u64::MAX / 4
        } else {
            hours * 3600
        });
        let mut next = tokio::time::Instant::now() + every;
        loop {
            let trigger = tokio::select! {
                () = tokio::time::sleep_until(next) => MaintenanceTrigger::Schedule,
                () = self.maintenance_wanted.notify.notified() => MaintenanceTrigger::Quota,
                _ = stop.wait_for(|s| *s) => return,
            };
            if trigger == MaintenanceTrigger::Schedule {
                next = tokio::time::Instant::now() + every;
            }
            let run = self.run_maintenance(trigger, None, false, &|_| {});
            tokio::select! {
                outcome = run => {
                    if let Err(e) = outcome {
                        tracing::warn!(error = %e, trigger = ?trigger, "maintenance: the run failed; it runs again later");
                    }
                }
                // A stop during a run waits for its round's transaction (the future is
                // dropped between awaits; each round commits or rolls back whole).
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}
