//! The session cookie: `v1.` + base64url(AES-256-GCM envelope of session id + tenant).
//! The cookie is only a handle; everything about the user stays server-side.

use super::SessionId;
use crate::crypto::KeyRing;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

const PREFIX: &str = "v1.";
/// Binds the envelope to its purpose, so no other sealed value can pose as a session cookie.
const AAD: &[u8] = b"vestibule/session-cookie/v1";
/// Longest cookie value we try to decode: key id 32 + tenant 64 + fixed parts, in base64.
const MAX_ENCODED: usize = 256;

/// Seals a session handle for `tenant`.
pub fn encode(ring: &KeyRing, id: &SessionId, tenant: &str) -> String {
    let mut plain = Vec::with_capacity(16 + tenant.len());
    plain.extend_from_slice(&id.0);
    plain.extend_from_slice(tenant.as_bytes());
    let sealed = ring.seal(AAD, &plain);
    let mut out = String::with_capacity(PREFIX.len() + sealed.len() * 4 / 3 + 4);
    out.push_str(PREFIX);
    URL_SAFE_NO_PAD.encode_string(&sealed, &mut out);
    out
}

/// Opens a cookie value; `None` unless it is intact, sealed by a key in the ring, and minted
/// for `tenant`. Allocation-free: runs on every request.
pub fn decode(ring: &KeyRing, value: &str, tenant: &str) -> Option<SessionId> {
    let encoded = value.strip_prefix(PREFIX)?;
    if encoded.len() > MAX_ENCODED {
        return None;
    }
    let mut buf = [0u8; MAX_ENCODED];
    let len = URL_SAFE_NO_PAD.decode_slice(encoded, &mut buf).ok()?;
    let plain = ring.open_in_place(AAD, &mut buf[..len]).ok()?;
    let (id, cookie_tenant) = plain.split_at_checked(16)?;
    if cookie_tenant != tenant.as_bytes() {
        return None;
    }
    Some(SessionId(id.try_into().ok()?))
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

    #[test]
    fn round_trips_for_its_tenant_only() {
        let r = ring("k1");
        let id = SessionId([7; 16]);
        let c = encode(&r, &id, "contoso");
        assert!(c.starts_with("v1."));
        assert_eq!(decode(&r, &c, "contoso"), Some(id));
        assert_eq!(decode(&r, &c, "fabrikam"), None);
        assert_eq!(decode(&r, &c, "contos"), None);
    }

    #[test]
    fn tampered_truncated_and_foreign_values_are_refused() {
        let r = ring("k1");
        let c = encode(&r, &SessionId([7; 16]), "contoso");
        let mut bytes = c.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            decode(&r, std::str::from_utf8(&bytes).unwrap(), "contoso"),
            None
        );
        assert_eq!(decode(&r, &c[..c.len() - 4], "contoso"), None);
        assert_eq!(decode(&r, &c.replacen("v1.", "v2.", 1), "contoso"), None);
        assert_eq!(decode(&r, "v1.", "contoso"), None);
        assert_eq!(decode(&r, &"A".repeat(10_000), "contoso"), None);
        let other = KeyRing::new("k1", &[("k1".into(), [9; KEY_LEN])]).unwrap();
        assert_eq!(decode(&other, &c, "contoso"), None);
    }
}
