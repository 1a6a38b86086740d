//! The verifier against real Microsoft tokens (tests/fixtures/microsoft, see SOURCES.md).

use super::saml::parse_instant;
use super::xmldsig::CertificateDer;
use super::*;

const AAD_RSTR: &str =
    include_str!("../../../tests/fixtures/microsoft/aad-wsfed-rstr-saml2-2017-04-23.xml");
const AAD_CERT: &str = include_str!("../../../tests/fixtures/microsoft/aad-signing-2017.crt");
const AAD_ISSUER: &str = "https://sts.windows.net/add29489-7269-41f4-8841-b63c95564420/";
const AAD_REALM: &str = "spn:fe78e0b4-6fe7-47e6-812c-fb75cee266a4";
const ADFS_ASSERTION: &str =
    include_str!("../../../tests/fixtures/microsoft/adfs-saml11-assertion-2013-07-11.xml");
const ADFS_CERT: &str =
    include_str!("../../../tests/fixtures/microsoft/adfs-saml11-assertion-2013-07-11.crt");

fn der(pem: &str) -> CertificateDer {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM certificate");
    CertificateDer::from_der(pem.contents).expect("usable certificate")
}

fn expect<'a>(realm: &'a str, issuers: &'a [String], now: &str) -> Expectations<'a> {
    Expectations {
        realm,
        allowed_issuers: issuers,
        now: parse_instant(now).unwrap(),
        skew: 300,
        algorithms: &ALGS,
        max_bytes: 256 * 1024,
    }
}

const ALGS: [SignatureAlgorithm; 3] = [
    SignatureAlgorithm::RsaSha256,
    SignatureAlgorithm::RsaSha384,
    SignatureAlgorithm::RsaSha512,
];

fn aad_issuers() -> Vec<String> {
    vec![AAD_ISSUER.to_owned()]
}

#[test]
fn real_azure_ad_token_verifies_at_its_issue_time() {
    let issuers = aad_issuers();
    let a = verify_wresult(
        AAD_RSTR,
        &[der(AAD_CERT)],
        &expect(AAD_REALM, &issuers, "2017-04-23T16:20:00Z"),
    )
    .unwrap();
    assert_eq!(a.issuer, AAD_ISSUER);
    assert_eq!(a.id, "_edc15efd-1117-4bf9-89da-28b1663fb890");
    let id = claims::identity("azure", &a);
    assert_eq!(id.user, "User1@Cyrano.onmicrosoft.com");
    assert_eq!(id.subject, "RrX3SPSxDw6z4KHaKB2V_mnv0G-LbRZdYvo1RQa1L7s");
    assert_eq!(id.name.as_deref(), Some("User1"));
    assert_eq!(
        id.idp_tenant.as_deref(),
        Some("add29489-7269-41f4-8841-b63c95564420")
    );
    assert_eq!(id.claims["oid"], "d1ad9ce7-b322-4221-ab74-1e1011e1bbcb");
}

#[test]
fn real_azure_ad_token_is_refused_today_and_elsewhere() {
    let issuers = aad_issuers();
    let certs = [der(AAD_CERT)];
    assert_eq!(
        verify_wresult(
            AAD_RSTR,
            &certs,
            &expect(AAD_REALM, &issuers, "2026-11-29T12:00:00Z")
        ),
        Err(WsFedError::Expired)
    );
    assert_eq!(
        verify_wresult(
            AAD_RSTR,
            &certs,
            &expect(AAD_REALM, &issuers, "2017-04-23T15:00:00Z")
        ),
        Err(WsFedError::NotYetValid)
    );
    let other_tenant =
        vec!["https://sts.windows.net/00000000-0000-0000-0000-000000000000/".to_owned()];
    assert_eq!(
        verify_wresult(
            AAD_RSTR,
            &certs,
            &expect(AAD_REALM, &other_tenant, "2017-04-23T16:20:00Z")
        ),
        Err(WsFedError::WrongIssuer)
    );
    assert_eq!(
        verify_wresult(
            AAD_RSTR,
            &certs,
            &expect("spn:another-app", &issuers, "2017-04-23T16:20:00Z")
        ),
        Err(WsFedError::WrongAudience)
    );
    // Signed by Microsoft, but not with a certificate we trust.
    assert_eq!(
        verify_wresult(
            AAD_RSTR,
            &[der(ADFS_CERT)],
            &expect(AAD_REALM, &issuers, "2017-04-23T16:20:00Z")
        ),
        Err(WsFedError::BadSignature)
    );
}

