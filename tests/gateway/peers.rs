//! The real identity-provider peers, started as child processes on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// An RSA-2048 certificate and key made with openssl for a test.
pub fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    (cert, key)
}

/// The peer's one ready line, or a panic after 60 s (a peer that cannot start must fail the
/// test, not hang it) saying whether it still runs and what it wrote to `stderr_log`.
fn ready_line(child: &mut Child, stderr_log: Option<&Path>) -> String {
    try_ready_line(child, stderr_log, 60).unwrap_or_else(|e| panic!("{e}"))
}

/// The ready line within `secs`, or (the child killed) why not.
fn try_ready_line(
    child: &mut Child,
    stderr_log: Option<&Path>,
    secs: u64,
) -> Result<String, String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(line) => Ok(line),
        Err(_) => {
            let state = match child.try_wait() {
                Ok(Some(status)) => format!("it exited ({status})"),
                _ => "it is still running".to_owned(),
            };
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr_log
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default();
            Err(format!(
                "identity-provider peer did not start within {secs} s; {state}; stderr:\n{stderr}"
            ))
        }
    }
}

/// The npm `wsfed` identity provider (tests/peers/wsfed/idp.js).
pub struct WsFedPeer {
    child: Child,
    pub port: u16,
    pub cert: PathBuf,
}

