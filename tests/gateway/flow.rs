//! No session → redirect or 401; a session → pass-through with identity headers and a JWT
//! that verifies against the served JWKS; sign-out; return URLs.

use crate::harness::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use std::sync::Arc;
use vestibule::clock::SystemClock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_navigation_without_session_is_sent_to_sign_in() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let r = get(
        gw.addr,
        "crm.contoso.localhost",
        "/deals?id=7&q=a%20b",
        &["Accept: text/html,application/xhtml+xml"],
    )
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("/_vestibule/login?rd=%2Fdeals%3Fid%3D7%26q%3Da%2520b")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let head = raw(gw.addr, "HEAD / HTTP/1.1\r\nHost: crm.contoso.localhost\r\nAccept: text/html\r\nConnection: close\r\n\r\n").await.unwrap();
    assert_eq!(head.status, 302);
    assert_eq!(up.hits(), 0, "nothing was forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_without_session_get_401_json() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let cases: [(&str, &str, &[&str]); 5] = [
        ("GET", "/api/deals", &["Accept: text/html"]),
        ("GET", "/deals", &["Accept: application/json"]),
        (
            "GET",
            "/deals",
            &["Accept: text/html", "X-Requested-With: XMLHttpRequest"],
        ),
        ("POST", "/api/deals", &["Content-Length: 0"]),
        ("GET", "/api/x", &[]),
    ];
    for (method, path, extra) in cases {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: crm.contoso.localhost\r\nConnection: close\r\n"
        );
        for l in extra {
            req.push_str(l);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        let r = raw(gw.addr, &req).await.unwrap();
        assert_eq!(r.status, 401, "{method} {path} {extra:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = r.json();
        assert_eq!(body["error"], "sign_in_required");
        assert_eq!(body["request_id"].as_str().unwrap().len(), 16);
    }
    // A form POST from a browser is not a navigation we can replay: 401 page, not a redirect.
    let post = raw(gw.addr, "POST /deals HTTP/1.1\r\nHost: crm.contoso.localhost\r\nAccept: text/html\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await.unwrap();
    assert_eq!(post.status, 401);
    assert!(post.body.contains("Sign-in required"));
    assert_eq!(up.hits(), 0, "nothing was forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_request_reaches_upstream_with_identity_and_verifiable_assertion() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let (_, value) = sessions.create("contoso", alice()).await.unwrap();

    let r = get(
        gw.addr,
        "crm.contoso.localhost",
        "/deals?id=7",
        &["Accept: text/html", &cookie(&value), "Cookie: theme=dark"],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["path"], "/deals?id=7");
    let seen = up.last();
    assert_eq!(seen.one("x-vestibule-user"), Some("alice@contoso.example"));
    assert_eq!(seen.one("x-vestibule-email"), Some("alice@contoso.example"));
    assert_eq!(seen.one("x-vestibule-name"), Some("Alice Example"));
    assert_eq!(seen.one("x-vestibule-provider"), Some("azure-ad"));
    assert_eq!(seen.one("x-vestibule-tenant"), Some("contoso"));
    assert_eq!(seen.one("x-vestibule-request-id").map(str::len), Some(16));
    // The session cookie is a bearer handle: it never reaches the upstream; others do.
    let cookies = seen.all("cookie").join("; ");
    assert!(!cookies.contains("vestibule="), "{cookies}");
    assert!(cookies.contains("theme=dark"), "{cookies}");

    let jwt = seen
        .one("x-vestibule-assertion")
        .expect("assertion header")
        .to_owned();
    let jwks: JwkSet = serde_json::from_value(
        get(gw.addr, "anything", "/_vestibule/jwks.json", &[])
            .await
            .json(),
    )
    .unwrap();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.kid.as_deref(), Some("test-1"));
    let jwk = jwks.find("test-1").expect("kid published");
    let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["crm"]);
    validation.set_issuer(&["vestibule-test"]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &jwt,
        &DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .expect("assertion verifies against the served JWKS")
    .claims;
    assert_eq!(claims["sub"], "alice-subject");
    assert_eq!(claims["user"], "alice@contoso.example");
    assert_eq!(claims["tenant"], "contoso");
    assert_eq!(claims["idp"], "https://sts.windows.net/contoso-tenant-id/");
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() == 300);

    // A second request reuses the same assertion (minted once per session).
    get(
        gw.addr,
        "crm.contoso.localhost",
        "/other",
        &[&cookie(&value)],
    )
    .await;
    assert_eq!(up.last().one("x-vestibule-assertion"), Some(jwt.as_str()));
    // A tampered assertion does not verify.
    let mut forged = jwt.clone().into_bytes();
    let mid = forged.len() / 2;
    forged[mid] = if forged[mid] == b'a' { b'b' } else { b'a' };
    assert!(jsonwebtoken::decode::<serde_json::Value>(
        std::str::from_utf8(&forged).unwrap(),
        &DecodingKey::from_jwk(jwk).unwrap(),
        &validation
    )
    .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_paths_pass_without_session_and_without_identity() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let r = get(
        gw.addr,
        "crm.contoso.localhost",
        "/static/app.css",
        &["Accept: text/html"],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(up.last().one("x-vestibule-user"), None);
    assert_eq!(up.last().one("x-vestibule-assertion"), None);
    // Paths an upstream could resolve out of the public prefix are not public.
    for sneaky in [
        "/static/../deals",
        "/static/%2e%2e/deals",
        "/static/..%2fdeals",
        "/static//deals",
        "/static/%5c..%5cdeals",
    ] {
        let r = get(
            gw.addr,
            "crm.contoso.localhost",
            sneaky,
            &["Accept: text/html"],
        )
        .await;
        assert_eq!(r.status, 302, "{sneaky}");
    }
    assert_eq!(up.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_revokes_the_session_server_side() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let (_, value) = sessions.create("contoso", alice()).await.unwrap();
    assert_eq!(
        get(gw.addr, "crm.contoso.localhost", "/", &[&cookie(&value)])
            .await
            .status,
        200
    );
    let out = logout(gw.addr, "crm.contoso.localhost", &[&cookie(&value)]).await;
    assert_eq!(out.status, 200);
    let cleared = out.header("set-cookie").unwrap();
    assert!(
        cleared.starts_with("vestibule=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    // The old cookie, replayed, is worthless.
    let again = get(
        gw.addr,
        "crm.contoso.localhost",
        "/",
        &["Accept: text/html", &cookie(&value)],
    )
    .await;
    assert_eq!(again.status, 302);
    assert_eq!(up.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_urls_stay_on_the_tenant_host() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let (_, value) = sessions.create("contoso", alice()).await.unwrap();
    let c = cookie(&value);
    let login = |rd: &'static str| {
        let c = c.clone();
        async move {
            let path = format!("/_vestibule/login?rd={rd}");
            get(gw.addr, "crm.contoso.localhost", &path, &[&c]).await
        }
    };
    let ok = login("%2Fdeals%3Fid%3D7").await;
    assert_eq!(ok.status, 302);
    assert_eq!(ok.header("location"), Some("/deals?id=7"));
    let same_host = login("https%3A%2F%2Fcrm.contoso.localhost%2Freports").await;
    assert_eq!(same_host.header("location"), Some("/reports"));
    for evil in [
        "%2F%2Fevil.example",
        "%2F%5Cevil.example",
        "https%3Aevil.example",
        "https%3A%2F%2Fevil.example%2F",
        "https%3A%2F%2Fcrm.contoso.localhost%40evil.example%2F",
        "%2F%252F%252Fevil.example",
        "%2F%0D%0ALocation%3A%20https%3A%2F%2Fevil.example",
        "%20%2F%2Fevil.example",
        "%09%2F%2Fevil.example",
        "javascript%3Aalert(1)",
    ] {
        let r = login(evil).await;
        assert_eq!(r.status, 302, "{evil}");
        assert_eq!(r.header("location"), Some("/"), "{evil}");
    }
    // Without a session the sign-in page is shown (no provider is configured yet).
    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/login?rd=%2F%2Fevil.example",
        &[],
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign in to contoso"));
    assert!(!page.body.contains("evil.example"));
    assert_eq!(up.hits(), 0);
}

/// Signing out changes state, so only a same-origin POST does it: a link, an image or a
/// cross-site form elsewhere must not end a user's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_only_by_a_same_origin_post() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let (_, value) = sessions.create("contoso", alice()).await.unwrap();
    let still_signed_in = || async {
        get(gw.addr, "crm.contoso.localhost", "/", &[&cookie(&value)])
            .await
            .status
            == 200
    };
    // A GET (link, <img>, cross-site navigation) only shows the button.
    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/logout",
        &[&cookie(&value)],
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("<form method=\"post\" action=\"/_vestibule/logout\">"),
        "{}",
        page.body
    );
    assert!(page.header("set-cookie").is_none());
    assert!(still_signed_in().await);
    for (what, headers) in [
        ("foreign origin", vec!["Origin: https://evil.example"]),
        (
            "cross-site fetch",
            vec![
                "Sec-Fetch-Site: cross-site",
                "Origin: http://crm.contoso.localhost",
            ],
        ),
        ("same-site sibling", vec!["Sec-Fetch-Site: same-site"]),
        ("null origin", vec!["Origin: null"]),
        ("no origin at all", vec![]),
    ] {
        let mut req = format!(
            "POST /_vestibule/logout HTTP/1.1\r\nHost: crm.contoso.localhost\r\nContent-Length: 0\r\nConnection: close\r\n{}\r\n",
            cookie(&value)
        );
        for h in &headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        let r = raw(gw.addr, &req).await.unwrap();
        assert_eq!(r.status, 403, "{what}: {}", r.body);
        assert!(
            r.body.contains("must be started from this site"),
            "{what}: {}",
            r.body
        );
        assert!(r.header("set-cookie").is_none(), "{what}");
        assert!(still_signed_in().await, "{what}: the session survives");
    }
    // The button itself: a same-origin POST (as the browser marks it).
    let out = raw(
        gw.addr,
        &format!(
            "POST /_vestibule/logout HTTP/1.1\r\nHost: crm.contoso.localhost\r\nSec-Fetch-Site: same-origin\r\nContent-Length: 0\r\nConnection: close\r\n{}\r\n\r\n",
            cookie(&value)
        ),
    )
    .await
    .unwrap();
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(!still_signed_in().await);
}
