//! The certificates currently trusted to sign a provider's tokens: pinned ones plus the last
//! good set from federation metadata. Swapped atomically on refresh, so verification never
//! waits for a fetch, and a failed fetch leaves the last good set in place.

use super::metadata::TrustedCert;
use super::xmldsig::CertificateDer;
use crate::clock::UnixSeconds;
use crate::throttle::Throttle;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// Trusted signing certificates of one provider.
pub struct TrustStore {
    pinned: Vec<TrustedCert>,
    from_metadata: ArcSwap<Vec<TrustedCert>>,
    scheduled: Throttle,
    on_demand: Throttle,
}

impl TrustStore {
    /// A store holding the pinned certificates.
    pub fn new(pinned: Vec<TrustedCert>) -> Self {
        Self {
            pinned,
            from_metadata: ArcSwap::from_pointee(Vec::new()),
            scheduled: Throttle::new(),
            on_demand: Throttle::new(),
        }
    }

    /// Replaces the metadata certificates (a successful refresh).
    pub fn update(&self, certs: Vec<TrustedCert>, now: UnixSeconds) {
        self.from_metadata.store(Arc::new(certs));
        self.scheduled.mark(now);
    }

    /// Claims the scheduled refresh if the last successful one is older than `min_interval`
    /// seconds.
    pub fn claim_refresh(&self, now: UnixSeconds, min_interval: i64) -> bool {
        self.scheduled.try_claim(now, min_interval)
    }

    /// Claims an on-demand refresh (a token named an unknown key): at most one per
    /// `min_interval` seconds, so a stream of forged tokens cannot hammer the provider.
    pub fn claim_on_demand(&self, now: UnixSeconds, min_interval: i64) -> bool {
        self.on_demand.try_claim(now, min_interval)
    }

    /// Records a failed refresh so the schedule tries again after `retry_in` seconds rather than
    /// a whole interval later.
    pub fn refresh_failed(&self, now: UnixSeconds, retry_in: i64, interval: i64) {
        self.scheduled
            .mark(now.saturating_sub(interval).saturating_add(retry_in));
    }

    /// Certificates valid at `now`.
    pub fn current(&self, now: UnixSeconds) -> Vec<CertificateDer> {
        let metadata = self.from_metadata.load();
        self.pinned
            .iter()
            .chain(metadata.iter())
            .filter(|c| c.valid_at(now))
            .map(|c| c.der.clone())
            .collect()
    }

    /// Whether any certificate at all is known (start-up check).
    pub fn is_empty(&self) -> bool {
        self.pinned.is_empty() && self.from_metadata.load().is_empty()
    }
}
