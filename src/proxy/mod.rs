//! The pingora glue: one `ProxyHttp` whose phases each hand off to a domain module. The only
//! module that imports pingora.

mod admin;
mod backchannel;
mod ctx;
mod documents;
pub mod pages;
mod phases;
pub mod reload;
mod request;
mod routes;
pub mod service;
mod signin;

pub use ctx::RequestCtx;

use ctx::RequestIds;
use request::*;

use crate::auth::return_url;
use crate::clock::Clock;
use crate::config::{Config, Tenant};
use crate::cookie_header;
use crate::directory::Directories;
use crate::error::GatewayError;
use crate::headers::{Caller, HeaderNames, OwnedHeaders, SessionHeaders, UpstreamHeaders};
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::session::{LiveSession, SessionManager};
use crate::signin::{Recheck, SignInFlow, SignInParts};
use crate::store::Store;
use crate::upstream_jwt::UpstreamJwtSigner;
use bytes::Bytes;
use http::header;
use ipnet::IpNet;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// The sessions the gateway manages, with their prepared upstream headers.
pub type Sessions = SessionManager<SessionHeaders>;

/// A tenant and the upstream peer its requests go to.
pub struct TenantRoute {
    /// The tenant's configuration.
    pub tenant: Tenant,
    peer: HttpPeer,
    /// Metric handles resolved once: a label lookup per request costs a hash and a lock.
    latency: prometheus::Histogram,
    common_statuses: Vec<(u16, prometheus::IntCounter)>,
    /// The tenant header value, shared by every session of the tenant.
    tenant_header: http::HeaderValue,
}

impl TenantRoute {
    /// Public paths skip sign-in, but only when the path is plainly what it looks like: a dot
    /// segment, backslash or encoded separator could make the upstream resolve it to a
    /// protected page, so such paths always require a session.
    fn is_public(&self, path: &str) -> bool {
        self.tenant
            .public
            .iter()
            .any(|p| path.starts_with(p.as_str()))
            && plain_path(path)
    }

    fn is_api(&self, path: &str) -> bool {
        self.tenant.api.iter().any(|p| path.starts_with(p.as_str()))
    }
}

fn plain_path(path: &str) -> bool {
    let lower = path.as_bytes();
    !path.contains("/.")
        && !path.contains('\\')
        && !path.contains("//")
        && !lower.windows(3).any(|w| {
            w[0] == b'%'
                && matches!(
                    (w[1], w[2].to_ascii_lowercase()),
                    (b'2', b'e') | (b'2', b'f') | (b'5', b'c')
                )
        })
}

/// The gateway service.
pub struct Gateway {
    /// Host → route. Only read after start-up, so a fast seeded hash is as safe as SipHash
    /// here (flooding needs inserts) and cheaper on every request.
    routes: HashMap<String, Arc<TenantRoute>, foldhash::fast::RandomState>,
    sessions: Arc<Sessions>,
    signer: Arc<UpstreamJwtSigner>,
    upstream_headers: UpstreamHeaders,
    cookies: cookie_header::CookieNames,
    trusted_proxies: Vec<IpNet>,
    metrics_allow: Vec<IpNet>,
    max_form_body: usize,
    form_body_timeout: std::time::Duration,
    sign_in: SignInFlow<SessionHeaders>,
    sign_in_starts: crate::rate_limit::RateLimit,
    sign_in_completions: crate::rate_limit::RateLimit,
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    providers: Arc<Providers>,
    directories: Arc<Directories>,
    /// The owned header prefix, lower case (`x-vestibule-`).
    header_prefix: String,
    document_tokens: Arc<crate::tokens::DocumentTokens>,
    document_grants: Arc<crate::tokens::DocumentGrants>,
    /// Shutting down or upgrading (see `Parts::draining`).
    draining: Arc<std::sync::atomic::AtomicBool>,
    /// What it was built from (the background jobs read the current tenants from here).
    config: Arc<Config>,
}

/// The service pingora runs: the current gateway, replaced whole by a configuration reload.
/// A request takes the gateway current when it arrives and finishes on it, so a reload never
/// mixes two configurations within one request. Clones share the same current gateway
/// (pingora holds one, the reload and background jobs others).
#[derive(Clone)]
pub struct Live {
    current: Arc<arc_swap::ArcSwap<Gateway>>,
    /// Request ids outlive reloads: one sequence per process.
    request_ids: Arc<RequestIds>,
}

impl Live {
    /// Serves `gateway` until `replace`.
    pub fn new(gateway: Gateway) -> Self {
        Self {
            current: Arc::new(arc_swap::ArcSwap::from_pointee(gateway)),
            request_ids: Arc::new(RequestIds::new()),
        }
    }

