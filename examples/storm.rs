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

/// A failed step, with the status the gateway or provider answered (or `error`).
fn fail(step: &str, status: Option<reqwest::StatusCode>) -> String {
    format!(
        "{step}:{}",
        status.map_or("error".into(), |s| s.as_u16().to_string())
    )
}

/// One simulated user, as the gateway sees it.
struct User<'a> {
    client: &'a reqwest::Client,
    base: &'a str,
    host: &'a str,
    address: &'a str,
}

impl User<'_> {
    /// A request to the gateway, with this user's Host, Accept and (proxied) address.
    fn gw(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.header("host", self.host)
            .header("accept", "text/html")
            .header("x-forwarded-for", self.address)
    }

    /// Protected page → sign-in start: the binding cookie and where the provider is.
    async fn start(&self) -> Result<(String, String), String> {
        let page = self
            .gw(self.client.get(format!("{}/deals", self.base)))
            .send()
            .await
            .map_err(|_| fail("page", None))?;
        if page.status() != 302 {
            return Err(fail("page", Some(page.status())));
        }
        let login_path = location(&page).ok_or_else(|| fail("page-location", None))?;
        let login = self
            .gw(self.client.get(format!("{}{login_path}", self.base)))
            .send()
            .await
            .map_err(|_| fail("login", None))?;
        if login.status() != 302 {
            return Err(fail("login", Some(login.status())));
        }
        let binding =
            cookie(&login, |n| n.ends_with("_login")).ok_or_else(|| fail("login-cookie", None))?;
        let to_provider = location(&login).ok_or_else(|| fail("login-location", None))?;
        Ok((binding, to_provider))
    }

    /// The provider's answer at the gateway (`path`, with the binding cookie; a form body
    /// for WS-Fed) → the session cookie → the page, 200.
    async fn finish(&self, path: &str, binding: &str, form: Option<String>) -> Result<(), String> {
        let url = format!("{}{path}", self.base);
        let request = match form {
            Some(body) => self
                .gw(self.client.post(url))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
            None => self.gw(self.client.get(url)),
        };
        let done = request
            .header("cookie", binding)
            .send()
            .await
            .map_err(|_| fail("response", None))?;
        if done.status() != 302 {
            return Err(fail("response", Some(done.status())));
        }
        let session = cookie(&done, |n| n == "vestibule" || n == "__Host-vestibule")
            .ok_or_else(|| fail("response-cookie", None))?;
        let back = location(&done).ok_or_else(|| fail("response-location", None))?;
        let first = self
            .gw(self.client.get(format!("{}{back}", self.base)))
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
}

/// The path of a gateway URL the provider sends the browser (or a form) to.
fn gateway_path(url: &str) -> Result<&str, String> {
    url.find("/_vestibule/")
        .map(|i| &url[i..])
        .ok_or_else(|| fail("provider-target", None))
}

/// One user's WS-Federation sign-in; `Err` names the step that failed.
async fn sign_in(user: &User<'_>) -> Result<(), String> {
    let (binding, to_idp) = user.start().await?;
    let idp = user
        .client
        .get(&to_idp)
        .send()
        .await
        .map_err(|_| fail("provider", None))?;
    if idp.status() != 200 {
        return Err(fail("provider", Some(idp.status())));
    }
    let html = idp.text().await.map_err(|_| fail("provider-body", None))?;
    let (action, fields) = form(&html).ok_or_else(|| fail("provider-form", None))?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter())
        .finish();
    // The form posts to the gateway's public URL; the request goes to the gateway's address.
    user.finish(gateway_path(&action)?, &binding, Some(body))
        .await
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
async fn oidc_sign_in(user: &User<'_>, n: u64) -> Result<(), String> {
    let (binding, mut next) = user.start().await?;
    let provider_origin = url::Url::parse(&next)
        .map_err(|_| fail("provider-url", None))?
        .origin()
        .ascii_serialization();
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
            return user.finish(gateway_path(&next)?, &binding, None).await;
        }
        let r = if next.contains("/interaction/") {
            let page = browser
                .get(&next)
                .send()
                .await
                .map_err(|_| fail("interaction", None))?
                .text()
                .await
                .map_err(|_| fail("interaction-body", None))?;
            let answer: Vec<(&str, &str)> = if page.contains("name=\"login\"") {
                vec![
                    ("prompt", "login"),
                    ("login", &login_name),
                    ("password", "x"),
                ]
            } else {
                vec![("prompt", "consent")]
            };
            browser.post(&next).form(&answer).send().await
        } else {
            browser.get(&next).send().await
        }
        .map_err(|_| fail("provider", None))?;
        next = absolute(&location(&r).ok_or_else(|| fail("provider", Some(r.status())))?);
    }
    Err(fail("provider-loop", None))
}

/// The control: as many gateway requests as a sign-in makes, none of which does any work.
async fn five_cheap_requests(user: &User<'_>) -> Result<(), String> {
    for _ in 0..5 {
        let r = user
            .client
            .get(format!("{}/_vestibule/health", user.base))
            .header("host", user.host)
            .header("x-forwarded-for", user.address)
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
                let user = User {
                    client: &client,
                    base: &base,
                    host: &host,
                    address: &client_addr,
                };
                let outcome = match kind {
                    Kind::Cheap => five_cheap_requests(&user).await,
                    Kind::WsFed => sign_in(&user).await,
                    Kind::Oidc => oidc_sign_in(&user, n).await,
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
