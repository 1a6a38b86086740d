//! WS-Federation end to end against the real npm `wsfed` identity provider: protected GET →
//! sign-in redirect → the provider's auto-POST form → POST to the gateway → session → the
//! upstream receives the identity. SAML 1.1 and SAML 2.0 tokens.

use crate::harness::*;
use crate::peers::*;
use crate::spec;

pub const ISSUER: &str = "https://sts.test/tenant-a/";
pub const REALM: &str = "https://crm.contoso.localhost/";

pub fn wsfed_setup(up: std::net::SocketAddr, peer: &WsFedPeer) -> Setup {
    let mut setup = Setup::new(up);
    setup.providers.push(spec::Provider::WsFed(spec::WsFed {
        name: "corp".into(),
        display_name: Some("Contoso Azure AD".into()),
        passive_endpoint: format!("{}/wsfed", peer.base()),
        metadata_url: Some(peer.metadata_url()),
        realm: REALM.into(),
        ..Default::default()
    }));
    setup
        .contoso()
        .sign_in
        .push(spec::SignIn::provider("corp").issuer(ISSUER));
    setup
}

/// What the browser holds after the provider answered: the form to post and its cookies.
pub struct PendingSignIn {
    pub binding_cookie: String,
    pub wa: String,
    pub wresult: String,
    pub wctx: String,
}

/// Drives the browser part: protected page → login → provider → form.
pub async fn start_sign_in(gw: &Gateway, peer: &WsFedPeer) -> PendingSignIn {
    start_sign_in_as(gw, peer, None).await
}

