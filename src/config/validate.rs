//! Turns the raw YAML mirror into the validated model, collecting every error with its YAML
//! path instead of stopping at the first. Reads referenced files and environment variables,
//! writes nothing.

mod directory;
mod documents;
mod providers;
mod server;
mod tenants;

pub use directory::database_kind;

use super::location::{LocationIndex, Position};
use super::model::*;
use super::raw::*;
use super::secret;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// YAML path of the offending node, e.g. `tenants[0].upstream.address`.
    pub path: String,
    /// What is wrong, in words a reader can act on.
    pub message: String,
    /// Where the node (or its nearest existing parent) starts in the file.
    pub position: Option<Position>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{}:{}: ", p.line, p.column)?,
            None => write!(f, "-:-: ")?,
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Reads and validates a configuration file. Relative paths inside it are taken from the
/// working directory, the way the shipped configs are written.
pub fn load_file(path: &Path) -> Result<Config, Vec<ConfigError>> {
    parse_str(&read_source(path)?, Path::new("."))
}

fn read_source(path: &Path) -> Result<String, Vec<ConfigError>> {
    std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            path: String::new(),
            message: format!("cannot read {}: {e}", path.display()),
            position: None,
        }]
    })
}

/// Parses and validates configuration text.
pub fn parse_str(source: &str, base_dir: &Path) -> Result<Config, Vec<ConfigError>> {
    match check_str(source, base_dir, Secrets::Resolve)? {
        Checked {
            config: Some(config),
            ..
        } => Ok(config),
        Checked { config: None, .. } => {
            unreachable!("with every secret resolved, no error means a model")
        }
    }
}

/// Whether `check_str` must read every secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Read every `{env}`/`{file}` secret; one that cannot be read is an error.
    Resolve,
    /// A secret whose environment variable is not set or whose file does not exist is
    /// reported as not checked instead (a deployment file checked on a CI machine); its
    /// form (`env`/`file`/`value`, only one) is still checked, and so is everything else.
    SkipAbsent,
}

/// A configuration that passed validation.
#[derive(Debug)]
pub struct Checked {
    /// The model; `None` when secrets were skipped (it cannot be built without them).
    pub config: Option<Config>,
    /// YAML paths of the secrets that were not checked (absent on this machine).
    pub unchecked: Vec<String>,
}

/// `check_str` on a file.
pub fn check_file(path: &Path, secrets: Secrets) -> Result<Checked, Vec<ConfigError>> {
    check_str(&read_source(path)?, Path::new("."), secrets)
}

/// Parses and validates configuration text, every error with its path and position.
pub fn check_str(
    source: &str,
    base_dir: &Path,
    secrets: Secrets,
) -> Result<Checked, Vec<ConfigError>> {
    let raw: RawConfig = serde_norway::from_str(source).map_err(|e| vec![serde_error(&e)])?;
    let mut v = Validator {
        base_dir: base_dir.to_path_buf(),
        errors: Vec::new(),
        secrets,
        unchecked: Vec::new(),
    };
    let config = v.config(raw);
    if v.errors.is_empty() && (config.is_some() || !v.unchecked.is_empty()) {
        return Ok(Checked {
            config: if v.unchecked.is_empty() { config } else { None },
            unchecked: v.unchecked,
        });
    }
    let index = LocationIndex::build(source);
    let mut errors = v.errors;
    for e in &mut errors {
        e.position = index.locate(&e.path);
    }
    errors.sort_by_key(|e| e.position.map(|p| (p.line, p.column)));
    Err(errors)
}

fn serde_error(e: &serde_norway::Error) -> ConfigError {
    // serde_norway puts "path: message at line L column C" into one string; split off the
    // location so every error prints the same way.
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    let (path, message) = match message.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (p.to_owned(), m.to_owned()),
        _ => (String::new(), message),
    };
    ConfigError {
        path,
        message,
        position: e.location().map(|l| Position {
            line: l.line(),
            column: l.column(),
        }),
    }
}

struct Validator {
    base_dir: PathBuf,
    errors: Vec<ConfigError>,
    secrets: Secrets,
    /// Secrets skipped under `Secrets::SkipAbsent`.
    unchecked: Vec<String>,
}

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

