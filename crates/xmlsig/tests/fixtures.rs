//! The verifier against real Microsoft tokens (the project's tests/fixtures/microsoft) and the
//! inputs that must never verify.

use base64::Engine;
use vestibule_xmlsig::{verify_enveloped, Algorithm, Error, VerifyingKey};

const AAD_RSTR: &str =
    include_str!("../../../tests/fixtures/microsoft/aad-wsfed-rstr-saml2-2017-04-23.xml");
const AAD_CERT: &str = include_str!("../../../tests/fixtures/microsoft/aad-signing-2017.crt");
const ADFS_ASSERTION: &str =
    include_str!("../../../tests/fixtures/microsoft/adfs-saml11-assertion-2013-07-11.xml");
const ADFS_CERT: &str =
    include_str!("../../../tests/fixtures/microsoft/adfs-saml11-assertion-2013-07-11.crt");
const SHA2: [Algorithm; 3] = [
    Algorithm::RsaSha256,
    Algorithm::RsaSha384,
    Algorithm::RsaSha512,
];

fn key(pem: &str) -> VerifyingKey {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body");
    VerifyingKey::from_certificate_der(&der).expect("certificate key")
}

fn aad(xml: &str) -> Result<vestibule_xmlsig::Signed, Error> {
    verify_enveloped(xml, "ID", &[&key(AAD_CERT)], &SHA2)
}

#[test]
fn azure_ad_saml2_token_yields_the_canonical_assertion() {
    let signed = aad(AAD_RSTR).unwrap();
    assert_eq!(signed.id, "_edc15efd-1117-4bf9-89da-28b1663fb890");
    assert!(
        signed.canonical.starts_with("<Assertion "),
        "{}",
        &signed.canonical[..80]
    );
    assert!(signed
        .canonical
        .contains("RrX3SPSxDw6z4KHaKB2V_mnv0G-LbRZdYvo1RQa1L7s"));
    // The enveloped signature is not part of what was digested.
    assert!(!signed.canonical.contains("SignatureValue"));
}

#[test]
fn adfs_saml11_assertion_is_found_by_its_assertion_id() {
    let signed =
        verify_enveloped(ADFS_ASSERTION, "AssertionID", &[&key(ADFS_CERT)], &SHA2).unwrap();
    assert_eq!(signed.id, "_8c8a1b2e-7ed4-4b32-82ce-83c6d72bb297");
    assert!(signed.canonical.contains("john@fabrikam.com"));
    // With the wrong id attribute the reference resolves to nothing.
    assert!(verify_enveloped(ADFS_ASSERTION, "ID", &[&key(ADFS_CERT)], &SHA2).is_err());
}

#[test]
fn another_key_or_one_changed_byte_does_not_verify() {
    assert_eq!(
        verify_enveloped(AAD_RSTR, "ID", &[&key(ADFS_CERT)], &SHA2),
        Err(Error::BadSignature)
    );
    let forged = AAD_RSTR.replacen("User1@Cyrano", "User2@Cyrano", 1);
    assert_ne!(forged, AAD_RSTR);
    assert_eq!(aad(&forged), Err(Error::BadSignature));
    // The right key after a wrong one still verifies.
    let keys = [key(ADFS_CERT), key(AAD_CERT)];
    assert!(verify_enveloped(AAD_RSTR, "ID", &[&keys[0], &keys[1]], &SHA2).is_ok());
}

#[test]
fn an_algorithm_outside_the_allow_list_is_refused_by_xmlsec() {
    assert_eq!(
        verify_enveloped(AAD_RSTR, "ID", &[&key(AAD_CERT)], &[Algorithm::RsaSha1]),
        Err(Error::Unprocessable)
    );
}

#[test]
fn the_declared_encoding_is_ignored_so_utf7_runs_stay_text() {
    // In UTF-7, `+ADw-` is `<`: a parser honouring the declaration would see markup here.
    let utf7 = AAD_RSTR.replacen(
        "<t:RequestSecurityTokenResponse",
        "<?xml version=\"1.0\" encoding=\"UTF-7\"?><t:RequestSecurityTokenResponse",
        1,
    );
    assert!(
        aad(&utf7).is_ok(),
        "ASCII-only token reads the same as UTF-8"
    );
    let smuggled = utf7.replacen(
        "User1@Cyrano.onmicrosoft.com</",
        "User1@Cyrano.onmicrosoft.com+ADw-/x+AD4-</",
        1,
    );
    // Read as UTF-8 the run is literal text, which the signature does not cover.
    assert_eq!(aad(&smuggled), Err(Error::BadSignature));
}

