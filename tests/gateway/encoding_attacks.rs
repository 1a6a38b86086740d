//! The encoding class of signature bypasses: one token, two documents. A parser that honours
//! `encoding="UTF-7"` (libxml2, and so xmlsec1) reads `+<base64>-` runs as markup; a UTF-8
//! reader sees base64 text. The forgery below hides the signed element inside a UTF-7
//! comment-opening run and puts the victim's element in plain sight, so a verifier that
//! checks one view and reads the other lets anyone sign in as anyone. Built from real peer
//! tokens (SAML 1.1 and 2.0) and from the real Azure AD fixture; `xmlsec1` confirms each
//! forgery is live (its signature verifies under the declared encoding), and the gateway
//! must refuse every one with a 400 page, storing and forwarding nothing.

use crate::harness::*;
use crate::peers::*;
use crate::wsfed_flow::*;
use base64::Engine;
use vestibule::auth::wsfed::metadata::certificates_from_pem;
use vestibule::auth::wsfed::saml::parse_instant;
use vestibule::auth::wsfed::{verify_wresult, Expectations, SignatureAlgorithm, WsFedError};

/// UTF-7 (RFC 2152) of `s` as one shifted run: `+`, modified base64 of UTF-16BE, `-`.
fn utf7_run(s: &str) -> String {
    let utf16: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    format!(
        "+{}-",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(utf16)
    )
}

/// The forgery: every element whose text is `value` becomes
/// `+utf7(<element><!--)-<element with victim>+utf7(-->)-`, and every other `+` becomes `+-`
/// (UTF-7's escaped plus), so that under UTF-7 the document is the genuine one plus comments.
fn utf7_forgery(xml: &str, values: &[(&str, &str)], prolog: &str) -> String {
    let mut pieces: Vec<String> = Vec::new();
    let mut body = xml.to_owned();
    for (value, victim) in values {
        let needle = format!(">{value}</");
        while let Some(at) = body.find(&needle) {
            let start = body[..at].rfind('<').unwrap();
            let close = at + needle.len();
            let end = close + body[close..].find('>').unwrap() + 1;
            let element = body[start..end].to_owned();
            let forged = element.replace(value, victim);
            pieces.push(format!(
                "{}{forged}{}",
                utf7_run(&format!("{element}<!--")),
                utf7_run("-->")
            ));
            body.replace_range(start..end, &format!("\u{1}{}\u{1}", pieces.len() - 1));
        }
    }
    let mut out = body.replace('+', "+-");
    for (i, piece) in pieces.iter().enumerate() {
        out = out.replace(&format!("\u{1}{i}\u{1}"), piece);
    }
    format!("{prolog}{out}")
}

/// Declarations and byte-order marks that make libxml2 decode the rest as UTF-7, or as
/// something else that is not UTF-8.
const PROLOGS: [(&str, &str); 6] = [
    (
        "UTF-7 with standalone=\"utf-8\"",
        "<?xml version=\"1.0\" encoding=\"UTF-7\" standalone=\"utf-8\"?>",
    ),
    (
        "BOM then UTF-7",
        "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-7\"?>",
    ),
    ("lower-case utf-7", "<?xml version='1.0' encoding='utf-7'?>"),
    (
        "white space first",
        "\n<?xml version=\"1.0\" encoding=\"UTF-7\"?>",
    ),
    (
        "UTF-8 then UTF-7",
        "<?xml version=\"1.0\" encoding=\"UTF-8\" encoding=\"UTF-7\"?>",
    ),
    (
        "UTF-7 with padding",
        "<?xml  version=\"1.0\"\tencoding = \"UTF-7\" ?>",
    ),
];

