//! Several gateway instances on one PostgreSQL (a real server from Debian's package, started
//! by the test): they behave as one gateway.

use crate::databases::Postgres;
use crate::harness::*;
use std::sync::Arc;
use vestibule::clock::SystemClock;
use vestibule::store::Store;

/// A PostgreSQL server with an empty `vestibule` database; its URL.
pub async fn database() -> (Postgres, String) {
    let pg = Postgres::start();
    let admin = vestibule::store::PgStore::connect(
        &pg.url(),
        vestibule::store::PgPoolSettings::default(),
        false,
    )
    .await
    .unwrap();
    sqlx::query("CREATE DATABASE vestibule")
        .execute(admin.pool())
        .await
        .unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/vestibule", pg.port);
    (pg, url)
}

async fn logout(gw: &Gateway, cookie: &str) -> Reply {
    raw(
        gw.addr,
        &format!(
            "POST /_vestibule/logout HTTP/1.1\r\nHost: crm.contoso.localhost\r\nSec-Fetch-Site: same-origin\r\nContent-Length: 0\r\nConnection: close\r\n{cookie}\r\n\r\n"
        ),
    )
    .await
    .unwrap()
}

/// A session created on A works on B; signing out on A ends it on B at once — B had it
/// cached for ten minutes, and PostgreSQL's notification drops it there — while another
/// user's session stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_one_session_on_every_instance_and_ends_everywhere_at_once() {
    let (_pg, url) = database().await;
    let up = Upstream::start().await;
    let mut setup = Setup::new(up.addr);
    setup.postgres = Some(url);
    setup.cache_ttl = Some("10m");
    let a = setup.start().await;
    let b = setup.start_another().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let alice_cookie = cookie(&sessions.create("contoso", alice()).await.unwrap().1);
    let mut bob = alice();
    bob.subject = "bob".into();
    bob.user = "bob@contoso.example".into();
    let bob_cookie = cookie(&sessions.create("contoso", bob).await.unwrap().1);

    for gw in [&a, &b] {
        for c in [&alice_cookie, &bob_cookie] {
            let r = get(gw.addr, "crm.contoso.localhost", "/deals", &[c]).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    assert_eq!(up.hits(), 4);

    let out = logout(&a, &alice_cookie).await;
    assert!(
        (300..400).contains(&out.status) || out.status == 200,
        "{}",
        out.body
    );
    // B learns of it from the database's notification, not from its 10-minute cache.
    let started = std::time::Instant::now();
    let ended = loop {
        let r = get(
            b.addr,
            "crm.contoso.localhost",
            "/api/deals",
            &[&alice_cookie],
        )
        .await;
        if r.status == 401 {
            break started.elapsed();
        }
        assert_eq!(r.status, 200);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "B still serves the ended session"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    eprintln!("B refused the ended session {ended:?} after the sign-out on A");
    for gw in [&a, &b] {
        let r = get(
            gw.addr,
            "crm.contoso.localhost",
            "/api/deals",
            &[&alice_cookie],
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.body);
        let r = get(gw.addr, "crm.contoso.localhost", "/deals", &[&bob_cookie]).await;
        assert_eq!(r.status, 200, "the other session stays");
    }
}

fn vestibule(args: &[&str], config: &std::path::Path) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Operations: with `store.migrate: false` the schema comes from `vestibule migrate`; support
/// staff list a user's sessions and revoke them, and every running instance refuses them at
/// once (the same notification as a sign-out) while other users stay signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_then_list_and_revoke_a_users_sessions_on_every_instance() {
    let (_pg, url) = database().await;
    let up = Upstream::start().await;
    let mut setup = Setup::new(up.addr);
    setup.postgres = Some(url);
    setup.cache_ttl = Some("10m");
    setup.migrate = Some(false);
    let config = setup.config_path();
    let (ok, out, err) = vestibule(&["migrate"], &config);
    assert!(ok, "{out}{err}");
    assert!(out.contains("migrations applied"));
    let (ok, _, _) = vestibule(&["migrate"], &config);
    assert!(ok, "migrating again changes nothing");

    let a = setup.start().await;
    let b = setup.start_another().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let mut bob = alice();
    bob.subject = "bob".into();
    bob.user = "bob@contoso.example".into();
    let bob_cookies = [
        cookie(&sessions.create("contoso", bob.clone()).await.unwrap().1),
        cookie(&sessions.create("contoso", bob.clone()).await.unwrap().1),
    ];
    let alice_cookie = cookie(&sessions.create("contoso", alice()).await.unwrap().1);
    let bob_elsewhere = cookie(&sessions.create("fabrikam", bob).await.unwrap().1);
    for gw in [&a, &b] {
        for c in bob_cookies.iter().chain([&alice_cookie]) {
            assert_eq!(
                get(gw.addr, "crm.contoso.localhost", "/deals", &[c])
                    .await
                    .status,
                200
            );
        }
    }

    let (ok, listed, err) = vestibule(
        &[
            "sessions",
            "list",
            "--tenant",
            "contoso",
            "--user",
            "BOB@contoso.example",
        ],
        &config,
    );
    assert!(ok, "{err}");
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(
        rows.iter()
            .all(|r| r.contains("\tcontoso\tbob@contoso.example\t")),
        "{listed}"
    );
    let (ok, all, _) = vestibule(&["sessions", "list"], &config);
    assert!(ok);
    assert_eq!(all.lines().count(), 1 + 4, "{all}");

    let (ok, _, err) = vestibule(
        &[
            "sessions",
            "revoke",
            "--tenant",
            "nowhere",
            "--user",
            "bob@contoso.example",
        ],
        &config,
    );
    assert!(!ok);
    assert!(err.contains("no tenant `nowhere`"), "{err}");
    let (ok, out, err) = vestibule(
        &[
            "sessions",
            "revoke",
            "--tenant",
            "contoso",
            "--user",
            "bob@contoso.example",
        ],
        &config,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains(
            "ended 2 sessions of bob@contoso.example in contoso (every instance drops them now)"
        ),
        "{out}"
    );
    let started = std::time::Instant::now();
    for gw in [&a, &b] {
        for c in &bob_cookies {
            loop {
                let r = get(gw.addr, "crm.contoso.localhost", "/api/deals", &[c]).await;
                if r.status == 401 {
                    break;
                }
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(5),
                    "still served"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        assert_eq!(
            get(gw.addr, "crm.contoso.localhost", "/deals", &[&alice_cookie])
                .await
                .status,
            200
        );
        assert_eq!(
            get(gw.addr, "crm.fabrikam.test", "/deals", &[&bob_elsewhere])
                .await
                .status,
            200,
            "bob's session in another tenant stays"
        );
    }
}

/// Two instances, 50 requests on each meeting the same expired token at once: the token
/// endpoint (the real oidc-provider, rotating refresh tokens, so a second refresh with the
/// used token would revoke the grant) sees exactly one refresh, every request gets the new
/// token, and the rotated refresh token is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_refresh_across_instances() {
    use crate::documents::{documents_setup, put, real_tokens, ring, token_requests};
    let (_pg, url) = database().await;
    let op = crate::peers::OidcPeer::start(&[("ROTATE_REFRESH_TOKENS", "1")]);
    let up = Upstream::start().await;
    let mut setup = documents_setup(up.addr);
    setup.postgres = Some(url.clone());
    crate::documents::use_provider(&mut setup, &op);
    let a = setup.start().await;
    let b = setup.start_another().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let who = alice();
    let c = cookie(&sessions.create("contoso", who.clone()).await.unwrap().1);
    let store = vestibule::store::PgStore::connect(
        &url,
        vestibule::store::PgPoolSettings::default(),
        false,
    )
    .await
    .unwrap();
    let (old_access, old_refresh) = real_tokens(&op, "alice").await;
    let id = put(
        &store,
        &who,
        &old_access,
        &old_refresh,
        chrono::Utc::now().timestamp() - 5,
    )
    .await;
    let before = token_requests(&op).await;
    // The provider answers token requests after 700 ms: both instances' requests surely
    // meet the due token while the first refresh is under way.
    let slow = reqwest::Client::new()
        .post(format!("{}/__token_faults?delay_ms=700&times=5", op.issuer))
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 204);

    let mut requests = Vec::new();
    for _ in 0..50 {
        for gw in [a.addr, b.addr] {
            let c = c.clone();
            requests.push(tokio::spawn(async move {
                get(gw, "crm.contoso.localhost", "/documents/x", &[&c]).await
            }));
        }
    }
    for r in requests {
        assert_eq!(r.await.unwrap().status, 200);
    }
    assert_eq!(
        token_requests(&op).await - before,
        1,
        "exactly one refresh at the token endpoint for both instances"
    );
    let stored = store.get_token(&id).await.unwrap().unwrap();
    let token = vestibule::tokens::open(&ring(), &stored).unwrap();
    assert_eq!(stored.generation, 2);
    assert_ne!(token.access_token.expose(), old_access);
    assert_ne!(token.refresh_token.as_ref().unwrap().expose(), old_refresh);
    assert_eq!(token.status, vestibule::tokens::TokenStatus::Ok);
    // Every request went upstream with the one new token.
    let seen = up.all();
    assert_eq!(seen.len(), 100);
    assert!(seen
        .iter()
        .all(|s| s.one("x-vestibule-document-token") == Some(token.access_token.expose())));
}

/// Waits until the provider has received `n` more token requests than `before`.
async fn token_request_arrived(op: &crate::peers::OidcPeer, before: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while crate::documents::token_requests(op).await <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no token request came"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A gateway killed (SIGKILL) in the middle of a refresh loses no refresh token the provider
/// still accepts. Killed while its token request is held and never processed: the old tokens
/// are still in the database, its row lock died with it, and the other instance refreshes
/// with the old refresh token. Killed after the provider rotated the token but before the
/// commit — the one window no client can close — the other instance's refresh presents the
/// consumed token; this provider (strict reuse detection) revokes the grant, and the user is
/// sent through consent again (Microsoft and Google accept the old token again instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_refresh_loses_no_usable_refresh_token() {
    use crate::documents::{documents_setup, put, real_tokens, ring, token_requests};
    let (_pg, url) = database().await;
    let op = crate::peers::OidcPeer::start(&[("ROTATE_REFRESH_TOKENS", "1")]);
    let up = Upstream::start().await;
    let mut setup = documents_setup(up.addr);
    setup.postgres = Some(url.clone());
    crate::documents::use_provider(&mut setup, &op);
    let store =
        vestibule::store::PgStore::connect(&url, vestibule::store::PgPoolSettings::default(), true)
            .await
            .unwrap();
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let fault = |query: &'static str| {
        let issuer = op.issuer.clone();
        async move {
            let r = reqwest::Client::new()
                .post(format!("{issuer}/__token_faults?{query}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
        }
    };

    for (login, held, rotated) in [
        // Held, then answered 503 without the provider processing it.
        ("alice", "status=503&delay_ms=1500&times=1", false),
        // Processed by the provider at once (the refresh token rotates), answered late.
        ("bob", "hold_response_ms=1500&times=1", true),
    ] {
        let mut who = alice();
        who.subject = format!("{login}-subject");
        let c = cookie(&sessions.create("contoso", who.clone()).await.unwrap().1);
        // Started first: their background refreshers look at once at start, then a minute
        // later; the token below is met by the request.
        let mut a = setup.start().await;
        let b = setup.start_another().await;
        let (old_access, old_refresh) = real_tokens(&op, login).await;
        let id = put(
            &store,
            &who,
            &old_access,
            &old_refresh,
            chrono::Utc::now().timestamp() - 5,
        )
        .await;
        fault(held).await;
        let before = token_requests(&op).await;
        let addr = a.addr;
        let c2 = c.clone();
        let on_a = tokio::spawn(async move {
            raw(
                addr,
                &format!("GET /documents/x HTTP/1.1\r\nHost: crm.contoso.localhost\r\n{c2}\r\nConnection: close\r\n\r\n"),
            )
            .await
        });
        token_request_arrived(&op, before).await;
        a.stop();
        assert!(on_a.await.unwrap().is_err(), "A died before answering");
        // Nothing was committed by A.
        let stored = store.get_token(&id).await.unwrap().unwrap();
        assert_eq!(stored.generation, 1, "{login}");
        // Let the held request finish at the provider.
        tokio::time::sleep(std::time::Duration::from_millis(1700)).await;

        let r = get(
            b.addr,
            "crm.contoso.localhost",
            "/documents/x",
            &[&c, "Accept: text/html"],
        )
        .await;
        let token = vestibule::tokens::open(&ring(), &store.get_token(&id).await.unwrap().unwrap())
            .unwrap();
        if rotated {
            assert_eq!(r.status, 302, "{login}: consent again: {}", r.body);
            assert!(r
                .header("location")
                .unwrap()
                .starts_with("/_vestibule/documents/connect"));
            assert_eq!(
                token.status,
                vestibule::tokens::TokenStatus::ConsentRequired
            );
        } else {
            assert_eq!(r.status, 200, "{login}: {}", r.body);
            let injected = up
                .last()
                .one("x-vestibule-document-token")
                .unwrap()
                .to_owned();
            assert_ne!(injected, old_access, "refreshed with the old refresh token");
            assert_eq!(token.access_token.expose(), injected);
            assert_eq!(token.status, vestibule::tokens::TokenStatus::Ok);
            assert_ne!(token.refresh_token.as_ref().unwrap().expose(), old_refresh);
        }
    }
}

/// PostgreSQL stopped under a running gateway: cached sessions keep working, readiness says
/// why it fails, what needs the database (an uncached session, a sign-in's completion)
/// answers 503 and creates nothing; when PostgreSQL is back everything works again without
/// restarting the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_and_coming_back() {
    use crate::oidc_flow::{begin, callback, oidc_setup};
    let (mut pg, url) = database().await;
    let op = crate::peers::OidcPeer::start(&[]);
    let up = Upstream::start().await;
    let mut setup = oidc_setup(up.addr, &op.issuer);
    setup.postgres = Some(url.clone());
    setup.cache_ttl = Some("10m");
    let docs = crate::documents::documents_setup(up.addr);
    setup.document_providers = docs.document_providers.clone();
    setup.contoso().documents = docs.tenants[0].documents.clone();
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let cached = cookie(&sessions.create("contoso", alice()).await.unwrap().1);
    let mut bob = alice();
    bob.subject = "bob".into();
    let uncached = cookie(&sessions.create("contoso", bob).await.unwrap().1);
    assert_eq!(
        get(gw.addr, "crm.contoso.localhost", "/deals", &[&cached])
            .await
            .status,
        200
    );
    let count = |url: String| async move {
        let store = vestibule::store::PgStore::connect(
            &url,
            vestibule::store::PgPoolSettings::default(),
            false,
        )
        .await
        .unwrap();
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sessions")
            .fetch_one(store.pool())
            .await
            .unwrap()
    };
    assert_eq!(count(url.clone()).await, 2);

    pg.pause();
    let r = get(gw.addr, "crm.contoso.localhost", "/deals", &[&cached]).await;
    assert_eq!(r.status, 200, "a cached session keeps working");
    let ready = get(gw.addr, "x", "/_vestibule/ready", &[]).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.contains("session store unreachable"),
        "{}",
        ready.body
    );
    let r = get(
        gw.addr,
        "crm.contoso.localhost",
        "/deals",
        &[&uncached, "Accept: text/html"],
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("temporarily unavailable"), "{}", r.body);
    // The CRM asking for fresh document tokens: 503 too.
    let refresh = raw(
        gw.addr,
        &format!("POST /_vestibule/documents/refresh HTTP/1.1\r\nHost: crm.contoso.localhost\r\n{cached}\r\nSec-Fetch-Site: same-origin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    )
    .await
    .unwrap();
    assert_eq!(refresh.status, 503, "{}", refresh.body);
    // A sign-in up to the provider needs no database; its completion does: 503, nothing made.
    let (auth, binding) = begin(&gw).await;
    let back = op.sign_in(&auth, "carol").await;
    let hits = up.hits();
    let refused = callback(&gw, &back, &binding).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused
        .headers
        .iter()
        .all(|(n, v)| !n.eq_ignore_ascii_case("set-cookie") || !v.starts_with("vestibule=v1.")));
    assert_eq!(up.hits(), hits, "nothing forwarded");

    pg.resume();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while get(gw.addr, "x", "/_vestibule/ready", &[]).await.status != 200 {
        assert!(std::time::Instant::now() < deadline, "not ready again");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(count(url.clone()).await, 2, "no half-made session");
    assert_eq!(
        get(gw.addr, "crm.contoso.localhost", "/deals", &[&uncached])
            .await
            .status,
        200
    );
    let (auth, binding) = begin(&gw).await;
    let back = op.sign_in(&auth, "carol").await;
    let signed_in = callback(&gw, &back, &binding).await;
    assert_eq!(signed_in.status, 302, "{}", signed_in.body);
    assert_eq!(count(url).await, 3);
}

/// A sign-in's callback used on one instance is refused on the other (its single-use state
/// is one record in the shared database), and so is a replay on the same instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_used_on_one_instance_is_refused_on_the_other() {
    use crate::oidc_flow::{begin, callback, oidc_setup};
    let (_pg, url) = database().await;
    let op = crate::peers::OidcPeer::start(&[]);
    let up = Upstream::start().await;
    let mut setup = oidc_setup(up.addr, &op.issuer);
    setup.postgres = Some(url);
    let a = setup.start().await;
    let b = setup.start_another().await;
    let (auth, binding) = begin(&a).await;
    let back = op.sign_in(&auth, "alice").await;
    let first = callback(&a, &back, &binding).await;
    assert_eq!(first.status, 302, "{}", first.body);
    for gw in [&b, &a] {
        let again = callback(gw, &back, &binding).await;
        assert_eq!(again.status, 400, "{}", again.body);
        assert!(
            again
                .body
                .contains("the sign-in request is not valid (start again)"),
            "refused as a used state, before any exchange: {}",
            again.body
        );
        assert!(
            again
                .headers
                .iter()
                .all(|(n, v)| !n.eq_ignore_ascii_case("set-cookie")
                    || !v.starts_with("vestibule=v1.")),
            "no session for a replay"
        );
    }
}

/// TLS to the database as the URL asks: with `sslmode=verify-full` and the server's
/// certificate as the trust anchor the store works over TLS (PostgreSQL says so for the
/// connection); a certificate the client does not trust, or a plain server, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_database_as_the_url_asks() {
    let (pg, cert) = Postgres::start_tls();
    let base = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port);
    let settings = vestibule::store::PgPoolSettings::default();
    let trusted = format!("{base}?sslmode=verify-full&sslrootcert={}", cert.display());
    let store = vestibule::store::PgStore::connect(&trusted, settings, true)
        .await
        .unwrap();
    store.ping().await.unwrap();
    let over_tls: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(over_tls, "the connection is encrypted");

    // Another certificate as trust anchor: refused, nothing connects.
    let dir = tempfile::tempdir().unwrap();
    let (other, _) = crate::peers::make_cert(dir.path(), "other-ca");
    let untrusted = format!("{base}?sslmode=verify-full&sslrootcert={}", other.display());
    assert!(
        vestibule::store::PgStore::connect(&untrusted, settings, true)
            .await
            .is_err()
    );
    // A server without TLS, when the URL requires it: refused.
    let plain = Postgres::start();
    let require = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=require",
        plain.port
    );
    assert!(vestibule::store::PgStore::connect(&require, settings, true)
        .await
        .is_err());
}
