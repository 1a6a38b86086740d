//! Keeping document tokens fresh: a token met within `refresh_margin` of its expiry is
//! refreshed at the provider's token endpoint before it is injected. One refresh per token
//! at a time in a process: concurrent requests wait for it and read its result. The new
//! tokens are committed (compare-and-set on the record's generation) before they are used;
//! a refresh token the server does not send back is kept.
//!
//! Failures are classified: `invalid_grant`, `interaction_required`, `consent_required` mark
//! the token as needing consent; throttling (429, with `Retry-After`), 5xx and network
//! errors back off and keep serving the current token while it is valid; `invalid_client`
//! is an operator's problem (logged as an error), never a consent loop.

use super::answer::{classify, Answer};
use super::inject::Lookup;
use super::{open, DocumentToken, StoredToken, TokenId, TokenSecret, TokenStatus, SHARED_OWNER};
use crate::clock::{Clock, UnixSeconds};
use crate::config::{DocumentProvider, DocumentProviderKind, DocumentsConfig, Tenant};
use crate::crypto::KeyRing;
use crate::http_client::ProviderHttp;
use crate::store::{Store, TokenLease};
use crate::throttle::Throttle;
use arc_swap::ArcSwapOption;
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::Arc;

/// After a failed refresh without `Retry-After`, how long before the next attempt, seconds.
const RETRY_SECS: i64 = 30;

/// After a refusal of one token (not of the client), how long before the next attempt, seconds.
const REFUSED_RETRY_SECS: u64 = 600;

/// Least time between two refreshes a user asks for (`POST /_vestibule/documents/refresh`),
/// seconds.
pub const FORCED_REFRESH_SECS: i64 = 10;

/// Most token records one background pass looks at.
const DUE_BATCH: u32 = 500;

/// How often the background refresher looks for due tokens: a fifth of the narrowest
/// `refresh_margin` (so a token gets several chances before it expires), between 1 s and 1 min.
pub fn refresh_interval(tenants: &[Tenant]) -> std::time::Duration {
    let narrowest = tenants
        .iter()
        .filter_map(|t| t.documents.as_ref())
        .map(|d| d.refresh_margin / 5)
        .min()
        .unwrap_or(std::time::Duration::from_secs(60));
    narrowest.clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    )
}

/// Least time between two discovery attempts for a provider, seconds.
const DISCOVERY_RETRY_SECS: i64 = 10;

/// A document provider at run time: its settings and its endpoints once discovered.
struct ProviderState {
    config: DocumentProvider,
    endpoints: ArcSwapOption<Endpoints>,
    discovery: Throttle,
}

/// A document provider's endpoints, from its discovery document.
struct Endpoints {
    token: url::Url,
    /// RFC 7009 token revocation (`revocation_endpoint`), when the provider has one.
    revocation: Option<url::Url>,
}

/// How disconnecting a shared grant went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnected {
    /// Revoked at the provider and deleted here.
    Revoked,
    /// Deleted here; the provider could not be told (no revocation endpoint, unreachable,
    /// refused): the grant may live on there until its owner removes it.
    DeletedOnly,
    /// There was nothing to disconnect.
    NothingStored,
}

/// Reads, refreshes and classifies document tokens.
pub struct DocumentTokens {
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    http: ProviderHttp,
    clock: Arc<dyn Clock>,
    providers: HashMap<String, ProviderState>,
    /// One refresh per token at a time.
    locks: DashMap<TokenId, Arc<tokio::sync::Mutex<()>>>,
    /// Tokens whose last refresh failed for a passing reason: not tried again before this.
    retry_at: DashMap<TokenId, UnixSeconds>,
    /// Providers whose token endpoint refused the client itself (`invalid_client`, wrong or
    /// expired secret), with the error code: an operator's problem, reported by readiness
    /// until a refresh succeeds again.
    refused_client: DashMap<String, String>,
    /// Refresh outcomes by provider and outcome.
    outcomes: Option<prometheus::IntCounterVec>,
    /// When each user (tenant and owner) last asked for a refresh now.
    forced: DashMap<String, UnixSeconds>,
}

/// Tokens a token endpoint issued.
struct NewTokens {
    access_token: TokenSecret,
    expires_at: UnixSeconds,
    refresh_token: Option<TokenSecret>,
    scope: Option<String>,
}

