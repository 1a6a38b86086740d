//! Azure AD / ADFS claim types and how they become an `Identity`.

use super::saml::Assertion;
use crate::identity::Identity;

/// User principal name.
pub const UPN: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn";
/// E-mail address.
pub const EMAIL: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
/// `name` (Azure AD: the UPN; ADFS: often the display name).
pub const NAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
/// Given name.
pub const GIVEN_NAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname";
/// Surname.
pub const SURNAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname";
/// Display name (Azure AD).
pub const DISPLAY_NAME: &str = "http://schemas.microsoft.com/identity/claims/displayname";
/// Azure AD object id.
pub const OBJECT_ID: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";
/// Azure AD tenant id.
pub const TENANT_ID: &str = "http://schemas.microsoft.com/identity/claims/tenantid";
/// Group ids.
pub const GROUPS: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups";

/// The identity a verified assertion establishes.
pub fn identity(provider: &str, a: &Assertion) -> Identity {
    let upn = a.claim(UPN);
    let email = a.claim(EMAIL).map(str::to_owned);
    let user = upn
        .map(str::to_owned)
        .or_else(|| email.clone())
        .or_else(|| a.claim(NAME).filter(|n| n.contains('@')).map(str::to_owned))
        .unwrap_or_else(|| a.subject.clone());
    let name = a
        .claim(DISPLAY_NAME)
        .map(str::to_owned)
        .or_else(|| match (a.claim(GIVEN_NAME), a.claim(SURNAME)) {
            (Some(g), Some(s)) => Some(format!("{g} {s}")),
            _ => None,
        })
        .or_else(|| {
            a.claim(NAME)
                .filter(|n| !n.contains('@'))
                .map(str::to_owned)
        });
    let mut claims = std::collections::BTreeMap::new();
    if let Some(oid) = a.claim(OBJECT_ID) {
        claims.insert("oid".into(), serde_json::Value::String(oid.into()));
    }
    let groups = a.claims(GROUPS);
    if !groups.is_empty() {
        claims.insert("groups".into(), serde_json::json!(groups));
    }
    Identity {
        provider: provider.to_owned(),
        issuer: a.issuer.clone(),
        subject: a.subject.clone(),
        user,
        email,
        name,
        idp_tenant: a.claim(TENANT_ID).map(str::to_owned),
        claims,
        crm: None,
    }
}

/// The assertion's single-valued attributes by claim type: what a directory may match on
/// (a multi-valued attribute names no one user).
pub fn signed_claims(a: &Assertion) -> std::collections::BTreeMap<String, String> {
    a.attributes
        .iter()
        .filter_map(|(name, values)| match values.as_slice() {
            [one] => Some((name.clone(), one.clone())),
            _ => None,
        })
        .collect()
}
