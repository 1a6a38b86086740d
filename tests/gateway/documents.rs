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

pub fn ring() -> KeyRing {
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(KEY_1)
        .unwrap()
        .try_into()
        .unwrap();
    KeyRing::new("k1", &[("k1".into(), key)]).unwrap()
}

/// Points the document provider at the real `oidc-provider` peer `op` (the test client, one
/// resource `graph` with a scope the peer knows).
pub fn use_provider(setup: &mut Setup, op: &crate::peers::OidcPeer) {
    setup.document_providers[0].authority = op.issuer.clone();
    setup.document_providers[0].client_id = crate::peers::CLIENT_ID.into();
    setup.document_providers[0].client_secret =
        Some(spec::Secret::value(crate::peers::CLIENT_SECRET));
    if let Some(d) = &mut setup.contoso().documents {
        d.resources = vec![spec::Resource {
            name: "graph".into(),
            scopes: vec!["openid".into()],
        }];
    }
}

/// The Office 365 document provider `office365-docs` with the real `oidc-provider` peer at
/// `issuer` as its authorization server (the test client).
fn office365_provider_at(issuer: &str) -> spec::DocumentProvider {
    spec::DocumentProvider {
        name: "office365-docs".into(),
        kind: "microsoft".into(),
        authority: issuer.to_owned(),
        client_id: crate::peers::CLIENT_ID.into(),
        client_secret: Some(spec::Secret::value(crate::peers::CLIENT_SECRET)),
        client_certificate: None,
        // oidc-provider grants refresh tokens only with prompt=consent.
        authorization_params: [("prompt".to_owned(), "consent".to_owned())].into(),
    }
}

pub fn documents_setup(up: std::net::SocketAddr) -> Setup {
    let mut setup = Setup::new(up);
    setup.document_providers.push(spec::DocumentProvider {
        name: "office365-docs".into(),
        kind: "microsoft".into(),
        // Nothing listens here: a test that needs the provider points this at a real one.
        authority: "http://127.0.0.1:1/organizations/v2.0".into(),
        client_id: "00000000-0000-0000-0000-000000000001".into(),
        client_secret: Some(spec::Secret::value("app-secret")),
        client_certificate: None,
        authorization_params: Default::default(),
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
        owner_key: None,
    };
    let record = StoredToken::sealed(&keys, id, &token, 1, expires_at - 3600);
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
    // SharePoint's token would be minted from Alice's refresh token; the provider cannot be
    // reached here, so it is unavailable for now (and Graph's token is still served).
    assert_eq!(seen.one("x-vestibule-document-token-sharepoint"), None);
    assert_eq!(
        seen.one("x-vestibule-document-token-sharepoint-status"),
        Some("unavailable")
    );

    // Any other path: no token at all, and the client's copies are gone.
    let r = get(gw.addr, "crm.contoso.localhost", "/deals", &refs).await;
    assert_eq!(r.status, 200);
    let seen = up.last();
    for (name, value) in &seen.headers {
        assert!(!name.contains("document-token"), "{name}: {value}");
    }

    // Another user has no token: never Alice's. A page load goes through the grant; an API
    // call gets 401 with where to send the user; nothing reaches the upstream.
    let hits = up.hits();
    let lines = with(&bob_cookie);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let api = get(gw.addr, "crm.contoso.localhost", "/documents/list", &refs).await;
    assert_eq!(api.status, 401, "{}", api.body);
    assert_eq!(api.json()["error"], "consent_required");
    assert_eq!(
        api.json()["consent_url"],
        "/_vestibule/documents/connect?rd=%2Fdocuments%2Flist"
    );
    let mut page_lines = refs.clone();
    page_lines.push("Accept: text/html");
    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/documents/list",
        &page_lines,
    )
    .await;
    assert_eq!(page.status, 302);
    assert_eq!(
        page.header("location"),
        Some("/_vestibule/documents/connect?rd=%2Fdocuments%2Flist")
    );
    assert_eq!(up.hits(), hits);

    // The database file holds neither token in clear.
    drop(store);
    assert_not_in_database(setup.dir.path(), &[ACCESS, REFRESH]);
}

/// The database files (with SQLite's journal and WAL) do not contain any of `secrets`.
fn assert_not_in_database(dir: &std::path::Path, secrets: &[&str]) {
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("v.db") {
            raw.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!raw.is_empty());
    for secret in secrets {
        assert!(secret.len() >= 16, "a real token");
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
            owner_key: None,
        };
        let next = generation.map_or(1, |g| g + 1);
        let record = StoredToken::sealed(&keys, id.clone(), &token, next, now);
        assert!(store.put_token(&record, generation).await.unwrap());
        generation = Some(next);
        let hits = up.hits();
        let r = get(
            gw.addr,
            "crm.contoso.localhost",
            "/documents/x",
            &[&cookie(&c)],
        )
        .await;
        if want == "consent-required" {
            // The grant is gone: the CRM's call is answered with where to grant again.
            assert_eq!(r.status, 401, "{}", r.body);
            assert_eq!(r.json()["error"], "consent_required");
            assert_eq!(up.hits(), hits);
            continue;
        }
        let seen = up.last();
        assert_eq!(seen.one("x-vestibule-document-token"), None, "{want}");
        assert_eq!(seen.one("x-vestibule-document-token-status"), Some(want));
    }
}

/// A refresh token from the real `oidc-provider` by the authorization code grant (PKCE),
/// as the Office 365 grant will obtain one: `(access_token, refresh_token)`.
pub async fn real_tokens(op: &crate::peers::OidcPeer, login: &str) -> (String, String) {
    let verifier = format!("verifier-{login}-0123456789abcdefghijklmnopqrstuvwxyz");
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(openssl::sha::sha256(verifier.as_bytes()));
    let redirect = "http://crm.contoso.localhost/_vestibule/oidc/callback";
    let auth = format!(
        "{}/auth?client_id={}&response_type=code&redirect_uri={}&scope=openid%20offline_access&prompt=consent&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256",
        op.issuer,
        crate::peers::CLIENT_ID,
        crate::peers::urlencode(redirect)
    );
    let back = op.sign_in(&auth, login).await;
    let code = url::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/token", op.issuer))
        .basic_auth(crate::peers::CLIENT_ID, Some(crate::peers::CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        answer["access_token"].as_str().unwrap().to_owned(),
        answer["refresh_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no refresh token: {answer}"))
            .to_owned(),
    )
}

