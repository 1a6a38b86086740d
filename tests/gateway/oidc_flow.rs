//! OpenID Connect end to end against the real `oidc-provider` (op.js): code flow with PKCE,
//! state and nonce, key rotation, provider outage, hosted domains; plus a hostile token
//! endpoint of the test's own for ID tokens a real provider never issues.

use crate::harness::*;
use crate::peers::*;
use crate::spec;
use crate::wsfed_flow::session_cookie;

pub fn oidc_setup(up: std::net::SocketAddr, issuer: &str) -> Setup {
    let mut setup = Setup::new(up);
    setup.providers.push(spec::Provider::Oidc(spec::Oidc {
        name: "op".into(),
        display_name: Some("Contoso Google".into()),
        issuer: issuer.into(),
        client_id: CLIENT_ID.into(),
        client_secret: Some(spec::Secret::value(CLIENT_SECRET)),
        scopes: vec!["email".into(), "profile".into(), "offline_access".into()],
        authorization_params: [("prompt".to_owned(), "consent".to_owned())].into(),
        ..Default::default()
    }));
    setup.contoso().sign_in.push(spec::SignIn::provider("op"));
    setup
}

/// Protected page → login → the provider's authorization URL, with the binding cookie.
pub async fn begin(gw: &Gateway) -> (String, String) {
    let first = get(
        gw.addr,
        "crm.contoso.localhost",
        "/deals",
        &["Accept: text/html"],
    )
    .await;
    assert_eq!(first.status, 302);
    let login = get(
        gw.addr,
        "crm.contoso.localhost",
        first.header("location").unwrap(),
        &["Accept: text/html"],
    )
    .await;
    assert_eq!(login.status, 302, "{}", login.body);
    let binding = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (login.header("location").unwrap().to_owned(), binding)
}

/// Delivers the provider's redirect to the gateway's callback.
pub async fn callback(gw: &Gateway, redirect: &str, cookie: &str) -> Reply {
    let path = &redirect[redirect.find("/_vestibule/").unwrap()..];
    let cookie_line = format!("Cookie: {cookie}");
    let extra: Vec<&str> = if cookie.is_empty() {
        vec![]
    } else {
        vec![cookie_line.as_str()]
    };
    get(gw.addr, "crm.contoso.localhost", path, &extra).await
}

/// A whole OpenID Connect sign-in of `login` at the provider: the gateway's answer to the
/// callback (a 302 with the session cookie, or a refusal page).
pub async fn sign_in_as(gw: &Gateway, op: &OidcPeer, login: &str) -> Reply {
    let (auth, binding) = begin(gw).await;
    let redirect = op.sign_in(&auth, login).await;
    callback(gw, &redirect, &binding).await
}

fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_code_flow_reaches_the_upstream_with_identity() {
    let up = Upstream::start().await;
    let op = OidcPeer::start(&[]);
    let setup = oidc_setup(up.addr, &op.issuer);
    let gw = setup.start().await;
    let (auth, binding) = begin(&gw).await;
    assert!(auth.starts_with(&format!("{}/auth?", op.issuer)), "{auth}");
    for p in ["code_challenge", "nonce", "state"] {
        assert!(!query_param(&auth, p).is_empty(), "{p} in {auth}");
    }
    assert_eq!(query_param(&auth, "code_challenge_method"), "S256");
    assert_eq!(query_param(&auth, "prompt"), "consent");
    let redirect = op.sign_in(&auth, "alice").await;
    assert_eq!(query_param(&redirect, "iss"), op.issuer);
    let done = callback(&gw, &redirect, &binding).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.header("location"), Some("/deals"));
    let cookie = session_cookie(&done).expect("session");
    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/deals",
        &[&format!("Cookie: {cookie}")],
    )
    .await;
    assert_eq!(page.status, 200);
    let seen = up.last();
    assert_eq!(seen.one("x-vestibule-user"), Some("alice@contoso.example"));
    assert_eq!(seen.one("x-vestibule-provider"), Some("op"));
    assert_eq!(seen.one("x-vestibule-name"), Some("Alice"));

    // The same callback again: the state is spent.
    let replay = callback(&gw, &redirect, &binding).await;
    assert_eq!(replay.status, 400);
    assert!(replay.body.contains("start again"));

    // Sign-out: local revoke, then RP-initiated logout at the provider.
    let out = logout(
        gw.addr,
        "crm.contoso.localhost",
        &[&format!("Cookie: {cookie}")],
    )
    .await;
    assert_eq!(out.status, 302);
    let end = out.header("location").unwrap();
    assert!(
        end.starts_with(&format!("{}/session/end?", op.issuer)),
        "{end}"
    );
    assert!(!query_param(end, "id_token_hint").is_empty());
    assert_eq!(
        query_param(end, "post_logout_redirect_uri"),
        "http://crm.contoso.localhost/_vestibule/signed-out"
    );
    let after = get(
        gw.addr,
        "crm.contoso.localhost",
        "/deals",
        &["Accept: text/html", &format!("Cookie: {cookie}")],
    )
    .await;
    assert_eq!(after.status, 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_must_be_present_ours_and_unused() {
    let up = Upstream::start().await;
    let op = OidcPeer::start(&[]);
    let setup = oidc_setup(up.addr, &op.issuer);
    let gw = setup.start().await;
    let (auth, binding) = begin(&gw).await;
    let redirect = op.sign_in(&auth, "alice").await;
    let state = query_param(&redirect, "state");
    let code = query_param(&redirect, "code");
    let (_, other_binding) = begin(&gw).await;
    let cases = [
        (
            "missing state",
            format!("/_vestibule/oidc/callback?code={code}"),
            binding.clone(),
        ),
        (
            "forged state",
            format!(
                "/_vestibule/oidc/callback?code={code}&state={}",
                urlencode(&tamper(&state))
            ),
            binding.clone(),
        ),
        (
            "state from another browser",
            format!(
                "/_vestibule/oidc/callback?code={code}&state={}",
                urlencode(&state)
            ),
            other_binding.clone(),
        ),
        (
            "no binding cookie",
            format!(
                "/_vestibule/oidc/callback?code={code}&state={}",
                urlencode(&state)
            ),
            String::new(),
        ),
    ];
    for (what, path, cookie) in cases {
        let r = callback(&gw, &path, &cookie).await;
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert!(r.body.contains("start again"), "{what}");
        assert!(session_cookie(&r).is_none(), "{what}");
    }
    assert_eq!(
        callback(&gw, &redirect, &binding).await.status,
        302,
        "the genuine callback still works"
    );
    assert_eq!(callback(&gw, &redirect, &binding).await.status, 400, "once");
    assert_eq!(up.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_from_the_provider_gets_a_clear_page() {
    let up = Upstream::start().await;
    let op = OidcPeer::start(&[]);
    let setup = oidc_setup(up.addr, &op.issuer);
    let gw = setup.start().await;
    let (auth, binding) = begin(&gw).await;
    let state = urlencode(&query_param(&auth, "state"));
    let r = callback(
        &gw,
        &format!("/_vestibule/oidc/callback?error=access_denied%3Cscript%3E&state={state}"),
        &binding,
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("refused the sign-in (access_deniedscript)"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<script>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_key_rotation_needs_no_restart() {
    let up = Upstream::start().await;
    let op = OidcPeer::start(&[]);
    let port = op.port.to_string();
    let first_kid = op.kid.clone();
    let setup = oidc_setup(up.addr, &op.issuer);
    let gw = setup.start().await;
    let (auth, binding) = begin(&gw).await;
    let redirect = op.sign_in(&auth, "alice").await;
    assert_eq!(callback(&gw, &redirect, &binding).await.status, 302);
    drop(op);
    let rotated = OidcPeer::start(&[("PORT", &port)]);
    assert_ne!(rotated.kid, first_kid, "a new signing key");
    let (auth, binding) = begin(&gw).await;
    let redirect = rotated.sign_in(&auth, "bob").await;
    let done = callback(&gw, &redirect, &binding).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert!(session_cookie(&done).is_some());
}

/// A provider that goes down after start: sessions keep working, and sign-in starts still
/// redirect from the cached discovery (the browser then meets the provider's outage, as with
/// any relying party). A provider never reached since start gives a clear 503 page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_outages_keep_sessions_and_a_never_reached_provider_gives_503() {
    let up = Upstream::start().await;
    let op = OidcPeer::start(&[]);
    let setup = oidc_setup(up.addr, &op.issuer);
    let gw = setup.start().await;
    let (auth, binding) = begin(&gw).await;
    let redirect = op.sign_in(&auth, "alice").await;
    let cookie = session_cookie(&callback(&gw, &redirect, &binding).await).unwrap();
    let issuer = op.issuer.clone();
    drop(op);
    let login = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/login?rd=%2F",
        &["Accept: text/html"],
    )
    .await;
    assert_eq!(login.status, 302, "{}", login.body);
    assert!(login.header("location").unwrap().starts_with(&issuer));
    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/deals",
        &[&format!("Cookie: {cookie}")],
    )
    .await;
    assert_eq!(page.status, 200, "an existing session keeps working");

    let closed = format!("http://127.0.0.1:{}", free_port());
    let setup = oidc_setup(up.addr, &closed);
    let gw = setup.start().await;
    let login = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/login?rd=%2F",
        &["Accept: text/html"],
    )
    .await;
    assert_eq!(login.status, 503, "{}", login.body);
    assert!(login.body.contains("Sign-in unavailable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_domain_must_match() {
    let up = Upstream::start().await;
    let op = OidcPeer::start(&[("HD", "fabrikam.example")]);
    let mut setup = oidc_setup(up.addr, &op.issuer);
    setup.contoso().sign_in[0].hosted_domains = vec!["contoso.example".into()];
    let gw = setup.start().await;
    let (auth, binding) = begin(&gw).await;
    let redirect = op.sign_in(&auth, "alice").await;
    let r = callback(&gw, &redirect, &binding).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r
        .body
        .contains("accounts of this domain may not sign in here"));
    assert!(session_cookie(&r).is_none());
    drop(op);
    // No hd at all is refused too when domains are configured.
    let op = OidcPeer::start(&[]);
    let mut setup = oidc_setup(up.addr, &op.issuer);
    setup.contoso().sign_in[0].hosted_domains = vec!["contoso.example".into()];
    let gw = setup.start().await;
    let (auth, binding) = begin(&gw).await;
    let redirect = op.sign_in(&auth, "alice").await;
    assert_eq!(callback(&gw, &redirect, &binding).await.status, 403);
    // And the right domain gets in.
    drop(op);
    let op = OidcPeer::start(&[("HD", "contoso.example")]);
    let mut setup = oidc_setup(up.addr, &op.issuer);
    setup.contoso().sign_in[0].hosted_domains = vec!["contoso.example".into()];
    let gw = setup.start().await;
    let (auth, binding) = begin(&gw).await;
    let redirect = op.sign_in(&auth, "alice").await;
    assert_eq!(callback(&gw, &redirect, &binding).await.status, 302);
    assert_eq!(up.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_providers_are_listed_and_one_is_picked_by_name() {
    let up = Upstream::start().await;
    let op = OidcPeer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = make_cert(dir.path(), "idp");
    let mut setup = oidc_setup(up.addr, &op.issuer);
    setup.providers.push(spec::Provider::WsFed(spec::WsFed {
        name: "corp".into(),
        display_name: Some("Office 365".into()),
        passive_endpoint: "https://login.microsoftonline.com/common/wsfed".into(),
        certificates: vec![cert.display().to_string()],
        realm: "spn:x".into(),
        ..Default::default()
    }));
    setup
        .contoso()
        .sign_in
        .push(spec::SignIn::provider("corp").azure_tenant("0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"));
    let gw = setup.start().await;
    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/login?rd=%2Fdeals",
        &[],
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(
            "<a href=\"/_vestibule/login?provider=op&amp;rd=%2Fdeals\">Contoso Google</a>"
        ),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("<a href=\"/_vestibule/login?provider=corp&amp;rd=%2Fdeals\">Office 365</a>"));
    let to_op = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/login?provider=op&rd=%2Fdeals",
        &[],
    )
    .await;
    assert!(to_op.header("location").unwrap().starts_with(&op.issuer));
    let to_corp = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/login?provider=corp&rd=%2Fdeals",
        &[],
    )
    .await;
    assert!(to_corp
        .header("location")
        .unwrap()
        .starts_with("https://login.microsoftonline.com/common/wsfed?wa=wsignin1.0"));
    let unknown = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/login?provider=nobody",
        &[],
    )
    .await;
    assert_eq!(unknown.status, 200, "an unknown name shows the list again");
}

pub async fn op_stats(op: &OidcPeer) -> serde_json::Value {
    reqwest::get(format!("http://127.0.0.1:{}/__stats", op.port))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Sign-in starts are unauthenticated: each one must not cost the provider a discovery
/// fetch (that was an amplifier). Discovery is fetched at start and then from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_starts_use_the_cached_discovery() {
    let up = Upstream::start().await;
    let op = OidcPeer::start(&[]);
    let setup = oidc_setup(up.addr, &op.issuer);
    let gw = setup.start().await;
    let before = op_stats(&op).await;
    assert_eq!(before["discovery"], 1, "{before}");
    for _ in 0..25 {
        let login = get(
            gw.addr,
            "crm.contoso.localhost",
            "/_vestibule/login?rd=%2F",
            &["Accept: text/html"],
        )
        .await;
        assert_eq!(login.status, 302);
    }
    let after = op_stats(&op).await;
    assert_eq!(after["discovery"], 1, "{after}");
    assert_eq!(after["jwks"], before["jwks"], "{after}");
    // A whole sign-in still works from the cache.
    let (auth, binding) = begin(&gw).await;
    let redirect = op.sign_in(&auth, "alice").await;
    assert_eq!(callback(&gw, &redirect, &binding).await.status, 302);
    assert_eq!(op_stats(&op).await["discovery"], 1);
}

/// oidc-provider (like Okta and Keycloak, by configuration) can keep e-mail and profile out of
/// the ID token. By default the gateway fetches what is missing from userinfo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_missing_from_the_id_token_come_from_userinfo() {
    let up = Upstream::start().await;
    let op = OidcPeer::start(&[("CONFORM_ID_TOKEN", "1")]);
    let setup = oidc_setup(up.addr, &op.issuer);
    let gw = setup.start().await;
    let (auth, binding) = begin(&gw).await;
    let redirect = op.sign_in(&auth, "alice").await;
    let done = callback(&gw, &redirect, &binding).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let cookie = session_cookie(&done).unwrap();
    assert_eq!(op_stats(&op).await["userinfo"], 1);
    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/deals",
        &[&format!("Cookie: {cookie}")],
    )
    .await;
    assert_eq!(page.status, 200);
    assert_eq!(
        up.last().one("x-vestibule-user"),
        Some("alice@contoso.example")
    );

    // Switched off, the same provider's tokens lack the claim the user name comes from.
    let mut setup = oidc_setup(up.addr, &op.issuer);
    if let spec::Provider::Oidc(op) = setup.provider("op") {
        op.userinfo = Some(false);
    }
    let gw = setup.start().await;
    let (auth, binding) = begin(&gw).await;
    let redirect = op.sign_in(&auth, "bob").await;
    let r = callback(&gw, &redirect, &binding).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("lacks the `email` claim"), "{}", r.body);
    assert!(session_cookie(&r).is_none());
    assert_eq!(up.hits(), 1);
}

