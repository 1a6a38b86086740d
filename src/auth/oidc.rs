//! OpenID Connect sign-in: what can go wrong, what the provider's redirect carries, and the
//! claims a directory may match on. The provider runtime (discovery cache, code flow, ID
//! token checks) is `providers::oidc`.

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

/// A token's claims with text values, by name: what a directory may match on.
pub type SignedClaims = std::collections::BTreeMap<String, String>;

/// The text-valued claims of a verified ID token (and userinfo).
pub fn string_claims(claims: &serde_json::Value) -> SignedClaims {
    claims
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}
