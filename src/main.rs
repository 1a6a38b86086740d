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
    },
    /// Validate configuration files; prints every error with its YAML path and line:column.
    CheckConfig {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Re-seal every stored session and document token under the key ring's active key
    /// (after adding a new key and making it active); safe while gateways run.
    RotateKey {
        /// Configuration file (its store and key ring are used).
        #[arg(long, default_value = "config/vestibule.yaml")]
        config: PathBuf,
    },
    /// Print a fresh 256-bit key for the key ring.
    Keygen {
        /// Key id to print (default: k + today's date).
        #[arg(long)]
        id: Option<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run { config } => match vestibule::config::load_file(&config) {
            Ok(cfg) => match vestibule::proxy::service::run(cfg) {
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
        Command::CheckConfig { files } => {
            let mut ok = true;
            for file in &files {
                match vestibule::config::load_file(file) {
                    Ok(config) => {
                        for warning in config.warnings() {
                            eprintln!("{}: warning: {warning}", file.display());
                        }
                        let problems =
                            vestibule::directory::Directories::check_files(&config.tenants);
                        for (path, message) in &problems {
                            eprintln!("{}:-:-: {path}: {message}", file.display());
                        }
                        if problems.is_empty() {
                            println!("{}: ok", file.display());
                        } else {
                            ok = false;
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