/// `start_sign_in`, with the person picking account `login_hint` at the provider (the peer
/// signs them in; without it, its configured user).
pub async fn start_sign_in_as(
    gw: &Gateway,
    peer: &WsFedPeer,
    login_hint: Option<&str>,
) -> PendingSignIn {
    let first = get(
        gw.addr,
        "crm.contoso.localhost",
        "/deals?id=7",
        &["Accept: text/html"],
    )
    .await;
    assert_eq!(first.status, 302);
    let login_path = first.header("location").unwrap().to_owned();
    let login = get(
        gw.addr,
        "crm.contoso.localhost",
        &login_path,
        &["Accept: text/html"],
    )
    .await;
    assert_eq!(login.status, 302, "{}", login.body);
    let to_idp = login.header("location").unwrap().to_owned();
    assert!(
        to_idp.starts_with(&format!("{}/wsfed?wa=wsignin1.0&wtrealm=", peer.base())),
        "{to_idp}"
    );
    assert!(
        to_idp.contains("wreply=http%3A%2F%2Fcrm.contoso.localhost%2F_vestibule%2Fwsfed"),
        "{to_idp}"
    );
    let set_cookie = login.header("set-cookie").unwrap();
    assert!(
        set_cookie.contains("SameSite=None") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    let binding_cookie = set_cookie.split(';').next().unwrap().to_owned();
    let to_idp = match login_hint {
        Some(hint) => format!("{to_idp}&login_hint={}", urlencode(hint)),
        None => to_idp,
    };
    let html = reqwest::get(&to_idp).await.unwrap().text().await.unwrap();
    let fields = form_fields(&html);
    let field = |n: &str| {
        fields
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    PendingSignIn {
        binding_cookie,
        wa: field("wa"),
        wresult: field("wresult"),
        wctx: field("wctx"),
    }
}

/// A whole WS-Federation sign-in of the account `login_hint` at the peer: the gateway's answer
/// to the provider's POST (a 302 with the session cookie, or a refusal page).
pub async fn sign_in_as(gw: &Gateway, peer: &WsFedPeer, login_hint: &str) -> Reply {
    start_sign_in_as(gw, peer, Some(login_hint))
        .await
        .complete(gw)
        .await
}

/// POSTs a sign-in response to the gateway.
pub async fn post_wsfed(gw: &Gateway, cookie: &str, fields: &[(&str, &str)]) -> Reply {
    let body: String = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut req = format!(
        "POST /_vestibule/wsfed HTTP/1.1\r\nHost: crm.contoso.localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !cookie.is_empty() {
        req.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    raw(gw.addr, &req).await.unwrap()
}

impl PendingSignIn {
    pub async fn complete(&self, gw: &Gateway) -> Reply {
        post_wsfed(
            gw,
            &self.binding_cookie,
            &[
                ("wa", &self.wa),
                ("wresult", &self.wresult),
                ("wctx", &self.wctx),
            ],
        )
        .await
    }
}

pub fn session_cookie(reply: &Reply) -> Option<String> {
    reply
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("vestibule=v1."))
}

async fn full_flow(token: &str) {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "idp");
    let peer = WsFedPeer::start(
        &cert,
        &key,
        &[
            ("TOKEN", token),
            ("ISSUER", ISSUER),
            ("USER_NAME", "Alice Example"),
        ],
    );
    let setup = wsfed_setup(up.addr, &peer);
    let gw = setup.start().await;

    let pending = start_sign_in(&gw, &peer).await;
    assert_eq!(pending.wa, "wsignin1.0");
    assert!(pending.wresult.contains("RequestSecurityTokenResponse"));
    let done = pending.complete(&gw).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.header("location"), Some("/deals?id=7"));
    let cookie = session_cookie(&done).expect("session cookie set");
    assert_eq!(up.hits(), 0, "nothing reached the upstream before sign-in");

    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/deals?id=7",
        &[&format!("Cookie: {cookie}")],
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let seen = up.last();
    assert_eq!(seen.one("x-vestibule-user"), Some("alice@contoso.example"));
    assert_eq!(seen.one("x-vestibule-email"), Some("alice@contoso.example"));
    assert_eq!(seen.one("x-vestibule-provider"), Some("corp"));
    assert_eq!(seen.one("x-vestibule-tenant"), Some("contoso"));
    assert!(seen.one("x-vestibule-assertion").is_some());

    // The same response again: the login state is spent.
    let again = pending.complete(&gw).await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("start again"), "{}", again.body);
    assert!(session_cookie(&again).is_none());

    // Sign-out ends the session here and at the provider.
    let out = logout(
        gw.addr,
        "crm.contoso.localhost",
        &[&format!("Cookie: {cookie}")],
    )
    .await;
    assert_eq!(out.status, 302);
    let to_idp = out.header("location").unwrap();
    assert!(
        to_idp.starts_with(&format!("{}/wsfed?wa=wsignout1.0", peer.base())),
        "{to_idp}"
    );
    assert!(
        to_idp.contains("wreply=http%3A%2F%2Fcrm.contoso.localhost%2F_vestibule%2Fsigned-out"),
        "{to_idp}"
    );
    let after = get(
        gw.addr,
        "crm.contoso.localhost",
        "/deals",
        &["Accept: text/html", &format!("Cookie: {cookie}")],
    )
    .await;
    assert_eq!(after.status, 302);
    let back = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(to_idp)
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 302);
    assert_eq!(
        back.headers()["location"],
        "http://crm.contoso.localhost/_vestibule/signed-out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml11_sign_in_through_the_wsfed_peer() {
    full_flow("saml11").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml20_sign_in_through_the_wsfed_peer() {
    full_flow("saml20").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_assertion_is_refused_even_with_a_fresh_wctx() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "idp");
    let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", "saml20"), ("ISSUER", ISSUER)]);
    let setup = wsfed_setup(up.addr, &peer);
    let gw = setup.start().await;
    let first = start_sign_in(&gw, &peer).await;
    assert_eq!(first.complete(&gw).await.status, 302);
    // An attacker who captured the wresult starts their own sign-in and posts the old token.
    let second = start_sign_in(&gw, &peer).await;
    let replay = post_wsfed(
        &gw,
        &second.binding_cookie,
        &[
            ("wa", "wsignin1.0"),
            ("wresult", &first.wresult),
            ("wctx", &second.wctx),
        ],
    )
    .await;
    assert_eq!(replay.status, 403);
    assert!(replay.body.contains("already used"), "{}", replay.body);
    assert!(session_cookie(&replay).is_none());
    assert!(
        xmlsec1_says_valid(&first.wresult, &cert, true),
        "the signature alone is still valid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wctx_must_be_present_genuine_fresh_unused_and_ours() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "idp");
    let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", "saml11"), ("ISSUER", ISSUER)]);
    let setup = wsfed_setup(up.addr, &peer);
    let gw = setup.start().await;
    let p = start_sign_in(&gw, &peer).await;
    let cases: Vec<(&str, String, String)> = vec![
        ("missing wctx", p.binding_cookie.clone(), String::new()),
        ("forged wctx", p.binding_cookie.clone(), tamper(&p.wctx)),
        (
            "wctx from another browser",
            "vestibule_login=AAAAAAAAAAAAAAAAAAAAAA".into(),
            p.wctx.clone(),
        ),
        ("no binding cookie", String::new(), p.wctx.clone()),
    ];
    for (what, cookie, wctx) in cases {
        let mut fields = vec![("wa", "wsignin1.0"), ("wresult", p.wresult.as_str())];
        if !wctx.is_empty() {
            fields.push(("wctx", wctx.as_str()));
        }
        let r = post_wsfed(&gw, &cookie, &fields).await;
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert!(
            r.body
                .contains("the sign-in request is not valid (start again)"),
            "{what}: {}",
            r.body
        );
        assert!(session_cookie(&r).is_none(), "{what}");
    }
    // The genuine one still works (nothing above spent it), then never again.
    assert_eq!(p.complete(&gw).await.status, 302);
    assert_eq!(p.complete(&gw).await.status, 400);
    assert_eq!(up.hits(), 0);
}

/// One sign-in start buys one signature check: a refused wresult spends its wctx, so an
/// attacker cannot loop forged tokens against one wctx, and a slow sender is cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_wresult_spends_its_wctx_and_a_slow_body_gets_408() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "idp");
    let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", "saml20"), ("ISSUER", ISSUER)]);
    let mut setup = wsfed_setup(up.addr, &peer);
    setup.proxy.form_body_timeout = Some("1s".into());
    let gw = setup.start().await;
    let p = start_sign_in(&gw, &peer).await;
    let forged = p.wresult.replacen(">Alice Example<", ">Admin Example<", 1);
    assert_ne!(forged, p.wresult);
    let r = post_wsfed(
        &gw,
        &p.binding_cookie,
        &[
            ("wa", "wsignin1.0"),
            ("wresult", &forged),
            ("wctx", &p.wctx),
        ],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("not valid for any trusted certificate"),
        "{}",
        r.body
    );
    // The genuine token with the same wctx: the wctx is gone.
    let r = p.complete(&gw).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("not valid (start again)"), "{}", r.body);
    assert!(session_cookie(&r).is_none());
    // A body announced but sent slowly: 408 within the configured second, not a held worker.
    let fresh = start_sign_in(&gw, &peer).await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!(
        "POST /_vestibule/wsfed HTTP/1.1\r\nHost: crm.contoso.localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\nCookie: {}\r\nConnection: close\r\n\r\nwa=wsignin1.0&wresult=",
        fresh.binding_cookie
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the gateway answers a slow body by itself")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("took too long"), "{answer}");
    // Nothing was spent by the cut-off request: the fresh sign-in still completes.
    assert_eq!(fresh.complete(&gw).await.status, 302);
    assert_eq!(up.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_rollover_is_picked_up_without_a_restart() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (old_cert, old_key) = make_cert(dir.path(), "old");
    let (new_cert, new_key) = make_cert(dir.path(), "new");
    let peer = WsFedPeer::start(
        &old_cert,
        &old_key,
        &[("TOKEN", "saml20"), ("ISSUER", ISSUER)],
    );
    let port = peer.port.to_string();
    let setup = wsfed_setup(up.addr, &peer);
    let gw = setup.start().await;
    let before = start_sign_in(&gw, &peer).await;
    assert_eq!(before.complete(&gw).await.status, 302);
    // The provider rolls over to a new key, published in its metadata at the same address.
    drop(peer);
    let rolled = WsFedPeer::start(
        &new_cert,
        &new_key,
        &[("TOKEN", "saml20"), ("ISSUER", ISSUER), ("PORT", &port)],
    );
    let after = start_sign_in(&gw, &rolled).await;
    let r = after.complete(&gw).await;
    assert_eq!(
        r.status, 302,
        "the new key is fetched on first sight: {}",
        r.body
    );
    assert!(session_cookie(&r).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_good_certificates_stay_when_metadata_becomes_unreachable() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "idp");
    let (evil_cert, evil_key) = make_cert(dir.path(), "evil");
    let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", "saml11"), ("ISSUER", ISSUER)]);
    let evil = WsFedPeer::start(
        &evil_cert,
        &evil_key,
        &[("TOKEN", "saml11"), ("ISSUER", ISSUER)],
    );
    let setup = wsfed_setup(up.addr, &peer);
    let gw = setup.start().await;
    let pending = start_sign_in(&gw, &peer).await;
    let second = start_sign_in(&gw, &peer).await;
    drop(peer);
    // An unknown key makes the gateway try the (now unreachable) metadata once more...
    let forged = evil.token(REALM).await;
    let r = post_wsfed(
        &gw,
        &second.binding_cookie,
        &[
            ("wa", "wsignin1.0"),
            ("wresult", &forged),
            ("wctx", &second.wctx),
        ],
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("not valid for any trusted certificate"));
    // ...and keeps the certificates it had.
    let ok = pending.complete(&gw).await;
    assert_eq!(ok.status, 302, "{}", ok.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_certificates_work_without_metadata_and_cleanup_ends_the_session() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "idp");
    let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", "saml20"), ("ISSUER", ISSUER)]);
    let mut setup = wsfed_setup(up.addr, &peer);
    setup.providers = vec![spec::Provider::WsFed(spec::WsFed {
        name: "corp".into(),
        passive_endpoint: format!("{}/wsfed", peer.base()),
        certificates: vec![cert.display().to_string()],
        realm: REALM.into(),
        ..Default::default()
    })];
    let gw = setup.start().await;
    let done = start_sign_in(&gw, &peer).await.complete(&gw).await;
    let cookie = session_cookie(&done).expect("signed in with the pinned certificate");
    assert_eq!(
        get(
            gw.addr,
            "crm.contoso.localhost",
            "/",
            &[&format!("Cookie: {cookie}")]
        )
        .await
        .status,
        200
    );
    let cleanup = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/wsfed?wa=wsignoutcleanup1.0",
        &[&format!("Cookie: {cookie}")],
    )
    .await;
    assert_eq!(cleanup.status, 200);
    let after = get(
        gw.addr,
        "crm.contoso.localhost",
        "/",
        &["Accept: text/html", &format!("Cookie: {cookie}")],
    )
    .await;
    assert_eq!(
        after.status, 302,
        "the provider's cleanup revoked the session"
    );
}