    /// The gateway new requests run on.
    pub fn current(&self) -> Arc<Gateway> {
        self.current.load_full()
    }

    /// New requests run on `gateway` from now on; requests under way finish on the old one,
    /// which is dropped (its pools and caches with it) when the last of them ends.
    pub fn replace(&self, gateway: Gateway) {
        self.current.store(Arc::new(gateway));
    }
}

/// What the gateway is assembled from (besides configuration).
pub struct Parts {
    /// Session manager.
    pub sessions: Arc<Sessions>,
    /// Assertion signer.
    pub signer: Arc<UpstreamJwtSigner>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Durable store.
    pub store: Arc<dyn Store>,
    /// Clock.
    pub clock: Arc<dyn Clock>,
    /// Identity providers.
    pub providers: Arc<Providers>,
    /// Every tenant's user directory.
    pub directories: Arc<Directories>,
    /// Document tokens (read, refreshed, classified).
    pub document_tokens: Arc<crate::tokens::DocumentTokens>,
    /// Document grants (the code grant after sign-in).
    pub document_grants: Arc<crate::tokens::DocumentGrants>,
    /// Set when the process is shutting down or handing its sockets to a new process: every
    /// response then ends its connection (`Connection: close`), so keep-alive clients
    /// reconnect — to the new process — instead of meeting a closed idle connection. One flag
    /// for the process, shared by the gateways reloads build.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

/// Why the gateway could not be assembled from a valid configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An upstream host name did not resolve.
    #[error("tenants `{tenant}` upstream {address}: {message}")]
    Upstream {
        /// Tenant name.
        tenant: String,
        /// Upstream address as configured.
        address: String,
        /// What failed.
        message: String,
    },
}

impl Gateway {
    /// Assembles the gateway from validated parts.
    pub fn new(config: Arc<Config>, parts: Parts) -> Result<Self, BuildError> {
        let mut routes = HashMap::default();
        for tenant in &config.tenants {
            let name = tenant.name.as_str();
            let route = Arc::new(TenantRoute {
                peer: service::upstream_peer(tenant)?,
                latency: parts.metrics.upstream_latency.with_label_values(&[name]),
                common_statuses: [200u16, 302, 304, 401]
                    .into_iter()
                    .map(|code| {
                        let label = http::StatusCode::from_u16(code).expect("valid status");
                        (
                            code,
                            parts
                                .metrics
                                .requests
                                .with_label_values(&[name, label.as_str()]),
                        )
                    })
                    .collect(),
                tenant_header: http::HeaderValue::from_str(name)
                    .expect("validated: tenant names are header-safe tokens"),
                tenant: tenant.clone(),
            });
            for host in &tenant.hosts {
                routes.insert(host.clone(), route.clone());
            }
        }
        let Parts {
            sessions,
            signer,
            metrics,
            store,
            clock,
            providers,
            directories,
            document_tokens,
            document_grants,
            draining,
        } = parts;
        let sign_in = SignInFlow::new(SignInParts {
            providers: providers.clone(),
            sessions: sessions.clone(),
            store: store.clone(),
            directories: directories.clone(),
            pool: crate::sign_in_pool::SignInPool::new(
                config.proxy.sign_in_workers,
                config.proxy.sign_in_queue,
            ),
            clock: clock.clone(),
            metrics: metrics.clone(),
            max_form_body: config.proxy.max_form_body,
        });
        Ok(Self {
            routes,
            sessions,
            signer,
            upstream_headers: UpstreamHeaders::new(
                OwnedHeaders::new(&config.headers),
                HeaderNames::new(&config.headers.prefix),
                &config.session.cookie,
            ),
            cookies: cookie_header::CookieNames::new(&config.session.cookie),
            trusted_proxies: config.proxy.trusted_proxies.clone(),
            metrics_allow: config.metrics.allow.clone(),
            max_form_body: config.proxy.max_form_body,
            form_body_timeout: config.proxy.form_body_timeout,
            sign_in,
            sign_in_starts: crate::rate_limit::RateLimit::new(
                config.proxy.sign_in_starts_per_minute,
            ),
            sign_in_completions: crate::rate_limit::RateLimit::new(
                config.proxy.sign_in_completions_per_minute,
            ),
            metrics,
            store,
            clock,
            providers,
            directories,
            header_prefix: config.headers.prefix.clone(),
            document_tokens,
            document_grants,
            draining,
            config,
        })
    }

    /// The configuration this gateway was built from.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The session manager.
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// The identity providers.
    pub fn providers(&self) -> &Arc<Providers> {
        &self.providers
    }

