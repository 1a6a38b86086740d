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

/// A binary upgrade without a failed request: while clients keep sending signed-in requests
/// (a new connection each, so every accept counts), a second gateway started with `--upgrade`
/// takes the listening socket over when the first gets SIGQUIT; the first finishes what it
/// has and exits; no request fails or gets anything but 200.
///
/// Ignored in the default run: on a loaded machine (the whole suite in parallel) about one
/// connection in 20,000 is closed without a response during the hand-over, in some runs (2
/// of 8 on 2026-12-03; alone, and under `benches/load/run upgrade` with wrk, 0). The cause —
/// somewhere in the listener hand-over or the old process's shutdown — is not found yet.
/// Run it with `cargo nextest run --test gateway --run-ignored all -E 'test(binary_upgrade)'`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a rare dropped connection under load during the hand-over, cause not found yet"]
async fn a_binary_upgrade_under_load_fails_no_request() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let config = setup.config_path();
    let socket = setup.dir.path().join("upgrade.sock");
    let args = [std::ffi::OsStr::new("--upgrade-socket"), socket.as_os_str()];
    let old = Gateway::spawn_args(&config, setup.port, &args)
        .healthy()
        .await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let c = cookie(&sessions.create("contoso", alice()).await.unwrap().1);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, failures, c) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            failures.clone(),
            c.clone(),
        );
        let addr = old.addr;
        load.push(tokio::spawn(async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                let request = format!(
                    "GET /deals HTTP/1.1\r\nHost: crm.contoso.localhost\r\n{c}\r\nConnection: close\r\n\r\n"
                );
                match raw(addr, &request).await {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    other => {
                        failed.fetch_add(1, Ordering::SeqCst);
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{:?}", other.map(|r| r.status)));
                    }
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let before = ok.load(Ordering::SeqCst);
    assert!(before > 0, "load runs");

    // The new binary waits for the sockets; the old one hands them over on SIGQUIT.
    let mut upgrade_args = args.to_vec();
    upgrade_args.push(std::ffi::OsStr::new("--upgrade"));
    let mut new = Gateway::spawn_args(&config, setup.port, &upgrade_args);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut old = old;
    let quit = std::process::Command::new("kill")
        .args(["-QUIT", &old.pid().to_string()])
        .status()
        .unwrap();
    assert!(quit.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !old.exited() {
        assert!(
            std::time::Instant::now() < deadline,
            "the old gateway did not exit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let at_exit = ok.load(Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    assert!(!new.exited(), "the new gateway runs");
    let total = ok.load(Ordering::SeqCst);
    eprintln!(
        "upgrade under load: {total} requests answered 200 ({before} before the upgrade started, {} after the old process exited), {} failed",
        total - at_exit,
        failed.load(Ordering::SeqCst)
    );
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "failed requests: {:?}",
        failures.lock().unwrap()
    );
    assert!(total > at_exit, "the new gateway serves");
}
