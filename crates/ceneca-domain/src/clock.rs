//! Time: wall-clock timestamps at the precision both engines store, and the hybrid logical
//! clock that orders change-log entries across devices.

use std::sync::Mutex;

use time::OffsetDateTime;

/// Now, in UTC, truncated to microseconds (PostgreSQL's precision), so a value reads back
/// exactly as it was written on both engines.
pub fn now() -> OffsetDateTime {
    truncate_to_micros(OffsetDateTime::now_utc())
}

pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let micros = t.microsecond();
    t.replace_microsecond(micros).unwrap_or(t)
}

/// A hybrid logical clock (Kulkarni et al.): 48 bits of wall-clock milliseconds and 16 bits
/// of logical counter in one `u64`. Timestamps never go backwards and never repeat in a
/// process, even when the wall clock does, and `observe` folds in remote timestamps so a
/// device's later edit always sorts after what it has seen.
#[derive(Debug, Default)]
pub struct HybridClock {
    last: Mutex<u64>,
}

const LOGICAL_BITS: u32 = 16;

impl HybridClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new timestamp, greater than every one issued or observed before.
    pub fn tick(&self) -> u64 {
        self.advance(0)
    }

    /// Takes a remote timestamp into account; returns the next local one.
    pub fn observe(&self, remote: u64) -> u64 {
        self.advance(remote)
    }

    /// The wall clock now, as a timestamp with a logical counter of zero: what a remote
    /// stamp is judged against (`sync::refuse_future`), unmoved by the stamps observed.
    pub fn physical_now() -> u64 {
        Self::from_millis((OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64)
    }

    fn advance(&self, remote: u64) -> u64 {
        let physical = Self::physical_now();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let next = physical
            .max(last.saturating_add(1))
            .max(remote.saturating_add(1));
        *last = next;
        next
    }

    /// The wall-clock milliseconds part of a timestamp.
    pub fn millis(hlc: u64) -> u64 {
        hlc >> LOGICAL_BITS
    }

    /// The timestamp of a wall-clock millisecond with a logical counter of zero (the
    /// inverse of [`HybridClock::millis`]), for callers that judge stamps against a time.
    pub fn from_millis(millis: u64) -> u64 {
        millis << LOGICAL_BITS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_strictly_increase() {
        let clock = HybridClock::new();
        let mut prev = 0;
        for _ in 0..10_000 {
            let t = clock.tick();
            assert!(t > prev);
            prev = t;
        }
    }

    #[test]
    fn observing_a_future_timestamp_moves_past_it() {
        let clock = HybridClock::new();
        let future = clock.tick() + (1_000_000 << LOGICAL_BITS);
        assert!(clock.observe(future) > future);
        assert!(clock.tick() > future);
    }

    #[test]
    fn now_has_microsecond_precision() {
        assert_eq!(now().nanosecond() % 1_000, 0);
    }
}
