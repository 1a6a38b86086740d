//! Real browsers: Debian's Chromium, driven by `tests/browser/driver.mjs` (playwright-core),
//! signs in through the real gateway and the real WS-Federation and OpenID Connect peers
//! wherever a user can reach the gateway: HTTPS, plain HTTP on a loopback name, and HTTP
//! behind a trusted TLS-terminating proxy (nginx). Plain HTTP on a public name gets the
//! HTTPS-required page. Every cookie Vestibule sets is checked as the browser stored it, the
//! identity provider's cross-site sign-out cleanup and RP-initiated logout are exercised, and
//! the upstream never sees a Vestibule cookie. A failing scenario leaves a screenshot in
//! `target/browser-artifacts/`.

use crate::harness::*;
use crate::peers::*;
use crate::spec;
use crate::wsfed_flow::{wsfed_setup, ISSUER};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PUBLIC_HOST: &str = "crm.public.example";

/// Runs one driver scenario; panics with the driver's report when it fails.
async fn browser(name: &str, mut scenario: Value) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    scenario["name"] = json!(name);
    scenario["artifacts"] = json!(root.join("target/browser-artifacts"));
    scenario["tls"] = json!({
        "cert": root.join("certs/dev/gateway.crt"),
        "key": root.join("certs/dev/gateway.key"),
    });
    scenario["hosts"] = json!([PUBLIC_HOST, "idp-signout.example"]);
    browser_script("driver.mjs", &scenario, Duration::from_secs(90)).await
}

/// nginx terminating TLS in front of the gateway and saying so in `X-Forwarded-Proto`.
struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(port: u16, gateway: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nerror_log stderr;\npid {d}/nginx.pid;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             \x20 server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
             \x20   location / {{\n      proxy_pass http://127.0.0.1:{gateway};\n      proxy_set_header Host $http_host;\n      proxy_set_header X-Forwarded-Proto https;\n      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      proxy_redirect off;\n    }}\n  }}\n}}\n",
            cert = root.join("certs/dev/gateway.crt").display(),
            key = root.join("certs/dev/gateway.key").display(),
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx is installed (scripts/install-deps --test)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, _dir: dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One gateway with every way in: HTTP (`port`), HTTPS (`tls_port`), and nginx in front
/// (`proxy_port`); tenants on a public name and on the loopback names.
struct Ports {
    http: u16,
    tls: u16,
    proxy: u16,
}

impl Ports {
    fn new() -> Self {
        Self {
            http: free_port(),
            tls: free_port(),
            proxy: free_port(),
        }
    }

    /// Every origin a browser may use: for redirect URI registrations.
    fn origins(&self) -> Vec<String> {
        vec![
            format!("https://{PUBLIC_HOST}:{}", self.tls),
            format!("https://{PUBLIC_HOST}:{}", self.proxy),
            format!("http://localhost:{}", self.http),
            format!("http://127.0.0.1:{}", self.http),
        ]
    }
}

/// A tenant on a public name (reached through the TLS proxy) and one on the loopback names.
fn tenants(up: std::net::SocketAddr, sign_in: spec::SignIn) -> [spec::Tenant; 2] {
    [
        spec::Tenant::new("public", &[PUBLIC_HOST], up).sign_in(sign_in.clone()),
        spec::Tenant::new("loopback", &["localhost", "127.0.0.1"], up).sign_in(sign_in),
    ]
}

fn cookie<'a>(report: &'a Value, name: &str) -> &'a Value {
    cookie_in(report, "cookies", name)
}

/// A cookie as stored when the browser left for the identity provider.
fn cookie_at_provider<'a>(report: &'a Value, name: &str) -> &'a Value {
    cookie_in(report, "cookiesAtProvider", name)
}

fn cookie_in<'a>(report: &'a Value, when: &str, name: &str) -> &'a Value {
    report[when]
        .as_array()
        .unwrap_or_else(|| panic!("no {when} in {report:#}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no cookie {name} in {when}: {:#}", report[when]))
}

