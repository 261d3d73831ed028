//! The sync loop of a local node. Each round pushes what this node made (its change log,
//! after the pushed cursor), then pulls the upstream's feed and applies it. A round runs
//! every `sync.interval_secs`, shortly after a local write, when the upstream's change
//! stream says something changed, and — after a failure — with exponential back-off.
//! The local API never waits for it: writes land in the local store at once, and what
//! is pending is the change log itself, so it survives a crash.

use std::sync::Arc;
use std::time::Duration;

use ceneca_service::Services;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::NodeError;
use crate::credentials::{Credentials, NodeFiles, SyncCursors};
use crate::upstream::{Upstream, UpstreamError};

/// Changes per push and per pull.
const PAGE: u32 = 1_000;
/// Local writes that follow each other within this are pushed together.
const DEBOUNCE: Duration = Duration::from_millis(10);
/// The first retry after a failure; it doubles up to the interval.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// The running loop of one local node.
#[derive(Clone)]
pub struct Replicator {
    services: Services,
    upstream: Upstream,
    credentials: Credentials,
    files: NodeFiles,
    interval: Duration,
}

impl Replicator {
    pub fn new(
        services: Services,
        upstream: Upstream,
        credentials: Credentials,
        files: NodeFiles,
        interval: Duration,
    ) -> Self {
        Self {
            services,
            upstream,
            credentials,
            files,
            interval,
        }
    }

