//! The document-token headers a request on a document path receives: for each resource the
//! token (while valid), its expiry (RFC 3339) and a status the CRM can act on. The default
//! resource is also sent without suffix. Client copies are stripped with every other
//! `X-Vestibule-*` header before these are added.

use super::{DocumentToken, TokenStatus};
use crate::clock::UnixSeconds;
use crate::config::{DocumentProviderKind, DocumentsConfig};
use http::{HeaderName, HeaderValue};

/// What the CRM is told about a resource's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The token is attached.
    Ok,
    /// The user must grant (again): no token, or the grant was revoked.
    ConsentRequired,
    /// No usable token for now (expired and not yet refreshed, shared grant revoked,
    /// store unreachable).
    Unavailable,
    /// The user signed in with an account that cannot hold these documents (a Google
    /// sign-in where the documents are in Office 365): no grant is offered.
    UnsupportedSignIn,
}

impl Status {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ConsentRequired => "consent-required",
            Self::Unavailable => "unavailable",
            Self::UnsupportedSignIn => "unsupported-sign-in",
        }
    }
}

/// What a resource's record gave: the token, or why there is none.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A record opened.
    Found(DocumentToken),
    /// No record.
    Missing,
    /// The store could not be read or the record did not open.
    Failed,
    /// Not looked up: the signed-in account cannot hold per-user tokens of this provider.
    UnsupportedSignIn,
}

/// Header name `<prefix>document-token<suffix>`.
fn name(prefix: &str, suffix: &str) -> HeaderName {
    HeaderName::try_from(format!("{prefix}document-token{suffix}"))
        .expect("validated: prefix and resource names are header-name tokens")
}

/// What a request on a document path receives.
#[derive(Debug, Default)]
pub struct Injected {
    /// The headers to add.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The default resource's status (`None` without resources).
    pub default_status: Option<Status>,
}

