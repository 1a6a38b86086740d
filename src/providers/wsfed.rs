//! A WS-Federation provider at run time: its trusted signing certificates (pinned, and the
//! last good set from federation metadata) and verification that refreshes them once when a
//! token is signed with a key published since the last refresh.

use crate::auth::wsfed::metadata;
use crate::auth::wsfed::saml::Assertion;
use crate::auth::wsfed::trust::TrustStore;
use crate::auth::wsfed::{self, CertificateDer, WsFedError};
use crate::clock::{Clock, UnixSeconds};
use crate::config::WsFedProvider;
use crate::http_client::ProviderHttp;
use crate::sign_in_pool::{PoolError, SignInPool};
use std::sync::Arc;

/// Least time between two on-demand metadata refreshes, seconds: a stream of forged tokens
/// naming unknown keys costs the provider at most one request a minute.
pub const MIN_ON_DEMAND_REFRESH_SECS: i64 = 60;

/// A WS-Federation provider with its trust store.
pub struct WsFedRuntime {
    /// Provider name.
    pub name: String,
    /// Button text.
    pub display_name: String,
    /// Settings.
    pub config: WsFedProvider,
    /// Trusted signing certificates.
    pub trust: TrustStore,
    /// Metadata fetches failed in a row while no certificate is trusted (the retry backs off).
    pub failures: std::sync::atomic::AtomicU32,
    /// Where verified metadata documents are kept across restarts (and shared by instances).
    pub store: Option<Arc<dyn crate::store::Store>>,
}

/// Why a `wresult` was not turned into an assertion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The token was refused.
    #[error(transparent)]
    Token(#[from] WsFedError),
    /// Every sign-in worker is busy (the verification did not run).
    #[error("all sign-in workers are busy")]
    Busy,
    /// No signing certificate is trusted yet (metadata unreachable since start, none pinned).
    #[error("no trusted signing certificate yet")]
    Unavailable,
}

/// What the tenant expects of a token, besides this provider's own settings.
#[derive(Debug, Clone, Copy)]
pub struct TokenRules<'a> {
    /// Issuers the tenant accepts from this provider.
    pub allowed_issuers: &'a [String],
    /// Largest `wresult` accepted, bytes.
    pub max_bytes: usize,
}

impl WsFedRuntime {
    /// The metadata document's signer, when one is configured.
    fn signer(&self) -> Result<Option<CertificateDer>, String> {
        self.config
            .metadata_signer
            .clone()
            .map(CertificateDer::from_der)
            .transpose()
            .map_err(|e| format!("metadata signing certificate: {e}"))
    }

    /// Fetches federation metadata and replaces the metadata certificates with its signing
    /// set; the verified document is kept in the store for restarts.
    pub async fn refresh(&self, client: &ProviderHttp, now: UnixSeconds) -> Result<(), String> {
        let url = self.config.metadata_url.as_ref().ok_or("no metadata_url")?;
        let xml = client.get_text(url).await?;
        let md = metadata::parse(&xml, self.signer()?.as_ref(), now).map_err(|e| e.to_string())?;
        tracing::info!(provider = %self.name, certificates = md.signing.len(), "federation metadata loaded");
        self.trust.update(md.signing, now);
        if let Some(store) = &self.store {
            if let Err(e) = store
                .put_metadata(&self.name, url.as_str(), &xml, now)
                .await
            {
                tracing::warn!(provider = %self.name, error = %e, "federation metadata not kept in the store");
            }
        }
        Ok(())
    }

