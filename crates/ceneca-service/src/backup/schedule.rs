//! The server's own backups: on a schedule (`backup.interval_hours`), and when a system
//! administrator asks (`POST /admin/backups`); the complete ones listed
//! (`GET /admin/backups`), the oldest removed beyond `backup.keep`.
//!
//! The schedule survives restarts: the next backup is due an interval after the newest
//! complete one in the folder, so a server restarted daily with a daily schedule still
//! takes one a day, and one that starts with none takes one at once.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ceneca_domain::clock::now;
use ceneca_domain::output::format_time;
use ceneca_wire::backup::{BackupItem, BackupList, BackupOutcome, BackupRun, BackupTrigger};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use std::sync::Arc;

use ceneca_crypto::KeyRing;

use super::PARTIAL;
use super::restore::read_manifest;
use crate::Services;
use crate::audit::AuditEvent;
use crate::caller::Caller;
use crate::error::{Result, ServiceError};

/// Where this server writes its backups, and what it is doing there.
pub struct BackupPlace {
    /// The backup folder (`backup.directory`).
    directory: PathBuf,
    /// Where the database snapshot is taken before it is sealed: the data folder.
    scratch: PathBuf,
    runs: Mutex<Runs>,
}

#[derive(Default)]
struct Runs {
    running: Option<BackupRun>,
    last: Option<BackupRun>,
}

impl BackupPlace {
    fn runs(&self) -> std::sync::MutexGuard<'_, Runs> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes a backup every `backup.interval_hours`; `serve` starts it beside the server.
pub struct BackupWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl BackupWorker {
    /// Starts the worker; `None` without a schedule or a backup folder.
    pub fn start(services: &Services) -> Option<Self> {
        if services.config().backup_interval_hours == 0 || services.backups.is_none() {
            return None;
        }
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(services.clone().backup_loop(stopped));
        Some(Self { stop, task })
    }

    /// Stops the worker. A backup being written is abandoned: its `.partial` folder is no
    /// backup, and the next run removes it.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        self.task.abort();
        let _ = self.task.await;
    }
}

/// How soon after start a server with no backup yet (or an overdue one) takes one.
const FIRST_BACKUP_AFTER: Duration = Duration::from_secs(5);

/// How long until the next scheduled backup: an interval after the newest complete one,
/// and never sooner than [`FIRST_BACKUP_AFTER`].
fn next_due(newest: Option<OffsetDateTime>, at: OffsetDateTime, every: Duration) -> Duration {
    let Some(newest) = newest else {
        return FIRST_BACKUP_AFTER;
    };
    let since = Duration::try_from(at - newest).unwrap_or_default();
    every.saturating_sub(since).max(FIRST_BACKUP_AFTER)
}

impl Services {
    /// Where the server's backups go (`directory`), the snapshot taken in `scratch` (the
    /// data folder).
    pub fn with_backups(mut self, directory: PathBuf, scratch: PathBuf) -> Self {
        self.backups = Some(std::sync::Arc::new(BackupPlace {
            directory,
            scratch,
            runs: Mutex::default(),
        }));
        self
    }

    fn backup_place(&self) -> Result<&std::sync::Arc<BackupPlace>> {
        self.backups.as_ref().ok_or_else(|| {
            ServiceError::Unavailable("this server has no backup folder configured".into())
        })
    }