    /// Starts the loop and the stream follower; both end with the process. The loop is
    /// supervised: a fault in it (a panic) is reported and the loop starts again from the
    /// cursors on disk.
    pub fn start(self) -> Result<JoinHandle<()>, NodeError> {
        let cursors = self.files.load_cursors()?;
        self.services.node_status().update(|s| {
            s.cursor = cursors.pulled;
            s.pushed = cursors.pushed;
        });
        let wake = Arc::new(Notify::new());
        tokio::spawn(follow(self.upstream.clone(), wake.clone(), self.interval));
        Ok(tokio::spawn(async move {
            let mut cursors = cursors;
            loop {
                let run = tokio::spawn(self.clone().run(cursors, wake.clone()));
                match run.await {
                    Ok(()) => return,
                    Err(e) if e.is_cancelled() => return,
                    Err(e) => {
                        tracing::error!(error = %e, "the sync loop failed; starting it again");
                        self.services.node_status().update(|s| {
                            s.online = false;
                            s.last_error = Some(format!("the sync loop failed: {e}"));
                        });
                        tokio::time::sleep(self.interval.min(Duration::from_secs(5))).await;
                        cursors = match self.files.load_cursors() {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::error!(error = %e, "the sync loop stops");
                                return;
                            }
                        };
                    }
                }
            }
        }))
    }

    async fn run(self, mut cursors: SyncCursors, wake: Arc<Notify>) {
        let mut local_writes = self.services.change_signal();
        let mut retry = FIRST_RETRY;
        loop {
            let wait = match self.round(&mut cursors).await {
                Ok(()) => {
                    retry = FIRST_RETRY;
                    self.services.node_status().update(|s| {
                        s.online = true;
                        s.last_error = None;
                        s.last_sync_at = Some(ceneca_domain::clock::now());
                    });
                    self.interval
                }
                Err(NodeError::Upstream(e)) if e.is_unauthorized() => {
                    // The device's token no longer opens the upstream: revoked, expired,
                    // the password changed or the account suspended there. What the
                    // upstream no longer trusts does not stay open here either.
                    tracing::error!(
                        error = %e,
                        "the upstream no longer accepts this device; local log-ins are \
                         locked until the device is enrolled again"
                    );
                    if let Err(e) = self.services.lock_adopted_account().await {
                        tracing::error!(error = %e, "the local account could not be locked");
                    }
                    self.services.node_status().update(|s| {
                        s.online = false;
                        s.last_error = Some(format!(
                            "{e}: the upstream no longer accepts this device; enrol it again \
                             (ceneca device enroll)"
                        ));
                    });
                    self.interval
                }
                Err(e) => {
                    let offline = matches!(e, NodeError::Upstream(UpstreamError::Unreachable(_)));
                    if offline {
                        tracing::debug!(error = %e, "the upstream is unreachable; working offline");
                    } else {
                        tracing::warn!(error = %e, "sync with the upstream failed");
                    }
                    self.services.node_status().update(|s| {
                        s.online = false;
                        s.last_error = Some(e.to_string());
                    });
                    let wait = retry;
                    retry = (retry * 2).min(self.interval.max(FIRST_RETRY));
                    wait
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = wake.notified() => {}
                changed = local_writes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Let a burst of writes finish, then push them together.
                    tokio::time::sleep(DEBOUNCE).await;
                    local_writes.borrow_and_update();
                }
            }
        }
    }

    /// One exchange now, from the cursors on disk (the first sync at enrolment).
    pub async fn sync_once(&self) -> Result<(), NodeError> {
        let mut cursors = self.files.load_cursors()?;
        self.round(&mut cursors).await
    }

    /// One exchange: push everything pending, then pull until the feed is read.
    async fn round(&self, cursors: &mut SyncCursors) -> Result<(), NodeError> {
        loop {
            let (changes, last) = self.services.pending_changes(cursors.pushed, PAGE).await?;
            let Some(last) = last else { break };
            if !changes.is_empty() {
                let answer = self
                    .upstream
                    .push(self.credentials.device_id, changes)
                    .await?;
                let refused: Vec<_> = answer
                    .results
                    .iter()
                    .filter(|r| r.outcome == ceneca_wire::sync::PushOutcome::Refused)
                    .collect();
                for r in &refused {
                    tracing::warn!(
                        change_id = %r.change_id,
                        reason = r.reason.as_deref().unwrap_or_default(),
                        field = r.field.as_deref().unwrap_or_default(),
                        "the upstream refused a change made here; it stays on this device only"
                    );
                }
                let count = refused.len() as u64;
                self.services.node_status().update(|s| s.refused += count);
            }
            cursors.pushed = last;
            self.files.save_cursors(*cursors)?;
            self.services.node_status().update(|s| s.pushed = last);
        }
        let mut resynced = false;
        loop {
            let page = match self.upstream.pull(cursors.pulled, PAGE).await {
                Ok(page) => page,
                Err(e) if e.is_gone() && !resynced => {
                    // What the upstream lost stays here (the snapshot keeps what the user
                    // still belongs to); it is not pushed again: this node's own changes
                    // without the deletes and edits others made after them would not bring
                    // the upstream back to where it was, only to somewhere else.
                    tracing::warn!(
                        cursor = cursors.pulled,
                        "the upstream's log ends before this node's cursor (it was \
                         restored from a backup); starting again from its snapshot. What \
                         the upstream lost stays on this node and is not sent again"
                    );
                    self.resync(cursors).await?;
                    resynced = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let next = parse_cursor(&page.cursor)?;
            moves_forward(cursors.pulled, next, page.has_more)?;
            let applied = self
                .services
                .apply_upstream(&page.changes, 0, cursors.pushed)
                .await?;
            self.report(&applied);
            if applied.resync.is_some() {
                // A workspace the user has just been given: its history is behind the
                // cursor. The snapshot brings it (and all else as it stands now); the
                // cursor stays here until it has.
                if resynced {
                    return Ok(());
                }
                tracing::info!("given a new workspace: reading the upstream's snapshot");
                self.resync(cursors).await?;
                resynced = true;
                continue;
            }
            cursors.pulled = next;
            self.files.save_cursors(*cursors)?;
            let cursor = cursors.pulled;
            self.services.node_status().update(|s| s.cursor = cursor);
            if !page.has_more {
                return Ok(());
            }
        }
    }

    /// Starts again from the upstream's snapshot: applies every page (what is held here
    /// is recognised), drops the workspaces and organizations the snapshot no longer
    /// shows (the revocations that said so may be behind the snapshot), then moves the
    /// cursor to the snapshot's `as_of`. Interrupted, it leaves the cursor where it was,
    /// so the next round starts it again.
    async fn resync(&self, cursors: &mut SyncCursors) -> Result<(), NodeError> {
        let (mut as_of, mut cursor) = (None, 0);
        let mut shown = ceneca_service::sync::Shown::default();
        loop {
            let page = self.upstream.snapshot(as_of, cursor, PAGE).await?;
            let at = parse_cursor(&page.as_of)?;
            let next = parse_cursor(&page.cursor)?;
            if as_of.is_some_and(|a| a != at) || next > at {
                return Err(UpstreamError::Protocol(format!(
                    "the snapshot answered as_of {at} and cursor {next} within a snapshot as \
                     of {as_of:?}"
                ))
                .into());
            }
            moves_forward(cursor, next, page.has_more)?;
            as_of = Some(at);
            shown.note(&page.changes);
            // No revocation is in a snapshot: what it shows is readable now.
            let applied = self
                .services
                .apply_upstream(&page.changes, i64::MAX, cursors.pushed)
                .await?;
            self.report(&applied);
            cursor = next;
            if !page.has_more {
                break;
            }
        }
        let lost = self.services.keep_only(&shown, cursors.pushed).await?;
        for lost in &lost {
            tracing::warn!("{lost}");
        }
        let count = lost.len() as u64;
        self.services.node_status().update(|s| s.refused += count);
        cursors.pulled = as_of.unwrap_or(cursors.pulled);
        self.files.save_cursors(*cursors)?;
        let cursor = cursors.pulled;
        self.services.node_status().update(|s| s.cursor = cursor);
        Ok(())
    }

    /// Logs what applying a page could not do, and counts what was lost.
    fn report(&self, applied: &ceneca_service::sync::UpstreamApplied) {
        for failure in &applied.failed {
            tracing::warn!(change = %failure, "a change from the upstream was not applied");
        }
        for lost in &applied.lost {
            tracing::warn!("{lost}");
        }
        if !applied.lost.is_empty() {
            let count = applied.lost.len() as u64;
            self.services.node_status().update(|s| s.refused += count);
        }
    }
}

/// A cursor the upstream answered.
fn parse_cursor(text: &str) -> Result<i64, UpstreamError> {
    text.parse()
        .map_err(|_| UpstreamError::Protocol(format!("a cursor '{text}'")))
}

/// A page of the feed must move the cursor forward (or, at the end, leave it): a feed
/// that does not would be read for ever, and one that goes back is not the feed read so
/// far.
fn moves_forward(before: i64, next: i64, has_more: bool) -> Result<(), UpstreamError> {
    if next < before || (has_more && next == before) {
        return Err(UpstreamError::Protocol(format!(
            "the feed answered cursor {next} after {before}: it must move forward"
        )));
    }
    Ok(())
}

/// Follows the upstream's change stream, waking the loop at each change; reconnects with
/// back-off while the upstream is away.
async fn follow(upstream: Upstream, wake: Arc<Notify>, interval: Duration) {
    let mut retry = FIRST_RETRY;
    loop {
        let opened = std::time::Instant::now();
        let result = upstream.follow_stream(|| wake.notify_one()).await;
        if opened.elapsed() > Duration::from_secs(30) {
            retry = FIRST_RETRY;
        }
        if let Err(e) = result {
            tracing::debug!(error = %e, "the upstream's change stream is closed");
        }
        // Reconnected: something may have changed while the stream was away.
        wake.notify_one();
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(interval.max(FIRST_RETRY));
    }
}

#[cfg(test)]
mod tests {
    use super::moves_forward;

    #[test]
    fn regression_a_feed_that_does_not_move_forward_is_refused() {
        assert!(moves_forward(2, 2, true).is_err(), "the same page for ever");
        assert!(moves_forward(5, 3, false).is_err(), "backwards");
        assert!(moves_forward(2, 2, false).is_ok(), "read to the end");
        assert!(moves_forward(2, 9, true).is_ok());
    }
}