#[test]
fn one_changed_byte_in_the_signed_assertion_breaks_it() {
    let issuers = aad_issuers();
    let certs = [der(AAD_CERT)];
    for (from, to) in [
        (
            "User1@Cyrano.onmicrosoft.com",
            "User2@Cyrano.onmicrosoft.com",
        ),
        (">User1<", ">User2<"),
        (
            "NotOnOrAfter=\"2017-04-23T17:11:17.348Z\"",
            "NotOnOrAfter=\"2017-04-23T18:11:17.348Z\"",
        ),
        ("d1ad9ce7-b322", "d1ad9ce7-b323"),
    ] {
        assert!(AAD_RSTR.contains(from));
        let tampered = AAD_RSTR.replacen(from, to, 1);
        assert_eq!(
            verify_wresult(
                &tampered,
                &certs,
                &expect(AAD_REALM, &issuers, "2017-04-23T16:20:00Z")
            ),
            Err(WsFedError::BadSignature),
            "{from} -> {to}"
        );
    }
}

/// The bare ADFS assertion in the envelope ADFS would send (WS-Trust 2005/02); the assertion's
/// exclusive-c14n signature does not depend on where it sits.
fn adfs_rstr() -> String {
    format!(
        "<t:RequestSecurityTokenResponse xmlns:t=\"http://schemas.xmlsoap.org/ws/2005/02/trust\">\
         <t:RequestedSecurityToken>{ADFS_ASSERTION}</t:RequestedSecurityToken>\
         <t:TokenType>urn:oasis:names:tc:SAML:1.0:assertion</t:TokenType>\
         </t:RequestSecurityTokenResponse>"
    )
}

#[test]
fn real_adfs_saml11_assertion_verifies_with_its_certificate() {
    let issuers = vec!["https://test-adfs.auth0.com".to_owned()];
    let rstr = adfs_rstr();
    let a = verify_wresult(
        &rstr,
        &[der(ADFS_CERT)],
        &expect("urn:auth0:auth0", &issuers, "2013-07-11T12:35:00Z"),
    )
    .unwrap();
    assert_eq!(a.version, saml::SamlVersion::V1_1);
    let id = claims::identity("adfs", &a);
    assert_eq!(id.subject, "john@fabrikam.com");
    assert_eq!(id.user, "john@fabrikam.com");
    assert_eq!(id.name.as_deref(), Some("John Fabrikam"));
    assert_eq!(
        verify_wresult(
            &rstr.replacen("John", "Joan", 1),
            &[der(ADFS_CERT)],
            &expect("urn:auth0:auth0", &issuers, "2013-07-11T12:35:00Z")
        ),
        Err(WsFedError::BadSignature)
    );
    assert_eq!(
        verify_wresult(
            &rstr,
            &[der(AAD_CERT)],
            &expect("urn:auth0:auth0", &issuers, "2013-07-11T12:35:00Z")
        ),
        Err(WsFedError::BadSignature)
    );
}

#[test]
fn a_ws_trust_13_collection_with_one_response_is_accepted() {
    let issuers = vec!["https://test-adfs.auth0.com".to_owned()];
    let rstrc = format!(
        "<trust:RequestSecurityTokenResponseCollection xmlns:trust=\"http://docs.oasis-open.org/ws-sx/ws-trust/200512\">\
         <trust:RequestSecurityTokenResponse><trust:RequestedSecurityToken>{ADFS_ASSERTION}</trust:RequestedSecurityToken>\
         <trust:TokenType>http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1</trust:TokenType>\
         </trust:RequestSecurityTokenResponse></trust:RequestSecurityTokenResponseCollection>"
    );
    let a = verify_wresult(
        &rstrc,
        &[der(ADFS_CERT)],
        &expect("urn:auth0:auth0", &issuers, "2013-07-11T12:35:00Z"),
    )
    .unwrap();
    assert_eq!(a.subject, "john@fabrikam.com");
}
