//! Exports run as jobs: an account that stores more than `export.job_threshold_bytes`
//! (or a client that asks, `?job=true`) gets 202 at once, the archive is written in the
//! background and read later from `GET /exports/{id}/content`, until it expires
//! (`export.keep_hours`).
//!
//! The archive holds the account's data in the clear, so it is never on disk in the clear:
//! it is sealed as it is written (`ceneca_crypto::sealed_file`, bound to the job's id),
//! under `<data_dir>/exports`, and opened — every chunk authenticated, the whole checked
//! against its recorded SHA-256 — as it is read. A job is the requester's: only the
//! account that asked, with a whole-account session, sees or reads it (others: 404).
//!
//! A finished job is recorded beside its archive (`<id>.json`, written by rename), so a
//! restart keeps it; a job a restart cut short leaves an archive without a record, which
//! the next start deletes. Jobs live on the server that ran them: behind a load balancer
//! with several nodes, read them from that node (or share the data folder's `exports`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ceneca_domain::clock::now;
use ceneca_domain::output::format_time;
use ceneca_store::UsageOf;
use ceneca_wire::export::{ExportJob, ExportJobStatus};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use super::ExportPermit;
use crate::audit::AuditEvent;
use crate::backup::BackupFile;
use crate::backup::sealing::{SealingWriter, open};
use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

/// The export jobs of this server, and where their archives are.
pub struct ExportJobs {
    dir: PathBuf,
    jobs: Mutex<BTreeMap<Uuid, Recorded>>,
}

/// A job as its record keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Recorded {
    /// The account that asked: the only one that may see it.
    requester: Uuid,
    job: ExportJob,
}

impl ExportJobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Uuid, Recorded>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn archive(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{}.zip.sealed", id.simple()))
    }
    fn record(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{}.json", id.simple()))
    }

    /// Opens the folder: finished jobs come back, what a restart cut short or what
    /// expired goes.
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let jobs = Self {
            dir,
            jobs: Mutex::default(),
        };
        let at = now();
        let mut kept = BTreeMap::new();
        for entry in std::fs::read_dir(&jobs.dir)?.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            // Read only a regular file (a pipe would never end), bounded.
            let recorded = std::fs::symlink_metadata(&path)
                .ok()
                .filter(|m| m.file_type().is_file() && m.len() <= 64 * 1024)
                .and_then(|_| std::fs::read(&path).ok())
                .and_then(|bytes| serde_json::from_slice::<Recorded>(&bytes).ok())
                .filter(|r| expiry(&r.job).is_some());
            match recorded {
                Some(r) if !expired(&r.job, at) && r.job.status != ExportJobStatus::Running => {
                    kept.insert(r.job.id, r);
                }
                _ => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        for entry in std::fs::read_dir(&jobs.dir)?.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name
                .split('.')
                .next()
                .and_then(|id| Uuid::parse_str(id).ok());
            let ready = id.and_then(|id| kept.get(&id)).is_some_and(|r| {
                r.job.status == ExportJobStatus::Ready && path == jobs.archive(r.job.id)
            });
            let recorded = id.is_some_and(|id| path == jobs.record(id) && kept.contains_key(&id));
            // An archive a job (of this process or another one) is writing is locked by
            // it: only what nobody writes any more goes.
            if !ready && !recorded && unlocked(&path) {
                let _ = std::fs::remove_file(&path);
            }
        }
        *jobs.lock() = kept;
        Ok(jobs)
    }

    /// Removes the jobs past their time, with their files.
    fn expire(&self) {
        let at = now();
        let gone: Vec<Uuid> = self
            .lock()
            .iter()
            .filter(|(_, r)| expired(&r.job, at))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.remove(id);
        }
    }

    fn remove(&self, id: Uuid) {
        self.lock().remove(&id);
        let _ = std::fs::remove_file(self.record(id));
        let _ = std::fs::remove_file(self.archive(id));
    }

    /// Writes the record of a finished job, all or nothing.
    fn write_record(&self, recorded: &Recorded) -> std::io::Result<()> {
        let path = self.record(recorded.job.id);
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(recorded).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    }
}

fn expiry(job: &ExportJob) -> Option<OffsetDateTime> {
    job.expires_at
        .as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
}

fn expired(job: &ExportJob, at: OffsetDateTime) -> bool {
    expiry(job).is_some_and(|t| t <= at)
}

/// Whether nobody holds the lock of the file at `path` (a job writing its archive does).
fn unlocked(path: &std::path::Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => std::fs::File::open(path)
            .map(|f| f.try_lock().is_ok())
            .unwrap_or(true),
        _ => true,
    }
}

