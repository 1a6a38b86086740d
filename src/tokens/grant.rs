//! The document grant: after sign-in (and the directory), a user of a tenant with Microsoft
//! document tokens and no usable token goes through the authorization code grant (PKCE and
//! nonce in the sealed, browser-bound login state; `login_hint` the signed-in UPN,
//! `domain_hint` the Azure AD tenant). The callback checks that the tokens belong to **the
//! same person** who signed in — the ID token's `oid` and `tid` against the object id and
//! tenant id of the signed-in identity — and stores nothing otherwise.

use super::{DocumentToken, StoredToken, TokenId, TokenSecret, TokenStatus, SHARED_OWNER};
use crate::auth::oidc::{Callback, OidcError};
use crate::auth::state::LoginState;
use crate::clock::Clock;
use crate::config::{
    DocumentProvider, DocumentProviderKind, DocumentsConfig, OidcProvider, Tenant,
};
use crate::crypto::KeyRing;
use crate::error::GatewayError;
use crate::http_client::ProviderHttp;
use crate::identity::Identity;
use crate::providers::OidcRuntime;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a grant may take, from the redirect to the provider to its callback, seconds.
const GRANT_TTL_SECS: i64 = 600;

/// Why a document grant did not complete. Nothing is stored in any case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The tenant has no per-user document grant.
    #[error("this site has no document access to grant")]
    NotConfigured,
    /// `state` missing, forged, expired, reused or from another browser.
    #[error("the request is not valid (start again)")]
    BadState,
    /// The organisation's administrator has not consented to the application.
    #[error("an administrator of your organisation must consent to the application first")]
    AdminConsentRequired {
        /// Where an administrator grants it.
        url: String,
    },
    /// The tokens were granted by another account than the one signed in.
    #[error("document access was granted by another account than the one you signed in with")]
    OtherPerson,
    /// A per-user Office 365 grant for an account of another provider: the grant's Azure AD
    /// object id could never be the signed-in account's, so it is not started.
    #[error(
        "document access is in Office 365 and the signed-in account is not an Office 365 account"
    )]
    NotMicrosoftAccount,
    /// Only the system user and the tenant's document admins manage a shared grant.
    #[error("only the system user and the document admins of this site manage its shared document access")]
    NotAdmin,
    /// A shared grant was given by another account than the configured system user (or
    /// one whose e-mail address the provider has not verified).
    #[error("the shared document access must be granted by the system user {expected}")]
    NotSystemUser {
        /// The configured system user.
        expected: String,
    },
    /// The account did not grant a scope the tenant needs (Google's granular consent).
    #[error("the grant lacks the scope {scope}")]
    ScopeMissing {
        /// The missing scope.
        scope: String,
    },
    /// The provider granted no refresh token: the shared token would die within the hour.
    #[error("the provider granted no refresh token (offline access)")]
    NoRefreshToken,
    /// The provider refused or could not be reached.
    #[error(transparent)]
    Provider(#[from] OidcError),
    /// The store could not record the grant.
    #[error("the token store is unavailable")]
    StoreUnavailable,
}

impl GrantError {
    /// Stable reason code for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotConfigured => "documents_not_configured",
            Self::BadState => "bad_state",
            Self::AdminConsentRequired { .. } => "admin_consent_required",
            Self::OtherPerson => "other_person",
            Self::NotMicrosoftAccount => "documents_need_microsoft_account",
            Self::NotAdmin => "not_document_admin",
            Self::NotSystemUser { .. } => "not_system_user",
            Self::NoRefreshToken => "no_refresh_token",
            Self::ScopeMissing { .. } => "scope_missing",
            Self::Provider(e) => e.reason(),
            Self::StoreUnavailable => "store_unavailable",
        }
    }
}

