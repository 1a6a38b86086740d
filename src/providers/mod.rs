//! The configured identity providers at run time: their trusted certificates, kept fresh
//! from federation metadata on a schedule and at once when a token names an unknown key.

mod oidc;
mod wsfed;

pub use oidc::{Granted, OidcClient, OidcRuntime};
pub use wsfed::{TokenRules, VerifyError, WsFedRuntime};

use crate::auth::wsfed::metadata::{self, TrustedCert};
use crate::auth::wsfed::trust::TrustStore;
use crate::clock::Clock;
use crate::config::{Provider, ProviderKind};
use crate::http_client::ProviderHttp;
use std::collections::HashMap;
use std::sync::Arc;

/// A provider at run time.
pub enum RuntimeProvider {
    /// WS-Federation.
    WsFed(WsFedRuntime),
    /// OpenID Connect.
    Oidc(OidcRuntime),
}

impl RuntimeProvider {
    /// Button text.
    pub fn display_name(&self) -> &str {
        match self {
            Self::WsFed(w) => &w.display_name,
            Self::Oidc(o) => &o.display_name,
        }
    }
}

/// First retry after metadata could not be fetched while nothing is trusted, seconds.
const UNAVAILABLE_RETRY_SECS: i64 = 10;

/// Why providers could not be made ready.
#[derive(Debug, thiserror::Error)]
#[error("provider `{provider}`: {message}")]
pub struct ProviderError {
    /// Provider name.
    pub provider: String,
    /// What failed.
    pub message: String,
}

/// Every configured provider, by name.
pub struct Providers {
    by_name: HashMap<String, Arc<RuntimeProvider>>,
    client: ProviderHttp,
    clock: Arc<dyn Clock>,
}

impl Providers {
    /// Builds the providers and fetches their metadata once. A provider with neither
    /// reachable metadata nor a pinned certificate stops the start.
    pub async fn start(
        config: &[Provider],
        clock: Arc<dyn Clock>,
        store: Option<Arc<dyn crate::store::Store>>,
    ) -> Result<Self, ProviderError> {
        let client = ProviderHttp::new();
        let mut by_name = HashMap::new();
        for p in config {
            let ws = match &p.kind {
                ProviderKind::WsFed(ws) => ws,
                ProviderKind::Oidc(oidc) => {
                    let runtime = OidcRuntime::new(&p.name, &p.display_name, oidc.clone());
                    // A provider that is down at start is not fatal: sign-in shows a clear
                    // page until it answers, and existing sessions keep working.
                    if runtime.discover(&client, clock.now()).await.is_ok() {
                        tracing::info!(provider = %p.name, "OpenID provider discovered");
                    }
                    by_name.insert(p.name.clone(), Arc::new(RuntimeProvider::Oidc(runtime)));
                    continue;
                }
            };
            let pinned: Vec<TrustedCert> = ws
                .certificates
                .iter()
                .filter_map(|der| metadata::check_certificate(der).ok())
                .collect();
            let runtime = WsFedRuntime {
                name: p.name.clone(),
                display_name: p.display_name.clone(),
                config: ws.clone(),
                trust: TrustStore::new(pinned),
                failures: Default::default(),
                store: store.clone(),
            };
            if ws.metadata_url.is_some() {
                if let Err(e) = runtime.refresh(&client, clock.now()).await {
                    tracing::error!(provider = %p.name, error = %e, "federation metadata unavailable at start");
                    match runtime.load_stored(clock.now()).await {
                        Ok(fetched_at) => {
                            tracing::warn!(provider = %p.name, fetched_at, "trusting the stored copy of the federation metadata until a fetch succeeds");
                            // Fetched again soon (then every 5 minutes while it fails).
                            runtime.trust.refresh_failed(
                                clock.now(),
                                UNAVAILABLE_RETRY_SECS,
                                ws.metadata_refresh.as_secs() as i64,
                            );
                        }
                        Err(why) => {
                            tracing::error!(provider = %p.name, reason = %why, "no usable stored copy of the federation metadata");
                        }
                    }
                }
            }
            // Not fatal: sign-in with this provider answers 503 and the schedule keeps
            // fetching; sessions, public paths and other providers work meanwhile.
            if !runtime.available(clock.now()) {
                tracing::error!(provider = %p.name, "no trusted signing certificate: sign-in with this provider is unavailable until its federation metadata can be fetched");
                runtime
                    .failures
                    .store(1, std::sync::atomic::Ordering::Relaxed);
                runtime.trust.refresh_failed(
                    clock.now(),
                    UNAVAILABLE_RETRY_SECS,
                    ws.metadata_refresh.as_secs() as i64,
                );
            }
            by_name.insert(p.name.clone(), Arc::new(RuntimeProvider::WsFed(runtime)));
        }
        Ok(Self {
            by_name,
            client,
            clock,
        })
    }

