//! What a token endpoint's answer to a refresh means (no I/O): new tokens, a grant that is
//! gone (the user consents again), a passing failure (back off, keep serving the current
//! token), or the gateway's own client refused (an operator's problem).
//!
//! Azure AD throttles user-facing token requests not with 429 but with `400 invalid_grant`
//! carrying `AADSTS50196` ("client request loop"): read as a grant that is gone, it would send
//! every user back through consent at the moment the provider asks us to slow down, so it is
//! recognised before the error code.

use super::TokenSecret;

/// Azure AD's "client request loop" (throttling of user-facing token requests).
const AADSTS_LOOP: i64 = 50196;

/// The longest access-token lifetime believed (Azure AD's longest, for continuous access
/// evaluation, is 28 hours): a larger `expires_in` is cut to it, never overflows.
pub const MAX_LIFETIME_SECS: i64 = 2 * 86_400;

/// A token endpoint's answer, classified.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// New tokens (`expires_in` seconds from now).
    Tokens {
        /// The access token.
        access_token: TokenSecret,
        /// Lifetime in seconds, from `expires_in` (never from the token's contents).
        expires_in: i64,
        /// A rotated refresh token, when the server sent one.
        refresh_token: Option<TokenSecret>,
        /// Granted scopes, when the server said.
        scope: Option<String>,
    },
    /// The grant is gone (`invalid_grant`, `interaction_required`, `consent_required`).
    GrantGone {
        /// The error code.
        code: String,
    },
    /// Throttled, the provider failing, or an answer that makes no sense: try again later,
    /// after `retry_after` seconds when the server said.
    RetryLater {
        /// Why, for the log.
        reason: String,
        /// The server's `Retry-After`, seconds.
        retry_after: Option<u64>,
    },
    /// The gateway's client itself is refused (`invalid_client`, or a 401 without an error
    /// code): its secret or certificate is wrong or expired — every refresh of this provider
    /// fails alike, an operator's problem.
    ClientRefused {
        /// The error code.
        code: String,
    },
    /// This request is refused for a reason of its own (`unauthorized_client` — e.g. one
    /// customer's tenant disabled the application —, `invalid_scope`, `invalid_request`…):
    /// this token backs off for long; the provider as a whole is not judged by it.
    Refused {
        /// The error code, sanitised.
        code: String,
    },
}

/// Only the characters an OAuth error code may have, at most 64 (it reaches logs, metrics
/// and the readiness answer).
fn sanitised(code: &str) -> String {
    let code: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    if code.is_empty() {
        "refused".into()
    } else {
        code
    }
}