    async fn backup_loop(self, mut stop: watch::Receiver<bool>) {
        let Some(place) = self.backups.clone() else {
            return;
        };
        let every = Duration::from_secs(u64::from(self.config.backup_interval_hours) * 3600);
        loop {
            let newest = newest_backup(self.keys.clone(), &place.directory).await;
            let wait = next_due(newest, now(), every);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.backup_now(BackupTrigger::Schedule, None).await {
                tracing::warn!(error = %e, "backup: the scheduled backup failed; it is tried again in an hour");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(3600).min(every)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }

    /// Takes a backup into the backup folder now, then removes the oldest complete ones
    /// beyond `backup.keep`; audited as `backup.create`, done or failed. 409 while
    /// another backup of this server runs.
    pub async fn backup_now(
        &self,
        trigger: BackupTrigger,
        actor: Option<Uuid>,
    ) -> Result<BackupRun> {
        let place = self.backup_place()?.clone();
        self.claim_backup_run(&place, trigger)?;
        Ok(self.finish_backup_run(&place, trigger, actor).await)
    }

    /// Marks a run as started: refused while another is.
    fn claim_backup_run(&self, place: &BackupPlace, trigger: BackupTrigger) -> Result<BackupRun> {
        let mut runs = place.runs();
        if runs.running.is_some() {
            return Err(ServiceError::conflict(
                "a backup is already being written: wait for it to end (GET /api/v1/admin/backups)",
            ));
        }
        let run = BackupRun {
            trigger,
            outcome: BackupOutcome::Running,
            started_at: format_time(now()),
            finished_at: None,
            backup: None,
            error: None,
            removed: Vec::new(),
        };
        runs.running = Some(run.clone());
        Ok(run)
    }

    /// Writes the backup of a claimed run, prunes, audits, and records how it ended.
    async fn finish_backup_run(
        &self,
        place: &BackupPlace,
        trigger: BackupTrigger,
        actor: Option<Uuid>,
    ) -> BackupRun {
        let mut run = place.runs().running.clone().unwrap_or(BackupRun {
            trigger,
            outcome: BackupOutcome::Running,
            started_at: format_time(now()),
            finished_at: None,
            backup: None,
            error: None,
            removed: Vec::new(),
        });
        let written = self.create_backup(&place.directory, &place.scratch).await;
        let mut details = json!({ "trigger": trigger });
        match &written {
            Ok(summary) => {
                run.outcome = BackupOutcome::Done;
                run.backup = summary
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned());
                details["backup_id"] = json!(summary.manifest.id);
                details["files"] = json!(summary.manifest.blobs.len());
                details["bytes"] = json!(summary.sealed_bytes);
                details["audit_head"] = json!(summary.manifest.audit_head);
                let keep = self.config.backup_keep.max(1) as usize;
                let written = run.backup.clone().unwrap_or_default();
                match prune(self.keys.clone(), &place.directory, keep, &written).await {
                    Ok(removed) => run.removed = removed,
                    Err(e) => {
                        tracing::warn!(error = %e, "backup: older backups could not be removed")
                    }
                }
                details["removed"] = json!(run.removed);
            }
            Err(e) => {
                run.outcome = BackupOutcome::Failed;
                run.error = Some(e.to_string());
                details["error"] = json!(e.to_string());
            }
        }
        run.finished_at = Some(format_time(now()));
        let outcome = if written.is_ok() {
            "success"
        } else {
            "failure"
        };
        let mut event = AuditEvent::new("backup.create", outcome).details(details);
        event.actor = actor;
        if let Err(e) = self.audit_now(event).await {
            tracing::warn!(error = %e, "backup: the run could not be audited");
        }
        match &written {
            Ok(summary) => tracing::info!(
                backup = %summary.path.display(),
                files = summary.manifest.blobs.len(),
                bytes = summary.sealed_bytes,
                removed = run.removed.len(),
                "backup written"
            ),
            Err(e) => tracing::warn!(error = %e, "backup: the run failed"),
        }
        let mut runs = place.runs();
        runs.running = None;
        runs.last = Some(run.clone());
        run
    }

    /// Starts a backup for `caller`, a system administrator (others: 404), and answers
    /// at once with the run; `GET /admin/backups` shows how it ends.
    pub async fn start_backup_as(&self, caller: &Caller) -> Result<BackupRun> {
        self.require_maintenance_caller(caller)?;
        let place = self.backup_place()?.clone();
        let run = self.claim_backup_run(&place, BackupTrigger::Manual)?;
        // A task of its own: the client does not wait, and cannot cut it short.
        let services = self.clone();
        let actor = Some(caller.user_id);
        tokio::spawn(async move {
            services
                .finish_backup_run(&place, BackupTrigger::Manual, actor)
                .await
        });
        Ok(run)
    }

    /// The backup folder as `caller`, a system administrator (others: 404), may see it.
    pub async fn list_backups_as(&self, caller: &Caller) -> Result<BackupList> {
        self.require_maintenance_caller(caller)?;
        let place = self.backup_place()?.clone();
        let items = list_backups(self.keys.clone(), &place.directory).await?;
        let hours = self.config.backup_interval_hours;
        let next_at = (hours > 0).then(|| {
            let newest = items.first().and_then(|i| parse_time(&i.created_at));
            let at = now();
            let wait = next_due(newest, at, Duration::from_secs(u64::from(hours) * 3600));
            format_time(at + wait)
        });
        let runs = place.runs();
        Ok(BackupList {
            interval_hours: hours,
            keep: self.config.backup_keep,
            next_at,
            running: runs.running.clone(),
            last_run: runs.last.clone(),
            items,
        })
    }

    /// Whether a backup of this process is being written (blob removal waits).
    pub(crate) fn backup_in_progress(&self) -> bool {
        self.backups_running.load(Ordering::SeqCst) > 0
    }

    /// Counts a backup as running until the guard drops.
    pub(crate) fn backup_running_guard(&self) -> RunningGuard {
        self.backups_running.fetch_add(1, Ordering::SeqCst);
        RunningGuard(self.backups_running.clone())
    }
}

/// A backup counted in [`Services::backup_in_progress`] while held.
pub(crate) struct RunningGuard(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// The complete backups of this deployment under `directory`, newest first: those whose
/// sealed manifest opens with `keys` (what it says is authenticated; a marker alone
/// is not). Anything else there — another deployment's backups, a `.partial` being
/// written, a folder that only looks like one — is neither listed nor ever removed. A
/// missing folder has none.
pub async fn list_backups(keys: Arc<KeyRing>, directory: &Path) -> Result<Vec<BackupItem>> {
    let directory = directory.to_owned();
    tokio::task::spawn_blocking(move || list_blocking(&keys, &directory))
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
}

fn list_blocking(keys: &KeyRing, directory: &Path) -> Result<Vec<BackupItem>> {
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ServiceError::Unavailable(format!(
                "the backup folder {} cannot be read: {e}",
                directory.display()
            )));
        }
    };
    let mut items = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.starts_with("ceneca-backup-") || name.ends_with(PARTIAL) {
            continue;
        }
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let Ok(manifest) = read_manifest(keys, &path) else {
            continue;
        };
        // The manifest is bound to its folder (named after its id when written) and to a
        // database file beside it: a copy of a real marker and manifest elsewhere (a
        // shell) is no backup, and never counts against the real one.
        let named = name.ends_with(&format!("-{}", &manifest.id[..12.min(manifest.id.len())]));
        let whole = super::regular_file(&path.join(&manifest.database.file)).is_ok();
        if !named || !whole {
            continue;
        }
        items.push(BackupItem {
            name: name.to_owned(),
            id: manifest.id,
            bytes: super::create::folder_size(&path),
            created_at: manifest.created_at,
            key_id: manifest.key_id,
        });
    }
    // Two folders with one id: at most one is the backup, and which cannot be told
    // without opening every file; neither is listed (nor ever removed).
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for item in &items {
        *seen.entry(item.id.clone()).or_default() += 1;
    }
    items.retain(|i| seen[&i.id] == 1);
    // Newest first: by the time each says, then by name.
    items.sort_by(|a, b| {
        let at = |i: &BackupItem| parse_time(&i.created_at);
        at(b).cmp(&at(a)).then_with(|| b.name.cmp(&a.name))
    });
    Ok(items)
}