    /// Refreshes now because a token named an unknown key, at most once a minute. True when
    /// new certificates were loaded.
    async fn refresh_on_demand(&self, client: &ProviderHttp, now: UnixSeconds) -> bool {
        if self.config.metadata_url.is_none()
            || !self.trust.claim_on_demand(now, MIN_ON_DEMAND_REFRESH_SECS)
        {
            return false;
        }
        tracing::info!(provider = %self.name, "token signed with an unknown key: refreshing metadata");
        match self.refresh(client, now).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(provider = %self.name, error = %e, "on-demand metadata refresh failed");
                false
            }
        }
    }

    /// Trusts the stored copy of the metadata (the endpoint did not answer at start), verified
    /// again as when it was fetched, if it is at most `metadata_max_stale` old; when it was
    /// fetched.
    pub async fn load_stored(&self, now: UnixSeconds) -> Result<UnixSeconds, String> {
        let (Some(store), Some(url)) = (&self.store, &self.config.metadata_url) else {
            return Err("no store or metadata_url".into());
        };
        let (xml, fetched_at) = store
            .get_metadata(&self.name, url.as_str())
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no stored copy")?;
        let max = self.config.metadata_max_stale.as_secs() as i64;
        if now - fetched_at > max {
            return Err(format!(
                "the stored copy is {} s old, more than metadata_max_stale ({max} s)",
                now - fetched_at
            ));
        }
        let md = metadata::parse(&xml, self.signer()?.as_ref(), now).map_err(|e| e.to_string())?;
        self.trust.update(md.signing, now);
        Ok(fetched_at)
    }

    /// Whether a token can be verified at `now`: some trusted certificate is valid.
    pub fn available(&self, now: UnixSeconds) -> bool {
        !self.trust.current(now).is_empty()
    }

    /// Verifies a `wresult` on the sign-in pool (never on a proxy worker), and once more after
    /// fetching metadata when the signature does not verify with the known keys (a key
    /// rollover published since the last refresh).
    pub async fn verify(
        &self,
        pool: &SignInPool,
        client: &ProviderHttp,
        clock: &Arc<dyn Clock>,
        wresult: String,
        rules: TokenRules<'_>,
    ) -> Result<Assertion, VerifyError> {
        if !self.available(clock.now()) {
            // Nothing trusted yet: one on-demand fetch (rate-limited) before giving up.
            let fetched = self.refresh_on_demand(client, clock.now()).await;
            if !fetched || !self.available(clock.now()) {
                return Err(VerifyError::Unavailable);
            }
        }
        let wresult: Arc<str> = wresult.into();
        let job = Job {
            realm: self.config.realm.clone(),
            allowed_issuers: rules.allowed_issuers.to_vec(),
            skew: self.config.clock_skew.as_secs() as i64,
            algorithms: self.config.algorithms.clone(),
            max_bytes: rules.max_bytes,
        };
        let attempt = |job: Job| {
            let now = clock.now();
            let trusted = self.trust.current(now);
            let wresult = wresult.clone();
            async move {
                match pool.run(move || job.verify(&wresult, &trusted, now)).await {
                    Ok(result) => result.map_err(VerifyError::Token),
                    Err(e) => {
                        if e == PoolError::Failed {
                            tracing::error!("WS-Federation verification job failed");
                        }
                        Err(VerifyError::Busy)
                    }
                }
            }
        };
        match attempt(job.clone()).await {
            Err(VerifyError::Token(WsFedError::BadSignature))
                if self.refresh_on_demand(client, clock.now()).await =>
            {
                attempt(job).await
            }
            other => other,
        }
    }
}

/// Everything a verification needs, owned, so it can run on the sign-in pool.
#[derive(Clone)]
struct Job {
    realm: String,
    allowed_issuers: Vec<String>,
    skew: i64,
    algorithms: Vec<wsfed::SignatureAlgorithm>,
    max_bytes: usize,
}

impl Job {
    fn verify(
        &self,
        wresult: &str,
        trusted: &[CertificateDer],
        now: i64,
    ) -> Result<Assertion, WsFedError> {
        let expect = wsfed::Expectations {
            realm: &self.realm,
            allowed_issuers: &self.allowed_issuers,
            now,
            skew: self.skew,
            algorithms: &self.algorithms,
            max_bytes: self.max_bytes,
        };
        wsfed::verify_wresult(wresult, trusted, &expect)
    }
}