/// Azure AD and ADFS end the session by loading `wsignoutcleanup1.0` in a cross-site iframe,
/// where the browser withholds the `SameSite=Lax` session cookie. Over HTTPS (here: a
/// trusted TLS-terminating proxy) a sign-in also sets a `SameSite=None` sign-out cookie,
/// scoped to `/_vestibule/wsfed`, and the cleanup revokes the session it names. That cookie
/// opens nothing anywhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_cleanup_without_the_lax_session_cookie_still_ends_the_session() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "idp");
    let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", "saml20"), ("ISSUER", ISSUER)]);
    let mut setup = wsfed_setup(up.addr, &peer);
    setup.proxy.trusted_proxies = vec!["127.0.0.0/8".into()];
    let gw = setup.start().await;
    let https = "X-Forwarded-Proto: https";
    let login = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/login?rd=/deals",
        &["Accept: text/html", https],
    )
    .await;
    assert_eq!(login.status, 302, "{}", login.body);
    let binding = login.header("set-cookie").unwrap();
    for attr in [
        "__Host-vestibule_login=",
        "Path=/;",
        "Secure",
        "HttpOnly",
        "SameSite=None",
    ] {
        assert!(binding.contains(attr), "{attr}: {binding}");
    }
    let to_idp = login.header("location").unwrap();
    assert!(to_idp.contains("wreply=https%3A%2F%2Fcrm.contoso.localhost%2F_vestibule%2Fwsfed"));
    let html = reqwest::get(to_idp).await.unwrap().text().await.unwrap();
    let fields = form_fields(&html);
    let field = |n: &str| fields.iter().find(|(k, _)| k == n).unwrap().1.clone();
    let body: String = [
        ("wa", field("wa")),
        ("wresult", field("wresult")),
        ("wctx", field("wctx")),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", urlencode(v)))
    .collect::<Vec<_>>()
    .join("&");
    let binding_pair = binding.split(';').next().unwrap();
    let done = raw(
        gw.addr,
        &format!(
            "POST /_vestibule/wsfed HTTP/1.1\r\nHost: crm.contoso.localhost\r\n{https}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nCookie: {binding_pair}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
    .unwrap();
    assert_eq!(done.status, 302, "{}", done.body);
    let set: Vec<&str> = done
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    let find = |prefix: &str| {
        *set.iter()
            .find(|c| c.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} in {set:?}"))
    };
    let session = find("__Host-vestibule=v1.");
    for attr in ["Path=/;", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(session.contains(attr), "{attr}: {session}");
    }
    let signout = find("__Secure-vestibule_signout=v1.");
    for attr in [
        "Path=/_vestibule/wsfed;",
        "HttpOnly",
        "SameSite=None",
        "Secure",
    ] {
        assert!(signout.contains(attr), "{attr}: {signout}");
    }
    let session_pair = session.split(';').next().unwrap().to_owned();
    let signout_pair = signout.split(';').next().unwrap().to_owned();
    let page = |cookie: String| {
        let addr = gw.addr;
        async move {
            get(
                addr,
                "crm.contoso.localhost",
                "/",
                &["Accept: text/html", https, &format!("Cookie: {cookie}")],
            )
            .await
            .status
        }
    };
    assert_eq!(page(session_pair.clone()).await, 200);
    // The sign-out cookie is no session anywhere else (the browser would not even send it).
    let handle = signout_pair.split_once('=').unwrap().1;
    assert_eq!(
        page(format!("__Secure-vestibule_signout={handle}")).await,
        302
    );
    // The cross-site cleanup: only the SameSite=None cookie arrives.
    let cleanup = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/wsfed?wa=wsignoutcleanup1.0",
        &[
            https,
            "Sec-Fetch-Site: cross-site",
            &format!("Cookie: {signout_pair}"),
        ],
    )
    .await;
    assert_eq!(cleanup.status, 200, "{}", cleanup.body);
    let cleared: Vec<&str> = cleanup
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("__Secure-vestibule_signout=;")
                && c.contains("Max-Age=0")
                && c.contains("SameSite=None")),
        "{cleared:?}"
    );
    assert_eq!(page(session_pair).await, 302, "the session is revoked");
    assert_eq!(up.hits(), 1);
}

