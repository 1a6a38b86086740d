//! One set of store behaviours, run against every backend: the embedded SQLite file and a real
//! PostgreSQL server (Debian's package, started by the test in a temporary directory; each
//! test gets a database of its own). A backend that passes these is interchangeable with the
//! other as far as the gateway can tell.

use crate::databases::Postgres;
use std::sync::Arc;
use vestibule::store::{PgPoolSettings, PgStore, SessionMatch, SqliteStore, Store, StoredSession};
use vestibule::tokens::{StoredToken, TokenId, SHARED_OWNER};

/// A fresh, empty, migrated store; dropping it removes it (and stops its server).
pub struct Fresh {
    pub store: Arc<dyn Store>,
    /// How to open the same store again (a second instance, a restart).
    pub reopen: Reopen,
    _dir: tempfile::TempDir,
    /// The server, kept running while the store is used (tests pause and resume it).
    #[allow(dead_code)]
    pub postgres: Option<Postgres>,
}

/// How a test reaches the same database again.
#[derive(Clone)]
pub enum Reopen {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Reopen {
    pub async fn open(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(path) => Arc::new(SqliteStore::open(path).await.unwrap()),
            Self::Postgres(url) => Arc::new(
                PgStore::connect(url, PgPoolSettings::default(), true)
                    .await
                    .unwrap(),
            ),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub async fn fresh(self) -> Fresh {
        let dir = tempfile::tempdir().unwrap();
        match self {
            Backend::Sqlite => {
                let reopen = Reopen::Sqlite(dir.path().join("v.db"));
                Fresh {
                    store: reopen.open().await,
                    reopen,
                    _dir: dir,
                    postgres: None,
                }
            }
            Backend::Postgres => {
                let (pg, url) = crate::instances::database().await;
                let reopen = Reopen::Postgres(url);
                Fresh {
                    store: reopen.open().await,
                    reopen,
                    _dir: dir,
                    postgres: Some(pg),
                }
            }
        }
    }
}

fn session(id: &str, last_seen: i64, expires: i64) -> StoredSession {
    StoredSession {
        id: id.into(),
        tenant: "t".into(),
        payload: vec![1, 2, 3, 0, 255],
        created_at: 100,
        last_seen_at: last_seen,
        expires_at: expires,
        subject_digest: Some(format!("sub-{id}")),
        sid_digest: (id == "a").then(|| "sid-a".to_owned()),
        checked_at: 100,
    }
}

fn token(owner: &str, resource: &str, refresh_at: Option<i64>, generation: i64) -> StoredToken {
    StoredToken {
        id: TokenId {
            tenant: "t".into(),
            owner: owner.into(),
            provider: "p".into(),
            resource: resource.into(),
        },
        payload: vec![9, 0, generation as u8],
        expires_at: refresh_at.unwrap_or(1010),
        generation,
        updated_at: 1,
        refresh_at,
    }
}

/// Insert, read, find by digest, touch (never backwards), mark checked (never backwards),
/// delete, purge by absolute and idle expiry; seen-once records; migrations run again.
async fn sessions_and_seen_once(backend: Backend) {
    let fresh = backend.fresh().await;
    let store = &fresh.store;
    store.ping().await.unwrap();
    store
        .insert_session(&session("a", 100, 1000))
        .await
        .unwrap();
    store.insert_session(&session("b", 100, 150)).await.unwrap();
    assert!(
        store.insert_session(&session("a", 1, 2)).await.is_err(),
        "an id is never reused"
    );
    assert_eq!(
        store.get_session("a").await.unwrap(),
        Some(session("a", 100, 1000))
    );
    assert_eq!(store.get_session("nobody").await.unwrap(), None);
    let find = |subject: Option<Vec<&str>>, sid: Option<Vec<&str>>| SessionMatch {
        subject: subject.map(|v| v.into_iter().map(str::to_owned).collect()),
        sid: sid.map(|v| v.into_iter().map(str::to_owned).collect()),
    };
    let mut found = store
        .find_sessions(&find(Some(vec!["sub-a", "sub-b", "x"]), None))
        .await
        .unwrap();
    found.sort();
    assert_eq!(found, ["a", "b"]);
    assert_eq!(
        store
            .find_sessions(&find(None, Some(vec!["sid-a"])))
            .await
            .unwrap(),
        ["a"]
    );
    assert!(store
        .find_sessions(&find(Some(vec!["sub-b"]), Some(vec!["sid-a"])))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .find_sessions(&find(None, None))
        .await
        .unwrap()
        .is_empty());
    store.touch_session("a", 200).await.unwrap();
    store.touch_session("a", 150).await.unwrap();
    store
        .touch_sessions(&[("a".into(), 180), ("b".into(), 140), ("gone".into(), 1)])
        .await
        .unwrap();
    assert_eq!(
        store.get_session("a").await.unwrap().unwrap().last_seen_at,
        200
    );
    assert_eq!(
        store.get_session("b").await.unwrap().unwrap().last_seen_at,
        140
    );
    store.mark_checked("a", 300).await.unwrap();
    store.mark_checked("a", 250).await.unwrap();
    assert_eq!(
        store.get_session("a").await.unwrap().unwrap().checked_at,
        300
    );
    // "b" is past its absolute expiry at 160; "a" was seen at 200, after the idle bound.
    assert_eq!(store.purge_sessions(160, 120).await.unwrap(), 1);
    assert!(store.get_session("b").await.unwrap().is_none());
    assert!(store.delete_session("a").await.unwrap());
    assert!(!store.delete_session("a").await.unwrap());

    // Seen-once values: first use wins, a repeat loses until the record expires.
    assert!(store
        .remember_once("assertion", "x", 500, 100)
        .await
        .unwrap());
    assert!(!store
        .remember_once("assertion", "x", 500, 200)
        .await
        .unwrap());
    assert!(store.remember_once("state", "x", 500, 200).await.unwrap());
    assert!(store
        .remember_once("assertion", "x", 900, 500)
        .await
        .unwrap());
    assert_eq!(store.purge_seen(950).await.unwrap(), 2);

    // Opening again runs the migrations again, harmlessly, and sees the same data.
    store
        .insert_session(&session("c", 100, 1000))
        .await
        .unwrap();
    let again = fresh.reopen.open().await;
    assert!(again.get_session("c").await.unwrap().is_some());
}

/// Two tasks (and two connections) racing to use the same values once: exactly one wins
/// each, on every backend.
async fn remember_once_under_races(backend: Backend) {
    let fresh = backend.fresh().await;
    let other = fresh.reopen.open().await;
    let keys: Vec<String> = (0..200).map(|i| format!("assertion-{i}")).collect();
    let run = |store: Arc<dyn Store>, keys: Vec<String>| {
        tokio::spawn(async move {
            let mut won = Vec::new();
            for key in &keys {
                if store
                    .remember_once("assertion", key, 10_000, 1_000)
                    .await
                    .unwrap()
                {
                    won.push(key.clone());
                }
            }
            won
        })
    };
    let mut reversed = keys.clone();
    reversed.reverse();
    let (a, b) = (run(fresh.store.clone(), keys.clone()), run(other, reversed));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a.len() + b.len(), keys.len(), "one winner per value");
    let mut all: Vec<String> = a.into_iter().chain(b).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), keys.len(), "never two winners");
}

