//! Sign-in and sign-out over the wire: the login page, the WS-Federation and OpenID Connect
//! callbacks, local and federated sign-out. The sign-in itself is `signin::SignInFlow`; this
//! file parses requests for it (cookies, query, form) and writes its answers (redirects,
//! cookies, pages).

use super::{pages, request_host, request_host_with_port, Gateway, RequestCtx, TenantRoute};
use crate::auth::oidc::OidcError;
use crate::auth::return_url;
use crate::auth::wsfed::{protocol, WsFedError};
use crate::cookie_header;
use crate::error::GatewayError;
use crate::providers::RuntimeProvider;
use crate::signin::{
    BeginRequest, Begun, Finished, OidcResponse, SignInError, Verified, WsFedResponse,
    LOGIN_TTL_SECS,
};
use bytes::Bytes;
use http::{header, Method};
use pingora::prelude::*;
use pingora::proxy::Session;
use std::sync::Arc;

/// How long a rate-limited sign-in request waits for its 429.
const RATE_LIMITED_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

impl Gateway {
    /// `https://host[:port]` as the browser sees this gateway.
    pub(super) fn origin(&self, downstream: &Session, ctx: &RequestCtx) -> String {
        let scheme = if self.secure_request(downstream, ctx) {
            "https"
        } else {
            "http"
        };
        format!(
            "{scheme}://{}",
            request_host_with_port(downstream.req_header())
                .unwrap_or_default()
                .to_ascii_lowercase()
        )
    }

    /// Takes one sign-in start or completion from the client's allowance (`limit`); the
    /// error to answer with when it is spent. That answer comes after a pause: a refusal that
    /// came at once would only let a flooding client loop faster (measured: 4 connections
    /// made ~9,000 refused requests a second), while the pause costs a timer, not CPU.
    async fn within_limit(
        &self,
        downstream: &Session,
        limit: &crate::rate_limit::RateLimit,
    ) -> std::result::Result<(), GatewayError> {
        let client = self
            .client_ip(downstream)
            .or_else(|| Self::peer_ip(downstream));
        match client {
            Some(ip) if !limit.allow(ip, std::time::Instant::now()) => {
                tokio::time::sleep(RATE_LIMITED_PAUSE).await;
                Err(GatewayError::RateLimited {
                    retry_after: limit.retry_after(),
                })
            }
            _ => Ok(()),
        }
    }

    /// How the browser reached us, for cookie names and attributes.
    /// `secure_cookies`: the browser treats the origin as secure, HTTPS or a loopback host
    /// over plain HTTP (`localhost`, `*.localhost`, 127.0.0.0/8, `[::1]`), where browsers
    /// accept `Secure` cookies. It decides the `Secure` attribute, and whether a sign-in can
    /// work at all: its binding cookie must be `SameSite=None`, kept only if `Secure`.
    pub(super) fn transport(&self, downstream: &Session, ctx: &RequestCtx) -> Transport {
        let https = self.secure_request(downstream, ctx);
        Transport {
            https,
            secure_cookies: https
                || request_host(downstream.req_header()).is_some_and(super::is_loopback_host),
        }
    }

    /// The request's one login binding cookie, if it carries exactly one.
    pub(super) fn binding_value(&self, downstream: &Session, ctx: &RequestCtx) -> Option<String> {
        let name = self.cookies.binding(self.transport(downstream, ctx).https);
        self.one_cookie(downstream.req_header(), name)
            .map(str::to_owned)
    }

    /// The binding cookie travels on the provider's cross-site POST back to us, so it needs
    /// `SameSite=None`, which browsers keep only with `Secure`: over HTTPS a `__Host-` cookie
    /// (which requires `Path=/`; the upstream never receives it), on a loopback host a
    /// `Secure` one. Elsewhere sign-in does not start (`login`), so none is set.
    pub(super) fn binding_cookie(&self, value: &str, max_age: u64, t: Transport) -> String {
        let name = self.cookies.binding(t.https);
        let path = if t.https { "/" } else { "/_vestibule/" };
        let secure = if t.secure_cookies { "; Secure" } else { "" };
        format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=None{secure}")
    }

