//! The 9 a.m. sign-in storm of the load harness (`benches/load/run storm`, see
//! `docs/benchmarks.md`): waves of USERS users sign in at once through the gateway and the
//! real npm `wsfed` identity provider, each with its own cookies and its own client address
//! (an `X-Forwarded-For` the benchmark's trusted proxy setting believes), until SECONDS have
//! passed (at least one wave). One sign-in: protected page → 302 to `/_vestibule/login` → 302 to the provider →
//! its auto-POST form → POST to `/_vestibule/wsfed` → 302 back → the page, 200. Traffic goes
//! to 127.0.0.1 only and stops by itself.
//!
//! ```sh
//! storm GATEWAY_ADDR HOST USERS SECONDS [INTERVAL [KIND]]
//! ```
//!
//! KIND `sign-in` (default: WS-Federation, the provider answers with an auto-POST form),
//! `oidc` (OpenID Connect through npm `oidc-provider`'s development login and consent pages,
//! then the callback), or `cheap`: the control, where each user sends the gateway five
//! requests that need no work (`/_vestibule/health`) instead of signing in, so a run can tell
//! the cost of the sign-ins from the cost of hundreds of clients at once.
//!
//! With INTERVAL, a wave starts every INTERVAL seconds (or when the previous one ends, if
//! later); without, waves follow each other back to back.
//!
//! Prints one JSON line: sign-ins completed, failures by step and status, the wall time, and
//! the sign-in latency percentiles (first request to the page served), in milliseconds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    failures: BTreeMap<String, u64>,
}

/// The `name=value` of the first non-empty `Set-Cookie` whose name `pick` accepts.
fn cookie(r: &reqwest::Response, pick: impl Fn(&str) -> bool) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
        .find(|pair| pair.split('=').next().is_some_and(&pick) && !pair.ends_with('='))
}

fn location(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("location")?
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// The hidden inputs of the provider's auto-POST form, and its action.
fn form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let unescape = |s: &str| {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&#x27;", "'")
            .replace("&amp;", "&")
    };
    let attr = |piece: &str, name: &str| {
        let key = format!("{name}=\"");
        let start = piece.find(&key)? + key.len();
        Some(unescape(&piece[start..start + piece[start..].find('"')?]))
    };
    let action = attr(&html[html.find("<form")?..], "action")?;
    let fields = html
        .split("<input")
        .skip(1)
        .filter_map(|p| Some((attr(p, "name")?, attr(p, "value")?)))
        .collect();
    Some((action, fields))
}

/// One user's sign-in; `Err` names the step that failed.
async fn sign_in(
    client: &reqwest::Client,
    base: &str,
    host: &str,
    client_addr: &str,
) -> Result<(), String> {
    let fail = |step: &str, status: Option<reqwest::StatusCode>| {
        format!(
            "{step}:{}",
            status.map_or("error".into(), |s| s.as_u16().to_string())
        )
    };
    let gw = |req: reqwest::RequestBuilder| {
        req.header("host", host)
            .header("accept", "text/html")
            .header("x-forwarded-for", client_addr)
    };
    let page = gw(client.get(format!("{base}/deals")))
        .send()
        .await
        .map_err(|_| fail("page", None))?;
    if page.status() != 302 {
        return Err(fail("page", Some(page.status())));
    }
    let login_path = location(&page).ok_or_else(|| fail("page-location", None))?;
    let login = gw(client.get(format!("{base}{login_path}")))
        .send()
        .await
        .map_err(|_| fail("login", None))?;
    if login.status() != 302 {
        return Err(fail("login", Some(login.status())));
    }
    let binding =
        cookie(&login, |n| n.ends_with("_login")).ok_or_else(|| fail("login-cookie", None))?;
    let to_idp = location(&login).ok_or_else(|| fail("login-location", None))?;
    let idp = client
        .get(&to_idp)
        .send()
        .await
        .map_err(|_| fail("provider", None))?;
    if idp.status() != 200 {
        return Err(fail("provider", Some(idp.status())));
    }
    let html = idp.text().await.map_err(|_| fail("provider-body", None))?;
    let (action, fields) = form(&html).ok_or_else(|| fail("provider-form", None))?;
    // The form posts to the gateway's public URL; the request goes to the gateway's address.
    let path = action
        .find("/_vestibule/")
        .map(|i| action[i..].to_owned())
        .ok_or_else(|| fail("provider-action", None))?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter())
        .finish();
    let done = gw(client.post(format!("{base}{path}")))
        .header("cookie", &binding)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|_| fail("post", None))?;
    if done.status() != 302 {
        return Err(fail("post", Some(done.status())));
    }
    let session = cookie(&done, |n| n == "vestibule" || n == "__Host-vestibule")
        .ok_or_else(|| fail("post-cookie", None))?;
    let back = location(&done).ok_or_else(|| fail("post-location", None))?;
    let first = gw(client.get(format!("{base}{back}")))
        .header("cookie", &session)
        .send()
        .await
        .map_err(|_| fail("first-page", None))?;
    if first.status() != 200 {
        return Err(fail("first-page", Some(first.status())));
    }
    let _ = first.bytes().await;
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    WsFed,
    Oidc,
    Cheap,
}

