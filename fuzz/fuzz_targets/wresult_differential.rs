//! Differential fuzzing of "what is verified is what is read". For any input the WS-Fed
//! verifier accepts, the identity it returns must equal
//!   1. the identity in the signed canonical bytes, read here by a plain string scan (not
//!      roxmltree, not libxml2) of what `vestibule_xmlsig` says the digest covered, and
//!   2. the identity the trusted IdP actually signed (the seed token's): nobody without the
//!      IdP's key can make the verifier accept another one.
//! Any difference panics: that is a signature bypass.
//!
//! Two real tokens are trusted at their issue time: the Azure AD SAML 2.0 RSTR and the ADFS
//! SAML 1.1 assertion (wrapped in an unsigned RSTR, as ADFS sends it). Inputs take three
//! shapes, chosen by the first byte:
//!   * raw: the rest of the input is the whole `wresult` (seeds: the tokens themselves), so
//!     the fuzzer mutates envelopes, prologs, white space, namespaces, anything;
//!   * prolog: the rest is put before a genuine token (declarations, byte-order marks,
//!     encodings, white space: what decides how a parser decodes everything after it);
//!   * utf7: the rest is a prolog put before the UTF-7 forgery of a genuine token (the
//!     signed subject hidden in a shifted comment run, a forged one in plain sight). If any
//!     prolog makes the verifier read UTF-7 while the claim reader reads UTF-8, the forged
//!     identity gets through and check 2 fires.
#![no_main]

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vestibule::auth::wsfed::metadata::certificates_from_pem;
use vestibule::auth::wsfed::saml::parse_instant;
use vestibule::auth::wsfed::{verify_wresult, CertificateDer, Expectations, SignatureAlgorithm};
use vestibule_xmlsig::{verify_enveloped, Algorithm, VerifyingKey};

struct Seed {
    xml: String,
    trusted: Vec<CertificateDer>,
    key: VerifyingKey,
    issuers: Vec<String>,
    realm: &'static str,
    now: i64,
    id_attribute: &'static str,
    subject: &'static str,
    subject_tag: &'static str,
}

fn key(pem: &[u8]) -> (Vec<CertificateDer>, VerifyingKey) {
    let certs: Vec<_> = certificates_from_pem(pem)
        .unwrap()
        .into_iter()
        .map(|c| c.der)
        .collect();
    let key = VerifyingKey::from_certificate_der(certs[0].der_data()).unwrap();
    (certs, key)
}

fn seeds() -> &'static [Seed; 2] {
    static S: OnceLock<[Seed; 2]> = OnceLock::new();
    S.get_or_init(|| {
        let (aad_trusted, aad_key) =
            key(include_bytes!("../../tests/fixtures/microsoft/aad-signing-2017.crt"));
        let (adfs_trusted, adfs_key) = key(include_bytes!(
            "../../tests/fixtures/microsoft/adfs-saml11-assertion-2013-07-11.crt"
        ));
        let adfs = include_str!("../../tests/fixtures/microsoft/adfs-saml11-assertion-2013-07-11.xml");
        [
            Seed {
                xml: include_str!("../../tests/fixtures/microsoft/aad-wsfed-rstr-saml2-2017-04-23.xml")
                    .to_owned(),
                trusted: aad_trusted,
                key: aad_key,
                issuers: vec!["https://sts.windows.net/add29489-7269-41f4-8841-b63c95564420/".into()],
                realm: "spn:fe78e0b4-6fe7-47e6-812c-fb75cee266a4",
                now: parse_instant("2017-04-23T16:20:00Z").unwrap(),
                id_attribute: "ID",
                subject: "RrX3SPSxDw6z4KHaKB2V_mnv0G-LbRZdYvo1RQa1L7s",
                subject_tag: "NameID",
            },
            Seed {
                xml: format!(
                    "<t:RequestSecurityTokenResponse xmlns:t=\"http://schemas.xmlsoap.org/ws/2005/02/trust\"><t:RequestedSecurityToken>{}</t:RequestedSecurityToken></t:RequestSecurityTokenResponse>",
                    adfs.trim()
                ),
                trusted: adfs_trusted,
                key: adfs_key,
                issuers: vec!["https://test-adfs.auth0.com".into()],
                realm: "urn:auth0:auth0",
                now: parse_instant("2013-07-11T12:40:00Z").unwrap(),
                id_attribute: "AssertionID",
                subject: "john@fabrikam.com",
                subject_tag: "NameIdentifier",
            },
        ]
    })
}

