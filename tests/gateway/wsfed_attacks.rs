//! The attack suite: real tokens from the npm `wsfed` peer, manipulated the way attackers do,
//! each refused by the verifier. Where `xmlsec1` still calls the signature valid, the test says
//! so: those are the cases a signature check alone would let through.

use crate::harness::*;
use crate::peers::*;
use crate::spec;
use crate::wsfed_flow::*;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use vestibule::auth::wsfed::metadata::certificates_from_pem;
use vestibule::auth::wsfed::{verify_wresult, Expectations, SignatureAlgorithm, WsFedError};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

struct Lab {
    _dir: tempfile::TempDir,
    peer: WsFedPeer,
    saml2: bool,
}

impl Lab {
    fn new(token: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = make_cert(dir.path(), "idp");
        let mut all = vec![("TOKEN", token), ("ISSUER", ISSUER)];
        all.extend_from_slice(env);
        let peer = WsFedPeer::start(&cert, &key, &all);
        Self {
            _dir: dir,
            peer,
            saml2: token == "saml20",
        }
    }

    fn cert(&self) -> &Path {
        &self.peer.cert
    }

    fn verify_at(&self, xml: &str, issuers: &[&str], at: i64) -> Result<String, WsFedError> {
        let trusted: Vec<_> = certificates_from_pem(&std::fs::read(self.cert()).unwrap())
            .unwrap()
            .into_iter()
            .map(|c| c.der)
            .collect();
        let issuers: Vec<String> = issuers.iter().map(|s| s.to_string()).collect();
        let expect = Expectations {
            realm: REALM,
            allowed_issuers: &issuers,
            now: at,
            skew: 300,
            algorithms: &SignatureAlgorithm::defaults(),
            max_bytes: 256 * 1024,
        };
        verify_wresult(xml, &trusted, &expect).map(|a| a.subject)
    }

    fn verify(&self, xml: &str) -> Result<String, WsFedError> {
        self.verify_at(xml, &[ISSUER], now())
    }

    fn oracle(&self, xml: &str) -> bool {
        xmlsec1_says_valid(xml, self.cert(), self.saml2)
    }
}

/// The assertion element of a single-line token.
fn assertion(xml: &str) -> &str {
    let start = xml.find("<saml:Assertion").unwrap();
    let end = xml.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
    &xml[start..end]
}

fn without_signature(a: &str) -> String {
    let s = a.find("<Signature").unwrap();
    let e = a.find("</Signature>").unwrap() + "</Signature>".len();
    format!("{}{}", &a[..s], &a[e..])
}

