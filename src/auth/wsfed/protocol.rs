//! WS-Federation 1.2 passive requestor messages: the sign-in and sign-out redirects, and the
//! form the identity provider posts back.

use super::error::WsFedError;

/// `wa` of a sign-in request / response.
pub const SIGN_IN: &str = "wsignin1.0";
/// `wa` of a sign-out request.
pub const SIGN_OUT: &str = "wsignout1.0";
/// `wa` the identity provider sends to end a session it started.
pub const SIGN_OUT_CLEANUP: &str = "wsignoutcleanup1.0";

/// The redirect that starts a sign-in.
pub fn sign_in_url(endpoint: &url::Url, realm: &str, reply: &str, context: &str) -> String {
    let mut url = endpoint.clone();
    url.query_pairs_mut()
        .append_pair("wa", SIGN_IN)
        .append_pair("wtrealm", realm)
        .append_pair("wreply", reply)
        .append_pair("wctx", context);
    url.into()
}

/// The redirect that signs the user out at the identity provider, then back to `reply`.
pub fn sign_out_url(endpoint: &url::Url, realm: &str, reply: &str) -> String {
    let mut url = endpoint.clone();
    url.query_pairs_mut()
        .append_pair("wa", SIGN_OUT)
        .append_pair("wtrealm", realm)
        .append_pair("wreply", reply);
    url.into()
}

/// The fields of a posted sign-in response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `wa`.
    pub action: String,
    /// `wresult`: the RSTR XML.
    pub result: Option<String>,
    /// `wctx`: our sealed login state.
    pub context: Option<String>,
}

/// Parses a posted sign-in response (strictly: see `auth::form`).
pub fn parse_form(body: &[u8]) -> Result<Response, WsFedError> {
    let mut fields =
        crate::auth::form::parse(body, &["wa", "wresult", "wctx"]).map_err(|e| match e {
            crate::auth::form::FormError::Duplicate => WsFedError::BadForm("a field appears twice"),
            crate::auth::form::FormError::NotUtf8 => {
                WsFedError::Encoding("the form is not valid UTF-8")
            }
        })?;
    Ok(Response {
        action: fields.remove("wa").ok_or(WsFedError::BadForm("no wa"))?,
        result: fields.remove("wresult"),
        context: fields.remove("wctx"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_redirects_with_encoded_parameters() {
        let ep = url::Url::parse("https://login.microsoftonline.com/contoso/wsfed").unwrap();
        let u = sign_in_url(
            &ep,
            "spn:abc",
            "https://crm.example/_vestibule/wsfed",
            "x&y",
        );
        assert_eq!(
            u,
            "https://login.microsoftonline.com/contoso/wsfed?wa=wsignin1.0&wtrealm=spn%3Aabc&wreply=https%3A%2F%2Fcrm.example%2F_vestibule%2Fwsfed&wctx=x%26y"
        );
        assert!(sign_out_url(&ep, "spn:abc", "https://crm.example/").contains("wa=wsignout1.0"));
    }

    #[test]
    fn parses_the_posted_form_and_refuses_duplicates() {
        let r = parse_form(b"wa=wsignin1.0&wresult=%3Cx%2F%3E&wctx=abc").unwrap();
        assert_eq!(r.result.as_deref(), Some("<x/>"));
        assert_eq!(r.context.as_deref(), Some("abc"));
        assert_eq!(
            parse_form(b"wa=wsignin1.0&wresult=a&wresult=b"),
            Err(WsFedError::BadForm("a field appears twice"))
        );
        assert_eq!(parse_form(b"wresult=a"), Err(WsFedError::BadForm("no wa")));
        let r = parse_form(b"wa=wsignin1.0&wresult=a+b%2B%C3%A9&x&&wctx=").unwrap();
        assert_eq!(r.result.as_deref(), Some("a b+\u{e9}"));
        assert_eq!(r.context.as_deref(), Some(""));
        // Not repaired into U+FFFD: refused.
        for bad in [
            &b"wa=wsignin1.0&wresult=%FF"[..],
            b"wa=wsignin1.0&wresult=\xc3",
            b"wa=%C3",
        ] {
            assert!(
                matches!(parse_form(bad), Err(WsFedError::Encoding(_))),
                "{bad:?}"
            );
        }
    }
}
