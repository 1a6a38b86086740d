//! Micro-benchmarks of the authenticated hot path: cookie decrypt, session cache hit, header
//! strip + plan, and assertion reuse against fresh signing (the baseline it avoids).
//! Run: `cargo bench --bench core`. Compare rows with each other, not with a fixed number.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::HeaderMap;
use std::path::Path;
use std::sync::Arc;
use vestibule::clock::{Clock, SystemClock};
use vestibule::headers::{Caller, HeaderNames, OwnedHeaders, UpstreamHeaders};
use vestibule::identity::Identity;
use vestibule::session::cookie;

fn config_yaml(db: &Path) -> String {
    format!(
        "listeners: [{{ address: 127.0.0.1:1 }}]\n\
         keys: {{ active: k1, ring: {{ k1: {{ value: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE= }} }} }}\n\
         store: {{ sqlite: {} }}\n\
         assertion: {{ key: {{ file: {}/certs/dev/assertion.pem }}, audience: crm }}\n\
         tenants: [{{ name: contoso, hosts: [crm.contoso.test], upstream: {{ address: 127.0.0.1:9 }} }}]\n",
        db.display(),
        env!("CARGO_MANIFEST_DIR")
    )
}

fn identity() -> Identity {
    Identity {
        provider: "azure-ad".into(),
        issuer: "https://sts.windows.net/0000/".into(),
        subject: "alice-subject".into(),
        user: "alice@contoso.example".into(),
        email: Some("alice@contoso.example".into()),
        name: Some("Alice Example".into()),
        idp_tenant: Some("0000".into()),
        claims: Default::default(),
        crm: None,
        directory_key: None,
    }
}

fn hot_path(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config =
        vestibule::config::parse_str(&config_yaml(&dir.path().join("b.db")), Path::new("."))
            .expect("bench config");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sessions = rt
        .block_on(vestibule::proxy::service::assemble(&config, clock.clone()))
        .unwrap()
        .sessions;
    let (live, value) = rt.block_on(sessions.create("contoso", identity())).unwrap();

    c.bench_function("cookie_decode", |b| {
        b.iter(|| cookie::decode(sessions.keys(), black_box(&value), "contoso").unwrap())
    });
    c.bench_function("session_load_cache_hit", |b| {
        b.iter(|| {
            rt.block_on(sessions.load("contoso", black_box(&value)))
                .unwrap()
                .unwrap()
        })
    });

    let owned = OwnedHeaders::new(&config.headers);
    let mut headers = HeaderMap::new();
    for (n, v) in [
        ("host", "crm.contoso.test"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/140.0",
        ),
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-language", "en-GB,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("cookie", "vestibule=v1.xxxxxxxx; theme=dark"),
        ("x-vestibule-user", "mallory@evil.example"),
        ("x_vestibule_user", "mallory@evil.example"),
        ("x-forwarded-for", "203.0.113.1"),
        ("referer", "https://crm.contoso.test/deals"),
    ] {
        headers.append(n, v.parse().unwrap());
    }
    // The whole upstream header rewrite as the gateway runs it per request (the clone of the
    // client's headers is pingora's work, measured alone as the baseline).
    let upstream = UpstreamHeaders::new(
        owned.clone(),
        HeaderNames::new(&config.headers.prefix),
        &config.session.cookie,
    );
    let tenant = http::HeaderValue::from_static("contoso");
    let mut group = c.benchmark_group("upstream_headers");
    group.bench_function("clone_only_baseline", |b| {
        b.iter(|| black_box(&headers).clone())
    });
    group.bench_function("clone_strip_and_set", |b| {
        b.iter(|| {
            let mut h = black_box(&headers).clone();
            upstream.apply(
                &mut h,
                &Caller {
                    peer: Some(std::net::Ipv4Addr::new(198, 51, 100, 23).into()),
                    peer_is_trusted_proxy: false,
                    tls: true,
                    authority: None,
                    request_id: "0123456789abcdef",
                    session: Some((&live.prepared, &tenant)),
                },
            );
            h
        })
    });
    group.finish();

    let signer = vestibule::upstream_jwt::UpstreamJwtSigner::new(&config.assertion).unwrap();
    let now = clock.now();
    let mut group = c.benchmark_group("assertion");
    // Reuse is what every request does: the session's prepared assertion, cloned.
    group.bench_function("reuse", |b| {
        b.iter(|| black_box(&live.prepared).assertion().cloned())
    });
    group.bench_function("fresh_sign_baseline", |b| {
        b.iter(|| signer.mint(&identity(), "contoso", black_box(now)))
    });
    group.finish();
}

