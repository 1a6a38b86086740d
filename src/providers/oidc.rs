//! An OpenID provider at run time (Google Workspace, any certified provider), with the openidconnect
//! crate: discovery, authorization code flow with PKCE S256, `state` (our sealed login state)
//! and `nonce`, code exchange with client authentication, ID token checks (allow-listed
//! public-key algorithms only, issuer, audience, expiry with skew on the injected clock,
//! nonce), optional userinfo, hosted-domain and verified-e-mail rules, RP-initiated logout.
//! The HTTP client is passed in; nothing here opens sockets on its own.

use crate::auth::backchannel::{self, LogoutToken, LogoutTokenError};
use crate::auth::oidc::{self, Callback, OidcError};
use crate::auth::state::LoginState;
use crate::clock::Clock;
use crate::config::OidcProvider;
use crate::http_client::ProviderHttp;
use crate::identity::Identity;
use crate::identity::MatchValues;
use crate::throttle::Throttle;
use arc_swap::ArcSwapOption;
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadataWithLogout,
    RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Least time between two on-demand discovery refreshes (unknown `kid`), seconds.
const MIN_ON_DEMAND_SECS: i64 = 60;

/// Oldest logout token accepted (by `iat`), seconds: a replay record covers that window.
const LOGOUT_TOKEN_MAX_AGE_SECS: i64 = 300;

/// Least time between two discovery attempts made because nothing is cached yet (the
/// provider was down at start), seconds: sign-in starts cannot make us hammer a provider.
const MIN_UNCACHED_RETRY_SECS: i64 = 10;

/// An OpenID provider at run time: its settings and the last good discovery document.
pub struct OidcRuntime {
    /// Provider name.
    pub name: String,
    /// Button text.
    pub display_name: String,
    /// Settings.
    pub config: OidcProvider,
    metadata: ArcSwapOption<ProviderMetadataWithLogout>,
    on_demand: Throttle,
    uncached_attempt: Throttle,
    /// One discovery at a time for requests that find nothing cached.
    uncached: tokio::sync::Mutex<()>,
    /// When the last good discovery document was fetched (injected clock).
    discovered_at: AtomicI64,
}

type Metadata = Arc<ProviderMetadataWithLogout>;

/// What a document grant's code exchange gave.
pub struct Granted {
    /// The verified ID token's claims (for the same-person check).
    pub id_claims: serde_json::Value,
    /// The access token.
    pub access_token: String,
    /// The refresh token, when one was granted.
    pub refresh_token: Option<String>,
    /// Seconds until the access token expires.
    pub expires_in: Option<u64>,
    /// Scopes granted, when the server said.
    pub scope: Option<String>,
}

