//! Vestibule's own endpoints under `/_vestibule/`. They are answered here and never proxied.

use super::{pages, request_host, Gateway, RequestCtx};
use crate::auth::return_url;
use crate::error::GatewayError;
use crate::session::cookie;
use bytes::Bytes;
use http::{header, Method};
use pingora::prelude::*;
use pingora::proxy::Session;

impl Gateway {
    /// Dispatches `/_vestibule/<rest>`.
    pub(super) async fn reserved(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        rest: &str,
    ) -> Result<bool> {
        let method = session.req_header().method.clone();
        let read_only = method == Method::GET || method == Method::HEAD;
        match rest {
            "health" if read_only => {
                self.respond(session, 200, "text/plain", Bytes::from_static(b"ok\n"), &[])
                    .await
            }
            "ready" if read_only => match self.store.ping().await {
                Ok(()) => {
                    self.respond(
                        session,
                        200,
                        "text/plain",
                        Bytes::from_static(b"ready\n"),
                        &[],
                    )
                    .await
                }
                Err(e) => {
                    tracing::error!(request_id = %ctx.request_id, error = %e, "store not reachable");
                    self.fail(session, ctx, GatewayError::StoreUnavailable)
                        .await
                }
            },
            "metrics" if read_only => {
                let allowed = Self::peer_ip(session)
                    .is_some_and(|ip| self.metrics_allow.iter().any(|n| n.contains(&ip)));
                if !allowed {
                    return self.fail(session, ctx, GatewayError::Forbidden).await;
                }
                self.metrics
                    .cached_sessions
                    .set(self.sessions.cached() as i64);
                let body = Bytes::from(self.metrics.render());
                self.respond(session, 200, "text/plain; version=0.0.4", body, &[])
                    .await
            }
            "jwks.json" if read_only => {
                let body = self.signer.jwks_json().clone();
                self.respond(session, 200, pages::JSON, body, &[]).await
            }
            "login" if read_only => self.login_page(session, ctx).await,
            "logout" if read_only || method == Method::POST => self.logout(session, ctx).await,
            "health" | "ready" | "metrics" | "jwks.json" | "login" | "logout" => {
                self.fail(session, ctx, GatewayError::MethodNotAllowed)
                    .await
            }
            _ => self.fail(session, ctx, GatewayError::NotFound).await,
        }
    }

    /// The sign-in page: lists the tenant's providers. A signed-in user is sent straight back.
    async fn login_page(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let Some(route) = self.route(session.req_header()) else {
            return self.fail(session, ctx, GatewayError::UnknownHost).await;
        };
        ctx.route = Some(route.clone());
        let host = request_host(session.req_header())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let return_to = session
            .req_header()
            .uri
            .query()
            .and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "rd")
                    .map(|(_, v)| v.into_owned())
            })
            .and_then(|rd| return_url::validate(&rd, &host))
            .unwrap_or_else(|| "/".into());
        match self
            .load_session(session.req_header(), &route.tenant.name)
            .await
        {
            Ok(Some(_)) => {
                return self
                    .respond(
                        session,
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
                    .fail(session, ctx, GatewayError::StoreUnavailable)
                    .await;
            }
        }
        // Sign-in providers (WS-Federation, OpenID Connect) plug in here; until a tenant has
        // one, the page says so rather than pretending.
        let body = pages::page(
            &format!("Sign in to {}", route.tenant.name),
            "<p>No sign-in provider is configured for this site yet. \
             Ask your administrator to add one.</p>",
            &ctx.request_id,
        );
        self.respond(session, 200, pages::HTML, body, &[]).await
    }

    /// Revokes the session server-side and clears the cookie.
    async fn logout(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let Some(route) = self.route(session.req_header()) else {
            return self.fail(session, ctx, GatewayError::UnknownHost).await;
        };
        ctx.route = Some(route.clone());
        match self
            .load_session(session.req_header(), &route.tenant.name)
            .await
        {
            Ok(Some(live)) => {
                if let Err(e) = self.sessions.revoke(&live.id).await {
                    tracing::error!(request_id = %ctx.request_id, error = %e, "could not revoke session");
                    return self
                        .fail(session, ctx, GatewayError::StoreUnavailable)
                        .await;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "session store unavailable");
                return self
                    .fail(session, ctx, GatewayError::StoreUnavailable)
                    .await;
            }
        }
        let body = pages::page(
            "Signed out",
            "<p>You are signed out.</p><p><a href=\"/\">Sign in again</a></p>",
            &ctx.request_id,
        );
        let clear = cookie::clear_cookie(&self.cookie_name, ctx.tls);
        self.respond(
            session,
            200,
            pages::HTML,
            body,
            &[(header::SET_COOKIE, clear)],
        )
        .await
    }
}
