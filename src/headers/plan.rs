//! The identity headers of a session, computed once when the session is loaded and reused by
//! every request that presents it.

use super::sanitize::safe_value;
use crate::assertion::AssertionSlot;
use crate::identity::Identity;
use http::{HeaderName, HeaderValue};

/// The names of the headers Vestibule sets. Parsed once: a name parsed per request costs an
/// allocation and a validation pass each time.
#[derive(Debug, Clone)]
pub struct HeaderNames {
    /// User name (UPN or e-mail).
    pub user: HeaderName,
    /// E-mail address.
    pub email: HeaderName,
    /// Display name.
    pub name: HeaderName,
    /// Provider that signed the user in.
    pub provider: HeaderName,
    /// Tenant name.
    pub tenant: HeaderName,
    /// Signed JWT.
    pub assertion: HeaderName,
    /// Request id, for correlating logs.
    pub request_id: HeaderName,
}

fn named(prefix: &str, suffix: &str) -> HeaderName {
    HeaderName::try_from(format!("{prefix}{suffix}"))
        .expect("validated: the prefix is a lower-case header-name token")
}

impl HeaderNames {
    /// Names under `prefix` (lower case, `-` spelling, validated by the configuration).
    pub fn new(prefix: &str) -> Self {
        Self {
            user: named(prefix, "user"),
            email: named(prefix, "email"),
            name: named(prefix, "name"),
            provider: named(prefix, "provider"),
            tenant: named(prefix, "tenant"),
            assertion: named(prefix, "assertion"),
            request_id: named(prefix, "request-id"),
        }
    }
}

/// What a live session sends upstream.
#[derive(Debug)]
pub struct SessionHeaders {
    /// Headers whose values never change during the session.
    pub fixed: Box<[(HeaderName, HeaderValue)]>,
    /// The current upstream assertion, re-minted shortly before expiry.
    pub assertion: AssertionSlot,
}

impl SessionHeaders {
    /// The plan for `identity` in `tenant`. A value with a control character is left out (and
    /// logged): a line break in a claim must never become a header of its own.
    pub fn prepare(names: &HeaderNames, identity: &Identity, tenant: &str) -> Self {
        let candidates = [
            (&names.user, Some(identity.user.as_str())),
            (&names.email, identity.email.as_deref()),
            (&names.name, identity.name.as_deref()),
            (&names.provider, Some(identity.provider.as_str())),
            (&names.tenant, Some(tenant)),
        ];
        let mut fixed = Vec::with_capacity(candidates.len());
        for (name, value) in candidates {
            let Some(value) = value else { continue };
            match HeaderValue::from_str(value) {
                Ok(v) if safe_value(value) => fixed.push((name.clone(), v)),
                _ => tracing::warn!(
                    header = %name,
                    "identity value not injected: it contains control characters"
                ),
            }
        }
        Self {
            fixed: fixed.into_boxed_slice(),
            assertion: AssertionSlot::empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(user: &str) -> Identity {
        Identity {
            provider: "azure".into(),
            issuer: "https://sts.windows.net/t/".into(),
            subject: "s".into(),
            user: user.into(),
            email: None,
            name: Some("Zoë".into()),
            idp_tenant: None,
            claims: Default::default(),
        }
    }

    #[test]
    fn names_are_under_the_prefix() {
        let n = HeaderNames::new("x-vestibule-");
        assert_eq!(n.user.as_str(), "x-vestibule-user");
        assert_eq!(n.request_id.as_str(), "x-vestibule-request-id");
    }

    #[test]
    fn plans_present_values_and_drops_unsafe_ones() {
        let n = HeaderNames::new("x-vestibule-");
        let h = SessionHeaders::prepare(&n, &identity("alice@contoso.example"), "contoso");
        let names: Vec<&str> = h.fixed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "x-vestibule-user",
                "x-vestibule-name",
                "x-vestibule-provider",
                "x-vestibule-tenant"
            ]
        );
        let bad = SessionHeaders::prepare(&n, &identity("alice\r\nX-Admin: 1"), "contoso");
        assert!(bad.fixed.iter().all(|(k, _)| *k != n.user));
    }
}