impl From<GrantError> for GatewayError {
    fn from(e: GrantError) -> Self {
        let refused =
            |status: u16, reason: &'static str, message: String| GatewayError::SignInRejected {
                status,
                reason,
                message,
            };
        match e {
            GrantError::NotConfigured => GatewayError::NotFound,
            GrantError::NotMicrosoftAccount => GatewayError::DocumentsNeedMicrosoftAccount,
            GrantError::BadState => refused(400, "bad_state", format!("Document access: {e}.")),
            GrantError::AdminConsentRequired { ref url } => refused(
                403,
                "admin_consent_required",
                format!(
                    "Document access needs an administrator of your organisation to consent to this application once. Send them this address: {url}"
                ),
            ),
            GrantError::OtherPerson => refused(
                403,
                "other_person",
                "Document access was granted with another account than the one you signed in with. Sign in to your identity provider as yourself and try again.".into(),
            ),
            GrantError::NotAdmin => refused(
                403,
                "not_document_admin",
                "Only the system user and the document admins of this site manage its shared document access.".into(),
            ),
            GrantError::NotSystemUser { ref expected } => refused(
                403,
                "not_system_user",
                format!("The shared document access must be granted by the system user {expected}: sign in to the provider as that account and connect again. Nothing was stored."),
            ),
            GrantError::ScopeMissing { ref scope } => refused(
                403,
                "scope_missing",
                format!("The grant lacks the permission {scope}, which this site needs: connect again and leave every permission ticked. Nothing was stored."),
            ),
            GrantError::NoRefreshToken => refused(
                502,
                "no_refresh_token",
                "The provider granted no refresh token (offline access), so the shared access would stop within the hour. Nothing was stored; connect again.".into(),
            ),
            GrantError::Provider(OidcError::Unavailable) | GrantError::StoreUnavailable => {
                GatewayError::SignInUnavailable
            }
            GrantError::Provider(e) => refused(403, e.reason(), format!("Document access refused: {e}.")),
        }
    }
}

/// Whether `identity` may manage the tenant's shared grant: it is the system user or one of
/// the tenant's document admins, by its signed-in user name or by the e-mail address the
/// CRM's own directory holds for it.
pub fn is_document_admin(documents: &DocumentsConfig, identity: &Identity) -> bool {
    let allowed = |who: &str| {
        let who = who.trim().to_lowercase();
        !who.is_empty()
            && (documents.system_user.as_deref() == Some(who.as_str())
                || documents.admins.contains(&who))
    };
    allowed(&identity.user)
        || identity
            .crm
            .as_ref()
            .and_then(|c| c.email.as_deref())
            .is_some_and(allowed)
}

/// An access token's lifetime from `expires_in` (an hour when absent), within bounds.
fn lifetime(expires_in: Option<u64>) -> i64 {
    expires_in.map_or(3600, |s| {
        s.min(super::answer::MAX_LIFETIME_SECS as u64) as i64
    })
}

/// The login state's provider field for a document grant: never a sign-in provider's name
/// (those have no `:`), so neither callback accepts the other's state.
fn state_provider(documents: &DocumentsConfig) -> String {
    format!("documents:{}", documents.provider)
}

/// Document grants for every document provider.
pub struct DocumentGrants {
    runtimes: HashMap<String, (DocumentProvider, OidcRuntime)>,
    http: ProviderHttp,
    keys: Arc<KeyRing>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl DocumentGrants {
    /// Over the configured document providers.
    pub fn new(
        providers: &[DocumentProvider],
        keys: Arc<KeyRing>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let runtimes = providers
            .iter()
            .map(|p| {
                let config = OidcProvider {
                    issuer: p.authority.clone(),
                    client_id: p.client_id.clone(),
                    client_secret: p.credential.secret().unwrap_or_default().to_owned(),
                    client_certificate: p.credential.certificate().cloned(),
                    scopes: vec!["openid".into()],
                    authorization_params: p.authorization_params.clone(),
                    // Same-person checks use oid/tid (Microsoft) or the e-mail (Google,
                    // checked where it is used); the grant signs nobody in.
                    require_verified_email: false,
                    userinfo: false,
                    user_claim: "sub".into(),
                    groups_claim: None,
                    id_token_algorithms: vec!["RS256".into(), "ES256".into(), "PS256".into()],
                    clock_skew: Duration::from_secs(300),
                };
                (
                    p.name.clone(),
                    (p.clone(), OidcRuntime::new(&p.name, &p.name, config)),
                )
            })
            .collect();
        Self {
            runtimes,
            http: ProviderHttp::new(),
            keys,
            store,
            clock,
        }
    }

    /// The tenant's document settings of `kind` with its provider's runtime.
    fn runtime<'a>(
        &'a self,
        tenant: &'a Tenant,
        kind: DocumentProviderKind,
    ) -> Result<(&'a DocumentsConfig, &'a DocumentProvider, &'a OidcRuntime), GrantError> {
        let documents = tenant.documents.as_ref().ok_or(GrantError::NotConfigured)?;
        if documents.kind != kind {
            return Err(GrantError::NotConfigured);
        }
        let (provider, runtime) = self
            .runtimes
            .get(&documents.provider)
            .ok_or(GrantError::NotConfigured)?;
        Ok((documents, provider, runtime))
    }

