//! Counts of domain events the service sees, for monitoring: audit appends, sessions
//! created and ended, lock-outs. Atomic counters only (no lock, no I/O), read by the
//! server when it renders `GET /metrics`; the server owns HTTP figures and the format.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ceneca_domain::audit::ChainHead;
use ceneca_store::ChainWatcher;

/// The counters of one process (each node counts its own; a scraper adds them up).
#[derive(Debug, Default)]
pub struct ServiceMetrics {
    audit_appends: AtomicU64,
    sessions_login: AtomicU64,
    sessions_device: AtomicU64,
    sessions_api: AtomicU64,
    ended_logout: AtomicU64,
    ended_limit: AtomicU64,
    ended_revoked: AtomicU64,
    lockouts_login: AtomicU64,
    lockouts_secret: AtomicU64,
    callers_kept: AtomicU64,
    callers_read: AtomicU64,
}

/// The kind of credential a new session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Login,
    Device,
    Api,
}

/// Why sessions ended before their time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The holder logged out.
    Logout,
    /// A new log-in pushed the oldest beyond `max_sessions_per_user` out.
    Limit,
    /// An API token was revoked by its owner.
    Revoked,
}

/// Which repeated-failure lock refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lockout {
    /// Log-in attempts for an account or address past their failure allowance.
    Login,
    /// Password or second-factor checks behind a session past theirs.
    SecretCheck,
}

/// The counters' values at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceCounts {
    pub audit_appends: u64,
    /// Created sessions per kind: (log-in, device, API token).
    pub sessions_created: [(&'static str, u64); 3],
    /// Ended sessions per reason: (logout, limit, revoked).
    pub sessions_ended: [(&'static str, u64); 3],
    /// Refusals per lock: (login, secret_check).
    pub lockouts: [(&'static str, u64); 2],
    /// Authentications answered from the callers kept in memory, and read from the
    /// database: (kept, read).
    pub authentications: [(&'static str, u64); 2],
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl ServiceMetrics {
    pub fn session_created(&self, kind: SessionKind) {
        add(
            match kind {
                SessionKind::Login => &self.sessions_login,
                SessionKind::Device => &self.sessions_device,
                SessionKind::Api => &self.sessions_api,
            },
            1,
        );
    }
    pub fn sessions_ended(&self, why: SessionEnd, n: u64) {
        add(
            match why {
                SessionEnd::Logout => &self.ended_logout,
                SessionEnd::Limit => &self.ended_limit,
                SessionEnd::Revoked => &self.ended_revoked,
            },
            n,
        );
    }
    pub fn lockout(&self, which: Lockout) {
        add(
            match which {
                Lockout::Login => &self.lockouts_login,
                Lockout::SecretCheck => &self.lockouts_secret,
            },
            1,
        );
    }

    /// One authentication, answered from memory (`kept`) or read from the database.
    pub fn authenticated(&self, kept: bool) {
        add(
            if kept {
                &self.callers_kept
            } else {
                &self.callers_read
            },
            1,
        );
    }

    pub fn counts(&self) -> ServiceCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServiceCounts {
            audit_appends: get(&self.audit_appends),
            sessions_created: [
                ("login", get(&self.sessions_login)),
                ("device", get(&self.sessions_device)),
                ("api", get(&self.sessions_api)),
            ],
            sessions_ended: [
                ("logout", get(&self.ended_logout)),
                ("limit", get(&self.ended_limit)),
                ("revoked", get(&self.ended_revoked)),
            ],
            lockouts: [
                ("login", get(&self.lockouts_login)),
                ("secret_check", get(&self.lockouts_secret)),
            ],
            authentications: [
                ("kept", get(&self.callers_kept)),
                ("read", get(&self.callers_read)),
            ],
        }
    }
}

/// The audit chain's watcher: counts each committed append, then passes both notices on
/// to the head file when there is one. Counting here, where the store announces a commit,
/// counts appends that really committed, whichever use case wrote them.
pub(crate) struct CountingWatcher {
    pub(crate) metrics: Arc<ServiceMetrics>,
    pub(crate) next: Option<Arc<dyn ChainWatcher>>,
}

impl ChainWatcher for CountingWatcher {
    fn linking(&self, prev: &ChainHead) {
        if let Some(next) = &self.next {
            next.linking(prev);
        }
    }
    fn committed(&self, head: &ChainHead) {
        add(&self.metrics.audit_appends, 1);
        if let Some(next) = &self.next {
            next.committed(head);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_under_their_labels() {
        let m = Arc::new(ServiceMetrics::default());
        m.session_created(SessionKind::Device);
        m.sessions_ended(SessionEnd::Limit, 2);
        m.lockout(Lockout::SecretCheck);
        let watcher = CountingWatcher {
            metrics: m.clone(),
            next: None,
        };
        watcher.committed(&ChainHead::genesis());
        let c = m.counts();
        assert_eq!(c.audit_appends, 1);
        assert_eq!(c.sessions_created[1], ("device", 1));
        assert_eq!(c.sessions_created[0], ("login", 0));
        assert_eq!(c.sessions_ended[1], ("limit", 2));
        assert_eq!(c.lockouts[1], ("secret_check", 1));
    }
}
