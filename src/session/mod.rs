//! Server-side sessions: create at sign-in, load on every request (a cache hit costs no store
//! round trip), revoke at sign-out. Idle and absolute lifetimes are checked against the
//! injected clock.

pub mod cookie;
mod id;
mod live;

pub use id::SessionId;
pub use live::{LiveSession, Prepared, Preparer};

use crate::clock::{Clock, UnixSeconds};
use crate::config::SessionConfig;
use crate::crypto::KeyRing;
use crate::identity::Identity;
use crate::store::{SessionMatch, Store, StoreError, StoredSession};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

// Purposes of the lookup digests kept with each session (see `KeyRing::lookup_digest`):
// the subject's is shared with document tokens (their owner).
use crate::identity::{subject_key, SUBJECT_DIGEST_PURPOSE as SUBJECT_PURPOSE};
const SID_PURPOSE: &str = "session-sid";

/// What is sealed into the store's `payload` column.
#[derive(Serialize, Deserialize)]
struct SealedData {
    identity: Identity,
}

/// Creates, loads and revokes sessions.
pub struct SessionManager<P> {
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    clock: Arc<dyn Clock>,
    config: SessionConfig,
    /// Bounded by `session.cache_capacity` (see `remember`). A plain concurrent map rather
    /// than moka: measured with 100,000 entries, moka's bookkeeping took 357 bytes per entry,
    /// quick_cache's 168 and dashmap's 85 (docs/benchmarks.md), and expiry is decided here
    /// anyway (`revalidate_at`, `sweep`). Keys are ids of sessions found in the store, never
    /// chosen by a client, so a fast seeded hash is enough.
    cache: DashMap<SessionId, Arc<LiveSession<P>>, foldhash::fast::RandomState>,
    /// When the cache was last swept because it was full.
    full_sweep_at: AtomicI64,
    /// Sessions revoked here within the last `cache_ttl`, never to be cached again.
    revoked: std::sync::Mutex<std::collections::HashMap<SessionId, UnixSeconds>>,
    /// Cached copies loaded at or before this time are checked against the store at their
    /// next request (notifications of ended sessions may have been missed until then).
    recheck_before: AtomicI64,
    prepare: Box<Preparer<P>>,
    touch_interval: i64,
    touches: Arc<TouchQueue>,
}

/// "Last seen" times waiting to be written, flushed together about once a second: with many
/// active sessions, one write per session per minute as its own task and statement cost a
/// sixth of the gateway's CPU in the soak.
#[derive(Default)]
struct TouchQueue {
    pending: std::sync::Mutex<std::collections::HashMap<SessionId, UnixSeconds>>,
    flush_scheduled: std::sync::atomic::AtomicBool,
}

/// How long touches gather before one batched write.
const TOUCH_FLUSH_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Cached sessions unused for this long (or `cache_ttl`, if longer) are dropped by `sweep`:
/// their assertion would have to be signed again anyway.
const CACHE_IDLE_SECS: i64 = 300;