impl WsFedPeer {
    /// Starts the peer; `env` adds or overrides variables (TOKEN, ISSUER, SIG_ALG, USER_UPN...).
    pub fn start(cert: &Path, key: &Path, env: &[(&str, &str)]) -> Self {
        let dir = Path::new(ROOT).join("tests/peers/wsfed");
        assert!(
            dir.join("node_modules").exists(),
            "run `npm ci --prefix tests/peers/wsfed` first (scripts/test does)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("idp.js"))
            .env("PORT", "0")
            .env("CERT", cert)
            .env("KEY", key)
            .env("EXIT_ON_STDIN_EOF", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node is installed");
        let line = ready_line(&mut child, None);
        let ready: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("peer said {line:?}: {e}"));
        Self {
            child,
            port: ready["port"].as_u64().unwrap() as u16,
            cert: cert.to_path_buf(),
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn metadata_url(&self) -> String {
        format!(
            "{}/federationmetadata/2007-06/federationmetadata.xml",
            self.base()
        )
    }

    /// A fresh signed RSTR for `realm`, straight from the peer.
    pub async fn token(&self, realm: &str) -> String {
        let url = format!("{}/token?wtrealm={}", self.base(), urlencode(realm));
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }
}

impl Drop for WsFedPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The hidden inputs of an auto-POST form, HTML entities decoded.
pub fn form_fields(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for piece in html.split("<input").skip(1) {
        let attr = |name: &str| {
            let key = format!("{name}=\"");
            piece.find(&key).map(|i| {
                let rest = &piece[i + key.len()..];
                unescape(&rest[..rest.find('"').unwrap()])
            })
        };
        if let (Some(n), Some(v)) = (attr("name"), attr("value")) {
            out.push((n, v));
        }
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// `xmlsec1 --verify` as an oracle: does the signature alone hold up?
pub fn xmlsec1_says_valid(xml: &str, cert: &Path, saml2: bool) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token.xml");
    std::fs::write(&file, xml).unwrap();
    let id_attr = if saml2 {
        "--id-attr:ID urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
    } else {
        "--id-attr:AssertionID urn:oasis:names:tc:SAML:1.0:assertion:Assertion"
    };
    let out = Command::new("xmlsec1")
        .arg("--verify")
        .args(id_attr.split(' '))
        .arg("--trusted-pem")
        .arg(cert)
        .arg(&file)
        .output()
        .expect("xmlsec1 is installed (scripts/install-deps --test)");
    out.status.success()
}

/// The npm `oidc-provider` OpenID Provider (tests/peers/oidc/op.js).
pub struct OidcPeer {
    child: Child,
    pub port: u16,
    pub issuer: String,
    pub kid: String,
}

pub const CLIENT_ID: &str = "vestibule";
pub const CLIENT_SECRET: &str = "vestibule-test-secret";

impl OidcPeer {
    pub fn start(env: &[(&str, &str)]) -> Self {
        // Node 20 very rarely hangs on start-up before listening (main thread in a futex
        // wait, seen about once per full suite run on 2 cores); one more process is tried
        // before the test fails, and both attempts' stderr are reported.
        let first = Self::spawn(env, 20);
        let (child, line) = match first {
            Ok(ok) => ok,
            Err(why) => Self::spawn(env, 60).unwrap_or_else(|again| panic!("{why}\n{again}")),
        };
        Self::from_ready(child, &line)
    }

    fn spawn(env: &[(&str, &str)], secs: u64) -> Result<(Child, String), String> {
        let dir = Path::new(ROOT).join("tests/peers/oidc");
        assert!(
            dir.join("node_modules").exists(),
            "run `npm ci --prefix tests/peers/oidc` first (scripts/test does)"
        );
        let stderr_log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new("node")
            .arg(dir.join("op.js"))
            .env("PORT", "0")
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env(
                "REDIRECT_URIS",
                "http://crm.contoso.localhost/_vestibule/oidc/callback",
            )
            .env(
                "POST_LOGOUT_REDIRECT_URIS",
                "http://crm.contoso.localhost/_vestibule/signed-out",
            )
            .env("EXIT_ON_STDIN_EOF", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Kept in a file (not a pipe nobody drains) to explain a peer that does not start.
            .stderr(stderr_log.reopen().unwrap())
            .spawn()
            .expect("node is installed");
        let line = try_ready_line(&mut child, Some(stderr_log.path()), secs)?;
        Ok((child, line))
    }

    fn from_ready(child: Child, line: &str) -> Self {
        let ready: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("op.js said {line:?}: {e}"));
        Self {
            child,
            port: ready["port"].as_u64().unwrap() as u16,
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
            kid: ready["kid"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// Signs `login` in through the provider's development interactions (login, then
    /// consent), starting from the authorization URL; returns the redirect to our callback.
    pub async fn sign_in(&self, authorization_url: &str, login: &str) -> String {
        self.sign_in_with(&Self::browser(), authorization_url, login)
            .await
    }

    /// A cookie-keeping client, standing in for one browser at the provider.
    pub fn browser() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap()
    }

    /// Ends the provider session `browser` holds, confirming on the provider's sign-out page
    /// (RP-less, as a user signing out at the provider does).
    pub async fn end_session(&self, browser: &reqwest::Client) {
        let base = format!("http://127.0.0.1:{}", self.port);
        let page = browser
            .get(format!("{base}/session/end?client_id={CLIENT_ID}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let grab = |re_start: &str| {
            let i = page
                .find(re_start)
                .unwrap_or_else(|| panic!("{re_start} in {page}"))
                + re_start.len();
            page[i..i + page[i..].find('"').unwrap()].to_owned()
        };
        let action = grab("<form id=\"op.logoutForm\" method=\"post\" action=\"");
        let xsrf = grab("name=\"xsrf\" value=\"");
        let action = if action.starts_with('/') {
            format!("{base}{action}")
        } else {
            action
        };
        let done = browser
            .post(action)
            .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
            .send()
            .await
            .unwrap();
        assert!(
            done.status().is_redirection(),
            "sign-out confirmed: {}",
            done.status()
        );
    }

    /// Signs in with `client` (keeping its provider session).
    pub async fn sign_in_with(
        &self,
        client: &reqwest::Client,
        authorization_url: &str,
        login: &str,
    ) -> String {
        let base = format!("http://127.0.0.1:{}", self.port);
        let absolute = |loc: &str| {
            if loc.starts_with('/') {
                format!("{base}{loc}")
            } else {
                loc.to_owned()
            }
        };
        let mut next = authorization_url.to_owned();
        for _ in 0..10 {
            let r = client.get(&next).send().await.unwrap();
            let loc = r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned());
            let Some(loc) = loc else {
                panic!("provider stopped redirecting at {next}: {}", r.status());
            };
            let loc = absolute(&loc);
            if loc.contains("/_vestibule/") {
                return loc;
            }
            if loc.contains("/interaction/") {
                let page = client.get(&loc).send().await.unwrap().text().await.unwrap();
                let form: &[(&str, &str)] = if page.contains("name=\"login\"") {
                    &[("prompt", "login"), ("login", login), ("password", "x")]
                } else {
                    &[("prompt", "consent")]
                };
                let r = client.post(&loc).form(form).send().await.unwrap();
                next = absolute(r.headers()["location"].to_str().unwrap());
            } else {
                next = loc;
            }
        }
        panic!("sign-in did not reach the callback");
    }
}

impl Drop for OidcPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
