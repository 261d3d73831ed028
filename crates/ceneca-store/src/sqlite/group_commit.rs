//! Group commit: write batches that arrive while the writer is busy share one SQLite
//! transaction.
//!
//! SQLite has one writer, so concurrent batches queue for it anyway; what each paid on
//! its own was the transaction around it — `BEGIN IMMEDIATE`, the WAL frames of every page
//! it touched, the commit record and the WAL index update. Here each batch joins a queue;
//! whoever finds no writer draining it starts one on the blocking pool, which takes what
//! waits (up to [`MAX_GROUP`] batches) and applies them in arrival order inside one
//! `BEGIN IMMEDIATE … COMMIT`, each under a savepoint of its own:
//!
//! - a batch that fails rolls back to its savepoint: only it is undone, and it is answered
//!   with its error at once (it changed nothing);
//! - the others are answered after the `COMMIT` that holds them, never before, with the
//!   audit chain's watchers and the change feed told then, as for a batch alone;
//! - a failure that ends the whole transaction (an I/O error, a full disk) fails the
//!   batches applied so far in it, and the rest start a new transaction.
//!
//! Everything inside a batch — the audit chain's link read under the writer, counters,
//! change-log rows, full-text triggers — runs exactly as it did, against the state the
//! batches before it in the group left: a group is those batches one after another.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ceneca_domain::Record;
use ceneca_domain::clock::HybridClock;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::{SqliteExec, SqliteStats, map_error};
use crate::ops::{Applied, apply_batch, run_ready};
use crate::write::WriteBatch;
use crate::{Result, StoreError};

/// The most batches one transaction holds: a bound on how long the first of them waits
/// for its answer behind the others.
pub(super) const MAX_GROUP: usize = 64;

/// One batch waiting for the writer, and who waits for its answer.
struct Job {
    batch: WriteBatch,
    queued: Instant,
    reply: oneshot::Sender<Result<Vec<Record>>>,
}

/// The queue, whether a drainer runs, and what it works with.
pub(super) struct GroupCommit {
    queue: Mutex<VecDeque<Job>>,
    draining: AtomicBool,
    writer: Writer,
}

/// What a drainer works with: the store's writer connection and what it tells after a
/// commit.
pub(super) struct Writer {
    pub conn: Arc<Mutex<Connection>>,
    pub clock: Arc<HybridClock>,
    pub changes: Arc<tokio::sync::watch::Sender<u64>>,
    pub stats: Arc<SqliteStats>,
    /// The checkpointer's wake-up, held weakly: the checkpointer stops when its own
    /// handle goes.
    pub written: std::sync::Weak<std::sync::mpsc::SyncSender<()>>,
}

impl GroupCommit {
    /// Applies `batch` in the next group; answers once the transaction holding it has
    /// committed (or with the batch's own error).
    pub(super) fn new(writer: Writer) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            draining: AtomicBool::new(false),
            writer,
        }
    }

    pub(super) async fn apply(self: &Arc<Self>, batch: WriteBatch) -> Result<Vec<Record>> {
        let writer = &self.writer;
        let (reply, answer) = oneshot::channel();
        writer.stats.waiting.arrive();
        writer.stats.writes.arrive();
        self.lock().push_back(Job {
            batch,
            queued: Instant::now(),
            reply,
        });
        if !self.draining.swap(true, Ordering::AcqRel) {
            let group = self.clone();
            tokio::task::spawn_blocking(move || group.drain());
        }
        answer
            .await
            .map_err(|_| StoreError::Backend("the writer stopped before answering".into()))?
    }

    /// Batches waiting for a group (not yet taken by a drainer).
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies groups until the queue is empty.
    fn drain(&self) {
        let writer = &self.writer;
        loop {
            // The writer first, then the queue: what arrived while another user held the
            // writer joins this group.
            let mut conn = writer.conn.lock().unwrap_or_else(|p| p.into_inner());
            let jobs: Vec<Job> = {
                let mut queue = self.lock();
                let n = queue.len().min(MAX_GROUP);
                queue.drain(..n).collect()
            };
            if jobs.is_empty() {
                drop(conn);
                self.draining.store(false, Ordering::Release);
                // A batch queued after the take above found a drainer running and started
                // none: this one goes on unless another has started since.
                if self.lock().is_empty() || self.draining.swap(true, Ordering::AcqRel) {
                    return;
                }
                continue;
            }
            writer.stats.waiting.leave(jobs.len() as u64);
            for job in &jobs {
                writer.stats.write_wait.observe(job.queued.elapsed());
            }
            let n = jobs.len() as u64;
            writer.stats.groups.fetch_add(1, Ordering::Relaxed);
            // A panic in a batch must not leave the queue without a drainer: its group's
            // transaction rolls back as the stack unwinds, its callers' answers are
            // dropped (they get an error, as a failed writer task gave them), and the
            // loop goes on.
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_group(&mut conn, writer, jobs)
            }));
            if ran.is_err() {
                tracing::error!("a write batch panicked; its group was rolled back");
            }
            drop(conn);
            writer.stats.writes.leave(n);
            // Full means a checkpoint is already due; gone means the store is closing.
            if let Some(wake) = writer.written.upgrade() {
                let _ = wake.try_send(());
            }
        }
    }
}

/// Applies `jobs` in one transaction, each under its own savepoint, and answers each.
fn run_group(conn: &mut Connection, writer: &Writer, jobs: Vec<Job>) {
    let mut jobs = jobs.into_iter();
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let why = map_error(e).to_string();
            for job in jobs {
                let _ = job.reply.send(Err(StoreError::Backend(why.clone())));
            }
            return;
        }
    };
    let mut applied: Vec<(Applied, oneshot::Sender<Result<Vec<Record>>>)> = Vec::new();
    while let Some(job) = jobs.next() {
        let outcome = tx.savepoint().map_err(map_error).and_then(|mut savepoint| {
            let done = run_ready(apply_batch(
                &mut SqliteExec { conn: &savepoint },
                &writer.clock,
                job.batch,
            ));
            match done {
                Ok(done) => savepoint.commit().map_err(map_error).map(|()| done),
                Err(e) => {
                    // Undoes this batch alone; the transaction goes on.
                    let _ = savepoint.rollback();
                    Err(e)
                }
            }
        });
        match outcome {
            Ok(done) => applied.push((done, job.reply)),
            Err(e) => {
                let _ = job.reply.send(Err(e));
                if tx.is_autocommit() {
                    // The engine ended the transaction (an I/O error, a full disk): what
                    // it held is gone with it; the batches not yet tried start again.
                    fail_all(
                        applied,
                        "the transaction holding this write was rolled back",
                    );
                    drop(tx);
                    let rest: Vec<Job> = jobs.collect();
                    if !rest.is_empty() {
                        run_group(conn, writer, rest);
                    }
                    return;
                }
            }
        }
    }
    match tx.commit() {
        Ok(()) => {
            for (done, reply) in applied {
                let _ = reply.send(Ok(done.committed(&writer.changes)));
            }
        }
        Err(e) => fail_all(applied, &map_error(e).to_string()),
    }
}

fn fail_all(applied: Vec<(Applied, oneshot::Sender<Result<Vec<Record>>>)>, why: &str) {
    for (_, reply) in applied {
        let _ = reply.send(Err(StoreError::Backend(why.to_owned())));
    }
}
