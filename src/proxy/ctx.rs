//! Per-request facts, filled in as the request moves through the proxy phases.

use super::{Gateway, TenantRoute};
use crate::headers::SessionHeaders;
use crate::session::LiveSession;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What the gateway knows about one request.
#[derive(Default)]
pub struct RequestCtx {
    /// The gateway (configuration) current when the request arrived: the request finishes on
    /// it even if a reload replaces it meanwhile. Always set by `new_ctx`.
    pub(super) gateway: Option<Arc<Gateway>>,
    /// Correlates the response, the log line and the upstream request.
    pub request_id: String,
    /// The tenant the Host header routed to.
    pub route: Option<Arc<TenantRoute>>,
    /// The caller's session, when signed in.
    pub session: Option<Arc<LiveSession<SessionHeaders>>>,
    /// Whether the client connected over TLS.
    pub tls: bool,
    /// When the request was sent upstream.
    pub upstream_sent: Option<Instant>,
    /// Document-token headers for this request (document paths of a tenant with documents).
    pub document_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Answer errors as JSON whatever the request prefers (API paths). Otherwise the
    /// request's `Accept` and `X-Requested-With` decide when an error page is written.
    pub wants_json: bool,
}

impl RequestCtx {
    /// The gateway this request runs on (a counted reference, so the phase may borrow the
    /// context mutably beside it).
    pub(super) fn gateway(&self) -> Arc<Gateway> {
        self.gateway
            .clone()
            .expect("new_ctx sets the gateway of every request")
    }
}

/// Process-unique request ids: a random per-process prefix and a counter, so ids from several
/// instances don't collide in shared logs.
pub(super) struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    pub(super) fn new() -> Self {
        Self {
            prefix: rand::random(),
            next: AtomicU64::new(1),
        }
    }

    /// 16 lower-case hex digits. Written out by hand: `format!` cost more than the rest of
    /// the request-id work together.
    pub(super) fn next(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let count = self.next.fetch_add(1, Ordering::Relaxed) as u32;
        let mut id = String::with_capacity(16);
        for byte in self
            .prefix
            .to_be_bytes()
            .into_iter()
            .chain(count.to_be_bytes())
        {
            id.push(HEX[usize::from(byte >> 4)].into());
            id.push(HEX[usize::from(byte & 0xf)].into());
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_16_hex_digits_with_a_shared_prefix() {
        let ids = RequestIds::new();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert_eq!(id.len(), 16);
            assert!(id
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        }
        assert_eq!(a[..8], b[..8]);
        assert_eq!(&a[8..], format!("{:08x}", 1).as_str());
    }
}
