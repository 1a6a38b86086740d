//! The sign-in flood of the load harness (`benches/load/run flood`, see
//! `docs/benchmarks.md`): CONNECTIONS loops POST a forged `wresult` (a real token with one
//! altered claim character) to the gateway's WS-Federation endpoint for SECONDS. Traffic goes
//! to ADDR on 127.0.0.1 only, and stops by itself.
//!
//! ```sh
//! flood ADDR HOST WRESULT_FILE SECONDS CONNECTIONS fresh|reused
//! ```
//!
//! `fresh`: every POST carries a new wctx from its own `/_vestibule/login` (what an attacker
//! does once a failed POST spends its wctx); `reused`: one wctx for all POSTs. Prints one JSON
//! line: POSTs and logins made, and the statuses the POSTs got.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    addr: String,
    host: String,
    wresult: String,
    seconds: u64,
    connections: usize,
    fresh: bool,
}

fn args() -> Option<Args> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [addr, host, file, seconds, connections, mode] = a.as_slice() else {
        return None;
    };
    if !addr.starts_with("127.") {
        eprintln!("flood: only 127.0.0.0/8 targets");
        return None;
    }
    Some(Args {
        addr: addr.clone(),
        host: host.clone(),
        wresult: std::fs::read_to_string(file).ok()?,
        seconds: seconds.parse().ok()?,
        connections: connections.parse().ok()?,
        fresh: match mode.as_str() {
            "fresh" => true,
            "reused" => false,
            _ => return None,
        },
    })
}

/// A login: the wctx and the binding cookie to post with.
async fn login(client: &reqwest::Client, base: &str, host: &str) -> Option<(String, String)> {
    let r = client
        .get(format!("{base}/_vestibule/login?rd=%2F"))
        .header("host", host)
        .header("accept", "text/html")
        .send()
        .await
        .ok()?;
    let location = r.headers().get("location")?.to_str().ok()?;
    let wctx = url::Url::parse(location)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == "wctx")?
        .1
        .into_owned();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("_login="))?
        .split(';')
        .next()?
        .to_owned();
    Some((wctx, cookie))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(args) = args() else {
        eprintln!("usage: flood ADDR HOST WRESULT_FILE SECONDS CONNECTIONS fresh|reused");
        return ExitCode::from(2);
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(args.connections * 2)
        .build()
        .expect("client");
    let base = format!("http://{}", args.addr);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let statuses: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let counts: Arc<Mutex<(u64, u64)>> = Arc::default();
    let args = Arc::new(args);
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (client, base, args) = (client.clone(), base.clone(), args.clone());
        let (statuses, counts) = (statuses.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            let mut held = None;
            while Instant::now() < deadline {
                if args.fresh || held.is_none() {
                    held = login(&client, &base, &args.host).await;
                    counts.lock().unwrap().1 += 1;
                }
                let Some((wctx, cookie)) = held.clone() else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("wa", "wsignin1.0")
                    .append_pair("wresult", &args.wresult)
                    .append_pair("wctx", &wctx)
                    .finish();
                let sent = client
                    .post(format!("{base}/_vestibule/wsfed"))
                    .header("host", &args.host)
                    .header("cookie", cookie)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await;
                counts.lock().unwrap().0 += 1;
                if let Ok(r) = sent {
                    *statuses
                        .lock()
                        .unwrap()
                        .entry(r.status().as_u16())
                        .or_default() += 1;
                    let _ = r.bytes().await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let (posts, logins) = *counts.lock().unwrap();
    let statuses: BTreeMap<String, u64> = statuses
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    println!(
        "{}",
        serde_json::json!({ "posts": posts, "logins": logins, "statuses": statuses })
    );
    ExitCode::SUCCESS
}
