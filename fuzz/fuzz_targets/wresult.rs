//! Fuzzes the WS-Federation `wresult` parser and verifier with the real Azure AD certificate
//! trusted and the clock at that token's issue time, so mutations of the seed token reach the
//! signature check and the claim readers. Any panic, hang or crash is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vestibule::auth::wsfed::metadata::certificates_from_pem;
use vestibule::auth::wsfed::saml::parse_instant;
use vestibule::auth::wsfed::{verify_wresult, CertificateDer, Expectations, SignatureAlgorithm};

struct Fixture {
    trusted: Vec<CertificateDer>,
    issuers: Vec<String>,
    algorithms: Vec<SignatureAlgorithm>,
    now: i64,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture {
        trusted: certificates_from_pem(include_bytes!("../../tests/fixtures/microsoft/aad-signing-2017.crt"))
            .unwrap()
            .into_iter()
            .map(|c| c.der)
            .collect(),
        issuers: vec!["https://sts.windows.net/add29489-7269-41f4-8841-b63c95564420/".into()],
        algorithms: SignatureAlgorithm::defaults(),
        now: parse_instant("2017-04-23T16:20:00Z").unwrap(),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let f = fixture();
    let expect = Expectations {
        realm: "spn:fe78e0b4-6fe7-47e6-812c-fb75cee266a4",
        allowed_issuers: &f.issuers,
        now: f.now,
        skew: 300,
        algorithms: &f.algorithms,
        max_bytes: 256 * 1024,
    };
    let _ = verify_wresult(text, &f.trusted, &expect);
});
