//! Who may use a tenant's CRM, and who they are in it: the verified identity is matched
//! against the CRM's existing users (an SQL query on its database, or a file), and only a
//! single active match is admitted. Consulted at sign-in and when a live session is due for
//! its re-check (`directory.recheck`), never per request.

mod file;
mod matching;
mod sql;

pub use file::{parse as parse_file, FileSource};
pub use matching::MatchField;
pub use sql::{kind_of as sql_kind_of, SqlSource};

use crate::config::{DirectoryConfig, DirectorySource, Tenant};
use crate::identity::{CrmUser, Identity, MatchValues};
use crate::metrics::Metrics;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a verified identity was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The identity matches no user of this CRM (or lacks the field matched on).
    #[error("no CRM user matches this sign-in")]
    UnknownUser,
    /// The matching CRM user is deactivated.
    #[error("the CRM user is deactivated")]
    Inactive,
    /// Several CRM users match: none is chosen.
    #[error("{0} CRM users match this sign-in")]
    Ambiguous(usize),
    /// The directory could not be consulted (database down, timeout, unreadable file).
    #[error("the user directory is unavailable")]
    Unavailable,
}

impl DirectoryError {
    /// Stable reason code for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::Inactive => "inactive_user",
            Self::Ambiguous(_) => "ambiguous_user",
            Self::Unavailable => "directory_unavailable",
        }
    }
}

/// One user as a source returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The user.
    pub user: CrmUser,
    /// `false` when the CRM marks the user deactivated (no `active` column: active).
    pub active: bool,
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No user.
    Nobody,
    /// Exactly one.
    One(Row),
    /// Two or more (the count seen, which may stop early at `sql::MAX_ROWS_COUNTED`).
    Several(usize),
}

/// A source could not answer; the text goes to logs only (it may name tables or hosts).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// Unreachable, timed out, or the query failed: the directory is down for everyone.
    #[error("{0}")]
    Down(String),
    /// A row came back that cannot be read as a user (for that user only).
    #[error("{0}")]
    Data(String),
}

/// Where a directory's users live.
#[async_trait]
pub trait UserSource: Send + Sync + 'static {
    /// The users whose matched field equals `key` (already normalised).
    async fn find(&self, key: &str) -> Result<Found, SourceError>;
    /// A cheap reachability check for readiness.
    async fn ping(&self) -> Result<(), SourceError>;
}

/// How long a source that just failed is not asked again: while a database is down, every
/// sign-in and re-check would otherwise wait for its own timeout.
const DOWN_BACKOFF_SECS: i64 = 5;

/// One tenant's directory: its source, the field matched on, a cache of answers.
pub struct TenantDirectory {
    tenant: String,
    source: Option<Arc<dyn UserSource>>,
    field: MatchField,
    cache: Option<moka::future::Cache<String, Found>>,
    recheck: Duration,
    stale_grace: Duration,
    metrics: Arc<Metrics>,
    /// Until when (injected clock, seconds) the source is treated as down after a failure.
    down_until: AtomicI64,
    /// The last failure's text, for readiness; cleared by the next success.
    last_error: std::sync::Mutex<Option<String>>,
}

/// Per-answer cache lifetimes: admitted users for `cache_ttl`, refusals for the shorter
/// `negative_ttl` (a user just added to the CRM should not wait long).
struct AnswerExpiry {
    positive: Duration,
    negative: Duration,
}

impl moka::Expiry<String, Found> for AnswerExpiry {
    fn expire_after_create(&self, _: &String, value: &Found, _: Instant) -> Option<Duration> {
        Some(match value {
            Found::One(row) if row.active => self.positive,
            _ => self.negative,
        })
    }
}