#[test]
fn dtds_comments_pis_cdata_and_entities_are_refused() {
    let dtd = format!("<!DOCTYPE x [<!ENTITY e \"v\">]>{AAD_RSTR}");
    assert_eq!(aad(&dtd), Err(Error::Dtd));
    let comment = AAD_RSTR.replacen("User1@Cyrano", "User1<!---->@Cyrano", 1);
    assert_eq!(aad(&comment), Err(Error::UnexpectedNode));
    let pi = AAD_RSTR.replacen("User1@Cyrano", "User1<?x y?>@Cyrano", 1);
    assert_eq!(aad(&pi), Err(Error::UnexpectedNode));
    let cdata = AAD_RSTR.replacen("User1@Cyrano", "<![CDATA[User1]]>@Cyrano", 1);
    assert_eq!(aad(&cdata), Err(Error::UnexpectedNode));
    let undeclared_entity = AAD_RSTR.replacen("User1@Cyrano", "User1&e;@Cyrano", 1);
    assert_eq!(aad(&undeclared_entity), Err(Error::Malformed));
}

#[test]
fn malformed_input_is_not_recovered() {
    let truncated = &AAD_RSTR[..AAD_RSTR.len() - 10];
    assert_eq!(aad(truncated), Err(Error::Malformed));
    let unclosed = AAD_RSTR.replacen("</AttributeValue>", "", 1);
    assert_eq!(aad(&unclosed), Err(Error::Malformed));
    assert_eq!(aad(""), Err(Error::Malformed));
}

#[test]
fn a_duplicate_id_or_a_second_signature_is_refused() {
    let dup = AAD_RSTR.replacen(
        "<t:Lifetime>",
        "<t:Lifetime ID=\"_edc15efd-1117-4bf9-89da-28b1663fb890\">",
        1,
    );
    assert_eq!(aad(&dup), Err(Error::Shape));
    let xml_id = AAD_RSTR.replacen(
        "<t:Lifetime>",
        "<t:Lifetime xml:id=\"_edc15efd-1117-4bf9-89da-28b1663fb890\">",
        1,
    );
    assert_eq!(aad(&xml_id), Err(Error::Shape));
    let start = AAD_RSTR.find("<Signature").unwrap();
    let end = AAD_RSTR.find("</Signature>").unwrap() + "</Signature>".len();
    let twice = AAD_RSTR.replacen(
        "<t:Lifetime>",
        &format!("<t:Lifetime>{}", &AAD_RSTR[start..end]),
        1,
    );
    assert_eq!(aad(&twice), Err(Error::Shape));
    let unsigned = format!("{}{}", &AAD_RSTR[..start], &AAD_RSTR[end..]);
    assert_eq!(aad(&unsigned), Err(Error::Unsigned));
}

#[test]
fn concurrent_verifications_share_one_key() {
    let k = std::sync::Arc::new(key(AAD_CERT));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let k = k.clone();
            std::thread::spawn(move || {
                for _ in 0..250 {
                    verify_enveloped(AAD_RSTR, "ID", &[&k], &SHA2).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// libxml2's canonicaliser reports some malformed input (this one came from the differential
/// fuzzer, a mutation of the Azure AD token) through its generic error channel, which is
/// stderr by default, bypassing the parser's NOERROR flag. A forged token must not be able to
/// write to the gateway's logs: the report is dropped, the token refused.
#[test]
fn canonicaliser_errors_do_not_reach_stderr() {
    let input = include_str!("regressions/c14n-error-printed-to-stderr.xml");
    let captured = tempfile_path();
    // SAFETY: this test owns its process (nextest runs each test alone); fd 2 is restored.
    let saved = unsafe {
        let saved = libc::dup(2);
        let file = libc::open(
            std::ffi::CString::new(captured.clone()).unwrap().as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
            0o600,
        );
        libc::dup2(file, 2);
        libc::close(file);
        saved
    };
    let result = aad(input);
    // SAFETY: as above.
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
    let printed = std::fs::read_to_string(&captured).unwrap();
    let _ = std::fs::remove_file(&captured);
    assert!(result.is_err(), "a mutated token never verifies");
    assert_eq!(printed, "", "nothing printed");
}

fn tempfile_path() -> String {
    format!(
        "{}/vestibule-xmlsig-stderr-{}",
        std::env::temp_dir().display(),
        std::process::id()
    )
}
