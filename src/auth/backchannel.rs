//! OpenID Connect Back-Channel Logout 1.0: the logout token an OpenID provider POSTs to end a
//! user's sessions. Sans I/O: the provider's keys, settings and the time come in as arguments.
//! Checked as an ID token is (signature by a key of the provider's JWKS with an allow-listed
//! public-key algorithm, issuer, audience, issue time), plus what makes it a logout token and
//! nothing else (§2.4): an `events` member for back-channel logout, `sub` and/or `sid`, a
//! `jti` for replay detection, and no `nonce` (so an ID token can never pass as one).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyUse};
use serde_json::Value;

/// The `events` member that marks a back-channel logout token.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A verified logout token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    /// Issuer (the provider).
    pub issuer: String,
    /// The user whose sessions end, when given.
    pub subject: Option<String>,
    /// The provider session that ended, when given.
    pub sid: Option<String>,
    /// Token id, for replay detection.
    pub jti: String,
    /// Until when a replay must be recognised.
    pub replay_until: i64,
}

/// Why a logout token was refused. Messages are safe to return to the provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutTokenError {
    /// Not a compact JWS with JSON header and claims.
    #[error("the logout token is not a signed JWT")]
    Malformed,
    /// No key of the provider has the token's key id.
    #[error("the logout token is signed with an unknown key")]
    UnknownKey,
    /// The algorithm is not allowed (or is symmetric).
    #[error("the logout token's algorithm is not allowed")]
    Algorithm,
    /// The signature does not verify.
    #[error("the logout token's signature is not valid")]
    Signature,
    /// Another issuer.
    #[error("the logout token comes from another issuer")]
    Issuer,
    /// Not for this client.
    #[error("the logout token is for another client")]
    Audience,
    /// Issued in the future, too long ago, or expired.
    #[error("the logout token is not current")]
    Time,
    /// The events claim does not name back-channel logout.
    #[error("the logout token lacks the back-channel logout event")]
    Event,
    /// Neither `sub` nor `sid`.
    #[error("the logout token names neither a subject nor a session")]
    NoSubject,
    /// A `nonce`: an ID token, not a logout token.
    #[error("the logout token carries a nonce")]
    Nonce,
    /// No `jti`.
    #[error("the logout token has no jti")]
    NoJti,
}

fn decode_json(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `iss` the token claims, before any check: only to pick the provider whose keys then
/// verify it.
pub fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    decode_json(payload)?
        .get("iss")?
        .as_str()
        .map(str::to_owned)
}

/// What the token is checked against.
pub struct Expect<'a> {
    /// The provider's keys.
    pub jwks: &'a CoreJsonWebKeySet,
    /// Allowed signature algorithms (public-key only).
    pub algorithms: &'a [CoreJwsSigningAlgorithm],
    /// The provider's issuer.
    pub issuer: &'a str,
    /// Our client id.
    pub client_id: &'a str,
    /// Now (injected).
    pub now: i64,
    /// Allowed clock difference, seconds.
    pub skew: i64,
    /// Oldest `iat` accepted, seconds before now.
    pub max_age: i64,
}