/// Finished jobs an account may keep at once (ready or failed, until they expire or it
/// deletes them): each holds an archive the size of its data on the server's disk.
const KEPT_PER_ACCOUNT: usize = 3;

/// What an archive is bound to: its job.
fn identity(id: Uuid) -> Vec<u8> {
    format!("ceneca-export/{id}").into_bytes()
}

/// The sealing writer an export writes into, shared so it can be finished after the
/// archive is.
#[derive(Clone)]
struct SharedSink(Arc<Mutex<Option<SealingWriter<std::io::BufWriter<std::fs::File>>>>>);

impl Write for SharedSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("the archive is closed")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

/// A ready job's archive, to be read ([`Services::write_export_job`]).
pub struct ExportJobContent {
    id: Uuid,
    user: Uuid,
    path: PathBuf,
    expected: BackupFile,
    actor: Uuid,
    source_ip: Option<String>,
    /// Bytes of the archive.
    pub bytes: u64,
}

impl Services {
    /// Where export jobs keep their archives (`<data_dir>/exports`); without it, every
    /// export streams.
    pub fn with_export_jobs(mut self, dir: PathBuf) -> std::io::Result<Self> {
        self.export_jobs = Some(Arc::new(ExportJobs::open(dir)?));
        Ok(self)
    }

    /// Whether the export of `user` runs as a job: as asked, else when the account
    /// stores more than `export.job_threshold_bytes` (its own workspaces' rows and files).
    pub async fn wants_export_job(&self, user: Uuid, asked: Option<bool>) -> Result<bool> {
        if let Some(asked) = asked {
            return Ok(asked);
        }
        if self.export_jobs.is_none() {
            return Ok(false);
        }
        Ok(self.used_bytes(UsageOf::User(user)).await? > self.config.export_job_threshold_bytes)
    }

    fn export_jobs(&self) -> Result<&Arc<ExportJobs>> {
        self.export_jobs.as_ref().ok_or_else(|| {
            ServiceError::Unavailable(
                "this server runs no export jobs: stream the export (job=false)".into(),
            )
        })
    }

