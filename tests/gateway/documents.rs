//! Document tokens on the way upstream: stored sealed, injected only on the tenant's
//! document paths, with an expiry and a status the CRM can act on; client copies stripped.

use crate::harness::*;
use crate::spec;
use base64::Engine;
use std::sync::Arc;
use vestibule::clock::SystemClock;
use vestibule::crypto::KeyRing;
use vestibule::store::Store;
use vestibule::tokens::{self, DocumentToken, StoredToken, TokenId, TokenSecret, TokenStatus};

const ACCESS: &str = "eyJ0eXAiOiJKV1Qi.graph-access-token-for-alice";
const REFRESH: &str = "0.AAAA-refresh-token-for-alice";

fn ring() -> KeyRing {
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(KEY_1)
        .unwrap()
        .try_into()
        .unwrap();
    KeyRing::new("k1", &[("k1".into(), key)]).unwrap()
}

fn documents_setup(up: std::net::SocketAddr) -> Setup {
    let mut setup = Setup::new(up);
    setup.document_providers.push(spec::DocumentProvider {
        name: "office365-docs".into(),
        kind: "microsoft".into(),
        authority: "https://login.microsoftonline.com/organizations/v2.0".into(),
        client_id: "00000000-0000-0000-0000-000000000001".into(),
        client_secret: spec::Secret::value("app-secret"),
    });
    setup.contoso().documents = Some(spec::Documents {
        provider: "office365-docs".into(),
        paths: vec!["/documents/".into()],
        resources: vec![
            spec::Resource {
                name: "graph".into(),
                scopes: vec!["Files.ReadWrite.All".into()],
            },
            spec::Resource {
                name: "sharepoint".into(),
                scopes: vec!["https://contoso.sharepoint.com/AllSites.Write".into()],
            },
        ],
        ..Default::default()
    });
    setup
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_reach_only_document_paths_with_expiry_and_status() {
    let up = Upstream::start().await;
    let setup = documents_setup(up.addr);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let alice_id = alice();
    let (_, alice_cookie) = sessions.create("contoso", alice_id.clone()).await.unwrap();
    let mut bob = alice();
    bob.subject = "bob-subject".into();
    bob.user = "bob@contoso.example".into();
    let (_, bob_cookie) = sessions.create("contoso", bob).await.unwrap();

    // Alice's Graph token, as the code grant will store it.
    let keys = ring();
    let store = vestibule::store::SqliteStore::open(&setup.dir.path().join("v.db"))
        .await
        .unwrap();
    let id = TokenId {
        tenant: "contoso".into(),
        owner: TokenId::user_owner(&keys, &alice_id.issuer, &alice_id.subject),
        provider: "office365-docs".into(),
        resource: "graph".into(),
    };
    let expires_at = chrono::Utc::now().timestamp() + 3600;
    let token = DocumentToken {
        access_token: TokenSecret::new(ACCESS),
        expires_at,
        refresh_token: Some(TokenSecret::new(REFRESH)),
        scope: "Files.ReadWrite.All".into(),
        status: TokenStatus::Ok,
    };
    let record = StoredToken {
        payload: tokens::seal(&keys, &id, &token),
        id,
        expires_at,
        generation: 1,
        updated_at: expires_at - 3600,
    };
    assert!(store.put_token(&record, None).await.unwrap());

    let spoofs = [
        "X-Vestibule-Document-Token: evil.example",
        "x_vestibule_document_token_graph: evil.example",
        "X-Vestibule-Document-Token-Status: ok",
    ];
    let with = |cookie_value: &str| {
        let mut lines: Vec<String> = spoofs.iter().map(|s| s.to_string()).collect();
        lines.push(cookie(cookie_value));
        lines
    };

    // A document path: the token, its expiry and status; the second resource says why not.
    let lines = with(&alice_cookie);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let r = get(gw.addr, "crm.contoso.localhost", "/documents/list", &refs).await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(seen.all("x-vestibule-document-token"), [ACCESS]);
    assert_eq!(seen.all("x-vestibule-document-token-graph"), [ACCESS]);
    assert_eq!(seen.all("x-vestibule-document-token-status"), ["ok"]);
    let expires = seen.one("x-vestibule-document-token-expires").unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(expires)
            .unwrap()
            .timestamp(),
        expires_at
    );
    assert_eq!(seen.one("x-vestibule-document-token-sharepoint"), None);
    assert_eq!(
        seen.one("x-vestibule-document-token-sharepoint-status"),
        Some("consent-required")
    );

    // Any other path: no token at all, and the client's copies are gone.
    let r = get(gw.addr, "crm.contoso.localhost", "/deals", &refs).await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    for (name, value) in &seen.headers {
        assert!(!name.contains("document-token"), "{name}: {value}");
    }

    // Another user has no token: a status, never Alice's token.
    let lines = with(&bob_cookie);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    get(gw.addr, "crm.contoso.localhost", "/documents/list", &refs).await;
    let seen = up.last();
    assert_eq!(seen.one("x-vestibule-document-token"), None);
    assert_eq!(
        seen.all("x-vestibule-document-token-status"),
        ["consent-required"]
    );

    // The database file holds neither token in clear.
    drop(store);
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(setup.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("v.db") {
            raw.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!raw.is_empty());
    for secret in [ACCESS, REFRESH] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} found in the database files"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_or_revoked_token_is_not_sent() {
    let up = Upstream::start().await;
    let setup = documents_setup(up.addr);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let who = alice();
    let (_, c) = sessions.create("contoso", who.clone()).await.unwrap();
    let keys = ring();
    let store = vestibule::store::SqliteStore::open(&setup.dir.path().join("v.db"))
        .await
        .unwrap();
    let id = TokenId {
        tenant: "contoso".into(),
        owner: TokenId::user_owner(&keys, &who.issuer, &who.subject),
        provider: "office365-docs".into(),
        resource: "graph".into(),
    };
    let now = chrono::Utc::now().timestamp();
    let mut generation = None;
    for (status, expires_at, want) in [
        (TokenStatus::Ok, now - 1, "unavailable"),
        (TokenStatus::ConsentRequired, now + 3600, "consent-required"),
    ] {
        let token = DocumentToken {
            access_token: TokenSecret::new(ACCESS),
            expires_at,
            refresh_token: None,
            scope: String::new(),
            status,
        };
        let next = generation.map_or(1, |g| g + 1);
        let record = StoredToken {
            payload: tokens::seal(&keys, &id, &token),
            id: id.clone(),
            expires_at,
            generation: next,
            updated_at: now,
        };
        assert!(store.put_token(&record, generation).await.unwrap());
        generation = Some(next);
        get(
            gw.addr,
            "crm.contoso.localhost",
            "/documents/x",
            &[&cookie(&c)],
        )
        .await;
        let seen = up.last();
        assert_eq!(seen.one("x-vestibule-document-token"), None, "{want}");
        assert_eq!(seen.one("x-vestibule-document-token-status"), Some(want));
    }
}