fn evil_copy(a: &str) -> String {
    without_signature(a)
        .replace("alice@contoso.example", "mallory@evil.example")
        .replacen("ID=\"_", "ID=\"_evil", 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genuine_tokens_of_both_versions_verify() {
    for token in ["saml11", "saml20"] {
        let lab = Lab::new(token, &[]);
        let xml = lab.peer.token(REALM).await;
        assert_eq!(
            lab.verify(&xml),
            Ok("alice@contoso.example".into()),
            "{token}"
        );
        assert!(lab.oracle(&xml));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_assertion_prepended_before_the_signed_one() {
    for token in ["saml11", "saml20"] {
        let lab = Lab::new(token, &[]);
        let xml = lab.peer.token(REALM).await;
        let a = assertion(&xml);
        let attack = xml.replacen(a, &format!("{}{a}", evil_copy(a)), 1);
        assert!(lab.oracle(&attack), "xmlsec1 calls the signature valid");
        assert_eq!(
            lab.verify(&attack),
            Err(WsFedError::MultipleAssertions),
            "{token}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_assertion_wrapped_inside_an_evil_one() {
    for token in ["saml11", "saml20"] {
        let lab = Lab::new(token, &[]);
        let xml = lab.peer.token(REALM).await;
        let a = assertion(&xml);
        let evil = evil_copy(a);
        let close = evil.rfind("</saml:Assertion>").unwrap();
        let wrapper = format!(
            "{}<saml:Advice>{a}</saml:Advice>{}",
            &evil[..close],
            &evil[close..]
        );
        let attack = xml.replacen(a, &wrapper, 1);
        assert!(lab.oracle(&attack), "xmlsec1 calls the signature valid");
        assert_eq!(
            lab.verify(&attack),
            Err(WsFedError::MultipleAssertions),
            "{token}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_assertions_with_the_same_id() {
    let lab = Lab::new("saml20", &[]);
    let xml = lab.peer.token(REALM).await;
    let a = assertion(&xml);
    let twin = without_signature(a).replace("alice@contoso.example", "mallory@evil.example");
    let attack = xml.replacen(a, &format!("{a}{twin}"), 1);
    assert_eq!(lab.verify(&attack), Err(WsFedError::MultipleAssertions));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_moved_to_another_element() {
    let lab = Lab::new("saml11", &[]);
    let xml = lab.peer.token(REALM).await;
    let s = xml.find("<Signature").unwrap();
    let e = xml.find("</Signature>").unwrap() + "</Signature>".len();
    let signature = &xml[s..e];
    let moved = format!("{}{}", &xml[..s], &xml[e..]).replacen(
        "</t:RequestSecurityTokenResponse>",
        &format!("{signature}</t:RequestSecurityTokenResponse>"),
        1,
    );
    assert_eq!(lab.verify(&moved), Err(WsFedError::MisplacedSignature));
    // And a Reference that points somewhere else.
    let other = xml.replacen("Reference URI=\"#", "Reference URI=\"#x", 1);
    assert_eq!(lab.verify(&other), Err(WsFedError::ReferenceMismatch));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comment_injected_into_the_name_id() {
    for token in ["saml11", "saml20"] {
        let lab = Lab::new(
            token,
            &[
                ("USER_UPN", "alice@contoso.com.evil.example"),
                ("USER_EMAIL", "x@evil.example"),
            ],
        );
        let xml = lab.peer.token(REALM).await;
        let attack = xml.replace(
            "alice@contoso.com.evil.example<",
            "alice@contoso.com<!---->.evil.example<",
        );
        assert_ne!(attack, xml);
        assert!(
            lab.oracle(&attack),
            "comments are outside the canonical form: xmlsec1 calls it valid"
        );
        assert_eq!(lab.verify(&attack), Err(WsFedError::Comments), "{token}");
        // CDATA splitting is refused the same way.
        let cdata = xml.replace(
            "alice@contoso.com.evil.example<",
            "alice@contoso.com<![CDATA[]]>.evil.example<",
        );
        assert_eq!(lab.verify(&cdata), Err(WsFedError::Comments));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctype_with_an_external_entity() {
    let lab = Lab::new("saml11", &[]);
    let xml = lab.peer.token(REALM).await;
    let attack = format!(
        "<!DOCTYPE t:RequestSecurityTokenResponse [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{}",
        xml.replacen("alice@contoso.example<", "&x;<", 1)
    );
    assert_eq!(lab.verify(&attack), Err(WsFedError::Dtd));
    let no_entity = format!("<!DOCTYPE t:RequestSecurityTokenResponse>{xml}");
    assert!(lab.oracle(&no_entity), "xmlsec1 accepts a harmless DOCTYPE");
    assert_eq!(lab.verify(&no_entity), Err(WsFedError::Dtd));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billion_laughs() {
    let lab = Lab::new("saml11", &[]);
    let xml = lab.peer.token(REALM).await;
    let mut dtd = String::from("<!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        dtd.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">",
            format!("&{prev};").repeat(10)
        ));
    }
    dtd.push_str("]>");
    let attack = format!(
        "{dtd}{}",
        xml.replacen("alice@contoso.example<", "&lol9;<", 1)
    );
    assert_eq!(lab.verify(&attack), Err(WsFedError::Dtd));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_attribute() {
    for token in ["saml11", "saml20"] {
        let lab = Lab::new(token, &[]);
        let xml = lab.peer.token(REALM).await;
        let attack = xml.replacen(">Alice Example<", ">Admin Example<", 1);
        assert_ne!(attack, xml);
        assert!(!lab.oracle(&attack));
        assert_eq!(
            lab.verify(&attack),
            Err(WsFedError::BadSignature),
            "{token}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_signature() {
    let lab = Lab::new("saml20", &[]);
    let xml = lab.peer.token(REALM).await;
    let a = assertion(&xml);
    let attack = xml.replacen(a, &without_signature(a), 1);
    assert_eq!(lab.verify(&attack), Err(WsFedError::Unsigned));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_signed_by_an_attacker_whose_certificate_sits_in_key_info() {
    for token in ["saml11", "saml20"] {
        let lab = Lab::new(token, &[]);
        let dir = tempfile::tempdir().unwrap();
        let (evil_cert, evil_key) = make_cert(dir.path(), "attacker");
        // A complete identity provider of the attacker's, claiming our issuer.
        let evil = WsFedPeer::start(
            &evil_cert,
            &evil_key,
            &[
                ("TOKEN", token),
                ("ISSUER", ISSUER),
                ("USER_UPN", "admin@contoso.example"),
            ],
        );
        let forged = evil.token(REALM).await;
        assert!(
            forged.contains("<X509Certificate>"),
            "the attacker's certificate is in KeyInfo"
        );
        assert!(
            xmlsec1_says_valid(&forged, &evil_cert, lab.saml2),
            "valid for the attacker's own certificate"
        );
        assert_eq!(
            lab.verify(&forged),
            Err(WsFedError::BadSignature),
            "{token}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_not_yet_valid() {
    let lab = Lab::new("saml20", &[("LIFETIME_SECONDS", "600")]);
    let xml = lab.peer.token(REALM).await;
    assert!(lab.oracle(&xml));
    assert_eq!(
        lab.verify_at(&xml, &[ISSUER], now() + 600 + 301),
        Err(WsFedError::Expired)
    );
    assert_eq!(
        lab.verify_at(&xml, &[ISSUER], now() - 301 - 5),
        Err(WsFedError::NotYetValid)
    );
    // Inside the skew it is still fine.
    assert!(lab.verify_at(&xml, &[ISSUER], now() + 600 + 200).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_audience() {
    for token in ["saml11", "saml20"] {
        let lab = Lab::new(token, &[]);
        let xml = lab.peer.token("https://another-app.example/").await;
        assert!(lab.oracle(&xml));
        assert_eq!(lab.verify(&xml), Err(WsFedError::WrongAudience), "{token}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_issuer() {
    let lab = Lab::new("saml11", &[]);
    let xml = lab.peer.token(REALM).await;
    assert!(lab.oracle(&xml));
    assert_eq!(
        lab.verify_at(&xml, &["https://sts.test/tenant-b/"], now()),
        Err(WsFedError::WrongIssuer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha1_signature_when_not_allowed() {
    let lab = Lab::new("saml20", &[("SIG_ALG", "rsa-sha1")]);
    let xml = lab.peer.token(REALM).await;
    assert!(xml.contains("xmldsig#rsa-sha1"));
    assert!(lab.oracle(&xml), "a valid SHA-1 signature");
    assert_eq!(lab.verify(&xml), Err(WsFedError::AlgorithmNotAllowed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_type_and_foreign_envelopes() {
    let lab = Lab::new("saml20", &[]);
    let xml = lab.peer.token(REALM).await;
    let typed = xml.replacen(
        "<t:TokenType>urn:oasis:names:tc:SAML:2.0:assertion<",
        "<t:TokenType>urn:oasis:names:tc:SAML:1.0:assertion<",
        1,
    );
    assert_ne!(typed, xml);
    assert_eq!(lab.verify(&typed), Err(WsFedError::WrongTokenType));
    let bare = assertion(&xml).to_owned();
    assert_eq!(lab.verify(&bare), Err(WsFedError::NotRstr));
    let doubled = format!(
        "<t:RequestSecurityTokenResponseCollection xmlns:t=\"http://docs.oasis-open.org/ws-sx/ws-trust/200512\">{xml}{xml}</t:RequestSecurityTokenResponseCollection>"
    );
    assert_eq!(lab.verify(&doubled), Err(WsFedError::MultipleAssertions));
}

/// Through the gateway: each refusal is a clear page, and no session is stored or request
/// forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_through_the_gateway_store_nothing() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "idp");
    let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", "saml20"), ("ISSUER", ISSUER)]);
    let setup = wsfed_setup(up.addr, &peer);
    let gw = setup.start().await;
    let sha1 = WsFedPeer::start(
        &cert,
        &key,
        &[
            ("TOKEN", "saml20"),
            ("ISSUER", ISSUER),
            ("SIG_ALG", "rsa-sha1"),
        ],
    );
    let other_tenant = WsFedPeer::start(
        &cert,
        &key,
        &[
            ("TOKEN", "saml20"),
            ("ISSUER", "https://sts.test/tenant-b/"),
        ],
    );
    let genuine = peer.token(REALM).await;
    let a = assertion(&genuine).to_owned();
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "prepended unsigned",
            genuine.replacen(&a, &format!("{}{a}", evil_copy(&a)), 1),
            403,
            "more than one assertion",
        ),
        (
            "comment",
            genuine.replace(
                "alice@contoso.example<",
                "alice@contoso.example<!---->.evil<",
            ),
            403,
            "comments or CDATA",
        ),
        (
            "doctype",
            format!("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>{genuine}"),
            403,
            "DTD",
        ),
        (
            "tampered",
            genuine.replacen(">Alice Example<", ">Admin Example<", 1),
            403,
            "not valid for any trusted certificate",
        ),
        (
            "unsigned",
            genuine.replacen(&a, &without_signature(&a), 1),
            403,
            "not signed",
        ),
        (
            "sha1",
            sha1.token(REALM).await,
            403,
            "algorithm is not allowed",
        ),
        (
            "wrong audience",
            peer.token("https://another-app.example/").await,
            403,
            "another application",
        ),
        (
            "other tenant",
            other_tenant.token(REALM).await,
            403,
            "does not accept",
        ),
        (
            "too large",
            format!("{genuine}{}", " ".repeat(300 * 1024)),
            413,
            "too large",
        ),
    ];
    for (what, wresult, status, message) in cases {
        let p = start_sign_in(&gw, &peer).await;
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
        assert_eq!(r.status, status, "{what}: {}", r.body);
        assert!(r.body.contains(message), "{what}: {}", r.body);
        assert!(r.body.contains("Sign-in refused"), "{what}");
        assert!(session_cookie(&r).is_none(), "{what}: no session cookie");
    }
    assert_eq!(up.hits(), 0, "nothing forwarded");
    let sessions = setup.session_count().await;
    assert_eq!(sessions, 0, "no session stored");
    let metrics = get(gw.addr, "x", "/_vestibule/metrics", &[]).await.body;
    assert!(
        metrics.contains(
            "vestibule_rejections_total{reason=\"multiple_assertions\",tenant=\"contoso\"} 1"
        ),
        "{metrics}"
    );
}

/// Another Azure AD tenant shares the app registration: its users must not get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_another_azure_tenant_is_refused() {
    let ours = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";
    let theirs = "99999999-4f50-4617-8293-a4b5c6d7e8f9";
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "idp");
    let their_issuer = format!("https://sts.windows.net/{theirs}/");
    let peer = WsFedPeer::start(
        &cert,
        &key,
        &[
            ("TOKEN", "saml20"),
            ("ISSUER", &their_issuer),
            ("USER_TID", theirs),
        ],
    );
    let mut setup = wsfed_setup(up.addr, &peer);
    setup.contoso().sign_in = vec![spec::SignIn::provider("corp").azure_tenant(ours)];
    let gw = setup.start().await;
    let p = start_sign_in(&gw, &peer).await;
    assert!(
        xmlsec1_says_valid(&p.wresult, &cert, true),
        "genuinely signed by the shared provider"
    );
    let r = p.complete(&gw).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("does not accept"));
    assert!(session_cookie(&r).is_none());
    assert_eq!(up.hits(), 0);
}