pub async fn put(
    store: &dyn Store,
    who: &vestibule::identity::Identity,
    access: &str,
    refresh: &str,
    expires_at: i64,
) -> TokenId {
    let keys = ring();
    let id = TokenId {
        tenant: "contoso".into(),
        owner: TokenId::user_owner(&keys, &who.issuer, &who.subject),
        provider: "office365-docs".into(),
        resource: "graph".into(),
    };
    let token = DocumentToken {
        access_token: TokenSecret::new(access),
        expires_at,
        refresh_token: Some(TokenSecret::new(refresh)),
        scope: "openid offline_access".into(),
        status: TokenStatus::Ok,
        owner_key: None,
    };
    let record = StoredToken::sealed(
        &keys,
        id.clone(),
        &token,
        1,
        chrono::Utc::now().timestamp() - 60,
    );
    assert!(store.put_token(&record, None).await.unwrap());
    id
}

/// An expired token met by 50 requests at once: one call to the token endpoint (counted at
/// the provider), every request gets the new token, the new tokens are stored; a grant the
/// provider no longer knows turns into consent-required.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_token_is_refreshed_once_for_fifty_concurrent_requests() {
    let op = crate::peers::OidcPeer::start(&[("ROTATE_REFRESH_TOKENS", "1")]);
    let up = Upstream::start().await;
    let mut setup = documents_setup(up.addr);
    use_provider(&mut setup, &op);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let alice_id = alice();
    let (_, alice_cookie) = sessions.create("contoso", alice_id.clone()).await.unwrap();
    let store = vestibule::store::SqliteStore::open(&setup.dir.path().join("v.db"))
        .await
        .unwrap();
    let (old_access, refresh) = real_tokens(&op, "alice").await;
    let now = chrono::Utc::now().timestamp();
    let id = put(&store, &alice_id, &old_access, &refresh, now - 5).await;

    let before = crate::oidc_flow::op_stats(&op).await["token"]
        .as_u64()
        .unwrap();
    let c = cookie(&alice_cookie);
    let requests = (0..50).map(|_| {
        let c = c.clone();
        let addr = gw.addr;
        tokio::spawn(async move { get(addr, "crm.contoso.localhost", "/documents/x", &[&c]).await })
    });
    for r in futures_join(requests).await {
        assert_eq!(r.status, 200);
    }
    let after = crate::oidc_flow::op_stats(&op).await["token"]
        .as_u64()
        .unwrap();
    assert_eq!(
        after - before,
        1,
        "exactly one refresh at the token endpoint"
    );
    let seen = up.last();
    let new_access = seen.one("x-vestibule-document-token").unwrap().to_owned();
    assert_ne!(new_access, old_access);
    assert_eq!(seen.one("x-vestibule-document-token-status"), Some("ok"));
    let stored = store.get_token(&id).await.unwrap().unwrap();
    assert_eq!(stored.generation, 2);
    let opened = tokens::open(&ring(), &stored).unwrap();
    assert_eq!(opened.access_token.expose(), new_access);
    assert!(opened.expires_at > now + 60);
    assert!(opened.refresh_token.is_some(), "a refresh token is kept");

    // A refresh token the provider does not know: consent is required, and stored as such.
    let mut bob = alice();
    bob.subject = "bob-subject".into();
    let (_, bob_cookie) = sessions.create("contoso", bob.clone()).await.unwrap();
    let bob_id = put(&store, &bob, "old", "not-a-refresh-token", now - 5).await;
    let r = get(
        gw.addr,
        "crm.contoso.localhost",
        "/documents/x",
        &[&cookie(&bob_cookie), "Accept: text/html"],
    )
    .await;
    assert_eq!(
        r.status, 302,
        "the next page load goes through the grant again"
    );
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("/_vestibule/documents/connect?rd="));
    let stored = tokens::open(&ring(), &store.get_token(&bob_id).await.unwrap().unwrap()).unwrap();
    assert_eq!(stored.status, TokenStatus::ConsentRequired);
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

