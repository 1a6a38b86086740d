//! Test harness: a real upstream HTTP server that echoes what it received, the real gateway
//! binary as a child process on 127.0.0.1, and raw HTTP/1.1 for exact control over the bytes
//! a client sends.

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vestibule::clock::Clock;
use vestibule::identity::Identity;
use vestibule::proxy::Sessions;

use crate::spec;

/// Development assertion key shipped in certs/dev.
pub const ASSERTION_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/dev/assertion.pem");
/// Two fixed ring keys (base64 of 32 bytes of 0x01 and 0x02).
pub const KEY_1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
pub const KEY_2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Header names (lower case) and values, in arrival order, duplicates kept.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(
            all.len() <= 1,
            "{name} arrived {} times: {all:?}",
            all.len()
        );
        all.first().copied()
    }
}

/// An HTTP server on 127.0.0.1 that records every request and answers 200 with a JSON echo.
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    count: Arc<AtomicUsize>,
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let (s, c) = (seen.clone(), count.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (s, c) = (s.clone(), c.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (s, c) = (s.clone(), c.clone());
                        async move {
                            let record = Seen {
                                method: req.method().to_string(),
                                path: req
                                    .uri()
                                    .path_and_query()
                                    .map_or("/".into(), |p| p.to_string()),
                                headers: req
                                    .headers()
                                    .iter()
                                    .map(|(n, v)| {
                                        (
                                            n.to_string(),
                                            String::from_utf8_lossy(v.as_bytes()).into(),
                                        )
                                    })
                                    .collect(),
                            };
                            let body = json!({"path": record.path, "method": record.method});
                            // `?delay_ms=N`: a slow upstream (requests under way across a reload).
                            let delay = record
                                .path
                                .split_once("delay_ms=")
                                .and_then(|(_, ms)| ms.parse::<u64>().ok());
                            s.lock().unwrap().push(record);
                            c.fetch_add(1, Ordering::SeqCst);
                            if let Some(ms) = delay {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                            }
                            Ok::<_, hyper::Error>(
                                Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body.to_string())))
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
        Self { addr, seen, count }
    }

    /// How many requests reached the upstream.
    pub fn hits(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Every request so far, in arrival order.
    pub fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The most recent request.
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("upstream saw a request")
    }
}

/// A TCP listener that accepts and then never answers (for timeouts).
pub async fn silent_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// Gateway configuration for tests (typed: see `spec`), with knobs the tests vary.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub active_key: &'static str,
    pub ring: Vec<(&'static str, &'static str)>,
    /// A second, HTTPS listener (development certificate) on this port.
    pub tls_port: Option<u16>,
    pub providers: Vec<spec::Provider>,
    pub document_providers: Vec<spec::DocumentProvider>,
    /// `contoso` (crm.contoso.localhost, /static/ public, /api/ API) and `fabrikam`
    /// (crm.fabrikam.test) to begin with.
    pub tenants: Vec<spec::Tenant>,
    pub proxy: spec::Proxy,
    /// `metrics.allow`, when a test sets it.
    pub metrics_allow: Option<Vec<String>>,
    /// A PostgreSQL URL: `store.postgres` instead of the SQLite file in `dir`.
    pub postgres: Option<String>,
    /// `session.cache_ttl`, when a test sets it.
    pub cache_ttl: Option<&'static str>,
    /// `store.migrate`, when a test sets it.
    pub migrate: Option<bool>,
}

impl Setup {
    pub fn new(upstream: SocketAddr) -> Self {
        let mut contoso = spec::Tenant::new("contoso", &["crm.contoso.localhost"], upstream);
        contoso.public = vec!["/static/".into()];
        contoso.api = vec!["/api/".into()];
        Self {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            active_key: "k1",
            ring: vec![("k1", KEY_1)],
            tls_port: None,
            providers: Vec::new(),
            document_providers: Vec::new(),
            tenants: vec![
                contoso,
                spec::Tenant::new("fabrikam", &["crm.fabrikam.test"], upstream),
            ],
            proxy: spec::Proxy::default(),
            metrics_allow: None,
            postgres: None,
            cache_ttl: None,
            migrate: None,
        }
    }

