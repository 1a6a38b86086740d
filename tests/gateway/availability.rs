//! Availability: the gateway starts and serves while an identity provider is unreachable.

use crate::harness::*;
use crate::peers::{make_cert, WsFedPeer};
use crate::spec;
use crate::wsfed_flow::{session_cookie, sign_in_as, ISSUER, REALM};
use std::sync::Arc;
use vestibule::clock::SystemClock;

/// A WS-Federation provider whose metadata does not answer at start: the gateway starts
/// anyway; sessions and public paths work; readiness and the metric name the provider; sign-in
/// with it answers 503 with Retry-After. Once the provider answers, readiness and sign-in
/// recover without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_down_at_start_degrades_sign_in_only_and_recovers() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(certs.path(), "idp");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let up = Upstream::start().await;
    let mut setup = Setup::new(up.addr);
    setup.providers.push(spec::Provider::WsFed(spec::WsFed {
        name: "corp".into(),
        display_name: Some("Contoso Azure AD".into()),
        passive_endpoint: format!("{base}/wsfed"),
        metadata_url: Some(format!(
            "{base}/federationmetadata/2007-06/federationmetadata.xml"
        )),
        realm: REALM.into(),
        ..Default::default()
    }));
    setup
        .contoso()
        .sign_in
        .push(spec::SignIn::provider("corp").issuer(ISSUER));
    let gw = setup.start().await;

    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let c = cookie(&sessions.create("contoso", alice()).await.unwrap().1);
    assert_eq!(
        get(gw.addr, "crm.contoso.localhost", "/deals", &[&c])
            .await
            .status,
        200,
        "existing sessions work"
    );
    assert_eq!(
        get(gw.addr, "crm.contoso.localhost", "/static/app.css", &[])
            .await
            .status,
        200,
        "public paths work"
    );
    let ready = get(gw.addr, "x", "/_vestibule/ready", &[]).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains("identity provider corp unavailable"),
        "{}",
        ready.body
    );
    let metrics = get(gw.addr, "x", "/_vestibule/metrics", &[]).await.body;
    assert!(
        metrics.contains("vestibule_provider_available{provider=\"corp\"} 0"),
        "{metrics}"
    );
    let login = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/login?rd=%2Fdeals",
        &["Accept: text/html"],
    )
    .await;
    assert_eq!(login.status, 503, "{}", login.body);
    assert!(login.header("retry-after").is_some());
    assert!(
        login.body.contains("temporarily unavailable"),
        "{}",
        login.body
    );

    // The provider comes up: no restart needed.
    let peer = WsFedPeer::start(
        &cert,
        &key,
        &[
            ("TOKEN", "saml20"),
            ("ISSUER", ISSUER),
            ("PORT", &port.to_string()),
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while get(gw.addr, "x", "/_vestibule/ready", &[]).await.status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready after the provider came up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let metrics = get(gw.addr, "x", "/_vestibule/metrics", &[]).await.body;
    assert!(metrics.contains("vestibule_provider_available{provider=\"corp\"} 1"));
    let signed_in = sign_in_as(&gw, &peer, "bob@contoso.example").await;
    assert_eq!(signed_in.status, 302, "{}", signed_in.body);
    assert!(session_cookie(&signed_in).is_some());
}