/// Sign-in (WS-Federation) → the grant (the real oidc-provider as the authorization server,
/// with Azure AD's oid/tid in its ID tokens) → the page asked for, with the token on document
/// paths. Granting with another account, and a tenant without admin consent, store nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn office365_chain_sign_in_grant_same_person_and_admin_consent() {
    use crate::peers::{make_cert, OidcPeer, WsFedPeer};
    use crate::wsfed_flow::{session_cookie, sign_in_as, wsfed_setup, ISSUER};
    let op = OidcPeer::start(&[(
        "REDIRECT_URIS",
        "http://crm.contoso.localhost/_vestibule/documents/callback",
    )]);
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(certs.path(), "idp");
    let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", "saml20"), ("ISSUER", ISSUER)]);
    let up = Upstream::start().await;
    let mut setup = wsfed_setup(up.addr, &peer);
    setup
        .document_providers
        .push(office365_provider_at(&op.issuer));
    setup.contoso().documents = Some(spec::Documents {
        provider: "office365-docs".into(),
        paths: vec!["/documents/".into()],
        // Two resources: the grant covers the first; the second is minted from its refresh
        // token (as Microsoft's single-resource tokens are).
        resources: vec![
            spec::Resource {
                name: "graph".into(),
                scopes: vec!["email".into()],
            },
            spec::Resource {
                name: "sharepoint".into(),
                scopes: vec!["email".into()],
            },
        ],
        ..Default::default()
    });
    let gw = setup.start().await;

    // 1. Sign-in continues into the grant.
    let signed_in = sign_in_as(&gw, &peer, "alice@contoso.example").await;
    assert_eq!(signed_in.status, 302, "{}", signed_in.body);
    assert_eq!(
        signed_in.header("location"),
        Some("/_vestibule/documents/connect?rd=%2Fdeals%3Fid%3D7")
    );
    let session = session_cookie(&signed_in).unwrap();
    let grant = |session: String, login: &'static str| {
        let (gw_addr, op) = (gw.addr, &op);
        async move {
            let connect = get(
                gw_addr,
                "crm.contoso.localhost",
                "/_vestibule/documents/connect?rd=%2Fdeals%3Fid%3D7",
                &[&format!("Cookie: {session}")],
            )
            .await;
            assert_eq!(connect.status, 302, "{}", connect.body);
            let auth = connect.header("location").unwrap().to_owned();
            assert!(auth.contains("login_hint="), "{auth}");
            assert!(auth.contains("prompt=consent"), "{auth}");
            assert!(auth.contains("domain_hint=0b1c2d3e"), "{auth}");
            let binding = connect
                .header("set-cookie")
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let back = op.sign_in(&auth, login).await;
            let path = &back[back.find("/_vestibule/").unwrap()..];
            get(
                gw_addr,
                "crm.contoso.localhost",
                path,
                &[&format!("Cookie: {session}; {binding}")],
            )
            .await
        }
    };
    let done = grant(session.clone(), "alice@contoso.example").await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.header("location"), Some("/deals?id=7"));
    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/documents/x",
        &[&format!("Cookie: {session}")],
    )
    .await;
    assert_eq!(page.status, 200);
    let seen = up.last();
    assert!(seen.one("x-vestibule-document-token").is_some());
    assert_eq!(seen.one("x-vestibule-document-token-status"), Some("ok"));
    let minted = seen
        .one("x-vestibule-document-token-sharepoint")
        .unwrap()
        .to_owned();
    assert_ne!(
        Some(minted.as_str()),
        seen.one("x-vestibule-document-token")
    );
    // Neither access token (nor anything else the grant issued) is in the database in clear.
    assert_not_in_database(
        setup.dir.path(),
        &[seen.one("x-vestibule-document-token").unwrap(), &minted],
    );
    assert_eq!(
        seen.one("x-vestibule-document-token-sharepoint-status"),
        Some("ok")
    );
    // The minted token is stored and reused: the next request costs the provider nothing.
    let tokens = crate::oidc_flow::op_stats(&op).await["token"]
        .as_u64()
        .unwrap();
    get(
        gw.addr,
        "crm.contoso.localhost",
        "/documents/y",
        &[&format!("Cookie: {session}")],
    )
    .await;
    assert_eq!(
        up.last().one("x-vestibule-document-token-sharepoint"),
        Some(minted.as_str())
    );
    assert_eq!(
        crate::oidc_flow::op_stats(&op).await["token"]
            .as_u64()
            .unwrap(),
        tokens
    );
    // Signing in again: a usable token exists, no detour.
    let again = sign_in_as(&gw, &peer, "alice@contoso.example").await;
    assert_eq!(again.header("location"), Some("/deals?id=7"));

    // 2. Bob signs in, but grants with Alice's account: refused, nothing stored for Bob.
    let bob = sign_in_as(&gw, &peer, "bob@contoso.example").await;
    let bob_session = session_cookie(&bob).unwrap();
    let wrong = grant(bob_session.clone(), "alice@contoso.example").await;
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert!(wrong.body.contains("another account"), "{}", wrong.body);
    let r = get(
        gw.addr,
        "crm.contoso.localhost",
        "/documents/x",
        &[&format!("Cookie: {bob_session}")],
    )
    .await;
    assert_eq!(r.status, 401, "no token for Bob: {}", r.body);

    // 3. The organisation has not consented: a page with the admin-consent address.
    let connect = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/documents/connect?rd=%2F",
        &[&format!("Cookie: {bob_session}")],
    )
    .await;
    let auth = connect.header("location").unwrap();
    let state = url::Url::parse(auth)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let binding = connect
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let refused = get(
        gw.addr,
        "crm.contoso.localhost",
        &format!(
            "/_vestibule/documents/callback?error=consent_required&error_description=AADSTS65001&state={}",
            crate::peers::urlencode(&state)
        ),
        &[&format!("Cookie: {bob_session}; {binding}")],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("adminconsent?client_id=vestibule"),
        "{}",
        refused.body
    );
}

/// A wrong client secret is the operator's problem: the refresh is refused with
/// `invalid_client`, readiness says so, the user is not sent into a consent loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_secret_is_reported_by_readiness_not_as_consent() {
    let op = crate::peers::OidcPeer::start(&[]);
    let up = Upstream::start().await;
    let mut setup = documents_setup(up.addr);
    use_provider(&mut setup, &op);
    setup.document_providers[0].client_secret = Some(spec::Secret::value("not-the-secret"));
    let gw = setup.start().await;
    assert_eq!(
        get(gw.addr, "x", "/_vestibule/ready", &[]).await.status,
        200
    );
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let who = alice();
    let (_, c) = sessions.create("contoso", who.clone()).await.unwrap();
    let store = vestibule::store::SqliteStore::open(&setup.dir.path().join("v.db"))
        .await
        .unwrap();
    let (access, refresh) = real_tokens(&op, "alice").await;
    let now = chrono::Utc::now().timestamp();
    let id = put(&store, &who, &access, &refresh, now - 5).await;

    let r = get(
        gw.addr,
        "crm.contoso.localhost",
        "/documents/x",
        &[&cookie(&c)],
    )
    .await;
    assert_eq!(r.status, 200, "not a consent loop: {}", r.body);
    let seen = up.last();
    assert_eq!(seen.one("x-vestibule-document-token"), None);
    assert_eq!(
        seen.one("x-vestibule-document-token-status"),
        Some("unavailable")
    );
    let ready = get(gw.addr, "x", "/_vestibule/ready", &[]).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready
            .body
            .contains("document provider office365-docs refuses the gateway's client credentials (invalid_client)"),
        "{}",
        ready.body
    );
    let metrics = get(gw.addr, "x", "/_vestibule/metrics", &[]).await.body;
    assert!(metrics.contains(
        "vestibule_document_refreshes_total{outcome=\"client_refused\",provider=\"office365-docs\"} 1"
    ));
    // The user's grant is untouched.
    let stored = tokens::open(&ring(), &store.get_token(&id).await.unwrap().unwrap()).unwrap();
    assert_eq!(stored.status, TokenStatus::Ok);
    assert_eq!(stored.refresh_token.unwrap().expose(), refresh);
}

