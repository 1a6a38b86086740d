//! Durable records behind a backend-neutral trait: SQLite is the embedded default; a shared
//! PostgreSQL backend implements the same trait for several gateway instances.

mod postgres;
mod sqlite;

pub use postgres::{PgPoolSettings, PgStore};
pub use sqlite::SqliteStore;

use crate::clock::UnixSeconds;
use crate::config::StoreConfig;
use crate::tokens::{StoredToken, TokenId};
use async_trait::async_trait;
use std::sync::Arc;

/// A session as persisted. The identity inside `payload` is sealed; the store never sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// Random session id, hex.
    pub id: String,
    /// Tenant the session belongs to.
    pub tenant: String,
    /// Sealed, serialised session data.
    pub payload: Vec<u8>,
    /// When the session was created.
    pub created_at: UnixSeconds,
    /// Last time it was used (kept roughly: writes are batched, see `SessionManager`).
    pub last_seen_at: UnixSeconds,
    /// Absolute expiry.
    pub expires_at: UnixSeconds,
    /// Keyed digest of the identity provider's issuer and subject (see `KeyRing::lookup_digest`).
    pub subject_digest: Option<String>,
    /// Keyed digest of the issuer and the provider's session id (`sid`), when it gave one.
    pub sid_digest: Option<String>,
    /// When the tenant's user directory last confirmed the session's user (0: never).
    pub checked_at: UnixSeconds,
}

/// Which sessions an identity provider's sign-out names: any of the digests given for a
/// field (one per key in the ring), and every field given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionMatch {
    /// Digests of issuer + subject.
    pub subject: Option<Vec<String>>,
    /// Digests of issuer + provider session id.
    pub sid: Option<Vec<String>>,
}

/// Why the store failed. Callers map every variant to "service unavailable"; the text goes to
/// logs only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Schema migration failed at start-up.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The database file's directory could not be created.
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The database was unreachable moments ago: answered at once instead of waiting again.
    #[error("database unreachable (failing fast; retried shortly)")]
    Unreachable,
}

/// A token record held for a refresh (`Store::lease_token`): while it is held no other
/// holder — in this process or, with PostgreSQL, in any instance — gets the same record.
/// Dropping it without `commit` changes nothing; a process that dies releases it (PostgreSQL
/// ends the dead connection's transaction and its row lock with it).
#[async_trait]
pub trait TokenLease: Send {
    /// The record as it stands now that it is held (`None`: there is none).
    fn record(&self) -> Option<&StoredToken>;
    /// Writes `records` in one transaction and ends the lease: the held record (if among
    /// them) only if it is still the one read — same generation, or still absent — else
    /// nothing is written and the answer is `false` (a grant, a rotation's move or another
    /// writer came first); others this holder owns by convention (a resource minted from the
    /// held record's refresh token) are inserted or replaced. Durable when it returns
    /// `Ok(true)`.
    async fn commit(self: Box<Self>, records: &[StoredToken]) -> Result<bool, StoreError>;
}

/// What the session-end watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// A session (id in hex) was deleted by some instance.
    Ended(String),
    /// The watch lost its connection: ends may have been missed meanwhile.
    Missed,
}

