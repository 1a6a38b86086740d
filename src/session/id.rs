//! Session ids: 128 random bits, stored as hex, never printed whole.

use rand::RngCore;
use std::fmt;

/// A random 128-bit session id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    /// A fresh random id.
    pub fn generate() -> Self {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        Self(id)
    }

    /// Lower-case hex, the form stored in the database.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses the store's form of an id.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 32 || !hex.is_ascii() {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(id))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a prefix: the full id is a bearer secret once paired with the cookie key.
        write!(f, "SessionId({}…)", &self.to_hex()[..8])
    }
}