/// `POST /_vestibule/documents/refresh` (the CRM met a 401 from Graph): fresh tokens now,
/// from this site only, once per 10 s per user; the answer carries statuses, never tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crm_can_ask_for_a_fresh_token() {
    let op = crate::peers::OidcPeer::start(&[]);
    let up = Upstream::start().await;
    let mut setup = documents_setup(up.addr);
    use_provider(&mut setup, &op);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let who = alice();
    let (_, c) = sessions.create("contoso", who.clone()).await.unwrap();
    let store = vestibule::store::SqliteStore::open(&setup.dir.path().join("v.db"))
        .await
        .unwrap();
    let (access, refresh) = real_tokens(&op, "alice").await;
    // Valid for another hour: not due, but Graph said 401.
    let id = put(
        &store,
        &who,
        &access,
        &refresh,
        chrono::Utc::now().timestamp() + 3600,
    )
    .await;
    let post = |site: &'static str| {
        let c = cookie(&c);
        let addr = gw.addr;
        async move {
            raw(
                addr,
                &format!(
                    "POST /_vestibule/documents/refresh HTTP/1.1\r\nHost: crm.contoso.localhost\r\n{c}\r\nSec-Fetch-Site: {site}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                ),
            )
            .await
            .unwrap()
        }
    };
    let tokens_before = crate::oidc_flow::op_stats(&op).await["token"]
        .as_u64()
        .unwrap();

    let cross = post("cross-site").await;
    assert_eq!(cross.status, 403, "{}", cross.body);
    let ok = post("same-origin").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["resources"]["graph"]["status"], "ok");
    assert!(!ok.body.contains(&access) && !ok.body.contains(&refresh));
    let again = post("same-origin").await;
    assert_eq!(again.status, 429, "{}", again.body);
    assert!(again.header("retry-after").is_some());

    let tokens_after = crate::oidc_flow::op_stats(&op).await["token"]
        .as_u64()
        .unwrap();
    assert_eq!(
        tokens_after - tokens_before,
        1,
        "one refresh, for the one allowed request"
    );
    let stored = tokens::open(&ring(), &store.get_token(&id).await.unwrap().unwrap()).unwrap();
    assert_ne!(
        stored.access_token.expose(),
        access,
        "a new access token is stored"
    );
    assert_eq!(up.hits(), 0, "none of this reached the upstream");
}

