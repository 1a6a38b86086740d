//! The headers the upstream receives: every client copy of a header Vestibule owns removed
//! (and, from peers that are not trusted proxies, every forwarding header), Vestibule's own
//! session cookie taken out of `Cookie`, then the forwarding, request-id and identity headers
//! set. Works on a plain `http::HeaderMap`, so it runs on every request without parsing a
//! header name or growing the map more than once.

use super::plan::{HeaderNames, SessionHeaders};
use super::sanitize::OwnedHeaders;
use crate::cookie_header;
use http::header::{COOKIE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// What the upstream request says about the caller and its connection.
pub struct Caller<'a> {
    /// The TCP peer, when known.
    pub peer: Option<IpAddr>,
    /// Whether the peer is a configured trusted proxy (its forwarding headers are kept).
    pub peer_is_trusted_proxy: bool,
    /// Whether the client connected over TLS.
    pub tls: bool,
    /// The request's authority when no `Host` header carries it (HTTP/2).
    pub authority: Option<&'a str>,
    /// Correlates the upstream request with Vestibule's logs and pages.
    pub request_id: &'a str,
    /// The caller's session headers, when signed in, and the tenant header value (one per
    /// tenant, not per session).
    pub session: Option<(&'a SessionHeaders, &'a HeaderValue)>,
}

/// Rewrites request headers for the upstream.
#[derive(Debug, Clone)]
pub struct UpstreamHeaders {
    owned: OwnedHeaders,
    names: HeaderNames,
    /// The configured cookie name: every one of our cookie names contains it.
    cookie_base: String,
    /// Session, binding and sign-out cookie names, plain and prefixed.
    cookie_names: Vec<String>,
}

impl UpstreamHeaders {
    /// From validated configuration pieces.
    pub fn new(owned: OwnedHeaders, names: HeaderNames, cookie_base: &str) -> Self {
        Self {
            owned,
            names,
            cookie_base: cookie_base.to_owned(),
            cookie_names: cookie_header::CookieNames::new(cookie_base)
                .all()
                .map(str::to_owned)
                .to_vec(),
        }
    }

    /// Applies the rewrite to `headers`.
    pub fn apply(&self, headers: &mut HeaderMap, caller: &Caller<'_>) {
        let trusted = caller.peer_is_trusted_proxy;
        for name in self.owned.to_remove(headers, !trusted) {
            headers.remove(&name);
        }
        self.strip_session_cookie(headers);

        // One growth for everything added below instead of one per insertion.
        headers.reserve(10);

        if let Some(ip) = caller.peer {
            let chain = trusted
                .then(|| headers.get(&X_FORWARDED_FOR))
                .flatten()
                .and_then(|v| v.to_str().ok());
            headers.insert(X_FORWARDED_FOR, forwarded_for(chain, ip));
        }
        if !(trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
            let proto = if caller.tls { "https" } else { "http" };
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        }
        if !(trusted && headers.contains_key(&X_FORWARDED_HOST)) {
            let host = headers
                .get(HOST)
                .cloned()
                .or_else(|| caller.authority.and_then(|a| HeaderValue::from_str(a).ok()));
            if let Some(host) = host.filter(|h| !h.is_empty()) {
                headers.insert(X_FORWARDED_HOST, host);
            }
        }
        if let Ok(id) = HeaderValue::from_str(caller.request_id) {
            headers.insert(self.names.request_id.clone(), id);
        }
        if let Some((session, tenant)) = caller.session {
            for (name, value) in session.identity_headers(&self.names) {
                headers.insert(name.clone(), value);
            }
            headers.insert(self.names.tenant.clone(), tenant.clone());
            if let Some(jwt) = session.assertion() {
                headers.insert(self.names.assertion.clone(), jwt.clone());
            }
        }
    }

    /// The upstream never sees Vestibule's own cookies: the session one is a bearer handle.
    fn strip_session_cookie(&self, headers: &mut HeaderMap) {
        let needle = self.cookie_base.as_bytes();
        let ours = |v: &HeaderValue| v.as_bytes().windows(needle.len()).any(|w| w == needle);
        if !headers.get_all(COOKIE).iter().any(ours) {
            return;
        }
        // Values that do not carry our cookie pass unchanged; the rest lose just our pair
        // (as bytes: a value that is not text must not pass through whole). What remains is
        // a subset of a valid value joined by "; ", so it is valid too.
        let mut kept: Vec<HeaderValue> = Vec::new();
        for value in headers.get_all(COOKIE) {
            if !ours(value) {
                kept.push(value.clone());
            } else if let Some(rest) = cookie_header::without(value.as_bytes(), &self.cookie_names)
            {
                kept.extend(HeaderValue::from_bytes(&rest).ok());
            }
        }
        headers.remove(COOKIE);
        for value in kept {
            headers.append(COOKIE, value);
        }
    }
}

/// The `X-Forwarded-For` value: the trusted chain plus the peer, or the peer alone.
pub fn forwarded_for(chain: Option<&str>, peer: IpAddr) -> HeaderValue {
    match chain.map(str::trim).filter(|c| !c.is_empty()) {
        Some(chain) => HeaderValue::from_str(&format!("{chain}, {peer}")),
        None => match peer {
            IpAddr::V4(v4) => {
                let (text, len) = ipv4_text(v4.octets());
                HeaderValue::from_bytes(&text[..len])
            }
            IpAddr::V6(_) => HeaderValue::from_str(&peer.to_string()),
        },
    }
    .expect("an address and a visible-ASCII chain make a valid value")
}