/// Token records: insert-if-absent, compare-and-set on the generation, delete, pagination in
/// key order, payload replacement only from the expected bytes, moves (a newer record at the
/// destination wins), and the refresher's query (live sessions of the same tenant, shared).
async fn token_records(backend: Backend) {
    let fresh = backend.fresh().await;
    let store = &fresh.store;
    let first = token("o1", "graph", Some(1050), 1);
    assert!(store.put_token(&first, None).await.unwrap());
    assert!(
        !store.put_token(&first, None).await.unwrap(),
        "insert-if-absent"
    );
    assert_eq!(
        store.get_token(&first.id).await.unwrap(),
        Some(first.clone())
    );
    let second = token("o1", "graph", Some(2050), 2);
    assert!(
        !store.put_token(&second, Some(5)).await.unwrap(),
        "stale generation"
    );
    assert!(store.put_token(&second, Some(1)).await.unwrap());
    assert!(
        !store.put_token(&second, Some(1)).await.unwrap(),
        "the same generation only once"
    );
    assert_eq!(
        store.get_token(&first.id).await.unwrap(),
        Some(second.clone())
    );

    // Replacing the sealed bytes (rotate-key) only from what was read.
    assert!(!store
        .replace_token_payload(&second.id, b"not these", b"new")
        .await
        .unwrap());
    assert!(store
        .replace_token_payload(&second.id, &second.payload, b"resealed")
        .await
        .unwrap());
    assert_eq!(
        store.get_token(&second.id).await.unwrap().unwrap().payload,
        b"resealed"
    );

    // Pagination in key order covers every record once.
    for i in 0..7 {
        assert!(store
            .put_token(&token(&format!("p{i}"), "graph", None, 1), None)
            .await
            .unwrap());
    }
    let mut seen = Vec::new();
    let mut after: Option<TokenId> = None;
    loop {
        let page = store.token_records(after.as_ref(), 3).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        seen.extend(page.into_iter().map(|t| t.id.owner));
    }
    assert_eq!(seen, ["o1", "p0", "p1", "p2", "p3", "p4", "p5", "p6"]);

    // Moves: only from the generation read; a record already at the destination is kept.
    let current = store.get_token(&second.id).await.unwrap().unwrap();
    let moved = StoredToken {
        id: TokenId {
            owner: "o1-new".into(),
            ..current.id.clone()
        },
        generation: current.generation + 1,
        ..current.clone()
    };
    let stale = StoredToken {
        generation: 1,
        ..current.clone()
    };
    assert!(!store.move_token(&stale, &moved).await.unwrap());
    assert!(store.get_token(&current.id).await.unwrap().is_some());
    assert!(store.move_token(&current, &moved).await.unwrap());
    assert!(store.get_token(&current.id).await.unwrap().is_none());
    assert_eq!(
        store.get_token(&moved.id).await.unwrap(),
        Some(moved.clone())
    );
    let older = token("p0", "graph", None, 1);
    let onto_newer = StoredToken {
        id: moved.id.clone(),
        payload: b"older".to_vec(),
        ..older.clone()
    };
    assert!(store.move_token(&older, &onto_newer).await.unwrap());
    assert!(store.get_token(&older.id).await.unwrap().is_none());
    assert_eq!(
        store.get_token(&moved.id).await.unwrap().unwrap().payload,
        moved.payload,
        "the newer record at the destination wins"
    );
    assert!(store.delete_token(&moved.id).await.unwrap());
    assert!(!store.delete_token(&moved.id).await.unwrap());
}

