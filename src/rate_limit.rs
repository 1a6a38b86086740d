//! Per-client limits on sign-in starts and completions: a token bucket per client address
//! (after `proxy.trusted_proxies`; IPv6 by /64, what one subscriber usually holds), holding a
//! minute's allowance and refilling continuously. Sign-in is unauthenticated, and each
//! completion may cost a signature check: one address must not be able to buy unlimited work.
//! The defaults leave room for an office of hundreds behind one NAT signing in at 9 a.m.

use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Most addresses tracked at once; beyond, buckets that have refilled are dropped first, and
/// an address that finds no room is not limited (a spray of addresses must not grow memory).
const MAX_TRACKED: usize = 100_000;

/// One limit: `per_minute` events per client, at most `per_minute` at once.
#[derive(Debug)]
pub struct RateLimit {
    per_second: f64,
    burst: f64,
    buckets: DashMap<IpAddr, (f64, Instant)>,
    calls: AtomicU64,
}

impl RateLimit {
    /// A limit of `per_minute` (0: no limit).
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_second: f64::from(per_minute) / 60.0,
            burst: f64::from(per_minute),
            buckets: DashMap::new(),
            calls: AtomicU64::new(0),
        }
    }

    /// Takes one event for `client` at `now`; false when its allowance is spent.
    pub fn allow(&self, client: IpAddr, now: Instant) -> bool {
        if self.burst == 0.0 {
            return true;
        }
        if self.calls.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.sweep(now);
        }
        let key = bucket_key(client);
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&key) {
            self.sweep(now);
            if self.buckets.len() >= MAX_TRACKED {
                return true;
            }
        }
        let mut entry = self.buckets.entry(key).or_insert((self.burst, now));
        let (tokens, last) = *entry;
        let refilled = (tokens
            + now.saturating_duration_since(last).as_secs_f64() * self.per_second)
            .min(self.burst);
        if refilled >= 1.0 {
            *entry = (refilled - 1.0, now);
            true
        } else {
            *entry = (refilled, now);
            false
        }
    }

    /// Seconds until one more event is allowed, for `Retry-After`.
    pub fn retry_after(&self) -> u32 {
        if self.per_second > 0.0 {
            (1.0 / self.per_second).ceil() as u32
        } else {
            0
        }
    }

    /// Forgets clients whose bucket is full again (they are indistinguishable from new ones).
    fn sweep(&self, now: Instant) {
        self.buckets.retain(|_, (tokens, last)| {
            *tokens + now.saturating_duration_since(*last).as_secs_f64() * self.per_second
                < self.burst
        });
    }
}

/// IPv4 addresses as they are; IPv6 by their /64.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_minutes_allowance_then_a_steady_trickle_per_client() {
        let limit = RateLimit::new(60);
        let t0 = Instant::now();
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let b: IpAddr = "198.51.100.8".parse().unwrap();
        assert!((0..60).all(|_| limit.allow(a, t0)), "a burst of 60 fits");
        assert!(!limit.allow(a, t0), "the 61st does not");
        assert!(limit.allow(b, t0), "another client has its own allowance");
        assert!(!limit.allow(a, t0 + Duration::from_millis(500)));
        assert!(
            limit.allow(a, t0 + Duration::from_millis(1100)),
            "one per second refills"
        );
        assert!(!limit.allow(a, t0 + Duration::from_millis(1200)));
        assert_eq!(limit.retry_after(), 1);
        // A whole /64 is one client.
        let v6a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert!((0..60).all(|_| limit.allow(v6a, t0)));
        assert!(!limit.allow(v6b, t0));
        // Refilled buckets are forgotten.
        limit.sweep(t0 + Duration::from_secs(120));
        assert!(limit.buckets.is_empty());
        // Zero: no limit.
        let off = RateLimit::new(0);
        assert!((0..10_000).all(|_| off.allow(a, t0)));
    }
}
