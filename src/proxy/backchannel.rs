//! `/_vestibule/oidc/backchannel-logout`: OpenID Connect Back-Channel Logout 1.0. The provider
//! POSTs a signed logout token (server to server, no browser, any Host); every session it
//! names ends, in the store and in this instance's cache (other instances re-check within
//! `session.cache_ttl`). Answers as the specification says: 200 when done, 400 with a JSON
//! error for a token that is refused, and never a cookie or a page.

use super::signin::FormBody;
use super::{pages, Gateway, RequestCtx};
use crate::auth::backchannel;
use crate::error::GatewayError;
use crate::providers::RuntimeProvider;
use bytes::Bytes;
use http::Method;
use pingora::prelude::*;
use pingora::proxy::Session;

impl Gateway {
    pub(super) async fn backchannel_logout(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        ctx.wants_json = true;
        if downstream.req_header().method != Method::POST {
            return self
                .fail(downstream, ctx, GatewayError::MethodNotAllowed)
                .await;
        }
        let body = match self.read_form(downstream).await? {
            FormBody::Complete(body) => body,
            FormBody::TooLarge => {
                return self.fail(downstream, ctx, GatewayError::BadRequest).await
            }
            FormBody::TooSlow => {
                return self.fail(downstream, ctx, GatewayError::BodyTimeout).await
            }
        };
        let token = match crate::auth::form::parse(&body, &["logout_token"]) {
            Ok(mut fields) => fields.remove("logout_token"),
            Err(_) => None,
        };
        let Some(token) = token else {
            return self
                .refuse_logout_token(downstream, ctx, "the request carries no logout_token")
                .await;
        };
        // The claimed issuer only picks whose keys to verify with.
        let claimed = backchannel::unverified_issuer(&token).unwrap_or_default();
        let provider = self.providers.all().find_map(|p| match p.as_ref() {
            RuntimeProvider::Oidc(o)
                if o.config.issuer.as_str().trim_end_matches('/')
                    == claimed.trim_end_matches('/') =>
            {
                Some(o)
            }
            _ => None,
        });
        let Some(provider) = provider else {
            return self
                .refuse_logout_token(
                    downstream,
                    ctx,
                    "the logout token comes from an unknown issuer",
                )
                .await;
        };
        let now = self.clock.now();
        let verified = match provider
            .verify_logout_token(self.providers.http(), &token, now)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(request_id = %ctx.request_id, provider = %provider.name, error = %e, "back-channel logout token refused");
                return self
                    .refuse_logout_token(downstream, ctx, &e.to_string())
                    .await;
            }
        };
        let replay_key = format!("{}|{}", verified.issuer, verified.jti);
        match self
            .spend(ctx, "logout-token", &replay_key, verified.replay_until)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return self
                    .refuse_logout_token(downstream, ctx, "the logout token was already used")
                    .await
            }
            Err(e) => return self.fail(downstream, ctx, e).await,
        }
        match self
            .sessions
            .revoke_for(
                &verified.issuer,
                verified.subject.as_deref(),
                verified.sid.as_deref(),
            )
            .await
        {
            Ok(ended) => {
                tracing::info!(request_id = %ctx.request_id, provider = %provider.name, sessions = ended, "back-channel logout");
                self.respond(downstream, 200, pages::JSON, Bytes::new(), &[])
                    .await
            }
            Err(e) => {
                tracing::error!(request_id = %ctx.request_id, error = %e, "could not end sessions for a back-channel logout");
                self.fail(downstream, ctx, GatewayError::StoreUnavailable)
                    .await
            }
        }
    }

    /// 400 with the JSON error body the specification asks for.
    async fn refuse_logout_token(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
        why: &str,
    ) -> Result<bool> {
        self.metrics
            .rejections
            .with_label_values(&["-", "logout_token"])
            .inc();
        tracing::debug!(request_id = %ctx.request_id, why, "logout token refused");
        let body = serde_json::json!({
            "error": "invalid_request",
            "error_description": why,
        });
        self.respond(
            downstream,
            400,
            pages::JSON,
            Bytes::from(body.to_string()),
            &[],
        )
        .await
    }
}
