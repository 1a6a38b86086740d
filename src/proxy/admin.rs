//! `/_vestibule/admin/documents`: the shared Google Drive grant of a tenant, for its system
//! user and document admins only — its state, **Connect** (the code grant for the system
//! user's account) and **Disconnect** (revoked at the provider, deleted here). The actions
//! are POSTs from this site (`Sec-Fetch-Site: same-origin` or a matching `Origin`).

use super::{pages, Gateway, RequestCtx, TenantRoute};
use crate::config::DocumentProviderKind;
use crate::error::GatewayError;
use crate::identity::Identity;
use crate::tokens::grant::{is_document_admin, GrantError};
use crate::tokens::refresh::Disconnected;
use crate::tokens::TokenStatus;
use http::header;
use pingora::prelude::*;
use pingora::proxy::Session;

/// Where the admin page lives, and where a connect comes back to.
pub const ADMIN_PAGE: &str = "/_vestibule/admin/documents";

/// What an admin action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AdminAction {
    /// Show the state.
    Show,
    /// Start the grant for the system user.
    Connect,
    /// Revoke and delete.
    Disconnect,
}

impl Gateway {
    /// The admin page and its actions.
    pub(super) async fn documents_admin(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
        action: AdminAction,
    ) -> Result<bool> {
        let Some(route) = self.sign_in_route(downstream, ctx).await? else {
            return Ok(true);
        };
        let shared = route
            .tenant
            .documents
            .as_ref()
            .is_some_and(|d| d.kind == DocumentProviderKind::Google);
        if !shared {
            return self.fail(downstream, ctx, GatewayError::NotFound).await;
        }
        if action != AdminAction::Show && !self.same_origin(downstream, ctx) {
            return self
                .fail(downstream, ctx, GatewayError::CrossSiteRequest)
                .await;
        }
        let Some(identity) = self.signed_in_identity(downstream, ctx, &route).await? else {
            return Ok(true);
        };
        let documents = route.tenant.documents.clone().expect("checked above");
        if !is_document_admin(&documents, &identity) {
            tracing::warn!(request_id = %ctx.request_id, tenant = %route.tenant.name, user = %identity.user, "document admin page refused: not the system user or a document admin");
            return self
                .fail(downstream, ctx, GrantError::NotAdmin.into())
                .await;
        }
        match action {
            AdminAction::Show => self.admin_page(downstream, ctx, &route, None).await,
            AdminAction::Connect => self.admin_connect(downstream, ctx, &route, &identity).await,
            AdminAction::Disconnect => {
                let note = match self
                    .document_tokens
                    .disconnect_shared(&route.tenant.name, &documents)
                    .await
                {
                    Ok(Disconnected::Revoked) => {
                        "Disconnected: the grant was revoked at the provider and deleted here."
                    }
                    Ok(Disconnected::DeletedOnly) => {
                        "Disconnected here, but the provider could not be told: remove the application's access in the system user's account settings."
                    }
                    Ok(Disconnected::NothingStored) => "There was no grant to disconnect.",
                    Err(e) => {
                        tracing::error!(request_id = %ctx.request_id, error = %e, "token store unavailable");
                        return self
                            .fail(downstream, ctx, GatewayError::StoreUnavailable)
                            .await;
                    }
                };
                tracing::warn!(request_id = %ctx.request_id, tenant = %route.tenant.name, admin = %identity.user, "shared document grant disconnect: {note}");
                self.admin_page(downstream, ctx, &route, Some(note)).await
            }
        }
    }

    async fn admin_connect(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
        route: &TenantRoute,
        identity: &Identity,
    ) -> Result<bool> {
        let t = self.transport(downstream, ctx);
        if !t.secure_cookies {
            return self
                .fail(downstream, ctx, GatewayError::HttpsRequired)
                .await;
        }
        let binding = self.binding_value(downstream, ctx);
        let origin = self.origin(downstream, ctx);
        match self
            .document_grants
            .begin(
                &route.tenant,
                identity,
                &origin,
                binding.as_deref(),
                ADMIN_PAGE,
            )
            .await
        {
            Ok((location, binding)) => {
                let set = self.binding_cookie(&binding, crate::signin::LOGIN_TTL_SECS as u64, t);
                let body = pages::page(
                    "Connect Google Drive",
                    &format!(
                        "<p><a href=\"{}\">Continue to the provider</a></p>",
                        pages::escape(&location)
                    ),
                    ctx,
                );
                let headers = [(header::LOCATION, location), (header::SET_COOKIE, set)];
                // 303: the browser follows a POST's answer with a GET.
                self.respond(downstream, 303, pages::HTML, body, &headers)
                    .await
            }
            Err(e) => {
                tracing::warn!(request_id = %ctx.request_id, tenant = %route.tenant.name, reason = e.reason(), error = %e, "shared document grant not started");
                self.fail(downstream, ctx, e.into()).await
            }
        }
    }

    async fn admin_page(
        &self,
        downstream: &mut Session,
        ctx: &mut RequestCtx,
        route: &TenantRoute,
        note: Option<&str>,
    ) -> Result<bool> {
        let documents = route.tenant.documents.as_ref().expect("checked by caller");
        let system_user = documents.system_user.as_deref().unwrap_or_default();
        let now = self.clock.now();
        let state = match self.document_grants.shared_token(&route.tenant).await {
            Ok(None) => "Not connected: users work without Google Drive access.".to_owned(),
            Ok(Some(token)) if token.status == TokenStatus::ConsentRequired => {
                "Revoked or expired at Google: users work without Google Drive access until the system user connects again.".to_owned()
            }
            Ok(Some(token)) => {
                let expires = chrono::DateTime::from_timestamp(token.expires_at, 0)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default();
                if token.expires_at > now {
                    format!("Connected. The current access token is valid until {expires} and is refreshed ahead of expiry.")
                } else {
                    format!("Connected, but the access token expired at {expires} and has not been refreshed yet (the provider may be unreachable).")
                }
            }
            Err(_) => {
                "Unknown: the token store could not be read or the record does not open.".to_owned()
            }
        };
        let mut html = String::new();
        if let Some(note) = note {
            html.push_str(&format!(
                "<p role=\"status\"><strong>{}</strong></p>",
                pages::escape(note)
            ));
        }
        html.push_str(&format!(
            "<p>Every user of <strong>{tenant}</strong> shares one Google Drive grant, given by the system user <strong>{user}</strong>.</p>\
             <p id=\"state\">{state}</p>\
             <form method=\"post\" action=\"{ADMIN_PAGE}/connect\"><p>Connect signs in to Google: choose the account {user} and allow offline access.</p><button type=\"submit\">Connect</button></form>\
             <form method=\"post\" action=\"{ADMIN_PAGE}/disconnect\"><p>Disconnect revokes the grant at Google and deletes it here.</p><button type=\"submit\">Disconnect</button></form>",
            tenant = pages::escape(&route.tenant.name),
            user = pages::escape(system_user),
            state = pages::escape(&state),
        ));
        let body = pages::page("Google Drive access", &html, ctx);
        let headers = [
            (header::X_FRAME_OPTIONS, "DENY".to_owned()),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'".to_owned(),
            ),
        ];
        self.respond(downstream, 200, pages::HTML, body, &headers)
            .await
    }
}