    /// Whether `identity` has no usable token for the tenant's default resource (none, or
    /// one that needs consent): the grant should follow sign-in.
    pub async fn needed(&self, tenant: &Tenant, identity: &Identity) -> bool {
        let Ok((documents, _, _)) = self.runtime(tenant, DocumentProviderKind::Microsoft) else {
            return false;
        };
        // Another provider's account could never complete it.
        if !identity.microsoft_account() {
            return false;
        }
        let Some((resource, _)) = documents.resources.first() else {
            return false;
        };
        let owners = TokenId::user_owners(&self.keys, &identity.issuer, &identity.subject);
        let lookups = super::lookup(
            self.store.as_ref(),
            &self.keys,
            &tenant.name,
            &owners,
            &documents.provider,
            &[(resource.clone(), Vec::new())],
        )
        .await;
        match lookups.first() {
            Some(super::inject::Lookup::Found(t)) => t.status == TokenStatus::ConsentRequired,
            Some(super::inject::Lookup::Missing) => true,
            _ => false,
        }
    }

    /// The authorization URL for `identity`, and the binding cookie value to set: Microsoft,
    /// the user's own grant; Google, the shared grant, started by an admin for the system
    /// user's account (`access_type=offline`, `prompt=consent`: a refresh token every time).
    pub async fn begin(
        &self,
        tenant: &Tenant,
        identity: &Identity,
        origin: &str,
        binding: Option<&str>,
        return_to: &str,
    ) -> Result<(String, String), GrantError> {
        let documents = tenant.documents.as_ref().ok_or(GrantError::NotConfigured)?;
        let (documents, provider, runtime) = self.runtime(tenant, documents.kind)?;
        let mut scopes: Vec<String> = documents
            .resources
            .first()
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        let mut params = provider.authorization_params.clone();
        match documents.kind {
            DocumentProviderKind::Microsoft => {
                if !identity.microsoft_account() {
                    return Err(GrantError::NotMicrosoftAccount);
                }
                scopes.push("offline_access".into());
                params.push(("login_hint".to_owned(), identity.user.clone()));
                if let Some(tid) = &identity.idp_tenant {
                    params.push(("domain_hint".to_owned(), tid.clone()));
                }
            }
            DocumentProviderKind::Google => {
                if !is_document_admin(documents, identity) {
                    return Err(GrantError::NotAdmin);
                }
                // The ID token's e-mail address names who granted.
                scopes.push("email".into());
                params.retain(|(k, _)| k != "access_type" && k != "prompt" && k != "login_hint");
                params.push(("access_type".to_owned(), "offline".to_owned()));
                params.push(("prompt".to_owned(), "consent".to_owned()));
                if let Some(system_user) = &documents.system_user {
                    params.push(("login_hint".to_owned(), system_user.clone()));
                }
            }
        }
        let now = self.clock.now();
        let mut state = LoginState::new(
            &tenant.name,
            &state_provider(documents),
            return_to,
            binding,
            now,
            GRANT_TTL_SECS,
        );
        let keys = self.keys.clone();
        let location = runtime
            .begin_with(
                &self.http,
                &mut state,
                |s| s.seal(&keys),
                &format!("{origin}/_vestibule/documents/callback"),
                now,
                &scopes,
                &params,
            )
            .await?;
        Ok((location, state.binding))
    }

