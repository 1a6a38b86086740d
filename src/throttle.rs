//! "At most once per interval" on the injected clock, without a lock: the one limiter behind
//! scheduled metadata refreshes, on-demand key refreshes (a token names an unknown key) and
//! discovery retries, so none of them can be turned into a flood of requests to a provider.

use crate::clock::UnixSeconds;
use std::sync::atomic::{AtomicI64, Ordering};

/// When something last happened, and the rule for claiming the next turn.
#[derive(Debug)]
pub struct Throttle {
    last: AtomicI64,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

impl Throttle {
    /// Never happened: the first claim succeeds.
    pub const fn new() -> Self {
        Self {
            last: AtomicI64::new(UnixSeconds::MIN),
        }
    }

    /// Claims a turn when the last one is at least `min_interval` seconds before `now`. Of
    /// several callers at once exactly one wins (compare-and-swap), so concurrent requests
    /// cannot each start the same fetch.
    pub fn try_claim(&self, now: UnixSeconds, min_interval: i64) -> bool {
        let last = self.last.load(Ordering::SeqCst);
        now.saturating_sub(last) >= min_interval
            && self
                .last
                .compare_exchange(last, now, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// Records a turn taken at `at` (a successful scheduled refresh, or a back-dated time so
    /// the next turn comes sooner after a failure).
    pub fn mark(&self, at: UnixSeconds) {
        self.last.store(at, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_turn_per_interval() {
        let t = Throttle::new();
        assert!(t.try_claim(1_000, 60));
        assert!(!t.try_claim(1_059, 60));
        assert!(t.try_claim(1_060, 60));
    }

    #[test]
    fn of_many_threads_at_once_exactly_one_wins() {
        let t = std::sync::Arc::new(Throttle::new());
        let wins: usize = (0..8)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || t.try_claim(5_000, 60) as usize)
            })
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(wins, 1);
    }

    #[test]
    fn a_back_dated_mark_brings_the_next_turn_forward() {
        let t = Throttle::new();
        assert!(t.try_claim(10_000, 3_600));
        t.mark(10_000 - 3_600 + 300);
        assert!(!t.try_claim(10_299, 3_600));
        assert!(t.try_claim(10_300, 3_600));
    }
}
