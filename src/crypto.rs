//! AES-256-GCM envelopes under a key ring: one active key seals, every key in the ring opens.
//!
//! Envelope layout: `kid_len (1) | kid | nonce (12) | ciphertext | tag (16)`. The key id travels
//! in clear so a rotated-out key can still open what it sealed; tampering with it only selects
//! another key, which then fails authentication.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use rand::RngCore;
use std::fmt;

/// Length of an AES-256 key in bytes.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Longest key id accepted, so the length fits the one-byte prefix with room to spare.
pub const MAX_KID_LEN: usize = 32;

/// Why an envelope could not be opened. Deliberately coarse: callers treat every variant as
/// "not ours", and the detail only goes to debug logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The envelope is shorter than its own header says.
    #[error("envelope is truncated")]
    Truncated,
    /// The key id is not in the ring (rotated out, or forged).
    #[error("unknown key id")]
    UnknownKey,
    /// Authentication failed: wrong key, wrong associated data, or tampering.
    #[error("authentication failed")]
    Inauthentic,
}

/// A key id: short printable ASCII.
pub fn valid_key_id(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn lookup_digest(key: &[u8; 32], purpose: &str, value: &str) -> String {
    let mut message = Vec::with_capacity(purpose.len() + 1 + value.len());
    message.extend_from_slice(purpose.as_bytes());
    message.push(0);
    message.extend_from_slice(value.as_bytes());
    hmac_sha256(key, &message)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The set of data-encryption keys, with the one that seals new data.
pub struct KeyRing {
    active: String,
    /// A handful of keys (the active one and those being rotated out): a linear search over
    /// the id bytes is cheaper than hashing the id on every cookie.
    keys: Vec<(String, Aes256Gcm)>,
    /// Per key, a separate key for lookup digests (never the encryption key itself), the
    /// active key's first.
    lookup: Vec<[u8; 32]>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.iter().map(|(id, _)| id).collect();
        ids.sort();
        f.debug_struct("KeyRing")
            .field("active", &self.active)
            .field("ids", &ids)
            .finish()
    }
}

impl KeyRing {
    /// Builds a ring; `active` must be one of `keys` (the config validator guarantees it).
    pub fn new(active: &str, keys: &[(String, [u8; KEY_LEN])]) -> Option<Self> {
        let mut lookup: Vec<[u8; 32]> = Vec::with_capacity(keys.len());
        for (id, key) in keys {
            let derived = hmac_sha256(key, b"vestibule/lookup-key/v1");
            if id == active {
                lookup.insert(0, derived);
            } else {
                lookup.push(derived);
            }
        }
        let keys: Vec<(String, Aes256Gcm)> = keys
            .iter()
            .map(|(id, key)| (id.clone(), Aes256Gcm::new(&(*key).into())))
            .collect();
        keys.iter().any(|(id, _)| id == active).then(|| Self {
            active: active.to_owned(),
            keys,
            lookup,
        })
    }

    /// A digest of `value` for `purpose` under the active key: lets the store find records
    /// by a value (a user's subject at an identity provider) without holding the value.
    pub fn lookup_digest(&self, purpose: &str, value: &str) -> String {
        lookup_digest(&self.lookup[0], purpose, value)
    }

    /// The same digest under every key in the ring (records written before a rotation).
    pub fn lookup_digests(&self, purpose: &str, value: &str) -> Vec<String> {
        self.lookup
            .iter()
            .map(|key| lookup_digest(key, purpose, value))
            .collect()
    }

    fn cipher(&self, kid: &str) -> Option<&Aes256Gcm> {
        self.keys.iter().find(|(id, _)| id == kid).map(|(_, c)| c)
    }

    /// The id of the key that seals new data.
    pub fn active_id(&self) -> &str {
        &self.active
    }

    /// Seals `plaintext` with the active key, binding `aad` (which is not stored).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let kid = self.active.as_bytes();
        let cipher = self
            .cipher(&self.active)
            .expect("the active key is in the ring");
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(1 + kid.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(kid.len() as u8);
        out.extend_from_slice(kid);
        out.extend_from_slice(&nonce);
        let body_start = out.len();
        out.extend_from_slice(plaintext);
        let tag = cipher
            .encrypt_inout_detached(&Nonce::from(nonce), aad, (&mut out[body_start..]).into())
            // Only fails for inputs of gigabytes; nothing we seal comes close.
            .expect("AES-GCM input within limits");
        out.extend_from_slice(&tag);
        out
    }

    /// The key id an envelope names, without opening it.
    pub fn key_id_of(envelope: &[u8]) -> Option<&str> {
        let len = *envelope.first()? as usize;
        std::str::from_utf8(envelope.get(1..1 + len)?).ok()
    }

    /// Opens an envelope in place and returns the plaintext slice (no allocation: the cookie
    /// path decrypts on every request).
    pub fn open_in_place<'a>(
        &self,
        aad: &[u8],
        envelope: &'a mut [u8],
    ) -> Result<&'a [u8], CryptoError> {
        let kid_len = *envelope.first().ok_or(CryptoError::Truncated)? as usize;
        let header = 1 + kid_len + NONCE_LEN;
        if envelope.len() < header + TAG_LEN {
            return Err(CryptoError::Truncated);
        }
        let kid =
            std::str::from_utf8(&envelope[1..1 + kid_len]).map_err(|_| CryptoError::UnknownKey)?;
        let cipher = self.cipher(kid).ok_or(CryptoError::UnknownKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&envelope[1 + kid_len..header]);
        let tag_start = envelope.len() - TAG_LEN;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&envelope[tag_start..]);
        let body = &mut envelope[header..tag_start];
        cipher
            .decrypt_inout_detached(&Nonce::from(nonce), aad, body.into(), &Tag::from(tag))
            .map_err(|_| CryptoError::Inauthentic)?;
        Ok(&envelope[header..tag_start])
    }

    /// Opens an envelope into a fresh buffer.
    pub fn open(&self, aad: &[u8], envelope: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut buf = envelope.to_vec();
        let plain = self.open_in_place(aad, &mut buf)?;
        Ok(plain.to_vec())
    }
}

