//! Support tasks on the store, for the command line: apply migrations, list and revoke a
//! user's sessions. Revoking goes through the store's deletion, so with PostgreSQL every
//! running instance drops the session at once (its notification); with SQLite the one running
//! gateway re-reads it within `session.cache_ttl`.

use crate::clock::UnixSeconds;
use crate::config::{Config, StoreConfig};
use crate::crypto::KeyRing;
use crate::store::{Store, StoreError};

/// Sessions read per batch.
const BATCH: u32 = 500;

/// Applies the store's schema migrations (`vestibule migrate`).
pub async fn migrate(config: &Config) -> Result<(), StoreError> {
    match &config.store {
        StoreConfig::Sqlite { path } => {
            crate::store::SqliteStore::open(path).await?;
        }
        StoreConfig::Postgres { url, pool, .. } => {
            crate::store::PgStore::connect(url, *pool, true).await?;
        }
    }
    Ok(())
}

/// One stored session, as support staff see it (no token, no cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The first 12 hex digits of its id (enough to tell sessions apart in a listing).
    pub id_prefix: String,
    /// Tenant.
    pub tenant: String,
    /// The signed-in user name.
    pub user: String,
    /// The identity provider (configuration name).
    pub provider: String,
    /// Created, last seen, absolute expiry (Unix seconds).
    pub created_at: UnixSeconds,
    /// Last use (kept roughly).
    pub last_seen_at: UnixSeconds,
    /// Absolute expiry.
    pub expires_at: UnixSeconds,
    /// The full id (for revocation; not printed).
    id: String,
}

/// Which sessions a support task is about.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only this user's (the signed-in user name, case-insensitive).
    pub user: Option<String>,
}

/// The stored sessions `selection` names. Records that do not open with the key ring are
/// counted in the second value.
pub async fn list_sessions(
    store: &dyn Store,
    keys: &KeyRing,
    selection: &Selection,
) -> Result<(Vec<SessionSummary>, u64), StoreError> {
    let mut out = Vec::new();
    let mut unreadable = 0;
    let mut after: Option<String> = None;
    loop {
        let page = store.session_payloads(after.as_deref(), BATCH).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.0.clone());
        for (id, tenant, payload) in page {
            if selection.tenant.as_ref().is_some_and(|t| *t != tenant) {
                continue;
            }
            let Some(identity) = crate::session::open_record(keys, &id, &tenant, &payload) else {
                unreadable += 1;
                continue;
            };
            if selection
                .user
                .as_ref()
                .is_some_and(|u| !u.eq_ignore_ascii_case(&identity.user))
            {
                continue;
            }
            let Some(stored) = store.get_session(&id).await? else {
                continue;
            };
            out.push(SessionSummary {
                id_prefix: id.chars().take(12).collect(),
                tenant,
                user: identity.user,
                provider: identity.provider,
                created_at: stored.created_at,
                last_seen_at: stored.last_seen_at,
                expires_at: stored.expires_at,
                id,
            });
        }
    }
    Ok((out, unreadable))
}

/// Ends `sessions` (from `list_sessions`); how many were still there.
pub async fn revoke_sessions(
    store: &dyn Store,
    sessions: &[SessionSummary],
) -> Result<usize, StoreError> {
    let mut ended = 0;
    for s in sessions {
        if store.delete_session(&s.id).await? {
            ended += 1;
        }
    }
    Ok(ended)
}
