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
const DEBOUNCE: Duration = Duration::from_millis(150);
/// The first retry after a failure; it doubles up to the interval.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// The running loop of one local node.
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

    /// Starts the loop and the stream follower; both end with the process.
    pub fn start(self) -> Result<JoinHandle<()>, NodeError> {
        let cursors = self.files.load_cursors()?;
        self.services.node_status().update(|s| {
            s.cursor = cursors.pulled;
            s.pushed = cursors.pushed;
        });
        let wake = Arc::new(Notify::new());
        tokio::spawn(follow(self.upstream.clone(), wake.clone(), self.interval));
        Ok(tokio::spawn(self.run(cursors, wake)))
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
                    tracing::warn!(
                        cursor = cursors.pulled,
                        "the upstream's log ends before this node's cursor (it was \
                         restored); reading its feed again from the start"
                    );
                    cursors.pulled = 0;
                    resynced = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let applied = self.services.apply_upstream(&page.changes).await?;
            for failure in &applied.failed {
                tracing::warn!(change = %failure, "a change from the upstream was not applied");
            }
            if applied.resync && !resynced {
                // A workspace the user has just been given: its history is behind the
                // cursor. Read the feed from the start (what is held is recognised).
                cursors.pulled = 0;
                resynced = true;
                self.files.save_cursors(*cursors)?;
                continue;
            }
            cursors.pulled = page
                .cursor
                .parse()
                .map_err(|_| UpstreamError::Protocol(format!("a cursor '{}'", page.cursor)))?;
            self.files.save_cursors(*cursors)?;
            let cursor = cursors.pulled;
            self.services.node_status().update(|s| s.cursor = cursor);
            if !page.has_more {
                return Ok(());
            }
        }
    }
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
