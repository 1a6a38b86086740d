//! The verified identity a sign-in produces, independent of the protocol that produced it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Purpose of the keyed digest of a user's issuer and subject (see `KeyRing::lookup_digest`):
/// sessions keep it (found again by an identity provider's sign-out), and document tokens
/// are owned by it, so the refresher finds the tokens of users with live sessions by one
/// join and neither table names anybody in clear.
pub const SUBJECT_DIGEST_PURPOSE: &str = "session-subject";

/// Issuer and a value of it (subject, provider session id), unambiguously joined, as a
/// digest's input.
pub fn subject_key(issuer: &str, value: &str) -> String {
    format!("{}\n{value}", issuer.trim_end_matches('/'))
}

/// Who signed in, as asserted by a verified token. Every field comes from signed content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Name of the configured provider that verified the sign-in.
    pub provider: String,
    /// Issuer of the token (Azure AD tenant issuer URL, OIDC issuer).
    pub issuer: String,
    /// Stable subject identifier at the issuer (NameID, `sub`).
    pub subject: String,
    /// The user name shown to the CRM (UPN for Azure AD, email for Google).
    pub user: String,
    /// E-mail address, when the provider asserted one.
    pub email: Option<String>,
    /// Display name, when the provider asserted one.
    pub name: Option<String>,
    /// The identity provider's own tenant (Azure AD tenant id, Google hosted domain).
    pub idp_tenant: Option<String>,
    /// Further claims kept for the upstream assertion (groups, object id, ...).
    #[serde(default)]
    pub claims: BTreeMap<String, serde_json::Value>,
    /// The CRM user the tenant's directory matched at sign-in (none for `directory: none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm: Option<CrmUser>,
    /// The normalised value the directory matched on, kept (sealed) so that re-checks look
    /// up exactly what sign-in looked up, even for claims the session does not keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_key: Option<String>,
}

impl Identity {
    /// Whether this is an Azure AD (Entra) account: one with an object id and a directory
    /// (tenant) id, the pair a per-user Office 365 document grant is checked against. An
    /// account of another provider (Google, a generic OpenID provider, ADFS without them)
    /// can never pass that check, so it is not sent into the grant at all.
    pub fn microsoft_account(&self) -> bool {
        self.claims.get("oid").and_then(|v| v.as_str()).is_some() && self.idp_tenant.is_some()
    }
}

/// The values of a verified sign-in a directory may match on, as its protocol vouches for
/// them. Each is absent when the token does not carry it as one signed, single value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchValues {
    /// The sign-in name: the UPN claim (Azure AD, ADFS; its domain is one the directory
    /// verified), or for OpenID providers the `upn` claim, else the verified e-mail address.
    pub upn: Option<String>,
    /// The e-mail address: the token's e-mail claim (WS-Federation: as the administrators of
    /// that directory set it), for OpenID providers only when `email_verified` is true.
    pub email: Option<String>,
    /// The provider's subject (`sub`, the SAML NameID).
    pub subject: String,
    /// The SAML NameID (WS-Federation only).
    pub name_id: Option<String>,
    /// Azure AD's object id.
    pub object_id: Option<String>,
    /// Every signed, single-valued text claim by name (SAML claim type URI, ID token claim).
    pub claims: BTreeMap<String, String>,
}

/// A user of the CRM, as its directory describes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmUser {
    /// The CRM's own user id (sent upstream as `X-Vestibule-Crm-User`).
    pub id: String,
    /// Name shown in the CRM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// E-mail address in the CRM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Roles in the CRM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}
