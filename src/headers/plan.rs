//! The identity headers of a session, computed once when the session is loaded and reused by
//! every request that presents it.

use super::sanitize::safe_value;
use crate::assertion::AssertionSlot;
use crate::identity::Identity;
use bytes::Bytes;
use http::HeaderValue;

/// The names of the headers Vestibule sets, in the case they are sent.
#[derive(Debug, Clone)]
pub struct HeaderNames {
    /// User name (UPN or e-mail).
    pub user: Bytes,
    /// E-mail address.
    pub email: Bytes,
    /// Display name.
    pub name: Bytes,
    /// Provider that signed the user in.
    pub provider: Bytes,
    /// Tenant name.
    pub tenant: Bytes,
    /// Signed JWT.
    pub assertion: Bytes,
    /// Request id, for correlating logs.
    pub request_id: Bytes,
}

/// `x-vestibule-` + `user` → `X-Vestibule-User`.
fn titled(prefix: &str, suffix: &str) -> Bytes {
    let mut out = String::with_capacity(prefix.len() + suffix.len());
    let mut upper = true;
    for c in prefix.chars().chain(suffix.chars()) {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    Bytes::from(out)
}

impl HeaderNames {
    /// Names under `prefix` (lower case, `-` spelling).
    pub fn new(prefix: &str) -> Self {
        Self {
            user: titled(prefix, "user"),
            email: titled(prefix, "email"),
            name: titled(prefix, "name"),
            provider: titled(prefix, "provider"),
            tenant: titled(prefix, "tenant"),
            assertion: titled(prefix, "assertion"),
            request_id: titled(prefix, "request-id"),
        }
    }
}

/// What a live session sends upstream.
#[derive(Debug)]
pub struct SessionHeaders {
    /// Headers whose values never change during the session.
    pub fixed: Vec<(Bytes, HeaderValue)>,
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
                    header = %String::from_utf8_lossy(name),
                    "identity value not injected: it contains control characters"
                ),
            }
        }
        Self {
            fixed,
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
    fn names_are_title_cased_under_the_prefix() {
        let n = HeaderNames::new("x-vestibule-");
        assert_eq!(&n.user[..], b"X-Vestibule-User");
        assert_eq!(&n.request_id[..], b"X-Vestibule-Request-Id");
    }

    #[test]
    fn plans_present_values_and_drops_unsafe_ones() {
        let n = HeaderNames::new("x-vestibule-");
        let h = SessionHeaders::prepare(&n, &identity("alice@contoso.example"), "contoso");
        let names: Vec<&[u8]> = h.fixed.iter().map(|(k, _)| &k[..]).collect();
        assert_eq!(
            names,
            vec![
                &b"X-Vestibule-User"[..],
                b"X-Vestibule-Name",
                b"X-Vestibule-Provider",
                b"X-Vestibule-Tenant"
            ]
        );
        let bad = SessionHeaders::prepare(&n, &identity("alice\r\nX-Admin: 1"), "contoso");
        assert!(bad.fixed.iter().all(|(k, _)| &k[..] != b"X-Vestibule-User"));
    }
}
