//! The document grant over the wire: `/_vestibule/documents/connect` (signed in: off to the
//! authorization server) and `/_vestibule/documents/callback` (its redirect back). The grant
//! itself is `tokens::DocumentGrants`.

use super::{pages, request_host, Gateway, RequestCtx};
use crate::auth::return_url;
use crate::error::GatewayError;
use bytes::Bytes;
use http::header;
use pingora::prelude::*;
use pingora::proxy::Session;
use std::sync::Arc;

impl Gateway {
    /// `/_vestibule/documents/connect?rd=…`: starts the grant for the signed-in user.
    pub(super) async fn documents_connect(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let Some(route) = self.sign_in_route(downstream, ctx).await? else {
            return Ok(true);
        };
        // A shared (Google) grant starts only from the admin page, by a POST from this site.
        let per_user = route
            .tenant
            .documents
            .as_ref()
            .is_some_and(|d| d.kind == crate::config::DocumentProviderKind::Microsoft);
        if !per_user {
            return self.fail(downstream, ctx, GatewayError::NotFound).await;
        }
        let t = self.transport(downstream, ctx);
        if !t.secure_cookies {
            return self
                .fail(downstream, ctx, GatewayError::HttpsRequired)
                .await;
        }
        let host = request_host(downstream.req_header())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let return_to = downstream
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
        let Some(identity) = self.signed_in_identity(downstream, ctx, &route).await? else {
            return Ok(true);
        };
        let binding = self.binding_value(downstream, ctx);
        let origin = self.origin(downstream, ctx);
        match self
            .document_grants
            .begin(
                &route.tenant,
                &identity,
                &origin,
                binding.as_deref(),
                &return_to,
            )
            .await
        {
            Ok((location, binding)) => {
                let set = self.binding_cookie(&binding, crate::signin::LOGIN_TTL_SECS as u64, t);
                self.redirect(
                    downstream,
                    ctx,
                    location,
                    "Continue to grant document access",
                    vec![(header::SET_COOKIE, set)],
                )
                .await
            }
            Err(e) => {
                tracing::warn!(request_id = %ctx.request_id, tenant = %route.tenant.name, reason = e.reason(), error = %e, "document grant not started");
                self.fail(downstream, ctx, e.into()).await
            }
        }
    }

