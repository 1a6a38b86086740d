//! Several gateway instances on one PostgreSQL (a real server from Debian's package, started
//! by the test): they behave as one gateway.

use crate::databases::Postgres;
use crate::harness::*;
use std::sync::Arc;
use vestibule::clock::SystemClock;

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
