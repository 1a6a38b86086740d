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

/// Parses an `application/x-www-form-urlencoded` body. A field given twice is refused: which
/// copy counts would otherwise depend on the parser. Values must decode to UTF-8 exactly: the
/// usual decoders replace bad bytes with U+FFFD, a silent repair of the very bytes a signature
/// is checked over.
pub fn parse_form(body: &[u8]) -> Result<Response, WsFedError> {
    let mut action = None;
    let mut result = None;
    let mut context = None;
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let slot = match form_decode(k)?.as_str() {
            "wa" => &mut action,
            "wresult" => &mut result,
            "wctx" => &mut context,
            _ => continue,
        };
        if slot.replace(form_decode(v)?).is_some() {
            return Err(WsFedError::BadForm("a field appears twice"));
        }
    }
    Ok(Response {
        action: action.ok_or(WsFedError::BadForm("no wa"))?,
        result,
        context,
    })
}

/// One form component: `+` is a space, `%XX` a byte, and the bytes must be UTF-8.
fn form_decode(raw: &[u8]) -> Result<String, WsFedError> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
    String::from_utf8(bytes).map_err(|_| WsFedError::Encoding("the form is not valid UTF-8"))
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
