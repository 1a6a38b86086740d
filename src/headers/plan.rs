//! The identity headers of a session, computed once when the session is loaded and reused by
//! every request that presents it.

use super::sanitize::safe_value;
use crate::clock::UnixSeconds;
use crate::crypto::KeyRing;
use crate::identity::Identity;
use crate::session::{Prepared, Preparer};
use crate::tokens::TokenId;
use crate::upstream_jwt::UpstreamJwtSigner;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use std::sync::Arc;

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
    /// The CRM user id the tenant's directory matched.
    pub crm_user: HeaderName,
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
            crm_user: named(prefix, "crm-user"),
            assertion: named(prefix, "assertion"),
            request_id: named(prefix, "request-id"),
        }
    }
}

/// What a live session sends upstream: its identity header values and its current
/// assertion, all in one buffer (one allocation per session: 100,000 cached sessions must
/// fit in well under 150 MB).
#[derive(Debug, Clone)]
pub struct SessionHeaders {
    /// User, e-mail, display name, provider, CRM user id, then the assertion.
    buf: Bytes,
    /// Where each identity value is in `buf` (`HeaderNames` order); empty when absent or
    /// unsafe. Offsets rather than five `HeaderValue`s: 20 bytes instead of 200 per session,
    /// for a re-check of ~100 bytes per request.
    spans: [(u16, u16); IDENTITY_VALUES],
    assertion: Option<HeaderValue>,
    fresh_until: UnixSeconds,
    /// The user's document-token owner digests (one per ring key, the current first).
    token_owners: Box<[String]>,
    /// Whether the account can hold per-user Office 365 document tokens
    /// (`Identity::microsoft_account`).
    microsoft_account: bool,
}

/// User, e-mail, display name, provider, CRM user id.
const IDENTITY_VALUES: usize = 5;

/// When signing fails, how soon a later request tries again.
const MINT_RETRY_SECS: i64 = 10;

/// Longest identity value sent as a header; longer ones are left out (and logged).
const MAX_VALUE_LEN: usize = 4096;

impl SessionHeaders {
    /// The headers for `identity` in `tenant` at `now`, with a freshly signed assertion. A
    /// value with a control character is left out (and logged): a line break in a claim must
    /// never become a header of its own.
    pub fn prepare(
        identity: &Identity,
        tenant: &str,
        signer: &UpstreamJwtSigner,
        now: UnixSeconds,
    ) -> Self {
        let minted = signer.mint(identity, tenant, now);
        let candidates = [
            ("user", Some(identity.user.as_str())),
            ("email", identity.email.as_deref()),
            ("name", identity.name.as_deref()),
            ("provider", Some(identity.provider.as_str())),
            ("crm-user", identity.crm.as_ref().map(|u| u.id.as_str())),
        ];
        let mut buf = Vec::with_capacity(
            candidates
                .iter()
                .map(|(_, v)| v.map_or(0, str::len))
                .sum::<usize>()
                + minted.as_ref().map_or(0, |m| m.jwt.len()),
        );
        let mut spans = [(0u16, 0u16); IDENTITY_VALUES];
        for (i, (header, value)) in candidates.into_iter().enumerate() {
            let Some(value) = value else { continue };
            if let Some(earlier) = spans[..i]
                .iter()
                .find(|(a, b)| &buf[usize::from(*a)..usize::from(*b)] == value.as_bytes())
            {
                // E-mail and user name are often the same string.
                spans[i] = *earlier;
            } else if value.len() <= MAX_VALUE_LEN
                && safe_value(value)
                && HeaderValue::from_str(value).is_ok()
            {
                let start = buf.len() as u16;
                buf.extend_from_slice(value.as_bytes());
                spans[i] = (start, buf.len() as u16);
            } else {
                tracing::warn!(
                    header,
                    "identity value not injected: it contains control characters or is too long"
                );
            }
        }
        let jwt_start = buf.len();
        if let Some(m) = &minted {
            buf.extend_from_slice(m.jwt.as_bytes());
        }
        let buf = Bytes::from(buf);
        let assertion = minted.as_ref().map(|_| {
            HeaderValue::from_maybe_shared(buf.slice(jwt_start..))
                .expect("a compact JWT is a valid header value")
        });
        Self {
            buf,
            spans,
            assertion,
            fresh_until: minted.map_or(now + MINT_RETRY_SECS, |m| m.reuse_until),
            token_owners: Box::default(),
            microsoft_account: identity.microsoft_account(),
        }
    }

