//! The README's first command: `scripts/demo` (what `scripts/run-gateway` runs) starts the
//! gateway, the sample CRM and the development identity providers from `demo/vestibule.yaml`,
//! and Chromium walks through it (`tests/browser/demo.mjs`): on Contoso (Office 365 documents)
//! Alice signs in with Office 365 (demo) and grants her own document access, Bob signs in with
//! Google (demo) and is told his account cannot hold Office 365 documents; on Fabrikam (Google
//! Drive) Alice, a document admin, connects the shared Drive as the system user; Mallory, who
//! is not a CRM user, is refused. Every page seen passes axe-core. The same demo configuration
//! as a newcomer gets, on free ports and in a temporary state folder. Screenshots of every
//! step: `target/browser-artifacts/demo/`.

use crate::harness::free_port;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The launcher; on drop it gets SIGTERM, so its exit trap stops everything it started.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
    }
}

/// A port whose next four are free too (the demo's CRM and identity providers).
fn free_port_run() -> u16 {
    loop {
        let base = free_port();
        let free = (1..=4).all(|i| {
            base.checked_add(i)
                .is_some_and(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        });
        if free {
            return base;
        }
    }
}

#[test]
fn the_demo_signs_in_grants_documents_refuses_a_stranger_and_signs_out() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists(),
        "run `npm ci --prefix tests/browser` first (scripts/test does)"
    );
    let state = tempfile::tempdir().unwrap();
    let port = free_port_run();
    let mut child = Command::new(root.join("scripts/demo"))
        .env("DEMO_PORT", port.to_string())
        .env("DEMO_STATE", state.path())
        .env("VESTIBULE_BIN", env!("CARGO_BIN_EXE_vestibule"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("scripts/demo starts");
    let stdout = child.stdout.take().unwrap();
    let demo = Demo(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the demo prints its URL within 60 s");
    let url = format!("http://localhost:{port}/");
    assert!(line.contains(&url), "one URL, on localhost: {line}");

    let artifacts = root.join("target/browser-artifacts/demo");
    let output = Command::new("node")
        .arg(root.join("tests/browser/demo.mjs"))
        .arg(json!({ "url": url, "artifacts": artifacts }).to_string())
        .stdin(Stdio::null())
        .output()
        .expect("node is installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report: {}", String::from_utf8_lossy(&output.stderr)));
    assert!(
        output.status.success() && report["ok"] == json!(true),
        "{report:#}\nlogs in the demo's state folder; gateway: {}",
        std::fs::read_to_string(state.path().join("gateway.log")).unwrap_or_default()
    );
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for step in [
        "crm-alice",
        "documents-alice",
        "asks-again-alice",
        "crm-bob",
        "documents-bob",
        "connect-refused-bob",
        "asks-again-bob",
        "crm-fabrikam-alice",
        "drive-not-connected",
        "drive-connected",
        "documents-drive",
        "asks-again-fabrikam-alice",
        "not-a-crm-user",
    ] {
        assert!(steps.contains(&step), "{step} missing: {steps:?}");
    }
    // The document-token status each CRM page received.
    assert_eq!(report["office365Status"], "ok", "{report:#}");
    assert_eq!(
        report["googleOnOffice365Status"], "unsupported-sign-in",
        "{report:#}"
    );
    assert_eq!(report["connectRefusedStatus"], 403, "{report:#}");
    assert_eq!(report["driveStatus"], "ok", "{report:#}");
    // Every page on the way — the gateway's, the CRM's, the identity providers' — passes axe.
    for step in report["steps"].as_array().unwrap() {
        assert_eq!(
            step["violations"],
            json!([]),
            "axe-core on {} ({})",
            step["name"],
            step["url"]
        );
    }
    // Keys were made in the state folder on first run, not in the repository.
    for made in [
        "ring-demo.key",
        "assertion.pem",
        "idp.crt",
        "vestibule.yaml",
        "vestibule.db",
    ] {
        assert!(state.path().join(made).exists(), "{made}");
    }
    drop(demo);
}
