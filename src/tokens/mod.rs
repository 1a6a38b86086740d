//! Document tokens at rest: the OAuth access and refresh tokens the CRM's document handlers
//! use (one set per user for Office 365, one shared set per tenant for Google Drive), sealed
//! with the key ring before they reach the store.
//!
//! Each record's associated data names its tenant, owner, provider and resource: a row copied
//! onto another user (or tenant, provider, resource) in the database fails to open instead of
//! handing one user's token to another. Token values never appear in `Debug` output, logs,
//! metrics or error pages.

pub mod answer;
pub mod grant;
pub mod inject;
pub mod refresh;

pub use grant::{DocumentGrants, GrantError};
pub use refresh::DocumentTokens;

use crate::clock::UnixSeconds;
use crate::crypto::KeyRing;
use crate::identity::subject_key as owner_input;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which token record: whose, for which provider and resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenId {
    /// Tenant.
    pub tenant: String,
    /// The owner: a keyed digest of the user's issuer and subject, or `SHARED_OWNER`.
    pub owner: String,
    /// Document provider name (configuration).
    pub provider: String,
    /// Resource name (configuration; e.g. `graph`, `sharepoint`, `drive`).
    pub resource: String,
}

/// The owner of a tenant-wide token (Google Drive's system-user grant).
pub const SHARED_OWNER: &str = "shared";

/// Purpose of the keyed digest naming a token's owner: the same digest a session keeps of its
/// user (`sessions.subject_digest`), so live sessions' tokens are found by a join.
pub const OWNER_PURPOSE: &str = crate::identity::SUBJECT_DIGEST_PURPOSE;

impl TokenId {
    /// The owner value for a user: a keyed digest, so the table names nobody in clear.
    pub fn user_owner(keys: &KeyRing, issuer: &str, subject: &str) -> String {
        keys.lookup_digest(OWNER_PURPOSE, &owner_input(issuer, subject))
    }

    /// The same digest under every key of the ring (records written before a rotation),
    /// the current key's first.
    pub fn user_owners(keys: &KeyRing, issuer: &str, subject: &str) -> Vec<String> {
        keys.lookup_digests(OWNER_PURPOSE, &owner_input(issuer, subject))
    }

    /// Associated data binding a sealed record to this id.
    fn aad(&self) -> Vec<u8> {
        let mut aad = b"vestibule/document-token/v1".to_vec();
        for part in [&self.tenant, &self.owner, &self.provider, &self.resource] {
            aad.push(0);
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// A secret string that never prints.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it (an upstream header, a token request).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// Where a token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Usable (and refreshed ahead of expiry).
    Ok,
    /// The grant is gone (`invalid_grant`, `interaction_required`, `consent_required`): the
    /// user must go through consent again.
    ConsentRequired,
    /// Cannot be used for now (revoked shared grant, provider misconfigured).
    Unavailable,
}

/// What a token record holds once opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentToken {
    /// The access token.
    pub access_token: TokenSecret,
    /// When the access token expires (from `expires_in`, never from its contents).
    pub expires_at: UnixSeconds,
    /// The refresh token, when the server gave one (kept across refreshes that give none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<TokenSecret>,
    /// Scopes granted.
    #[serde(default)]
    pub scope: String,
    /// Where the token stands.
    pub status: TokenStatus,
    /// Whose it is: the owner's issuer and subject (`identity::subject_key`), sealed with the
    /// token so `rotate-key` can name the owner under the new key (the `owner` column is a
    /// keyed digest); `None` for a shared token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_key: Option<String>,
}

impl DocumentToken {
    /// Whether a refresh can renew it: usable, and holding a refresh token.
    pub fn refreshable(&self) -> bool {
        self.status == TokenStatus::Ok && self.refresh_token.is_some()
    }
}

/// A token record as the store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// Which record.
    pub id: TokenId,
    /// The sealed `DocumentToken`.
    pub payload: Vec<u8>,
    /// The access token's expiry, in clear, so the refresher can find due tokens.
    pub expires_at: UnixSeconds,
    /// Grows with every write (compare-and-set for refreshes).
    pub generation: i64,
    /// Last write.
    pub updated_at: UnixSeconds,
    /// When the background refresher should look at it (the expiry of a usable token with a
    /// refresh token); `None`: nothing to refresh (see `DocumentToken::refreshable`).
    pub refresh_at: Option<UnixSeconds>,
}