/// WS-Federation verification of the real Azure AD token (tests/fixtures/microsoft), against
/// the bare RSA-2048 signature check it contains as the baseline.
fn wsfed(c: &mut Criterion) {
    use vestibule::auth::wsfed::{
        saml::parse_instant, verify_wresult, Expectations, SignatureAlgorithm,
    };
    let rstr = include_str!("../tests/fixtures/microsoft/aad-wsfed-rstr-saml2-2017-04-23.xml");
    let pem = include_str!("../tests/fixtures/microsoft/aad-signing-2017.crt");
    let certs = vestibule::auth::wsfed::metadata::certificates_from_pem(pem.as_bytes()).unwrap();
    let trusted: Vec<_> = certs.iter().map(|c| c.der.clone()).collect();
    let issuers = vec!["https://sts.windows.net/add29489-7269-41f4-8841-b63c95564420/".to_owned()];
    let algorithms = SignatureAlgorithm::defaults();
    let expect = Expectations {
        realm: "spn:fe78e0b4-6fe7-47e6-812c-fb75cee266a4",
        allowed_issuers: &issuers,
        now: parse_instant("2017-04-23T16:20:00Z").unwrap(),
        skew: 300,
        algorithms: &algorithms,
        max_bytes: 256 * 1024,
    };
    assert!(verify_wresult(rstr, &trusted, &expect).is_ok());

    // Baseline: one RSA-2048 PKCS#1 v1.5 SHA-256 verification with OpenSSL, the same library
    // xmlsec uses underneath.
    use openssl::{hash::MessageDigest, pkey::PKey, rsa::Rsa, sign::Signer, sign::Verifier};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let message = vec![7u8; 600];
    let mut signer = Signer::new(MessageDigest::sha256(), &key).unwrap();
    signer.update(&message).unwrap();
    let signature = signer.sign_to_vec().unwrap();

    let mut group = c.benchmark_group("wsfed");
    group.bench_function("verify_real_azure_ad_token", |b| {
        b.iter(|| verify_wresult(black_box(rstr), &trusted, &expect).unwrap())
    });
    group.bench_function("rsa2048_verify_baseline", |b| {
        b.iter(|| {
            let mut v = Verifier::new(MessageDigest::sha256(), &key).unwrap();
            v.update(black_box(&message)).unwrap();
            v.verify(&signature).unwrap()
        })
    });
    // Where the rest goes: the parts of `verify_wresult`, each alone. The envelope parse
    // (roxmltree, structure and shape checks), the signature layer (libxml2 parse, walk,
    // xmlsec: two canonicalisations, SHA-256 digest, RSA verify), and reading the claims from
    // the canonical bytes.
    let options = || roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 20_000,
        ..roxmltree::ParsingOptions::default()
    };
    group.bench_function("part_envelope_parse", |b| {
        b.iter(|| roxmltree::Document::parse_with_options(black_box(rstr), options()).unwrap())
    });
    let verifying =
        vestibule_xmlsig::VerifyingKey::from_certificate_der(trusted[0].der_data()).unwrap();
    let signed =
        vestibule_xmlsig::verify_enveloped(rstr, "ID", &[&verifying], &algorithms).unwrap();
    group.bench_function("part_signature_layer", |b| {
        b.iter(|| {
            vestibule_xmlsig::verify_enveloped(black_box(rstr), "ID", &[&verifying], &algorithms)
                .unwrap()
        })
    });
    group.bench_function("part_claims_from_canonical", |b| {
        b.iter(|| {
            let doc =
                roxmltree::Document::parse_with_options(black_box(&signed.canonical), options())
                    .unwrap();
            vestibule::auth::wsfed::saml::parse(doc.root_element()).unwrap()
        })
    });
    group.finish();
}

/// ID token verification (openidconnect, ES256) — the per-sign-in cost of the OIDC path.
fn id_token(c: &mut Criterion) {
    use jsonwebtoken::jwk::{Jwk, JwkSet};
    use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier};
    use openidconnect::{ClientId, IssuerUrl, JsonWebKeySet, Nonce};
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/certs/dev/assertion.pem"
    ))
    .unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("k1".into());
    let jwks: JsonWebKeySet<openidconnect::core::CoreJsonWebKey> =
        serde_json::from_value(serde_json::to_value(JwkSet { keys: vec![jwk] }).unwrap()).unwrap();
    let now = SystemClock.now();
    let claims = serde_json::json!({
        "iss": "https://op.example", "aud": "vestibule", "sub": "alice",
        "email": "alice@contoso.example", "email_verified": true,
        "iat": now, "exp": now + 3600, "nonce": "n-0S6_WzA2Mj",
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let raw = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let token: CoreIdToken = raw.parse().unwrap();
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new("vestibule".into()),
        IssuerUrl::new("https://op.example".into()).unwrap(),
        jwks,
    )
    // The openidconnect default admits RS256 only.
    .set_allowed_algs(vec![
        openidconnect::core::CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    ]);
    let nonce = Nonce::new("n-0S6_WzA2Mj".into());
    assert!(token.claims(&verifier, &nonce).is_ok());
    c.bench_function("oidc/verify_id_token_es256", |b| {
        b.iter(|| {
            token
                .claims(&verifier, black_box(&nonce))
                .unwrap()
                .subject()
                .len()
        })
    });
}

criterion_group!(benches, hot_path, wsfed, id_token);
criterion_main!(benches);
