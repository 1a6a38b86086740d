//! TLS on both sides: an HTTPS listener (cookies get `Secure`, upstream learns the scheme) and
//! HTTPS upstreams verified against a configured CA and name. Real peers: `curl` as the
//! client and `openssl s_server` as the upstream.

use crate::harness::*;
use crate::spec;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use vestibule::clock::SystemClock;

const DEV_CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/dev/gateway.crt");
const DEV_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/dev/gateway.key");

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_server -www` on 127.0.0.1, serving the development certificate (localhost).
async fn openssl_upstream() -> (Killed, u16) {
    let port = free_port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-cert", DEV_CERT, "-key", DEV_KEY])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("openssl is installed (scripts/install-deps)");
    let guard = Killed(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (guard, port);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("openssl s_server did not start");
}

fn other_ca(dir: &Path) -> String {
    let cert = dir.join("other-ca.crt");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    cert.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_by_ca_and_name() {
    let up = Upstream::start().await;
    let (_server, port) = openssl_upstream().await;
    let mut setup = Setup::new(up.addr);
    let wrong_ca = other_ca(setup.dir.path());
    let address = format!("127.0.0.1:{port}");
    for (name, sni, ca) in [
        ("secure", "localhost", DEV_CERT.to_owned()),
        ("wrongca", "localhost", wrong_ca.to_string()),
        ("wrongname", "crm.elsewhere.example", DEV_CERT.to_owned()),
    ] {
        setup.tenants.push(
            spec::Tenant::new(name, &[&format!("{name}.test")], &address)
                .upstream(spec::Upstream {
                    tls: true,
                    sni: Some(sni.into()),
                    ca: Some(ca),
                    ..spec::Upstream::at(&address)
                })
                .public(&["/"]),
        );
    }
    let gw = setup.start().await;
    let ok = get(gw.addr, "secure.test", "/", &[]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(
        ok.body.contains("s_server"),
        "the page came from openssl s_server"
    );
    for host in ["wrongca.test", "wrongname.test"] {
        let r = get(gw.addr, host, "/", &["Accept: application/json"]).await;
        assert_eq!(r.status, 502, "{host}: {}", r.body);
        assert_eq!(r.json()["error"], "upstream_unavailable");
    }
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10", "--cacert", DEV_CERT])
        .args(args)
        .output()
        .expect("curl is installed (scripts/install-deps --test)");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_listener_marks_cookies_secure_and_tells_the_upstream() {
    let up = Upstream::start().await;
    let mut setup = Setup::new(up.addr);
    let tls_port = free_port();
    setup.tls_port = Some(tls_port);
    let _gw = setup.start().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let (_, value) = sessions.create("contoso", alice()).await.unwrap();
    let base = format!("https://localhost:{tls_port}");
    let resolve = format!("localhost:{tls_port}:127.0.0.1");
    // Over HTTPS the session cookie is `__Host-vestibule`: one a sibling domain or a
    // plain-HTTP page cannot plant. The unprefixed name is not a session there.
    let cookie_header = format!("Cookie: __Host-vestibule={value}");
    let planted = curl(&[
        "--resolve",
        &resolve,
        "-H",
        "Host: crm.contoso.localhost",
        "-H",
        "Accept: text/html",
        "-H",
        &format!("Cookie: vestibule={value}"),
        &format!("{base}/deals"),
    ]);
    assert!(planted.contains(" 302"), "{planted}");
    assert_eq!(up.hits(), 0);

    let page = curl(&[
        "--resolve",
        &resolve,
        "-H",
        "Host: crm.contoso.localhost",
        "-H",
        &cookie_header,
        &format!("{base}/deals"),
    ]);
    assert!(
        page.starts_with("HTTP/2 200") || page.starts_with("HTTP/1.1 200"),
        "{page}"
    );
    let seen = up.last();
    assert_eq!(seen.one("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.one("x-vestibule-user"), Some("alice@contoso.example"));

    let out = curl(&[
        "--resolve",
        &resolve,
        "-H",
        "Host: crm.contoso.localhost",
        "-H",
        &cookie_header,
        "-H",
        "Sec-Fetch-Site: same-origin",
        "-X",
        "POST",
        &format!("{base}/_vestibule/logout"),
    ]);
    let set_cookie = out
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: __host-vestibule=;")
        })
        .unwrap_or_else(|| panic!("no Set-Cookie in {out}"));
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(set_cookie.contains(attr), "{attr} missing: {set_cookie}");
    }
    assert!(
        !set_cookie.to_ascii_lowercase().contains("domain="),
        "host-only: {set_cookie}"
    );
}
