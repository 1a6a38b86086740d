//! Per-request facts, filled in as the request moves through the proxy phases.

use super::TenantRoute;
use crate::headers::SessionHeaders;
use crate::session::LiveSession;
use std::sync::Arc;
use std::time::Instant;

/// What the gateway knows about one request.
#[derive(Default)]
pub struct RequestCtx {
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
    /// Answer errors as JSON whatever the request prefers (API paths). Otherwise the
    /// request's `Accept` and `X-Requested-With` decide when an error page is written.
    pub wants_json: bool,
}
