//! Configuration reload without a restart: SIGHUP (sent by `vestibule reload`) re-reads the
//! file; a valid one replaces the running configuration whole, an invalid one changes
//! nothing and is reported with its YAML paths.

use crate::harness::*;
use crate::spec;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vestibule::clock::SystemClock;

/// The value of the metric line starting with `line_start` (0 when absent).
async fn metric(gw: &Gateway, line_start: &str) -> f64 {
    let body = get(gw.addr, "x", "/_vestibule/metrics", &[]).await.body;
    body.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Waits (at most 20 s) until the gateway counts `count` reloads with `outcome`.
async fn reloads(gw: &Gateway, outcome: &str, count: f64) {
    let line = format!("vestibule_config_reloads_total{{outcome=\"{outcome}\"}}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if metric(gw, &line).await >= count {
            return;
        }
        assert!(Instant::now() < deadline, "no {outcome} reload counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `vestibule reload --config CONFIG --pid-file PID_FILE`: (exit code, stdout, stderr).
fn vestibule_reload(config: &Path, pid_file: &Path) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .arg("reload")
        .arg("--config")
        .arg(config)
        .arg("--pid-file")
        .arg(pid_file)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn started(setup: &Setup, pid_file: &Path, log: &Path) -> Gateway {
    Gateway::spawn_logged(
        &setup.config_path(),
        setup.port,
        &[OsStr::new("--pid-file"), pid_file.as_os_str()],
        log,
    )
}

/// A reload that adds a tenant, moves another to a new upstream and makes a new key active
/// (the old one stays in the ring): the new tenant routes, the moved tenant's requests reach
/// the new upstream, and sessions sealed with the old key stay valid, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_a_tenant_moves_an_upstream_and_keeps_sessions() {
    let (old_up, new_up) = (Upstream::start().await, Upstream::start().await);
    let mut setup = Setup::new(old_up.addr);
    let pid_file = setup.dir.path().join("vestibule.pid");
    let log = setup.dir.path().join("gateway.log");
    let gw = started(&setup, &pid_file, &log).healthy().await;

    let before = setup.sessions(Arc::new(SystemClock)).await;
    let alice_cookie = cookie(&before.create("contoso", alice()).await.unwrap().1);
    assert_eq!(
        get(gw.addr, "crm.contoso.localhost", "/deals", &[&alice_cookie])
            .await
            .status,
        200
    );
    assert_eq!(old_up.hits(), 1);
    let unknown = get(gw.addr, "crm.northwind.test", "/", &[]).await;
    assert_eq!(unknown.status, 421, "not a tenant yet");

    setup.tenants.push(spec::Tenant::new(
        "northwind",
        &["crm.northwind.test"],
        new_up.addr,
    ));
    setup.contoso().upstream = spec::Upstream::at(new_up.addr);
    setup.ring.push(("k2", KEY_2));
    setup.active_key = "k2";
    let config = setup.config_path();
    let (code, stdout, stderr) = vestibule_reload(&config, &pid_file);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("reload sent"), "{stdout}");
    reloads(&gw, "applied", 1.0).await;

    // The session sealed with k1 before the reload is still good, and contoso now goes to
    // the new upstream.
    let page = get(gw.addr, "crm.contoso.localhost", "/deals", &[&alice_cookie]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(old_up.hits(), 1, "nothing more reached the old upstream");
    assert_eq!(new_up.hits(), 1);
    assert_eq!(new_up.last().one("x-vestibule-tenant"), Some("contoso"));

    // The new tenant routes; a session of it (sealed with the new active key) is accepted.
    let after = setup.sessions(Arc::new(SystemClock)).await;
    let northwind = cookie(&after.create("northwind", alice()).await.unwrap().1);
    let page = get(gw.addr, "crm.northwind.test", "/", &[&northwind]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(new_up.last().one("x-vestibule-tenant"), Some("northwind"));
    // A session of one tenant is still refused by another after the reload.
    let crossed = get(gw.addr, "crm.northwind.test", "/", &[&alice_cookie]).await;
    assert_ne!(crossed.status, 200);

    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("configuration reloaded"), "{log}");
}

/// A request that started before a reload finishes on the configuration it started with
/// (its upstream), while requests after the reload use the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_under_way_finishes_on_the_configuration_it_started_with() {
    let (old_up, new_up) = (Upstream::start().await, Upstream::start().await);
    let mut setup = Setup::new(old_up.addr);
    let pid_file = setup.dir.path().join("vestibule.pid");
    let log = setup.dir.path().join("gateway.log");
    let gw = started(&setup, &pid_file, &log).healthy().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let c = cookie(&sessions.create("contoso", alice()).await.unwrap().1);

    let addr = gw.addr;
    let slow_cookie = c.clone();
    let slow = tokio::spawn(async move {
        get(
            addr,
            "crm.contoso.localhost",
            "/report?delay_ms=3000",
            &[&slow_cookie],
        )
        .await
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while old_up.hits() == 0 {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    setup.contoso().upstream = spec::Upstream::at(new_up.addr);
    let (code, stdout, stderr) = vestibule_reload(&setup.config_path(), &pid_file);
    assert_eq!(code, 0, "{stdout}{stderr}");
    reloads(&gw, "applied", 1.0).await;
    let after = get(gw.addr, "crm.contoso.localhost", "/deals", &[&c]).await;
    assert_eq!(after.status, 200);
    assert_eq!(
        new_up.hits(),
        1,
        "a request after the reload uses the new upstream"
    );

    let slow = slow.await.unwrap();
    assert_eq!(slow.status, 200, "{}", slow.body);
    assert!(slow.body.contains("/report?delay_ms=3000"), "{}", slow.body);
    assert_eq!(old_up.hits(), 1);
    assert!(new_up.all().iter().all(|s| !s.path.contains("delay_ms")));
}

/// Reloads that cannot be applied change nothing: a file with validation errors, and a file
/// that changes a setting bound at start. `vestibule reload` refuses to send an invalid file
/// at all; the gateway, when signalled anyway, refuses it too and logs every error with its
/// YAML path. The running configuration keeps serving; a later valid reload applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_an_error_keeps_the_running_configuration() {
    let up = Upstream::start().await;
    let other = Upstream::start().await;
    let mut setup = Setup::new(up.addr);
    let pid_file = setup.dir.path().join("vestibule.pid");
    let log = setup.dir.path().join("gateway.log");
    let gw = started(&setup, &pid_file, &log).healthy().await;
    let sessions = setup.sessions(Arc::new(SystemClock)).await;
    let c = cookie(&sessions.create("contoso", alice()).await.unwrap().1);
    let config = setup.config_path();
    let good = std::fs::read_to_string(&config).unwrap();

    // 1. Invalid: fabrikam claims contoso's host, and an upstream is moved at the same time.
    setup
        .tenant("fabrikam")
        .hosts
        .push("crm.contoso.localhost".into());
    setup.contoso().upstream = spec::Upstream::at(other.addr);
    setup.config_path();
    let (code, _, stderr) = vestibule_reload(&config, &pid_file);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("tenants[1].hosts[1]") && stderr.contains("already routed"),
        "{stderr}"
    );
    assert!(stderr.contains("not reloaded"), "{stderr}");
    // Nothing was sent: the gateway counted no reload at all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        metric(&gw, "vestibule_config_reloads_total{outcome=\"refused\"}").await,
        0.0
    );
    // Signalled anyway (kill -HUP): the gateway refuses it and says where.
    signal_hangup(&gw);
    reloads(&gw, "refused", 1.0).await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("configuration reload refused")
            && logged.contains("tenants[1].hosts[1]")
            && logged.contains("already routed"),
        "{logged}"
    );
    assert!(
        logged.contains("the running configuration is kept"),
        "{logged}"
    );
    let page = get(gw.addr, "crm.contoso.localhost", "/deals", &[&c]).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        (up.hits(), other.hits()),
        (1, 0),
        "the old upstream still serves"
    );

    // 2. Valid, but changes settings only a restart applies (the log level and a listener):
    //    refused whole, even though the upstream change in it would be possible.
    std::fs::write(
        &config,
        good.replace("level: info,vestibule::access=off", "level: debug")
            .replace(
                &format!("127.0.0.1:{}", setup.port),
                &format!("127.0.0.1:{}", free_port()),
            )
            .replace(&up.addr.to_string(), &other.addr.to_string()),
    )
    .unwrap();
    let (code, stdout, stderr) = vestibule_reload(&config, &pid_file);
    assert_eq!(code, 0, "valid on its own: {stdout}{stderr}");
    reloads(&gw, "refused", 2.0).await;
    let logged = std::fs::read_to_string(&log).unwrap();
    for path in ["listeners", "log"] {
        assert!(
            logged.contains(&format!("{path}: changed, but")),
            "{path}: {logged}"
        );
    }
    assert!(logged.contains("restart the gateway"), "{logged}");
    let page = get(gw.addr, "crm.contoso.localhost", "/deals", &[&c]).await;
    assert_eq!(page.status, 200);
    assert_eq!((up.hits(), other.hits()), (2, 0), "still the old upstream");

    // 3. An upstream that does not resolve passes validation but cannot be built.
    std::fs::write(
        &config,
        good.replace(&up.addr.to_string(), "upstream.invalid:80"),
    )
    .unwrap();
    signal_hangup(&gw);
    reloads(&gw, "refused", 3.0).await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("cannot resolve"), "{logged}");
    assert_eq!(
        get(gw.addr, "crm.contoso.localhost", "/deals", &[&c])
            .await
            .status,
        200
    );
    assert_eq!(up.hits(), 3);

    // 4. Fixed: the next reload applies.
    std::fs::write(
        &config,
        good.replace(&up.addr.to_string(), &other.addr.to_string()),
    )
    .unwrap();
    let (code, stdout, stderr) = vestibule_reload(&config, &pid_file);
    assert_eq!(code, 0, "{stdout}{stderr}");
    reloads(&gw, "applied", 1.0).await;
    assert_eq!(
        get(gw.addr, "crm.contoso.localhost", "/deals", &[&c])
            .await
            .status,
        200
    );
    assert_eq!((up.hits(), other.hits()), (3, 1));
}

/// A reload with no gateway behind the pid file, or a process id that names a process group,
/// sends nothing and says so.
#[test]
fn reload_refuses_a_pid_that_is_not_a_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new("127.0.0.1:9".parse().unwrap());
    let config = setup.config_path();
    let pid_file = dir.path().join("vestibule.pid");
    std::fs::write(&pid_file, "0\n").unwrap();
    let (code, _, stderr) = vestibule_reload(&config, &pid_file);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not a gateway's process id"), "{stderr}");
    let (code, _, stderr) = vestibule_reload(&config, &dir.path().join("missing.pid"));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("missing.pid"), "{stderr}");
}

fn signal_hangup(gw: &Gateway) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