/// Durable storage for sessions, replay records and document tokens.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts a new session.
    async fn insert_session(&self, session: &StoredSession) -> Result<(), StoreError>;
    /// Reads a session by id.
    async fn get_session(&self, id: &str) -> Result<Option<StoredSession>, StoreError>;
    /// Records use of a session.
    async fn touch_session(&self, id: &str, last_seen_at: UnixSeconds) -> Result<(), StoreError>;
    /// Records use of many sessions at once (the batched form of `touch_session`).
    async fn touch_sessions(&self, touches: &[(String, UnixSeconds)]) -> Result<(), StoreError> {
        for (id, seen) in touches {
            self.touch_session(id, *seen).await?;
        }
        Ok(())
    }
    /// Records that the user directory confirmed a session's user at `at` (never moves back).
    async fn mark_checked(&self, id: &str, at: UnixSeconds) -> Result<(), StoreError>;
    /// Ids of the sessions matching every given field (none when no field is given).
    async fn find_sessions(&self, matching: &SessionMatch) -> Result<Vec<String>, StoreError>;
    /// Deletes a session; true when it existed. A shared store tells every instance
    /// (`watch_session_ends`).
    async fn delete_session(&self, id: &str) -> Result<bool, StoreError>;
    /// Session deletions by any instance sharing this store, as they happen, so cached
    /// copies are dropped at once; `None` for a store only one instance uses (SQLite), where
    /// the deleting instance drops its own copy.
    async fn watch_session_ends(&self) -> Option<tokio::sync::mpsc::Receiver<SessionEnd>> {
        None
    }
    /// Deletes sessions past their absolute expiry or idle since before `idle_before`.
    async fn purge_sessions(
        &self,
        now: UnixSeconds,
        idle_before: UnixSeconds,
    ) -> Result<u64, StoreError>;
    /// Records `key` of `kind` until `expires_at`; true the first time, false while an
    /// unexpired record exists (a replay).
    async fn remember_once(
        &self,
        kind: &str,
        key: &str,
        expires_at: UnixSeconds,
        now: UnixSeconds,
    ) -> Result<bool, StoreError>;
    /// Deletes expired seen-once records.
    async fn purge_seen(&self, now: UnixSeconds) -> Result<u64, StoreError>;
    /// Cheap reachability check for `/_vestibule/ready`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Reads a document token record.
    async fn get_token(&self, id: &TokenId) -> Result<Option<StoredToken>, StoreError>;
    /// Writes a document token record when the stored one is still at generation `expected`
    /// (`None`: when there is none): a compare-and-set, so of two refreshes that read the same
    /// record one commits. True when written.
    async fn put_token(
        &self,
        token: &StoredToken,
        expected: Option<i64>,
    ) -> Result<bool, StoreError>;
    /// Deletes a document token record; true when it existed.
    async fn delete_token(&self, id: &TokenId) -> Result<bool, StoreError>;
    /// The last verified federation metadata document of `provider` from `source` (its URL),
    /// with when it was fetched.
    async fn get_metadata(
        &self,
        provider: &str,
        source: &str,
    ) -> Result<Option<(String, UnixSeconds)>, StoreError>;
    /// Keeps a verified federation metadata document (a newer copy is never replaced by an
    /// older one).
    async fn put_metadata(
        &self,
        provider: &str,
        source: &str,
        document: &str,
        fetched_at: UnixSeconds,
    ) -> Result<(), StoreError>;
    /// Sets when the background refresher looks at token record `id` next (`None`: not until
    /// it is written again), if it is still at `generation`; true when set.
    async fn defer_refresh(
        &self,
        id: &TokenId,
        generation: i64,
        until: Option<UnixSeconds>,
    ) -> Result<bool, StoreError>;
    /// Holds the token record `id` for a refresh: waits while another holder has it
    /// (`wait`), or answers `None` at once (`!wait`: the background refresher leaves it to
    /// whoever holds it).
    async fn lease_token(
        &self,
        id: &TokenId,
        wait: bool,
    ) -> Result<Option<Box<dyn TokenLease>>, StoreError>;

    /// Sessions after `after` (by id) in id order, at most `limit`: `(id, tenant, payload)`.
    /// For re-sealing under a new key.
    async fn session_payloads(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError>;
    /// Replaces a session's sealed payload and lookup digests if the payload is still `old`;
    /// true when replaced.
    async fn replace_session_payload(
        &self,
        id: &str,
        old: &[u8],
        new: &crate::session::ResealedSession,
    ) -> Result<bool, StoreError>;
    /// Token records after `after` in key order, at most `limit`.
    async fn token_records(
        &self,
        after: Option<&TokenId>,
        limit: u32,
    ) -> Result<Vec<StoredToken>, StoreError>;
    /// Token records the background refresher should look at: `refresh_at` by `before`, and
    /// either shared or owned by a user with a live session (not expired at `now`, used since
    /// `idle_before`). Soonest first, at most `limit`.
    async fn due_tokens(
        &self,
        before: UnixSeconds,
        now: UnixSeconds,
        idle_before: UnixSeconds,
        limit: u32,
    ) -> Result<Vec<StoredToken>, StoreError>;
    /// Moves a token record to another id (its owner digest under a new key): writes `new`
    /// and deletes `old` if `old` is still at its generation, in one transaction. When a
    /// record already exists at the new id (the user granted again since), that newer one
    /// is kept and `old` deleted. False when `old` changed meanwhile (nothing done).
    async fn move_token(&self, old: &StoredToken, new: &StoredToken) -> Result<bool, StoreError>;
    /// Replaces a token record's sealed payload if it is still `old`; true when replaced.
    async fn replace_token_payload(
        &self,
        id: &TokenId,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError>;
}

/// Opens the configured backend, creating and migrating it as needed.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        StoreConfig::Sqlite { path } => Ok(Arc::new(SqliteStore::open(path).await?)),
        StoreConfig::Postgres { url, pool, migrate } => {
            Ok(Arc::new(PgStore::connect(url, *pool, *migrate).await?))
        }
    }
}
