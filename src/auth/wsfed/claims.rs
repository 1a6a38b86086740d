//! Azure AD / ADFS claim types and how they become an `Identity`.

use super::saml::Assertion;
use crate::identity::{Identity, MatchValues};

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
        directory_key: None,
    }
}

/// The value of a claim type when the assertion carries exactly one (across all its
/// `Attribute` elements of that name): a directory never matches on one of several values.
fn single(a: &Assertion, claim_type: &str) -> Option<String> {
    match a.claims(claim_type).as_slice() {
        [one] => Some((*one).to_owned()),
        _ => None,
    }
}

/// What a directory may match on in a verified assertion. No fallbacks: `upn` is the UPN
/// claim only (never an e-mail or a name standing in for it).
pub fn match_values(a: &Assertion) -> MatchValues {
    let mut names: Vec<&str> = a.attributes.iter().map(|(t, _)| t.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    MatchValues {
        upn: single(a, UPN),
        email: single(a, EMAIL),
        subject: a.subject.clone(),
        name_id: Some(a.subject.clone()),
        object_id: single(a, OBJECT_ID),
        claims: names
            .into_iter()
            .filter_map(|n| single(a, n).map(|v| (n.to_owned(), v)))
            .collect(),
    }
}
