//! The embedded SQLite backend (sqlx). WAL mode so readers never wait for the writer.

use super::{SessionMatch, Store, StoreError, StoredSession, TokenLease};
use crate::clock::UnixSeconds;
use crate::tokens::{StoredToken, TokenId};
use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlSafeStr, SqlitePool};
use std::path::Path;
use std::time::Duration;

/// Versioned schema, embedded in the binary so a fresh machine needs no migration files.
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "sessions".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0001_sessions.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "seen once".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0002_seen_once.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            "session lookup".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0003_session_lookup.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            4,
            "directory check".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0004_directory_check.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            5,
            "document tokens".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0005_document_tokens.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            6,
            "token refresh_at".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0006_token_refresh_at.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            7,
            "provider metadata".into(),
            MigrationType::Simple,
            include_str!("../../migrations/sqlite/0007_provider_metadata.sql").into_sql_str(),
            false,
        ),
    ])
}

/// SQLite-backed store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `path`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            // Sessions are point reads by key, and the gateway's own cache serves active
            // ones: 512 KiB of page cache per connection (SQLite's default is 2 MiB) and
            // the OS page cache behind it. Measured: see docs/benchmarks.md (memory).
            .pragma("cache_size", "-512");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        migrator().run(&pool).await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_session(&self, s: &StoredSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, tenant, payload, created_at, last_seen_at, expires_at, \
             subject_digest, sid_digest, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_session(&self, id: &str) -> Result<Option<StoredSession>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant, payload, created_at, last_seen_at, expires_at, \
             subject_digest, sid_digest, checked_at FROM sessions WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
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
        sqlx::query("UPDATE sessions SET checked_at = MAX(checked_at, ?) WHERE id = ?")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
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
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT id FROM sessions WHERE 1 = 1");
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
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn touch_session(&self, id: &str, last_seen_at: UnixSeconds) -> Result<(), StoreError> {
        // MAX keeps a late, out-of-order write from moving the time backwards.
        sqlx::query("UPDATE sessions SET last_seen_at = MAX(last_seen_at, ?) WHERE id = ?")
            .bind(last_seen_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn touch_sessions(&self, touches: &[(String, UnixSeconds)]) -> Result<(), StoreError> {
        if touches.is_empty() {
            return Ok(());
        }
        // One transaction: one WAL commit for the whole batch instead of one per session.
        let mut tx = self.pool.begin().await?;
        for (id, seen) in touches {
            sqlx::query("UPDATE sessions SET last_seen_at = MAX(last_seen_at, ?) WHERE id = ?")
                .bind(seen)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_sessions(
        &self,
        now: UnixSeconds,
        idle_before: UnixSeconds,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at < ?")
            .bind(now)
            .bind(idle_before)
            .execute(&self.pool)
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
            "INSERT INTO seen_once (kind, key, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (kind, key) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE seen_once.expires_at <= ?",
        )
        .bind(kind)
        .bind(key)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge_seen(&self, now: UnixSeconds) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM seen_once WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn get_token(&self, id: &TokenId) -> Result<Option<StoredToken>, StoreError> {
        let row = sqlx::query(
            "SELECT payload, expires_at, generation, updated_at, refresh_at FROM document_tokens \
             WHERE tenant = ? AND owner = ? AND provider = ? AND resource = ?",
        )
        .bind(&id.tenant)
        .bind(&id.owner)
        .bind(&id.provider)
        .bind(&id.resource)
        .fetch_optional(&self.pool)
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
        let done = match expected {
            None => {
                sqlx::query(
                    "INSERT INTO document_tokens (tenant, owner, provider, resource, payload, \
                     expires_at, generation, updated_at, refresh_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
                .execute(&self.pool)
                .await?
            }
            Some(generation) => {
                sqlx::query(
                    "UPDATE document_tokens SET payload = ?, expires_at = ?, generation = ?, \
                     updated_at = ?, refresh_at = ? WHERE tenant = ? AND owner = ? \
                     AND provider = ? AND resource = ? AND generation = ?",
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
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    async fn get_metadata(
        &self,
        provider: &str,
        source: &str,
    ) -> Result<Option<(String, UnixSeconds)>, StoreError> {
        Ok(sqlx::query(
            "SELECT document, fetched_at FROM provider_metadata WHERE provider = ? AND source = ?",
        )
        .bind(provider)
        .bind(source)
        .fetch_optional(&self.pool)
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
             VALUES (?, ?, ?, ?) ON CONFLICT (provider, source) DO UPDATE SET \
             document = excluded.document, fetched_at = excluded.fetched_at \
             WHERE provider_metadata.fetched_at <= excluded.fetched_at",
        )
        .bind(provider)
        .bind(source)
        .bind(document)
        .bind(fetched_at)
        .execute(&self.pool)
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
            "UPDATE document_tokens SET refresh_at = ? WHERE tenant = ? AND owner = ? \
             AND provider = ? AND resource = ? AND generation = ?",
        )
        .bind(until)
        .bind(&id.tenant)
        .bind(&id.owner)
        .bind(&id.provider)
        .bind(&id.resource)
        .bind(generation)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn lease_token(
        &self,
        id: &TokenId,
        _wait: bool,
    ) -> Result<Option<Box<dyn TokenLease>>, StoreError> {
        // One gateway per SQLite file: the process's own per-token lock (DocumentTokens) is
        // the exclusion; the lease is the record as read, written back in one transaction.
        Ok(Some(Box::new(SqliteLease {
            record: self.get_token(id).await?,
            held_id: id.clone(),
            pool: self.pool.clone(),
        })))
    }

    async fn delete_token(&self, id: &TokenId) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM document_tokens WHERE tenant = ? AND owner = ? AND provider = ? \
             AND resource = ?",
        )
        .bind(&id.tenant)
        .bind(&id.owner)
        .bind(&id.provider)
        .bind(&id.resource)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn session_payloads(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        Ok(
            sqlx::query(
                "SELECT id, tenant, payload FROM sessions WHERE id > ? ORDER BY id LIMIT ?",
            )
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect(),
        )
    }

    async fn replace_session_payload(
        &self,
        id: &str,
        old: &[u8],
        new: &crate::session::ResealedSession,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET payload = ?, subject_digest = ?, sid_digest = ? \
             WHERE id = ? AND payload = ?",
        )
        .bind(&new.payload)
        .bind(&new.subject_digest)
        .bind(&new.sid_digest)
        .bind(id)
        .bind(old)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn move_token(&self, old: &StoredToken, new: &StoredToken) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query(
            "DELETE FROM document_tokens WHERE tenant = ? AND owner = ? AND provider = ? \
             AND resource = ? AND generation = ?",
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
             WHERE (tenant, owner, provider, resource) > (?, ?, ?, ?) \
             ORDER BY tenant, owner, provider, resource LIMIT ?",
        )
        .bind(t)
        .bind(o)
        .bind(p)
        .bind(r)
        .bind(limit)
        .fetch_all(&self.pool)
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
             WHERE t.refresh_at IS NOT NULL AND t.refresh_at <= ? \
             AND (t.owner = ? OR EXISTS (SELECT 1 FROM sessions s \
                  WHERE s.tenant = t.tenant AND s.subject_digest = t.owner \
                  AND s.expires_at > ? AND s.last_seen_at >= ?)) \
             ORDER BY t.refresh_at LIMIT ?",
        )
        .bind(before)
        .bind(crate::tokens::SHARED_OWNER)
        .bind(now)
        .bind(idle_before)
        .bind(limit)
        .fetch_all(&self.pool)
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
            "UPDATE document_tokens SET payload = ? WHERE tenant = ? AND owner = ? \
             AND provider = ? AND resource = ? AND payload = ?",
        )
        .bind(new)
        .bind(&id.tenant)
        .bind(&id.owner)
        .bind(&id.provider)
        .bind(&id.resource)
        .bind(old)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// A token record as read, written back with its companions in one transaction.
struct SqliteLease {
    record: Option<StoredToken>,
    held_id: TokenId,
    pool: SqlitePool,
}

#[async_trait]
impl TokenLease for SqliteLease {
    fn record(&self) -> Option<&StoredToken> {
        self.record.as_ref()
    }

    async fn commit(self: Box<Self>, records: &[StoredToken]) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        for t in records {
            let held = self.held_id == t.id;
            let query = match (&self.record, held) {
                (_, false) => UPSERT_TOKEN,
                (Some(_), true) => UPDATE_HELD_TOKEN,
                (None, true) => INSERT_HELD_TOKEN,
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
            let done = q.execute(&mut *tx).await?;
            if held && done.rows_affected() != 1 {
                // Changed since it was read: nothing of this commit is written.
                return Ok(false);
            }
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Inserts a token record or replaces the one with its key.
const UPSERT_TOKEN: &str = "INSERT INTO document_tokens (tenant, owner, provider, resource, \
     payload, expires_at, generation, updated_at, refresh_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT (tenant, owner, provider, resource) DO UPDATE SET payload = excluded.payload, \
     expires_at = excluded.expires_at, generation = excluded.generation, \
     updated_at = excluded.updated_at, refresh_at = excluded.refresh_at";

/// Replaces the held record if it is still at the generation read (?10).
const UPDATE_HELD_TOKEN: &str = "UPDATE document_tokens SET payload = ?5, expires_at = ?6, \
     generation = ?7, updated_at = ?8, refresh_at = ?9 WHERE tenant = ?1 AND owner = ?2 \
     AND provider = ?3 AND resource = ?4 AND generation = ?10";

/// Inserts the held record, read as absent, if it still is.
const INSERT_HELD_TOKEN: &str = "INSERT INTO document_tokens (tenant, owner, provider, \
     resource, payload, expires_at, generation, updated_at, refresh_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING";

/// A `document_tokens` row selected as tenant, owner, provider, resource, payload, expires_at,
/// generation, updated_at, refresh_at.
fn token_row(r: &sqlx::sqlite::SqliteRow) -> StoredToken {
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
