//! Client copies of identity and forwarding headers never reach the upstream, whatever their
//! case, `_` spelling or number; on public and protected paths alike.

use crate::harness::*;
use std::sync::Arc;
use vestibule::clock::SystemClock;

const SPOOFS: [&str; 12] = [
    "X-Vestibule-User: mallory@evil.example",
    "x-vestibule-user: mallory@evil.example",
    "X_Vestibule_User: mallory@evil.example",
    "X-VESTIBULE-USER: mallory@evil.example",
    "x_vestibule-user: mallory@evil.example",
    "X-Vestibule-User: second@evil.example",
    "X-Vestibule-Assertion: eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.",
    "X-Vestibule-Tenant: fabrikam",
    "Remote_User: mallory",
    "X-Vestibule-Crm-User: 1.evil.example",
    "x_vestibule_crm_user: 2.evil.example",
    "X-VESTIBULE-CRM_USER: 3.evil.example",
];

fn assert_no_spoof(seen: &Seen) {
    for (name, value) in &seen.headers {
        assert!(
            !value.contains("evil.example") && value != "mallory" && value != "fabrikam",
            "spoofed header reached upstream: {name}: {value}"
        );
        assert!(
            !name.contains('_'),
            "underscore variant reached upstream: {name}"
        );
    }
    assert!(seen
        .all("x-vestibule-assertion")
        .iter()
        .all(|v| !v.starts_with("eyJhbGciOiJub25l")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_headers_are_stripped_on_public_paths() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let r = get(gw.addr, "crm.contoso.localhost", "/static/x.js", &SPOOFS).await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_no_spoof(&seen);
    assert_eq!(seen.one("x-vestibule-user"), None);
    assert_eq!(seen.one("x-vestibule-crm-user"), None);
    assert_eq!(seen.one("remote-user"), None);
}

/// The CRM user id the directory matched is the one header of its name upstream; a
/// client's copies (any case, `_` spelling) are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crm_user_header_comes_only_from_the_directory() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let mut identity = alice();
    identity.crm = Some(vestibule::identity::CrmUser {
        id: "101".into(),
        display_name: Some("Alice Andersen".into()),
        email: None,
        roles: vec!["sales".into()],
    });
    let (_, value) = sessions.create("contoso", identity).await.unwrap();
    let c = cookie(&value);
    let mut lines: Vec<&str> = SPOOFS.to_vec();
    lines.push(&c);
    let r = get(gw.addr, "crm.contoso.localhost", "/deals", &lines).await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_no_spoof(&seen);
    assert_eq!(seen.all("x-vestibule-crm-user"), ["101"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_headers_are_replaced_on_protected_paths() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let (_, value) = sessions.create("contoso", alice()).await.unwrap();
    let c = cookie(&value);
    let mut lines: Vec<&str> = SPOOFS.to_vec();
    lines.push(&c);
    let r = get(gw.addr, "crm.contoso.localhost", "/deals", &lines).await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_no_spoof(&seen);
    assert_eq!(seen.one("x-vestibule-user"), Some("alice@contoso.example"));
    assert_eq!(seen.one("x-vestibule-tenant"), Some("contoso"));
    assert_eq!(seen.all("x-vestibule-assertion").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_headers_without_session_change_nothing() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let mut lines: Vec<&str> = SPOOFS.to_vec();
    lines.push("Accept: text/html");
    let r = get(gw.addr, "crm.contoso.localhost", "/deals", &lines).await;
    assert_eq!(
        r.status, 302,
        "identity headers are no substitute for a session"
    );
    assert_eq!(up.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_untrusted_clients_are_replaced() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    get(
        gw.addr,
        "crm.contoso.localhost",
        "/static/a",
        &[
            "X-Forwarded-For: 203.0.113.66",
            "X_Forwarded_For: 203.0.113.67",
            "X-Forwarded-Proto: https",
            "X-Forwarded-Host: evil.example",
            "X-Real-IP: 203.0.113.68",
            "Forwarded: for=203.0.113.69",
        ],
    )
    .await;
    let seen = up.last();
    assert_eq!(seen.one("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.one("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.one("x-forwarded-host"), Some("crm.contoso.localhost"));
    assert_eq!(seen.one("x-real-ip"), None);
    assert_eq!(seen.one("forwarded"), None);
    assert!(seen.headers.iter().all(|(n, _)| n != "x_forwarded_for"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_a_trusted_proxy_are_extended() {
    let up = Upstream::start().await;
    let mut setup = Setup::new(up.addr);
    setup.proxy.trusted_proxies = vec!["127.0.0.0/8".into()];
    let gw = setup.start().await;
    get(
        gw.addr,
        "crm.contoso.localhost",
        "/static/a",
        &[
            "X-Forwarded-For: 203.0.113.66",
            "X-Forwarded-Proto: https",
            "X-Forwarded-Host: crm.contoso.example",
        ],
    )
    .await;
    let seen = up.last();
    assert_eq!(seen.one("x-forwarded-for"), Some("203.0.113.66, 127.0.0.1"));
    assert_eq!(seen.one("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.one("x-forwarded-host"), Some("crm.contoso.example"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_values_with_line_breaks_are_never_injected() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let mut identity = alice();
    identity.name = Some("Alice\r\nX-Vestibule-User: admin@contoso.example".into());
    let (_, value) = sessions.create("contoso", identity).await.unwrap();
    let r = get(gw.addr, "crm.contoso.localhost", "/", &[&cookie(&value)]).await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(seen.one("x-vestibule-name"), None);
    assert_eq!(seen.one("x-vestibule-user"), Some("alice@contoso.example"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_header_cannot_nominate_our_headers_away() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let (_, value) = sessions.create("contoso", alice()).await.unwrap();
    let c = cookie(&value);
    // pingora removes Connection-nominated headers before our upstream filter runs, so the
    // client can only nominate away its own copies, never the ones Vestibule sets.
    let r = get(
        gw.addr,
        "crm.contoso.localhost",
        "/deals",
        &[
            "Connection: X-Vestibule-User, X-Vestibule-Assertion, close",
            &c,
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = up.last();
    assert_eq!(seen.one("x-vestibule-user"), Some("alice@contoso.example"));
    assert!(seen.one("x-vestibule-assertion").is_some());
    assert!(seen
        .all("connection")
        .iter()
        .all(|v| !v.to_ascii_lowercase().contains("vestibule")));
}
