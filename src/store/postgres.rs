//! The shared PostgreSQL backend (sqlx), for several gateway instances on one database: the
//! same tables and the same behaviour as the embedded SQLite store (the conformance tests run
//! one set of bodies against both). TLS to the database as the URL asks
//! (`?sslmode=verify-full`, with rustls and the webpki roots).

use super::{SessionEnd, SessionMatch, Store, StoreError, StoredSession, TokenLease};
use crate::clock::UnixSeconds;
use crate::tokens::{StoredToken, TokenId};
use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Row, SqlSafeStr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Versioned schema, embedded in the binary. sqlx takes an advisory lock while migrating, so
/// instances starting together migrate once.
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "schema".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0001_schema.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "provider metadata".into(),
            MigrationType::Simple,
            include_str!("../../migrations/postgres/0002_provider_metadata.sql").into_sql_str(),
            false,
        ),
    ])
}

/// The notification channel of ended sessions (payload: the session id in hex).
const SESSION_ENDS: &str = "vestibule_session_ended";

/// Listens until the connection fails (`Err`) or nobody receives any more (`Ok`). Every
/// (re)connection first reports `Missed`: ends between two connections are unknown.
async fn listen(
    pool: &PgPool,
    tx: &tokio::sync::mpsc::Sender<SessionEnd>,
) -> Result<(), sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(SESSION_ENDS).await?;
    if tx.send(SessionEnd::Missed).await.is_err() {
        return Ok(());
    }
    loop {
        // `try_recv`, not `recv`: a lost connection shows (`None`) instead of being
        // reconnected silently, which would hide a gap.
        match listener.try_recv().await? {
            Some(n) => {
                if tx
                    .send(SessionEnd::Ended(n.payload().to_owned()))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            None => return Err(sqlx::Error::PoolClosed),
        }
    }
}

/// A token row locked `FOR UPDATE` in an open transaction.
struct PgLease {
    record: Option<StoredToken>,
    held_id: TokenId,
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    /// One of the store's lease slots, given back with the lease.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

#[async_trait]
impl TokenLease for PgLease {
    fn record(&self) -> Option<&StoredToken> {
        self.record.as_ref()
    }

    async fn commit(mut self: Box<Self>, records: &[StoredToken]) -> Result<bool, StoreError> {
        for t in records {
            let held = self.held_id == t.id;
            let query = match (&self.record, held) {
                (_, false) => {
                    "INSERT INTO document_tokens (tenant, owner, provider, resource, payload, \
                     expires_at, generation, updated_at, refresh_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (tenant, owner, provider, resource) DO UPDATE SET \
                     payload = excluded.payload, expires_at = excluded.expires_at, \
                     generation = excluded.generation, updated_at = excluded.updated_at, \
                     refresh_at = excluded.refresh_at"
                }
                // Locked since it was read, so this holds unless a writer ignored the lock.
                (Some(_), true) => {
                    "UPDATE document_tokens SET payload = $5, expires_at = $6, generation = $7, \
                     updated_at = $8, refresh_at = $9 WHERE tenant = $1 AND owner = $2 \
                     AND provider = $3 AND resource = $4 AND generation = $10"
                }
                (None, true) => {
                    "INSERT INTO document_tokens (tenant, owner, provider, resource, payload, \
                     expires_at, generation, updated_at, refresh_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"
                }
            };
            let mut q = sqlx::query(query)
                .bind(&t.id.tenant)
                .bind(&t.id.owner)
                .bind(&t.id.provider)
                .bind(&t.id.resource)
                .bind(&t.payload)
                .bind(t.expires_at)
                .bind(t.generation)
                .bind(t.updated_at)
                .bind(t.refresh_at);
            if let (Some(read), true) = (&self.record, held) {
                q = q.bind(read.generation);
            }
            let done = q.execute(&mut *self.tx).await?;
            if held && done.rows_affected() != 1 {
                return Ok(false);
            }
        }
        self.tx.commit().await?;
        Ok(true)
    }
}

/// How the pool connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgPoolSettings {
    /// Most connections this instance holds (a refresh holds one for its token request).
    pub max_connections: u32,
    /// How long a request waits for a free connection before the store counts as unavailable.
    pub acquire_timeout: Duration,
}

