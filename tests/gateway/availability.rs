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

/// The gateway keeps the last verified federation metadata in its store: restarted while the
/// provider is down, it is ready and accepts a token signed with the provider's key (from
/// the stored metadata's certificates); a stored copy older than `metadata_max_stale` is
/// not trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_the_provider_down_trusts_the_stored_metadata_within_its_age() {
    use crate::wsfed_flow::{post_wsfed, wsfed_setup};
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(certs.path(), "idp");
    let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", "saml20"), ("ISSUER", ISSUER)]);
    let up = Upstream::start().await;
    let mut setup = wsfed_setup(up.addr, &peer);
    let first = setup.start().await;
    assert_eq!(
        get(first.addr, "x", "/_vestibule/ready", &[]).await.status,
        200
    );
    // A token the provider signed, kept for later; then the provider and the gateway go away.
    let wresult = peer.token(REALM).await;
    drop(first);
    drop(peer);

    let gw = setup.start().await;
    let ready = get(gw.addr, "x", "/_vestibule/ready", &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let login = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/login?rd=%2Fdeals",
        &["Accept: text/html"],
    )
    .await;
    assert_eq!(login.status, 302, "{}", login.body);
    let to_idp = login.header("location").unwrap();
    let wctx = url::Url::parse(to_idp)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "wctx")
        .unwrap()
        .1
        .into_owned();
    let binding = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let signed_in = post_wsfed(
        &gw,
        &binding,
        &[("wa", "wsignin1.0"), ("wresult", &wresult), ("wctx", &wctx)],
    )
    .await;
    assert_eq!(signed_in.status, 302, "{}", signed_in.body);
    assert!(session_cookie(&signed_in).is_some());
    drop(gw);

    // Too old a copy is not trusted.
    if let Some(spec::Provider::WsFed(ws)) = setup.providers.first_mut() {
        ws.metadata_max_stale = Some("1s".into());
    }
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let gw = setup.start().await;
    let ready = get(gw.addr, "x", "/_vestibule/ready", &[]).await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("identity provider corp unavailable"));
}