/// What one token request gave.
enum Granted {
    /// New tokens (not stored yet).
    Tokens(NewTokens),
    /// The grant is gone: consent again.
    GrantGone,
    /// Not now (throttled, provider down, misconfigured).
    NotNow,
}

/// How one refresh went.
enum Refreshed {
    /// New tokens, committed.
    Fresh(DocumentToken),
    /// The grant is gone: consent again.
    ConsentRequired,
    /// Not now (throttled, provider down, misconfigured): try later.
    NotNow,
}

/// Whose tokens a request reads: the user's own (Microsoft), or the tenant's shared one
/// (Google) whoever the user is.
fn owners_for<'a>(owners: &'a [String], documents: &DocumentsConfig) -> &'a [String] {
    static SHARED: std::sync::LazyLock<[String; 1]> =
        std::sync::LazyLock::new(|| [SHARED_OWNER.to_owned()]);
    match documents.kind {
        DocumentProviderKind::Microsoft => owners,
        DocumentProviderKind::Google => SHARED.as_slice(),
    }
}

impl DocumentTokens {
    /// Over the store, sealing with `keys`, for the configured document providers.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
        providers: &[DocumentProvider],
    ) -> Self {
        Self {
            store,
            keys,
            http: ProviderHttp::new(),
            clock,
            providers: providers
                .iter()
                .map(|p| {
                    (
                        p.name.clone(),
                        ProviderState {
                            config: p.clone(),
                            endpoints: ArcSwapOption::empty(),
                            discovery: Throttle::new(),
                        },
                    )
                })
                .collect(),
            locks: DashMap::new(),
            retry_at: DashMap::new(),
            refused_client: DashMap::new(),
            outcomes: None,
            forced: DashMap::new(),
        }
    }

    /// Counts refresh outcomes in `counter` (labels: provider, outcome).
    pub fn with_metrics(mut self, counter: prometheus::IntCounterVec) -> Self {
        self.outcomes = Some(counter);
        self
    }

    fn count(&self, provider: &str, outcome: &str) {
        if let Some(c) = &self.outcomes {
            c.with_label_values(&[provider, outcome]).inc();
        }
    }

    /// A document provider that refuses the gateway's client credentials, with the error
    /// it gave; `None` when every one accepted them (or was not asked yet).
    pub fn refused_client(&self) -> Option<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .refused_client
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        all.sort();
        all.into_iter().next()
    }

    /// The user's tokens for each resource of `documents` (Google: the tenant's shared
    /// token, whoever asks), refreshed when due.
    pub async fn current(
        &self,
        tenant: &str,
        owners: &[String],
        documents: &DocumentsConfig,
    ) -> Vec<Lookup> {
        let owners = owners_for(owners, documents);
        let found = super::lookup_owned(
            self.store.as_ref(),
            &self.keys,
            tenant,
            owners,
            &documents.provider,
            &documents.resources,
        )
        .await;
        // Further resources are minted from the first resource's record, wherever it is.
        let source_owner = found.first().and_then(|(_, o)| o.clone());
        let mut out = Vec::with_capacity(found.len());
        for (i, ((resource, scopes), (lookup, found_under))) in
            documents.resources.iter().zip(found).enumerate()
        {
            let secondary = i > 0 && documents.kind == DocumentProviderKind::Microsoft;
            if secondary {
                let needs_token = match &lookup {
                    Lookup::Missing => true,
                    Lookup::Found(t) => t.refresh_token.is_none() && self.expiring(t, documents),
                    Lookup::Failed | Lookup::UnsupportedSignIn => false,
                };
                if let (true, Some(owner)) = (needs_token, source_owner.as_ref()) {
                    out.push(self.mint(tenant, owner, documents, resource, scopes).await);
                    continue;
                }
            }
            let Lookup::Found(token) = &lookup else {
                out.push(lookup);
                continue;
            };
            if !self.due(token, documents) {
                out.push(lookup);
                continue;
            }
            let Some(owner) = found_under else {
                out.push(lookup);
                continue;
            };
            let id = TokenId {
                tenant: tenant.to_owned(),
                owner,
                provider: documents.provider.clone(),
                resource: resource.clone(),
            };
            let refreshed = self
                .refresh_or_keep(&id, documents, scopes, None, true)
                .await;
            // Gone between the read and the refresh (rotate-key moved it): what was read
            // serves this request while it is valid, rather than "consent required".
            out.push(match refreshed {
                Lookup::Missing => lookup,
                other => other,
            });
        }
        out
    }

    /// Refreshes the user's tokens now, whatever their expiry (the CRM met a 401 from Graph or
    /// Drive); at most once per `FORCED_REFRESH_SECS` per user, else the seconds to wait.
    pub async fn refresh_now(
        &self,
        tenant: &str,
        owners: &[String],
        documents: &DocumentsConfig,
    ) -> Result<Vec<Lookup>, u32> {
        // Google's shared token: once per FORCED_REFRESH_SECS for the whole tenant.
        let owners = owners_for(owners, documents);
        let Some(owner) = owners.first() else {
            return Ok(Vec::new());
        };
        let now = self.clock.now();
        let key = format!("{tenant}\n{owner}");
        if let Some(last) = self.forced.get(&key) {
            let wait = *last + FORCED_REFRESH_SECS - now;
            if wait > 0 {
                return Err(wait as u32);
            }
        }
        self.forced.insert(key, now);
        let found = super::lookup_owned(
            self.store.as_ref(),
            &self.keys,
            tenant,
            owners,
            &documents.provider,
            &documents.resources,
        )
        .await;
        let mut out = Vec::new();
        for ((resource, scopes), (_, found_under)) in documents.resources.iter().zip(found) {
            let id = TokenId {
                tenant: tenant.to_owned(),
                owner: found_under.unwrap_or_else(|| owner.clone()),
                provider: documents.provider.clone(),
                resource: resource.clone(),
            };
            out.push(
                self.refresh_or_keep(&id, documents, scopes, Some(now), true)
                    .await,
            );
        }
        Ok(out)
    }

    /// Refreshes ahead of expiry the tokens of users with live sessions (not idle since
    /// `idle` ago) and the tenants' shared tokens, each when it comes within its tenant's
    /// `refresh_margin` (the schedule calls this every `refresh_interval`); how many were
    /// renewed. Requests that meet a due token meanwhile wait for the same refresh (one lock
    /// per token), so nothing is refreshed twice.
    pub async fn refresh_due(&self, tenants: &[Tenant], idle: std::time::Duration) -> usize {
        let margins = tenants
            .iter()
            .filter_map(|t| t.documents.as_ref())
            .map(|d| d.refresh_margin.as_secs() as i64);
        let Some(widest) = margins.max() else {
            return 0;
        };
        let now = self.clock.now();
        let due = match self
            .store
            .due_tokens(now + widest, now, now - idle.as_secs() as i64, DUE_BATCH)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "document tokens due for refresh unreadable: store unavailable");
                return 0;
            }
        };
        if due.len() == DUE_BATCH as usize {
            tracing::warn!(batch = DUE_BATCH, "more document tokens due than one pass refreshes; the rest wait for the next pass or a request");
        }
        let mut renewed = 0;
        for stored in due {
            let configured = tenants
                .iter()
                .find(|t| t.name == stored.id.tenant)
                .and_then(|t| t.documents.as_ref())
                .filter(|d| d.provider == stored.id.provider)
                .and_then(|d| {
                    let (_, scopes) = d.resources.iter().find(|(r, _)| *r == stored.id.resource)?;
                    Some((d, scopes))
                });
            let refreshable = open(&self.keys, &stored).is_ok_and(|t| t.refreshable());
            let Some((documents, scopes)) = configured.filter(|_| refreshable) else {
                // Nothing this pass can do (configuration removed, grant gone, record sealed
                // under a key no longer in the ring): out of the next passes' way, or it would
                // fill every batch ahead of tokens that can be refreshed.
                self.defer(&stored, None).await;
                continue;
            };
            if stored.expires_at - documents.refresh_margin.as_secs() as i64 > now {
                continue;
            }
            let outcome = self
                .refresh_or_keep(&stored.id, documents, scopes, None, false)
                .await;
            match outcome {
                Lookup::Found(token) if token.expires_at > stored.expires_at => renewed += 1,
                // Backing off: looked at again when the wait is over.
                _ => {
                    if let Some(at) = self.retry_at.get(&stored.id).map(|at| *at) {
                        self.defer(&stored, Some(at)).await;
                    }
                }
            }
        }
        renewed
    }

    /// Moves `stored`'s next look by the background refresher to `until` (`None`: until it
    /// is written again), if it is still the record read.
    async fn defer(&self, stored: &StoredToken, until: Option<UnixSeconds>) {
        if let Err(e) = self
            .store
            .defer_refresh(&stored.id, stored.generation, until)
            .await
        {
            tracing::warn!(tenant = %stored.id.tenant, error = %e, "could not defer a document token's background refresh");
        }
    }

    /// Disconnects the tenant's shared grant: revoked at the provider (RFC 7009) and deleted
    /// here, under the token's refresh lock so no refresh races it.
    pub async fn disconnect_shared(
        &self,
        tenant: &str,
        documents: &DocumentsConfig,
    ) -> Result<Disconnected, crate::store::StoreError> {
        let id = TokenId {
            tenant: tenant.to_owned(),
            owner: SHARED_OWNER.to_owned(),
            provider: documents.provider.clone(),
            resource: documents
                .resources
                .first()
                .map_or_else(|| "drive".to_owned(), |(r, _)| r.clone()),
        };
        let lock = self.locks.entry(id.clone()).or_default().clone();
        let _one_at_a_time = lock.lock().await;
        let Some(stored) = self.store.get_token(&id).await? else {
            return Ok(Disconnected::NothingStored);
        };
        let revoked = match open(&self.keys, &stored) {
            Ok(token) => {
                // Revoking the refresh token ends the whole grant at Google.
                let secret = token.refresh_token.as_ref().unwrap_or(&token.access_token);
                self.revoke(&documents.provider, secret).await
            }
            Err(_) => false,
        };
        self.store.delete_token(&id).await?;
        self.retry_at.remove(&id);
        tracing::warn!(tenant, provider = %documents.provider, revoked, "shared document grant disconnected");
        Ok(if revoked {
            Disconnected::Revoked
        } else {
            Disconnected::DeletedOnly
        })
    }

    /// Revokes `token` at the provider's revocation endpoint; true when it said so.
    async fn revoke(&self, provider: &str, token: &TokenSecret) -> bool {
        let Some(state) = self.providers.get(provider) else {
            return false;
        };
        let Some(endpoint) = self
            .endpoints(state)
            .await
            .and_then(|e| e.revocation.clone())
        else {
            tracing::warn!(provider, "document provider has no revocation endpoint");
            return false;
        };
        match self
            .http
            .post_form(
                &endpoint,
                &state.config.credential.authenticate(
                    &state.config.client_id,
                    &endpoint,
                    self.clock.now(),
                ),
                &[("token", token.expose())],
            )
            .await
        {
            // RFC 7009 §2.2: 200 also for a token that was already invalid.
            Ok(answer) if answer.status == 200 => true,
            Ok(answer) => {
                tracing::warn!(provider, status = answer.status, "token revocation refused");
                false
            }
            Err(e) => {
                tracing::warn!(provider, error = %e, "token revocation failed");
                false
            }
        }
    }

    fn expiring(&self, token: &DocumentToken, documents: &DocumentsConfig) -> bool {
        token.status == TokenStatus::Ok
            && self.clock.now() + documents.refresh_margin.as_secs() as i64 >= token.expires_at
    }

    /// Expiring, and renewable by a refresh of its own.
    fn due(&self, token: &DocumentToken, documents: &DocumentsConfig) -> bool {
        token.refresh_token.is_some() && self.expiring(token, documents)
    }

    /// Refreshes `id` unless another request (here or, on a shared store, on another
    /// instance) just did; what to inject afterwards. The record is held for the refresh
    /// (`Store::lease_token`), read again once held, and the new tokens are committed before
    /// the lease ends and before they are used. `wait: false` (the background refresher)
    /// leaves a record someone else holds to them.
    async fn refresh_or_keep(
        &self,
        id: &TokenId,
        documents: &DocumentsConfig,
        scopes: &[String],
        forced_at: Option<UnixSeconds>,
        wait: bool,
    ) -> Lookup {
        // Requests of this process queue here, not on the database.
        let lock = self.locks.entry(id.clone()).or_default().clone();
        let _one_at_a_time = lock.lock().await;
        let lease = match self.store.lease_token(id, wait).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return Lookup::Missing,
            Err(e) => {
                tracing::error!(tenant = %id.tenant, error = %e, "document token unreadable: store unavailable");
                return Lookup::Failed;
            }
        };
        // Read once held: a refresh that finished while we waited is used as is.
        let Some(stored) = lease.record().cloned() else {
            return Lookup::Missing;
        };
        let Ok(current) = open(&self.keys, &stored) else {
            return Lookup::Failed;
        };
        let now = self.clock.now();
        let wanted = match forced_at {
            // Unless it was renewed (here or elsewhere) after the caller asked.
            Some(asked) => current.refreshable() && stored.updated_at <= asked,
            None => self.due(&current, documents),
        };
        if !wanted || self.retry_at.get(id).is_some_and(|at| now < *at) {
            return Lookup::Found(current);
        }
        match self
            .refresh(lease, &stored, &current, documents, scopes)
            .await
        {
            Refreshed::Fresh(token) => {
                self.retry_at.remove(id);
                Lookup::Found(token)
            }
            Refreshed::ConsentRequired => Lookup::Found(DocumentToken {
                status: TokenStatus::ConsentRequired,
                ..current
            }),
            // The current token while it lasts; `inject` reports it unavailable after.
            Refreshed::NotNow => Lookup::Found(current),
        }
    }

    async fn endpoints(&self, provider: &ProviderState) -> Option<Arc<Endpoints>> {
        if let Some(endpoints) = provider.endpoints.load_full() {
            return Some(endpoints);
        }
        if !provider
            .discovery
            .try_claim(self.clock.now(), DISCOVERY_RETRY_SECS)
        {
            return None;
        }
        let base = provider.config.authority.as_str().trim_end_matches('/');
        let discovery: url::Url = format!("{base}/.well-known/openid-configuration")
            .parse()
            .ok()?;
        let text = match self.http.get_text(&discovery).await {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(provider = %provider.config.name, error = %e, "document provider discovery failed");
                return None;
            }
        };
        let document: serde_json::Value = serde_json::from_str(&text).ok()?;
        let url = |k: &str| -> Option<url::Url> { document.get(k)?.as_str()?.parse().ok() };
        let endpoints = Arc::new(Endpoints {
            token: url("token_endpoint")?,
            revocation: url("revocation_endpoint"),
        });
        provider.endpoints.store(Some(endpoints.clone()));
        Some(endpoints)
    }

    async fn refresh(
        &self,
        lease: Box<dyn TokenLease>,
        stored: &StoredToken,
        current: &DocumentToken,
        documents: &DocumentsConfig,
        scopes: &[String],
    ) -> Refreshed {
        let Some(refresh_token) = &current.refresh_token else {
            return Refreshed::NotNow;
        };
        match self
            .token_request(&stored.id, documents, refresh_token, scopes)
            .await
        {
            Granted::Tokens(t) => {
                let token = DocumentToken {
                    access_token: t.access_token,
                    expires_at: t.expires_at,
                    // A server that sends none keeps the old one valid (Google).
                    refresh_token: t.refresh_token.or_else(|| current.refresh_token.clone()),
                    scope: t.scope.unwrap_or_else(|| current.scope.clone()),
                    status: TokenStatus::Ok,
                    owner_key: current.owner_key.clone(),
                };
                let record = self.next(stored, &token);
                if self.commit(lease, &[record]).await {
                    Refreshed::Fresh(token)
                } else {
                    Refreshed::NotNow
                }
            }
            Granted::GrantGone => {
                let token = DocumentToken {
                    status: TokenStatus::ConsentRequired,
                    ..current.clone()
                };
                let record = self.next(stored, &token);
                self.commit(lease, &[record]).await;
                Refreshed::ConsentRequired
            }
            Granted::NotNow => Refreshed::NotNow,
        }
    }

    /// A Microsoft resource beyond the first, minted from the refresh token that the first
    /// resource's record holds (Microsoft access tokens are single-resource; one refresh
    /// token per user). Runs holding the first record, so its refresh token rotates once
    /// across instances; the rotated refresh token and the minted token are committed
    /// together.
    async fn mint(
        &self,
        tenant: &str,
        owner: &str,
        documents: &DocumentsConfig,
        resource: &str,
        scopes: &[String],
    ) -> Lookup {
        let id = |resource: &str| TokenId {
            tenant: tenant.to_owned(),
            owner: owner.to_owned(),
            provider: documents.provider.clone(),
            resource: resource.to_owned(),
        };
        let Some((first, _)) = documents.resources.first() else {
            return Lookup::Missing;
        };
        let (source_id, target_id) = (id(first), id(resource));
        let lock = self.locks.entry(source_id.clone()).or_default().clone();
        let _one_at_a_time = lock.lock().await;
        let lease = match self.store.lease_token(&source_id, true).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return Lookup::Missing,
            Err(_) => return Lookup::Failed,
        };
        // Read once held: another instance may have minted it meanwhile.
        let now = self.clock.now();
        let target = match self.store.get_token(&target_id).await {
            Ok(t) => t,
            Err(_) => return Lookup::Failed,
        };
        let opened = target.as_ref().and_then(|t| open(&self.keys, t).ok());
        if let Some(token) = &opened {
            if token.status != TokenStatus::Ok
                || now + (documents.refresh_margin.as_secs() as i64) < token.expires_at
            {
                return Lookup::Found(token.clone());
            }
        }
        if self.retry_at.get(&target_id).is_some_and(|at| now < *at) {
            return opened.map_or(Lookup::Missing, Lookup::Found);
        }
        let Some(source) = lease.record().cloned() else {
            return opened.map_or(Lookup::Missing, Lookup::Found);
        };
        let Ok(source_token) = open(&self.keys, &source) else {
            return Lookup::Failed;
        };
        let Some(refresh_token) = source_token
            .refresh_token
            .clone()
            .filter(|_| source_token.status == TokenStatus::Ok)
        else {
            return opened.map_or(Lookup::Missing, Lookup::Found);
        };
        match self
            .token_request(&target_id, documents, &refresh_token, scopes)
            .await
        {
            Granted::Tokens(t) => {
                let token = DocumentToken {
                    access_token: t.access_token,
                    expires_at: t.expires_at,
                    refresh_token: None,
                    scope: t.scope.unwrap_or_default(),
                    status: TokenStatus::Ok,
                    owner_key: source_token.owner_key.clone(),
                };
                let mut records = vec![StoredToken::sealed(
                    &self.keys,
                    target_id.clone(),
                    &token,
                    target.as_ref().map_or(1, |t| t.generation + 1),
                    now,
                )];
                if let Some(rotated) = t.refresh_token {
                    // The rotated refresh token stays with the first resource.
                    let kept = DocumentToken {
                        refresh_token: Some(rotated),
                        ..source_token.clone()
                    };
                    records.push(self.next(&source, &kept));
                }
                if self.commit(lease, &records).await {
                    Lookup::Found(token)
                } else {
                    Lookup::Failed
                }
            }
            Granted::GrantGone => {
                let gone = DocumentToken {
                    status: TokenStatus::ConsentRequired,
                    ..source_token
                };
                let record = self.next(&source, &gone);
                self.commit(lease, &[record]).await;
                Lookup::Found(DocumentToken {
                    status: TokenStatus::ConsentRequired,
                    access_token: TokenSecret::new(""),
                    expires_at: 0,
                    refresh_token: None,
                    scope: String::new(),
                    owner_key: None,
                })
            }
            Granted::NotNow => opened.map_or(Lookup::Failed, Lookup::Found),
        }
    }

    /// One refresh-token request at the provider's token endpoint, classified.
    async fn token_request(
        &self,
        id: &TokenId,
        documents: &DocumentsConfig,
        refresh_token: &TokenSecret,
        scopes: &[String],
    ) -> Granted {
        let Some(provider) = self.providers.get(&documents.provider) else {
            return Granted::NotNow;
        };
        let Some(endpoints) = self.endpoints(provider).await else {
            self.back_off(id, None);
            return Granted::NotNow;
        };
        let endpoint = &endpoints.token;
        let mut scope: Vec<&str> = scopes.iter().map(String::as_str).collect();
        if documents.kind == DocumentProviderKind::Microsoft {
            // Microsoft mints one resource's access token per request, from the one refresh
            // token; offline_access keeps a refresh token coming.
            scope.push("offline_access");
        }
        let scope = scope.join(" ");
        let answer = self
            .http
            .post_form(
                endpoint,
                &provider.config.credential.authenticate(
                    &provider.config.client_id,
                    endpoint,
                    self.clock.now(),
                ),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose()),
                    ("scope", &scope),
                ],
            )
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(tenant = %id.tenant, provider = %id.provider, error = %e, "document token refresh failed; retrying later");
                self.back_off(id, None);
                return Granted::NotNow;
            }
        };
        match classify(answer.status, &answer.body, answer.retry_after) {
            Answer::Tokens {
                access_token,
                expires_in,
                refresh_token,
                scope,
            } => {
                self.refused_client.remove(&id.provider);
                self.retry_at.remove(id);
                self.count(&id.provider, "refreshed");
                Granted::Tokens(NewTokens {
                    access_token,
                    expires_at: self.clock.now() + expires_in,
                    refresh_token,
                    scope,
                })
            }
            Answer::GrantGone { code } if id.owner == SHARED_OWNER => {
                tracing::error!(tenant = %id.tenant, provider = %id.provider, error = %code, "the shared document grant is revoked or expired: every user of the tenant goes without document access until an admin connects it again at /_vestibule/admin/documents");
                self.count(&id.provider, "consent_required");
                Granted::GrantGone
            }
            Answer::GrantGone { code } => {
                tracing::info!(tenant = %id.tenant, provider = %id.provider, resource = %id.resource, error = %code, "document grant gone: consent required");
                self.count(&id.provider, "consent_required");
                Granted::GrantGone
            }
            Answer::ClientRefused { code } => {
                tracing::error!(tenant = %id.tenant, provider = %id.provider, error = %code, status = answer.status, "document token refresh refused: check the app registration and its secret");
                self.refused_client.insert(id.provider.clone(), code);
                self.count(&id.provider, "client_refused");
                self.back_off(id, None);
                Granted::NotNow
            }
            Answer::Refused { code } => {
                tracing::error!(tenant = %id.tenant, provider = %id.provider, resource = %id.resource, error = %code, status = answer.status, "document token refresh refused for this token; retrying in 10 minutes");
                self.count(&id.provider, "refused");
                self.back_off(id, Some(REFUSED_RETRY_SECS));
                Granted::NotNow
            }
            Answer::RetryLater {
                reason,
                retry_after,
            } => {
                tracing::warn!(tenant = %id.tenant, provider = %id.provider, status = answer.status, reason = %reason, retry_after, "document token endpoint unavailable; retrying later");
                self.count(&id.provider, "retry_later");
                self.back_off(id, retry_after);
                Granted::NotNow
            }
        }
    }

    fn back_off(&self, id: &TokenId, retry_after: Option<u64>) {
        let wait = retry_after.map_or(RETRY_SECS, |s| s.min(3600) as i64);
        self.retry_at.insert(id.clone(), self.clock.now() + wait);
    }

    /// `token` as the next write of `stored`'s record.
    fn next(&self, stored: &StoredToken, token: &DocumentToken) -> StoredToken {
        StoredToken::sealed(
            &self.keys,
            stored.id.clone(),
            token,
            stored.generation + 1,
            self.clock.now(),
        )
    }

    /// Writes `records` and ends the lease; false (logged) when the store failed.
    async fn commit(&self, lease: Box<dyn TokenLease>, records: &[StoredToken]) -> bool {
        match lease.commit(records).await {
            Ok(true) => true,
            Ok(false) => {
                let tenant = records.first().map_or("", |r| r.id.tenant.as_str());
                tracing::warn!(tenant, "document token changed during its refresh (a new grant, a key rotation); not overwritten");
                false
            }
            Err(e) => {
                let tenant = records.first().map_or("", |r| r.id.tenant.as_str());
                tracing::error!(tenant, error = %e, "refreshed document token not stored");
                false
            }
        }
    }
}