    /// The tenant of a sign-in endpoint request, recorded in the context; `None` once the
    /// unknown-host page has been written.
    pub(super) async fn sign_in_route(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Arc<TenantRoute>>> {
        let route = match self.route(downstream.req_header()) {
            Ok(route) => route,
            Err(e) => {
                self.fail(downstream, ctx, e).await?;
                return Ok(None);
            }
        };
        ctx.route = Some(route.clone());
        Ok(Some(route))
    }

    /// `/_vestibule/login`: straight to the one provider, or to the one named by
    /// `?provider=`, or a page listing the tenant's providers. A signed-in user goes back.
    pub(super) async fn login(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let Some(route) = self.sign_in_route(downstream, ctx).await? else {
            return Ok(true);
        };
        let host = request_host(downstream.req_header())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let query: Vec<(String, String)> = downstream
            .req_header()
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let return_to = param("rd")
            .and_then(|rd| return_url::validate(&rd, &host))
            .unwrap_or_else(|| "/".into());
        let t = self.transport(downstream, ctx);
        if !t.secure_cookies {
            // The binding cookie could not survive the provider's cross-site POST: say why
            // now rather than fail at the end of a sign-in.
            return self
                .fail(downstream, ctx, GatewayError::HttpsRequired)
                .await;
        }
        if let Err(e) = self.within_limit(downstream, &self.sign_in_starts).await {
            return self.fail(downstream, ctx, e).await;
        }
        match self
            .load_session(downstream.req_header(), &route.tenant.name, t.https)
            .await
        {
            Ok(Some(_)) => {
                return self
                    .respond(
                        downstream,
                        302,
                        pages::HTML,
                        Bytes::new(),
                        &[(header::LOCATION, return_to)],
                    )
                    .await
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "session store unavailable");
                return self
                    .fail(downstream, ctx, GatewayError::StoreUnavailable)
                    .await;
            }
        }
        let existing = self.binding_value(downstream, ctx);
        let origin = self.origin(downstream, ctx);
        let begun = self
            .sign_in
            .begin(BeginRequest {
                tenant: &route.tenant,
                provider: param("provider").as_deref(),
                return_to: &return_to,
                binding: existing.as_deref(),
                origin: &origin,
            })
            .await;
        match begun {
            Ok(Begun::Redirect { location, binding }) => {
                let set = self.binding_cookie(&binding, LOGIN_TTL_SECS as u64, t);
                self.redirect(
                    downstream,
                    ctx,
                    location,
                    "Continue to sign-in",
                    vec![(header::SET_COOKIE, set)],
                )
                .await
            }
            Ok(Begun::ChooseProvider) => {
                self.provider_list(downstream, ctx, &route, &return_to)
                    .await
            }
            Err(e) => self.refuse_sign_in(downstream, ctx, &route, e).await,
        }
    }

    /// `/_vestibule/oidc/callback`: the provider's redirect after sign-in.
    pub(super) async fn oidc_callback(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let Some(route) = self.sign_in_route(downstream, ctx).await? else {
            return Ok(true);
        };
        if let Err(e) = self
            .within_limit(downstream, &self.sign_in_completions)
            .await
        {
            return self.fail(downstream, ctx, e).await;
        }
        let mut params: std::collections::HashMap<String, String> =
            std::collections::HashMap::new();
        for (k, v) in downstream
            .req_header()
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
        {
            if params.insert(k, v).is_some() {
                return self
                    .refuse_sign_in(downstream, ctx, &route, OidcError::BadState.into())
                    .await;
            }
        }
        let binding = self.binding_value(downstream, ctx);
        let redirect_uri = format!("{}/_vestibule/oidc/callback", self.origin(downstream, ctx));
        let verified = self
            .sign_in
            .complete_oidc(OidcResponse {
                tenant: &route.tenant,
                params: &params,
                binding: binding.as_deref(),
                redirect_uri: &redirect_uri,
            })
            .await;
        self.after_verification(downstream, ctx, &route, verified)
            .await
    }

    async fn provider_list(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
        route: &TenantRoute,
        return_to: &str,
    ) -> Result<bool> {
        let rd: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
        let items: String = route
            .tenant
            .sign_in
            .iter()
            .filter_map(|b| self.providers.get(&b.provider).map(|p| (b, p)))
            .map(|(b, p)| {
                let provider: String =
                    url::form_urlencoded::byte_serialize(b.provider.as_bytes()).collect();
                format!(
                    "<li><a href=\"/_vestibule/login?provider={}&amp;rd={}\">{}</a></li>",
                    pages::escape(&provider),
                    pages::escape(&rd),
                    pages::escape(p.display_name())
                )
            })
            .collect();
        let body = if items.is_empty() {
            "<p>No sign-in provider is configured for this site yet. Ask your administrator to add one.</p>".to_owned()
        } else {
            format!("<ul class=\"choices\">{items}</ul>")
        };
        let page = pages::page(&format!("Sign in to {}", route.tenant.name), &body, ctx);
        self.respond(downstream, 200, pages::HTML, page, &[]).await
    }