const VICTIM: &str = "ceo@contoso.example";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf7_forgeries_of_real_peer_tokens_are_live_but_refused_with_nothing_stored() {
    for token in ["saml11", "saml20"] {
        let up = Upstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = make_cert(dir.path(), "idp");
        let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", token), ("ISSUER", ISSUER)]);
        let setup = wsfed_setup(up.addr, &peer);
        let gw = setup.start().await;
        let saml2 = token == "saml20";
        for (what, prolog) in PROLOGS {
            let p = start_sign_in(&gw, &peer).await;
            assert!(p.wresult.contains(">alice@contoso.example</"), "{token}");
            let forged = utf7_forgery(
                &p.wresult,
                &[
                    ("alice@contoso.example", VICTIM),
                    ("Alice Example", "The CEO"),
                ],
                prolog,
            );
            // The forgery is real: read as UTF-7, its signature holds. (xmlsec1 parses without
            // recovery, so it refuses the malformed declarations that a recovering parser,
            // like the one samael used, accepted; it checks the well-formed ones.)
            if matches!(what, "lower-case utf-7" | "UTF-7 with padding") {
                assert!(
                    xmlsec1_says_valid(&forged, &cert, saml2),
                    "{token} {what}: xmlsec1 should accept the forged signature"
                );
            }
            let r = post_wsfed(
                &gw,
                &p.binding_cookie,
                &[
                    ("wa", "wsignin1.0"),
                    ("wresult", &forged),
                    ("wctx", &p.wctx),
                ],
            )
            .await;
            assert_eq!(r.status, 400, "{token} {what}: {}", r.body);
            assert!(
                r.body.contains("not plain UTF-8 XML"),
                "{token} {what}: {}",
                r.body
            );
            assert!(session_cookie(&r).is_none(), "{token} {what}");
        }
        assert_eq!(up.hits(), 0, "{token}: nothing forwarded");
        assert_eq!(setup.session_count().await, 0, "{token}: no session stored");
        let metrics = get(gw.addr, "x", "/_vestibule/metrics", &[]).await.body;
        assert!(
            metrics.contains(&format!(
                "vestibule_rejections_total{{reason=\"encoding\",tenant=\"contoso\"}} {}",
                PROLOGS.len()
            )),
            "{metrics}"
        );
    }
}

/// Without any declaration the verifier parses as UTF-8 and the shifted runs are text: the
/// forged element is not what was signed, so the signature fails. This is the layer that
/// holds even if a declaration check were ever wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgery_without_declaration_fails_the_signature_not_only_the_prolog_check() {
    for token in ["saml11", "saml20"] {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = make_cert(dir.path(), "idp");
        let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", token), ("ISSUER", ISSUER)]);
        let genuine = peer.token(REALM).await;
        let forged = utf7_forgery(&genuine, &[("alice@contoso.example", VICTIM)], "");
        let trusted: Vec<_> = certificates_from_pem(&std::fs::read(&cert).unwrap())
            .unwrap()
            .into_iter()
            .map(|c| c.der)
            .collect();
        let issuers = vec![ISSUER.to_owned()];
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let expect = Expectations {
            realm: REALM,
            allowed_issuers: &issuers,
            now,
            skew: 300,
            algorithms: &SignatureAlgorithm::defaults(),
            max_bytes: 256 * 1024,
        };
        assert_eq!(
            verify_wresult(&genuine, &trusted, &expect).map(|a| a.subject),
            Ok("alice@contoso.example".to_owned())
        );
        assert_eq!(
            verify_wresult(&forged, &trusted, &expect),
            Err(WsFedError::BadSignature),
            "{token}"
        );
    }
}

const AAD_RSTR: &str = include_str!("../fixtures/microsoft/aad-wsfed-rstr-saml2-2017-04-23.xml");
const AAD_CERT: &[u8] = include_bytes!("../fixtures/microsoft/aad-signing-2017.crt");

