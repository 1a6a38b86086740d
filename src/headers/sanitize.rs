//! Recognises every spelling of a header Vestibule owns. Servers and frameworks behind a proxy
//! disagree on case and on `_` versus `-` (CGI maps both to `HTTP_X_VESTIBULE_USER`), so a
//! client copy is matched case-insensitively with `_` folded to `-`.

use crate::config::HeadersConfig;
use http::{HeaderMap, HeaderName};

/// Forwarding headers we set ourselves; client copies are believed only from trusted proxies.
pub const FORWARDING: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "forwarded",
];

/// Header names (and the name prefix) that only Vestibule may send upstream.
#[derive(Debug, Clone)]
pub struct OwnedHeaders {
    prefix: Vec<u8>,
    names: Vec<Vec<u8>>,
}

/// Lower case with `_` as `-`: the one spelling every variant folds to.
fn fold(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        _ => b.to_ascii_lowercase(),
    }
}

fn folded_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| fold(*x) == *y)
}

impl OwnedHeaders {
    /// From validated configuration (already folded).
    pub fn new(config: &HeadersConfig) -> Self {
        Self {
            prefix: config.prefix.as_bytes().to_vec(),
            names: config.strip.iter().map(|n| n.as_bytes().to_vec()).collect(),
        }
    }

    /// Whether `name`, in any spelling, is ours.
    pub fn is_owned(&self, name: &[u8]) -> bool {
        (name.len() >= self.prefix.len() && folded_eq(&name[..self.prefix.len()], &self.prefix))
            || self.names.iter().any(|n| folded_eq(name, n))
    }

    /// Whether `name`, in any spelling, is a forwarding header.
    pub fn is_forwarding(name: &[u8]) -> bool {
        FORWARDING.iter().any(|f| folded_eq(name, f.as_bytes()))
    }

    /// The distinct header names in `headers` to remove before proxying. Forwarding headers are
    /// included unless the peer is a trusted proxy. Allocates only when something matches.
    pub fn to_remove(&self, headers: &HeaderMap, strip_forwarding: bool) -> Vec<HeaderName> {
        let mut out: Vec<HeaderName> = Vec::new();
        for name in headers.keys() {
            let bytes = name.as_str().as_bytes();
            if self.is_owned(bytes) || (strip_forwarding && Self::is_forwarding(bytes)) {
                out.push(name.clone());
            }
        }
        out
    }
}

/// Whether a value can be sent as a header without letting a client smuggle a line break or
/// other control character into the upstream request.
pub fn safe_value(value: &str) -> bool {
    !value.is_empty() && !value.bytes().any(|b| b.is_ascii_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned() -> OwnedHeaders {
        OwnedHeaders::new(&HeadersConfig {
            prefix: "x-vestibule-".into(),
            strip: vec!["remote-user".into()],
        })
    }

    #[test]
    fn every_spelling_of_an_owned_header_matches() {
        let o = owned();
        for name in [
            "X-Vestibule-User",
            "x-vestibule-user",
            "X_Vestibule_User",
            "x_vestibule-user",
            "X-VESTIBULE-ASSERTION",
            "Remote_User",
            "REMOTE-USER",
        ] {
            assert!(o.is_owned(name.as_bytes()), "{name}");
        }
        for name in ["x-vestibul", "x-vestibulex", "remote-user2", "accept"] {
            assert!(!o.is_owned(name.as_bytes()), "{name}");
        }
        assert!(OwnedHeaders::is_forwarding(b"X_Forwarded_For"));
        assert!(OwnedHeaders::is_forwarding(b"forwarded"));
    }

    #[test]
    fn lists_every_owned_header_once() {
        let mut map = HeaderMap::new();
        map.append("x-vestibule-user", "a".parse().unwrap());
        map.append("x-vestibule-user", "b".parse().unwrap());
        map.append("x_vestibule_user", "c".parse().unwrap());
        map.append("x-forwarded-for", "1.2.3.4".parse().unwrap());
        map.append("accept", "*/*".parse().unwrap());
        let names = owned().to_remove(&map, true);
        assert_eq!(names.len(), 3);
        assert_eq!(owned().to_remove(&map, false).len(), 2);
    }

    #[test]
    fn control_characters_are_never_safe() {
        assert!(safe_value("Zoë O'Brien"));
        assert!(!safe_value("alice\r\nX-Vestibule-User: admin"));
        assert!(!safe_value("a\u{7f}"));
        assert!(!safe_value("tab\there"));
        assert!(!safe_value(""));
    }
}
