//! The signed JWT (`X-Vestibule-Assertion`) that lets an upstream verify who the user is
//! without trusting the network between it and the gateway. Minted when a session is loaded
//! and reused until shortly before expiry (`headers::SessionHeaders`): an ECDSA signature per
//! request would cost as much as the whole proxy path.

use crate::clock::UnixSeconds;
use crate::config::AssertionConfig;
use crate::identity::Identity;
use bytes::Bytes;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

/// A minted assertion and when it stops being valid.
#[derive(Debug)]
pub struct Minted {
    /// The compact JWT.
    pub jwt: String,
    /// Its `exp`.
    pub expires_at: UnixSeconds,
    /// Until when it may be sent: shortly before `exp`, so an upstream always receives a
    /// token with some life left.
    pub reuse_until: UnixSeconds,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: UnixSeconds,
    exp: UnixSeconds,
    tenant: &'a str,
    user: &'a str,
    provider: &'a str,
    idp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idp_tenant: Option<&'a str>,
    /// The CRM user id the tenant's directory matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    crm_user: Option<&'a str>,
    /// The user's roles in the CRM.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    roles: &'a [String],
}

/// Signs assertions and publishes the matching JWKS.
pub struct UpstreamJwtSigner {
    key: EncodingKey,
    header: Header,
    issuer: String,
    audience: String,
    lifetime: i64,
    /// Reuse stops this long before `exp`, so an upstream always receives a token with at
    /// least this much life left.
    refresh_margin: i64,
    jwks: Bytes,
}

/// The assertion key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("assertion key: {0}")]
pub struct UpstreamJwtKeyError(#[from] jsonwebtoken::errors::Error);

impl UpstreamJwtSigner {
    /// Builds the signer and its JWKS from validated configuration.
    pub fn new(config: &AssertionConfig) -> Result<Self, UpstreamJwtKeyError> {
        let key = match config.algorithm {
            jsonwebtoken::Algorithm::EdDSA => EncodingKey::from_ed_pem(&config.key_pem)?,
            _ => EncodingKey::from_ec_pem(&config.key_pem)?,
        };
        let mut jwk = Jwk::from_encoding_key(&key, config.algorithm)?;
        jwk.common.key_id = Some(config.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(match config.algorithm {
            jsonwebtoken::Algorithm::EdDSA => KeyAlgorithm::EdDSA,
            _ => KeyAlgorithm::ES256,
        });
        let jwks = serde_json::to_vec(&JwkSet { keys: vec![jwk] }).expect("JWKS serialises");
        let mut header = Header::new(config.algorithm);
        header.kid = Some(config.kid.clone());
        let lifetime = config.lifetime.as_secs() as i64;
        Ok(Self {
            key,
            header,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            lifetime,
            refresh_margin: (lifetime / 5).clamp(10, 60),
            jwks: Bytes::from(jwks),
        })
    }

    /// The JWKS document served at `/_vestibule/jwks.json`.
    pub fn jwks_json(&self) -> &Bytes {
        &self.jwks
    }

    /// Signs a fresh assertion.
    pub fn mint(&self, identity: &Identity, tenant: &str, now: UnixSeconds) -> Option<Minted> {
        let exp = now + self.lifetime;
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: &identity.subject,
            iat: now,
            exp,
            tenant,
            user: &identity.user,
            provider: &identity.provider,
            idp: &identity.issuer,
            email: identity.email.as_deref(),
            name: identity.name.as_deref(),
            idp_tenant: identity.idp_tenant.as_deref(),
            crm_user: identity.crm.as_ref().map(|u| u.id.as_str()),
            roles: identity.crm.as_ref().map_or(&[], |u| u.roles.as_slice()),
        };
        match jsonwebtoken::encode(&self.header, &claims, &self.key) {
            Ok(jwt) => Some(Minted {
                jwt,
                expires_at: exp,
                reuse_until: exp - self.refresh_margin,
            }),
            Err(e) => {
                tracing::error!(error = %e, "could not sign upstream assertion");
                None
            }
        }
    }
}

/// The development signer (certs/dev/assertion.pem, ES256, 5-minute lifetime) for unit tests.
#[cfg(test)]
pub(crate) fn dev_signer() -> UpstreamJwtSigner {
    UpstreamJwtSigner::new(&AssertionConfig {
        key_pem: include_bytes!("../certs/dev/assertion.pem").to_vec(),
        algorithm: jsonwebtoken::Algorithm::ES256,
        kid: "dev".into(),
        issuer: "vestibule".into(),
        audience: "crm".into(),
        lifetime: std::time::Duration::from_secs(300),
    })
    .expect("the development key is a P-256 key")
}
