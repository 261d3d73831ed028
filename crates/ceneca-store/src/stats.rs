//! What the store tells about its connections, for monitoring (`GET /metrics`): how many
//! are busy, and how long writes wait for one. Counted with atomics only, so keeping the
//! figures costs a write a few uncontended atomic additions and never a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the write-wait histogram's buckets: from "the writer was
/// free" to "something held it for seconds".
pub const WAIT_BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5,
];

/// A histogram of waits, kept with atomics (no lock).
#[derive(Debug, Default)]
pub struct WaitHistogram {
    /// Per bucket of [`WAIT_BUCKETS`], then one for waits above the last bound.
    buckets: [AtomicU64; WAIT_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl WaitHistogram {
    pub fn observe(&self, wait: Duration) {
        let seconds = wait.as_secs_f64();
        let slot = WAIT_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(WAIT_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The figures now. Read without a lock, so a wait being recorded may show in one
    /// figure and not yet in another; monitoring tolerates that.
    pub fn snapshot(&self) -> WaitSnapshot {
        WaitSnapshot {
            buckets: WAIT_BUCKETS
                .iter()
                .copied()
                .chain(std::iter::once(f64::INFINITY))
                .zip(self.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
                .collect(),
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// A histogram's figures: per bucket (upper bound, waits in that bucket alone — not
/// cumulative), the last bound infinite.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WaitSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

/// One group of connections.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolGroup {
    /// `writer` and `readers` on SQLite; `pool` on PostgreSQL.
    pub name: &'static str,
    /// Connections doing work now.
    pub in_use: u64,
    /// Open connections waiting for work.
    pub idle: u64,
    /// The most there may be (`None`: no fixed bound, e.g. SQLite readers beyond the idle
    /// ones are opened on demand).
    pub max: Option<u64>,
}

/// The store's connections and write waits.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStats {
    pub groups: Vec<PoolGroup>,
    /// Writes waiting now for the SQLite writer, or for a PostgreSQL connection.
    pub writes_waiting: u64,
    /// How long writes waited for the SQLite writer (or a PostgreSQL connection) before
    /// their transaction could start.
    pub write_wait: WaitSnapshot,
}

/// A gauge of things in progress that goes back down when its guard is dropped, even if
/// the work panics or its future is cancelled.
#[derive(Debug, Default)]
pub struct InFlight(AtomicU64);

impl InFlight {
    pub fn enter(&self) -> InFlightGuard<'_> {
        self.0.fetch_add(1, Ordering::Relaxed);
        InFlightGuard(&self.0)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// One more, left with [`InFlight::leave`]: for work that outlives a scope (a write
    /// waiting in the group-commit queue).
    pub fn arrive(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn leave(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
}

pub struct InFlightGuard<'a>(&'a AtomicU64);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_land_in_their_bucket_and_the_sum_adds_up() {
        let h = WaitHistogram::default();
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets.len(), WAIT_BUCKETS.len() + 1);
        assert_eq!(s.buckets[0], (0.000_05, 1));
        assert_eq!(s.buckets[6], (0.005, 1));
        assert_eq!(s.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!((s.sum_seconds - 10.003_01).abs() < 1e-9);
    }

    #[test]
    fn in_flight_goes_back_down_when_the_guard_drops() {
        let g = InFlight::default();
        {
            let _a = g.enter();
            let _b = g.enter();
            assert_eq!(g.get(), 2);
        }
        assert_eq!(g.get(), 0);
    }
}
