//! ID tokens a real provider never issues, from a hostile token endpoint run by the test
//! (discovery, JWKS and token endpoint on 127.0.0.1, signing with the test's own key).

use crate::harness::*;
use crate::oidc_flow::{begin, callback, oidc_setup};
use crate::peers::*;
use crate::wsfed_flow::session_cookie;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

struct Key {
    encoding: EncodingKey,
    jwk: Jwk,
    kid: String,
}

fn key(dir: &std::path::Path, kid: &str) -> Key {
    let path = dir.join(format!("{kid}.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let encoding = EncodingKey::from_ec_pem(&std::fs::read(&path).unwrap()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    Key {
        encoding,
        jwk,
        kid: kid.to_owned(),
    }
}

#[derive(Default)]
struct Hostile {
    jwks: Vec<Jwk>,
    next_id_token: String,
    /// What userinfo answers (default: `{"sub": "mallory"}`, matching `claims`).
    userinfo: Option<serde_json::Value>,
    /// Pad the JWKS past the gateway's 4 MiB limit on provider bodies.
    huge_jwks: bool,
    /// Hold every token-endpoint answer this long (a slow provider).
    token_delay: std::time::Duration,
    /// How many times the JWKS was fetched.
    jwks_fetches: usize,
}

/// Starts the hostile provider; returns its issuer URL and the state to steer it.
async fn hostile_provider() -> (String, Arc<Mutex<Hostile>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(Hostile::default()));
    let (b, s) = (base.clone(), state.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (b, s) = (b.clone(), s.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (b, s) = (b.clone(), s.clone());
                    async move {
                        if req.uri().path() == "/token" {
                            let delay = s.lock().unwrap().token_delay;
                            tokio::time::sleep(delay).await;
                        }
                        let body = match req.uri().path() {
                            "/.well-known/openid-configuration" => json!({
                                "issuer": b,
                                "authorization_endpoint": format!("{b}/auth"),
                                "token_endpoint": format!("{b}/token"),
                                "jwks_uri": format!("{b}/jwks"),
                                "userinfo_endpoint": format!("{b}/userinfo"),
                                "response_types_supported": ["code"],
                                "subject_types_supported": ["public"],
                                "id_token_signing_alg_values_supported": ["ES256", "RS256"],
                            })
                            .to_string(),
                            "/jwks" => {
                                let mut h = s.lock().unwrap();
                                h.jwks_fetches += 1;
                                let set = serde_json::to_string(&JwkSet {
                                    keys: h.jwks.clone(),
                                })
                                .unwrap();
                                if h.huge_jwks {
                                    // Still valid JSON: only the size is wrong.
                                    format!("{}{}", " ".repeat(5 * 1024 * 1024), set)
                                } else {
                                    set
                                }
                            }
                            "/userinfo" => s
                                .lock()
                                .unwrap()
                                .userinfo
                                .clone()
                                .unwrap_or_else(|| json!({"sub": "mallory"}))
                                .to_string(),
                            "/token" => json!({
                                "access_token": "at",
                                "token_type": "Bearer",
                                "expires_in": 3600,
                                "id_token": s.lock().unwrap().next_id_token,
                            })
                            .to_string(),
                            _ => "{}".into(),
                        };
                        Ok::<_, hyper::Error>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (base, state)
}

fn sign(key: &Key, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn claims(issuer: &str, nonce: &str) -> serde_json::Value {
    json!({
        "iss": issuer,
        "aud": CLIENT_ID,
        "sub": "mallory",
        "email": "mallory@contoso.example",
        "email_verified": true,
        "iat": now(),
        "exp": now() + 300,
        "nonce": nonce,
    })
}

fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_tokens_a_real_provider_never_issues_are_refused() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (issuer, hostile) = hostile_provider().await;
    let good = key(dir.path(), "good");
    hostile.lock().unwrap().jwks = vec![good.jwk.clone()];
    let setup = oidc_setup(up.addr, &issuer);
    let gw = setup.start().await;

    let unsigned = |c: &serde_json::Value| {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(c.to_string())
        )
    };
    // HS256 keyed with the provider's public key: the classic algorithm-confusion forgery.
    let hmac_with_public_key = |c: &serde_json::Value| {
        let public = serde_json::to_vec(&good.jwk).unwrap();
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            c,
            &EncodingKey::from_secret(&public).unwrap(),
        )
        .unwrap()
    };
    type Forge<'a> = Box<dyn Fn(&str) -> String + 'a>;
    let cases: Vec<(&str, Forge, &str)> = vec![
        (
            "nonce mismatch",
            Box::new(|n: &str| {
                let _ = n;
                sign(&good, &claims(&issuer, "not-the-nonce"))
            }),
            "nonce mismatch",
        ),
        (
            "expired",
            Box::new(|n: &str| {
                let mut c = claims(&issuer, n);
                c["exp"] = json!(now() - 3600);
                c["iat"] = json!(now() - 7200);
                sign(&good, &c)
            }),
            "expired",
        ),
        (
            "wrong audience",
            Box::new(|n: &str| {
                let mut c = claims(&issuer, n);
                c["aud"] = json!("another-client");
                sign(&good, &c)
            }),
            "wrong audience",
        ),
        (
            "wrong issuer",
            Box::new(|n: &str| {
                let mut c = claims(&issuer, n);
                c["iss"] = json!("https://evil.example");
                sign(&good, &c)
            }),
            "wrong issuer",
        ),
        (
            "alg none",
            Box::new(|n: &str| unsigned(&claims(&issuer, n))),
            "the ID token is not valid",
        ),
        (
            "hmac with public key",
            Box::new(|n: &str| hmac_with_public_key(&claims(&issuer, n))),
            "the ID token is not valid",
        ),
        (
            "issued in the future",
            Box::new(|n: &str| {
                let mut c = claims(&issuer, n);
                c["iat"] = json!(now() + 3600);
                c["exp"] = json!(now() + 7200);
                sign(&good, &c)
            }),
            "the ID token is not valid",
        ),
        (
            "unverified e-mail",
            Box::new(|n: &str| {
                let mut c = claims(&issuer, n);
                c["email_verified"] = json!(false);
                sign(&good, &c)
            }),
            "e-mail address is not verified",
        ),
        (
            "another client's azp",
            Box::new(|n: &str| {
                let mut c = claims(&issuer, n);
                c["azp"] = json!("another-client");
                sign(&good, &c)
            }),
            "azp",
        ),
    ];
    for (what, forge, message) in cases {
        let (auth, binding) = begin(&gw).await;
        let nonce = query_param(&auth, "nonce");
        hostile.lock().unwrap().next_id_token = forge(&nonce);
        let redirect = format!(
            "http://crm.contoso.localhost/_vestibule/oidc/callback?code=x&state={}",
            urlencode(&query_param(&auth, "state"))
        );
        let r = callback(&gw, &redirect, &binding).await;
        assert_eq!(r.status, 403, "{what}: {}", r.body);
        assert!(r.body.contains(message), "{what}: {}", r.body);
        assert!(session_cookie(&r).is_none(), "{what}");
    }
    assert_eq!(up.hits(), 0);

    // The control: the same endpoint with an honest token signs in.
    let (auth, binding) = begin(&gw).await;
    hostile.lock().unwrap().next_id_token =
        sign(&good, &claims(&issuer, &query_param(&auth, "nonce")));
    let redirect = format!(
        "http://crm.contoso.localhost/_vestibule/oidc/callback?code=x&state={}",
        urlencode(&query_param(&auth, "state"))
    );
    let ok = callback(&gw, &redirect, &binding).await;
    assert_eq!(ok.status, 302, "{}", ok.body);
    let sessions = setup.session_count().await;
    assert_eq!(sessions, 1, "only the honest sign-in stored a session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_between_redirect_and_callback_is_fetched_once() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (issuer, hostile) = hostile_provider().await;
    let old = key(dir.path(), "old");
    let new = key(dir.path(), "new");
    hostile.lock().unwrap().jwks = vec![old.jwk.clone()];
    let setup = oidc_setup(up.addr, &issuer);
    let gw = setup.start().await;
    let (auth, binding) = begin(&gw).await;
    // After the gateway fetched the keys, the provider rotates and signs with the new key.
    {
        let mut h = hostile.lock().unwrap();
        h.jwks = vec![new.jwk.clone()];
        h.next_id_token = sign(&new, &claims(&issuer, &query_param(&auth, "nonce")));
    }
    let redirect = format!(
        "http://crm.contoso.localhost/_vestibule/oidc/callback?code=x&state={}",
        urlencode(&query_param(&auth, "state"))
    );
    let fetches_before = hostile.lock().unwrap().jwks_fetches;
    let r = callback(&gw, &redirect, &binding).await;
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(
        hostile.lock().unwrap().jwks_fetches,
        fetches_before + 1,
        "the unknown key cost exactly one JWKS fetch"
    );

    // Another token with a key the provider never published, right after: refused, and it
    // does not make the gateway fetch again (one on-demand refresh a minute).
    let forged = key(dir.path(), "forged");
    let (auth, binding) = begin(&gw).await;
    hostile.lock().unwrap().next_id_token =
        sign(&forged, &claims(&issuer, &query_param(&auth, "nonce")));
    let redirect = format!(
        "http://crm.contoso.localhost/_vestibule/oidc/callback?code=x&state={}",
        urlencode(&query_param(&auth, "state"))
    );
    let r = callback(&gw, &redirect, &binding).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(session_cookie(&r).is_none());
    assert_eq!(
        hostile.lock().unwrap().jwks_fetches,
        fetches_before + 1,
        "a second unknown key within the minute is not fetched for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_naming_another_issuer_is_refused() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (issuer, hostile) = hostile_provider().await;
    let good = key(dir.path(), "good");
    hostile.lock().unwrap().jwks = vec![good.jwk.clone()];
    let setup = oidc_setup(up.addr, &issuer);
    let gw = setup.start().await;
    let (auth, binding) = begin(&gw).await;
    hostile.lock().unwrap().next_id_token =
        sign(&good, &claims(&issuer, &query_param(&auth, "nonce")));
    let redirect = format!(
        "http://crm.contoso.localhost/_vestibule/oidc/callback?code=x&state={}&iss={}",
        urlencode(&query_param(&auth, "state")),
        urlencode("https://evil.example")
    );
    let r = callback(&gw, &redirect, &binding).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("came from another identity provider"));
    assert!(session_cookie(&r).is_none());
}

/// Userinfo fills claims the ID token lacks, but only for the subject the ID token names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_for_another_subject_is_refused() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (issuer, hostile) = hostile_provider().await;
    let good = key(dir.path(), "good");
    hostile.lock().unwrap().jwks = vec![good.jwk.clone()];
    let setup = oidc_setup(up.addr, &issuer);
    let gw = setup.start().await;
    // A response without `sub` is not a userinfo response at all: nothing is taken from it.
    for (what, info, message) in [
        (
            "another subject",
            json!({"sub": "alice", "email": "alice@contoso.example", "email_verified": true}),
            "userinfo response names another subject",
        ),
        (
            "no subject",
            json!({"email": "alice@contoso.example", "email_verified": true}),
            "lacks the `email` claim",
        ),
    ] {
        let (auth, binding) = begin(&gw).await;
        let mut c = claims(&issuer, &query_param(&auth, "nonce"));
        c.as_object_mut().unwrap().remove("email");
        c.as_object_mut().unwrap().remove("email_verified");
        {
            let mut h = hostile.lock().unwrap();
            h.next_id_token = sign(&good, &c);
            h.userinfo = Some(info);
        }
        let redirect = format!(
            "http://crm.contoso.localhost/_vestibule/oidc/callback?code=x&state={}",
            urlencode(&query_param(&auth, "state"))
        );
        let r = callback(&gw, &redirect, &binding).await;
        assert_eq!(r.status, 403, "{what}: {}", r.body);
        assert!(r.body.contains(message), "{what}: {}", r.body);
        assert!(session_cookie(&r).is_none(), "{what}");
    }
    // The same subject: its e-mail completes the identity.
    let (auth, binding) = begin(&gw).await;
    let mut c = claims(&issuer, &query_param(&auth, "nonce"));
    c.as_object_mut().unwrap().remove("email");
    c.as_object_mut().unwrap().remove("email_verified");
    {
        let mut h = hostile.lock().unwrap();
        h.next_id_token = sign(&good, &c);
        h.userinfo = Some(
            json!({"sub": "mallory", "email": "mallory@contoso.example", "email_verified": true}),
        );
    }
    let redirect = format!(
        "http://crm.contoso.localhost/_vestibule/oidc/callback?code=x&state={}",
        urlencode(&query_param(&auth, "state"))
    );
    let ok = callback(&gw, &redirect, &binding).await;
    assert_eq!(ok.status, 302, "{}", ok.body);
    assert_eq!(up.hits(), 0);
}

/// A provider document past the 4 MiB limit is refused, on the openidconnect path too
/// (discovery and JWKS): no session, and a clear 503 rather than unbounded memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_bodies_past_the_limit_are_refused() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (issuer, hostile) = hostile_provider().await;
    let good = key(dir.path(), "good");
    {
        let mut h = hostile.lock().unwrap();
        h.jwks = vec![good.jwk.clone()];
        h.huge_jwks = true;
    }
    let setup = oidc_setup(up.addr, &issuer);
    let gw = setup.start().await;
    let login = get(
        gw.addr,
        "crm.contoso.localhost",
        "/_vestibule/login?rd=%2F",
        &["Accept: text/html"],
    )
    .await;
    assert_eq!(login.status, 503, "{}", login.body);
    assert!(login.body.contains("Sign-in unavailable"));
    assert_eq!(up.hits(), 0);
}