/// The background refresher's query: a `refresh_at` by the horizon, shared or owned by a user
/// with a live (not expired, not idle) session in the same tenant; soonest first; bounded.
async fn due_tokens(backend: Backend) {
    let fresh = backend.fresh().await;
    let store = &fresh.store;
    // Sessions: a live, b expired, c idle; d live but in another tenant.
    store
        .insert_session(&session("a", 900, 5000))
        .await
        .unwrap();
    store.insert_session(&session("b", 900, 950)).await.unwrap();
    store
        .insert_session(&session("c", 100, 5000))
        .await
        .unwrap();
    let mut other = session("d", 900, 5000);
    other.tenant = "elsewhere".into();
    store.insert_session(&other).await.unwrap();
    for t in [
        token("sub-a", "r", Some(1050), 1),
        token("sub-b", "r", Some(1010), 1),
        token("sub-c", "r", Some(1010), 1),
        token("sub-d", "r", Some(1010), 1),
        token(SHARED_OWNER, "r", Some(1020), 1),
        token("sub-a", "later", Some(9000), 1),
        token("sub-a", "needs-consent", None, 1),
    ] {
        assert!(store.put_token(&t, None).await.unwrap());
    }
    let due = store.due_tokens(1100, 1000, 500, 10).await.unwrap();
    let owners: Vec<&str> = due.iter().map(|t| t.id.owner.as_str()).collect();
    assert_eq!(owners, [SHARED_OWNER, "sub-a"]);
    assert_eq!(due[1], token("sub-a", "r", Some(1050), 1));
    assert_eq!(store.due_tokens(1100, 1000, 500, 1).await.unwrap().len(), 1);
    // Deferred: out of the way until the time given, or until written again; only the
    // generation read is deferred.
    let shared = &due[0].id;
    assert!(!store.defer_refresh(shared, 7, None).await.unwrap());
    assert!(store.defer_refresh(shared, 1, Some(2000)).await.unwrap());
    assert!(store.defer_refresh(&due[1].id, 1, None).await.unwrap());
    assert!(store
        .due_tokens(1100, 1000, 500, 10)
        .await
        .unwrap()
        .is_empty());
    let later = store.due_tokens(2100, 1000, 500, 10).await.unwrap();
    assert_eq!(later.len(), 1, "the shared one, due again at 2000");
    assert_eq!(later[0].id, *shared);
}