impl TenantDirectory {
    /// The directory a tenant's configuration describes. SQL pools connect lazily: a CRM
    /// database that is down at start-up does not stop the gateway.
    pub fn new(
        tenant: &str,
        config: &DirectoryConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, SourceError> {
        let source: Option<Arc<dyn UserSource>> = match &config.source {
            DirectorySource::None => None,
            DirectorySource::Sql { url, query } => Some(Arc::new(SqlSource::new(
                url,
                query,
                MatchField::parse(&config.match_field),
                config.timeout,
            )?)),
            DirectorySource::File { path } => Some(Arc::new(FileSource::open(
                path,
                MatchField::parse(&config.match_field),
            )?)),
        };
        // A file is already in memory (and reloaded when edited): caching it would only
        // delay edits.
        let cache = matches!(config.source, DirectorySource::Sql { .. }).then(|| {
            moka::future::Cache::builder()
                .max_capacity(config.cache_capacity)
                .expire_after(AnswerExpiry {
                    positive: config.cache_ttl,
                    negative: config.negative_cache_ttl,
                })
                .build()
        });
        Ok(Self {
            tenant: tenant.to_owned(),
            source,
            field: MatchField::parse(&config.match_field),
            cache,
            recheck: config.recheck,
            stale_grace: config.stale_grace,
            metrics,
            down_until: AtomicI64::new(i64::MIN),
            last_error: Default::default(),
        })
    }

    /// Whether anyone the provider verified is admitted (`kind: none`).
    pub fn admits_everyone(&self) -> bool {
        self.source.is_none()
    }

    /// How often a live session is checked again.
    pub fn recheck(&self) -> Duration {
        self.recheck
    }

    /// How long past a due re-check a session keeps working while the directory is down.
    pub fn stale_grace(&self) -> Duration {
        self.stale_grace
    }

    /// Matches a verified sign-in; the identity to keep in the session, with its CRM user and
    /// the key it was found by (sealed with the session, for re-checks).
    pub async fn admit(
        &self,
        identity: Identity,
        values: &MatchValues,
        now: i64,
    ) -> Result<Identity, DirectoryError> {
        if self.source.is_none() {
            return Ok(identity);
        }
        let Some(key) = self.field.value_of(values) else {
            tracing::info!(tenant = %self.tenant, field = self.field.name(), "the sign-in carries no single signed value for the directory's match field");
            return Err(self.refused(DirectoryError::UnknownUser));
        };
        let user = self.lookup(&key, now, true).await?;
        Ok(Identity {
            crm: Some(user),
            directory_key: Some(key),
            ..identity
        })
    }

    /// Checks a live session's identity again, past the cache, by the key sign-in used: the
    /// CRM user it was admitted as, as the directory describes them now. A session without
    /// a key (created before this directory was configured) is not a user of it.
    pub async fn recheck_user(
        &self,
        identity: &Identity,
        now: i64,
    ) -> Result<CrmUser, DirectoryError> {
        match &identity.directory_key {
            Some(key) => self.lookup(key, now, false).await,
            None => Err(self.refused(DirectoryError::UnknownUser)),
        }
    }

    async fn lookup(
        &self,
        key: &str,
        now: i64,
        use_cache: bool,
    ) -> Result<CrmUser, DirectoryError> {
        let Some(source) = &self.source else {
            return Err(DirectoryError::UnknownUser);
        };
        let cached = match (&self.cache, use_cache) {
            (Some(cache), true) => cache.get(key).await,
            _ => None,
        };
        let found = match cached {
            Some(found) => found,
            None => {
                if now < self.down_until.load(Ordering::SeqCst) {
                    return Err(self.refused(DirectoryError::Unavailable));
                }
                self.metrics
                    .directory_queries
                    .with_label_values(&[self.tenant.as_str()])
                    .inc();
                match source.find(key).await {
                    Ok(found) => {
                        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        if let Some(cache) = &self.cache {
                            cache.insert(key.to_owned(), found.clone()).await;
                        }
                        found
                    }
                    Err(SourceError::Data(e)) => {
                        // One user's row the query cannot describe (NULL id, odd types):
                        // that user is refused; the directory is not down for everyone.
                        tracing::error!(tenant = %self.tenant, error = %e, "user directory row unusable");
                        return Err(self.refused(DirectoryError::Unavailable));
                    }
                    Err(SourceError::Down(e)) => {
                        tracing::error!(tenant = %self.tenant, error = %e, "user directory unavailable");
                        self.down_until
                            .store(now.saturating_add(DOWN_BACKOFF_SECS), Ordering::SeqCst);
                        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                        return Err(self.refused(DirectoryError::Unavailable));
                    }
                }
            }
        };
        let result = match found {
            Found::One(row) if row.active => Ok(row.user),
            Found::One(_) => Err(DirectoryError::Inactive),
            Found::Nobody => Err(DirectoryError::UnknownUser),
            Found::Several(n) => {
                tracing::warn!(tenant = %self.tenant, field = self.field.name(), matches = n, "several CRM users match one sign-in: refused");
                Err(DirectoryError::Ambiguous(n))
            }
        };
        self.count(result)
    }

    fn refused(&self, e: DirectoryError) -> DirectoryError {
        self.count::<()>(Err(e.clone())).ok();
        e
    }

    fn count<T>(&self, result: Result<T, DirectoryError>) -> Result<T, DirectoryError> {
        let outcome = match &result {
            Ok(_) => "admitted",
            Err(e) => e.reason(),
        };
        self.metrics
            .directory_lookups
            .with_label_values(&[self.tenant.as_str(), outcome])
            .inc();
        result
    }

    /// Whether the source answers now; the reason when it does not.
    pub async fn ready(&self) -> Result<(), String> {
        match &self.source {
            None => Ok(()),
            Some(source) => source.ping().await.map_err(|e| e.to_string()),
        }
    }
}

/// How long a readiness answer about the directories is reused, seconds: the endpoint is
/// unauthenticated, and each answer costs every CRM database a round trip.
const READINESS_TTL_SECS: i64 = 5;

/// The first unreachable directory, by tenant, with the detail for the log.
pub type Unreachable = Option<(String, String)>;

/// Every tenant's directory, by tenant name.
#[derive(Default)]
pub struct Directories {
    by_tenant: HashMap<String, Arc<TenantDirectory>>,
    /// The last readiness answer and when it was made; one probe at a time.
    readiness: tokio::sync::Mutex<Option<(i64, Unreachable)>>,
}

impl Directories {
    /// Builds each tenant's directory.
    pub fn new(tenants: &[Tenant], metrics: &Arc<Metrics>) -> Result<Self, SourceError> {
        let mut by_tenant = HashMap::new();
        for t in tenants {
            let directory = TenantDirectory::new(&t.name, &t.directory, metrics.clone())
                .map_err(|e| SourceError::Down(format!("tenant `{}` directory: {e}", t.name)))?;
            by_tenant.insert(t.name.clone(), Arc::new(directory));
        }
        Ok(Self {
            by_tenant,
            readiness: Default::default(),
        })
    }