impl<P: Prepared> SessionManager<P> {
    /// A manager over `store`, sealing with `keys`.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
        config: SessionConfig,
        prepare: Box<Preparer<P>>,
    ) -> Self {
        let cache = DashMap::with_hasher(foldhash::fast::RandomState::default());
        // Persist "last seen" at most every tenth of the idle window (and at least every
        // minute), so an authenticated request almost never writes to the store.
        let touch_interval = (config.idle.as_secs() as i64 / 10).clamp(1, 60);
        Self {
            store,
            keys,
            clock,
            config,
            cache,
            prepare,
            touch_interval,
            touches: Arc::default(),
            full_sweep_at: AtomicI64::new(UnixSeconds::MIN),
            revoked: Default::default(),
            recheck_before: AtomicI64::new(UnixSeconds::MIN),
        }
    }

    /// The session configuration in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The key ring sealing cookies and records.
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// Starts a new session for `identity` (always a fresh id: no fixation) and returns it
    /// with the cookie value to set.
    pub async fn create(
        &self,
        tenant: &str,
        identity: Identity,
    ) -> Result<(Arc<LiveSession<P>>, String), StoreError> {
        let now = self.clock.now();
        let id = SessionId::generate();
        let data = SealedData { identity };
        let json = serde_json::to_vec(&data).expect("identity serialises");
        let payload = self.keys.seal(&record_aad(&id, tenant), &json);
        let expires_at = now + self.config.absolute.as_secs() as i64;
        self.store
            .insert_session(&StoredSession {
                id: id.to_hex(),
                tenant: tenant.to_owned(),
                payload,
                created_at: now,
                last_seen_at: now,
                expires_at,
                subject_digest: Some(self.keys.lookup_digest(
                    SUBJECT_PURPOSE,
                    &subject_key(&data.identity.issuer, &data.identity.subject),
                )),
                sid_digest: data
                    .identity
                    .claims
                    .get("sid")
                    .and_then(|v| v.as_str())
                    .map(|sid| {
                        self.keys
                            .lookup_digest(SID_PURPOSE, &subject_key(&data.identity.issuer, sid))
                    }),
                // Admitted by the directory just now.
                checked_at: now,
            })
            .await?;
        let prepared = (self.prepare)(&data.identity, tenant, now);
        let live = self.live(id, prepared, (now, now), expires_at, now, now);
        self.remember(&live, now);
        Ok((live, cookie::encode(&self.keys, &id, tenant)))
    }

    /// The live session a cookie value names, if it is valid for `tenant` right now.
    /// Anything wrong with the cookie means "no session", never an error.
    pub async fn load(
        &self,
        tenant: &str,
        cookie_value: &str,
    ) -> Result<Option<Arc<LiveSession<P>>>, StoreError> {
        let Some(id) = cookie::decode(&self.keys, cookie_value, tenant) else {
            return Ok(None);
        };
        let now = self.clock.now();
        // No tenant check needed on a cached copy: the cookie opened only for `tenant`, and
        // ids are unique, so the entry under this id was created or loaded for it.
        let cached = self.cache.get(&id).map(|entry| entry.value().clone());
        if let Some(live) = &cached {
            let loaded_at = live.revalidate_at - self.config.cache_ttl.as_secs() as i64;
            if now < live.revalidate_at && loaded_at > self.recheck_before.load(Ordering::Relaxed) {
                return Ok(self.check_live(live.clone(), now));
            }
        }
        // Not cached, or due for a check against the store (revoked elsewhere? expired?).
        let stored = match self.store.get_session(&id.to_hex()).await {
            Ok(stored) => stored,
            // The store is unreachable: a session this instance holds keeps working (nothing
            // can be revoked meanwhile either); it is checked again at its next request.
            Err(e) => match cached {
                Some(live) => return Ok(self.check_live(live, now)),
                None => return Err(e),
            },
        };
        let Some(stored) = stored else {
            self.cache.remove(&id);
            return Ok(None);
        };
        let last_seen = cached.as_ref().map_or(stored.last_seen_at, |l| {
            l.last_seen().max(stored.last_seen_at)
        });
        if stored.tenant != tenant || self.expired(stored.expires_at, last_seen, now) {
            self.cache.remove(&id);
            return Ok(None);
        }
        let checked_at = cached
            .as_ref()
            .map_or(stored.checked_at, |l| l.checked_at().max(stored.checked_at));
        let prepared = match cached {
            // Still the same sealed record: keep the values derived from it while fresh.
            Some(live) if now < live.prepared.fresh_until() => live.prepared.clone(),
            _ => {
                let Some(identity) = self.open(&id, tenant, &stored.payload) else {
                    return Ok(None);
                };
                (self.prepare)(&identity, tenant, now)
            }
        };
        let live = self.live(
            id,
            prepared,
            (last_seen, stored.last_seen_at),
            stored.expires_at,
            checked_at,
            now,
        );
        self.remember(&live, now);
        Ok(self.check_live(live, now))
    }

    /// The identity sealed in a session's record (read from the store: the cache keeps
    /// only what requests need).
    pub async fn identity(
        &self,
        id: &SessionId,
        tenant: &str,
    ) -> Result<Option<Identity>, StoreError> {
        Ok(self
            .store
            .get_session(&id.to_hex())
            .await?
            .filter(|stored| stored.tenant == tenant)
            .and_then(|stored| self.open(id, tenant, &stored.payload)))
    }

    fn open(&self, id: &SessionId, tenant: &str, payload: &[u8]) -> Option<Identity> {
        let Ok(json) = self.keys.open(&record_aad(id, tenant), payload) else {
            tracing::warn!(session = ?id, "stored session does not open with the key ring");
            return None;
        };
        match serde_json::from_slice::<SealedData>(&json) {
            Ok(data) => Some(data.identity),
            Err(_) => {
                tracing::warn!(session = ?id, "stored session payload is not valid");
                None
            }
        }
    }

    /// Records that the user directory confirmed this session's user at `now`.
    pub async fn mark_checked(
        &self,
        live: &LiveSession<P>,
        now: UnixSeconds,
    ) -> Result<(), StoreError> {
        self.store.mark_checked(&live.id.to_hex(), now).await?;
        live.checked_at.fetch_max(now, Ordering::Relaxed);
        Ok(())
    }

    /// Ends the sessions an identity provider's sign-out names, in any tenant: those issued
    /// for `subject` and/or the provider session `sid` at `issuer` (both given: both match).
    /// Returns how many were ended.
    pub async fn revoke_for(
        &self,
        issuer: &str,
        subject: Option<&str>,
        sid: Option<&str>,
    ) -> Result<usize, StoreError> {
        let matching = SessionMatch {
            subject: subject.map(|s| {
                self.keys
                    .lookup_digests(SUBJECT_PURPOSE, &subject_key(issuer, s))
            }),
            sid: sid.map(|s| {
                self.keys
                    .lookup_digests(SID_PURPOSE, &subject_key(issuer, s))
            }),
        };
        let ids = self.store.find_sessions(&matching).await?;
        let mut ended = 0;
        for hex in ids {
            if let Some(id) = SessionId::from_hex(&hex) {
                if self.revoke(&id).await? {
                    ended += 1;
                }
            }
        }
        Ok(ended)
    }

    /// Ends a session everywhere this instance can reach: cache and store.
    pub async fn revoke(&self, id: &SessionId) -> Result<bool, StoreError> {
        // Marked first: a load that read the record just before the delete must not put the
        // session back into the cache afterwards (`remember` checks the mark).
        let until = self.clock.now() + self.config.cache_ttl.as_secs() as i64;
        self.revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*id, until);
        let deleted = self.store.delete_session(&id.to_hex()).await;
        self.cache.remove(id);
        deleted
    }

    /// Another instance ended session `id_hex` (the store's notification): drop this
    /// instance's copy, and keep it out while a load that read the record before the
    /// deletion may still be running.
    pub fn ended_elsewhere(&self, id_hex: &str) {
        let Some(id) = SessionId::from_hex(id_hex) else {
            return;
        };
        let until = self.clock.now() + self.config.cache_ttl.as_secs() as i64;
        self.revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, until);
        self.cache.remove(&id);
    }

    /// Notifications of ended sessions may have been missed: every cached session is checked
    /// against the store again at its next request (kept meanwhile: while the store is
    /// unreachable, cached sessions go on working).
    pub fn recheck_all(&self) {
        self.recheck_before
            .fetch_max(self.clock.now(), Ordering::Relaxed);
    }

    fn is_revoked(&self, id: &SessionId) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
    }

    /// Deletes expired sessions from the store; returns how many.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let now = self.clock.now();
        self.store
            .purge_sessions(now, now - self.config.idle.as_secs() as i64)
            .await
    }

    /// Deletes expired one-time records (used login states, seen assertion ids).
    pub async fn purge_seen(&self) -> Result<u64, StoreError> {
        self.store.purge_seen(self.clock.now()).await
    }

    /// Drops cached sessions nobody used recently; returns how many remain.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now();
        self.drop_unused(
            now,
            CACHE_IDLE_SECS.max(self.config.cache_ttl.as_secs() as i64),
        );
        self.revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, until| *until > now);
        self.cache.len()
    }

    /// Drops cached sessions not used within the last `secs` seconds.
    fn drop_unused(&self, now: UnixSeconds, secs: i64) {
        self.cache.retain(|_, live| now - live.last_seen() < secs);
    }

    /// Sessions currently held in memory (for metrics).
    pub fn cached(&self) -> u64 {
        self.cache.len() as u64
    }

    /// Caches `live` within `session.cache_capacity`. A full cache first drops what nobody
    /// used within `cache_ttl` (at most once a second); if that frees nothing, it drops the
    /// first hundredth of its entries in iteration order (no recency order is kept): a
    /// session pushed out is loaded from the store again by its next request, while a
    /// session never cached would be loaded (and its assertion signed) on every request.
    fn remember(&self, live: &Arc<LiveSession<P>>, now: UnixSeconds) {
        let capacity = self.config.cache_capacity as usize;
        if self.cache.len() >= capacity && !self.cache.contains_key(&live.id) {
            if self.full_sweep_at.swap(now, Ordering::Relaxed) != now {
                self.drop_unused(now, self.config.cache_ttl.as_secs() as i64);
            }
            if self.cache.len() >= capacity {
                let victims: Vec<SessionId> = self
                    .cache
                    .iter()
                    .take(capacity / 100 + 1)
                    .map(|entry| *entry.key())
                    .collect();
                for id in victims {
                    self.cache.remove(&id);
                }
            }
        }
        self.cache.insert(live.id, live.clone());
        // Checked after the insert: a revocation that marked the id meanwhile has either
        // removed this entry already or is seen here.
        if self.is_revoked(&live.id) {
            self.cache.remove(&live.id);
        }
    }

    fn expired(&self, expires_at: UnixSeconds, last_seen: UnixSeconds, now: UnixSeconds) -> bool {
        now >= expires_at || now - last_seen >= self.config.idle.as_secs() as i64
    }

    fn check_live(
        &self,
        live: Arc<LiveSession<P>>,
        now: UnixSeconds,
    ) -> Option<Arc<LiveSession<P>>> {
        if self.expired(live.expires_at, live.last_seen(), now) {
            self.cache.remove(&live.id);
            return None;
        }
        live.last_seen.fetch_max(now, Ordering::Relaxed);
        let persisted = live.persisted_seen.load(Ordering::Relaxed);
        if now - persisted >= self.touch_interval
            && live
                .persisted_seen
                .compare_exchange(persisted, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.persist_touch(live.id, now);
        }
        Some(live)
    }

    /// Queues "last seen" for a batched background write: a slow store must not slow the
    /// request, and many sessions must not mean many writes.
    fn persist_touch(&self, id: SessionId, now: UnixSeconds) {
        {
            let mut pending = self
                .touches
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let seen = pending.entry(id).or_insert(now);
            *seen = (*seen).max(now);
        }
        if self.touches.flush_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.touches.flush_scheduled.store(false, Ordering::Release);
            return;
        };
        let (store, touches) = (self.store.clone(), self.touches.clone());
        handle.spawn(async move {
            tokio::time::sleep(TOUCH_FLUSH_DELAY).await;
            // Cleared before taking the batch: a touch queued meanwhile schedules the next flush.
            touches.flush_scheduled.store(false, Ordering::Release);
            let batch: Vec<(String, UnixSeconds)> =
                std::mem::take(&mut *touches.pending.lock().unwrap_or_else(|e| e.into_inner()))
                    .into_iter()
                    .map(|(id, seen)| (id.to_hex(), seen))
                    .collect();
            if let Err(e) = store.touch_sessions(&batch).await {
                tracing::warn!(error = %e, sessions = batch.len(), "could not record session use");
            }
        });
    }

    /// `persisted` is the "last seen" the store holds: a later in-memory `last_seen` still
    /// has to be written.
    fn live(
        &self,
        id: SessionId,
        prepared: P,
        (last_seen, persisted): (UnixSeconds, UnixSeconds),
        expires_at: UnixSeconds,
        checked_at: UnixSeconds,
        now: UnixSeconds,
    ) -> Arc<LiveSession<P>> {
        let revalidate_at =
            (now + self.config.cache_ttl.as_secs() as i64).min(prepared.fresh_until());
        Arc::new(LiveSession {
            id,
            expires_at,
            prepared,
            revalidate_at,
            last_seen: AtomicI64::new(last_seen),
            persisted_seen: AtomicI64::new(persisted),
            checked_at: AtomicI64::new(checked_at),
            next_check_at: AtomicI64::new(UnixSeconds::MIN),
        })
    }
}