/// The text of the first `<…:tag …>text</` in canonical bytes, by plain string scanning.
fn scan_subject<'a>(canonical: &'a str, tag: &str) -> Option<&'a str> {
    let open = [format!("<{tag}>"), format!("<{tag} ")]
        .into_iter()
        .chain([format!(":{tag}>"), format!(":{tag} ")])
        .filter_map(|p| canonical.find(&p))
        .min()?;
    let start = open + canonical[open..].find('>')? + 1;
    let end = start + canonical[start..].find('<')?;
    Some(canonical[start..end].trim())
}

fn utf7_run(s: &str) -> String {
    let utf16: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    format!("+{}-", base64::engine::general_purpose::STANDARD_NO_PAD.encode(utf16))
}

/// The subject element of `xml` hidden in a UTF-7 comment run, a forged one in plain sight.
fn utf7_forgery(seed: &Seed) -> String {
    let xml = &seed.xml;
    let at = xml.find(&format!(">{}</", seed.subject)).unwrap();
    let start = xml[..at].rfind('<').unwrap();
    let end = at + xml[at..].find('>').unwrap() + 1;
    let end = end + xml[end..].find('>').unwrap() + 1;
    let element = &xml[start..end];
    let forged = element.replace(seed.subject, "mallory@evil.example");
    let run = format!("{}{forged}{}", utf7_run(&format!("{element}<!--")), utf7_run("-->"));
    format!(
        "{}\u{1}{}",
        &xml[..start].replace('+', "+-"),
        &xml[end..].replace('+', "+-")
    )
    .replace('\u{1}', &run)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(rest) = std::str::from_utf8(rest) else { return };
    let seed = &seeds()[usize::from(selector & 1)];
    let doc = match (selector >> 1) % 3 {
        0 => rest.to_owned(),
        1 => format!("{rest}{}", seed.xml),
        _ => format!("{rest}{}", utf7_forgery(seed)),
    };
    let algorithms = SignatureAlgorithm::defaults();
    let expect = Expectations {
        realm: seed.realm,
        allowed_issuers: &seed.issuers,
        now: seed.now,
        skew: 300,
        algorithms: &algorithms,
        max_bytes: 256 * 1024,
    };
    let Ok(accepted) = verify_wresult(&doc, &seed.trusted, &expect) else { return };
    // Replaying a corpus with VESTIBULE_FUZZ_REPORT=1 lists what was accepted (one line per
    // input), so a run can say how many accepted inputs the checks below were applied to.
    if std::env::var_os("VESTIBULE_FUZZ_REPORT").is_some() {
        eprintln!("accepted seed={} mode={} subject={}", selector & 1, (selector >> 1) % 3, accepted.subject);
    }
    assert_eq!(accepted.subject, seed.subject, "accepted an identity the IdP never signed");
    let signed = verify_enveloped(
        &doc,
        seed.id_attribute,
        &[&seed.key],
        &[Algorithm::RsaSha256, Algorithm::RsaSha384, Algorithm::RsaSha512],
    )
    .expect("the verifier accepted what the signature layer refuses");
    assert_eq!(
        scan_subject(&signed.canonical, seed.subject_tag),
        Some(accepted.subject.as_str()),
        "the claim reader and the signed bytes disagree"
    );
});