    /// The tenant named `name`.
    pub fn tenant(&mut self, name: &str) -> &mut spec::Tenant {
        self.tenants
            .iter_mut()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tenant {name}"))
    }

    /// The contoso tenant (the one most tests sign in to).
    pub fn contoso(&mut self) -> &mut spec::Tenant {
        self.tenant("contoso")
    }

    /// The provider named `name`.
    pub fn provider(&mut self, name: &str) -> &mut spec::Provider {
        self.providers
            .iter_mut()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("no provider {name}"))
    }

    pub fn yaml(&self) -> String {
        self.yaml_on(self.port)
    }

    /// The configuration with the plain listener on `port` (another instance).
    pub fn yaml_on(&self, port: u16) -> String {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut listeners = vec![json!({ "address": format!("127.0.0.1:{port}") })];
        if let Some(p) = self.tls_port {
            listeners.push(json!({
                "address": format!("127.0.0.1:{p}"),
                "tls": {
                    "cert": format!("{root}/certs/dev/gateway.crt"),
                    "key": format!("{root}/certs/dev/gateway.key"),
                },
            }));
        }
        let ring: serde_json::Map<String, Value> = self
            .ring
            .iter()
            .map(|(id, key)| (id.to_string(), json!({ "value": key })))
            .collect();
        let mut doc = json!({
            "listeners": listeners,
            "keys": { "active": self.active_key, "ring": ring },
            "store": { "sqlite": self.dir.path().join("v.db") },
            "session": { "cookie": "vestibule", "idle": "1h", "absolute": "8h" },
            "assertion": {
                "key": { "file": ASSERTION_KEY },
                "kid": "test-1",
                "issuer": "vestibule-test",
                "audience": "crm",
                "lifetime": "5m",
            },
            "headers": { "strip": ["Remote-User"] },
            "log": { "level": "info,vestibule::access=off" },
            "tenants": self.tenants,
        });
        if !self.providers.is_empty() {
            doc["providers"] = serde_json::to_value(&self.providers).unwrap();
        }
        if !self.document_providers.is_empty() {
            doc["document_providers"] = serde_json::to_value(&self.document_providers).unwrap();
        }
        if !self.proxy.is_empty() {
            doc["proxy"] = serde_json::to_value(&self.proxy).unwrap();
        }
        if let Some(allow) = &self.metrics_allow {
            doc["metrics"] = json!({ "allow": allow });
        }
        if let Some(url) = &self.postgres {
            doc["store"] = json!({ "postgres": { "url": { "value": url } } });
        }
        if let Some(migrate) = self.migrate {
            doc["store"]["migrate"] = json!(migrate);
        }
        if let Some(ttl) = self.cache_ttl {
            doc["session"]["cache_ttl"] = json!(ttl);
        }
        serde_norway::to_string(&doc).unwrap()
    }

    pub fn config_path(&self) -> PathBuf {
        let path = self.dir.path().join("vestibule.yaml");
        std::fs::write(&path, self.yaml()).unwrap();
        path
    }

    /// Session manager over the same store and keys as the gateway, with its own clock.
    pub async fn sessions(&self, clock: Arc<dyn Clock>) -> Arc<Sessions> {
        let config =
            vestibule::config::parse_str(&self.yaml(), Path::new(".")).expect("test config valid");
        vestibule::proxy::service::assemble(&config, clock)
            .await
            .expect("assemble")
            .sessions
    }

    pub async fn start(&self) -> Gateway {
        Gateway::spawn(&self.config_path(), self.port).await
    }

    /// Another instance of the same gateway (same store, keys and tenants) on its own port.
    pub async fn start_another(&self) -> Gateway {
        let port = free_port();
        let path = self.dir.path().join(format!("vestibule-{port}.yaml"));
        std::fs::write(&path, self.yaml_on(port)).unwrap();
        Gateway::spawn(&path, port).await
    }

    /// How many sessions the gateway's store holds (refusal tests: "nothing stored").
    pub async fn session_count(&self) -> i64 {
        let db = sqlx::SqlitePool::connect(&format!(
            "sqlite://{}",
            self.dir.path().join("v.db").display()
        ))
        .await
        .unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
            .fetch_one(&db)
            .await
            .unwrap()
    }
}

