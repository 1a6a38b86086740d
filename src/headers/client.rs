//! Who the client is when requests arrive through reverse proxies: the direct peer, unless it
//! is a trusted proxy, in which case the `X-Forwarded-For` chain is walked from the right
//! (the entries our own proxies appended) to the first address that is not a trusted proxy.
//! Entries left of that one were written by the client and prove nothing.

use ipnet::IpNet;
use std::net::IpAddr;

/// The client's address, or `None` when a trusted proxy sent an unreadable chain (the caller
/// then treats the client as unknown, never as the proxy itself).
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'a [u8]>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut last = peer;
    for value in forwarded_for.rev() {
        let text = std::str::from_utf8(value).ok()?;
        for entry in text.rsplit(',') {
            let ip: IpAddr = entry.trim().parse().ok()?;
            if !is_trusted(&ip) {
                return Some(ip);
            }
            last = ip;
        }
    }
    // Every hop is one of our proxies: the leftmost is the closest we know to the client.
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn client(peer: &str, xff: &[&str], trusted: &[&str]) -> Option<IpAddr> {
        let trusted: Vec<IpNet> = trusted.iter().map(|n| n.parse().unwrap()).collect();
        client_address(ip(peer), xff.iter().map(|v| v.as_bytes()), &trusted)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        assert_eq!(
            client("203.0.113.7", &["127.0.0.1"], &["127.0.0.0/8"]),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            client("127.0.0.1", &["127.0.0.1"], &[]),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let t = ["127.0.0.0/8", "10.0.0.0/8"];
        assert_eq!(
            client("127.0.0.1", &["203.0.113.7"], &t),
            Some(ip("203.0.113.7"))
        );
        // The client wrote "127.0.0.1" itself to look local: the proxy appended its real address.
        assert_eq!(
            client("127.0.0.1", &["127.0.0.1, 198.51.100.4, 10.0.0.2"], &t),
            Some(ip("198.51.100.4"))
        );
        assert_eq!(
            client("10.0.0.3", &["127.0.0.1", "198.51.100.4"], &t),
            Some(ip("198.51.100.4"))
        );
        assert_eq!(client("127.0.0.1", &["10.0.0.9"], &t), Some(ip("10.0.0.9")));
        assert_eq!(client("127.0.0.1", &[], &t), Some(ip("127.0.0.1")));
        assert_eq!(client("127.0.0.1", &["garbage"], &t), None);
        assert_eq!(
            client("127.0.0.1", &["::1, 2001:db8::1"], &t),
            Some(ip("2001:db8::1"))
        );
    }
}
