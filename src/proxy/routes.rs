//! Vestibule's own endpoints under `/_vestibule/`. They are answered here and never proxied.

use super::admin::AdminAction;
use super::{pages, Gateway, RequestCtx};
use crate::error::GatewayError;
use bytes::Bytes;
use http::Method;
use pingora::prelude::*;
use pingora::proxy::Session;

/// Why the gateway is not ready.
struct NotReady {
    /// What a load balancer or operator is shown.
    public: String,
    /// The details, for the log.
    detail: String,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.public, self.detail)
    }
}

impl Gateway {
    /// Ready when the store answers and every tenant's user directory does.
    async fn readiness(&self) -> Result<(), NotReady> {
        if let Err(e) = self.store.ping().await {
            return Err(NotReady {
                public: "session store unreachable".into(),
                detail: e.to_string(),
            });
        }
        if let Some((provider, why)) = self.providers.unavailable().into_iter().next() {
            return Err(NotReady {
                public: format!("identity provider {provider} unavailable: {why}"),
                detail: why.to_owned(),
            });
        }
        if let Some((provider, code)) = self.document_tokens.refused_client() {
            return Err(NotReady {
                public: format!(
                    "document provider {provider} refuses the gateway's client credentials ({code}): check its secret"
                ),
                detail: code,
            });
        }
        if let Some((tenant, detail)) = self.directories.unreachable(self.clock.now()).await {
            return Err(NotReady {
                public: format!("user directory of tenant {tenant} unreachable"),
                detail,
            });
        }
        Ok(())
    }

    /// Dispatches `/_vestibule/<rest>`.
    pub(super) async fn reserved(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
        rest: &str,
    ) -> Result<bool> {
        let method = downstream.req_header().method.clone();
        let read_only = method == Method::GET || method == Method::HEAD;
        match rest {
            "health" if read_only => {
                self.respond(
                    downstream,
                    200,
                    "text/plain",
                    Bytes::from_static(b"ok\n"),
                    &[],
                )
                .await
            }
            "ready" if read_only => match self.readiness().await {
                Ok(()) => {
                    self.respond(
                        downstream,
                        200,
                        "text/plain",
                        Bytes::from_static(b"ready\n"),
                        &[],
                    )
                    .await
                }
                Err(why) => {
                    tracing::error!(request_id = %ctx.request_id, reason = %why, "not ready");
                    // The reason names the component (store, a tenant's directory), not its
                    // address or error text: those stay in the log.
                    let body = Bytes::from(format!("not ready: {}\n", why.public));
                    self.respond(downstream, 503, "text/plain", body, &[]).await
                }
            },
            "metrics" if read_only => {
                // Decided on the client's address, not the direct peer's: behind a reverse
                // proxy on this host every peer is loopback.
                let allowed = self
                    .client_ip(downstream)
                    .is_some_and(|ip| self.metrics_allow.iter().any(|n| n.contains(&ip)));
                if !allowed {
                    return self.fail(downstream, ctx, GatewayError::Forbidden).await;
                }
                self.metrics
                    .cached_sessions
                    .set(self.sessions.cached() as i64);
                for (provider, up) in self.providers.availability() {
                    self.metrics
                        .providers_available
                        .with_label_values(&[&provider])
                        .set(i64::from(up));
                }
                let body = Bytes::from(self.metrics.render());
                self.respond(downstream, 200, "text/plain; version=0.0.4", body, &[])
                    .await
            }
            "jwks.json" if read_only => {
                let body = self.signer.jwks_json().clone();
                self.respond(downstream, 200, pages::JSON, body, &[]).await
            }
            "login" if read_only => self.login(downstream, ctx).await,
            "logout" if read_only || method == Method::POST => self.logout(downstream, ctx).await,
            "signed-out" if read_only => self.signed_out(downstream, ctx).await,
            "wsfed" if read_only || method == Method::POST => {
                self.wsfed_endpoint(downstream, ctx).await
            }
            "oidc/callback" if read_only => self.oidc_callback(downstream, ctx).await,
            "oidc/backchannel-logout" => self.backchannel_logout(downstream, ctx).await,
            "documents/connect" if read_only => self.documents_connect(downstream, ctx).await,
            "documents/callback" if read_only => self.documents_callback(downstream, ctx).await,
            "documents/refresh" if method == Method::POST => {
                self.documents_refresh(downstream, ctx).await
            }
            "admin/documents" if read_only => {
                self.documents_admin(downstream, ctx, AdminAction::Show)
                    .await
            }
            "admin/documents/connect" if method == Method::POST => {
                self.documents_admin(downstream, ctx, AdminAction::Connect)
                    .await
            }
            "admin/documents/disconnect" if method == Method::POST => {
                self.documents_admin(downstream, ctx, AdminAction::Disconnect)
                    .await
            }
            "health"
            | "ready"
            | "metrics"
            | "jwks.json"
            | "login"
            | "logout"
            | "signed-out"
            | "wsfed"
            | "oidc/callback"
            | "documents/connect"
            | "documents/callback"
            | "documents/refresh"
            | "admin/documents"
            | "admin/documents/connect"
            | "admin/documents/disconnect" => {
                self.fail(downstream, ctx, GatewayError::MethodNotAllowed)
                    .await
            }
            _ => self.fail(downstream, ctx, GatewayError::NotFound).await,
        }
    }
}