/// The gateway binary running as a child process; killed on drop.
pub struct Gateway {
    child: Child,
    pub addr: SocketAddr,
}

impl Gateway {
    pub async fn spawn(config: &Path, port: u16) -> Self {
        let gw = Self::spawn_args(config, port, &[]);
        gw.healthy().await
    }

    /// Starts `vestibule run --config CONFIG ARGS…` without waiting for it.
    pub fn spawn_args(config: &Path, port: u16, args: &[&std::ffi::OsStr]) -> Self {
        Self::spawn_to(config, port, args, Stdio::inherit())
    }

    /// `spawn_args` with the gateway's log (stderr) written to `log`.
    pub fn spawn_logged(config: &Path, port: u16, args: &[&std::ffi::OsStr], log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("log file");
        Self::spawn_to(config, port, args, Stdio::from(file))
    }

    fn spawn_to(config: &Path, port: u16, args: &[&std::ffi::OsStr], stderr: Stdio) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .args(["run", "--config"])
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start gateway");
        Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits until the gateway answers its health check.
    pub async fn healthy(self) -> Self {
        let mut gw = self;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = raw(
                gw.addr,
                "GET /_vestibule/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await
            {
                if r.status == 200 {
                    return gw;
                }
            }
            if let Ok(Some(status)) = gw.child.try_wait() {
                panic!("gateway exited during start-up: {status}");
            }
            assert!(Instant::now() < deadline, "gateway did not become healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends exactly `request` (which should ask for `Connection: close`) and reads the reply.
pub async fn raw(addr: SocketAddr, request: &str) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("reply timed out"))??;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect::<Vec<_>>();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A GET with the given host, path and extra header lines.
pub async fn get(addr: SocketAddr, host: &str, path: &str, extra: &[&str]) -> Reply {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for line in extra {
        req.push_str(line);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    raw(addr, &req).await.expect("gateway answered")
}

/// Signs out the way the sign-out button does: a same-origin POST to `/_vestibule/logout`.
pub async fn logout(addr: SocketAddr, host: &str, extra: &[&str]) -> Reply {
    let mut req = format!(
        "POST /_vestibule/logout HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nContent-Length: 0\r\nConnection: close\r\n"
    );
    for line in extra {
        req.push_str(line);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    raw(addr, &req).await.expect("gateway answered")
}

/// An identity as a verified sign-in would produce it.
pub fn alice() -> Identity {
    Identity {
        provider: "azure-ad".into(),
        issuer: "https://sts.windows.net/contoso-tenant-id/".into(),
        subject: "alice-subject".into(),
        user: "alice@contoso.example".into(),
        email: Some("alice@contoso.example".into()),
        name: Some("Alice Example".into()),
        idp_tenant: Some("contoso-tenant-id".into()),
        // Azure AD's object id, as every Azure AD sign-in carries it (per-user Office 365
        // document tokens are only for such accounts).
        claims: [(
            "oid".to_owned(),
            serde_json::Value::String("6f1c3c5e-8a2b-4d7e-9f10-2b3c4d5e6f70".into()),
        )]
        .into(),
        crm: None,
        directory_key: None,
    }
}

/// `Cookie:` header line for a cookie value.
pub fn cookie(value: &str) -> String {
    format!("Cookie: vestibule={value}")
}

/// `value` with its middle character replaced by a different one: a forgery that always
/// changes real bits (trailing base64 characters may carry only padding bits).
pub fn tamper(value: &str) -> String {
    let mut bytes = value.as_bytes().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII token")
}

/// Runs `tests/browser/<script>` with `input` (JSON) as its argument, within `limit`, and
/// returns the JSON report it prints last; panics with that report when the script fails.
pub async fn browser_script(script: &str, input: &Value, limit: Duration) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists(),
        "run `npm ci --prefix tests/browser` first (scripts/test does)"
    );
    let child = tokio::process::Command::new("node")
        .arg(root.join("tests/browser").join(script))
        .arg(input.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is installed");
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {limit:?}"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "{script}: no report; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    assert!(
        output.status.success(),
        "{script} failed: {report:#}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    report
}