/// Classifies an answer: its HTTP status, body and `Retry-After` seconds.
pub fn classify(status: u16, body: &[u8], retry_after: Option<u64>) -> Answer {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |k: &str| json.get(k).and_then(|v| v.as_str());
    if status == 200 {
        let expires_in = json.get("expires_in").and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        });
        return match (text("access_token"), expires_in) {
            (Some(access), Some(expires_in)) if !access.is_empty() => Answer::Tokens {
                access_token: TokenSecret::new(access),
                expires_in: expires_in.clamp(0, MAX_LIFETIME_SECS),
                refresh_token: text("refresh_token")
                    .filter(|r| !r.is_empty())
                    .map(TokenSecret::new),
                scope: text("scope").map(str::to_owned),
            },
            _ => Answer::RetryLater {
                reason: "answer without access_token or expires_in".into(),
                retry_after,
            },
        };
    }
    let error = text("error").unwrap_or_default();
    let looping = json
        .get("error_codes")
        .and_then(|v| v.as_array())
        .is_some_and(|codes| codes.iter().any(|c| c.as_i64() == Some(AADSTS_LOOP)))
        || text("error_description").is_some_and(|d| d.contains("AADSTS50196"));
    if looping {
        return Answer::RetryLater {
            reason: "throttled (AADSTS50196)".into(),
            retry_after,
        };
    }
    match (status, error) {
        (400 | 401, "invalid_grant" | "interaction_required" | "consent_required") => {
            Answer::GrantGone {
                code: error.to_owned(),
            }
        }
        // RFC 6749 §4.1.2.1 codes a server may also send from its token endpoint.
        (_, "temporarily_unavailable" | "server_error") => Answer::RetryLater {
            reason: sanitised(error),
            retry_after,
        },
        (400 | 401, "invalid_client") | (401, "") => Answer::ClientRefused {
            code: "invalid_client".into(),
        },
        (400 | 401 | 403, _) => Answer::Refused {
            code: sanitised(error),
        },
        (status, _) => Answer::RetryLater {
            reason: format!("status {status}"),
            retry_after,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_need_an_access_token_and_a_lifetime() {
        let ok = classify(
            200,
            br#"{"access_token":"a","expires_in":"3599","refresh_token":"r","scope":"s"}"#,
            None,
        );
        assert_eq!(
            ok,
            Answer::Tokens {
                access_token: TokenSecret::new("a"),
                expires_in: 3599,
                refresh_token: Some(TokenSecret::new("r")),
                scope: Some("s".into()),
            }
        );
        for body in [
            &br#"{"access_token":"a"}"#[..],
            br#"{"expires_in":60}"#,
            br#"{"access_token":"","expires_in":60}"#,
            b"<html>",
        ] {
            assert!(matches!(
                classify(200, body, None),
                Answer::RetryLater { .. }
            ));
        }
        let no_rotation = classify(200, br#"{"access_token":"a","expires_in":60}"#, None);
        assert!(matches!(
            no_rotation,
            Answer::Tokens {
                refresh_token: None,
                ..
            }
        ));
    }

    #[test]
    fn a_gone_grant_is_told_apart_from_throttling() {
        for code in ["invalid_grant", "interaction_required", "consent_required"] {
            let body = format!(r#"{{"error":"{code}"}}"#);
            assert_eq!(
                classify(400, body.as_bytes(), None),
                Answer::GrantGone { code: code.into() }
            );
        }
        // Azure AD's throttling of user-facing requests: invalid_grant + AADSTS50196.
        for body in [
            &br#"{"error":"invalid_grant","error_description":"AADSTS50196: The server terminated an operation because it encountered a client request loop.","error_codes":[50196]}"#[..],
            br#"{"error":"invalid_grant","error_codes":[50196]}"#,
            br#"{"error":"invalid_grant","error_description":"AADSTS50196: loop"}"#,
        ] {
            assert!(matches!(
                classify(400, body, Some(30)),
                Answer::RetryLater {
                    retry_after: Some(30),
                    ..
                }
            ));
        }
    }

    #[test]
    fn passing_failures_retry_and_client_failures_are_the_operators() {
        for (status, body) in [
            (429, &b""[..]),
            (500, b"{}"),
            (503, br#"{"error":"temporarily_unavailable"}"#),
            (400, br#"{"error":"temporarily_unavailable"}"#),
            (502, b"<html>bad gateway</html>"),
            (404, b""),
        ] {
            assert!(
                matches!(classify(status, body, None), Answer::RetryLater { .. }),
                "{status}"
            );
        }
        assert_eq!(
            classify(401, br#"{"error":"invalid_client"}"#, None),
            Answer::ClientRefused {
                code: "invalid_client".into()
            }
        );
        assert_eq!(
            classify(401, b"", None),
            Answer::ClientRefused {
                code: "invalid_client".into()
            }
        );
        // One tenant's disabled application, a scope: this token's problem, not the client's.
        assert_eq!(
            classify(
                400,
                br#"{"error":"unauthorized_client","error_codes":[700016]}"#,
                None
            ),
            Answer::Refused {
                code: "unauthorized_client".into()
            }
        );
        assert_eq!(
            classify(400, br#"{"error":"invalid_scope\n<script>"}"#, None),
            Answer::Refused {
                code: "invalid_scopescript".into()
            }
        );
        assert_eq!(
            classify(403, b"", None),
            Answer::Refused {
                code: "refused".into()
            }
        );
    }
}