    /// `/_vestibule/documents/callback`: the authorization server's redirect back.
    pub(super) async fn documents_callback(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let Some(route) = self.sign_in_route(downstream, ctx).await? else {
            return Ok(true);
        };
        let mut params = std::collections::HashMap::new();
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
                let e = crate::tokens::GrantError::BadState;
                return self.fail(downstream, ctx, e.into()).await;
            }
        }
        let Some(identity) = self.signed_in_identity(downstream, ctx, &route).await? else {
            return Ok(true);
        };
        let binding = self.binding_value(downstream, ctx);
        let redirect_uri = format!(
            "{}/_vestibule/documents/callback",
            self.origin(downstream, ctx)
        );
        let t = self.transport(downstream, ctx);
        match self
            .document_grants
            .complete(
                &route.tenant,
                &identity,
                &params,
                binding.as_deref(),
                &redirect_uri,
            )
            .await
        {
            Ok(return_to) => {
                let headers = vec![
                    (header::LOCATION, return_to),
                    (header::SET_COOKIE, self.binding_cookie("", 0, t)),
                ];
                self.respond(downstream, 302, pages::HTML, Bytes::new(), &headers)
                    .await
            }
            Err(e) => {
                tracing::warn!(request_id = %ctx.request_id, tenant = %route.tenant.name, user = %identity.user, reason = e.reason(), error = %e, "document grant refused");
                self.fail(downstream, ctx, e.into()).await
            }
        }
    }

    /// A document request of a user who must grant (again): a page load goes through the
    /// grant and comes back; anything else (API, XHR, not GET) gets 401 with `consent_url`.
    pub(super) async fn document_consent_required(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let req = downstream.req_header();
        let host = request_host(req).unwrap_or_default().to_ascii_lowercase();
        let here = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let back = return_url::validate(here, &host).unwrap_or_else(|| "/".into());
        let consent_url = format!(
            "/_vestibule/documents/connect?rd={}",
            url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()
        );
        let api = ctx.route.as_ref().is_some_and(|r| {
            r.tenant
                .api
                .iter()
                .any(|p| req.uri.path().starts_with(p.as_str()))
        });
        let navigation = matches!(req.method, http::Method::GET | http::Method::HEAD)
            && super::accepts_html(req)
            && !super::is_xhr(req)
            && !api;
        if navigation {
            return self
                .redirect(
                    downstream,
                    ctx,
                    consent_url,
                    "Grant document access",
                    Vec::new(),
                )
                .await;
        }
        ctx.wants_json = true;
        self.fail(
            downstream,
            ctx,
            GatewayError::DocumentConsentRequired { consent_url },
        )
        .await
    }

    /// `POST /_vestibule/documents/refresh`: the CRM met a 401 from Graph or Drive and asks for
    /// fresh tokens for the signed-in user (from this site only; once per 10 s per user). The
    /// answer says how each resource stands; tokens themselves only ever go upstream.
    pub(super) async fn documents_refresh(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let Some(route) = self.sign_in_route(downstream, ctx).await? else {
            return Ok(true);
        };
        ctx.wants_json = true;
        let Some(documents) = route.tenant.documents.clone() else {
            return self.fail(downstream, ctx, GatewayError::NotFound).await;
        };
        if !self.same_origin(downstream, ctx) {
            return self
                .fail(downstream, ctx, GatewayError::CrossSiteRequest)
                .await;
        }
        let Some(live) = self.signed_in_session(downstream, ctx, &route).await? else {
            return Ok(true);
        };
        let lookups = match self
            .document_tokens
            .refresh_now(&route.tenant.name, live.prepared.token_owners(), &documents)
            .await
        {
            Ok(lookups) => lookups,
            Err(retry_after) => {
                return self
                    .fail(downstream, ctx, GatewayError::RateLimited { retry_after })
                    .await
            }
        };
        // A refresh that could not reach the store is a 503, as every other request that
        // needs it (not a 200 saying "unavailable").
        let failed = lookups
            .iter()
            .any(|l| matches!(l, crate::tokens::inject::Lookup::Failed));
        if failed && self.store.ping().await.is_err() {
            return self
                .fail(downstream, ctx, GatewayError::StoreUnavailable)
                .await;
        }
        let injected = crate::tokens::inject::headers(
            &self.header_prefix,
            &documents,
            &lookups,
            self.clock.now(),
        );
        let mut resources = serde_json::Map::new();
        for (resource, _) in &documents.resources {
            let status_name = format!("{}document-token-{resource}-status", self.header_prefix);
            let expires_name = format!("{}document-token-{resource}-expires", self.header_prefix);
            let value = |name: &str| {
                injected
                    .headers
                    .iter()
                    .find(|(n, _)| n.as_str() == name)
                    .and_then(|(_, v)| v.to_str().ok())
                    .map(str::to_owned)
            };
            resources.insert(
                resource.clone(),
                serde_json::json!({ "status": value(&status_name), "expires": value(&expires_name) }),
            );
        }
        let body = serde_json::json!({ "resources": resources }).to_string();
        self.respond(downstream, 200, pages::JSON, Bytes::from(body), &[])
            .await
    }

    /// The request's live session for the route's tenant; `None` once the sign-in-required
    /// (or store-unavailable) answer has been written.
    async fn signed_in_session(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
        route: &super::TenantRoute,
    ) -> Result<Option<Arc<crate::session::LiveSession<crate::headers::SessionHeaders>>>> {
        let t = self.transport(downstream, ctx);
        let error = match self
            .load_session(downstream.req_header(), &route.tenant.name, t.https)
            .await
        {
            Ok(Some(live)) => return Ok(Some(live)),
            Ok(None) => GatewayError::SignInRequired,
            Err(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "session store unavailable");
                GatewayError::StoreUnavailable
            }
        };
        self.fail(downstream, ctx, error).await?;
        Ok(None)
    }

    /// The signed-in user's identity (from the sealed session record); `None` once the
    /// sign-in-required answer has been written.
    pub(super) async fn signed_in_identity(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
        route: &super::TenantRoute,
    ) -> Result<Option<crate::identity::Identity>> {
        let Some(live) = self.signed_in_session(downstream, ctx, route).await? else {
            return Ok(None);
        };
        match self.sessions.identity(&live.id, &route.tenant.name).await {
            Ok(Some(identity)) => Ok(Some(identity)),
            Ok(None) => {
                self.fail(downstream, ctx, GatewayError::SignInRequired)
                    .await?;
                Ok(None)
            }
            Err(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "session store unavailable");
                self.fail(downstream, ctx, GatewayError::StoreUnavailable)
                    .await?;
                Ok(None)
            }
        }
    }
}