/// One user's OpenID Connect sign-in: the provider's pages with this user's own cookie jar
/// (the provider's cookies), the gateway's cookies by hand (they are `Secure` on a loopback
/// name, which the jar would keep from plain HTTP).
async fn oidc_sign_in(
    gateway: &reqwest::Client,
    base: &str,
    host: &str,
    client_addr: &str,
    n: u64,
) -> Result<(), String> {
    let fail = |step: &str, status: Option<reqwest::StatusCode>| {
        format!(
            "{step}:{}",
            status.map_or("error".into(), |s| s.as_u16().to_string())
        )
    };
    let gw = |req: reqwest::RequestBuilder| {
        req.header("host", host)
            .header("accept", "text/html")
            .header("x-forwarded-for", client_addr)
    };
    let login = gw(gateway.get(format!("{base}/_vestibule/login?rd=%2Fdeals")))
        .send()
        .await
        .map_err(|_| fail("login", None))?;
    if login.status() != 302 {
        return Err(fail("login", Some(login.status())));
    }
    let binding =
        cookie(&login, |n| n.ends_with("_login")).ok_or_else(|| fail("login-cookie", None))?;
    let mut next = location(&login).ok_or_else(|| fail("login-location", None))?;
    let provider_origin = {
        let u = url::Url::parse(&next).map_err(|_| fail("provider-url", None))?;
        u.origin().ascii_serialization()
    };
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|_| fail("browser", None))?;
    let absolute = |loc: &str| {
        if loc.starts_with('/') {
            format!("{provider_origin}{loc}")
        } else {
            loc.to_owned()
        }
    };
    let login_name = format!("storm-user-{n}");
    for _ in 0..12 {
        if next.contains("/_vestibule/oidc/callback") {
            let path = &next[next
                .find("/_vestibule/")
                .ok_or_else(|| fail("callback-url", None))?..];
            let done = gw(gateway.get(format!("{base}{path}")))
                .header("cookie", &binding)
                .send()
                .await
                .map_err(|_| fail("callback", None))?;
            if done.status() != 302 {
                return Err(fail("callback", Some(done.status())));
            }
            let session = cookie(&done, |n| n == "vestibule" || n == "__Host-vestibule")
                .ok_or_else(|| fail("callback-cookie", None))?;
            let back = location(&done).ok_or_else(|| fail("callback-location", None))?;
            let first = gw(gateway.get(format!("{base}{back}")))
                .header("cookie", &session)
                .send()
                .await
                .map_err(|_| fail("first-page", None))?;
            if first.status() != 200 {
                return Err(fail("first-page", Some(first.status())));
            }
            let _ = first.bytes().await;
            return Ok(());
        }
        if next.contains("/interaction/") {
            let page = browser
                .get(&next)
                .send()
                .await
                .map_err(|_| fail("interaction", None))?
                .text()
                .await
                .map_err(|_| fail("interaction-body", None))?;
            let form: Vec<(&str, &str)> = if page.contains("name=\"login\"") {
                vec![
                    ("prompt", "login"),
                    ("login", &login_name),
                    ("password", "x"),
                ]
            } else {
                vec![("prompt", "consent")]
            };
            let r = browser
                .post(&next)
                .form(&form)
                .send()
                .await
                .map_err(|_| fail("interaction-post", None))?;
            next =
                absolute(&location(&r).ok_or_else(|| fail("interaction-post", Some(r.status())))?);
        } else {
            let r = browser
                .get(&next)
                .send()
                .await
                .map_err(|_| fail("provider", None))?;
            next = absolute(&location(&r).ok_or_else(|| fail("provider", Some(r.status())))?);
        }
    }
    Err(fail("provider-loop", None))
}