/// When the newest complete backup under `directory` was taken.
async fn newest_backup(keys: Arc<KeyRing>, directory: &Path) -> Option<OffsetDateTime> {
    let items = list_backups(keys, directory).await.ok()?;
    items.first().and_then(|i| parse_time(&i.created_at))
}

/// Removes this deployment's complete backups beyond the `keep` newest, never `written`
/// (the one just taken, whatever the times say); answers their names.
async fn prune(
    keys: Arc<KeyRing>,
    directory: &Path,
    keep: usize,
    written: &str,
) -> Result<Vec<String>> {
    let items = list_backups(keys, directory).await?;
    let mut removed = Vec::new();
    let others = items.into_iter().filter(|i| i.name != written);
    for item in others.skip(keep.saturating_sub(1)) {
        let path = directory.join(&item.name);
        let gone = path.clone();
        // The marker first: a removal cut short leaves no folder that looks complete.
        tokio::task::spawn_blocking(move || {
            std::fs::remove_file(gone.join(super::MARKER))?;
            std::fs::remove_dir_all(&gone)
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .map_err(|e| super::BackupError::io(&path, e))?;
        removed.push(item.name);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_backup_is_due_an_interval_after_the_newest() {
        let day = Duration::from_secs(86_400);
        let at = now();
        assert_eq!(next_due(None, at, day), FIRST_BACKUP_AFTER);
        let six_hours_ago = at - time::Duration::hours(6);
        assert_eq!(
            next_due(Some(six_hours_ago), at, day),
            Duration::from_secs(18 * 3600)
        );
        // Overdue (the server was down), or a clock that went back: soon, never at once
        // nor never.
        let two_days_ago = at - time::Duration::days(2);
        assert_eq!(next_due(Some(two_days_ago), at, day), FIRST_BACKUP_AFTER);
        let ahead = at + time::Duration::hours(3);
        assert_eq!(next_due(Some(ahead), at, day), day);
    }
}