async fn post_logout_token(gw: &Gateway, body: &str) -> Reply {
    raw(
        gw.addr,
        &format!(
            "POST /_vestibule/oidc/backchannel-logout HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
    .unwrap()
}

/// Back-channel logout tokens a provider's key signed but that are not valid logout tokens
/// (or replays, or not from a configured provider) are refused with 400 and end nothing; a
/// valid one ends exactly the session it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_tokens_are_verified_and_used_once() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (issuer, hostile) = hostile_provider().await;
    let good = key(dir.path(), "good");
    let stranger = key(dir.path(), "stranger");
    hostile.lock().unwrap().jwks = vec![good.jwk.clone()];
    let setup = oidc_setup(up.addr, &issuer);
    let gw = setup.start().await;
    // Mallory signs in twice: provider sessions s-1 and s-2.
    let mut cookies = Vec::new();
    for sid in ["s-1", "s-2"] {
        let (auth, binding) = begin(&gw).await;
        let mut c = claims(&issuer, &query_param(&auth, "nonce"));
        c["sid"] = json!(sid);
        hostile.lock().unwrap().next_id_token = sign(&good, &c);
        let redirect = format!(
            "http://crm.contoso.localhost/_vestibule/oidc/callback?code=x&state={}",
            urlencode(&query_param(&auth, "state"))
        );
        cookies.push(session_cookie(&callback(&gw, &redirect, &binding).await).unwrap());
    }
    let alive = |cookie: String| {
        let addr = gw.addr;
        async move {
            get(
                addr,
                "crm.contoso.localhost",
                "/",
                &[&format!("Cookie: {cookie}")],
            )
            .await
            .status
                == 200
        }
    };
    let logout = |claims: serde_json::Value| {
        let mut base = json!({
            "iss": issuer,
            "aud": CLIENT_ID,
            "iat": now(),
            "jti": format!("j-{}", rand_suffix()),
            "sub": "mallory",
            "sid": "s-1",
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        for (k, v) in claims.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("no token", "other=1".into(), "no logout_token"),
        (
            "an ID token (nonce)",
            format!(
                "logout_token={}",
                sign(&good, &logout(json!({"nonce": "n"})))
            ),
            "carries a nonce",
        ),
        (
            "another client",
            format!(
                "logout_token={}",
                sign(&good, &logout(json!({"aud": "other"})))
            ),
            "another client",
        ),
        (
            "no event",
            format!(
                "logout_token={}",
                sign(&good, &logout(json!({"events": null})))
            ),
            "back-channel logout event",
        ),
        (
            "stale",
            format!(
                "logout_token={}",
                sign(&good, &logout(json!({"iat": now() - 3600})))
            ),
            "not current",
        ),
        (
            "another key",
            format!("logout_token={}", sign(&stranger, &logout(json!({})))),
            "unknown key",
        ),
        (
            "unknown issuer",
            format!(
                "logout_token={}",
                sign(&good, &logout(json!({"iss": "https://evil.example"})))
            ),
            "unknown issuer",
        ),
        (
            "two tokens",
            {
                let t = sign(&good, &logout(json!({})));
                format!("logout_token={t}&logout_token={t}")
            },
            "no logout_token",
        ),
    ];
    for (what, body, message) in cases {
        let r = post_logout_token(&gw, &body).await;
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_request", "{what}");
        assert!(
            r.json()["error_description"]
                .as_str()
                .unwrap()
                .contains(message),
            "{what}: {}",
            r.body
        );
        assert!(r.header("set-cookie").is_none());
        assert!(alive(cookies[0].clone()).await, "{what}: nothing ended");
        assert!(alive(cookies[1].clone()).await, "{what}: nothing ended");
    }
    let get_it = get(
        gw.addr,
        "127.0.0.1",
        "/_vestibule/oidc/backchannel-logout",
        &[],
    )
    .await;
    assert_eq!(get_it.status, 405);
    // The real thing: session s-1 ends, s-2 stays; the same token again is a replay.
    let token = sign(&good, &logout(json!({})));
    let ok = post_logout_token(&gw, &format!("logout_token={token}")).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(!alive(cookies[0].clone()).await, "s-1 ended");
    assert!(alive(cookies[1].clone()).await, "s-2 stays");
    let replay = post_logout_token(&gw, &format!("logout_token={token}")).await;
    assert_eq!(replay.status, 400);
    assert!(replay.body.contains("already used"), "{}", replay.body);
    // Subject only: every session of the user ends.
    let all = sign(&good, &logout(json!({"sid": null})));
    assert_eq!(
        post_logout_token(&gw, &format!("logout_token={all}"))
            .await
            .status,
        200
    );
    assert!(
        !alive(cookies[1].clone()).await,
        "s-2 ended with the subject"
    );
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The code exchange is outbound I/O: while one sign-in waits on a slow token endpoint, the
/// gateway's only proxy thread keeps serving everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_token_endpoint_does_not_hold_the_proxy_thread() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (issuer, hostile) = hostile_provider().await;
    let good = key(dir.path(), "good");
    hostile.lock().unwrap().jwks = vec![good.jwk.clone()];
    let mut setup = oidc_setup(up.addr, &issuer);
    setup.proxy.threads = Some(1);
    let gw = setup.start().await;
    let sessions = setup
        .sessions(std::sync::Arc::new(vestibule::clock::SystemClock))
        .await;
    let (_, value) = sessions.create("contoso", alice()).await.unwrap();
    let (auth, binding) = begin(&gw).await;
    {
        let mut h = hostile.lock().unwrap();
        h.next_id_token = sign(&good, &claims(&issuer, &query_param(&auth, "nonce")));
        h.token_delay = std::time::Duration::from_secs(3);
    }
    let redirect = format!(
        "http://crm.contoso.localhost/_vestibule/oidc/callback?code=x&state={}",
        urlencode(&query_param(&auth, "state"))
    );
    let pending = {
        let path = redirect[redirect.find("/_vestibule/").unwrap()..].to_owned();
        let (addr, cookie_line) = (gw.addr, format!("Cookie: {binding}"));
        tokio::spawn(
            async move { get(addr, "crm.contoso.localhost", &path, &[&cookie_line]).await },
        )
    };
    // Let the callback reach the token endpoint, then use the proxy thread for others.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for _ in 0..20 {
        let r = get(gw.addr, "crm.contoso.localhost", "/", &[&cookie(&value)]).await;
        assert_eq!(r.status, 200);
    }
    assert!(
        !pending.is_finished(),
        "the sign-in is still waiting on the provider while others were served"
    );
    let done = pending.await.unwrap();
    assert_eq!(done.status, 302, "{}", done.body);
    assert!(session_cookie(&done).is_some());
}