/// OpenID Connect Back-Channel Logout against the real oidc-provider: the user signs out at
/// the provider, the provider POSTs a logout token (sub + sid) to the gateway, and that
/// session ends while another user's stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_at_the_provider_ends_the_session_by_back_channel() {
    let up = Upstream::start().await;
    let port = free_port();
    let op = OidcPeer::start(&[(
        "BACKCHANNEL_LOGOUT_URI",
        &format!("http://127.0.0.1:{port}/_vestibule/oidc/backchannel-logout"),
    )]);
    let mut setup = oidc_setup(up.addr, &op.issuer);
    setup.port = port;
    let gw = setup.start().await;
    let mut cookies = Vec::new();
    let mut browsers = Vec::new();
    for login in ["alice", "bob"] {
        let browser = OidcPeer::browser();
        let (auth, binding) = begin(&gw).await;
        let redirect = op.sign_in_with(&browser, &auth, login).await;
        let done = callback(&gw, &redirect, &binding).await;
        cookies.push(session_cookie(&done).unwrap());
        browsers.push(browser);
    }
    let status = |cookie: String| {
        let addr = gw.addr;
        async move {
            get(
                addr,
                "crm.contoso.localhost",
                "/deals",
                &["Accept: text/html", &format!("Cookie: {cookie}")],
            )
            .await
            .status
        }
    };
    assert_eq!(status(cookies[0].clone()).await, 200);
    assert_eq!(status(cookies[1].clone()).await, 200);
    op.end_session(&browsers[0]).await;
    // The provider's POST happens during its sign-out; give it a moment to land.
    let mut ended = false;
    for _ in 0..50 {
        if status(cookies[0].clone()).await == 302 {
            ended = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        ended,
        "alice's session ended by the provider's logout token"
    );
    assert_eq!(status(cookies[1].clone()).await, 200, "bob's session stays");
}