/// Verifies a logout token.
pub fn verify(token: &str, expect: &Expect) -> Result<LogoutToken, LogoutTokenError> {
    use LogoutTokenError as E;
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(E::Malformed);
    };
    let header = decode_json(header_b64).ok_or(E::Malformed)?;
    let claims = decode_json(payload_b64).ok_or(E::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| E::Malformed)?;
    if header.get("crit").is_some() {
        return Err(E::Malformed);
    }
    let alg: CoreJwsSigningAlgorithm =
        serde_json::from_value(header.get("alg").cloned().ok_or(E::Malformed)?)
            .map_err(|_| E::Algorithm)?;
    if !expect.algorithms.contains(&alg) {
        return Err(E::Algorithm);
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let candidates: Vec<_> = expect
        .jwks
        .keys()
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.key_id().is_some_and(|id| id.as_str() == kid)))
        .filter(|k| k.key_use().is_none_or(|u| u.allows_signature()))
        .filter(|k| match k.signing_alg() {
            JsonWebKeyAlgorithm::Algorithm(a) => *a == alg,
            JsonWebKeyAlgorithm::Unspecified => true,
            JsonWebKeyAlgorithm::Unsupported => false,
        })
        .collect();
    if candidates.is_empty() {
        return Err(E::UnknownKey);
    }
    let signed = format!("{header_b64}.{payload_b64}");
    if !candidates.iter().any(|k| {
        k.verify_signature(&alg, signed.as_bytes(), &signature)
            .is_ok()
    }) {
        return Err(E::Signature);
    }
    // The signature holds: every claim below is the provider's.
    let text = |k: &str| claims.get(k).and_then(Value::as_str);
    let issuer = text("iss").ok_or(E::Issuer)?;
    if issuer.trim_end_matches('/') != expect.issuer.trim_end_matches('/') {
        return Err(E::Issuer);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == expect.client_id,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(expect.client_id)),
        _ => false,
    };
    if !audience_ok {
        return Err(E::Audience);
    }
    let iat = claims.get("iat").and_then(Value::as_i64).ok_or(E::Time)?;
    if iat > expect.now + expect.skew || iat < expect.now - expect.max_age - expect.skew {
        return Err(E::Time);
    }
    let exp = claims
        .get("exp")
        .map(|e| e.as_i64().ok_or(E::Time))
        .transpose()?;
    if exp.is_some_and(|exp| exp <= expect.now - expect.skew) {
        return Err(E::Time);
    }
    if !claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(EVENT))
        .is_some_and(Value::is_object)
    {
        return Err(E::Event);
    }
    if claims.get("nonce").is_some() {
        return Err(E::Nonce);
    }
    let subject = text("sub").map(str::to_owned);
    let sid = text("sid").map(str::to_owned);
    if subject.is_none() && sid.is_none() {
        return Err(E::NoSubject);
    }
    let jti = text("jti").filter(|j| !j.is_empty()).ok_or(E::NoJti)?;
    Ok(LogoutToken {
        issuer: issuer.to_owned(),
        subject,
        sid,
        jti: jti.to_owned(),
        // Kept until the token could no longer pass the age check.
        replay_until: exp
            .unwrap_or(iat + expect.max_age)
            .max(iat + expect.max_age)
            + expect.skew,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::{Jwk, JwkSet};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::json;

    const ISSUER: &str = "https://op.example";
    const NOW: i64 = 1_800_000_000;

    fn key(kid: &str) -> (EncodingKey, Jwk) {
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let pem = openssl::pkey::PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        let encoding = EncodingKey::from_ec_pem(&pem).unwrap();
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some(kid.into());
        (encoding, jwk)
    }

    fn sign(key: &EncodingKey, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": "vestibule",
            "iat": NOW - 5,
            "jti": "j1",
            "sub": "alice",
            "sid": "s1",
            "events": { EVENT: {} },
        })
    }

    fn check(token: &str, jwks: &CoreJsonWebKeySet) -> Result<LogoutToken, LogoutTokenError> {
        verify(
            token,
            &Expect {
                jwks,
                algorithms: &[CoreJwsSigningAlgorithm::EcdsaP256Sha256],
                issuer: ISSUER,
                client_id: "vestibule",
                now: NOW,
                skew: 60,
                max_age: 300,
            },
        )
    }

    #[test]
    fn logout_tokens_are_checked_like_id_tokens_and_more() {
        let (good, good_jwk) = key("k1");
        let (other, _) = key("k1");
        let jwks: CoreJsonWebKeySet = serde_json::from_value(
            serde_json::to_value(JwkSet {
                keys: vec![good_jwk],
            })
            .unwrap(),
        )
        .unwrap();
        let ok = check(&sign(&good, "k1", &claims()), &jwks).unwrap();
        assert_eq!(ok.subject.as_deref(), Some("alice"));
        assert_eq!(ok.sid.as_deref(), Some("s1"));
        assert_eq!(ok.jti, "j1");
        assert!(ok.replay_until >= NOW - 5 + 300);
        for (field, kept) in [("sid", "sub"), ("sub", "sid")] {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(field);
            let t = check(&sign(&good, "k1", &c), &jwks).unwrap();
            assert!(t.subject.is_some() == (kept == "sub") && t.sid.is_some() == (kept == "sid"));
        }
        let with = |f: &dyn Fn(&mut Value)| {
            let mut c = claims();
            f(&mut c);
            sign(&good, "k1", &c)
        };
        let cases: Vec<(&str, String, LogoutTokenError)> = vec![
            (
                "another key, same kid",
                sign(&other, "k1", &claims()),
                LogoutTokenError::Signature,
            ),
            (
                "unknown kid",
                sign(&good, "k2", &claims()),
                LogoutTokenError::UnknownKey,
            ),
            (
                "wrong issuer",
                with(&|c| c["iss"] = json!("https://evil.example")),
                LogoutTokenError::Issuer,
            ),
            (
                "wrong audience",
                with(&|c| c["aud"] = json!("other")),
                LogoutTokenError::Audience,
            ),
            (
                "audience list without us",
                with(&|c| c["aud"] = json!(["a", "b"])),
                LogoutTokenError::Audience,
            ),
            (
                "issued in the future",
                with(&|c| c["iat"] = json!(NOW + 600)),
                LogoutTokenError::Time,
            ),
            (
                "too old",
                with(&|c| c["iat"] = json!(NOW - 3600)),
                LogoutTokenError::Time,
            ),
            (
                "expired",
                with(&|c| c["exp"] = json!(NOW - 120)),
                LogoutTokenError::Time,
            ),
            (
                "no events",
                with(&|c| {
                    c.as_object_mut().unwrap().remove("events");
                }),
                LogoutTokenError::Event,
            ),
            (
                "other event",
                with(&|c| c["events"] = json!({"urn:other": {}})),
                LogoutTokenError::Event,
            ),
            (
                "event not an object",
                with(&|c| c["events"] = json!({EVENT: "yes"})),
                LogoutTokenError::Event,
            ),
            (
                "an ID token (nonce)",
                with(&|c| c["nonce"] = json!("n")),
                LogoutTokenError::Nonce,
            ),
            (
                "neither sub nor sid",
                with(&|c| {
                    let m = c.as_object_mut().unwrap();
                    m.remove("sub");
                    m.remove("sid");
                }),
                LogoutTokenError::NoSubject,
            ),
            (
                "no jti",
                with(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
                LogoutTokenError::NoJti,
            ),
            ("two parts", "a.b".into(), LogoutTokenError::Malformed),
            ("garbage", "x.y.z".into(), LogoutTokenError::Malformed),
        ];
        for (what, token, expected) in cases {
            assert_eq!(check(&token, &jwks), Err(expected), "{what}");
        }
        // HS256 keyed with the public key (algorithm confusion) and `none`.
        let hmac = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"public key bytes").unwrap(),
        )
        .unwrap();
        assert_eq!(check(&hmac, &jwks), Err(LogoutTokenError::Algorithm));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        assert_eq!(check(&none, &jwks), Err(LogoutTokenError::Algorithm));
        assert_eq!(
            unverified_issuer(&sign(&good, "k1", &claims())).as_deref(),
            Some(ISSUER)
        );
    }
}