    /// `/_vestibule/wsfed`: the identity provider's POST after sign-in, or its sign-out cleanup.
    pub(super) async fn wsfed_endpoint(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let Some(route) = self.sign_in_route(downstream, ctx).await? else {
            return Ok(true);
        };
        let query_action = downstream.req_header().uri.query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "wa")
                .map(|(_, v)| v.into_owned())
        });
        if query_action.as_deref() == Some(protocol::SIGN_OUT_CLEANUP) {
            return self.sign_out_cleanup(downstream, ctx, &route).await;
        }
        if downstream.req_header().method != Method::POST {
            return self
                .fail(downstream, ctx, GatewayError::MethodNotAllowed)
                .await;
        }
        // Before the body is even read: the cheapest refusal comes first.
        if let Err(e) = self
            .within_limit(downstream, &self.sign_in_completions)
            .await
        {
            return self.fail(downstream, ctx, e).await;
        }
        let body = match self.read_form(downstream).await? {
            FormBody::Complete(body) => body,
            FormBody::TooLarge => {
                return self
                    .refuse_sign_in(downstream, ctx, &route, WsFedError::TooLarge.into())
                    .await
            }
            FormBody::TooSlow => {
                return self.fail(downstream, ctx, GatewayError::BodyTimeout).await;
            }
        };
        let form = match protocol::parse_form(&body) {
            Ok(f) => f,
            Err(e) => return self.refuse_sign_in(downstream, ctx, &route, e.into()).await,
        };
        if form.action == protocol::SIGN_OUT_CLEANUP {
            return self.sign_out_cleanup(downstream, ctx, &route).await;
        }
        if form.action != protocol::SIGN_IN {
            return self
                .refuse_sign_in(
                    downstream,
                    ctx,
                    &route,
                    WsFedError::BadForm("unexpected wa").into(),
                )
                .await;
        }
        let binding = self.binding_value(downstream, ctx);
        let verified = self
            .sign_in
            .complete_wsfed(WsFedResponse {
                tenant: &route.tenant,
                context: form.context.as_deref(),
                binding: binding.as_deref(),
                result: form.result,
            })
            .await;
        self.after_verification(downstream, ctx, &route, verified)
            .await
    }

    /// Records a one-time value (login state, assertion id) until `expires_at`: `true` the
    /// first time, `false` once spent; the store being down is a 503.
    pub(super) async fn spend(
        &self,
        ctx: &RequestCtx,
        kind: &str,
        key: &str,
        expires_at: i64,
    ) -> std::result::Result<bool, GatewayError> {
        self.store
            .remember_once(kind, key, expires_at, self.clock.now())
            .await
            .map_err(|e| {
                tracing::error!(request_id = %ctx.request_id, error = %e, "store unavailable during sign-in");
                GatewayError::SignInUnavailable
            })
    }

    /// The common end of every sign-in: directory admission, a fresh session, back to where
    /// the user was going.
    async fn after_verification(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
        route: &TenantRoute,
        verified: std::result::Result<Verified, SignInError>,
    ) -> Result<bool> {
        let finished = match verified {
            Ok(verified) => match self.sign_in.admit(&route.tenant, &verified).await {
                Ok(identity) => {
                    // A user without a usable document token continues into the grant,
                    // and lands on the page they asked for after it.
                    let grant_next = self.document_grants.needed(&route.tenant, &identity).await;
                    self.sign_in
                        .finish(&route.tenant, identity, verified.return_to)
                        .await
                        .map(|mut finished| {
                            if grant_next {
                                finished.return_to = format!(
                                    "/_vestibule/documents/connect?rd={}",
                                    url::form_urlencoded::byte_serialize(
                                        finished.return_to.as_bytes()
                                    )
                                    .collect::<String>()
                                );
                            }
                            finished
                        })
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match finished {
            Ok(finished) => self.signed_in(downstream, ctx, finished).await,
            Err(e) => self.refuse_sign_in(downstream, ctx, route, e).await,
        }
    }

    /// Sets the session cookie (and the sign-out one), clears the binding, and sends the
    /// browser back where it was going.
    async fn signed_in(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
        finished: Finished,
    ) -> Result<bool> {
        let t = self.transport(downstream, ctx);
        let max_age = self.sessions.config().absolute.as_secs();
        let session_name = self.cookies.session(t.https);
        let mut headers = vec![
            (header::LOCATION, finished.return_to),
            (
                header::SET_COOKIE,
                cookie_header::set_cookie(
                    session_name,
                    &finished.cookie_value,
                    max_age,
                    t.secure_cookies,
                ),
            ),
            (header::SET_COOKIE, self.binding_cookie("", 0, t)),
        ];
        if t.secure_cookies && finished.federated_sign_out {
            // For the identity provider's cross-site sign-out cleanup (see `CookieNames`).
            headers.push((
                header::SET_COOKIE,
                cookie_header::set_signout_cookie(
                    self.cookies.signout(t.https),
                    &finished.cookie_value,
                    max_age,
                ),
            ));
        }
        self.respond(downstream, 302, pages::HTML, Bytes::new(), &headers)
            .await
    }

    /// `Set-Cookie` values that delete the session cookie and the sign-out one.
    fn clear_session_cookies(&self, t: Transport) -> Vec<(header::HeaderName, String)> {
        let mut out = vec![(
            header::SET_COOKIE,
            cookie_header::clear_cookie(self.cookies.session(t.https), t.secure_cookies),
        )];
        if t.secure_cookies {
            out.push((
                header::SET_COOKIE,
                cookie_header::set_signout_cookie(self.cookies.signout(t.https), "", 0),
            ));
        }
        out
    }

    /// A refused sign-in: a clear page (chosen by `GatewayError::from`), a metric, nothing
    /// stored.
    async fn refuse_sign_in(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
        route: &TenantRoute,
        e: SignInError,
    ) -> Result<bool> {
        tracing::warn!(request_id = %ctx.request_id, tenant = %route.tenant.name, reason = e.reason(), error = %e, "sign-in refused");
        let error = GatewayError::from(e.clone());
        if error.code() != e.reason() {
            // The page's code is generic ("sign_in_unavailable"): count the cause too.
            self.metrics
                .rejections
                .with_label_values(&[route.tenant.name.as_str(), e.reason()])
                .inc();
        }
        self.fail(downstream, ctx, error).await
    }

    /// Reads a form body up to the configured size, within the configured time: a slow
    /// sender cannot hold a connection (and the memory of a half-read body) for long.
    pub(super) async fn read_form(&self, downstream: &mut Session) -> Result<FormBody> {
        let max = self.max_form_body;
        let read = async {
            let mut body = Vec::new();
            while let Some(chunk) = downstream.read_request_body().await? {
                if body.len() + chunk.len() > max {
                    return Ok(FormBody::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(FormBody::Complete(body))
        };
        match tokio::time::timeout(self.form_body_timeout, read).await {
            Ok(result) => result,
            Err(_) => Ok(FormBody::TooSlow),
        }
    }

    /// The identity provider ended its session: end ours, answer 200. Azure AD and ADFS call
    /// this from a cross-site iframe or image, where the browser withholds the `SameSite=Lax`
    /// session cookie; the `SameSite=None` sign-out cookie, sent only to this path, names the
    /// session then. It is read nowhere else.
    async fn sign_out_cleanup(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
        route: &TenantRoute,
    ) -> Result<bool> {
        let t = self.transport(downstream, ctx);
        let req = downstream.req_header();
        let handles: Vec<String> = [
            self.one_cookie(req, self.cookies.session(t.https)),
            t.secure_cookies
                .then(|| self.one_cookie(req, self.cookies.signout(t.https)))
                .flatten(),
        ]
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect();
        for handle in handles {
            match self.sessions.load(&route.tenant.name, &handle).await {
                Ok(Some(live)) => {
                    if let Err(e) = self.sessions.revoke(&live.id).await {
                        tracing::error!(request_id = %ctx.request_id, error = %e, "could not revoke session");
                        return self
                            .fail(downstream, ctx, GatewayError::StoreUnavailable)
                            .await;
                    }
                    tracing::info!(request_id = %ctx.request_id, tenant = %route.tenant.name, "session ended by the identity provider's sign-out cleanup");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(request_id = %ctx.request_id, error = %e, "session store unavailable");
                    return self
                        .fail(downstream, ctx, GatewayError::StoreUnavailable)
                        .await;
                }
            }
        }
        let body = pages::page("Signed out", "<p>You are signed out.</p>", ctx);
        let clear = self.clear_session_cookies(t);
        self.respond(downstream, 200, pages::HTML, body, &clear)
            .await
    }

    /// `/_vestibule/logout`: revoke server-side, clear the cookie, and sign out at the
    /// identity provider when the session came from one that supports it.
    /// Only a POST from this site acts: a GET (a link, an image, a cross-site navigation)
    /// gets a page with the sign-out button, so no other site can sign a user out.
    pub(super) async fn logout(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let Some(route) = self.sign_in_route(downstream, ctx).await? else {
            return Ok(true);
        };
        if downstream.req_header().method != Method::POST {
            let body = pages::page(
                "Sign out",
                "<p>Sign out of this site?</p><form method=\"post\" action=\"/_vestibule/logout\"><button type=\"submit\">Sign out</button></form>",
                ctx,
            );
            return self.respond(downstream, 200, pages::HTML, body, &[]).await;
        }
        if !self.same_origin(downstream, ctx) {
            tracing::warn!(request_id = %ctx.request_id, tenant = %route.tenant.name, "cross-site sign-out refused");
            return self
                .fail(downstream, ctx, GatewayError::CrossSiteRequest)
                .await;
        }
        let t = self.transport(downstream, ctx);
        let mut provider = None;
        let mut id_token_hint = None;
        match self
            .load_session(downstream.req_header(), &route.tenant.name, t.https)
            .await
        {
            Ok(Some(live)) => {
                // The provider and ID token hint are in the sealed record, not in memory.
                // Without them the sign-out stays local; the revocation below must happen
                // anyway.
                let identity = self
                    .sessions
                    .identity(&live.id, &route.tenant.name)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(request_id = %ctx.request_id, error = %e, "could not read the session record; signing out locally");
                        None
                    });
                if let Err(e) = self.sessions.revoke(&live.id).await {
                    tracing::error!(request_id = %ctx.request_id, error = %e, "could not revoke session");
                    return self
                        .fail(downstream, ctx, GatewayError::StoreUnavailable)
                        .await;
                }
                if let Some(identity) = identity {
                    id_token_hint = identity
                        .claims
                        .get("id_token")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned);
                    provider = Some(identity.provider);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "session store unavailable");
                return self
                    .fail(downstream, ctx, GatewayError::StoreUnavailable)
                    .await;
            }
        }
        let mut headers = self.clear_session_cookies(t);
        // The only post-logout target ever sent: our own signed-out page on this tenant's host.
        let signed_out = format!("{}/_vestibule/signed-out", self.origin(downstream, ctx));
        let location = match provider
            .as_deref()
            .and_then(|p| self.providers.get(p))
            .map(Arc::as_ref)
        {
            Some(RuntimeProvider::WsFed(ws)) => Some(protocol::sign_out_url(
                &ws.config.passive_endpoint,
                &ws.config.realm,
                &signed_out,
            )),
            Some(RuntimeProvider::Oidc(oidc)) => {
                oidc.end_session_url(id_token_hint.as_deref(), &signed_out)
            }
            None => None,
        };
        if let Some(location) = location {
            headers.push((header::LOCATION, location));
            return self
                .respond(downstream, 302, pages::HTML, Bytes::new(), &headers)
                .await;
        }
        let body = pages::page(
            "Signed out",
            "<p>You are signed out.</p><p><a href=\"/\">Sign in again</a></p>",
            ctx,
        );
        self.respond(downstream, 200, pages::HTML, body, &headers)
            .await
    }

    /// Whether a state-changing request comes from this site: `Sec-Fetch-Site: same-origin`
    /// (every current browser sends it), else an `Origin` equal to ours. A request with
    /// neither is refused: it cannot show where it comes from.
    pub(super) fn same_origin(&self, downstream: &Session, ctx: &RequestCtx) -> bool {
        let headers = &downstream.req_header().headers;
        if let Some(site) = headers.get("sec-fetch-site") {
            return site.as_bytes() == b"same-origin";
        }
        headers.get(header::ORIGIN).is_some_and(|o| {
            o.as_bytes()
                .eq_ignore_ascii_case(self.origin(downstream, ctx).as_bytes())
        })
    }

    /// Where the identity provider sends the browser after federated sign-out.
    pub(super) async fn signed_out(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        // The page names the tenant when the Host is one; an unknown Host still gets it.
        ctx.route = self.route(downstream.req_header()).ok();
        let body = pages::page(
            "Signed out",
            "<p>You are signed out.</p><p><a href=\"/\">Sign in again</a></p>",
            ctx,
        );
        self.respond(downstream, 200, pages::HTML, body, &[]).await
    }
}

/// How the browser reached the gateway: cookie names follow `https` (`__Host-` prefixes),
/// the `Secure` attribute follows `secure_cookies` (HTTPS or a loopback host).
#[derive(Debug, Clone, Copy)]
pub(super) struct Transport {
    pub(super) https: bool,
    pub(super) secure_cookies: bool,
}

/// What `read_form` got.
pub(super) enum FormBody {
    /// The whole body.
    Complete(Vec<u8>),
    /// More than the configured maximum.
    TooLarge,
    /// Not complete within the configured time.
    TooSlow,
}