impl StoredToken {
    /// `token` sealed for `id`, as write number `generation` at `now`.
    pub fn sealed(
        keys: &KeyRing,
        id: TokenId,
        token: &DocumentToken,
        generation: i64,
        now: UnixSeconds,
    ) -> Self {
        Self {
            payload: seal(keys, &id, token),
            id,
            expires_at: token.expires_at,
            generation,
            updated_at: now,
            refresh_at: token.refreshable().then_some(token.expires_at),
        }
    }
}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("id", &self.id)
            .field(
                "payload",
                &format_args!("<{} sealed bytes>", self.payload.len()),
            )
            .field("expires_at", &self.expires_at)
            .field("generation", &self.generation)
            .field("refresh_at", &self.refresh_at)
            .finish()
    }
}

/// Why a stored token could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenSealError {
    /// It does not open under this id with the key ring (copied row, key rotated out,
    /// tampering).
    #[error("token record does not open ({0})")]
    Sealed(crate::crypto::CryptoError),
    /// It opened but is not a token record.
    #[error("token record is malformed")]
    Malformed,
}

/// Reads and opens a user's tokens for each of `resources` (for `inject::headers`). An owner
/// digest under an older ring key is tried when the current one finds nothing.
pub async fn lookup(
    store: &dyn crate::store::Store,
    keys: &KeyRing,
    tenant: &str,
    owners: &[String],
    provider: &str,
    resources: &[(String, Vec<String>)],
) -> Vec<inject::Lookup> {
    lookup_owned(store, keys, tenant, owners, provider, resources)
        .await
        .into_iter()
        .map(|(lookup, _)| lookup)
        .collect()
}

/// As `lookup`, with the owner digest each record was found under (the current key's when
/// none was found): a refresh or mint must hold that very record, which before `rotate-key`
/// may be under an older key's digest.
pub async fn lookup_owned(
    store: &dyn crate::store::Store,
    keys: &KeyRing,
    tenant: &str,
    owners: &[String],
    provider: &str,
    resources: &[(String, Vec<String>)],
) -> Vec<(inject::Lookup, Option<String>)> {
    let mut out = Vec::with_capacity(resources.len());
    for (resource, _) in resources {
        let mut result = inject::Lookup::Missing;
        let mut found_under = owners.first().cloned();
        // A second pass when nothing was found under several digests: rotate-key may have
        // moved the record from the digest read last to the one read first in between (the
        // move itself is one transaction, so the second pass finds it).
        let passes = if owners.len() > 1 { 2 } else { 1 };
        'passes: for _ in 0..passes {
            for owner in owners {
                let id = TokenId {
                    tenant: tenant.to_owned(),
                    owner: owner.clone(),
                    provider: provider.to_owned(),
                    resource: resource.clone(),
                };
                match store.get_token(&id).await {
                    Ok(Some(stored)) => {
                        found_under = Some(owner.clone());
                        result = match open(keys, &stored) {
                            Ok(token) => inject::Lookup::Found(token),
                            Err(e) => {
                                tracing::error!(tenant, provider, resource = %resource, error = %e, "document token record does not open");
                                inject::Lookup::Failed
                            }
                        };
                        break 'passes;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(tenant, provider, error = %e, "document tokens unreadable: store unavailable");
                        result = inject::Lookup::Failed;
                        break 'passes;
                    }
                }
            }
        }
        out.push((result, found_under));
    }
    out
}

/// Seals `token` for `id`.
pub fn seal(keys: &KeyRing, id: &TokenId, token: &DocumentToken) -> Vec<u8> {
    let json = serde_json::to_vec(token).expect("a token serialises");
    keys.seal(&id.aad(), &json)
}

/// Opens a stored record; only under its own id.
pub fn open(keys: &KeyRing, stored: &StoredToken) -> Result<DocumentToken, TokenSealError> {
    let json = keys
        .open(&stored.id.aad(), &stored.payload)
        .map_err(TokenSealError::Sealed)?;
    serde_json::from_slice(&json).map_err(|_| TokenSealError::Malformed)
}

/// What key rotation does with a token record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rekeyed {
    /// Sealed under the active key, and owned by the active key's digest: nothing to do.
    Current,
    /// Same id, payload re-sealed under the active key.
    Resealed(Vec<u8>),
    /// Its owner digest under the active key differs: the record under its new id.
    Moved(StoredToken),
}

/// Brings a record under the ring's active key: its payload re-sealed and, for a user's
/// token, its owner digest recomputed from the owner sealed inside it (so the record is still
/// found, and still joins its user's sessions, once the old key leaves the ring). Records
/// written before owners were sealed in keep their digest.
pub fn rekey(keys: &KeyRing, stored: &StoredToken) -> Result<Rekeyed, TokenSealError> {
    let token = open(keys, stored)?;
    let owner = match &token.owner_key {
        Some(key) if stored.id.owner != SHARED_OWNER => keys.lookup_digest(OWNER_PURPOSE, key),
        _ => stored.id.owner.clone(),
    };
    if owner != stored.id.owner {
        let id = TokenId {
            owner,
            ..stored.id.clone()
        };
        return Ok(Rekeyed::Moved(StoredToken::sealed(
            keys,
            id,
            &token,
            stored.generation + 1,
            stored.updated_at,
        )));
    }
    Ok(match reseal(keys, &stored.id, &stored.payload)? {
        None => Rekeyed::Current,
        Some(payload) => Rekeyed::Resealed(payload),
    })
}