    /// The first tenant (by name) whose directory does not answer, probing all of them at
    /// once and at most every few seconds (concurrent callers share one probe).
    pub async fn unreachable(&self, now: i64) -> Unreachable {
        let mut last = self.readiness.lock().await;
        if let Some((at, answer)) = &*last {
            if now.saturating_sub(*at) < READINESS_TTL_SECS {
                return answer.clone();
            }
        }
        let mut tenants: Vec<_> = self.by_tenant.iter().collect();
        tenants.sort_by(|a, b| a.0.cmp(b.0));
        let probes = tenants.iter().map(|(_, d)| d.ready());
        let results = futures_util::future::join_all(probes).await;
        let answer = tenants
            .iter()
            .zip(results)
            .find_map(|((tenant, _), r)| r.err().map(|detail| (tenant.to_string(), detail)));
        *last = Some((now, answer.clone()));
        answer
    }

    /// Problems found by reading each file directory the way the gateway will (for
    /// `check-config`): `(YAML path, message)`.
    pub fn check_files(tenants: &[Tenant]) -> Vec<(String, String)> {
        tenants
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match &t.directory.source {
                DirectorySource::File { path } => {
                    let field = MatchField::parse(&t.directory.match_field);
                    file::parse(path, &field)
                        .err()
                        .map(|e| (format!("tenants[{i}].directory.path"), e))
                }
                _ => None,
            })
            .collect()
    }

    /// A tenant's directory.
    pub fn get(&self, tenant: &str) -> Option<&Arc<TenantDirectory>> {
        self.by_tenant.get(tenant)
    }

    /// Every tenant's directory.
    pub fn all(&self) -> impl Iterator<Item = (&String, &Arc<TenantDirectory>)> {
        self.by_tenant.iter()
    }
}