impl std::fmt::Debug for Granted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Granted")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl OidcRuntime {
    /// A provider with nothing discovered yet.
    pub fn new(name: &str, display_name: &str, config: OidcProvider) -> Self {
        Self {
            name: name.to_owned(),
            display_name: display_name.to_owned(),
            config,
            metadata: ArcSwapOption::empty(),
            on_demand: Throttle::new(),
            uncached_attempt: Throttle::new(),
            uncached: tokio::sync::Mutex::new(()),
            discovered_at: AtomicI64::new(i64::MIN),
        }
    }

    /// Fetches discovery (with the JWKS) and keeps it as the last good copy.
    pub async fn discover(&self, http: &ProviderHttp, now: i64) -> Result<Metadata, OidcError> {
        let issuer = IssuerUrl::new(self.config.issuer.as_str().trim_end_matches('/').to_owned())
            .map_err(|_| OidcError::Unavailable)?;
        match ProviderMetadataWithLogout::discover_async(issuer, http).await {
            Ok(md) => {
                let md = Arc::new(md);
                self.metadata.store(Some(md.clone()));
                self.discovered_at.store(now, Ordering::SeqCst);
                Ok(md)
            }
            Err(e) => {
                tracing::warn!(provider = %self.name, error = %e, "OpenID discovery failed");
                Err(OidcError::Unavailable)
            }
        }
    }

    /// Whether the last successful discovery is older than `max_age` (or never happened).
    pub fn discovery_older_than(&self, max_age_secs: i64, now: i64) -> bool {
        now.saturating_sub(self.discovered_at.load(Ordering::SeqCst)) >= max_age_secs
    }

    /// The last good discovery document, if any.
    pub fn cached(&self) -> Option<Metadata> {
        self.metadata.load_full()
    }

    /// The discovery document for a sign-in: the cached one (the schedule keeps it fresh,
    /// and a token signed with an unknown key refreshes it), or, when nothing was ever
    /// discovered, one attempt shared by every waiting request and made at most every
    /// `MIN_UNCACHED_RETRY_SECS`. Sign-in starts never cost the provider a request otherwise.
    pub async fn metadata(&self, http: &ProviderHttp, now: i64) -> Result<Metadata, OidcError> {
        if let Some(md) = self.cached() {
            return Ok(md);
        }
        let _one_at_a_time = self.uncached.lock().await;
        if let Some(md) = self.cached() {
            return Ok(md);
        }
        if !self
            .uncached_attempt
            .try_claim(now, MIN_UNCACHED_RETRY_SECS)
        {
            return Err(OidcError::Unavailable);
        }
        self.discover(http, now).await
    }

    fn client(
        &self,
        md: &ProviderMetadataWithLogout,
        redirect_uri: &str,
    ) -> Result<impl OidcClient, OidcError> {
        let redirect =
            RedirectUrl::new(redirect_uri.to_owned()).map_err(|_| OidcError::Exchange)?;
        // A certificate credential sends no secret: the client id goes in the body, with the
        // assertion the code exchange adds.
        let secret = self
            .config
            .client_certificate
            .is_none()
            .then(|| ClientSecret::new(self.config.client_secret.clone()));
        Ok(CoreClient::from_provider_metadata(
            md.clone(),
            ClientId::new(self.config.client_id.clone()),
            secret,
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: stores nonce and PKCE verifier in the login state and returns the
    /// authorization URL, from the cached discovery document (see `metadata`).
    pub async fn begin(
        &self,
        http: &ProviderHttp,
        state: &mut LoginState,
        seal: impl FnOnce(&LoginState) -> String,
        redirect_uri: &str,
        now: i64,
    ) -> Result<String, OidcError> {
        self.begin_with(
            http,
            state,
            seal,
            redirect_uri,
            now,
            &self.config.scopes,
            &self.config.authorization_params,
        )
        .await
    }

    /// `begin` with other scopes and further per-request parameters (a document grant:
    /// its resource's scopes, `login_hint`, `domain_hint`).
    #[allow(clippy::too_many_arguments)]
    pub async fn begin_with(
        &self,
        http: &ProviderHttp,
        state: &mut LoginState,
        seal: impl FnOnce(&LoginState) -> String,
        redirect_uri: &str,
        now: i64,
        scopes: &[String],
        params: &[(String, String)],
    ) -> Result<String, OidcError> {
        let md = self.metadata(http, now).await?;
        let client = self.client(&md, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = Nonce::new_random();
        state.nonce = Some(nonce.secret().clone());
        state.pkce_verifier = Some(verifier.secret().clone());
        let sealed = seal(state);
        let mut request = client
            .authorize(sealed, nonce)
            .set_pkce_challenge(challenge);
        for scope in scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        for (k, v) in params {
            request = request.add_extra_param(k.clone(), v.clone());
        }
        let (url, _, _) = request.url();
        Ok(url.into())
    }

    /// Exchanges the callback's code (PKCE verifier and nonce from the login state) and
    /// verifies the ID token: the metadata, the client, the token response and the ID
    /// token's claims. A token signed with a key published since discovery is checked once
    /// more after fetching the keys.
    async fn redeem(
        &self,
        http: &ProviderHttp,
        clock: &Arc<dyn Clock>,
        callback: &Callback<'_>,
        state: &LoginState,
    ) -> Result<
        (
            Metadata,
            impl OidcClient,
            openidconnect::core::CoreTokenResponse,
            serde_json::Value,
        ),
        OidcError,
    > {
        let (code, iss_param, redirect_uri) = (callback.code, callback.iss, callback.redirect_uri);
        let md = self.metadata(http, clock.now()).await?;
        if let Some(iss) = iss_param {
            if iss.trim_end_matches('/') != md.issuer().as_str().trim_end_matches('/') {
                return Err(OidcError::IssuerMismatch);
            }
        }
        let (nonce, verifier) = match (&state.nonce, &state.pkce_verifier) {
            (Some(n), Some(v)) => (Nonce::new(n.clone()), v.clone()),
            _ => return Err(OidcError::BadState),
        };
        let client = self.client(&md, redirect_uri)?;
        let mut exchange = client
            .code_exchange(AuthorizationCode::new(code.to_owned()))
            .map_err(|_| OidcError::Exchange)?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier));
        if let Some(certificate) = &self.config.client_certificate {
            let endpoint = md.token_endpoint().ok_or(OidcError::Exchange)?;
            exchange = exchange
                .add_extra_param(
                    "client_assertion_type",
                    crate::client_credential::ASSERTION_TYPE,
                )
                .add_extra_param(
                    "client_assertion",
                    certificate.assertion(&self.config.client_id, endpoint.as_str(), clock.now()),
                );
        }
        let response = exchange.request_async(http).await.map_err(|e| {
            tracing::warn!(provider = %self.name, error = %e, "code exchange failed");
            match e {
                openidconnect::RequestTokenError::Request(_) => OidcError::Unavailable,
                _ => OidcError::Exchange,
            }
        })?;
        let id_token = response.id_token().ok_or(OidcError::NoIdToken)?;
        let verified = match self.verify(&client, id_token, &nonce, clock) {
            Err(OidcError::IdToken(ref why))
                if why == "unknown signing key" && self.claim_on_demand(clock.now()) =>
            {
                // The provider rotated its keys since discovery: fetch them and try once more.
                let md = self.discover(http, clock.now()).await?;
                let client = self.client(&md, redirect_uri)?;
                self.verify(&client, id_token, &nonce, clock)
            }
            other => other,
        }?;
        Ok((md, client, response, verified))
    }

    /// Redeems a document grant's callback: the verified ID token's claims and the tokens.
    pub async fn grant(
        &self,
        http: &ProviderHttp,
        clock: &Arc<dyn Clock>,
        callback: &Callback<'_>,
        state: &LoginState,
    ) -> Result<Granted, OidcError> {
        let (_, _, response, id_claims) = self.redeem(http, clock, callback, state).await?;
        Ok(Granted {
            id_claims,
            access_token: response.access_token().secret().clone(),
            refresh_token: response.refresh_token().map(|r| r.secret().clone()),
            expires_in: response.expires_in().map(|d| d.as_secs()),
            scope: response
                .scopes()
                .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")),
        })
    }

    /// Finishes a sign-in from the callback (the state is already opened and bound).
    pub async fn complete(
        &self,
        http: &ProviderHttp,
        clock: &Arc<dyn Clock>,
        callback: &Callback<'_>,
        state: &LoginState,
        hosted_domains: &[String],
    ) -> Result<(Identity, MatchValues), OidcError> {
        let (md, client, response, verified) = self.redeem(http, clock, callback, state).await?;
        let id_token = response.id_token().ok_or(OidcError::NoIdToken)?;
        // Taken before userinfo fills gaps: a directory matches only on what was signed.
        let match_values =
            oidc::match_values(&verified).ok_or_else(|| OidcError::MissingClaim("sub".into()))?;
        let mut claims = verified;
        if self.config.userinfo
            && md.userinfo_endpoint().is_some()
            && !self.missing_claims(&claims).is_empty()
        {
            self.add_userinfo(http, &client, response.access_token(), &mut claims)
                .await?;
        }
        let identity = self.identity(&md, claims, id_token.to_string(), hosted_domains)?;
        Ok((identity, match_values))
    }

    /// Verifies a back-channel logout token from this provider (fetching its keys once more
    /// when the token names an unknown one, as for ID tokens).
    pub async fn verify_logout_token(
        &self,
        http: &ProviderHttp,
        token: &str,
        now: i64,
    ) -> Result<LogoutToken, LogoutTokenError> {
        let md = self
            .metadata(http, now)
            .await
            .map_err(|_| LogoutTokenError::UnknownKey)?;
        let algorithms = self.allowed_algorithms();
        let check = |md: &ProviderMetadataWithLogout| {
            backchannel::verify(
                token,
                &backchannel::Expect {
                    jwks: md.jwks(),
                    algorithms: &algorithms,
                    issuer: md.issuer().as_str(),
                    client_id: &self.config.client_id,
                    now,
                    skew: self.config.clock_skew.as_secs() as i64,
                    max_age: LOGOUT_TOKEN_MAX_AGE_SECS,
                },
            )
        };
        match check(&md) {
            Err(LogoutTokenError::UnknownKey) if self.claim_on_demand(now) => {
                let md = self
                    .discover(http, now)
                    .await
                    .map_err(|_| LogoutTokenError::UnknownKey)?;
                check(&md)
            }
            other => other,
        }
    }

    /// The configured ID token (and logout token) algorithms.
    fn allowed_algorithms(&self) -> Vec<CoreJwsSigningAlgorithm> {
        self.config
            .id_token_algorithms
            .iter()
            .filter_map(|a| serde_json::from_value(serde_json::Value::String(a.clone())).ok())
            .collect()
    }

    /// Claims the identity needs that the ID token does not carry.
    fn missing_claims(&self, claims: &serde_json::Value) -> Vec<String> {
        let mut wanted = vec!["email", "name", self.config.user_claim.as_str()];
        wanted.extend(self.config.groups_claim.as_deref());
        let mut missing: Vec<String> = wanted
            .into_iter()
            .filter(|k| claims.get(*k).is_none())
            .map(str::to_owned)
            .collect();
        missing.dedup();
        missing
    }

    /// Fills the claims the ID token lacks from the userinfo endpoint, as mod_auth_openidc and
    /// oauth2-proxy do (many providers keep e-mail and profile out of the ID token). The ID
    /// token's own claims always win; userinfo must name the same `sub`, or the sign-in is
    /// refused. A userinfo endpoint that fails leaves the claims as they were: a claim the
    /// identity needs is then reported missing.
    async fn add_userinfo(
        &self,
        http: &ProviderHttp,
        client: &impl OidcClient,
        access_token: &openidconnect::AccessToken,
        claims: &mut serde_json::Value,
    ) -> Result<(), OidcError> {
        let Ok(request) = client.userinfo_request(access_token.clone(), None) else {
            return Ok(());
        };
        let info = match request
            .request_async::<openidconnect::EmptyAdditionalClaims, _, openidconnect::core::CoreGenderClaim>(http)
            .await
        {
            Ok(info) => serde_json::to_value(&info).unwrap_or_default(),
            Err(e) => {
                tracing::warn!(provider = %self.name, error = %e, "userinfo request failed");
                return Ok(());
            }
        };
        if info.get("sub").is_none() || info.get("sub") != claims.get("sub") {
            return Err(OidcError::IdToken(
                "the userinfo response names another subject".into(),
            ));
        }
        for key in self.missing_claims(claims) {
            if let Some(value) = info.get(&key) {
                claims[key.as_str()] = value.clone();
                // `email_verified` belongs to the e-mail it qualifies: taken with it, never
                // mixed with the ID token's.
                if key == "email" {
                    match info.get("email_verified") {
                        Some(v) => claims["email_verified"] = v.clone(),
                        None => {
                            if let Some(map) = claims.as_object_mut() {
                                map.remove("email_verified");
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn claim_on_demand(&self, now: i64) -> bool {
        self.on_demand.try_claim(now, MIN_ON_DEMAND_SECS)
    }

    /// Verifies the ID token and returns its payload as JSON (standard and extra claims).
    fn verify(
        &self,
        client: &impl OidcClient,
        id_token: &openidconnect::core::CoreIdToken,
        nonce: &Nonce,
        clock: &Arc<dyn Clock>,
    ) -> Result<serde_json::Value, OidcError> {
        let skew = self.config.clock_skew.as_secs() as i64;
        let algs = self.allowed_algorithms();
        let (c1, c2) = (clock.clone(), clock.clone());
        let verifier = client
            .verifier()
            .set_allowed_algs(algs)
            // Expiry is checked against "now" moved back by the skew.
            .set_time_fn(move || {
                chrono::DateTime::from_timestamp(c1.now() - skew, 0).unwrap_or_default()
            })
            .set_issue_time_verifier_fn(move |iat| {
                if iat.timestamp() <= c2.now() + skew {
                    Ok(())
                } else {
                    Err("issued in the future".into())
                }
            });
        let claims = id_token.claims(&verifier, nonce).map_err(|e| {
            OidcError::IdToken(match e {
                ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                ) => "unknown signing key".into(),
                ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::DisallowedAlg(_),
                )
                | ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::UnsupportedAlg(_),
                ) => "algorithm not allowed".into(),
                ClaimsVerificationError::SignatureVerification(_) => "bad signature".into(),
                ClaimsVerificationError::Expired(_) => "expired".into(),
                ClaimsVerificationError::InvalidAudience(_) => "wrong audience".into(),
                ClaimsVerificationError::InvalidIssuer(_) => "wrong issuer".into(),
                ClaimsVerificationError::InvalidNonce(_) => "nonce mismatch".into(),
                other => {
                    tracing::info!(error = %other, "ID token refused");
                    "claims not acceptable".into()
                }
            })
        })?;
        // The signature covers the whole payload: read the claims the core type has no field
        // for (hd, groups, azp) from the same verified bytes.
        let _ = claims;
        let payload = id_token.to_string();
        let middle = payload
            .split('.')
            .nth(1)
            .ok_or_else(|| OidcError::IdToken("malformed".into()))?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(middle.trim_end_matches('='))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .ok_or_else(|| OidcError::IdToken("malformed".into()))?;
        if let Some(azp) = json.get("azp").and_then(|v| v.as_str()) {
            if azp != self.config.client_id {
                return Err(OidcError::IdToken("issued to another client (azp)".into()));
            }
        }
        Ok(json)
    }

    fn identity(
        &self,
        md: &ProviderMetadataWithLogout,
        claims: serde_json::Value,
        raw_id_token: String,
        hosted_domains: &[String],
    ) -> Result<Identity, OidcError> {
        let text = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let subject = text("sub").ok_or_else(|| OidcError::MissingClaim("sub".into()))?;
        let email = text("email");
        if self.config.require_verified_email
            && email.is_some()
            && claims.get("email_verified") != Some(&serde_json::Value::Bool(true))
        {
            return Err(OidcError::EmailNotVerified);
        }
        let hd = text("hd").map(|h| h.to_ascii_lowercase());
        if !hosted_domains.is_empty() && !hd.as_ref().is_some_and(|h| hosted_domains.contains(h)) {
            return Err(OidcError::HostedDomain);
        }
        let user = text(&self.config.user_claim)
            .ok_or_else(|| OidcError::MissingClaim(self.config.user_claim.clone()))?;
        if self.config.user_claim == "email"
            && self.config.require_verified_email
            && claims.get("email_verified") != Some(&serde_json::Value::Bool(true))
        {
            return Err(OidcError::EmailNotVerified);
        }
        let mut extra = std::collections::BTreeMap::new();
        if let Some(g) = self
            .config
            .groups_claim
            .as_ref()
            .and_then(|g| claims.get(g))
        {
            extra.insert("groups".into(), g.clone());
        }
        // The provider's session id: back-channel logout may name the session by it.
        if let Some(sid) = text("sid") {
            extra.insert("sid".into(), serde_json::Value::String(sid));
        }
        // Azure AD (Entra) ID tokens name the person by object id (`oid`) in a directory
        // (`tid`): the pair a per-user Office 365 document grant is checked against, as for a
        // WS-Federation sign-in. Google's carry `hd` instead.
        let tid = text("tid");
        if let (Some(oid), Some(_)) = (text("oid"), &tid) {
            extra.insert("oid".into(), serde_json::Value::String(oid));
        }
        // Kept (sealed in the session record) for RP-initiated logout's id_token_hint.
        extra.insert("id_token".into(), serde_json::Value::String(raw_id_token));
        Ok(Identity {
            provider: self.name.clone(),
            issuer: md.issuer().to_string(),
            subject,
            user,
            email,
            name: text("name"),
            idp_tenant: hd.or(tid),
            claims: extra,
            crm: None,
            directory_key: None,
        })
    }

    /// The provider's end-session URL for RP-initiated logout, when it has one.
    pub fn end_session_url(
        &self,
        id_token_hint: Option<&str>,
        post_logout_redirect: &str,
    ) -> Option<String> {
        let md = self.cached()?;
        let endpoint = md.additional_metadata().end_session_endpoint.as_ref()?;
        let mut url = endpoint.url().clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
            q.append_pair("client_id", &self.config.client_id);
            q.append_pair("post_logout_redirect_uri", post_logout_redirect);
        }
        Some(url.into())
    }
}

/// The operations used on the openidconnect client, so the long generic client type stays
/// inside this module.
pub trait OidcClient {
    /// Authorization request builder.
    fn authorize(
        &self,
        state: String,
        nonce: Nonce,
    ) -> openidconnect::AuthorizationRequest<
        '_,
        openidconnect::core::CoreAuthDisplay,
        openidconnect::core::CoreAuthPrompt,
        openidconnect::core::CoreResponseType,
    >;
    /// Code exchange request.
    fn code_exchange(
        &self,
        code: AuthorizationCode,
    ) -> Result<
        openidconnect::CodeTokenRequest<
            '_,
            openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
            openidconnect::core::CoreTokenResponse,
        >,
        openidconnect::ConfigurationError,
    >;
    /// ID token verifier.
    fn verifier(&self) -> openidconnect::core::CoreIdTokenVerifier<'_>;
    /// Userinfo request.
    fn userinfo_request(
        &self,
        token: openidconnect::AccessToken,
        subject: Option<openidconnect::SubjectIdentifier>,
    ) -> Result<
        openidconnect::UserInfoRequest<
            '_,
            openidconnect::core::CoreJweContentEncryptionAlgorithm,
            openidconnect::core::CoreJsonWebKey,
        >,
        openidconnect::ConfigurationError,
    >;
}

impl OidcClient
    for CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >
{
    fn authorize(
        &self,
        state: String,
        nonce: Nonce,
    ) -> openidconnect::AuthorizationRequest<
        '_,
        openidconnect::core::CoreAuthDisplay,
        openidconnect::core::CoreAuthPrompt,
        openidconnect::core::CoreResponseType,
    > {
        self.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state),
            move || nonce,
        )
    }

    fn code_exchange(
        &self,
        code: AuthorizationCode,
    ) -> Result<
        openidconnect::CodeTokenRequest<
            '_,
            openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
            openidconnect::core::CoreTokenResponse,
        >,
        openidconnect::ConfigurationError,
    > {
        self.exchange_code(code)
    }

    fn verifier(&self) -> openidconnect::core::CoreIdTokenVerifier<'_> {
        self.id_token_verifier()
    }

    fn userinfo_request(
        &self,
        token: openidconnect::AccessToken,
        subject: Option<openidconnect::SubjectIdentifier>,
    ) -> Result<
        openidconnect::UserInfoRequest<
            '_,
            openidconnect::core::CoreJweContentEncryptionAlgorithm,
            openidconnect::core::CoreJsonWebKey,
        >,
        openidconnect::ConfigurationError,
    > {
        self.user_info(token, subject)
    }
}