/// Dotted-quad text, on the stack, without the formatting machinery `Display` goes through
/// (a tenth of the gateway's own per-request work when it was measured).
fn ipv4_text(octets: [u8; 4]) -> ([u8; 15], usize) {
    let mut out = [0u8; 15];
    let mut len = 0;
    let mut push = |b: u8| {
        out[len] = b;
        len += 1;
    };
    for (i, octet) in octets.into_iter().enumerate() {
        if i > 0 {
            push(b'.');
        }
        if octet >= 100 {
            push(b'0' + octet / 100);
        }
        if octet >= 10 {
            push(b'0' + octet / 10 % 10);
        }
        push(b'0' + octet % 10);
    }
    (out, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HeadersConfig;
    use crate::identity::Identity;

    fn upstream() -> UpstreamHeaders {
        let config = HeadersConfig {
            prefix: "x-vestibule-".into(),
            strip: vec!["remote-user".into()],
        };
        UpstreamHeaders::new(
            OwnedHeaders::new(&config),
            HeaderNames::new(&config.prefix),
            "vestibule",
        )
    }

    fn session() -> SessionHeaders {
        let identity = Identity {
            provider: "azure".into(),
            issuer: "https://sts.windows.net/t/".into(),
            subject: "s".into(),
            user: "alice@contoso.example".into(),
            email: None,
            name: None,
            idp_tenant: None,
            claims: Default::default(),
            crm: None,
            directory_key: None,
        };
        let signer = crate::upstream_jwt::dev_signer();
        SessionHeaders::prepare(&identity, "contoso", &signer, 1_000)
    }

    fn client_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("host", "crm.contoso.example:8443"),
            ("cookie", "theme=dark; vestibule=v1.abc; lang=en"),
            ("cookie", "other=1"),
            ("x-vestibule-user", "mallory"),
            ("x_vestibule_assertion", "forged"),
            ("remote_user", "mallory"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("accept", "text/html"),
        ] {
            h.append(n, v.parse().unwrap());
        }
        h
    }

    fn values<'a>(h: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn untrusted_peer_loses_forgeries_and_gets_identity() {
        let session = session();
        let mut h = client_headers();
        upstream().apply(
            &mut h,
            &Caller {
                peer: Some("10.1.2.3".parse().unwrap()),
                peer_is_trusted_proxy: false,
                tls: false,
                authority: None,
                request_id: "0123456789abcdef",
                session: Some((&session, &HeaderValue::from_static("contoso"))),
            },
        );
        assert_eq!(values(&h, "x-vestibule-user"), ["alice@contoso.example"]);
        assert_eq!(
            values(&h, "x-vestibule-assertion"),
            [session.assertion().unwrap().to_str().unwrap()]
        );
        assert_eq!(values(&h, "x-vestibule-tenant"), ["contoso"]);
        assert!(h.get("x_vestibule_assertion").is_none());
        assert!(h.get("remote_user").is_none());
        assert_eq!(values(&h, "x-forwarded-for"), ["10.1.2.3"]);
        assert_eq!(values(&h, "x-forwarded-proto"), ["http"]);
        assert_eq!(values(&h, "x-forwarded-host"), ["crm.contoso.example:8443"]);
        assert_eq!(values(&h, "cookie"), ["theme=dark; lang=en", "other=1"]);
        assert_eq!(values(&h, "x-vestibule-request-id"), ["0123456789abcdef"]);
        assert_eq!(values(&h, "accept"), ["text/html"]);
    }

    #[test]
    fn trusted_proxy_keeps_its_forwarding_headers_but_not_identity() {
        let mut h = client_headers();
        upstream().apply(
            &mut h,
            &Caller {
                peer: Some("::1".parse().unwrap()),
                peer_is_trusted_proxy: true,
                tls: true,
                authority: None,
                request_id: "r",
                session: None,
            },
        );
        assert_eq!(values(&h, "x-forwarded-for"), ["203.0.113.9, ::1"]);
        assert_eq!(values(&h, "x-forwarded-proto"), ["https"]);
        assert_eq!(values(&h, "x-forwarded-host"), ["evil.example"]);
        assert!(h.get("x-vestibule-user").is_none());
        assert!(h.get("x-vestibule-assertion").is_none());
    }

    #[test]
    fn a_cookie_header_with_only_our_cookie_disappears() {
        let mut h = HeaderMap::new();
        h.append("cookie", "vestibule=v1.abc".parse().unwrap());
        h.append("authority-test", "x".parse().unwrap());
        upstream().apply(
            &mut h,
            &Caller {
                peer: None,
                peer_is_trusted_proxy: false,
                tls: true,
                authority: Some("crm.contoso.example"),
                request_id: "r",
                session: None,
            },
        );
        assert!(h.get("cookie").is_none());
        assert!(h.get("x-forwarded-for").is_none());
        assert_eq!(values(&h, "x-forwarded-host"), ["crm.contoso.example"]);
    }

    #[test]
    fn ipv4_text_matches_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "1.99.100.9",
        ] {
            let addr: std::net::Ipv4Addr = ip.parse().unwrap();
            let (text, len) = ipv4_text(addr.octets());
            assert_eq!(&text[..len], ip.as_bytes());
        }
        let chain = forwarded_for(Some(" "), "10.0.0.5".parse().unwrap());
        assert_eq!(chain, "10.0.0.5");
    }
}