impl Validator {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
            position: None,
        });
    }

    fn required<'a, T>(&mut self, value: &'a Option<T>, path: &str) -> Option<&'a T> {
        if value.is_none() {
            self.err(path, "is required");
        }
        value.as_ref()
    }

    fn duration(&mut self, value: &Option<String>, path: &str, default: Duration) -> Duration {
        match value {
            None => default,
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if d.is_zero() => {
                    self.err(path, "must be longer than zero");
                    default
                }
                Ok(d) => d,
                Err(e) => {
                    self.err(
                        path,
                        format!("`{text}` is not a duration like 30s, 5m or 8h ({e})"),
                    );
                    default
                }
            },
        }
    }

    fn secret(&mut self, value: &RawSecret, path: &str) -> Option<Vec<u8>> {
        match secret::resolve(value, &self.base_dir) {
            Ok(bytes) => Some(bytes),
            Err(_)
                if self.secrets == Secrets::SkipAbsent && secret::absent(value, &self.base_dir) =>
            {
                self.unchecked.push(path.to_owned());
                None
            }
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }

    fn existing_file(&mut self, value: &str, path: &str) -> PathBuf {
        let full = self.base_dir.join(value);
        if let Err(e) = std::fs::metadata(&full).and_then(|m| {
            if m.is_file() {
                Ok(())
            } else {
                Err(std::io::Error::other("not a regular file"))
            }
        }) {
            self.err(path, format!("cannot use {}: {e}", full.display()));
        }
        full
    }

    fn pem_certificates(&mut self, value: &str, path: &str) -> PathBuf {
        let full = self.existing_file(value, path);
        if let Ok(bytes) = std::fs::read(&full) {
            let parsed = x509_parser::pem::Pem::iter_from_buffer(&bytes)
                .map(|pem| {
                    pem.map_err(|e| e.to_string())
                        .and_then(|p| p.parse_x509().map(|_| ()).map_err(|e| e.to_string()))
                })
                .collect::<Result<Vec<()>, String>>();
            match parsed {
                Ok(certs) if certs.is_empty() => {
                    self.err(path, format!("{} holds no PEM certificate", full.display()))
                }
                Ok(_) => {}
                Err(e) => self.err(
                    path,
                    format!("{} is not a PEM certificate file: {e}", full.display()),
                ),
            }
        }
        full
    }

    fn networks(&mut self, values: &[String], path: &str) -> Vec<IpNet> {
        let mut nets = Vec::new();
        for (i, text) in values.iter().enumerate() {
            match text.parse::<IpNet>() {
                Ok(net) => nets.push(net.trunc()),
                Err(_) => match text.parse::<IpAddr>() {
                    Ok(ip) => nets.push(IpNet::from(ip)),
                    Err(_) => self.err(
                        format!("{path}[{i}]"),
                        format!("`{text}` is not an IP address or CIDR network"),
                    ),
                },
            }
        }
        nets
    }

    fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let listeners = self.listeners(&raw.listeners);
        let keys = self.keys(raw.keys.as_ref());
        let store = self.store(raw.store.as_ref());
        let session = self.session(&raw.session);
        let assertion = self.assertion(raw.assertion.as_ref());
        let headers = self.headers(&raw.headers);
        let proxy = self.proxy(&raw.proxy);
        let metrics = MetricsConfig {
            allow: match &raw.metrics.allow {
                Some(list) => self.networks(list, "metrics.allow"),
                None => vec![
                    "127.0.0.0/8".parse().expect("literal"),
                    "::1/128".parse().expect("literal"),
                ],
            },
        };
        let log = self.log(&raw.log);
        let all_loopback = listeners.iter().all(|l| l.address.ip().is_loopback());
        let providers = self.providers(&raw.providers, all_loopback);
        let document_providers = self.document_providers(&raw.document_providers, all_loopback);
        let declared: Vec<_> = raw
            .document_providers
            .iter()
            .filter_map(|p| {
                let name = p.name.clone()?;
                Some((name, documents::document_kind(p.kind.as_deref())))
            })
            .collect();
        let tenants = self.tenants(&raw.tenants, all_loopback, &proxy, &declared);
        self.sign_ins(&raw.tenants, &raw.providers);
        self.directory_issuers(&raw.tenants, &tenants, &providers);
        Some(Config {
            listeners,
            keys: keys?,
            store,
            session,
            assertion: assertion?,
            headers,
            proxy,
            metrics,
            log,
            providers,
            document_providers,
            tenants,
        })
    }

    fn url(&mut self, text: &Option<String>, path: &str, all_loopback: bool) -> Option<url::Url> {
        let text = self.required(text, path)?.clone();
        match url::Url::parse(&text) {
            Ok(u) if u.scheme() == "https" && u.host().is_some() => Some(u),
            // Plain HTTP only to this machine: identity provider traffic must be protected.
            Ok(u) if u.scheme() == "http" && is_loopback_url(&u) && all_loopback => Some(u),
            Ok(_) => {
                self.err(
                    path,
                    format!(
                        "`{text}` must be an https:// URL (http:// only for loopback test setups)"
                    ),
                );
                None
            }
            Err(e) => {
                self.err(path, format!("`{text}` is not a URL ({e})"));
                None
            }
        }
    }
}

fn is_loopback_url(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}