/// Re-seals a record under the ring's active key (key rotation); `None` when it already is.
pub fn reseal(
    keys: &KeyRing,
    id: &TokenId,
    payload: &[u8],
) -> Result<Option<Vec<u8>>, TokenSealError> {
    if KeyRing::key_id_of(payload) == Some(keys.active_id()) {
        return Ok(None);
    }
    let json = keys
        .open(&id.aad(), payload)
        .map_err(TokenSealError::Sealed)?;
    Ok(Some(keys.seal(&id.aad(), &json)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_LEN;

    fn ring(active: &str) -> KeyRing {
        KeyRing::new(
            active,
            &[("k1".into(), [1; KEY_LEN]), ("k2".into(), [2; KEY_LEN])],
        )
        .unwrap()
    }

    fn id(owner: &str) -> TokenId {
        TokenId {
            tenant: "contoso".into(),
            owner: owner.into(),
            provider: "office365".into(),
            resource: "graph".into(),
        }
    }

    fn token() -> DocumentToken {
        DocumentToken {
            access_token: TokenSecret::new("eyJ0eXAi.access-token-value"),
            expires_at: 2_000,
            refresh_token: Some(TokenSecret::new("0.refresh-token-value")),
            scope: "Files.ReadWrite.All offline_access".into(),
            status: TokenStatus::Ok,
            owner_key: Some("https://sts.windows.net/t\nalice".into()),
        }
    }

    fn stored(keys: &KeyRing, id: TokenId) -> StoredToken {
        StoredToken::sealed(keys, id, &token(), 1, 1_000)
    }

    #[test]
    fn a_record_opens_only_under_its_own_id() {
        let keys = ring("k1");
        let alice = stored(&keys, id("alice-digest"));
        assert_eq!(open(&keys, &alice).unwrap(), token());
        for other in [
            TokenId {
                owner: "bob-digest".into(),
                ..alice.id.clone()
            },
            TokenId {
                tenant: "fabrikam".into(),
                ..alice.id.clone()
            },
            TokenId {
                provider: "google".into(),
                ..alice.id.clone()
            },
            TokenId {
                resource: "sharepoint".into(),
                ..alice.id.clone()
            },
        ] {
            let copied = StoredToken {
                id: other,
                ..alice.clone()
            };
            assert!(open(&keys, &copied).is_err(), "a copied row must not open");
        }
    }

    #[test]
    fn the_sealed_bytes_contain_no_token_and_debug_prints_none() {
        let keys = ring("k1");
        let record = stored(&keys, id("alice-digest"));
        for secret in ["access-token-value", "refresh-token-value"] {
            assert!(!format!("{:?}", token()).contains(secret));
            assert!(!format!("{record:?}").contains(secret));
        }
        for clear in [
            "access-token-value",
            "refresh-token-value",
            "Files.ReadWrite",
        ] {
            assert!(!record
                .payload
                .windows(clear.len())
                .any(|w| w == clear.as_bytes()));
        }
    }

    #[test]
    fn resealing_moves_a_record_to_the_active_key_and_keeps_it() {
        let old = ring("k1");
        let record = stored(&old, id("alice-digest"));
        let new = ring("k2");
        let resealed = reseal(&new, &record.id, &record.payload).unwrap().unwrap();
        assert_eq!(KeyRing::key_id_of(&resealed), Some("k2"));
        let moved = StoredToken {
            payload: resealed.clone(),
            ..record.clone()
        };
        assert_eq!(open(&new, &moved).unwrap(), token());
        assert_eq!(reseal(&new, &record.id, &resealed).unwrap(), None);
        let gone = KeyRing::new("k3", &[("k3".into(), [3; KEY_LEN])]).unwrap();
        assert!(reseal(&gone, &record.id, &record.payload).is_err());
    }

    #[test]
    fn owners_are_digests_not_names() {
        let keys = ring("k1");
        let owner =
            TokenId::user_owner(&keys, "https://sts.windows.net/t/", "alice@contoso.example");
        assert!(!owner.contains("alice"));
        assert_eq!(
            owner,
            TokenId::user_owner(&keys, "https://sts.windows.net/t", "alice@contoso.example")
        );
    }
}