    /// Starts the export `permit` allows as a job; answers it, running.
    pub async fn start_export_job(&self, permit: ExportPermit) -> Result<ExportJob> {
        let jobs = self.export_jobs()?.clone();
        let id = ceneca_domain::new_id();
        let job = ExportJob {
            id,
            user_id: permit.user,
            status: ExportJobStatus::Running,
            created_at: format_time(now()),
            finished_at: None,
            expires_at: None,
            archive_bytes: None,
            sha256: None,
            files: None,
            error: None,
            content_url: format!("/api/v1/exports/{id}/content"),
        };
        let requester = permit.actor;
        let kept = jobs
            .lock()
            .values()
            .filter(|r| r.requester == requester)
            .count();
        if kept >= KEPT_PER_ACCOUNT {
            return Err(ServiceError::RateLimited {
                message: format!(
                    "this account keeps {kept} export jobs: delete one (DELETE /api/v1/exports/{{id}}) or wait until one expires"
                ),
                retry_after_secs: 60,
            });
        }
        let path = jobs.archive(id);
        let file = std::fs::File::create_new(&path)
            .map_err(|e| ServiceError::Internal(format!("{}: {e}", path.display())))?;
        // Held until the job's record is written: no other process takes the archive for
        // one a crash left.
        file.try_lock()
            .map_err(|e| ServiceError::Internal(format!("{}: {e}", path.display())))?;
        let writer =
            SealingWriter::new(&self.keys, std::io::BufWriter::with_capacity(1 << 20, file))
                .map_err(|e| ServiceError::Internal(format!("{}: {e}", path.display())))?;
        jobs.lock().insert(
            id,
            Recorded {
                requester,
                job: job.clone(),
            },
        );
        let sink = SharedSink(Arc::new(Mutex::new(Some(writer))));
        let answer = job.clone();
        let services = self.clone();
        tokio::spawn(async move {
            let written = services
                .export_user(permit, Box::new(sink.clone()), &|_| {})
                .await;
            let sealed = match written {
                Ok(summary) => {
                    let writer = sink.0.lock().unwrap_or_else(|e| e.into_inner()).take();
                    let finished = tokio::task::spawn_blocking(move || {
                        let writer =
                            writer.ok_or_else(|| std::io::Error::other("the archive is closed"))?;
                        let (out, size, sha256) = writer.finish(&identity(id))?;
                        let file = out.into_inner().map_err(|e| e.into_error())?;
                        file.sync_all()?;
                        Ok::<_, std::io::Error>((size, sha256, file))
                    })
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|r| r);
                    finished.map(|(size, sha256, file)| (summary, size, sha256, file))
                }
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            let mut recorded = Recorded { requester, job };
            let at = now();
            recorded.job.finished_at = Some(format_time(at));
            recorded.job.expires_at = Some(format_time(at + services.config.export_keep));
            // The archive stays locked until its record is written.
            let mut open_archive = None;
            match sealed {
                Ok((summary, size, sha256, file)) => {
                    open_archive = Some(file);
                    recorded.job.status = ExportJobStatus::Ready;
                    recorded.job.archive_bytes = Some(size);
                    recorded.job.sha256 = Some(sha256);
                    recorded.job.files = Some(summary.files);
                }
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "an export job failed");
                    let _ = std::fs::remove_file(jobs.archive(id));
                    recorded.job.status = ExportJobStatus::Failed;
                    recorded.job.error = Some("the export failed; ask for a new one".into());
                }
            }
            if let Err(e) = jobs.write_record(&recorded) {
                tracing::warn!(job = %id, error = %e, "an export job's record was not written; it is lost at the next start");
            }
            drop(open_archive);
            // A job deleted meanwhile stays deleted.
            let mut map = jobs.lock();
            if let Some(slot) = map.get_mut(&id) {
                *slot = recorded;
            } else {
                drop(map);
                jobs.remove(id);
            }
        });
        Ok(answer)
    }

    /// The job `id` as its requester sees it; 404 for anyone else (API and device tokens
    /// too, as for the export itself) and once it expired.
    pub async fn export_job_as(&self, caller: &Caller, id: Uuid) -> Result<ExportJob> {
        Ok(self.job_of(caller, id).await?.job)
    }

    /// The job `id` if `caller` asked for it and may still export its account (an
    /// administrator no more, an account erased since: 404).
    async fn job_of(&self, caller: &Caller, id: Uuid) -> Result<Recorded> {
        let jobs = self
            .export_jobs()
            .map_err(|_| ServiceError::NotFound("export"))?;
        jobs.expire();
        let found = jobs
            .lock()
            .get(&id)
            .filter(|r| r.requester == caller.user_id)
            .cloned()
            .ok_or(ServiceError::NotFound("export"))?;
        self.authorize_export(caller, found.job.user_id)
            .await
            .map_err(|_| ServiceError::NotFound("export"))?;
        Ok(found)
    }

    /// Deletes every export job of or by the account `user` (its erase), running ones
    /// included (their archive goes when they end).
    pub(crate) fn drop_export_jobs_of(&self, user: Uuid) -> usize {
        let Some(jobs) = &self.export_jobs else {
            return 0;
        };
        let ids: Vec<Uuid> = jobs
            .lock()
            .values()
            .filter(|r| r.job.user_id == user || r.requester == user)
            .map(|r| r.job.id)
            .collect();
        for id in &ids {
            jobs.remove(*id);
        }
        ids.len()
    }

    /// The archive of the ready job `id`, for its requester; 409 while it runs or when it
    /// failed.
    pub async fn export_job_content_as(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<ExportJobContent> {
        let recorded = self.job_of(caller, id).await?;
        match recorded.job.status {
            ExportJobStatus::Running => {
                return Err(ServiceError::conflict(
                    "the export is still being written: ask GET /api/v1/exports/{id} until it is ready",
                ));
            }
            ExportJobStatus::Failed => {
                return Err(ServiceError::conflict(
                    "the export failed: ask for a new one",
                ));
            }
            ExportJobStatus::Ready => {}
        }
        let path = self.export_jobs()?.archive(id);
        if crate::backup::regular_file(&path).is_err() {
            // Gone from under the job (removed by hand): the job goes too.
            tracing::warn!(export = %id, "an export job's archive is missing; the job is removed");
            self.export_jobs()?.remove(id);
            return Err(ServiceError::NotFound("export"));
        }
        let bytes = recorded.job.archive_bytes.unwrap_or(0);
        Ok(ExportJobContent {
            id,
            user: recorded.job.user_id,
            path,
            expected: BackupFile {
                file: String::new(),
                size: bytes,
                sha256: recorded.job.sha256.clone().unwrap_or_default(),
            },
            actor: caller.user_id,
            source_ip: caller.source_ip.clone(),
            bytes,
        })
    }

    /// Writes the archive into `sink` (blocking: on the blocking pool), each chunk
    /// authenticated as it is read, and audits the read (`user.export_download`). A
    /// changed byte on disk ends the sink early.
    pub async fn write_export_job(
        &self,
        content: ExportJobContent,
        mut sink: Box<dyn Write + Send>,
    ) -> Result<()> {
        let keys = self.keys.clone();
        let (path, expected, id) = (content.path.clone(), content.expected.clone(), content.id);
        let read = tokio::task::spawn_blocking(move || {
            open(&keys, &path, &identity(id), Some(&expected), &mut sink)?;
            sink.flush()
                .map_err(|e| crate::backup::BackupError::Refused(e.to_string()))
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let mut event = AuditEvent::new(
            "user.export_download",
            if read.is_ok() { "success" } else { "failure" },
        )
        .on("users", Some(content.user))
        .details(json!({ "export_id": content.id, "archive_bytes": content.bytes }));
        event.actor = Some(content.actor);
        event.source_ip = content.source_ip;
        self.audit_now(event).await?;
        read.map_err(|e| ServiceError::Internal(format!("the export was not read: {e}")))
    }

    /// Deletes the job `id` and its archive, for its requester; 409 while it runs.
    pub async fn delete_export_job_as(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let recorded = self.job_of(caller, id).await?;
        if recorded.job.status == ExportJobStatus::Running {
            return Err(ServiceError::conflict(
                "the export is still being written: delete it once it ends",
            ));
        }
        self.export_jobs()?.remove(id);
        Ok(())
    }

    /// Deletes expired jobs every ten minutes until the server stops (spawned by `serve`).
    pub async fn run_export_expiry(self) {
        let Some(jobs) = self.export_jobs.clone() else {
            return;
        };
        let mut ticks = tokio::time::interval(Duration::from_secs(600));
        loop {
            ticks.tick().await;
            let jobs = jobs.clone();
            let _ = tokio::task::spawn_blocking(move || jobs.expire()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: Uuid, status: ExportJobStatus, expires_at: Option<String>) -> Recorded {
        Recorded {
            requester: Uuid::nil(),
            job: ExportJob {
                id,
                user_id: Uuid::nil(),
                status,
                created_at: format_time(now()),
                finished_at: None,
                expires_at,
                archive_bytes: None,
                sha256: None,
                files: None,
                error: None,
                content_url: String::new(),
            },
        }
    }

    #[test]
    fn a_restart_keeps_finished_jobs_and_drops_cut_and_expired_ones() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = ExportJobs::open(dir.path().join("exports")).unwrap();
        let later = Some(format_time(now() + time::Duration::hours(1)));
        let past = Some(format_time(now() - time::Duration::hours(1)));
        let (ready, failed, old, cut) = (
            ceneca_domain::new_id(),
            ceneca_domain::new_id(),
            ceneca_domain::new_id(),
            ceneca_domain::new_id(),
        );
        for (id, status, expires) in [
            (ready, ExportJobStatus::Ready, later.clone()),
            (failed, ExportJobStatus::Failed, later),
            (old, ExportJobStatus::Ready, past),
        ] {
            jobs.write_record(&job(id, status, expires)).unwrap();
        }
        for id in [ready, old, cut] {
            std::fs::write(jobs.archive(id), b"sealed").unwrap();
        }
        std::fs::write(jobs.dir.join("stray"), b"x").unwrap();
        let reopened = ExportJobs::open(jobs.dir.clone()).unwrap();
        let kept: Vec<Uuid> = reopened.lock().keys().copied().collect();
        let mut expected = vec![ready, failed];
        expected.sort();
        assert_eq!(kept, expected);
        assert!(reopened.archive(ready).exists());
        assert!(!reopened.archive(old).exists() && !reopened.record(old).exists());
        assert!(
            !reopened.archive(cut).exists(),
            "an archive without a record goes"
        );
        assert!(!reopened.dir.join("stray").exists());
    }

    #[test]
    fn regression_another_process_opening_the_folder_leaves_a_running_jobs_archive() {
        // Found by the attack: every command of the command line opens the folder, and
        // took the archive a server's job was writing for one a crash left.
        let dir = tempfile::tempdir().unwrap();
        let jobs = ExportJobs::open(dir.path().join("exports")).unwrap();
        let running = ceneca_domain::new_id();
        let file = std::fs::File::create_new(jobs.archive(running)).unwrap();
        file.lock().unwrap();
        // Another process: a lock held through another open file description.
        ExportJobs::open(jobs.dir.clone()).unwrap();
        assert!(jobs.archive(running).exists(), "a locked archive stays");
        drop(file);
        ExportJobs::open(jobs.dir.clone()).unwrap();
        assert!(!jobs.archive(running).exists(), "an abandoned one goes");
    }

    #[test]
    fn regression_a_record_that_is_a_pipe_is_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("exports");
        std::fs::create_dir(&folder).unwrap();
        let pipe = folder.join(format!("{}.json", ceneca_domain::new_id().simple()));
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&pipe)
                .status()
                .unwrap()
                .success()
        );
        let jobs = ExportJobs::open(folder).unwrap();
        assert!(jobs.lock().is_empty());
        assert!(!pipe.exists());
    }
}
