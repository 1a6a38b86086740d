//! `X-Forwarded-*` values. Client-supplied ones are believed only from a trusted proxy; the
//! caller has already removed them otherwise.

use std::net::IpAddr;

/// The `X-Forwarded-For` value to send: the trusted chain plus the peer, or the peer alone.
pub fn forwarded_for(existing: Option<&str>, peer: IpAddr) -> String {
    match existing.map(str::trim).filter(|e| !e.is_empty()) {
        Some(chain) => format!("{chain}, {peer}"),
        None => peer.to_string(),
    }
}

/// The scheme the client used, as seen by this listener.
pub fn forwarded_proto(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_the_peer_to_a_trusted_chain() {
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(forwarded_for(None, peer), "10.0.0.5");
        assert_eq!(forwarded_for(Some(" "), peer), "10.0.0.5");
        assert_eq!(
            forwarded_for(Some("203.0.113.9"), peer),
            "203.0.113.9, 10.0.0.5"
        );
        assert_eq!(forwarded_proto(true), "https");
    }
}