/// Makes the peer's next `times` token requests answer `status` (with `Retry-After` and body).
async fn token_fault(
    op: &crate::peers::OidcPeer,
    status: u16,
    retry_after: u64,
    body: &str,
    times: u32,
) {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/__token_faults?status={status}&retry_after={retry_after}&times={times}&body={}",
            op.issuer,
            crate::peers::urlencode(body)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

pub async fn token_requests(op: &crate::peers::OidcPeer) -> u64 {
    crate::oidc_flow::op_stats(op).await["token"]
        .as_u64()
        .unwrap()
}

/// Throttling (429 with Retry-After, Azure AD's `invalid_grant` + `AADSTS50196`) and a failing
/// provider (503): the gateway backs off for as long as it is told, keeps injecting the current
/// token while it is valid, marks nobody as needing consent, and refreshes once the wait is
/// over (the peer rotates refresh tokens, so the new one is stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_backs_off_while_the_current_token_serves() {
    let op = crate::peers::OidcPeer::start(&[("ROTATE_REFRESH_TOKENS", "1")]);
    let up = Upstream::start().await;
    let mut setup = documents_setup(up.addr);
    use_provider(&mut setup, &op);
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let store = vestibule::store::SqliteStore::open(&setup.dir.path().join("v.db"))
        .await
        .unwrap();
    let loop_body = r#"{"error":"invalid_grant","error_description":"AADSTS50196: The server terminated an operation because it encountered a client request loop.","error_codes":[50196]}"#;
    for (n, (status, body)) in [
        (429, r#"{"error":"too_many_requests"}"#),
        (400, loop_body),
        (503, "<html>service unavailable</html>"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut who = alice();
        who.subject = format!("user-{n}");
        let (_, c) = sessions.create("contoso", who.clone()).await.unwrap();
        let (access, refresh) = real_tokens(&op, &format!("user{n}")).await;
        // Valid for another minute, inside the 5-minute refresh margin: due.
        let id = put(
            &store,
            &who,
            &access,
            &refresh,
            chrono::Utc::now().timestamp() + 60,
        )
        .await;
        token_fault(&op, status, 2, body, 1).await;
        let before = token_requests(&op).await;

        for round in 0..3 {
            let r = get(
                gw.addr,
                "crm.contoso.localhost",
                "/documents/x",
                &[&cookie(&c)],
            )
            .await;
            assert_eq!(r.status, 200, "{status}: {}", r.body);
            let seen = up.last();
            assert_eq!(
                seen.one("x-vestibule-document-token"),
                Some(access.as_str()),
                "{status} round {round}: the current token serves"
            );
            assert_eq!(seen.one("x-vestibule-document-token-status"), Some("ok"));
        }
        assert_eq!(
            token_requests(&op).await - before,
            1,
            "{status}: one attempt, then nothing until Retry-After has passed"
        );
        let kept = tokens::open(&ring(), &store.get_token(&id).await.unwrap().unwrap()).unwrap();
        assert_eq!(
            kept.status,
            TokenStatus::Ok,
            "{status}: nobody is sent to consent"
        );
        assert_eq!(kept.refresh_token.as_ref().unwrap().expose(), refresh);

        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let r = get(
            gw.addr,
            "crm.contoso.localhost",
            "/documents/x",
            &[&cookie(&c)],
        )
        .await;
        assert_eq!(r.status, 200);
        let fresh = up
            .last()
            .one("x-vestibule-document-token")
            .unwrap()
            .to_owned();
        assert_ne!(fresh, access, "{status}: refreshed once the wait was over");
        assert_eq!(token_requests(&op).await - before, 2);
        let stored = tokens::open(&ring(), &store.get_token(&id).await.unwrap().unwrap()).unwrap();
        assert_eq!(stored.access_token.expose(), fresh);
        assert_ne!(
            stored.refresh_token.as_ref().unwrap().expose(),
            refresh,
            "the rotated refresh token is stored"
        );
    }
    let metrics = get(gw.addr, "x", "/_vestibule/metrics", &[]).await.body;
    assert!(metrics.contains(
        "vestibule_document_refreshes_total{outcome=\"retry_later\",provider=\"office365-docs\"} 3"
    ), "{metrics}");
    assert_eq!(
        get(gw.addr, "x", "/_vestibule/ready", &[]).await.status,
        200
    );
}

/// POSTs an admin action from this site (or from `site`).
async fn admin_post(gw: &Gateway, session: &str, action: &str, site: &str) -> Reply {
    raw(
        gw.addr,
        &format!(
            "POST /_vestibule/admin/documents/{action} HTTP/1.1\r\nHost: crm.contoso.localhost\r\nCookie: {session}\r\nSec-Fetch-Site: {site}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
    .await
    .unwrap()
}

/// Google Drive, shared: the real oidc-provider plays both Google sign-in and Google's
/// authorization server. Only the system user and the tenant's admins see the admin page; a
/// connect must be granted by the system user's account (another account stores nothing);
/// the one shared token reaches every user on document paths; a grant revoked at the provider
/// leaves users with `unavailable` (no consent loop) and the admins told; Disconnect revokes
/// at the provider and deletes the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_drive_shared_grant_by_the_system_user() {
    google_drive_flow(false).await;
}

/// The same with a certificate credential (RFC 7523 `private_key_jwt`, as Azure AD's
/// certificate credentials): the code exchange, the refresh and the revocation each carry a
/// client assertion signed by the certificate's key, which the provider verifies; the
/// provider refuses a client secret for that client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_credential_signs_every_token_request() {
    google_drive_flow(true).await;
}

async fn google_drive_flow(certificate: bool) {
    use crate::oidc_flow::{oidc_setup, sign_in_as};
    use crate::peers::{make_cert, OidcPeer};
    use crate::wsfed_flow::session_cookie;
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(certs.path(), "client");
    let cert_file = cert.to_str().unwrap().to_owned();
    let op = OidcPeer::start(&[
        (
            "REDIRECT_URIS",
            "http://crm.contoso.localhost/_vestibule/oidc/callback,http://crm.contoso.localhost/_vestibule/documents/callback",
        ),
        ("ROTATE_REFRESH_TOKENS", "1"),
        ("CERT_CLIENT_ID", "vestibule-cert"),
        ("CERT_CLIENT_FILE", &cert_file),
    ]);
    let up = Upstream::start().await;
    let mut setup = oidc_setup(up.addr, &op.issuer);
    let credential = certificate.then(|| {
        vestibule::client_credential::CertificateCredential::from_pem(
            &std::fs::read(&cert).unwrap(),
            &std::fs::read(&key).unwrap(),
        )
        .unwrap()
    });
    let (client_id, client_secret, client_certificate) = if certificate {
        (
            "vestibule-cert",
            None,
            Some(spec::ClientCertificate {
                certificate: cert_file.clone(),
                key: spec::Secret::value(std::fs::read_to_string(&key).unwrap()),
            }),
        )
    } else {
        (
            crate::peers::CLIENT_ID,
            Some(spec::Secret::value(crate::peers::CLIENT_SECRET)),
            None,
        )
    };
    setup.document_providers.push(spec::DocumentProvider {
        name: "gdrive".into(),
        kind: "google".into(),
        authority: op.issuer.clone(),
        client_id: client_id.into(),
        client_secret,
        client_certificate,
        authorization_params: Default::default(),
    });
    setup.contoso().documents = Some(spec::Documents {
        provider: "gdrive".into(),
        paths: vec!["/documents/".into()],
        system_user: Some("Docs@Contoso.example".into()),
        admins: vec!["admin@contoso.example".into()],
        // The peer issues refresh tokens for offline_access (Google: access_type=offline,
        // which the gateway sends as well).
        scopes: vec!["offline_access".into()],
        ..Default::default()
    });
    let gw = setup.start().await;
    let store = vestibule::store::SqliteStore::open(&setup.dir.path().join("v.db"))
        .await
        .unwrap();
    let shared_id = TokenId {
        tenant: "contoso".into(),
        owner: tokens::SHARED_OWNER.into(),
        provider: "gdrive".into(),
        resource: "drive".into(),
    };
    let session_of = |reply: &Reply| session_cookie(reply).unwrap();
    let alice = session_of(&sign_in_as(&gw, &op, "alice").await);
    let admin = session_of(&sign_in_as(&gw, &op, "admin").await);

    // Everyone else gets 403 on the page and its actions; cross-site actions are refused.
    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/admin/documents",
        &[&format!("Cookie: {alice}")],
    )
    .await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body
            .contains("Only the system user and the document admins"),
        "{}",
        page.body
    );
    assert_eq!(
        admin_post(&gw, &alice, "connect", "same-origin")
            .await
            .status,
        403
    );
    assert_eq!(
        admin_post(&gw, &alice, "disconnect", "same-origin")
            .await
            .status,
        403
    );
    let cross = admin_post(&gw, &admin, "connect", "cross-site").await;
    assert_eq!(cross.status, 403);
    assert!(
        cross.body.contains("must be started from this site"),
        "{}",
        cross.body
    );
    let signed_out = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/admin/documents",
        &[],
    )
    .await;
    assert_ne!(signed_out.status, 200);
    // The per-user grant does not exist for a shared provider.
    let per_user = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/documents/connect",
        &[&format!("Cookie: {admin}")],
    )
    .await;
    assert_eq!(per_user.status, 404);

    // Before any grant: users go on without a token.
    get(
        gw.addr,
        "crm.contoso.localhost",
        "/documents/x",
        &[&format!("Cookie: {alice}")],
    )
    .await;
    assert_eq!(up.last().one("x-vestibule-document-token"), None);
    assert_eq!(
        up.last().one("x-vestibule-document-token-status"),
        Some("unavailable")
    );
    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/admin/documents",
        &[&format!("Cookie: {admin}")],
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Not connected"), "{}", page.body);
    assert!(page.body.contains("docs@contoso.example"), "{}", page.body);
    assert_eq!(page.header("x-frame-options"), Some("DENY"));

    let connect = |login: &'static str| {
        let (gw, op, admin) = (&gw, &op, admin.clone());
        async move {
            let start = admin_post(gw, &admin, "connect", "same-origin").await;
            assert_eq!(start.status, 303, "{}", start.body);
            let auth = start.header("location").unwrap().to_owned();
            for want in [
                "access_type=offline",
                "prompt=consent",
                "login_hint=docs%40contoso.example",
                "scope=openid",
            ] {
                assert!(auth.contains(want), "{want}: {auth}");
            }
            let binding = start
                .header("set-cookie")
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let back = op.sign_in(&auth, login).await;
            let path = &back[back.find("/_vestibule/").unwrap()..];
            get(
                gw.addr,
                "crm.contoso.localhost",
                path,
                &[&format!("Cookie: {admin}; {binding}")],
            )
            .await
        }
    };
    // Granted with another account than the system user: refused, nothing stored.
    let wrong = connect("admin").await;
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert!(
        wrong.body.contains("system user docs@contoso.example"),
        "{}",
        wrong.body
    );
    assert!(store.get_token(&shared_id).await.unwrap().is_none());

    // The system user's account: stored, and back on the admin page.
    let done = connect("docs").await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.header("location"), Some("/_vestibule/admin/documents"));
    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/admin/documents",
        &[&format!("Cookie: {admin}")],
    )
    .await;
    assert!(page.body.contains("Connected."), "{}", page.body);
    let record = tokens::open(
        &ring(),
        &store.get_token(&shared_id).await.unwrap().unwrap(),
    )
    .unwrap();
    let shared = record.access_token.expose().to_owned();
    assert!(record.refresh_token.is_some());
    assert_not_in_database(
        setup.dir.path(),
        &[&shared, record.refresh_token.as_ref().unwrap().expose()],
    );

    // One token for every user, on document paths only.
    for who in [&alice, &admin] {
        get(
            gw.addr,
            "crm.contoso.localhost",
            "/documents/x",
            &[&format!("Cookie: {who}")],
        )
        .await;
        assert_eq!(
            up.last().one("x-vestibule-document-token"),
            Some(shared.as_str())
        );
        assert_eq!(
            up.last().one("x-vestibule-document-token-drive"),
            Some(shared.as_str())
        );
        assert_eq!(
            up.last().one("x-vestibule-document-token-status"),
            Some("ok")
        );
        get(
            gw.addr,
            "crm.contoso.localhost",
            "/deals",
            &[&format!("Cookie: {who}")],
        )
        .await;
        assert_eq!(up.last().one("x-vestibule-document-token"), None);
    }

    if certificate {
        // The peer does check assertions: one signed by another key is refused.
        let (other_cert, other_key) = make_cert(certs.path(), "other");
        let impostor = vestibule::client_credential::CertificateCredential::from_pem(
            &std::fs::read(other_cert).unwrap(),
            &std::fs::read(other_key).unwrap(),
        )
        .unwrap();
        let refused = as_document_client(
            &op,
            Some(&impostor),
            "/token",
            &[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    record.refresh_token.as_ref().unwrap().expose(),
                ),
            ],
        )
        .await;
        assert_eq!(refused.status(), 401);
    }

    // The CRM asks for a fresh token (a 401 from Drive): refreshed at once, for everyone.
    let forced = raw(
        gw.addr,
        &format!(
            "POST /_vestibule/documents/refresh HTTP/1.1\r\nHost: crm.contoso.localhost\r\nCookie: {alice}\r\nSec-Fetch-Site: same-origin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
    .await
    .unwrap();
    assert_eq!(forced.status, 200, "{}", forced.body);
    assert_eq!(forced.json()["resources"]["drive"]["status"], "ok");
    let record = tokens::open(
        &ring(),
        &store.get_token(&shared_id).await.unwrap().unwrap(),
    )
    .unwrap();
    assert_ne!(record.access_token.expose(), shared, "a new shared token");
    get(
        gw.addr,
        "crm.contoso.localhost",
        "/documents/x",
        &[&format!("Cookie: {admin}")],
    )
    .await;
    assert_eq!(
        up.last().one("x-vestibule-document-token"),
        Some(record.access_token.expose())
    );

    // Disconnect: revoked at the provider (its refresh token no longer works there), deleted.
    let refresh = record.refresh_token.clone().unwrap();
    let revocations = crate::oidc_flow::op_stats(&op).await["revocation"]
        .as_u64()
        .unwrap();
    let gone = admin_post(&gw, &admin, "disconnect", "same-origin").await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert!(
        gone.body
            .contains("revoked at the provider and deleted here"),
        "{}",
        gone.body
    );
    assert_eq!(
        crate::oidc_flow::op_stats(&op).await["revocation"]
            .as_u64()
            .unwrap(),
        revocations + 1
    );
    assert!(store.get_token(&shared_id).await.unwrap().is_none());
    let at_provider = as_document_client(
        &op,
        credential.as_ref(),
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.expose()),
        ],
    )
    .await;
    assert_eq!(
        at_provider.status(),
        400,
        "the revoked refresh token is dead at the provider"
    );
    get(
        gw.addr,
        "crm.contoso.localhost",
        "/documents/x",
        &[&format!("Cookie: {alice}")],
    )
    .await;
    assert_eq!(
        up.last().one("x-vestibule-document-token-status"),
        Some("unavailable")
    );

    // Connected again, then revoked behind the gateway's back (the system user removed the
    // app at Google) and due: users get `unavailable` and no detour; admins see it.
    assert_eq!(connect("docs").await.status, 302);
    let stored = store.get_token(&shared_id).await.unwrap().unwrap();
    let mut token = tokens::open(&ring(), &stored).unwrap();
    let revoked = as_document_client(
        &op,
        credential.as_ref(),
        "/token/revocation",
        &[("token", token.refresh_token.as_ref().unwrap().expose())],
    )
    .await;
    assert_eq!(revoked.status(), 200);
    token.expires_at = chrono::Utc::now().timestamp() + 30;
    let due = StoredToken::sealed(
        &ring(),
        shared_id.clone(),
        &token,
        stored.generation + 1,
        stored.updated_at,
    );
    assert!(store
        .put_token(&due, Some(stored.generation))
        .await
        .unwrap());
    let r = get(
        gw.addr,
        "crm.contoso.localhost",
        "/documents/x",
        &[&format!("Cookie: {alice}"), "Accept: text/html"],
    )
    .await;
    assert_eq!(
        r.status, 200,
        "no consent detour for a shared grant: {}",
        r.body
    );
    assert_eq!(up.last().one("x-vestibule-document-token"), None);
    assert_eq!(
        up.last().one("x-vestibule-document-token-status"),
        Some("unavailable")
    );
    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/admin/documents",
        &[&format!("Cookie: {admin}")],
    )
    .await;
    assert!(page.body.contains("Revoked or expired"), "{}", page.body);
    let metrics = get(gw.addr, "x", "/_vestibule/metrics", &[]).await.body;
    assert!(metrics.contains("vestibule_document_refreshes_total{outcome=\"consent_required\",provider=\"gdrive\"} 1"), "{metrics}");
}