/// Re-sealing sessions in batches (rotate-key): pagination by id, replacement only from the
/// bytes read, the lookup digests replaced with the payload.
async fn session_resealing(backend: Backend) {
    let fresh = backend.fresh().await;
    let store = &fresh.store;
    for i in 0..5 {
        store
            .insert_session(&session(&format!("s{i}"), 100, 1000))
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.session_payloads(after.as_deref(), 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.0.clone());
        ids.extend(page.into_iter().map(|(id, tenant, payload)| {
            assert_eq!(
                (tenant.as_str(), payload.as_slice()),
                ("t", &[1, 2, 3, 0, 255][..])
            );
            id
        }));
    }
    assert_eq!(ids, ["s0", "s1", "s2", "s3", "s4"]);
    let new = vestibule::session::ResealedSession {
        payload: vec![7, 7],
        subject_digest: "sub-new".into(),
        sid_digest: Some("sid-new".into()),
    };
    assert!(!store
        .replace_session_payload("s0", b"other bytes", &new)
        .await
        .unwrap());
    assert!(store
        .replace_session_payload("s0", &[1, 2, 3, 0, 255], &new)
        .await
        .unwrap());
    let s0 = store.get_session("s0").await.unwrap().unwrap();
    assert_eq!(s0.payload, [7, 7]);
    assert_eq!(s0.subject_digest.as_deref(), Some("sub-new"));
    assert_eq!(s0.sid_digest.as_deref(), Some("sid-new"));
}

/// Purges while sessions are written from another connection: every session written is
/// either purged (expired) or still there (live), none lost, none kept wrongly.
async fn purges_under_load(backend: Backend) {
    let fresh = backend.fresh().await;
    let writer = fresh.reopen.open().await;
    let write = tokio::spawn(async move {
        for i in 0..300 {
            // Even: already expired at 500; odd: live.
            let expires = if i % 2 == 0 { 400 } else { 10_000 };
            writer
                .insert_session(&session(&format!("w{i:03}"), 450, expires))
                .await
                .unwrap();
        }
    });
    let mut purged = 0;
    while !write.is_finished() {
        purged += fresh.store.purge_sessions(500, 0).await.unwrap();
        tokio::task::yield_now().await;
    }
    write.await.unwrap();
    purged += fresh.store.purge_sessions(500, 0).await.unwrap();
    assert_eq!(purged, 150);
    for i in 0..300 {
        let present = fresh
            .store
            .get_session(&format!("w{i:03}"))
            .await
            .unwrap()
            .is_some();
        assert_eq!(present, i % 2 == 1, "w{i:03}");
    }
}

