//! Mints Vestibule sessions for the load harness (`benches/load/run`, see
//! `docs/benchmarks.md`): loads the same YAML configuration as the gateway, assembles the
//! same store and key ring through `vestibule::proxy::service::assemble`, creates sessions the
//! way a completed sign-in does, and prints their cookie values. A gateway started with the
//! same configuration file accepts them (same SQLite store, same keys).
//!
//! ```sh
//! mint_session CONFIG TENANT                # one session, cookie value on stdout
//! mint_session CONFIG TENANT COUNT [FILE]   # COUNT sessions, one cookie value a line
//! ```
//!
//! The first session is always for the fixed identity `bench-user@contoso.example`; further
//! ones are for `bench-user-<n>@contoso.example` so each session carries its own identity.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use vestibule::clock::{Clock, SystemClock};
use vestibule::identity::Identity;

fn identity(n: u64) -> Identity {
    let user = if n == 0 {
        "bench-user@contoso.example".to_owned()
    } else {
        format!("bench-user-{n}@contoso.example")
    };
    Identity {
        provider: "azure-ad".into(),
        issuer: "https://sts.windows.net/00000000-0000-0000-0000-000000000000/".into(),
        subject: format!("subject-{n}"),
        email: Some(user.clone()),
        name: Some(format!("Bench User {n}")),
        user,
        idp_tenant: Some("00000000-0000-0000-0000-000000000000".into()),
        claims: Default::default(),
        crm: None,
        directory_key: None,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 || args.len() > 5 {
        eprintln!("usage: mint_session CONFIG TENANT [COUNT [FILE]]");
        return ExitCode::from(2);
    }
    let config_path = PathBuf::from(&args[1]);
    let tenant = &args[2];
    let count: u64 = match args.get(3).map(|c| c.parse()) {
        None => 1,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("mint_session: COUNT must be a positive integer");
            return ExitCode::from(2);
        }
    };
    let config = match vestibule::config::load_file(&config_path) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("{}:{e}", config_path.display());
            }
            return ExitCode::from(2);
        }
    };
    if !config.tenants.iter().any(|t| &t.name == tenant) {
        eprintln!(
            "mint_session: no tenant `{tenant}` in {}",
            config_path.display()
        );
        return ExitCode::from(2);
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let assembly = match vestibule::proxy::service::assemble(&config, clock).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mint_session: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out: Box<dyn Write> = match args.get(4) {
        Some(file) => match std::fs::File::create(file) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("mint_session: cannot create {file}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let started = Instant::now();
    for n in 0..count {
        match assembly.sessions.create(tenant, identity(n)).await {
            Ok((_, cookie)) => {
                if let Err(e) = writeln!(out, "{cookie}") {
                    eprintln!("mint_session: write: {e}");
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("mint_session: session {n}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = out.flush() {
        eprintln!("mint_session: write: {e}");
        return ExitCode::FAILURE;
    }
    if count > 1 {
        // This process keeps every session it created in its own session cache too (without
        // an upstream assertion, which the gateway mints on first use): its RSS is a rough
        // measure of what the cache entries cost.
        let rss = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .map(|l| l.trim_start_matches("VmRSS:").trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        eprintln!(
            "mint_session: {count} sessions for tenant `{tenant}` in {:.1} s ({} cached in this process, RSS {rss})",
            started.elapsed().as_secs_f64(),
            assembly.sessions.cached(),
        );
    }
    ExitCode::SUCCESS
}
