//! The verified identity a sign-in produces, independent of the protocol that produced it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
}
