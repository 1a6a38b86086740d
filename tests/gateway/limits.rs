//! Sign-in must not be a lever against the gateway: per-client limits on sign-in starts and
//! completions (after trusted proxies), answered with 429 and Retry-After before any work.

use crate::harness::*;
use crate::peers::*;
use crate::spec;
use crate::wsfed_flow::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_starts_and_completions_are_limited_per_client_address() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "idp");
    let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", "saml20"), ("ISSUER", ISSUER)]);
    let mut setup = wsfed_setup(up.addr, &peer);
    setup.proxy = spec::Proxy {
        trusted_proxies: vec!["127.0.0.0/8".into()],
        sign_in_starts_per_minute: Some(4),
        sign_in_completions_per_minute: Some(3),
        ..Default::default()
    };
    let gw = setup.start().await;
    let login = |client: &'static str| {
        let addr = gw.addr;
        async move {
            get(
                addr,
                "crm.contoso.localhost",
                "/_vestibule/login?rd=/",
                &["Accept: text/html", &format!("X-Forwarded-For: {client}")],
            )
            .await
        }
    };
    for _ in 0..4 {
        assert_eq!(login("203.0.113.1").await.status, 302);
    }
    let limited = login("203.0.113.1").await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(
        limited.body.contains("Too many sign-in attempts"),
        "{}",
        limited.body
    );
    assert_eq!(limited.header("retry-after"), Some("15"));
    assert!(limited.header("set-cookie").is_none());
    assert!(limited.header("location").is_none());
    // Another client (as the trusted proxy reports it) has its own allowance; a client cannot
    // take another's by prepending addresses of its own.
    assert_eq!(login("203.0.113.2").await.status, 302);
    let spoof = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/login?rd=/",
        &[
            "Accept: text/html",
            "X-Forwarded-For: 198.51.100.9, 203.0.113.1",
        ],
    )
    .await;
    assert_eq!(spoof.status, 429);

    // Completions: refused before the body is read, whatever it holds.
    let post = |client: &'static str| {
        let addr = gw.addr;
        async move {
            let body = "wa=wsignin1.0&wresult=%3Cx%2F%3E&wctx=forged";
            raw(
                addr,
                &format!(
                    "POST /_vestibule/wsfed HTTP/1.1\r\nHost: crm.contoso.localhost\r\nX-Forwarded-For: {client}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                ),
            )
            .await
            .unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(post("203.0.113.3").await.status, 400, "a forged wctx");
    }
    let limited = post("203.0.113.3").await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(limited.header("retry-after"), Some("20"));
    assert_eq!(post("203.0.113.4").await.status, 400, "another client");
    let metrics = get(gw.addr, "x", "/_vestibule/metrics", &[]).await.body;
    assert!(
        metrics
            .contains("vestibule_rejections_total{reason=\"rate_limited\",tenant=\"contoso\"} 3"),
        "{metrics}"
    );
    assert_eq!(up.hits(), 0);
}