impl Default for PgPoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// After the database could not be reached, how long requests fail at once instead of each
/// waiting `acquire_timeout` for a connection that will not come.
const FAIL_FAST: Duration = Duration::from_secs(2);

/// PostgreSQL-backed store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Until when requests fail at once (the database was unreachable just now).
    unreachable_until: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// Leases held at once: each keeps a connection through a token request to a provider
    /// (which may be slow), so at most half the pool, leaving the rest to session reads and
    /// sign-ins.
    leases: Arc<tokio::sync::Semaphore>,
}

impl PgStore {
    /// A pool for `url` (connections are made when first needed, so a gateway starts while
    /// the database is down and works once it is up); migrated first when `migrate`.
    pub async fn connect(
        url: &str,
        settings: PgPoolSettings,
        migrate: bool,
    ) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("vestibule");
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(options);
        let store = Self {
            pool,
            unreachable_until: Arc::default(),
            leases: Arc::new(tokio::sync::Semaphore::new(
                (settings.max_connections as usize / 2).max(1),
            )),
        };
        if migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Applies the schema migrations this build knows (`vestibule migrate`).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrator().run(&self.pool).await?;
        Ok(())
    }

    /// A connection, or at once an error while the database was found unreachable within
    /// the last `FAIL_FAST` (one request in that window waits for the pool instead, and
    /// finds out whether it is back).
    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        self.fail_fast()?;
        let conn = self.pool.acquire().await.map_err(|e| self.unreachable(e))?;
        self.reachable();
        Ok(conn)
    }

    /// A transaction, as `conn`.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.fail_fast()?;
        let tx = self.pool.begin().await.map_err(|e| self.unreachable(e))?;
        self.reachable();
        Ok(tx)
    }

    fn reachable(&self) {
        let mut until = self
            .unreachable_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if until.is_some() {
            *until = None;
        }
    }

    fn fail_fast(&self) -> Result<(), StoreError> {
        let mut until = self
            .unreachable_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match *until {
            Some(t) if std::time::Instant::now() < t => Err(StoreError::Unreachable),
            Some(_) => {
                // This request probes; the others keep failing fast meanwhile.
                *until = Some(std::time::Instant::now() + FAIL_FAST);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn unreachable(&self, e: sqlx::Error) -> StoreError {
        if matches!(
            e,
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
        ) {
            *self
                .unreachable_until
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now() + FAIL_FAST);
        }
        e.into()
    }

    /// The pool (the session-revocation listener connects with its options).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PgStore {
    async fn insert_session(&self, s: &StoredSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, tenant, payload, created_at, last_seen_at, expires_at, \
             subject_digest, sid_digest, checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&s.id)
        .bind(&s.tenant)
        .bind(&s.payload)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .bind(&s.subject_digest)
        .bind(&s.sid_digest)
        .bind(s.checked_at)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn get_session(&self, id: &str) -> Result<Option<StoredSession>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant, payload, created_at, last_seen_at, expires_at, \
             subject_digest, sid_digest, checked_at FROM sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        Ok(row.map(|r| StoredSession {
            id: r.get(0),
            tenant: r.get(1),
            payload: r.get(2),
            created_at: r.get(3),
            last_seen_at: r.get(4),
            expires_at: r.get(5),
            subject_digest: r.get(6),
            sid_digest: r.get(7),
            checked_at: r.get(8),
        }))
    }

    async fn mark_checked(&self, id: &str, at: UnixSeconds) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET checked_at = GREATEST(checked_at, $1) WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn find_sessions(&self, matching: &SessionMatch) -> Result<Vec<String>, StoreError> {
        let fields = [
            ("subject_digest", &matching.subject),
            ("sid_digest", &matching.sid),
        ];
        if fields.iter().all(|(_, digests)| digests.is_none()) {
            return Ok(Vec::new());
        }
        let mut query =
            sqlx::QueryBuilder::<sqlx::Postgres>::new("SELECT id FROM sessions WHERE 1 = 1");
        for (column, digests) in fields {
            let Some(digests) = digests else { continue };
            query.push(format_args!(" AND {column} IN ("));
            let mut list = query.separated(", ");
            for digest in digests {
                list.push_bind(digest);
            }
            list.push_unseparated(")");
        }
        Ok(query
            .build()
            .fetch_all(&mut *self.conn().await?)
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn touch_session(&self, id: &str, last_seen_at: UnixSeconds) -> Result<(), StoreError> {
        // MAX keeps a late, out-of-order write from moving the time backwards.
        sqlx::query("UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $1) WHERE id = $2")
            .bind(last_seen_at)
            .bind(id)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn touch_sessions(&self, touches: &[(String, UnixSeconds)]) -> Result<(), StoreError> {
        if touches.is_empty() {
            return Ok(());
        }
        // One transaction: one WAL commit for the whole batch instead of one per session.
        let mut tx = self.begin().await?;
        for (id, seen) in touches {
            sqlx::query(
                "UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $1) WHERE id = $2",
            )
            .bind(seen)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        // The notification is delivered when the deletion commits, to every listening
        // instance (this one included).
        let ended = sqlx::query(
            "WITH gone AS (DELETE FROM sessions WHERE id = $1 RETURNING id) \
             SELECT pg_notify($2, id) FROM gone",
        )
        .bind(id)
        .bind(SESSION_ENDS)
        .fetch_all(&mut *self.conn().await?)
        .await?;
        Ok(!ended.is_empty())
    }

    async fn watch_session_ends(&self) -> Option<tokio::sync::mpsc::Receiver<SessionEnd>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(250);
            loop {
                match listen(&pool, &tx).await {
                    // The gateway is shutting down.
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "session-end notifications interrupted; cached sessions are checked against the database again");
                        if tx.send(SessionEnd::Missed).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
        Some(rx)
    }

    async fn purge_sessions(
        &self,
        now: UnixSeconds,
        idle_before: UnixSeconds,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at < $2")
            .bind(now)
            .bind(idle_before)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(done.rows_affected())
    }

    async fn remember_once(
        &self,
        kind: &str,
        key: &str,
        expires_at: UnixSeconds,
        now: UnixSeconds,
    ) -> Result<bool, StoreError> {
        // One statement, so two instances racing on the same value cannot both win: the row
        // is written only if absent or already expired.
        let done = sqlx::query(
            "INSERT INTO seen_once (kind, key, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (kind, key) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE seen_once.expires_at <= $4",
        )
        .bind(kind)
        .bind(key)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge_seen(&self, now: UnixSeconds) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM seen_once WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(done.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(())
    }

    async fn get_token(&self, id: &TokenId) -> Result<Option<StoredToken>, StoreError> {
        let row = sqlx::query(
            "SELECT payload, expires_at, generation, updated_at, refresh_at FROM document_tokens \
             WHERE tenant = $1 AND owner = $2 AND provider = $3 AND resource = $4",
        )
        .bind(&id.tenant)
        .bind(&id.owner)
        .bind(&id.provider)
        .bind(&id.resource)
        .fetch_optional(&mut *self.conn().await?)
        .await?;
        Ok(row.map(|r| StoredToken {
            id: id.clone(),
            payload: r.get(0),
            expires_at: r.get(1),
            generation: r.get(2),
            updated_at: r.get(3),
            refresh_at: r.get(4),
        }))
    }

    async fn put_token(&self, t: &StoredToken, expected: Option<i64>) -> Result<bool, StoreError> {
        let done =
            match expected {
                None => {
                    sqlx::query(
                        "INSERT INTO document_tokens (tenant, owner, provider, resource, payload, \
                     expires_at, generation, updated_at, refresh_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                    )
                    .bind(&t.id.tenant)
                    .bind(&t.id.owner)
                    .bind(&t.id.provider)
                    .bind(&t.id.resource)
                    .bind(&t.payload)
                    .bind(t.expires_at)
                    .bind(t.generation)
                    .bind(t.updated_at)
                    .bind(t.refresh_at)
                    .execute(&mut *self.conn().await?)
                    .await?
                }
                Some(generation) => sqlx::query(
                    "UPDATE document_tokens SET payload = $1, expires_at = $2, generation = $3, \
                     updated_at = $4, refresh_at = $5 WHERE tenant = $6 AND owner = $7 \
                     AND provider = $8 AND resource = $9 AND generation = $10",
                )
                .bind(&t.payload)
                .bind(t.expires_at)
                .bind(t.generation)
                .bind(t.updated_at)
                .bind(t.refresh_at)
                .bind(&t.id.tenant)
                .bind(&t.id.owner)
                .bind(&t.id.provider)
                .bind(&t.id.resource)
                .bind(generation)
                .execute(&mut *self.conn().await?)
                .await?,
            };
        Ok(done.rows_affected() == 1)
    }

    async fn get_metadata(
        &self,
        provider: &str,
        source: &str,
    ) -> Result<Option<(String, UnixSeconds)>, StoreError> {
        Ok(sqlx::query(
            "SELECT document, fetched_at FROM provider_metadata \
             WHERE provider = $1 AND source = $2",
        )
        .bind(provider)
        .bind(source)
        .fetch_optional(&mut *self.conn().await?)
        .await?
        .map(|r| (r.get(0), r.get(1))))
    }

    async fn put_metadata(
        &self,
        provider: &str,
        source: &str,
        document: &str,
        fetched_at: UnixSeconds,
    ) -> Result<(), StoreError> {
        // A slower instance never replaces a newer copy with an older one.
        sqlx::query(
            "INSERT INTO provider_metadata (provider, source, document, fetched_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (provider, source) DO UPDATE SET \
             document = excluded.document, fetched_at = excluded.fetched_at \
             WHERE provider_metadata.fetched_at <= excluded.fetched_at",
        )
        .bind(provider)
        .bind(source)
        .bind(document)
        .bind(fetched_at)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(())
    }

    async fn defer_refresh(
        &self,
        id: &TokenId,
        generation: i64,
        until: Option<UnixSeconds>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE document_tokens SET refresh_at = $1 WHERE tenant = $2 AND owner = $3 \
             AND provider = $4 AND resource = $5 AND generation = $6",
        )
        .bind(until)
        .bind(&id.tenant)
        .bind(&id.owner)
        .bind(&id.provider)
        .bind(&id.resource)
        .bind(generation)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn lease_token(
        &self,
        id: &TokenId,
        wait: bool,
    ) -> Result<Option<Box<dyn TokenLease>>, StoreError> {
        let permit = if wait {
            self.leases
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed")
        } else {
            match self.leases.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => return Ok(None),
            }
        };
        // The row lock lives as long as the transaction: until commit, rollback (drop), or
        // the connection's end when the process dies. No time-to-live to guess.
        let mut tx = self.begin().await?;
        const SELECT: &str = "SELECT tenant, owner, provider, resource, payload, expires_at, \
             generation, updated_at, refresh_at FROM document_tokens \
             WHERE tenant = $1 AND owner = $2 AND provider = $3 AND resource = $4";
        // Two fixed texts, no value in either.
        let statement = if wait {
            sqlx::AssertSqlSafe(format!("{SELECT} FOR UPDATE"))
        } else {
            sqlx::AssertSqlSafe(format!("{SELECT} FOR UPDATE SKIP LOCKED"))
        };
        let row = sqlx::query(statement)
            .bind(&id.tenant)
            .bind(&id.owner)
            .bind(&id.provider)
            .bind(&id.resource)
            .fetch_optional(&mut *tx)
            .await?;
        if row.is_none() && !wait {
            // Skipped because another instance holds it, or there is none: either way not
            // this instance's work now.
            return Ok(None);
        }
        Ok(Some(Box::new(PgLease {
            record: row.as_ref().map(token_row),
            held_id: id.clone(),
            tx,
            _permit: permit,
        })))
    }

    async fn delete_token(&self, id: &TokenId) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM document_tokens WHERE tenant = $1 AND owner = $2 AND provider = $3 \
             AND resource = $4",
        )
        .bind(&id.tenant)
        .bind(&id.owner)
        .bind(&id.provider)
        .bind(&id.resource)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn session_payloads(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        Ok(sqlx::query(
            "SELECT id, tenant, payload FROM sessions WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn().await?)
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
    }

    async fn replace_session_payload(
        &self,
        id: &str,
        old: &[u8],
        new: &crate::session::ResealedSession,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET payload = $1, subject_digest = $2, sid_digest = $3 \
             WHERE id = $4 AND payload = $5",
        )
        .bind(&new.payload)
        .bind(&new.subject_digest)
        .bind(&new.sid_digest)
        .bind(id)
        .bind(old)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn move_token(&self, old: &StoredToken, new: &StoredToken) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let deleted = sqlx::query(
            "DELETE FROM document_tokens WHERE tenant = $1 AND owner = $2 AND provider = $3 \
             AND resource = $4 AND generation = $5",
        )
        .bind(&old.id.tenant)
        .bind(&old.id.owner)
        .bind(&old.id.provider)
        .bind(&old.id.resource)
        .bind(old.generation)
        .execute(&mut *tx)
        .await?;
        if deleted.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO document_tokens (tenant, owner, provider, resource, payload, \
             expires_at, generation, updated_at, refresh_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(&new.id.tenant)
        .bind(&new.id.owner)
        .bind(&new.id.provider)
        .bind(&new.id.resource)
        .bind(&new.payload)
        .bind(new.expires_at)
        .bind(new.generation)
        .bind(new.updated_at)
        .bind(new.refresh_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn token_records(
        &self,
        after: Option<&TokenId>,
        limit: u32,
    ) -> Result<Vec<StoredToken>, StoreError> {
        let (t, o, p, r) = after.map_or(("", "", "", ""), |a| {
            (
                a.tenant.as_str(),
                a.owner.as_str(),
                a.provider.as_str(),
                a.resource.as_str(),
            )
        });
        Ok(sqlx::query(
            "SELECT tenant, owner, provider, resource, payload, expires_at, generation, \
             updated_at, refresh_at FROM document_tokens \
             WHERE (tenant, owner, provider, resource) > ($1, $2, $3, $4) \
             ORDER BY tenant, owner, provider, resource LIMIT $5",
        )
        .bind(t)
        .bind(o)
        .bind(p)
        .bind(r)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn().await?)
        .await?
        .iter()
        .map(token_row)
        .collect())
    }

    async fn due_tokens(
        &self,
        before: UnixSeconds,
        now: UnixSeconds,
        idle_before: UnixSeconds,
        limit: u32,
    ) -> Result<Vec<StoredToken>, StoreError> {
        Ok(sqlx::query(
            "SELECT t.tenant, t.owner, t.provider, t.resource, t.payload, t.expires_at, \
             t.generation, t.updated_at, t.refresh_at FROM document_tokens t \
             WHERE t.refresh_at IS NOT NULL AND t.refresh_at <= $1 \
             AND (t.owner = $2 OR EXISTS (SELECT 1 FROM sessions s \
                  WHERE s.tenant = t.tenant AND s.subject_digest = t.owner \
                  AND s.expires_at > $3 AND s.last_seen_at >= $4)) \
             ORDER BY t.refresh_at LIMIT $5",
        )
        .bind(before)
        .bind(crate::tokens::SHARED_OWNER)
        .bind(now)
        .bind(idle_before)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn().await?)
        .await?
        .iter()
        .map(token_row)
        .collect())
    }

    async fn replace_token_payload(
        &self,
        id: &TokenId,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE document_tokens SET payload = $1 WHERE tenant = $2 AND owner = $3 \
             AND provider = $4 AND resource = $5 AND payload = $6",
        )
        .bind(new)
        .bind(&id.tenant)
        .bind(&id.owner)
        .bind(&id.provider)
        .bind(&id.resource)
        .bind(old)
        .execute(&mut *self.conn().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// A `document_tokens` row selected as tenant, owner, provider, resource, payload, expires_at,
/// generation, updated_at, refresh_at.
fn token_row(r: &sqlx::postgres::PgRow) -> StoredToken {
    StoredToken {
        id: TokenId {
            tenant: r.get(0),
            owner: r.get(1),
            provider: r.get(2),
            resource: r.get(3),
        },
        payload: r.get(4),
        expires_at: r.get(5),
        generation: r.get(6),
        updated_at: r.get(7),
        refresh_at: r.get(8),
    }
}
