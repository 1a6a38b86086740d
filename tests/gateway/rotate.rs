//! `vestibule rotate-key` against a running gateway: every stored record moves to the active
//! key while signed-in users keep being served.

use crate::harness::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use vestibule::clock::SystemClock;

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
    let mut setup = Setup::new(up.addr);
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let mut cookies = Vec::new();
    for n in 0..5 {
        let mut identity = alice();
        identity.subject = format!("user-{n}");
        cookies.push(cookie(
            &sessions.create("contoso", identity).await.unwrap().1,
        ));
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
                    let r = get(addr, "crm.contoso.localhost", "/deals", &[c]).await;
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
        stdout.contains("re-sealed under key k2: 5 sessions"),
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
    assert!(payload_keys(&setup).await.iter().all(|k| k == "k2"));
    for c in &cookies {
        assert_eq!(
            get(gw.addr, "crm.contoso.localhost", "/deals", &[c])
                .await
                .status,
            200
        );
    }

    // Run again: nothing left to do.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["rotate-key", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout)
        .contains("0 sessions, 0 document tokens (0 moved to their owner's digest under that key); 5 already current"));
}
