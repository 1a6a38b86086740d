//! The settings a running gateway cannot take over on a reload: they are bound once when the
//! process starts (listening sockets, the store's connections, pingora's threads, logging).
//! A reload that changes one is refused whole rather than applied in part, so the running
//! configuration is always exactly one file's.

use super::{Config, ConfigError, StoreConfig};

/// Every restart-only setting `next` changes, as errors with their YAML paths.
pub fn restart_only_changes(running: &Config, next: &Config) -> Vec<ConfigError> {
    let checks = [
        (
            "listeners",
            format!("{:?}", running.listeners) == format!("{:?}", next.listeners),
            "the listening sockets (and their certificates) are taken once at start",
        ),
        (
            "store",
            same_store(&running.store, &next.store),
            "the store's connections are opened once at start",
        ),
        (
            "proxy.threads",
            running.proxy.threads == next.proxy.threads,
            "the proxy's worker threads are started once",
        ),
        (
            "log",
            format!("{:?}", running.log) == format!("{:?}", next.log),
            "logging is set up once at start",
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, same, _)| !same)
        .map(|(path, _, why)| ConfigError {
            path: path.to_owned(),
            message: format!(
                "changed, but {why}: restart the gateway (or start the new one with `vestibule run --upgrade`) to apply it"
            ),
            position: None,
        })
        .collect()
}

fn same_store(a: &StoreConfig, b: &StoreConfig) -> bool {
    // Debug redacts the URL, so the URLs are compared on their own.
    let url = |s: &StoreConfig| match s {
        StoreConfig::Postgres { url, .. } => Some(url.clone()),
        StoreConfig::Sqlite { .. } => None,
    };
    format!("{a:?}") == format!("{b:?}") && url(a) == url(b)
}