/// The headers for `lookups` (one per resource of `config`, in its order) at `now`.
pub fn headers(
    prefix: &str,
    config: &DocumentsConfig,
    lookups: &[Lookup],
    now: UnixSeconds,
) -> Injected {
    let mut out = Vec::new();
    let mut default_status = None;
    for (i, ((resource, _), lookup)) in config.resources.iter().zip(lookups).enumerate() {
        let (status, token) = match lookup {
            Lookup::Found(t) => match t.status {
                TokenStatus::Ok if now < t.expires_at => {
                    match HeaderValue::from_str(t.access_token.expose()) {
                        Ok(v) => (Status::Ok, Some((v, t.expires_at))),
                        Err(_) => (Status::Unavailable, None),
                    }
                }
                TokenStatus::Ok | TokenStatus::Unavailable => (Status::Unavailable, None),
                // A shared grant is not the user's to give: they go on without it until an
                // admin connects it again.
                TokenStatus::ConsentRequired => match config.kind {
                    DocumentProviderKind::Microsoft => (Status::ConsentRequired, None),
                    DocumentProviderKind::Google => (Status::Unavailable, None),
                },
            },
            Lookup::Missing => match config.kind {
                DocumentProviderKind::Microsoft => (Status::ConsentRequired, None),
                DocumentProviderKind::Google => (Status::Unavailable, None),
            },
            Lookup::Failed => (Status::Unavailable, None),
            Lookup::UnsupportedSignIn => (Status::UnsupportedSignIn, None),
        };
        if i == 0 {
            default_status = Some(status);
        }
        let suffixes: &[String] = if i == 0 {
            &[String::new(), format!("-{resource}")]
        } else {
            &[format!("-{resource}")]
        };
        for suffix in suffixes {
            if let Some((value, expires_at)) = &token {
                out.push((name(prefix, suffix), value.clone()));
                let expires = chrono::DateTime::from_timestamp(*expires_at, 0)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default();
                out.push((
                    name(prefix, &format!("{suffix}-expires")),
                    HeaderValue::from_str(&expires).expect("RFC 3339 is header-safe"),
                ));
            }
            out.push((
                name(prefix, &format!("{suffix}-status")),
                HeaderValue::from_static(status.as_str()),
            ));
        }
    }
    Injected {
        headers: out,
        default_status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::TokenSecret;
    use std::time::Duration;

    fn config(kind: DocumentProviderKind) -> DocumentsConfig {
        DocumentsConfig {
            provider: "p".into(),
            kind,
            paths: vec!["/documents/".into()],
            resources: vec![
                ("graph".into(), vec!["Files.ReadWrite.All".into()]),
                ("sharepoint".into(), vec!["x".into()]),
            ],
            system_user: None,
            admins: vec![],
            refresh_margin: Duration::from_secs(300),
        }
    }

    fn token(status: TokenStatus, expires_at: i64) -> Lookup {
        Lookup::Found(DocumentToken {
            access_token: TokenSecret::new("at-value"),
            expires_at,
            refresh_token: None,
            scope: String::new(),
            status,
            owner_key: None,
        })
    }

    fn get<'a>(h: &'a Injected, name: &str) -> Option<&'a str> {
        h.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.to_str().unwrap())
    }

    #[test]
    fn a_valid_token_goes_with_its_expiry_and_the_default_also_without_suffix() {
        let h = headers(
            "x-vestibule-",
            &config(DocumentProviderKind::Microsoft),
            &[token(TokenStatus::Ok, 1_700_000_000), Lookup::Missing],
            1_600_000_000,
        );
        assert_eq!(get(&h, "x-vestibule-document-token"), Some("at-value"));
        assert_eq!(
            get(&h, "x-vestibule-document-token-graph"),
            Some("at-value")
        );
        assert_eq!(
            get(&h, "x-vestibule-document-token-expires"),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(get(&h, "x-vestibule-document-token-status"), Some("ok"));
        assert_eq!(get(&h, "x-vestibule-document-token-sharepoint"), None);
        assert_eq!(
            get(&h, "x-vestibule-document-token-sharepoint-status"),
            Some("consent-required")
        );
    }

    #[test]
    fn expired_revoked_missing_and_unreadable_tokens_send_only_a_status() {
        let c = config(DocumentProviderKind::Microsoft);
        for (lookup, status) in [
            (token(TokenStatus::Ok, 100), "unavailable"),
            (
                token(TokenStatus::ConsentRequired, 9_999),
                "consent-required",
            ),
            (token(TokenStatus::Unavailable, 9_999), "unavailable"),
            (Lookup::Failed, "unavailable"),
        ] {
            let h = headers("x-vestibule-", &c, &[lookup, Lookup::Missing], 1_000);
            assert_eq!(get(&h, "x-vestibule-document-token"), None);
            assert_eq!(get(&h, "x-vestibule-document-token-status"), Some(status));
        }
        // Another provider's account on a Microsoft tenant: said so, never a consent detour.
        let h = headers(
            "x-vestibule-",
            &c,
            &[Lookup::UnsupportedSignIn, Lookup::UnsupportedSignIn],
            1_000,
        );
        assert_eq!(h.default_status, Some(Status::UnsupportedSignIn));
        assert_eq!(get(&h, "x-vestibule-document-token"), None);
        assert_eq!(
            get(&h, "x-vestibule-document-token-status"),
            Some("unsupported-sign-in")
        );
        assert_eq!(
            get(&h, "x-vestibule-document-token-sharepoint-status"),
            Some("unsupported-sign-in")
        );
        let google = config(DocumentProviderKind::Google);
        // A revoked shared grant is not the user's to give again: unavailable.
        let h = headers(
            "x-vestibule-",
            &google,
            &[token(TokenStatus::ConsentRequired, 9_999), Lookup::Missing],
            1_000,
        );
        assert_eq!(get(&h, "x-vestibule-document-token"), None);
        assert_eq!(
            get(&h, "x-vestibule-document-token-status"),
            Some("unavailable")
        );
        let h = headers(
            "x-vestibule-",
            &google,
            &[Lookup::Missing, Lookup::Missing],
            1_000,
        );
        assert_eq!(
            get(&h, "x-vestibule-document-token-status"),
            Some("unavailable")
        );
    }
}