    /// The document tokens.
    pub fn document_tokens(&self) -> &Arc<crate::tokens::DocumentTokens> {
        &self.document_tokens
    }

    /// Ends the connection after this response while draining.
    fn close_if_draining(&self, downstream: &mut Session) {
        if self.draining.load(std::sync::atomic::Ordering::Relaxed) {
            downstream.set_keepalive(None);
        }
    }

    /// The tenant the request's Host names (exact, case-insensitive, port ignored). A malformed Host is refused outright: every
    /// origin built from it (redirects, `wreply`, `X-Forwarded-Host`) must name this site.
    fn route(&self, req: &RequestHeader) -> Result<Arc<TenantRoute>, GatewayError> {
        let host = match authority(req) {
            Err(()) => return Err(GatewayError::BadHost),
            Ok(None) => return Err(GatewayError::UnknownHost),
            Ok(Some(a)) => host_of(a),
        };
        let found = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.routes.get(&host.to_ascii_lowercase())
        } else {
            self.routes.get(host)
        };
        found.cloned().ok_or(GatewayError::UnknownHost)
    }

    /// The live session the request's one session cookie names (`__Host-` over HTTPS). Two
    /// session cookies count as none: one of them was planted.
    async fn load_session(
        &self,
        req: &RequestHeader,
        tenant: &str,
        secure: bool,
    ) -> Result<Option<Arc<LiveSession<SessionHeaders>>>, crate::store::StoreError> {
        match self.one_cookie(req, self.cookies.session(secure)) {
            Some(value) => self.sessions.load(tenant, value).await,
            None => Ok(None),
        }
    }

    /// The value of cookie `name` when the request carries exactly one of that name.
    fn one_cookie<'r>(&self, req: &'r RequestHeader, name: &'r str) -> Option<&'r str> {
        let values = req.headers.get_all(header::COOKIE).iter();
        cookie_header::single(values.map(|v| v.as_bytes()), name).unwrap_or_else(|count| {
            tracing::warn!(
                cookie = name,
                count,
                "several cookies of one name (one was planted?): none is used"
            );
            None
        })
    }

    /// Whether the browser reached us over HTTPS: our TLS listener, or a trusted proxy's
    /// `X-Forwarded-Proto: https`. Cheap: decides the cookie names on every request.
    fn secure_request(&self, downstream: &Session, ctx: &RequestCtx) -> bool {
        ctx.tls
            || (self.trusted_peer(Self::peer_ip(downstream))
                && downstream
                    .req_header()
                    .headers
                    .get("x-forwarded-proto")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")))
    }

    fn peer_ip(downstream: &Session) -> Option<IpAddr> {
        downstream
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
    }

    /// The client's address after `proxy.trusted_proxies` (see `headers::client`).
    fn client_ip(&self, downstream: &Session) -> Option<IpAddr> {
        let peer = Self::peer_ip(downstream)?;
        let chain = downstream.req_header().headers.get_all("x-forwarded-for");
        crate::headers::client::client_address(
            peer,
            chain.iter().map(|v| v.as_bytes()),
            &self.trusted_proxies,
        )
    }

    fn trusted_peer(&self, ip: Option<IpAddr>) -> bool {
        ip.is_some_and(|ip| self.trusted_proxies.iter().any(|n| n.contains(&ip)))
    }

    /// Writes a complete response and reports that the request is handled.
    async fn respond(
        &self,
        downstream: &mut Session,
        status: u16,
        content_type: &str,
        body: Bytes,
        extra: &[(header::HeaderName, String)],
    ) -> Result<bool> {
        self.close_if_draining(downstream);
        let mut resp = ResponseHeader::build(status, Some(6 + extra.len()))?;
        resp.insert_header(header::CONTENT_TYPE, content_type)?;
        resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
        resp.insert_header(header::CACHE_CONTROL, "no-store")?;
        resp.insert_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")?;
        resp.insert_header(header::REFERRER_POLICY, "no-referrer")?;
        for (name, value) in extra {
            resp.append_header(name.clone(), value.as_str())?;
        }
        let head_only = downstream.req_header().method == http::Method::HEAD;
        downstream
            .write_response_header(Box::new(resp), head_only)
            .await?;
        if !head_only {
            downstream.write_response_body(Some(body), true).await?;
        }
        Ok(true)
    }

    /// Answers with the page for `error`.
    async fn fail(
        &self,
        downstream: &mut Session,
        ctx: &RequestCtx,
        error: GatewayError,
    ) -> Result<bool> {
        let json = ctx.wants_json || prefers_json(downstream.req_header());
        let (content_type, body) = pages::error_body(&error, ctx, json);
        let tenant = ctx.route.as_ref().map_or("-", |r| r.tenant.name.as_str());
        self.metrics
            .rejections
            .with_label_values(&[tenant, error.code()])
            .inc();
        let retry = error
            .retry_after()
            .map(|s| (header::RETRY_AFTER, s.to_string()));
        self.respond(
            downstream,
            error.status(),
            content_type,
            body,
            retry.as_slice(),
        )
        .await
    }

    /// No valid session: browsers are sent to sign in, API callers get 401 JSON.
    async fn sign_in_required(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let req = downstream.req_header();
        let route = ctx.route.clone().expect("routed before session check");
        let navigation = matches!(req.method, http::Method::GET | http::Method::HEAD)
            && accepts_html(req)
            && !is_xhr(req);
        if route.is_api(req.uri.path()) || prefers_json(req) || !navigation {
            ctx.wants_json = route.is_api(req.uri.path());
            return self
                .fail(downstream, ctx, GatewayError::SignInRequired)
                .await;
        }
        let original = req
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        let host = request_host(req).unwrap_or_default().to_ascii_lowercase();
        let target = return_url::validate(&original, &host).unwrap_or_else(|| "/".into());
        let location = format!(
            "/_vestibule/login?rd={}",
            url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
        );
        self.metrics
            .rejections
            .with_label_values(&[route.tenant.name.as_str(), "no_session"])
            .inc();
        self.redirect(downstream, ctx, location, "Sign in", Vec::new())
            .await
    }

    /// A 302 with a small page carrying the same link, for clients that do not follow.
    async fn redirect(
        &self,
        downstream: &mut Session,
        ctx: &RequestCtx,
        location: String,
        link_text: &str,
        mut extra: Vec<(header::HeaderName, String)>,
    ) -> Result<bool> {
        let body = pages::page(
            "Redirecting",
            &format!(
                "<p><a href=\"{}\">{}</a></p>",
                pages::escape(&location),
                pages::escape(link_text)
            ),
            ctx,
        );
        extra.insert(0, (header::LOCATION, location));
        self.respond(downstream, 302, pages::HTML, body, &extra)
            .await
    }

    /// The document-token headers for a signed-in user's request on a document path.
    async fn document_headers(
        &self,
        tenant: &str,
        documents: &crate::config::DocumentsConfig,
        prepared: &SessionHeaders,
    ) -> crate::tokens::inject::Injected {
        use crate::tokens::inject::Lookup;
        let lookups = if documents.kind == crate::config::DocumentProviderKind::Microsoft
            && !prepared.microsoft_account()
        {
            vec![Lookup::UnsupportedSignIn; documents.resources.len()]
        } else {
            self.document_tokens
                .current(tenant, prepared.token_owners(), documents)
                .await
        };
        crate::tokens::inject::headers(&self.header_prefix, documents, &lookups, self.clock.now())
    }

    /// Rewrites the upstream request's headers (see `headers::upstream`). The header map is
    /// taken out of pingora's `RequestHeader` and edited directly: pingora's own insert
    /// re-parses and allocates every header name and keeps a second, case-preserving map,
    /// which cost more than all of Vestibule's other per-request work together. Header names
    /// therefore reach the upstream in lower case, as they already do for every HTTP/2 client.
    fn prepare_upstream_request(
        &self,
        req: &mut RequestHeader,
        ctx: &RequestCtx,
        peer: Option<IpAddr>,
    ) -> Result<()> {
        // A target the URI cannot reproduce (absolute-form, non-UTF-8) is kept verbatim.
        let verbatim_target = (!req.raw_path_is_utf8() || req.raw_path() != uri_target(req))
            .then(|| req.raw_path().to_vec());
        let send_end_stream = req.send_end_stream();
        let taken = std::mem::replace(req, RequestHeader::from(empty_parts()));
        let mut parts = http::request::Parts::from(taken);

        let signed_in = match (&ctx.session, &ctx.route) {
            (Some(s), Some(route)) => Some((&s.prepared, &route.tenant_header)),
            _ => None,
        };
        self.upstream_headers.apply(
            &mut parts.headers,
            &Caller {
                peer,
                peer_is_trusted_proxy: self.trusted_peer(peer),
                tls: ctx.tls,
                authority: parts.uri.authority().map(|a| a.as_str()),
                request_id: &ctx.request_id,
                session: signed_in,
            },
        );

        for (name, value) in &ctx.document_headers {
            parts.headers.append(name.clone(), value.clone());
        }
        *req = RequestHeader::from(parts);
        if let Some(target) = verbatim_target {
            req.set_raw_path(&target)?;
        }
        if let Some(end) = send_end_stream {
            req.set_send_end_stream(end);
        }
        Ok(())
    }
}