    /// The outbound HTTP client.
    pub fn http(&self) -> &ProviderHttp {
        &self.client
    }

    /// Providers that cannot be signed in with now, with why (for readiness and metrics).
    pub fn unavailable(&self) -> Vec<(String, &'static str)> {
        let now = self.clock.now();
        let mut out: Vec<(String, &'static str)> = self
            .by_name
            .values()
            .filter_map(|p| match p.as_ref() {
                RuntimeProvider::WsFed(ws) if !ws.available(now) => Some((
                    ws.name.clone(),
                    "no trusted signing certificate (federation metadata unreachable, none pinned or all expired)",
                )),
                _ => None,
            })
            .collect();
        out.sort();
        out
    }

    /// Every provider's name, with whether it can be signed in with now.
    pub fn availability(&self) -> Vec<(String, bool)> {
        let now = self.clock.now();
        self.by_name
            .iter()
            .map(|(name, p)| {
                let up = match p.as_ref() {
                    RuntimeProvider::WsFed(ws) => ws.available(now),
                    RuntimeProvider::Oidc(_) => true,
                };
                (name.clone(), up)
            })
            .collect()
    }

    /// Every provider.
    pub fn all(&self) -> impl Iterator<Item = &Arc<RuntimeProvider>> {
        self.by_name.values()
    }

    /// A provider by name.
    pub fn get(&self, name: &str) -> Option<&Arc<RuntimeProvider>> {
        self.by_name.get(name)
    }

    /// Refreshes every provider's metadata (the schedule calls this).
    pub async fn refresh_due(&self) {
        for p in self.by_name.values() {
            let ws = match p.as_ref() {
                RuntimeProvider::WsFed(ws) => ws,
                RuntimeProvider::Oidc(o) => {
                    // Keys rotate more often than federation metadata: hourly.
                    if o.discovery_older_than(3600, self.clock.now()) {
                        let _ = o.discover(&self.client, self.clock.now()).await;
                    }
                    continue;
                }
            };
            let interval = ws.config.metadata_refresh.as_secs() as i64;
            if ws.config.metadata_url.is_some()
                && ws.trust.claim_refresh(self.clock.now(), interval)
            {
                match ws.refresh(&self.client, self.clock.now()).await {
                    Ok(()) => {
                        if ws.failures.swap(0, std::sync::atomic::Ordering::Relaxed) > 0 {
                            tracing::info!(provider = %ws.name, "federation metadata fetched: sign-in with this provider is available again");
                        }
                    }
                    Err(e) if ws.available(self.clock.now()) => {
                        tracing::warn!(provider = %ws.name, error = %e, "metadata refresh failed; keeping the last good certificates");
                        ws.trust.refresh_failed(self.clock.now(), 300, interval);
                    }
                    Err(e) => {
                        // Nothing trusted: try again soon, backing off (10 s, 20 s, … 5 min).
                        let n = ws
                            .failures
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let retry = (UNAVAILABLE_RETRY_SECS << n.min(5)).min(300);
                        tracing::error!(provider = %ws.name, error = %e, retry_in = retry, "federation metadata still unreachable: sign-in with this provider unavailable");
                        ws.trust.refresh_failed(self.clock.now(), retry, interval);
                    }
                }
            }
        }
    }
}