/// The background refresher renews, ahead of expiry and without any request, the token of a
/// user with a live session (once: the provider rotates refresh tokens, so a second refresh
/// with the used one would revoke the grant), and leaves alone the token of a user without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_live_sessions_are_refreshed_ahead_of_expiry_in_the_background() {
    let op = crate::peers::OidcPeer::start(&[("ROTATE_REFRESH_TOKENS", "1")]);
    let up = Upstream::start().await;
    let mut setup = documents_setup(up.addr);
    use_provider(&mut setup, &op);
    if let Some(d) = &mut setup.contoso().documents {
        // The schedule looks every fifth of the margin: every 2 s here.
        d.refresh_margin = Some("10s".into());
    }
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let store = vestibule::store::SqliteStore::open(&setup.dir.path().join("v.db"))
        .await
        .unwrap();
    let live = alice();
    sessions.create("contoso", live.clone()).await.unwrap();
    let mut gone = alice();
    gone.subject = "bob-subject".into();
    let (live_access, live_refresh) = real_tokens(&op, "alice").await;
    let (gone_access, gone_refresh) = real_tokens(&op, "bob").await;
    let now = chrono::Utc::now().timestamp();
    // Valid for 14 s more: due once within the 10 s margin, some 4 s from now.
    let live_id = put(&store, &live, &live_access, &live_refresh, now + 14).await;
    let gone_id = put(&store, &gone, &gone_access, &gone_refresh, now + 14).await;
    let before = token_requests(&op).await;
    let _gw = setup.start().await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    let renewed = loop {
        let stored = store.get_token(&live_id).await.unwrap().unwrap();
        if stored.generation > 1 {
            break stored;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not refreshed in the background"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    let refreshed_at = chrono::Utc::now().timestamp();
    assert!(refreshed_at >= now + 14 - 10 - 1, "not before it was due");
    assert!(refreshed_at < now + 14, "before it expired");
    let token = tokens::open(&ring(), &renewed).unwrap();
    assert_ne!(token.access_token.expose(), live_access);
    assert_ne!(
        token.refresh_token.as_ref().unwrap().expose(),
        live_refresh,
        "the rotated refresh token is kept"
    );
    assert_eq!(token.status, TokenStatus::Ok);
    // Two more passes: nothing more to do for anyone.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(token_requests(&op).await - before, 1, "one refresh in all");
    assert_eq!(
        store.get_token(&live_id).await.unwrap().unwrap().generation,
        2
    );
    assert_eq!(
        store.get_token(&gone_id).await.unwrap().unwrap().generation,
        1,
        "no live session, no refresh"
    );
    assert_eq!(up.hits(), 0, "no request was needed");
}

/// A request to the peer's `path` as the document client: with its secret, or with a client
/// assertion signed by its certificate.
async fn as_document_client(
    op: &crate::peers::OidcPeer,
    certificate: Option<&vestibule::client_credential::CertificateCredential>,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let url = format!("{}{path}", op.issuer);
    let mut fields: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut request = reqwest::Client::new().post(&url);
    match certificate {
        Some(c) => {
            let aud = format!("{}/token", op.issuer);
            fields.push(("client_id".into(), "vestibule-cert".into()));
            fields.push((
                "client_assertion_type".into(),
                vestibule::client_credential::ASSERTION_TYPE.into(),
            ));
            fields.push((
                "client_assertion".into(),
                c.assertion("vestibule-cert", &aud, chrono::Utc::now().timestamp()),
            ));
        }
        None => {
            request =
                request.basic_auth(crate::peers::CLIENT_ID, Some(crate::peers::CLIENT_SECRET));
        }
    }
    request.form(&fields).send().await.unwrap()
}

/// After a new key becomes active and before `rotate-key` runs, a token stored under the old
/// key's owner digest is still refreshed where it is (not mistaken for a missing grant).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_under_the_previous_keys_owner_digest_is_refreshed_in_place() {
    let op = crate::peers::OidcPeer::start(&[("ROTATE_REFRESH_TOKENS", "1")]);
    let up = Upstream::start().await;
    let mut setup = documents_setup(up.addr);
    use_provider(&mut setup, &op);
    let store = vestibule::store::SqliteStore::open(&setup.dir.path().join("v.db"))
        .await
        .unwrap();
    let who = alice();
    let (old_access, old_refresh) = real_tokens(&op, "alice").await;
    // Stored while k1 was the active key.
    let id = put(
        &store,
        &who,
        &old_access,
        &old_refresh,
        chrono::Utc::now().timestamp() - 5,
    )
    .await;
    setup.ring = vec![("k1", KEY_1), ("k2", KEY_2)];
    setup.active_key = "k2";
    let gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let c = cookie(&sessions.create("contoso", who).await.unwrap().1);
    let r = get(
        gw.addr,
        "crm.contoso.localhost",
        "/documents/x",
        &[&c, "Accept: text/html"],
    )
    .await;
    assert_eq!(r.status, 200, "no consent detour: {}", r.body);
    let injected = up
        .last()
        .one("x-vestibule-document-token")
        .unwrap()
        .to_owned();
    assert_ne!(injected, old_access);
    let stored = store.get_token(&id).await.unwrap().unwrap();
    assert_eq!(stored.generation, 2, "refreshed in place");
}