/// A lease commits the held record only if it is still what was read; its companions are
/// written with it, or nothing is. The background refresher's lease skips a held record.
async fn leases(backend: Backend) {
    let fresh = backend.fresh().await;
    let store = &fresh.store;
    let other = fresh.reopen.open().await;
    let held = token("o1", "graph", Some(1050), 1);
    let minted = token("o1", "sharepoint", None, 1);

    // Read as absent; someone else inserts it meanwhile: nothing written.
    let lease = store.lease_token(&held.id, true).await.unwrap().unwrap();
    assert!(lease.record().is_none());
    assert!(other.put_token(&held, None).await.unwrap());
    assert!(!lease.commit(&[held.clone(), minted.clone()]).await.unwrap());
    assert!(
        store.get_token(&minted.id).await.unwrap().is_none(),
        "nothing of it"
    );

    // Read at generation 1, committed as 2 with a companion.
    let lease = store.lease_token(&held.id, true).await.unwrap().unwrap();
    assert_eq!(lease.record(), Some(&held));
    let next = StoredToken {
        generation: 2,
        payload: b"renewed".to_vec(),
        ..held.clone()
    };
    assert!(lease.commit(&[next.clone(), minted.clone()]).await.unwrap());
    assert_eq!(store.get_token(&held.id).await.unwrap(), Some(next.clone()));
    assert_eq!(
        store.get_token(&minted.id).await.unwrap(),
        Some(minted.clone())
    );

    match backend {
        // One instance per file: a write behind the lease's back is refused at commit.
        Backend::Sqlite => {
            let lease = store.lease_token(&held.id, true).await.unwrap().unwrap();
            let moved_on = StoredToken {
                generation: 3,
                ..next.clone()
            };
            assert!(other.put_token(&moved_on, Some(2)).await.unwrap());
            let stale = StoredToken {
                generation: 3,
                payload: b"stale".to_vec(),
                ..next.clone()
            };
            assert!(!lease.commit(&[stale]).await.unwrap());
            assert_eq!(store.get_token(&held.id).await.unwrap(), Some(moved_on));
        }
        // Held rows are locked: a second holder without waiting gets nothing; once the first
        // lets go (dropped: nothing written), it gets the row.
        Backend::Postgres => {
            let lease = store.lease_token(&held.id, true).await.unwrap().unwrap();
            assert!(other.lease_token(&held.id, false).await.unwrap().is_none());
            drop(lease);
            // The rollback of a dropped transaction runs when its connection is next used.
            let mut again = None;
            for _ in 0..100 {
                again = other.lease_token(&held.id, false).await.unwrap();
                if again.is_some() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            assert_eq!(again.unwrap().record(), Some(&next));
        }
    }
}

/// Stored federation metadata: one copy per provider and source, never replaced by an older.
async fn provider_metadata(backend: Backend) {
    let fresh = backend.fresh().await;
    let store = &fresh.store;
    let url = "https://login.example/federationmetadata.xml";
    assert_eq!(store.get_metadata("corp", url).await.unwrap(), None);
    store
        .put_metadata("corp", url, "<md v=1/>", 100)
        .await
        .unwrap();
    store
        .put_metadata("corp", url, "<md v=2/>", 200)
        .await
        .unwrap();
    store
        .put_metadata("corp", url, "<md v=0/>", 50)
        .await
        .unwrap();
    assert_eq!(
        store.get_metadata("corp", url).await.unwrap(),
        Some(("<md v=2/>".to_owned(), 200))
    );
    assert_eq!(
        store
            .get_metadata("corp", "https://elsewhere")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_metadata("other", url).await.unwrap(), None);
}

macro_rules! conformance {
    ($($body:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $body() {
                    super::$body(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $body() {
                    super::$body(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

conformance!(
    sessions_and_seen_once,
    remember_once_under_races,
    token_records,
    due_tokens,
    session_resealing,
    purges_under_load,
    leases,
    provider_metadata,
);
