//! Reading the downstream request: its host, what it accepts, how it arrived.

use super::*;

/// The request target as pingora would rebuild it from the URI alone.
pub(super) fn uri_target(req: &RequestHeader) -> &[u8] {
    req.uri
        .path_and_query()
        .map(|pq| pq.as_str().as_bytes())
        .or_else(|| req.uri.authority().map(|a| a.as_str().as_bytes()))
        .unwrap_or_default()
}

/// A placeholder request head; allocates nothing.
pub(super) fn empty_parts() -> http::request::Parts {
    http::Request::new(()).into_parts().0
}

/// The Host header (or HTTP/2 authority) without port; `None` when absent or malformed.
pub(super) fn request_host(req: &RequestHeader) -> Option<&str> {
    request_host_with_port(req).map(host_of)
}

/// The validated `host[:port]` of the request; `None` when absent or malformed.
pub(super) fn request_host_with_port(req: &RequestHeader) -> Option<&str> {
    authority(req).ok().flatten()
}

/// A host name browsers treat as loopback (and so as a secure context over plain HTTP).
pub(super) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    host.eq_ignore_ascii_case("localhost")
        || host.len().checked_sub(".localhost".len()).is_some_and(|i| {
            host.is_char_boundary(i) && host[i..].eq_ignore_ascii_case(".localhost")
        })
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host part of a validated authority (brackets of an IPv6 literal removed).
pub(super) fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// The request's authority: `Ok(None)` when there is none, `Err` when the Host header is
/// repeated or is not `host[:port]` with a DNS-style name, an IPv4 address or a bracketed
/// IPv6 address, and a port of 1-65535 digits. `crm.example:@evil.example` would otherwise
/// route to `crm.example` and put `evil.example` into every origin built from it.
pub(super) fn authority(req: &RequestHeader) -> Result<Option<&str>, ()> {
    let mut hosts = req.headers.get_all(header::HOST).iter();
    let raw = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(()),
        (Some(h), None) => h.to_str().map_err(|_| ())?,
        (None, _) => match req.uri.authority() {
            Some(a) => a.as_str(),
            None => return Ok(None),
        },
    };
    if raw.is_empty() {
        return Ok(None);
    }
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (literal, after) = rest.split_once(']').ok_or(())?;
        literal.parse::<std::net::Ipv6Addr>().map_err(|_| ())?;
        match after {
            "" => (literal, None),
            _ => (literal, Some(after.strip_prefix(':').ok_or(())?)),
        }
    } else {
        match raw.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (raw, None),
        }
    };
    let host_ok = raw.starts_with('[')
        || (!host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')));
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
    });
    if host_ok && port_ok {
        Ok(Some(raw))
    } else {
        Err(())
    }
}

/// Whether any value of header `name` contains `needle` (lower case), ignoring ASCII case.
/// Runs on every request, so it compares in place rather than lower-casing a copy.
pub(super) fn header_has(req: &RequestHeader, name: header::HeaderName, needle: &str) -> bool {
    let needle = needle.as_bytes();
    req.headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    })
}

pub(super) fn accepts_html(req: &RequestHeader) -> bool {
    header_has(req, header::ACCEPT, "text/html")
}

/// Whether an error should be answered as JSON: the caller asks for JSON and not HTML, or
/// is a script. Decided only when an error page is written, not for every request.
pub(super) fn prefers_json(req: &RequestHeader) -> bool {
    (header_has(req, header::ACCEPT, "application/json") && !accepts_html(req)) || is_xhr(req)
}

pub(super) fn is_xhr(req: &RequestHeader) -> bool {
    header_has(
        req,
        header::HeaderName::from_static("x-requested-with"),
        "xmlhttprequest",
    )
}

pub(super) fn is_tls(downstream: &Session) -> bool {
    downstream.digest().is_some_and(|d| d.ssl_digest.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_targets_the_uri_cannot_reproduce_are_kept_verbatim() {
        let origin = RequestHeader::build("GET", b"/deals?id=7", None).unwrap();
        assert_eq!(uri_target(&origin), origin.raw_path());
        let absolute =
            RequestHeader::build("GET", b"http://crm.contoso.example/deals", None).unwrap();
        assert_ne!(uri_target(&absolute), absolute.raw_path());
    }
}
