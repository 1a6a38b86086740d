//! Sign-in as one pipeline, free of pingora and of any HTTP server:
//!
//! *begin* (provider choice, sealed login state bound to the browser) → the identity
//! provider → *complete* (WS-Federation `wresult` or OpenID Connect callback → a verified
//! `Identity`; each provider runtime refreshes its keys once when a token names an unknown
//! one) → *admit* (the tenant's directory: an existing CRM user, or refused) → *finish* (a
//! fresh session, the cookie value, where to go back to).
//!
//! Each step returns a typed `SignInError`; `proxy` turns it into a page with one `From`.
//! `proxy` only parses the request (cookies, form, query) and writes the response.

mod error;

pub use error::SignInError;

use crate::auth::oidc::{Callback, OidcError};
use crate::auth::state::LoginState;
use crate::auth::wsfed::{self, protocol, WsFedError};
use crate::clock::Clock;
use crate::config::{SignIn, Tenant};
use crate::directory::{Directories, DirectoryError};
use crate::identity::{Identity, MatchValues};
use crate::metrics::Metrics;
use crate::providers::{Providers, RuntimeProvider, TokenRules};
use crate::session::{LiveSession, Prepared, SessionManager};
use crate::sign_in_pool::SignInPool;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::Arc;

/// How long a sign-in may take, from the redirect to the provider to its response, seconds.
pub const LOGIN_TTL_SECS: i64 = 600;

/// After a failed re-check (directory down), how long before a request tries again, seconds.
const RECHECK_RETRY_SECS: i64 = 30;

/// What a live session's directory re-check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    /// Serve the request.
    Keep,
    /// The user is no longer admitted (removed, deactivated, now ambiguous, or now another
    /// CRM user): the session was ended.
    Ended,
    /// The directory cannot answer and the session is past its grace: refuse for now, end
    /// nothing.
    Unavailable,
}

/// What the pipeline is built from.
pub struct SignInParts<P> {
    /// Identity providers.
    pub providers: Arc<Providers>,
    /// Sessions (and the key ring sealing login states).
    pub sessions: Arc<SessionManager<P>>,
    /// One-time records (login states, assertion ids).
    pub store: Arc<dyn Store>,
    /// Who may use each tenant's CRM.
    pub directories: Arc<Directories>,
    /// Where signature verification runs.
    pub pool: SignInPool,
    /// Clock.
    pub clock: Arc<dyn Clock>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Largest WS-Federation form accepted, bytes.
    pub max_form_body: usize,
}

/// The sign-in pipeline.
pub struct SignInFlow<P> {
    parts: SignInParts<P>,
}

/// A sign-in start.
#[derive(Debug, Clone, Copy)]
pub struct BeginRequest<'a> {
    /// The tenant whose site the browser is on.
    pub tenant: &'a Tenant,
    /// `?provider=`, when the browser chose one.
    pub provider: Option<&'a str>,
    /// Validated local path to come back to.
    pub return_to: &'a str,
    /// The browser's current binding cookie, reused so parallel sign-ins in two tabs work.
    pub binding: Option<&'a str>,
    /// `scheme://host[:port]` as the browser sees this site.
    pub origin: &'a str,
}

/// Where a sign-in start leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// To the provider, with the binding cookie value to set.
    Redirect {
        /// The provider's sign-in URL.
        location: String,
        /// The binding cookie's value.
        binding: String,
    },
    /// No provider chosen and several offered: the chooser page.
    ChooseProvider,
}

/// What the provider's POST to `/_vestibule/wsfed` carried (form already parsed).
#[derive(Debug, Clone)]
pub struct WsFedResponse<'a> {
    /// The tenant whose site received it.
    pub tenant: &'a Tenant,
    /// `wctx`: the sealed login state.
    pub context: Option<&'a str>,
    /// The browser's binding cookie.
    pub binding: Option<&'a str>,
    /// `wresult`.
    pub result: Option<String>,
}

/// What the provider's redirect to `/_vestibule/oidc/callback` carried.
#[derive(Debug, Clone, Copy)]
pub struct OidcResponse<'a> {
    /// The tenant whose site received it.
    pub tenant: &'a Tenant,
    /// The query parameters, each given once.
    pub params: &'a HashMap<String, String>,
    /// The browser's binding cookie.
    pub binding: Option<&'a str>,
    /// The callback URL the code was issued for.
    pub redirect_uri: &'a str,
}

