//! Login state: what the gateway must remember between sending the browser to the identity
//! provider and the provider sending it back. It travels through the provider (WS-Fed `wctx`,
//! OIDC `state`) sealed with the key ring, expires quickly, is single-use (the caller records
//! its id), and is bound to this browser by a random value also kept in a cookie — so a
//! response started in an attacker's browser cannot complete in a victim's (login CSRF).

use crate::clock::UnixSeconds;
use crate::crypto::KeyRing;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};

const AAD: &[u8] = b"vestibule/login-state/v1";
/// Longest sealed state accepted, in characters.
pub const MAX_LEN: usize = 4096;

/// A sign-in in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    /// Random id, recorded when used so the state works once.
    pub id: String,
    /// Tenant the sign-in is for.
    pub tenant: String,
    /// Provider the browser was sent to.
    pub provider: String,
    /// Validated local path to return to.
    pub return_to: String,
    /// Expiry.
    pub expires_at: UnixSeconds,
    /// The browser-binding value (also in the binding cookie).
    pub binding: String,
    /// Protocol extras (OIDC nonce and PKCE verifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// PKCE code verifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce_verifier: Option<String>,
}

/// Why a returned state was refused. All variants mean "start again".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// No state came back.
    #[error("missing")]
    Missing,
    /// It does not open with the key ring (forged or damaged).
    #[error("forged")]
    Forged,
    /// Past its expiry.
    #[error("expired")]
    Expired,
    /// The binding cookie is missing or differs: another browser.
    #[error("not bound to this browser")]
    Unbound,
    /// It belongs to another tenant or provider.
    #[error("for another site")]
    Misdirected,
}

/// A random URL-safe token of 128 bits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether a binding cookie value looks like one we issued (reused across parallel sign-ins).
pub fn plausible_binding(value: &str) -> bool {
    value.len() == 22
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl LoginState {
    /// A new state; `binding` is the browser's existing binding value or a fresh one.
    pub fn new(
        tenant: &str,
        provider: &str,
        return_to: &str,
        binding: Option<&str>,
        now: UnixSeconds,
        ttl_secs: i64,
    ) -> Self {
        Self {
            id: random_token(),
            tenant: tenant.to_owned(),
            provider: provider.to_owned(),
            return_to: return_to.to_owned(),
            expires_at: now + ttl_secs,
            binding: binding
                .filter(|b| plausible_binding(b))
                .map_or_else(random_token, str::to_owned),
            nonce: None,
            pkce_verifier: None,
        }
    }

    /// Seals the state for the trip through the identity provider.
    pub fn seal(&self, ring: &KeyRing) -> String {
        let json = serde_json::to_vec(self).expect("state serialises");
        URL_SAFE_NO_PAD.encode(ring.seal(AAD, &json))
    }

    /// Opens a returned state and checks expiry, browser binding and destination.
    pub fn open(
        ring: &KeyRing,
        sealed: Option<&str>,
        binding_cookie: Option<&str>,
        tenant: &str,
        now: UnixSeconds,
    ) -> Result<Self, StateError> {
        let sealed = sealed
            .filter(|s| !s.is_empty())
            .ok_or(StateError::Missing)?;
        if sealed.len() > MAX_LEN {
            return Err(StateError::Forged);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| StateError::Forged)?;
        let json = ring.open(AAD, &bytes).map_err(|_| StateError::Forged)?;
        let state: Self = serde_json::from_slice(&json).map_err(|_| StateError::Forged)?;
        if now >= state.expires_at {
            return Err(StateError::Expired);
        }
        let bound = binding_cookie
            .is_some_and(|c| constant_time_eq(c.as_bytes(), state.binding.as_bytes()));
        if !bound {
            return Err(StateError::Unbound);
        }
        if state.tenant != tenant {
            return Err(StateError::Misdirected);
        }
        Ok(state)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_LEN;

    fn ring() -> KeyRing {
        KeyRing::new("k1", &[("k1".into(), [1; KEY_LEN])]).unwrap()
    }

    #[test]
    fn round_trip_and_every_refusal() {
        let r = ring();
        let s = LoginState::new("contoso", "azure", "/deals", None, 1000, 600);
        let sealed = s.seal(&r);
        let b = s.binding.clone();
        assert_eq!(
            LoginState::open(&r, Some(&sealed), Some(&b), "contoso", 1001),
            Ok(s.clone())
        );
        assert_eq!(
            LoginState::open(&r, None, Some(&b), "contoso", 1001),
            Err(StateError::Missing)
        );
        assert_eq!(
            LoginState::open(&r, Some(""), Some(&b), "contoso", 1001),
            Err(StateError::Missing)
        );
        assert_eq!(
            LoginState::open(&r, Some(&sealed), Some(&b), "contoso", 1600),
            Err(StateError::Expired)
        );
        assert_eq!(
            LoginState::open(&r, Some(&sealed), None, "contoso", 1001),
            Err(StateError::Unbound)
        );
        assert_eq!(
            LoginState::open(&r, Some(&sealed), Some(&random_token()), "contoso", 1001),
            Err(StateError::Unbound)
        );
        assert_eq!(
            LoginState::open(&r, Some(&sealed), Some(&b), "fabrikam", 1001),
            Err(StateError::Misdirected)
        );
        let mut forged = sealed.clone().into_bytes();
        forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            LoginState::open(
                &r,
                Some(std::str::from_utf8(&forged).unwrap()),
                Some(&b),
                "contoso",
                1001
            ),
            Err(StateError::Forged)
        );
        let other = KeyRing::new("k1", &[("k1".into(), [2; KEY_LEN])]).unwrap();
        assert_eq!(
            LoginState::open(&other, Some(&sealed), Some(&b), "contoso", 1001),
            Err(StateError::Forged)
        );
    }

    #[test]
    fn an_existing_binding_is_reused_and_junk_is_replaced() {
        let existing = random_token();
        assert_eq!(
            LoginState::new("t", "p", "/", Some(&existing), 0, 60).binding,
            existing
        );
        assert_ne!(
            LoginState::new("t", "p", "/", Some("junk"), 0, 60).binding,
            "junk"
        );
    }
}