/// A fresh random 256-bit key.
pub fn generate_key() -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    rand::rng().fill_bytes(&mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(active: &str, ids: &[(&str, u8)]) -> KeyRing {
        let keys: Vec<(String, [u8; KEY_LEN])> = ids
            .iter()
            .map(|(id, fill)| (id.to_string(), [*fill; KEY_LEN]))
            .collect();
        KeyRing::new(active, &keys).unwrap()
    }

    #[test]
    fn seals_and_opens_with_matching_aad() {
        let r = ring("k1", &[("k1", 1)]);
        let sealed = r.seal(b"ctx", b"hello");
        assert_eq!(KeyRing::key_id_of(&sealed), Some("k1"));
        assert_eq!(r.open(b"ctx", &sealed).unwrap(), b"hello");
        assert_eq!(r.open(b"other", &sealed), Err(CryptoError::Inauthentic));
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let r = ring("k1", &[("k1", 1)]);
        let sealed = r.seal(b"", b"session");
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut copy = sealed.clone();
                copy[i] ^= 1 << bit;
                assert!(r.open(b"", &copy).is_err(), "flip at byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn rotation_keeps_old_key_for_opening() {
        let old = ring("k1", &[("k1", 1)]);
        let sealed_old = old.seal(b"", b"x");
        let rotated = ring("k2", &[("k1", 1), ("k2", 2)]);
        assert_eq!(rotated.open(b"", &sealed_old).unwrap(), b"x");
        let sealed_new = rotated.seal(b"", b"y");
        assert_eq!(KeyRing::key_id_of(&sealed_new), Some("k2"));
        assert_eq!(old.open(b"", &sealed_new), Err(CryptoError::UnknownKey));
    }

    #[test]
    fn truncated_and_empty_envelopes_are_refused() {
        let r = ring("k1", &[("k1", 1)]);
        assert_eq!(r.open(b"", &[]), Err(CryptoError::Truncated));
        assert_eq!(r.open(b"", &[200, 1, 2]), Err(CryptoError::Truncated));
        let sealed = r.seal(b"", b"x");
        assert!(r.open(b"", &sealed[..sealed.len() - 1]).is_err());
    }

    #[test]
    fn key_ids_are_short_printable_ascii() {
        assert!(valid_key_id("k1-2026.11_a"));
        assert!(!valid_key_id(""));
        assert!(!valid_key_id("k 1"));
        assert!(!valid_key_id(&"k".repeat(MAX_KID_LEN + 1)));
    }
}
