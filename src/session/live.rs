//! A session as this instance holds it in memory: what requests need, and the times that
//! decide when it is checked again (store, directory).

use super::SessionId;
use crate::clock::UnixSeconds;
use crate::identity::Identity;
use std::sync::atomic::{AtomicI64, Ordering};

/// Per-session values derived once from the identity (header values, the signed assertion)
/// and kept in memory instead of the identity itself.
pub trait Prepared: Clone + Send + Sync + 'static {
    /// Until when the values may be used; after that a request derives them again from the
    /// stored identity.
    fn fresh_until(&self) -> UnixSeconds;
}

impl Prepared for () {
    fn fresh_until(&self) -> UnixSeconds {
        UnixSeconds::MAX
    }
}

/// A session in memory, shared by every request that presents its cookie. It holds no
/// identity: what requests need is in `prepared`, the rest stays sealed in the store.
pub struct LiveSession<P> {
    /// Session id.
    pub id: SessionId,
    /// Absolute expiry.
    pub expires_at: UnixSeconds,
    /// Per-session values derived from the identity (header values, the reusable assertion).
    pub prepared: P,
    /// When this copy must be checked against the store again (revocation by another
    /// instance, `session.cache_ttl`) or its prepared values re-derived, whichever is first.
    pub(super) revalidate_at: UnixSeconds,
    pub(super) last_seen: AtomicI64,
    pub(super) persisted_seen: AtomicI64,
    /// When the user directory last confirmed this session's user.
    pub(super) checked_at: AtomicI64,
    /// When a request should next look at the directory for this session (`i64::MIN`: work
    /// it out at the next request). Claimed with compare-and-swap, so of many concurrent
    /// requests one does the check.
    pub(super) next_check_at: AtomicI64,
}

impl<P> LiveSession<P> {
    /// Last time this session was used, as known to this instance.
    pub fn last_seen(&self) -> UnixSeconds {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// When the user directory last confirmed this session's user (0: never).
    pub fn checked_at(&self) -> UnixSeconds {
        self.checked_at.load(Ordering::Relaxed)
    }

    /// When the directory should next be consulted for this session.
    pub fn next_check_at(&self) -> UnixSeconds {
        self.next_check_at.load(Ordering::Relaxed)
    }

    /// Sets when the directory should next be consulted.
    pub fn check_again_at(&self, at: UnixSeconds) {
        self.next_check_at.store(at, Ordering::Relaxed);
    }

    /// Claims the due check: true for exactly one caller of those that saw `seen` as the
    /// next check time; it moves to `retry_at` meanwhile.
    pub fn claim_check(&self, seen: UnixSeconds, retry_at: UnixSeconds) -> bool {
        self.next_check_at
            .compare_exchange(seen, retry_at, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }
}

/// Derives the per-session values kept beside a live session, at a given time.
pub type Preparer<P> = dyn Fn(&Identity, &str, UnixSeconds) -> P + Send + Sync;
