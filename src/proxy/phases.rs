//! The pingora phases: each request takes the gateway current when it arrives (a reload
//! swaps it) and every phase delegates to that gateway, which hands off to one of its own
//! functions or a domain module.

use super::*;
use async_trait::async_trait;

#[async_trait]
impl ProxyHttp for Live {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            request_id: self.request_ids.next(),
            gateway: Some(self.current()),
            ..RequestCtx::default()
        }
    }

    async fn request_filter(&self, downstream: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.gateway().request_filter(downstream, ctx).await
    }

    async fn upstream_peer(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        ctx.gateway().upstream_peer(downstream, ctx).await
    }

    async fn upstream_request_filter(
        &self,
        downstream: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.gateway()
            .upstream_request_filter(downstream, upstream_request, ctx)
            .await
    }

    async fn response_filter(
        &self,
        downstream: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.gateway()
            .response_filter(downstream, upstream_response, ctx)
            .await
    }

    async fn fail_to_proxy(
        &self,
        downstream: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        ctx.gateway().fail_to_proxy(downstream, e, ctx).await
    }

    async fn logging(&self, downstream: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        ctx.gateway().logging(downstream, e, ctx).await
    }
}

impl Gateway {
    async fn request_filter(&self, downstream: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.tls = is_tls(downstream);
        let path = downstream.req_header().uri.path();
        if let Some(rest) = path.strip_prefix("/_vestibule/") {
            let rest = rest.to_owned();
            return self.reserved(downstream, ctx, &rest).await;
        }
        let route = match self.route(downstream.req_header()) {
            Ok(route) => route,
            Err(e) => return self.fail(downstream, ctx, e).await,
        };
        ctx.route = Some(route.clone());
        if route.is_public(downstream.req_header().uri.path()) {
            return Ok(false);
        }
        let secure = self.secure_request(downstream, ctx);
        match self
            .load_session(downstream.req_header(), &route.tenant.name, secure)
            .await
        {
            Ok(Some(s)) => match self.sign_in.recheck(&route.tenant, &s).await {
                Recheck::Keep => {
                    if let Some(documents) = &route.tenant.documents {
                        if documents.covers(downstream.req_header().uri.path()) {
                            let injected = self
                                .document_headers(&route.tenant.name, documents, &s.prepared)
                                .await;
                            let consent = injected.default_status
                                == Some(crate::tokens::inject::Status::ConsentRequired)
                                && documents.kind == crate::config::DocumentProviderKind::Microsoft;
                            if consent {
                                return self.document_consent_required(downstream, ctx).await;
                            }
                            ctx.document_headers = injected.headers;
                        }
                    }
                    ctx.session = Some(s);
                    Ok(false)
                }
                Recheck::Ended => self.sign_in_required(downstream, ctx).await,
                Recheck::Unavailable => {
                    self.fail(downstream, ctx, GatewayError::DirectoryUnavailable)
                        .await
                }
            },
            Ok(None) => self.sign_in_required(downstream, ctx).await,
            Err(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "session store unavailable");
                self.fail(downstream, ctx, GatewayError::StoreUnavailable)
                    .await
            }
        }
    }

    async fn upstream_peer(
        &self,
        _downstream: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        match &ctx.route {
            Some(route) => Ok(Box::new(route.peer.clone())),
            None => Error::e_explain(InternalError, "no route selected"),
        }
    }

    async fn upstream_request_filter(
        &self,
        downstream: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let peer = Self::peer_ip(downstream);
        self.prepare_upstream_request(upstream_request, ctx, peer)?;
        ctx.upstream_sent = Some(Instant::now());
        Ok(())
    }

    async fn response_filter(
        &self,
        downstream: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.close_if_draining(downstream);
        if let (Some(sent), Some(route)) = (ctx.upstream_sent, &ctx.route) {
            route.latency.observe(sent.elapsed().as_secs_f64());
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        downstream: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let error = match e.etype() {
            ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout => {
                GatewayError::UpstreamTimeout
            }
            _ => match e.esource() {
                ErrorSource::Upstream => GatewayError::UpstreamUnavailable,
                ErrorSource::Downstream => match e.etype() {
                    WriteError | ReadError | ConnectionClosed => {
                        return FailToProxy {
                            error_code: 0,
                            can_reuse_downstream: false,
                        }
                    }
                    _ => GatewayError::BadRequest,
                },
                _ => GatewayError::Internal,
            },
        };
        tracing::warn!(request_id = %ctx.request_id, error = %e, "request failed");
        // The response may already be under way; then there is nothing more to send.
        let status = error.status();
        let _ = self.fail(downstream, ctx, error).await;
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, downstream: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = downstream
            .response_written()
            .map_or(http::StatusCode::INTERNAL_SERVER_ERROR, |r| r.status);
        let tenant = ctx.route.as_ref().map_or("-", |r| r.tenant.name.as_str());
        let common = ctx.route.as_ref().and_then(|r| {
            r.common_statuses
                .iter()
                .find(|(code, _)| *code == status.as_u16())
                .map(|(_, counter)| counter)
        });
        match common {
            Some(counter) => counter.inc(),
            None => self
                .metrics
                .requests
                .with_label_values(&[tenant, status.as_str()])
                .inc(),
        }
        tracing::info!(
            target: "vestibule::access",
            request_id = %ctx.request_id,
            tenant,
            method = %downstream.req_header().method,
            path = downstream.req_header().uri.path(),
            status = status.as_u16(),
            user = ctx
                .session
                .as_ref()
                .and_then(|s| s.prepared.user())
                .map(String::from_utf8_lossy)
                .as_deref(),
            error = e.map(|e| e.to_string()),
        );
    }
}