/// A provider's verified answer.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Who signed in.
    pub identity: Identity,
    /// What a directory may match on (signed, single values); not kept.
    pub match_values: MatchValues,
    /// Where the browser was going.
    pub return_to: String,
}

/// A finished sign-in.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The session cookie's value.
    pub cookie_value: String,
    /// Where the browser was going.
    pub return_to: String,
    /// The provider can end the session from a cross-site frame (WS-Federation sign-out
    /// cleanup): set the sign-out cookie too.
    pub federated_sign_out: bool,
}

impl<P: Prepared> SignInFlow<P> {
    /// The pipeline over its parts.
    pub fn new(parts: SignInParts<P>) -> Self {
        Self { parts }
    }

    /// The identity providers.
    pub fn providers(&self) -> &Providers {
        &self.parts.providers
    }

    /// Starts a sign-in with the chosen provider (or the only one).
    pub async fn begin(&self, req: BeginRequest<'_>) -> Result<Begun, SignInError> {
        let bindings = &req.tenant.sign_in;
        let chosen = match req.provider {
            Some(name) => bindings.iter().find(|b| b.provider == name),
            None if bindings.len() == 1 => bindings.first(),
            None => None,
        };
        let Some(binding) = chosen else {
            return Ok(Begun::ChooseProvider);
        };
        let now = self.parts.clock.now();
        let mut state = LoginState::new(
            &req.tenant.name,
            &binding.provider,
            req.return_to,
            req.binding,
            now,
            LOGIN_TTL_SECS,
        );
        let keys = self.parts.sessions.keys().clone();
        let location = match self.parts.providers.get(&binding.provider).map(Arc::as_ref) {
            Some(RuntimeProvider::WsFed(ws)) if !ws.available(now) => {
                // Its tokens could not be verified: say so before the user signs in there.
                return Err(SignInError::ProviderUnavailable);
            }
            Some(RuntimeProvider::WsFed(ws)) => protocol::sign_in_url(
                &ws.config.passive_endpoint,
                &ws.config.realm,
                &format!("{}/_vestibule/wsfed", req.origin),
                &state.seal(&keys),
            ),
            Some(RuntimeProvider::Oidc(oidc)) => {
                let redirect_uri = format!("{}/_vestibule/oidc/callback", req.origin);
                oidc.begin(
                    self.parts.providers.http(),
                    &mut state,
                    |s| s.seal(&keys),
                    &redirect_uri,
                    now,
                )
                .await?
            }
            None => return Err(SignInError::UnknownProvider),
        };
        Ok(Begun::Redirect {
            location,
            binding: state.binding,
        })
    }