/// The control: as many gateway requests as a sign-in makes, none of which does any work.
async fn five_cheap_requests(
    client: &reqwest::Client,
    base: &str,
    host: &str,
    client_addr: &str,
) -> Result<(), String> {
    for _ in 0..5 {
        let r = client
            .get(format!("{base}/_vestibule/health"))
            .header("host", host)
            .header("x-forwarded-for", client_addr)
            .send()
            .await
            .map_err(|_| "health:error".to_owned())?;
        if r.status() != 200 {
            return Err(format!("health:{}", r.status().as_u16()));
        }
        let _ = r.bytes().await;
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (addr, host, users, seconds, interval, kind) = match a.as_slice() {
        [addr, host, users, seconds] => (addr, host, users, seconds, "0", "sign-in"),
        [addr, host, users, seconds, interval] => {
            (addr, host, users, seconds, interval.as_str(), "sign-in")
        }
        [addr, host, users, seconds, interval, kind] => {
            (addr, host, users, seconds, interval.as_str(), kind.as_str())
        }
        _ => {
            eprintln!("usage: storm GATEWAY_ADDR HOST USERS SECONDS [INTERVAL [KIND]]");
            return ExitCode::from(2);
        }
    };
    let kind = match kind {
        "sign-in" => Kind::WsFed,
        "oidc" => Kind::Oidc,
        "cheap" => Kind::Cheap,
        _ => {
            eprintln!("storm: KIND is sign-in, oidc or cheap");
            return ExitCode::from(2);
        }
    };
    let Ok(interval) = interval.parse::<f64>().map(Duration::from_secs_f64) else {
        eprintln!("storm: bad interval");
        return ExitCode::from(2);
    };
    let (Ok(addr), Ok(users), Ok(seconds)) = (
        addr.parse::<SocketAddr>(),
        users.parse::<usize>(),
        seconds.parse::<u64>(),
    ) else {
        eprintln!("storm: bad arguments");
        return ExitCode::from(2);
    };
    if !addr.ip().is_loopback() {
        eprintln!("storm: only loopback targets");
        return ExitCode::from(2);
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(users)
        .build()
        .expect("client");
    let base = format!("http://{addr}");
    let tally: Arc<Mutex<Tally>> = Arc::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut waves = 0u64;
    // At least one wave, then waves until the deadline.
    loop {
        let wave_start = Instant::now();
        let mut tasks = Vec::with_capacity(users);
        for user in 0..users {
            let (client, base, host, tally) =
                (client.clone(), base.clone(), host.clone(), tally.clone());
            // Each user its own address, 10.0.0.0/8 as seen through the trusted proxy.
            let n = waves * users as u64 + user as u64;
            let client_addr = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
            tasks.push(tokio::spawn(async move {
                let t0 = Instant::now();
                let outcome = match kind {
                    Kind::Cheap => five_cheap_requests(&client, &base, &host, &client_addr).await,
                    Kind::WsFed => sign_in(&client, &base, &host, &client_addr).await,
                    Kind::Oidc => oidc_sign_in(&client, &base, &host, &client_addr, n).await,
                };
                let mut t = tally.lock().unwrap();
                match outcome {
                    Ok(()) => t.latencies_ms.push(t0.elapsed().as_secs_f64() * 1000.0),
                    Err(step) => *t.failures.entry(step).or_default() += 1,
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        waves += 1;
        let next = wave_start + interval;
        if next >= deadline || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let mut t = tally.lock().unwrap();
    t.latencies_ms.sort_by(|a, b| a.total_cmp(b));
    let completed = t.latencies_ms.len();
    println!(
        "{}",
        serde_json::json!({
            "users_per_wave": users,
            "waves": waves,
            "completed": completed,
            "failures": t.failures,
            "seconds": wall,
            "sign_ins_per_second": completed as f64 / wall,
            "p50_ms": percentile(&t.latencies_ms, 50.0),
            "p99_ms": percentile(&t.latencies_ms, 99.0),
            "max_ms": t.latencies_ms.last().copied().unwrap_or(0.0),
        })
    );
    ExitCode::SUCCESS
}