    /// Completes the grant for the signed-in `identity`; where to go back to.
    pub async fn complete(
        &self,
        tenant: &Tenant,
        identity: &Identity,
        params: &HashMap<String, String>,
        binding: Option<&str>,
        redirect_uri: &str,
    ) -> Result<String, GrantError> {
        let documents = tenant.documents.as_ref().ok_or(GrantError::NotConfigured)?;
        let (documents, provider, runtime) = self.runtime(tenant, documents.kind)?;
        if documents.kind == DocumentProviderKind::Google && !is_document_admin(documents, identity)
        {
            return Err(GrantError::NotAdmin);
        }
        let now = self.clock.now();
        let state = LoginState::open(
            &self.keys,
            params.get("state").map(String::as_str),
            binding,
            &tenant.name,
            now,
        )
        .map_err(|_| GrantError::BadState)?;
        if state.provider != state_provider(documents) {
            return Err(GrantError::BadState);
        }
        if let Some(error) = params.get("error") {
            let description = params.get("error_description").map_or("", String::as_str);
            if error == "consent_required" || description.contains("AADSTS65001") {
                let tid = identity.idp_tenant.as_deref().unwrap_or("organizations");
                let base = provider.authority.as_str().trim_end_matches('/');
                // https://login.microsoftonline.com/<tenant>/v2.0 → …/<tid>/v2.0/adminconsent
                let authority = match base.rsplit_once('/') {
                    Some((host, "v2.0")) => match host.rsplit_once('/') {
                        Some((root, _)) => format!("{root}/{tid}/v2.0"),
                        None => base.to_owned(),
                    },
                    _ => base.to_owned(),
                };
                let scope: String = documents
                    .resources
                    .iter()
                    .flat_map(|(_, s)| s.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(" ");
                let url = format!(
                    "{authority}/adminconsent?client_id={}&scope={}&redirect_uri={}",
                    url::form_urlencoded::byte_serialize(provider.client_id.as_bytes())
                        .collect::<String>(),
                    url::form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>(),
                    url::form_urlencoded::byte_serialize(redirect_uri.as_bytes())
                        .collect::<String>(),
                );
                return Err(GrantError::AdminConsentRequired { url });
            }
            let code: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(OidcError::ProviderRefused(code).into());
        }
        let code = params.get("code").ok_or(OidcError::Exchange)?;
        match self
            .store
            .remember_once("document-grant-state", &state.id, state.expires_at, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(GrantError::BadState),
            Err(_) => return Err(GrantError::StoreUnavailable),
        }
        let granted = runtime
            .grant(
                &self.http,
                &self.clock,
                &Callback {
                    code,
                    iss: params.get("iss").map(String::as_str),
                    redirect_uri,
                },
                &state,
            )
            .await?;
        if documents.kind == DocumentProviderKind::Google {
            return self
                .store_shared(tenant, documents, identity, granted, now)
                .await
                .map(|()| state.return_to);
        }
        // The same person: Azure AD's object id and tenant id in the grant's signed ID
        // token must be the signed-in identity's.
        let claim = |k: &str| granted.id_claims.get(k).and_then(|v| v.as_str());
        let same = |granted: Option<&str>, signed_in: Option<&str>| matches!((granted, signed_in), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b));
        let signed_in_oid = identity.claims.get("oid").and_then(|v| v.as_str());
        if !same(claim("oid"), signed_in_oid) || !same(claim("tid"), identity.idp_tenant.as_deref())
        {
            tracing::warn!(tenant = %tenant.name, user = %identity.user, "document grant by another account refused; nothing stored");
            return Err(GrantError::OtherPerson);
        }
        let Some((resource, _)) = documents.resources.first() else {
            return Err(GrantError::NotConfigured);
        };
        let id = TokenId {
            tenant: tenant.name.clone(),
            owner: TokenId::user_owner(&self.keys, &identity.issuer, &identity.subject),
            provider: documents.provider.clone(),
            resource: resource.clone(),
        };
        let token = DocumentToken {
            access_token: TokenSecret::new(granted.access_token),
            expires_at: now + lifetime(granted.expires_in),
            refresh_token: granted.refresh_token.map(TokenSecret::new),
            scope: granted.scope.unwrap_or_default(),
            status: TokenStatus::Ok,
            owner_key: Some(crate::identity::subject_key(
                &identity.issuer,
                &identity.subject,
            )),
        };
        self.store_token(&id, &token).await?;
        Ok(state.return_to)
    }

