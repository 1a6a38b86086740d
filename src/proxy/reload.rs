//! Configuration reload (SIGHUP, `vestibule reload`): the file is read and validated again,
//! a whole new gateway is built from it over the same store, and it replaces the running one
//! in one step. Anything wrong — a validation error, a restart-only setting changed, an
//! upstream that does not resolve, an unreadable directory file — keeps the running
//! configuration, and every error is logged with its YAML path.

use super::service::{build, Shared};
use super::Live;
use crate::config::location::LocationIndex;
use crate::config::{parse_str, restart_only_changes, ConfigError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a reload did.
#[derive(Debug)]
pub enum Outcome {
    /// The new configuration serves every new request.
    Applied {
        /// Tenants in the new configuration.
        tenants: usize,
    },
    /// The running configuration is kept; each entry says why, with its YAML path.
    Refused(Vec<String>),
}

/// Reloads `path` on every SIGHUP for the life of the process.
pub fn reload_on_hangup(
    support: &tokio::runtime::Runtime,
    live: Live,
    shared: Shared,
    path: PathBuf,
) {
    use tokio::signal::unix::{signal, SignalKind};
    // Registered before the function returns, so a SIGHUP sent once the gateway listens is
    // never the default action (which would end the process).
    let hangups = support.block_on(async { signal(SignalKind::hangup()) });
    let mut hangups = match hangups {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGHUP: configuration reload unavailable");
            return;
        }
    };
    support.spawn(async move {
        while hangups.recv().await.is_some() {
            reload(&live, &shared, &path).await;
        }
    });
}

/// Reads `path` again and, if all of it is valid and can be built, serves it.
pub async fn reload(live: &Live, shared: &Shared, path: &Path) -> Outcome {
    let outcome = match prepare(live, shared, path).await {
        Ok(gateway) => {
            let tenants = gateway.config().tenants.len();
            for warning in gateway.config().warnings() {
                tracing::warn!("{warning}");
            }
            live.replace(gateway);
            Outcome::Applied { tenants }
        }
        Err(errors) => Outcome::Refused(errors),
    };
    match &outcome {
        Outcome::Applied { tenants } => {
            shared
                .metrics
                .config_reloads
                .with_label_values(&["applied"])
                .inc();
            tracing::info!(file = %path.display(), tenants, "configuration reloaded");
        }
        Outcome::Refused(errors) => {
            shared
                .metrics
                .config_reloads
                .with_label_values(&["refused"])
                .inc();
            for error in errors {
                tracing::error!(file = %path.display(), "configuration reload refused: {error}");
            }
            tracing::error!(
                file = %path.display(),
                errors = errors.len(),
                "configuration reload refused: the running configuration is kept"
            );
        }
    }
    outcome
}

async fn prepare(live: &Live, shared: &Shared, path: &Path) -> Result<super::Gateway, Vec<String>> {
    let source = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
    // Relative paths inside the file are taken from the working directory, as at start.
    let next = parse_str(&source, Path::new(".")).map_err(rendered)?;
    let running = live.current();
    let mut restart = restart_only_changes(running.config(), &next);
    if !restart.is_empty() {
        let index = LocationIndex::build(&source);
        for e in &mut restart {
            e.position = index.locate(&e.path);
        }
        return Err(rendered(restart));
    }
    drop(running);
    build(Arc::new(next), shared)
        .await
        .map_err(|e| vec![e.to_string()])
}

fn rendered(errors: Vec<ConfigError>) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}
