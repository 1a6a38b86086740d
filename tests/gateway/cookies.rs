//! Forged, damaged, expired, foreign and retired cookies are all just "no session": a
//! redirect to sign-in, and nothing forwarded.

use crate::harness::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use vestibule::clock::{FixedClock, SystemClock};
use vestibule::crypto::KeyRing;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn status_with(gw: &Gateway, host: &str, value: &str) -> u16 {
    get(
        gw.addr,
        host,
        "/deals",
        &["Accept: text/html", &cookie(value)],
    )
    .await
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bit_flip_of_a_valid_cookie_is_refused() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let (_, value) = sessions.create("contoso", alice()).await.unwrap();
    assert_eq!(status_with(&gw, "crm.contoso.localhost", &value).await, 200);
    let before = up.hits();
    let sealed = URL_SAFE_NO_PAD
        .decode(value.trim_start_matches("v1."))
        .unwrap();
    // One flip in every byte (header, key id, nonce, ciphertext and tag).
    for i in 0..sealed.len() {
        let mut copy = sealed.clone();
        copy[i] ^= 0x01;
        let forged = format!("v1.{}", URL_SAFE_NO_PAD.encode(&copy));
        assert_eq!(
            status_with(&gw, "crm.contoso.localhost", &forged).await,
            302,
            "flip in byte {i}"
        );
    }
    for junk in [
        "",
        "v1.",
        "v2.AAAA",
        "garbage",
        &"A".repeat(5000),
        &value[..value.len() - 3],
    ] {
        assert_eq!(
            status_with(&gw, "crm.contoso.localhost", junk).await,
            302,
            "{junk:.20}"
        );
    }
    assert_eq!(up.hits(), before, "nothing forwarded for a bad cookie");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_sealed_with_an_unknown_key_is_refused() {
    let up = Upstream::start().await;
    let mut setup = Setup::new(up.addr);
    let gw = setup.start().await;
    setup.active_key = "k9";
    setup.ring = vec![("k9", KEY_2)];
    let foreign = setup.sessions(Arc::new(SystemClock)).await;
    let (_, value) = foreign.create("contoso", alice()).await.unwrap();
    let sealed = URL_SAFE_NO_PAD
        .decode(value.trim_start_matches("v1."))
        .unwrap();
    assert_eq!(KeyRing::key_id_of(&sealed), Some("k9"));
    assert_eq!(status_with(&gw, "crm.contoso.localhost", &value).await, 302);
    // Same session, but a key id the gateway knows pasted in front of the foreign envelope.
    let mut relabelled = sealed.clone();
    relabelled[1..3].copy_from_slice(b"k1");
    let relabelled = format!("v1.{}", URL_SAFE_NO_PAD.encode(&relabelled));
    assert_eq!(
        status_with(&gw, "crm.contoso.localhost", &relabelled).await,
        302
    );
    assert_eq!(up.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_are_refused() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    // Absolute lifetime (8h) over: signed in nine hours ago.
    let past = setup
        .sessions(Arc::new(FixedClock::new(now() - 9 * 3600)))
        .await;
    let (_, old) = past.create("contoso", alice()).await.unwrap();
    assert_eq!(status_with(&gw, "crm.contoso.localhost", &old).await, 302);
    // Idle lifetime (1h) over: signed in, and last seen, two hours ago.
    let idle = setup
        .sessions(Arc::new(FixedClock::new(now() - 2 * 3600)))
        .await;
    let (_, stale) = idle.create("contoso", alice()).await.unwrap();
    assert_eq!(status_with(&gw, "crm.contoso.localhost", &stale).await, 302);
    // Half an hour ago is fine.
    let recent = setup
        .sessions(Arc::new(FixedClock::new(now() - 1800)))
        .await;
    let (_, fresh) = recent.create("contoso", alice()).await.unwrap();
    assert_eq!(status_with(&gw, "crm.contoso.localhost", &fresh).await, 200);
    assert_eq!(up.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_one_tenant_is_refused_by_another() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let (_, fabrikam) = sessions.create("fabrikam", alice()).await.unwrap();
    assert_eq!(
        status_with(&gw, "crm.contoso.localhost", &fabrikam).await,
        302
    );
    assert_eq!(up.hits(), 0);
    assert_eq!(status_with(&gw, "crm.fabrikam.test", &fabrikam).await, 200);
    assert_eq!(up.last().one("x-vestibule-tenant"), Some("fabrikam"));
}

/// Two session cookies of our name mean one was planted (a sibling domain, a plain-HTTP
/// page). Trying each would let the attacker's own valid session win over the victim's (login
/// fixation: the victim then works, and uploads, as the attacker), so the request counts as
/// carrying none: sign in again, nothing forwarded with anyone's identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_session_cookies_count_as_none() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let (_, victim) = sessions.create("contoso", alice()).await.unwrap();
    let mut mallory = alice();
    mallory.user = "mallory@contoso.example".into();
    mallory.subject = "mallory".into();
    let (_, attacker) = sessions.create("contoso", mallory).await.unwrap();
    for cookies in [
        format!("Cookie: vestibule={attacker}; vestibule={victim}"),
        format!("Cookie: vestibule={victim}; vestibule={attacker}"),
        format!("Cookie: vestibule=v1.planted; vestibule={victim}"),
    ] {
        for (accept, status) in [("text/html", 302), ("application/json", 401)] {
            let r = get(
                gw.addr,
                "crm.contoso.localhost",
                "/",
                &[&format!("Accept: {accept}"), &cookies],
            )
            .await;
            assert_eq!(r.status, status, "{cookies}");
        }
    }
    // Split over two Cookie headers, too.
    let r = get(
        gw.addr,
        "crm.contoso.localhost",
        "/",
        &[
            "Accept: text/html",
            &format!("Cookie: vestibule={attacker}"),
            &cookie(&victim),
        ],
    )
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(up.hits(), 0, "nothing forwarded under either identity");
    // Alone, each is a session again.
    let r = get(gw.addr, "crm.contoso.localhost", "/", &[&cookie(&victim)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        up.last().one("x-vestibule-user"),
        Some("alice@contoso.example")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_keeps_old_sessions_until_the_old_key_is_retired() {
    let up = Upstream::start().await;
    let mut setup = Setup::new(up.addr);
    let mut gw = setup.start().await;
    let (_, old) = setup
        .sessions(Arc::new(SystemClock))
        .await
        .create("contoso", alice())
        .await
        .unwrap();
    assert_eq!(status_with(&gw, "crm.contoso.localhost", &old).await, 200);
    gw.stop();

    // Rotate: k2 becomes active, k1 stays in the ring.
    setup.active_key = "k2";
    setup.ring = vec![("k1", KEY_1), ("k2", KEY_2)];
    setup.port = free_port();
    let mut gw = setup.start().await;
    assert_eq!(
        status_with(&gw, "crm.contoso.localhost", &old).await,
        200,
        "old key still opens"
    );
    let (_, new) = setup
        .sessions(Arc::new(SystemClock))
        .await
        .create("contoso", alice())
        .await
        .unwrap();
    let sealed = URL_SAFE_NO_PAD
        .decode(new.trim_start_matches("v1."))
        .unwrap();
    assert_eq!(
        KeyRing::key_id_of(&sealed),
        Some("k2"),
        "new sessions use the new key"
    );
    assert_eq!(status_with(&gw, "crm.contoso.localhost", &new).await, 200);
    gw.stop();

    // Retire k1: its sessions end, k2's continue.
    setup.active_key = "k2";
    setup.ring = vec![("k2", KEY_2)];
    setup.port = free_port();
    let gw = setup.start().await;
    assert_eq!(status_with(&gw, "crm.contoso.localhost", &old).await, 302);
    assert_eq!(status_with(&gw, "crm.contoso.localhost", &new).await, 200);
}

/// Another application's cookie with non-ASCII bytes (here UTF-8 "Zoë") in the same header
/// must neither hide the session cookie nor carry it upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_ascii_neighbour_cookie_neither_hides_nor_leaks_ours() {
    let up = Upstream::start().await;
    let setup = Setup::new(up.addr);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let (_, value) = sessions.create("contoso", alice()).await.unwrap();
    let header = format!("Cookie: pref=Zoë; vestibule={value}; theme=dark");
    let r = get(gw.addr, "crm.contoso.localhost", "/", &[&header]).await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(seen.one("x-vestibule-user"), Some("alice@contoso.example"));
    let forwarded = seen.all("cookie").join("; ");
    assert!(!forwarded.contains("vestibule="), "{forwarded}");
    assert!(!forwarded.contains(&value), "{forwarded}");
    assert!(forwarded.contains("pref=Zo"), "{forwarded}");
    assert!(forwarded.contains("theme=dark"), "{forwarded}");
}
