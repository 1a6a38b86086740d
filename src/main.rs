//! The `vestibule` command: run the gateway, check configuration files, generate keys.

use base64::Engine;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "vestibule",
    version,
    about = "Authentication gateway for a CRM"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// Configuration file.
        #[arg(long, default_value = "config/vestibule.yaml")]
        config: PathBuf,
        /// Take the listening sockets over from the running gateway (start this, then send
        /// the old process SIGQUIT: it hands them over, finishes its requests and exits).
        #[arg(long)]
        upgrade: bool,
        /// The Unix socket the listening sockets are handed over on (both processes).
        #[arg(long)]
        upgrade_socket: Option<PathBuf>,
        /// Write the process id here (read by `vestibule reload --pid-file`).
        #[arg(long)]
        pid_file: Option<PathBuf>,
    },
    /// Reload the running gateway's configuration without a restart: checks the file first
    /// (errors are printed and nothing is sent), then sends the gateway SIGHUP. The gateway
    /// validates the file again and either serves all of it or keeps its running
    /// configuration and logs every error (settings bound at start — listeners, store,
    /// proxy.threads, log — need a restart or `run --upgrade`).
    Reload {
        /// Configuration file (the one the gateway was started with).
        #[arg(long, default_value = "config/vestibule.yaml")]
        config: PathBuf,
        /// The pid file `vestibule run --pid-file` wrote.
        #[arg(long, required_unless_present = "pid", conflicts_with = "pid")]
        pid_file: Option<PathBuf>,
        /// The gateway's process id.
        #[arg(long)]
        pid: Option<i32>,
    },
    /// Validate configuration files; prints every error with its YAML path and line:column.
    CheckConfig {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Check a deployment file on another machine: `{env}`/`{file}` secrets that are not
        /// present here are listed as not checked instead of failing (everything else is
        /// checked as usual).
        #[arg(long)]
        no_secrets: bool,
    },
    /// Re-seal every stored session and document token under the key ring's active key
    /// (after adding a new key and making it active); safe while gateways run.
    RotateKey {
        /// Configuration file (its store and key ring are used).
        #[arg(long, default_value = "config/vestibule.yaml")]
        config: PathBuf,
    },
    /// Apply the store's schema migrations (where `store.migrate: false` leaves them to an
    /// operator, e.g. with a more privileged database role).
    Migrate {
        /// Configuration file (its store is used).
        #[arg(long, default_value = "config/vestibule.yaml")]
        config: PathBuf,
    },
    /// List or end users' sessions (support staff).
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
    },
    /// Print a fresh 256-bit key for the key ring.
    Keygen {
        /// Key id to print (default: k + today's date).
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Subcommand)]
enum SessionsAction {
    /// List stored sessions (id prefix, tenant, user, provider, created, last seen, expires).
    List {
        /// Configuration file (its store and key ring are used).
        #[arg(long, default_value = "config/vestibule.yaml")]
        config: PathBuf,
        /// Only this tenant's sessions.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this user's (the signed-in user name, case-insensitive).
        #[arg(long)]
        user: Option<String>,
    },
    /// End every session of a user in a tenant, on every instance sharing the store.
    Revoke {
        /// Configuration file (its store and key ring are used).
        #[arg(long, default_value = "config/vestibule.yaml")]
        config: PathBuf,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The user (the signed-in user name, case-insensitive).
        #[arg(long)]
        user: String,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Migrate { config } => with_config(&config, |cfg| {
            block_on(async {
                match vestibule::operations::migrate(cfg).await {
                    Ok(()) => {
                        println!("migrations applied");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("vestibule: store: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }),
        Command::Sessions { action } => sessions(action),
        Command::Run {
            config,
            upgrade,
            upgrade_socket,
            pid_file,
        } => match vestibule::config::load_file(&config) {
            Ok(cfg) => match vestibule::proxy::service::run_with(
                cfg,
                vestibule::proxy::service::RunOptions {
                    upgrade: vestibule::proxy::service::Upgrade {
                        take_over: upgrade,
                        socket: upgrade_socket,
                    },
                    config_path: Some(config.clone()),
                    pid_file,
                },
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vestibule: cannot start: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(errors) => {
                print_errors(&config, &errors);
                ExitCode::from(2)
            }
        },
        Command::Reload {
            config,
            pid_file,
            pid,
        } => reload(&config, pid_file.as_deref(), pid),
        Command::CheckConfig { files, no_secrets } => {
            let secrets = if no_secrets {
                vestibule::config::Secrets::SkipAbsent
            } else {
                vestibule::config::Secrets::Resolve
            };
            let mut ok = true;
            for file in &files {
                match vestibule::config::check_file(file, secrets) {
                    Ok(checked) => {
                        for path in &checked.unchecked {
                            println!(
                                "{}: {path}: not checked (the secret is not present on this machine)",
                                file.display()
                            );
                        }
                        let problems = match &checked.config {
                            Some(config) => {
                                for warning in config.warnings() {
                                    eprintln!("{}: warning: {warning}", file.display());
                                }
                                vestibule::directory::Directories::check_files(&config.tenants)
                            }
                            None => Vec::new(),
                        };
                        for (path, message) in &problems {
                            eprintln!("{}:-:-: {path}: {message}", file.display());
                        }
                        if !problems.is_empty() {
                            ok = false;
                        } else if checked.unchecked.is_empty() {
                            println!("{}: ok", file.display());
                        } else {
                            println!(
                                "{}: ok except {} secret(s) not checked",
                                file.display(),
                                checked.unchecked.len()
                            );
                        }
                    }
                    Err(errors) => {
                        ok = false;
                        print_errors(file, &errors);
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Command::RotateKey { config } => match vestibule::config::load_file(&config) {
            Ok(cfg) => rotate_key(&cfg),
            Err(errors) => {
                print_errors(&config, &errors);
                ExitCode::from(2)
            }
        },
        Command::Keygen { id } => {
            let id = id.unwrap_or_else(default_key_id);
            if !vestibule::crypto::valid_key_id(&id) {
                eprintln!("vestibule: key ids are 1-32 characters of letters, digits, -, _ and .");
                return ExitCode::from(2);
            }
            let key =
                base64::engine::general_purpose::STANDARD.encode(vestibule::crypto::generate_key());
            println!(
                "# Add to keys.ring (keep the value secret, e.g. in an environment variable):"
            );
            println!(
                "#   keys: {{ active: {id}, ring: {{ {id}: {{ env: VESTIBULE_KEY_{} }} }} }}",
                id.to_ascii_uppercase().replace(['-', '.'], "_")
            );
            println!("id: {id}");
            println!("key: {key}");
            ExitCode::SUCCESS
        }
    }
}

fn rotate_key(config: &vestibule::config::Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vestibule: {e}");
            return ExitCode::FAILURE;
        }
    };
    let keys = vestibule::crypto::KeyRing::new(&config.keys.active, &config.keys.ring)
        .expect("validated: the active key is in the ring");
    let result = runtime.block_on(async {
        let store = vestibule::store::open(&config.store).await?;
        vestibule::rotate::rotate(store.as_ref(), &keys).await
    });
    match result {
        Ok(report) => {
            println!(
                "re-sealed under key {}: {} sessions, {} document tokens ({} moved to their owner's digest under that key); {} already current; {} rewritten by a running gateway meanwhile",
                keys.active_id(),
                report.sessions_resealed,
                report.tokens_resealed,
                report.tokens_moved,
                report.already_current,
                report.raced
            );
            for (kind, kid) in &report.unreadable {
                eprintln!("vestibule: a {kind} record is sealed under key `{kid}`, which is not in the ring: left as it is (it no longer opens)");
            }
            if report.unreadable.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("vestibule: store: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads `path` and runs `f` with it, or prints the configuration's errors (exit 2).
fn with_config(
    path: &std::path::Path,
    f: impl FnOnce(&vestibule::config::Config) -> ExitCode,
) -> ExitCode {
    match vestibule::config::load_file(path) {
        Ok(cfg) => f(&cfg),
        Err(errors) => {
            print_errors(path, &errors);
            ExitCode::from(2)
        }
    }
}

fn block_on(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(work),
        Err(e) => {
            eprintln!("vestibule: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sessions(action: SessionsAction) -> ExitCode {
    use vestibule::operations::{list_sessions, revoke_sessions, Selection};
    let (config, selection, revoke) = match action {
        SessionsAction::List {
            config,
            tenant,
            user,
        } => (config, Selection { tenant, user }, false),
        SessionsAction::Revoke {
            config,
            tenant,
            user,
        } => (
            config,
            Selection {
                tenant: Some(tenant),
                user: Some(user),
            },
            true,
        ),
    };
    with_config(&config, |cfg| {
        if let Some(tenant) = &selection.tenant {
            if !cfg.tenants.iter().any(|t| t.name == *tenant) {
                eprintln!("vestibule: no tenant `{tenant}` in {}", config.display());
                return ExitCode::from(2);
            }
        }
        let keys = vestibule::crypto::KeyRing::new(&cfg.keys.active, &cfg.keys.ring)
            .expect("validated: the active key is in the ring");
        block_on(async {
            let store = match vestibule::store::open(&cfg.store).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("vestibule: store: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let (found, unreadable) = match list_sessions(store.as_ref(), &keys, &selection).await {
                Ok(found) => found,
                Err(e) => {
                    eprintln!("vestibule: store: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if unreadable > 0 {
                eprintln!("vestibule: {unreadable} session records do not open with the key ring (sealed under a key no longer in it): not listed");
            }
            let time = |t: i64| {
                chrono::DateTime::from_timestamp(t, 0)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default()
            };
            if !revoke {
                println!("id\ttenant\tuser\tprovider\tcreated\tlast_seen\texpires");
                for s in &found {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        s.id_prefix,
                        s.tenant,
                        s.user,
                        s.provider,
                        time(s.created_at),
                        time(s.last_seen_at),
                        time(s.expires_at)
                    );
                }
                return ExitCode::SUCCESS;
            }
            match revoke_sessions(store.as_ref(), &found).await {
                Ok(ended) => {
                    let everywhere =
                        matches!(cfg.store, vestibule::config::StoreConfig::Postgres { .. });
                    println!(
                        "ended {ended} sessions of {} in {}{}",
                        selection.user.as_deref().unwrap_or_default(),
                        selection.tenant.as_deref().unwrap_or_default(),
                        if everywhere {
                            " (every instance drops them now)"
                        } else {
                            " (the running gateway drops its cached copy within session.cache_ttl)"
                        }
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("vestibule: store: {e}");
                    ExitCode::FAILURE
                }
            }
        })
    })
}

/// `vestibule reload`: the file must pass the same validation the gateway will run, else
/// nothing is sent; the gateway's log has the final word (it also refuses changes to
/// settings bound at start, and reads `{env}` secrets from its own environment).
fn reload(
    config: &std::path::Path,
    pid_file: Option<&std::path::Path>,
    pid: Option<i32>,
) -> ExitCode {
    if let Err(errors) = vestibule::config::load_file(config) {
        print_errors(config, &errors);
        eprintln!("vestibule: not reloaded: the running configuration is kept");
        return ExitCode::from(2);
    }
    let pid = match (pid, pid_file) {
        (Some(pid), _) => pid,
        (None, Some(file)) => match std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| text.trim().parse::<i32>().map_err(|e| e.to_string()))
        {
            Ok(pid) => pid,
            Err(e) => {
                eprintln!("vestibule: pid file {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        },
        (None, None) => unreachable!("clap requires --pid or --pid-file"),
    };
    // kill(2) reads 0 and negative ids as process groups (-1: every process we may signal).
    if pid <= 1 {
        eprintln!("vestibule: {pid} is not a gateway's process id");
        return ExitCode::FAILURE;
    }
    use nix::sys::signal::{kill, Signal};
    match kill(nix::unistd::Pid::from_raw(pid), Signal::SIGHUP) {
        Ok(()) => {
            println!(
                "{}: valid; reload sent to process {pid} (its log says \"configuration reloaded\" or why not)",
                config.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vestibule: cannot signal process {pid}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_errors(file: &std::path::Path, errors: &[vestibule::config::ConfigError]) {
    for e in errors {
        eprintln!("{}:{e}", file.display());
    }
}

fn default_key_id() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    format!("k{days}")
}
