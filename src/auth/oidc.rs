//! OpenID Connect sign-in: what can go wrong, what the provider's redirect carries, and the
//! claims a directory may match on. The provider runtime (discovery cache, code flow, ID
//! token checks) is `providers::oidc`.

use crate::identity::MatchValues;

/// Why an OpenID Connect sign-in failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The provider answered the authorization request with `error=`.
    #[error("the identity provider refused the sign-in ({0})")]
    ProviderRefused(String),
    /// The provider cannot be reached.
    #[error("the identity provider cannot be reached")]
    Unavailable,
    /// `state` missing, forged, expired, reused or from another browser.
    #[error("the sign-in request is not valid (start again)")]
    BadState,
    /// The RFC 9207 `iss` parameter names another issuer.
    #[error("the response came from another identity provider")]
    IssuerMismatch,
    /// No code, or the code exchange failed.
    #[error("the authorization code was not accepted")]
    Exchange,
    /// The token response has no ID token.
    #[error("the identity provider returned no ID token")]
    NoIdToken,
    /// The ID token failed a check (signature, issuer, audience, expiry, nonce, algorithm).
    #[error("the ID token is not valid ({0})")]
    IdToken(String),
    /// E-mail address not verified by the provider.
    #[error("the e-mail address is not verified")]
    EmailNotVerified,
    /// Hosted domain not allowed for this site.
    #[error("accounts of this domain may not sign in here")]
    HostedDomain,
    /// A claim the configuration needs is missing.
    #[error("the ID token lacks the `{0}` claim")]
    MissingClaim(String),
}

impl OidcError {
    /// Stable reason code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ProviderRefused(_) => "provider_refused",
            Self::Unavailable => "provider_unavailable",
            Self::BadState => "bad_state",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::Exchange => "code_exchange",
            Self::NoIdToken => "no_id_token",
            Self::IdToken(_) => "id_token",
            Self::EmailNotVerified => "email_not_verified",
            Self::HostedDomain => "hosted_domain",
            Self::MissingClaim(_) => "missing_claim",
        }
    }
}

/// What the provider's redirect to our callback carried.
#[derive(Debug, Clone, Copy)]
pub struct Callback<'a> {
    /// The authorization code.
    pub code: &'a str,
    /// The RFC 9207 `iss` parameter, when present.
    pub iss: Option<&'a str>,
    /// The redirect URI the code was issued for.
    pub redirect_uri: &'a str,
}

/// What a directory may match on in a verified ID token (userinfo answers are not signed and
/// are never matched on): `email` only when `email_verified` is true; `upn` the `upn` claim
/// (Azure AD), else that verified e-mail (Google: the account's address).
pub fn match_values(id_token_claims: &serde_json::Value) -> Option<MatchValues> {
    let object = id_token_claims.as_object()?;
    let text = |k: &str| object.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let verified = object.get("email_verified") == Some(&serde_json::Value::Bool(true));
    let email = text("email").filter(|_| verified);
    Some(MatchValues {
        upn: text("upn").or_else(|| email.clone()),
        email,
        subject: text("sub")?,
        name_id: None,
        object_id: text("oid"),
        claims: object
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect(),
    })
}