/// The identity sealed in a stored session record (`id` in hex) of `tenant`, for support
/// tools; `None` when it does not open with the ring.
pub fn open_record(keys: &KeyRing, id_hex: &str, tenant: &str, payload: &[u8]) -> Option<Identity> {
    let id = SessionId::from_hex(id_hex)?;
    let json = keys.open(&record_aad(&id, tenant), payload).ok()?;
    serde_json::from_slice::<SealedData>(&json)
        .ok()
        .map(|d| d.identity)
}

/// A session record re-sealed under the active key, with its lookup digests under that key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResealedSession {
    /// The sealed payload.
    pub payload: Vec<u8>,
    /// Digest of issuer and subject.
    pub subject_digest: String,
    /// Digest of issuer and provider session id, when the session has one.
    pub sid_digest: Option<String>,
}

/// Re-seals a stored session record (`id` in hex) under the ring's active key, for key
/// rotation, and computes its lookup digests under that key too (an identity provider's
/// sign-out finds it by them once the old key has left the ring); `Ok(None)` when the
/// payload already is under the active key, an error when it does not open with the ring.
pub fn reseal_record(
    keys: &KeyRing,
    id_hex: &str,
    tenant: &str,
    payload: &[u8],
) -> Result<Option<ResealedSession>, crate::crypto::CryptoError> {
    if KeyRing::key_id_of(payload) == Some(keys.active_id()) {
        return Ok(None);
    }
    let id = SessionId::from_hex(id_hex).ok_or(crate::crypto::CryptoError::Inauthentic)?;
    let aad = record_aad(&id, tenant);
    let plain = keys.open(&aad, payload)?;
    let data: SealedData =
        serde_json::from_slice(&plain).map_err(|_| crate::crypto::CryptoError::Inauthentic)?;
    let identity = &data.identity;
    Ok(Some(ResealedSession {
        payload: keys.seal(&aad, &plain),
        subject_digest: keys.lookup_digest(
            SUBJECT_PURPOSE,
            &subject_key(&identity.issuer, &identity.subject),
        ),
        sid_digest: identity
            .claims
            .get("sid")
            .and_then(|v| v.as_str())
            .map(|sid| keys.lookup_digest(SID_PURPOSE, &subject_key(&identity.issuer, sid))),
    }))
}