/// A shared grant that lacks a scope the tenant needs (Google's granular consent; here the
/// peer does not know the Drive scope and grants without it) is refused and nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_grant_without_the_needed_scope_is_not_stored() {
    use crate::oidc_flow::{oidc_setup, sign_in_as};
    use crate::peers::OidcPeer;
    use crate::wsfed_flow::session_cookie;
    let op = OidcPeer::start(&[(
        "REDIRECT_URIS",
        "http://crm.contoso.localhost/_vestibule/oidc/callback,http://crm.contoso.localhost/_vestibule/documents/callback",
    )]);
    let up = Upstream::start().await;
    let mut setup = oidc_setup(up.addr, &op.issuer);
    setup.document_providers.push(spec::DocumentProvider {
        name: "gdrive".into(),
        kind: "google".into(),
        authority: op.issuer.clone(),
        client_id: crate::peers::CLIENT_ID.into(),
        client_secret: Some(spec::Secret::value(crate::peers::CLIENT_SECRET)),
        client_certificate: None,
        authorization_params: Default::default(),
    });
    setup.contoso().documents = Some(spec::Documents {
        provider: "gdrive".into(),
        paths: vec!["/documents/".into()],
        system_user: Some("docs@contoso.example".into()),
        scopes: vec![
            "offline_access".into(),
            "https://www.googleapis.com/auth/drive.file".into(),
        ],
        ..Default::default()
    });
    let gw = setup.start().await;
    let docs = session_cookie(&sign_in_as(&gw, &op, "docs").await).unwrap();
    let start = admin_post(&gw, &docs, "connect", "same-origin").await;
    assert_eq!(start.status, 303, "{}", start.body);
    let binding = start
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let back = op.sign_in(start.header("location").unwrap(), "docs").await;
    let path = &back[back.find("/_vestibule/").unwrap()..];
    let refused = get(
        gw.addr,
        "crm.contoso.localhost",
        path,
        &[&format!("Cookie: {docs}; {binding}")],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("lacks the permission https://www.googleapis.com/auth/drive.file"),
        "{}",
        refused.body
    );
    let store = vestibule::store::SqliteStore::open(&setup.dir.path().join("v.db"))
        .await
        .unwrap();
    let shared = TokenId {
        tenant: "contoso".into(),
        owner: tokens::SHARED_OWNER.into(),
        provider: "gdrive".into(),
        resource: "drive".into(),
    };
    assert!(store.get_token(&shared).await.unwrap().is_none());
}