    /// The session manager's way of deriving a session's headers, signing with `signer`;
    /// the document-token owner digests come from `keys`.
    pub fn preparer(signer: Arc<UpstreamJwtSigner>, keys: Arc<KeyRing>) -> Box<Preparer<Self>> {
        Box::new(move |identity, tenant, now| {
            let mut headers = Self::prepare(identity, tenant, &signer, now);
            headers.token_owners =
                TokenId::user_owners(&keys, &identity.issuer, &identity.subject).into();
            headers
        })
    }

    /// The owner digests under which this user's document tokens are stored.
    pub fn token_owners(&self) -> &[String] {
        &self.token_owners
    }

    /// Whether the account can hold per-user Office 365 document tokens.
    pub fn microsoft_account(&self) -> bool {
        self.microsoft_account
    }

    /// Where identity value `i` is in `buf`; `None` when it is absent.
    fn span(&self, i: usize) -> Option<std::ops::Range<usize>> {
        let (start, end) = self.spans[i];
        (start < end).then(|| usize::from(start)..usize::from(end))
    }

    fn value(&self, i: usize) -> Option<HeaderValue> {
        HeaderValue::from_maybe_shared(self.buf.slice(self.span(i)?)).ok()
    }

    /// The identity headers to send, with their names.
    pub fn identity_headers<'a>(
        &'a self,
        names: &'a HeaderNames,
    ) -> impl Iterator<Item = (&'a HeaderName, HeaderValue)> + 'a {
        [
            &names.user,
            &names.email,
            &names.name,
            &names.provider,
            &names.crm_user,
        ]
        .into_iter()
        .enumerate()
        .filter_map(|(i, name)| Some((name, self.value(i)?)))
    }

    /// The signed assertion, when signing succeeded.
    pub fn assertion(&self) -> Option<&HeaderValue> {
        self.assertion.as_ref()
    }

    /// The user name, for logs.
    pub fn user(&self) -> Option<&[u8]> {
        Some(&self.buf[self.span(0)?])
    }
}

impl Prepared for SessionHeaders {
    fn fresh_until(&self) -> UnixSeconds {
        self.fresh_until
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
            crm: None,
            directory_key: None,
        }
    }

    #[test]
    fn names_are_under_the_prefix() {
        let n = HeaderNames::new("x-vestibule-");
        assert_eq!(n.user.as_str(), "x-vestibule-user");
        assert_eq!(n.request_id.as_str(), "x-vestibule-request-id");
    }

    fn signer() -> UpstreamJwtSigner {
        crate::upstream_jwt::dev_signer()
    }

    #[test]
    fn plans_present_values_and_drops_unsafe_ones() {
        let n = HeaderNames::new("x-vestibule-");
        let signer = signer();
        let h = SessionHeaders::prepare(
            &identity("alice@contoso.example"),
            "contoso",
            &signer,
            1_000,
        );
        let names: Vec<&str> = h.identity_headers(&n).map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "x-vestibule-user",
                "x-vestibule-name",
                "x-vestibule-provider"
            ]
        );
        assert_eq!(h.user().unwrap(), b"alice@contoso.example");
        let jwt = h.assertion().unwrap().to_str().unwrap();
        assert_eq!(jwt.split('.').count(), 3);
        assert!(h.fresh_until() > 1_000 && h.fresh_until() < 1_000 + 300);

        let mut same = identity("alice@contoso.example");
        same.email = Some("alice@contoso.example".into());
        let h = SessionHeaders::prepare(&same, "contoso", &signer, 1_000);
        let values: Vec<(&str, String)> = h
            .identity_headers(&n)
            .map(|(k, v)| {
                (
                    k.as_str(),
                    String::from_utf8(v.as_bytes().to_vec()).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            values[0],
            ("x-vestibule-user", "alice@contoso.example".into())
        );
        assert_eq!(
            values[1],
            ("x-vestibule-email", "alice@contoso.example".into())
        );

        let bad =
            SessionHeaders::prepare(&identity("alice\r\nX-Admin: 1"), "contoso", &signer, 1_000);
        assert!(bad.user().is_none());
        assert!(bad.identity_headers(&n).all(|(k, _)| *k != n.user));
    }
}