/// Associated data for a sealed session record: a record copied to another id or tenant in
/// the database no longer opens.
fn record_aad(id: &SessionId, tenant: &str) -> Vec<u8> {
    let mut aad = b"vestibule/session-record/v1/".to_vec();
    aad.extend_from_slice(&id.0);
    aad.extend_from_slice(tenant.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::crypto::KEY_LEN;
    use crate::store::SqliteStore;
    use std::time::Duration;

    fn identity() -> Identity {
        Identity {
            provider: "test".into(),
            issuer: "https://idp.example".into(),
            subject: "alice".into(),
            user: "alice@contoso.example".into(),
            email: Some("alice@contoso.example".into()),
            name: Some("Alice".into()),
            idp_tenant: None,
            claims: Default::default(),
            crm: None,
            directory_key: None,
        }
    }

    async fn manager(
        dir: &std::path::Path,
        clock: Arc<FixedClock>,
        active: &str,
    ) -> SessionManager<()> {
        let store = Arc::new(SqliteStore::open(&dir.join("s.db")).await.unwrap());
        let keys = KeyRing::new(
            active,
            &[("k1".into(), [1; KEY_LEN]), ("k2".into(), [2; KEY_LEN])],
        )
        .unwrap();
        SessionManager::new(
            store,
            Arc::new(keys),
            clock,
            SessionConfig {
                cookie: "vestibule".into(),
                idle: Duration::from_secs(600),
                absolute: Duration::from_secs(3600),
                cache_ttl: Duration::from_secs(30),
                cache_capacity: 100,
            },
            Box::new(|_, _, _| ()),
        )
    }

    #[tokio::test]
    async fn create_load_idle_and_absolute_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(1_000_000));
        let m = manager(dir.path(), clock.clone(), "k1").await;
        let (s, cookie) = m.create("contoso", identity()).await.unwrap();
        assert_eq!(m.load("contoso", &cookie).await.unwrap().unwrap().id, s.id);
        assert!(m.load("fabrikam", &cookie).await.unwrap().is_none());
        // Used every 9 minutes it stays alive past the 10-minute idle window...
        for _ in 0..6 {
            clock.advance(540);
            assert!(m.load("contoso", &cookie).await.unwrap().is_some());
        }
        // ...until the absolute lifetime ends it.
        clock.advance(540);
        assert!(m.load("contoso", &cookie).await.unwrap().is_none());

        let (_, idle_cookie) = m.create("contoso", identity()).await.unwrap();
        clock.advance(600);
        assert!(m.load("contoso", &idle_cookie).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn store_is_the_truth_after_the_cache_and_revocation_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(1_000_000));
        let a = manager(dir.path(), clock.clone(), "k1").await;
        let (s, cookie) = a.create("contoso", identity()).await.unwrap();
        // A second manager (another instance) sees the session through the store.
        let b = manager(dir.path(), clock.clone(), "k1").await;
        let loaded = b.load("contoso", &cookie).await.unwrap().unwrap();
        assert_eq!(
            b.identity(&loaded.id, "contoso").await.unwrap(),
            Some(identity())
        );
        assert_eq!(b.identity(&loaded.id, "fabrikam").await.unwrap(), None);
        assert!(a.revoke(&s.id).await.unwrap());
        assert!(a.load("contoso", &cookie).await.unwrap().is_none());
        let c = manager(dir.path(), clock, "k1").await;
        assert!(c.load("contoso", &cookie).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn key_rotation_keeps_old_sessions_and_seals_new_ones_with_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(1_000_000));
        let old = manager(dir.path(), clock.clone(), "k1").await;
        let (_, old_cookie) = old.create("contoso", identity()).await.unwrap();
        let rotated = manager(dir.path(), clock, "k2").await;
        assert!(rotated
            .load("contoso", &old_cookie)
            .await
            .unwrap()
            .is_some());
        let (_, new_cookie) = rotated.create("contoso", identity()).await.unwrap();
        let sealed = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            new_cookie.trim_start_matches("v1."),
        )
        .unwrap();
        assert_eq!(KeyRing::key_id_of(&sealed), Some("k2"));
    }

    #[tokio::test]
    async fn use_is_recorded_in_the_store_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(1_000_000));
        let m = manager(dir.path(), clock.clone(), "k1").await;
        let (a, cookie_a) = m.create("contoso", identity()).await.unwrap();
        let (b, cookie_b) = m.create("contoso", identity()).await.unwrap();
        clock.advance(120);
        assert!(m.load("contoso", &cookie_a).await.unwrap().is_some());
        assert!(m.load("contoso", &cookie_b).await.unwrap().is_some());
        tokio::time::sleep(TOUCH_FLUSH_DELAY * 2).await;
        for id in [a.id, b.id] {
            let stored = m.store.get_session(&id.to_hex()).await.unwrap().unwrap();
            assert_eq!(stored.last_seen_at, 1_000_120);
        }
    }

    #[tokio::test]
    async fn every_sign_in_gets_a_new_id() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(1_000_000));
        let m = manager(dir.path(), clock, "k1").await;
        let (a, _) = m.create("contoso", identity()).await.unwrap();
        let (b, _) = m.create("contoso", identity()).await.unwrap();
        assert_ne!(a.id, b.id);
    }
    /// Prepared values stamped with the time they were derived; fresh for 100 s.
    #[derive(Clone, Debug, PartialEq)]
    struct Stamp(UnixSeconds);

    impl Prepared for Stamp {
        fn fresh_until(&self) -> UnixSeconds {
            self.0 + 100
        }
    }

    /// A manager with a 1-hour idle window, 2-hour lifetime, 30 s cache_ttl.
    async fn long_lived<P: Prepared>(
        dir: &std::path::Path,
        clock: Arc<FixedClock>,
        cache_capacity: u64,
        prepare: Box<Preparer<P>>,
    ) -> SessionManager<P> {
        let store = Arc::new(SqliteStore::open(&dir.join("s.db")).await.unwrap());
        let keys = KeyRing::new("k1", &[("k1".into(), [1; KEY_LEN])]).unwrap();
        SessionManager::new(
            store,
            Arc::new(keys),
            clock,
            SessionConfig {
                cookie: "vestibule".into(),
                idle: Duration::from_secs(3600),
                absolute: Duration::from_secs(7200),
                cache_ttl: Duration::from_secs(30),
                cache_capacity,
            },
            prepare,
        )
    }

    async fn stamping(dir: &std::path::Path, clock: Arc<FixedClock>) -> SessionManager<Stamp> {
        long_lived(dir, clock, 100, Box::new(|_, _, now| Stamp(now))).await
    }

    #[tokio::test]
    async fn revalidation_keeps_fresh_values_and_rederives_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(1_000_000));
        let m = stamping(dir.path(), clock.clone()).await;
        let (_, cookie) = m.create("contoso", identity()).await.unwrap();
        // Past cache_ttl: checked against the store, values kept (still fresh).
        clock.advance(45);
        let s = m.load("contoso", &cookie).await.unwrap().unwrap();
        assert_eq!(s.prepared, Stamp(1_000_000));
        // Past fresh_until: derived again from the sealed identity.
        clock.advance(60);
        let s = m.load("contoso", &cookie).await.unwrap().unwrap();
        assert_eq!(s.prepared, Stamp(1_000_105));
    }

    #[tokio::test]
    async fn revocation_elsewhere_applies_within_cache_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(1_000_000));
        let a = stamping(dir.path(), clock.clone()).await;
        let b = stamping(dir.path(), clock.clone()).await;
        let (s, cookie) = a.create("contoso", identity()).await.unwrap();
        assert!(b.revoke(&s.id).await.unwrap());
        // `a` trusts its cached copy until cache_ttl, then asks the store.
        clock.advance(29);
        assert!(a.load("contoso", &cookie).await.unwrap().is_some());
        clock.advance(1);
        assert!(a.load("contoso", &cookie).await.unwrap().is_none());
        assert_eq!(a.cached(), 0);
    }

    #[tokio::test]
    async fn sweep_drops_sessions_unused_for_five_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(1_000_000));
        let m = stamping(dir.path(), clock.clone()).await;
        let (_, used) = m.create("contoso", identity()).await.unwrap();
        m.create("contoso", identity()).await.unwrap();
        clock.advance(200);
        assert!(m.load("contoso", &used).await.unwrap().is_some());
        clock.advance(150);
        assert_eq!(m.sweep(), 1);
        // A swept session is not gone: the next request loads it from the store.
        assert!(m.load("contoso", &used).await.unwrap().is_some());
    }
    #[tokio::test]
    async fn a_full_cache_drops_idle_sessions_and_never_refuses_a_valid_one() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(1_000_000));
        let m: SessionManager<()> =
            long_lived(dir.path(), clock.clone(), 2, Box::new(|_, _, _| ())).await;
        let mut cookies = Vec::new();
        for _ in 0..3 {
            cookies.push(m.create("contoso", identity()).await.unwrap().1);
            assert!(m.cached() <= 2);
        }
        for c in &cookies {
            assert!(m.load("contoso", c).await.unwrap().is_some());
            assert!(m.cached() <= 2);
        }
        // Once the cached ones sit unused past cache_ttl, a new session takes their place
        // and they go, rather than random others.
        clock.advance(40);
        let (fresh, _) = m.create("contoso", identity()).await.unwrap();
        assert_eq!(m.cached(), 1);
        assert!(m.cache.contains_key(&fresh.id));
    }

    #[tokio::test]
    async fn use_of_a_session_rechecked_every_cache_ttl_still_reaches_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(1_000_000));
        // idle 1 h: "last seen" is written at most once a minute; cache_ttl 30 s.
        let m = stamping(dir.path(), clock.clone()).await;
        let (s, cookie) = m.create("contoso", identity()).await.unwrap();
        for _ in 0..8 {
            clock.advance(30);
            assert!(m.load("contoso", &cookie).await.unwrap().is_some());
        }
        tokio::time::sleep(TOUCH_FLUSH_DELAY * 2).await;
        let stored = m.store.get_session(&s.id.to_hex()).await.unwrap().unwrap();
        assert!(
            stored.last_seen_at >= 1_000_000 + 180,
            "last seen in the store: {}",
            stored.last_seen_at - 1_000_000
        );
    }

    #[tokio::test]
    async fn a_revoked_session_is_not_cached_again_by_a_load_that_raced_the_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock::new(1_000_000));
        let m = stamping(dir.path(), clock.clone()).await;
        let (s, cookie) = m.create("contoso", identity()).await.unwrap();
        let live = m.cache.get(&s.id).map(|e| e.value().clone()).unwrap();
        assert!(m.revoke(&s.id).await.unwrap());
        // The racing load read the record before the delete and now caches it.
        m.remember(&live, clock.now());
        assert_eq!(m.cached(), 0);
        assert!(m.load("contoso", &cookie).await.unwrap().is_none());
    }
}