/// Office 365 documents hold a token per Azure AD account, and the grant is checked against
/// the signed-in account's object and tenant ids. A tenant that also lets people sign in
/// with Google: those accounts could never pass that check, so they are never sent into the
/// grant (not after sign-in, not from a document page) — the CRM is told
/// `unsupported-sign-in`, and the connect address answers 403 saying why, with nothing
/// stored and nothing asked of the token server. An Azure AD account signed in over OpenID
/// Connect (its ID token carries `oid` and `tid`) does go on into the grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_of_another_provider_is_never_sent_into_an_office365_grant() {
    use crate::oidc_flow::{oidc_setup, sign_in_as};
    use crate::peers::OidcPeer;
    use crate::wsfed_flow::session_cookie;
    let redirects = "http://crm.contoso.localhost/_vestibule/oidc/callback,http://crm.contoso.localhost/_vestibule/documents/callback";
    // "Google": an OpenID provider whose tokens carry no Azure AD ids.
    let google = OidcPeer::start(&[("REDIRECT_URIS", redirects), ("AZURE_CLAIMS", "0")]);
    // The Office 365 token server.
    let graph = OidcPeer::start(&[("REDIRECT_URIS", redirects)]);
    let up = Upstream::start().await;
    let document_provider = office365_provider_at(&graph.issuer);
    let documents = spec::Documents {
        provider: "office365-docs".into(),
        paths: vec!["/documents/".into()],
        resources: vec![spec::Resource {
            name: "graph".into(),
            scopes: vec!["email".into()],
        }],
        ..Default::default()
    };
    let mut setup = oidc_setup(up.addr, &google.issuer);
    setup.document_providers.push(document_provider.clone());
    setup.contoso().documents = Some(documents.clone());
    let gw = setup.start().await;

    // Sign-in lands where it started, not in the grant.
    let signed_in = sign_in_as(&gw, &google, "alice").await;
    assert_eq!(signed_in.status, 302, "{}", signed_in.body);
    assert_eq!(signed_in.header("location"), Some("/deals"));
    let session = session_cookie(&signed_in).unwrap();
    let cookie = format!("Cookie: {session}");

    // A document page: forwarded, with the reason and no token; spoofed copies stripped.
    let page = get(
        gw.addr,
        "crm.contoso.localhost",
        "/documents/list",
        &[
            &cookie,
            "Accept: text/html",
            "X-Vestibule-Document-Token: forged",
            "X-Vestibule-Document-Token-Status: ok",
        ],
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let seen = up.last();
    assert_eq!(seen.path, "/documents/list");
    assert_eq!(
        seen.all("x-vestibule-document-token-status"),
        ["unsupported-sign-in"]
    );
    assert_eq!(
        seen.all("x-vestibule-document-token-graph-status"),
        ["unsupported-sign-in"]
    );
    assert!(seen.all("x-vestibule-document-token").is_empty());
    assert!(seen.all("x-vestibule-document-token-graph").is_empty());

    // The connect address, as a page and as JSON: 403 and why; no redirect, no binding cookie.
    let hits = up.hits();
    let connect = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/documents/connect?rd=%2Fdocuments%2Flist",
        &[&cookie, "Accept: text/html"],
    )
    .await;
    assert_eq!(connect.status, 403, "{}", connect.body);
    assert!(
        connect.body.contains("Office 365 sign-in needed"),
        "{}",
        connect.body
    );
    assert!(
        connect.body.contains("not an Office 365 account"),
        "{}",
        connect.body
    );
    assert_eq!(connect.header("location"), None);
    assert_eq!(connect.header("set-cookie"), None);
    let api = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/documents/connect",
        &[&cookie, "Accept: application/json"],
    )
    .await;
    assert_eq!(api.status, 403, "{}", api.body);
    assert_eq!(api.json()["error"], "documents_need_microsoft_account");
    assert_eq!(up.hits(), hits, "nothing forwarded");
    // The token server was never asked, and nothing was stored.
    assert_eq!(token_requests(&graph).await, 0);
    let store = vestibule::store::SqliteStore::open(&setup.dir.path().join("v.db"))
        .await
        .unwrap();
    let keys = ring();
    let id = TokenId {
        tenant: "contoso".into(),
        owner: TokenId::user_owner(&keys, &google.issuer, "alice"),
        provider: "office365-docs".into(),
        resource: "graph".into(),
    };
    assert!(store.get_token(&id).await.unwrap().is_none());
    drop(gw);

    // An Azure AD account over OpenID Connect (oid and tid in its ID token): into the grant,
    // for its own directory.
    let azure = OidcPeer::start(&[("REDIRECT_URIS", redirects)]);
    let up = Upstream::start().await;
    let mut setup = oidc_setup(up.addr, &azure.issuer);
    setup.document_providers.push(document_provider);
    setup.contoso().documents = Some(documents);
    let gw = setup.start().await;
    let signed_in = sign_in_as(&gw, &azure, "alice").await;
    assert_eq!(signed_in.status, 302, "{}", signed_in.body);
    assert_eq!(
        signed_in.header("location"),
        Some("/_vestibule/documents/connect?rd=%2Fdeals")
    );
    let session = session_cookie(&signed_in).unwrap();
    let connect = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/documents/connect?rd=%2Fdeals",
        &[&format!("Cookie: {session}")],
    )
    .await;
    assert_eq!(connect.status, 302, "{}", connect.body);
    let location = connect.header("location").unwrap();
    assert!(location.starts_with(&graph.issuer), "{location}");
    assert!(
        location.contains("domain_hint=0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"),
        "{location}"
    );
}