    /// Stores a shared grant after checking it was the system user's account that gave it:
    /// the signed ID token's e-mail address, verified by the provider, equal to the
    /// configured one.
    async fn store_shared(
        &self,
        tenant: &Tenant,
        documents: &DocumentsConfig,
        identity: &Identity,
        granted: crate::providers::Granted,
        now: crate::clock::UnixSeconds,
    ) -> Result<(), GrantError> {
        let expected = documents.system_user.clone().unwrap_or_default();
        let claims = &granted.id_claims;
        let email = claims.get("email").and_then(|v| v.as_str());
        let verified = claims.get("email_verified") == Some(&serde_json::Value::Bool(true));
        if !verified
            || !email.is_some_and(|e| !expected.is_empty() && e.eq_ignore_ascii_case(&expected))
        {
            tracing::warn!(tenant = %tenant.name, admin = %identity.user, "shared document grant by another account than the system user refused; nothing stored");
            return Err(GrantError::NotSystemUser { expected });
        }
        // Google's granular consent lets the account untick a scope: a grant without what
        // the tenant needs is not stored as "connected".
        if let (Some(granted_scope), Some((_, wanted))) =
            (&granted.scope, documents.resources.first())
        {
            let have: std::collections::HashSet<&str> = granted_scope.split_whitespace().collect();
            if let Some(missing) = wanted.iter().find(|w| !have.contains(w.as_str())) {
                tracing::warn!(tenant = %tenant.name, scope = %missing, "shared document grant without a required scope refused; nothing stored");
                return Err(GrantError::ScopeMissing {
                    scope: missing.clone(),
                });
            }
        }
        let Some(refresh_token) = granted.refresh_token else {
            tracing::warn!(tenant = %tenant.name, "shared document grant without a refresh token refused; nothing stored");
            return Err(GrantError::NoRefreshToken);
        };
        let Some((resource, _)) = documents.resources.first() else {
            return Err(GrantError::NotConfigured);
        };
        let id = TokenId {
            tenant: tenant.name.clone(),
            owner: SHARED_OWNER.to_owned(),
            provider: documents.provider.clone(),
            resource: resource.clone(),
        };
        let token = DocumentToken {
            access_token: TokenSecret::new(granted.access_token),
            expires_at: now + lifetime(granted.expires_in),
            refresh_token: Some(TokenSecret::new(refresh_token)),
            scope: granted.scope.unwrap_or_default(),
            status: TokenStatus::Ok,
            owner_key: None,
        };
        self.store_token(&id, &token).await?;
        tracing::info!(tenant = %tenant.name, admin = %identity.user, "shared document grant connected");
        Ok(())
    }

    /// The tenant's shared token as stored (for the admin page): `Err` when the store cannot
    /// be read or the record does not open.
    pub async fn shared_token(&self, tenant: &Tenant) -> Result<Option<DocumentToken>, GrantError> {
        let (documents, _, _) = self.runtime(tenant, DocumentProviderKind::Google)?;
        let found = super::lookup(
            self.store.as_ref(),
            &self.keys,
            &tenant.name,
            &[SHARED_OWNER.to_owned()],
            &documents.provider,
            &documents.resources[..documents.resources.len().min(1)],
        )
        .await;
        match found.into_iter().next() {
            Some(super::inject::Lookup::Found(token)) => Ok(Some(token)),
            Some(super::inject::Lookup::Failed) => Err(GrantError::StoreUnavailable),
            _ => Ok(None),
        }
    }

    /// Inserts or replaces the record (a fresh grant supersedes whatever was there).
    async fn store_token(&self, id: &TokenId, token: &DocumentToken) -> Result<(), GrantError> {
        for _ in 0..3 {
            let existing = self
                .store
                .get_token(id)
                .await
                .map_err(|_| GrantError::StoreUnavailable)?;
            let generation = existing.as_ref().map(|e| e.generation);
            let record = StoredToken::sealed(
                &self.keys,
                id.clone(),
                token,
                generation.map_or(1, |g| g + 1),
                self.clock.now(),
            );
            match self.store.put_token(&record, generation).await {
                Ok(true) => return Ok(()),
                Ok(false) => continue,
                Err(_) => return Err(GrantError::StoreUnavailable),
            }
        }
        Err(GrantError::StoreUnavailable)
    }
}