fn cookie_names(report: &Value) -> Vec<String> {
    report["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_attrs(c: &Value, secure: bool, same_site: &str, path: &str) {
    assert_eq!(c["httpOnly"], true, "{c}");
    assert_eq!(c["secure"], secure, "{c}");
    assert_eq!(c["sameSite"], same_site, "{c}");
    assert_eq!(c["path"], path, "{c}");
}

/// What the upstream saw of the browser: identity headers, never a Vestibule cookie.
fn assert_upstream_saw_alice(up: &Upstream) {
    let seen = up.last();
    assert_eq!(seen.one("x-vestibule-user"), Some("alice@contoso.example"));
    assert!(seen.one("x-vestibule-assertion").is_some());
    for value in seen.all("cookie") {
        assert!(
            !value.contains("vestibule"),
            "a Vestibule cookie reached the upstream: {value}"
        );
    }
}

/// After each step, whether the browser was still signed in.
fn statuses(report: &Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["after"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn steps(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsfed_in_a_browser_everywhere_it_can_work_and_a_clear_page_where_it_cannot() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path(), "idp");
    let peer = WsFedPeer::start(&cert, &key, &[("TOKEN", "saml20"), ("ISSUER", ISSUER)]);
    let ports = Ports::new();
    let mut setup = wsfed_setup(up.addr, &peer);
    setup.port = ports.http;
    setup.tls_port = Some(ports.tls);
    setup.proxy.trusted_proxies = vec!["127.0.0.0/8".into()];
    setup.tenants.extend(tenants(
        up.addr,
        spec::SignIn::provider("corp").issuer(ISSUER),
    ));
    let _gw = setup.start().await;
    let _nginx = Nginx::start(ports.proxy, ports.http);

    // HTTPS, then the identity provider's sign-out cleanup from a cross-site iframe.
    let https = format!("https://{PUBLIC_HOST}:{}", ports.tls);
    let r = browser(
        "wsfed-https",
        json!({
            "flow": "wsfed",
            "start": format!("{https}/deals"),
            "cleanupUrl": format!("{https}/_vestibule/wsfed?wa=wsignoutcleanup1.0"),
        }),
    )
    .await;
    assert_attrs(
        cookie_at_provider(&r, "__Host-vestibule_login"),
        true,
        "None",
        "/",
    );
    assert_attrs(cookie(&r, "__Host-vestibule"), true, "Lax", "/");
    assert_attrs(
        cookie(&r, "__Secure-vestibule_signout"),
        true,
        "None",
        "/_vestibule/wsfed",
    );
    assert_eq!(
        cookie(&r, "__Host-vestibule")["domain"],
        PUBLIC_HOST,
        "host-only"
    );
    assert!(
        !cookie_names(&r).iter().any(|n| n.contains("_login")),
        "the binding cookie is cleared after sign-in: {:?}",
        cookie_names(&r)
    );
    assert_eq!(r["cleanup"]["status"], 200, "{r:#}");
    assert_eq!(
        statuses(&r),
        steps(&[("sign-in", "signed-in"), ("cleanup", "signed-out")]),
        "the cross-site cleanup ended the session"
    );
    assert_upstream_saw_alice(&up);
    // The control, and the limit no cookie design gets past: where the browser blocks
    // third-party cookies (Safari, Firefox's partitioning, private windows), the cross-site
    // cleanup cannot name the session, which then lives on until it expires or is signed out
    // here (docs/security.md). OpenID Connect back-channel logout has no such limit.
    let r = browser(
        "wsfed-https-third-party-cookies-blocked",
        json!({
            "flow": "wsfed",
            "start": format!("{https}/deals"),
            "cleanupUrl": format!("{https}/_vestibule/wsfed?wa=wsignoutcleanup1.0"),
            "blockThirdPartyCookies": true,
        }),
    )
    .await;
    assert_eq!(
        statuses(&r),
        steps(&[("sign-in", "signed-in"), ("cleanup", "signed-in")])
    );

    // Plain HTTP on loopback names: a secure context for the browser, so it works.
    for host in ["localhost", "127.0.0.1"] {
        let base = format!("http://{host}:{}", ports.http);
        let r = browser(
            &format!("wsfed-http-{host}"),
            json!({ "flow": "wsfed", "start": format!("{base}/deals"), "logout": true }),
        )
        .await;
        assert_attrs(
            cookie_at_provider(&r, "vestibule_login"),
            true,
            "None",
            "/_vestibule/",
        );
        assert_attrs(cookie(&r, "vestibule"), true, "Lax", "/");
        assert_attrs(
            cookie(&r, "vestibule_signout"),
            true,
            "None",
            "/_vestibule/wsfed",
        );
        assert_eq!(
            statuses(&r),
            steps(&[("sign-in", "signed-in"), ("logout", "signed-out")]),
            "{host}"
        );
        assert!(
            r["signedOut"]["text"]
                .as_str()
                .unwrap()
                .contains("signed out"),
            "{r:#}"
        );
        assert_upstream_saw_alice(&up);
    }

    // HTTP behind a trusted TLS-terminating proxy.
    let proxied = format!("https://{PUBLIC_HOST}:{}", ports.proxy);
    let r = browser(
        "wsfed-behind-nginx",
        json!({ "flow": "wsfed", "start": format!("{proxied}/deals") }),
    )
    .await;
    assert_attrs(cookie(&r, "__Host-vestibule"), true, "Lax", "/");
    assert_eq!(statuses(&r), steps(&[("sign-in", "signed-in")]));
    assert_eq!(up.last().one("x-forwarded-proto"), Some("https"));
    assert_upstream_saw_alice(&up);

    // Plain HTTP on a public name: the browser would drop the cookies, so a clear page.
    let hits = up.hits();
    let r = browser(
        "wsfed-http-public",
        json!({
            "flow": "wsfed",
            "start": format!("http://{PUBLIC_HOST}:{}/deals", ports.http),
            "expect": "https-required",
        }),
    )
    .await;
    let page = r["page"]["text"].as_str().unwrap();
    assert!(
        page.contains("needs HTTPS") && page.contains("proxy.trusted_proxies"),
        "{r:#}"
    );
    assert!(
        r["page"]["url"]
            .as_str()
            .unwrap()
            .contains("/_vestibule/login"),
        "{r:#}"
    );
    assert_eq!(up.hits(), hits, "nothing forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_in_a_browser_with_rp_initiated_logout() {
    let up = Upstream::start().await;
    let ports = Ports::new();
    let join = |suffix: &str| {
        ports
            .origins()
            .iter()
            .map(|o| format!("{o}{suffix}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let op = OidcPeer::start(&[
        ("REDIRECT_URIS", &join("/_vestibule/oidc/callback")),
        ("POST_LOGOUT_REDIRECT_URIS", &join("/_vestibule/signed-out")),
    ]);
    let mut setup = crate::oidc_flow::oidc_setup(up.addr, &op.issuer);
    setup.port = ports.http;
    setup.tls_port = Some(ports.tls);
    setup.proxy.trusted_proxies = vec!["127.0.0.0/8".into()];
    setup
        .tenants
        .extend(tenants(up.addr, spec::SignIn::provider("op")));
    let _gw = setup.start().await;
    let _nginx = Nginx::start(ports.proxy, ports.http);

    for (name, base, https) in [
        (
            "oidc-https",
            format!("https://{PUBLIC_HOST}:{}", ports.tls),
            true,
        ),
        (
            "oidc-behind-nginx",
            format!("https://{PUBLIC_HOST}:{}", ports.proxy),
            true,
        ),
        (
            "oidc-http-localhost",
            format!("http://localhost:{}", ports.http),
            false,
        ),
    ] {
        let r = browser(
            name,
            json!({ "flow": "oidc", "start": format!("{base}/deals"), "login": "alice", "logout": true }),
        )
        .await;
        let (session, binding, binding_path) = if https {
            ("__Host-vestibule", "__Host-vestibule_login", "/")
        } else {
            ("vestibule", "vestibule_login", "/_vestibule/")
        };
        assert_attrs(cookie_at_provider(&r, binding), true, "None", binding_path);
        assert_attrs(cookie(&r, session), true, "Lax", "/");
        assert!(
            !cookie_names(&r)
                .iter()
                .any(|n| n.contains("vestibule_login") || n.contains("signout")),
            "{name}: only the session cookie stays: {:?}",
            cookie_names(&r)
        );
        assert_eq!(
            statuses(&r),
            steps(&[("sign-in", "signed-in"), ("logout", "signed-out")]),
            "{name}"
        );
        assert_eq!(
            r["signedOut"]["url"].as_str().unwrap(),
            format!("{base}/_vestibule/signed-out"),
            "{name}: back from the provider's sign-out"
        );
        assert_upstream_saw_alice(&up);
    }
    let r = browser(
        "oidc-http-public",
        json!({
            "flow": "oidc",
            "start": format!("http://{PUBLIC_HOST}:{}/deals", ports.http),
            "expect": "https-required",
        }),
    )
    .await;
    assert!(
        r["page"]["text"].as_str().unwrap().contains("needs HTTPS"),
        "{r:#}"
    );
}