/// Over plain HTTP on a name browsers do not treat as secure, the binding cookie cannot
/// survive the provider's cross-site POST (SameSite=None needs Secure): sign-in does not
/// start into a dead end, it says HTTPS is required and how to configure it. On loopback
/// names and behind a trusted TLS-terminating proxy it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_over_plain_http_on_a_public_name_says_https_is_required() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "idp");
    let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", "saml20"), ("ISSUER", ISSUER)]);
    let mut setup = wsfed_setup(up.addr, &peer);
    setup.proxy.trusted_proxies = vec!["10.0.0.0/8".into()];
    setup.tenants.push(
        spec::Tenant::new("public", &["crm.public.example"], up.addr)
            .sign_in(spec::SignIn::provider("corp").issuer(ISSUER)),
    );
    let gw = setup.start().await;
    for accept in ["text/html", "application/json"] {
        let r = get(
            gw.addr,
            "crm.public.example",
            "/_vestibule/login?rd=/",
            &[&format!("Accept: {accept}")],
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains("needs HTTPS"), "{}", r.body);
        assert!(r.body.contains("proxy.trusted_proxies"), "{}", r.body);
        assert!(r.header("set-cookie").is_none());
        assert!(r.header("location").is_none());
    }
    // X-Forwarded-Proto from an untrusted peer (we are 127.0.0.1; 10/8 is trusted) changes nothing.
    let spoofed = get(
        gw.addr,
        "crm.public.example",
        "/_vestibule/login?rd=/",
        &["Accept: text/html", "X-Forwarded-Proto: https"],
    )
    .await;
    assert_eq!(spoofed.status, 400);
    // A protected page still sends the browser to sign-in, which then explains.
    let page = get(
        gw.addr,
        "crm.public.example",
        "/deals",
        &["Accept: text/html"],
    )
    .await;
    assert_eq!(page.status, 302);
    // A loopback name starts the sign-in, with a Secure binding cookie.
    let r = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/login?rd=/",
        &["Accept: text/html"],
    )
    .await;
    assert_eq!(r.status, 302, "{}", r.body);
    let binding = r.header("set-cookie").unwrap();
    assert!(
        binding.contains("SameSite=None") && binding.contains("Secure"),
        "{binding}"
    );
    assert_eq!(up.hits(), 0);
}
