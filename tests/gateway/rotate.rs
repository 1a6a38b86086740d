//! `vestibule rotate-key` against a running gateway: every stored record moves to the active
//! key while signed-in users keep being served.

use crate::harness::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use vestibule::clock::SystemClock;
use vestibule::store::Store;
use vestibule::tokens::{DocumentToken, StoredToken, TokenId, TokenSecret, TokenStatus};

/// Key ids of the sealed session payloads in the gateway's store.
async fn payload_keys(setup: &Setup) -> Vec<String> {
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        setup.dir.path().join("v.db").display()
    ))
    .await
    .unwrap();
    let payloads: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM sessions")
        .fetch_all(&db)
        .await
        .unwrap();
    payloads
        .iter()
        .map(|p| vestibule::crypto::KeyRing::key_id_of(p).unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_key_reseals_every_record_while_requests_run() {
    let up = Upstream::start().await;
    let mut setup = crate::documents::documents_setup(up.addr);
    if let Some(d) = &mut setup.contoso().documents {
        d.resources.truncate(1);
    }
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let store = vestibule::store::SqliteStore::open(&setup.dir.path().join("v.db"))
        .await
        .unwrap();
    let k1 = crate::documents::ring();
    let mut cookies = Vec::new();
    let mut tokens = Vec::new();
    for n in 0..5 {
        let mut identity = alice();
        identity.subject = format!("user-{n}");
        cookies.push(cookie(
            &sessions
                .create("contoso", identity.clone())
                .await
                .unwrap()
                .1,
        ));
        // Each user's document token, owned by their digest under k1.
        let access = format!("graph-access-token-of-user-{n}");
        let token = DocumentToken {
            access_token: TokenSecret::new(&access),
            expires_at: chrono::Utc::now().timestamp() + 3600,
            refresh_token: Some(TokenSecret::new(format!("refresh-{n}"))),
            scope: String::new(),
            status: TokenStatus::Ok,
            owner_key: Some(vestibule::identity::subject_key(
                &identity.issuer,
                &identity.subject,
            )),
        };
        let id = TokenId {
            tenant: "contoso".into(),
            owner: TokenId::user_owner(&k1, &identity.issuer, &identity.subject),
            provider: "office365-docs".into(),
            resource: "graph".into(),
        };
        let record = StoredToken::sealed(&k1, id, &token, 1, token.expires_at - 3600);
        assert!(store.put_token(&record, None).await.unwrap());
        tokens.push(access);
    }
    assert!(payload_keys(&setup).await.iter().all(|k| k == "k1"));

    // The operator adds k2 and makes it active; the gateway runs with both.
    setup.ring = vec![("k1", KEY_1), ("k2", KEY_2)];
    setup.active_key = "k2";
    let gw = setup.start().await;

    let stop = Arc::new(AtomicBool::new(false));
    let (served, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, served, refused, cookies) = (
            stop.clone(),
            served.clone(),
            refused.clone(),
            cookies.clone(),
        );
        let addr = gw.addr;
        tokio::spawn(async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                for c in &cookies {
                    let r = get(addr, "crm.contoso.localhost", "/documents/x", &[c]).await;
                    // Served, and with this user's own document token throughout.
                    if r.status == 200 {
                        served.fetch_add(1, Ordering::SeqCst);
                    } else {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let config = setup.config_path();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["rotate-key", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("re-sealed under key k2: 5 sessions, 5 document tokens (5 moved"),
        "{stdout}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();

    assert!(
        served.load(Ordering::SeqCst) >= 10,
        "requests ran during the rotation"
    );
    assert_eq!(refused.load(Ordering::SeqCst), 0, "no request was refused");
    // Every request during the rotation carried its own user's document token.
    let during = up.all();
    assert_eq!(during.len(), served.load(Ordering::SeqCst));
    for seen in &during {
        let sub = crate::directory::jwt_claims(seen.one("x-vestibule-assertion").unwrap())["sub"]
            .as_str()
            .unwrap()
            .to_owned();
        let n: usize = sub.trim_start_matches("user-").parse().unwrap();
        assert_eq!(
            seen.one("x-vestibule-document-token"),
            Some(tokens[n].as_str())
        );
    }
    assert!(payload_keys(&setup).await.iter().all(|k| k == "k2"));

    // k1 leaves the ring (cookies issued under it stop opening: their users sign in again):
    // each user's document token is still found, by the owner digest under k2.
    drop(gw);
    setup.ring = vec![("k2", KEY_2)];
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    for (n, token) in tokens.iter().enumerate() {
        let mut identity = alice();
        identity.subject = format!("user-{n}");
        let c = cookie(&sessions.create("contoso", identity).await.unwrap().1);
        let r = get(gw.addr, "crm.contoso.localhost", "/documents/x", &[&c]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            up.last().one("x-vestibule-document-token"),
            Some(token.as_str())
        );
    }

    // Run again: nothing left to do.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["rotate-key", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout)
        .contains("0 sessions, 0 document tokens (0 moved to their owner's digest under that key); 15 already current"));
}