#[test]
fn utf7_forgeries_of_the_real_azure_ad_token_are_refused() {
    let trusted: Vec<_> = certificates_from_pem(AAD_CERT)
        .unwrap()
        .into_iter()
        .map(|c| c.der)
        .collect();
    let issuers = vec!["https://sts.windows.net/add29489-7269-41f4-8841-b63c95564420/".to_owned()];
    let expect = Expectations {
        realm: "spn:fe78e0b4-6fe7-47e6-812c-fb75cee266a4",
        allowed_issuers: &issuers,
        now: parse_instant("2017-04-23T16:20:00Z").unwrap(),
        skew: 300,
        algorithms: &SignatureAlgorithm::defaults(),
        max_bytes: 256 * 1024,
    };
    let genuine = verify_wresult(AAD_RSTR, &trusted, &expect).unwrap();
    let values = [
        (
            "User1@Cyrano.onmicrosoft.com",
            "Admin@Cyrano.onmicrosoft.com",
        ),
        (genuine.subject.as_str(), "attacker-chosen-subject"),
    ];
    for (what, prolog) in PROLOGS {
        let forged = utf7_forgery(AAD_RSTR, &values, prolog);
        assert!(
            matches!(
                verify_wresult(&forged, &trusted, &expect),
                Err(WsFedError::Encoding(_))
            ),
            "{what}"
        );
    }
    let bare = utf7_forgery(AAD_RSTR, &values, "");
    assert_eq!(
        verify_wresult(&bare, &trusted, &expect),
        Err(WsFedError::BadSignature)
    );
}

/// Other encodings and declaration quirks around a genuine token: each is refused before any
/// parser decodes it, even where the bytes would read the same (ASCII-only tokens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarations_naming_other_encodings_are_refused_through_the_gateway() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "idp");
    let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", "saml20"), ("ISSUER", ISSUER)]);
    let setup = wsfed_setup(up.addr, &peer);
    let gw = setup.start().await;
    let cases = [
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>",
        "<?xml version=\"1.0\" encoding=\"UTF-16BE\"?>",
        "<?xml version=\"1.0\" encoding=\"UTF-32\"?>",
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>",
        "<?xml version=\"1.0\" encoding=\"windows-1252\"?>",
        "<?xml version=\"1.0\" encoding=\"US-ASCII\"?>",
        "<?xml version=\"1.0\" encoding=\"Shift_JIS\"?>",
        "<?xml version=\"1.0\" encoding=\"utf8\"?>",
        "<?xml version=\"1.1\" encoding=\"UTF-8\"?>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"utf-8\"?>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"",
        "\u{feff}",
        "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
        " <?xml version=\"1.0\" encoding=\"UTF-8\"?>",
    ];
    for prolog in cases {
        let p = start_sign_in(&gw, &peer).await;
        let wresult = format!("{prolog}{}", p.wresult);
        let r = post_wsfed(
            &gw,
            &p.binding_cookie,
            &[
                ("wa", "wsignin1.0"),
                ("wresult", &wresult),
                ("wctx", &p.wctx),
            ],
        )
        .await;
        assert_eq!(r.status, 400, "{prolog:?}: {}", r.body);
        assert!(
            r.body.contains("not plain UTF-8 XML"),
            "{prolog:?}: {}",
            r.body
        );
        assert!(session_cookie(&r).is_none(), "{prolog:?}");
    }
    // Bytes that are not UTF-8 at all, percent-encoded in the form: refused, not repaired.
    let p = start_sign_in(&gw, &peer).await;
    let body = format!(
        "wa=wsignin1.0&wctx={}&wresult={}%FF",
        urlencode(&p.wctx),
        urlencode(&p.wresult)
    );
    let r = raw(
        gw.addr,
        &format!(
            "POST /_vestibule/wsfed HTTP/1.1\r\nHost: crm.contoso.localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nCookie: {}\r\nConnection: close\r\n\r\n{body}",
            body.len(),
            p.binding_cookie
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("not valid UTF-8"), "{}", r.body);
    // A plain UTF-8 declaration is fine: a sign-in with one completes.
    let p = start_sign_in(&gw, &peer).await;
    let ok = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>{}", p.wresult);
    let r = post_wsfed(
        &gw,
        &p.binding_cookie,
        &[("wa", "wsignin1.0"), ("wresult", &ok), ("wctx", &p.wctx)],
    )
    .await;
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(session_cookie(&r).is_some());
    assert_eq!(setup.session_count().await, 1, "only the genuine sign-in");
    assert_eq!(up.hits(), 0);
}