    /// Opens the login state a provider sent back (bound to this browser, for this tenant,
    /// not expired) and finds the tenant's binding and the provider it names. `None` for any
    /// problem; the reason goes to the log.
    fn returning<'t>(
        &self,
        tenant: &'t Tenant,
        sealed: Option<&str>,
        binding: Option<&str>,
    ) -> Option<(LoginState, &'t SignIn, Arc<RuntimeProvider>)> {
        let state = LoginState::open(
            self.parts.sessions.keys(),
            sealed,
            binding,
            &tenant.name,
            self.parts.clock.now(),
        )
        .inspect_err(|e| tracing::info!(tenant = %tenant.name, reason = %e, "login state refused"))
        .ok()?;
        let sign_in = tenant
            .sign_in
            .iter()
            .find(|b| b.provider == state.provider)?;
        let provider = self.parts.providers.get(&state.provider)?.clone();
        Some((state, sign_in, provider))
    }

    /// Records a one-time value (login state, assertion id) until `expires_at`: `Ok(true)`
    /// the first time.
    async fn spend(&self, kind: &str, key: &str, expires_at: i64) -> Result<bool, SignInError> {
        self.parts
            .store
            .remember_once(kind, key, expires_at, self.parts.clock.now())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "store unavailable during sign-in");
                SignInError::StoreUnavailable
            })
    }

    /// Completes a WS-Federation sign-in: state, then signature and claims, then replay.
    pub async fn complete_wsfed(
        &self,
        response: WsFedResponse<'_>,
    ) -> Result<Verified, SignInError> {
        let Some((state, sign_in, provider)) =
            self.returning(response.tenant, response.context, response.binding)
        else {
            return Err(WsFedError::BadState.into());
        };
        let RuntimeProvider::WsFed(ws) = provider.as_ref() else {
            return Err(WsFedError::BadState.into());
        };
        // The login state is spent before any verification, whatever its outcome: one
        // sign-in start buys at most one signature check.
        if !self
            .spend("login-state", &state.id, state.expires_at)
            .await?
        {
            return Err(WsFedError::BadState.into());
        }
        let Some(wresult) = response.result else {
            return Err(WsFedError::BadForm("no wresult").into());
        };
        let assertion = ws
            .verify(
                &self.parts.pool,
                self.parts.providers.http(),
                &self.parts.clock,
                wresult,
                TokenRules {
                    allowed_issuers: &sign_in.allowed_issuers,
                    max_bytes: self.parts.max_form_body,
                },
            )
            .await?;
        let skew = ws.config.clock_skew.as_secs() as i64;
        let replay_key = format!("{}|{}", assertion.issuer, assertion.id);
        if !self
            .spend(
                "wsfed-assertion",
                &replay_key,
                assertion.not_on_or_after + skew,
            )
            .await?
        {
            return Err(WsFedError::Replayed.into());
        }
        Ok(Verified {
            identity: wsfed::claims::identity(&ws.name, &assertion),
            match_values: wsfed::claims::match_values(&assertion),
            return_to: state.return_to,
        })
    }

    /// Completes an OpenID Connect sign-in: state, provider error, code exchange, ID token.
    pub async fn complete_oidc(&self, response: OidcResponse<'_>) -> Result<Verified, SignInError> {
        let params = response.params;
        let Some((state, sign_in, provider)) = self.returning(
            response.tenant,
            params.get("state").map(String::as_str),
            response.binding,
        ) else {
            return Err(OidcError::BadState.into());
        };
        let RuntimeProvider::Oidc(oidc) = provider.as_ref() else {
            return Err(OidcError::BadState.into());
        };
        if let Some(error) = params.get("error") {
            // Only the error code's safe characters reach the page.
            let code: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(OidcError::ProviderRefused(code).into());
        }
        let Some(code) = params.get("code") else {
            return Err(OidcError::Exchange.into());
        };
        // Spend the state before the code: a second callback with the same state is refused
        // even while the first is still exchanging.
        if !self
            .spend("login-state", &state.id, state.expires_at)
            .await?
        {
            return Err(OidcError::BadState.into());
        }
        let callback = Callback {
            code,
            iss: params.get("iss").map(String::as_str),
            redirect_uri: response.redirect_uri,
        };
        let (identity, match_values) = oidc
            .complete(
                self.parts.providers.http(),
                &self.parts.clock,
                &callback,
                &state,
                &sign_in.hosted_domains,
            )
            .await?;
        Ok(Verified {
            identity,
            match_values,
            return_to: state.return_to,
        })
    }

    /// Matches the verified identity against the tenant's CRM users: the identity to keep,
    /// with its CRM user.
    pub async fn admit(
        &self,
        tenant: &Tenant,
        verified: &Verified,
    ) -> Result<Identity, SignInError> {
        let refused = |reason: DirectoryError| SignInError::NotAdmitted {
            reason,
            account: verified.identity.user.clone(),
            tenant: tenant.name.clone(),
        };
        let Some(directory) = self.parts.directories.get(&tenant.name) else {
            tracing::error!(tenant = %tenant.name, "tenant has no directory");
            return Err(refused(DirectoryError::Unavailable));
        };
        directory
            .admit(
                verified.identity.clone(),
                &verified.match_values,
                self.parts.clock.now(),
            )
            .await
            .map_err(|e| {
                tracing::info!(tenant = %tenant.name, provider = %verified.identity.provider, user = %verified.identity.user, reason = e.reason(), "not admitted by the directory");
                refused(e)
            })
    }

    /// Starts the session (always a fresh id) for an admitted identity.
    pub async fn finish(
        &self,
        tenant: &Tenant,
        identity: Identity,
        return_to: String,
    ) -> Result<Finished, SignInError> {
        let provider = identity.provider.clone();
        let (_, cookie_value) = self
            .parts
            .sessions
            .create(&tenant.name, identity)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "could not create session");
                SignInError::StoreUnavailable
            })?;
        self.parts
            .metrics
            .sign_ins
            .with_label_values(&[tenant.name.as_str(), provider.as_str()])
            .inc();
        let federated_sign_out = matches!(
            self.parts.providers.get(&provider).map(Arc::as_ref),
            Some(RuntimeProvider::WsFed(_))
        );
        Ok(Finished {
            cookie_value,
            return_to,
            federated_sign_out,
        })
    }

    /// Re-checks a live session's user against the tenant's directory when due (every
    /// `directory.recheck`). Costs one atomic read on the hot path until then; the check
    /// itself is made by one request while concurrent ones go on. While the directory is
    /// down the session keeps working for `directory.stale_grace` past the due time.
    pub async fn recheck(&self, tenant: &Tenant, live: &LiveSession<P>) -> Recheck {
        let now = self.parts.clock.now();
        let next = live.next_check_at();
        if now < next {
            return Recheck::Keep;
        }
        let Some(directory) = self.parts.directories.get(&tenant.name) else {
            // Every configured tenant has one; fail closed if that ever stops being so.
            return Recheck::Unavailable;
        };
        if directory.admits_everyone() {
            live.check_again_at(i64::MAX);
            return Recheck::Keep;
        }
        let due = live
            .checked_at()
            .saturating_add(directory.recheck().as_secs() as i64);
        let grace_ends = due.saturating_add(directory.stale_grace().as_secs() as i64);
        if now < due {
            live.check_again_at(due);
            return Recheck::Keep;
        }
        // Within the grace one request checks while the others go on; past it every request
        // checks (and is refused until one succeeds).
        let hold = if now < grace_ends {
            (now + RECHECK_RETRY_SECS).min(grace_ends)
        } else {
            now
        };
        if !live.claim_check(next, hold) {
            // Another request is checking right now.
            return if now < grace_ends {
                Recheck::Keep
            } else {
                Recheck::Unavailable
            };
        }
        let identity = match self.parts.sessions.identity(&live.id, &tenant.name).await {
            Ok(Some(identity)) => identity,
            Ok(None) => {
                // Gone from the store (signed out elsewhere): drop our copy as well.
                if let Err(e) = self.parts.sessions.revoke(&live.id).await {
                    tracing::warn!(tenant = %tenant.name, error = %e, "could not drop an ended session");
                }
                return Recheck::Ended;
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant.name, error = %e, "session record unreadable for the directory re-check");
                return if now < grace_ends {
                    Recheck::Keep
                } else {
                    Recheck::Unavailable
                };
            }
        };
        match directory.recheck_user(&identity, now).await {
            Ok(user) if identity.crm.as_ref() == Some(&user) => {
                if let Err(e) = self.parts.sessions.mark_checked(live, now).await {
                    tracing::warn!(tenant = %tenant.name, error = %e, "could not record the directory re-check");
                }
                live.check_again_at(now.saturating_add(directory.recheck().as_secs() as i64));
                Recheck::Keep
            }
            Err(DirectoryError::Unavailable) => {
                if now < grace_ends {
                    // Tried again after a pause, and at the latest when the grace ends.
                    live.check_again_at((now + RECHECK_RETRY_SECS).min(grace_ends));
                    Recheck::Keep
                } else {
                    // Every request tries (the directory's own back-off keeps the database
                    // from being asked more than every few seconds) until one succeeds.
                    live.check_again_at(now);
                    tracing::warn!(tenant = %tenant.name, "directory unavailable past the session's grace period");
                    Recheck::Unavailable
                }
            }
            outcome => {
                // Removed, deactivated, ambiguous — or matched to another CRM user, or its
                // details changed: the session's headers would be stale, so it ends and the
                // next sign-in takes the directory's current answer.
                let reason = match &outcome {
                    Ok(_) => "crm_user_changed",
                    Err(e) => e.reason(),
                };
                tracing::info!(tenant = %tenant.name, user = %identity.user, reason, "session ended by the directory re-check");
                if let Err(e) = self.parts.sessions.revoke(&live.id).await {
                    tracing::error!(tenant = %tenant.name, error = %e, "could not end a session refused by the directory");
                    return Recheck::Unavailable;
                }
                Recheck::Ended
            }
        }
    }
}
