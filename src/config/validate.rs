//! Turns the raw YAML mirror into the validated model, collecting every error with its YAML
//! path instead of stopping at the first. Reads referenced files and environment variables,
//! writes nothing.

mod directory;

pub use directory::database_kind;

use super::location::{LocationIndex, Position};
use super::model::*;
use super::raw::*;
use super::secret;
use crate::crypto::{valid_key_id, KEY_LEN};
use base64::Engine;
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
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
    let source = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            path: String::new(),
            message: format!("cannot read {}: {e}", path.display()),
            position: None,
        }]
    })?;
    parse_str(&source, Path::new("."))
}

/// Parses and validates configuration text.
pub fn parse_str(source: &str, base_dir: &Path) -> Result<Config, Vec<ConfigError>> {
    let raw: RawConfig = serde_norway::from_str(source).map_err(|e| vec![serde_error(&e)])?;
    let mut v = Validator {
        base_dir: base_dir.to_path_buf(),
        errors: Vec::new(),
    };
    let config = v.config(raw);
    if v.errors.is_empty() {
        if let Some(config) = config {
            return Ok(config);
        }
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
        let tenants = self.tenants(&raw.tenants, all_loopback, &proxy);
        self.sign_ins(&raw.tenants, &raw.providers);
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

    fn providers(&mut self, raw: &[RawProvider], all_loopback: bool) -> Vec<Provider> {
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for (i, p) in raw.iter().enumerate() {
            let path = format!("providers[{i}]");
            let Some(name) = self.required(&p.name, &format!("{path}.name")).cloned() else {
                continue;
            };
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                self.err(
                    format!("{path}.name"),
                    "a provider name is letters, digits, `-` and `_`",
                );
            } else if !names.insert(name.clone()) {
                self.err(
                    format!("{path}.name"),
                    format!("provider `{name}` is defined twice"),
                );
            }
            match p.kind.as_deref() {
                Some("wsfed") => {
                    if let Some(kind) = self.wsfed(p, &path, all_loopback) {
                        out.push(Provider {
                            display_name: p.display_name.clone().unwrap_or_else(|| name.clone()),
                            name,
                            kind: ProviderKind::WsFed(kind),
                        });
                    }
                }
                Some("oidc") => {
                    if let Some(kind) = self.oidc(p, &path, all_loopback) {
                        out.push(Provider {
                            display_name: p.display_name.clone().unwrap_or_else(|| name.clone()),
                            name,
                            kind: ProviderKind::Oidc(kind),
                        });
                    }
                }
                Some(other) => self.err(
                    format!("{path}.kind"),
                    format!("`{other}` is not a provider kind this version supports (wsfed, oidc)"),
                ),
                None => self.err(format!("{path}.kind"), "is required (wsfed or oidc)"),
            }
        }
        out
    }

    fn wsfed(&mut self, p: &RawProvider, path: &str, all_loopback: bool) -> Option<WsFedProvider> {
        use vestibule_xmlsig::Algorithm as SignatureAlgorithm;
        let passive_endpoint = self.url(
            &p.passive_endpoint,
            &format!("{path}.passive_endpoint"),
            all_loopback,
        );
        let metadata_url = p.metadata_url.as_ref().and_then(|_| {
            self.url(
                &p.metadata_url,
                &format!("{path}.metadata_url"),
                all_loopback,
            )
        });
        let read_certs = |v: &mut Self, file: &str, at: String| -> Vec<Vec<u8>> {
            let full = v.existing_file(file, &at);
            match std::fs::read(&full)
                .map_err(|e| e.to_string())
                .and_then(|pem| crate::certificates::from_pem(&pem))
            {
                Ok(certs) => certs,
                Err(e) => {
                    v.err(at, format!("{}: {e}", full.display()));
                    Vec::new()
                }
            }
        };
        let metadata_signer = p.metadata_signing_certificate.as_ref().and_then(|f| {
            read_certs(self, f, format!("{path}.metadata_signing_certificate"))
                .into_iter()
                .next()
        });
        let mut certificates = Vec::new();
        for (j, f) in p.certificates.iter().enumerate() {
            certificates.extend(read_certs(self, f, format!("{path}.certificates[{j}]")));
        }
        if p.metadata_url.is_none() && p.certificates.is_empty() {
            self.err(path.to_owned(), "give metadata_url, certificates, or both: tokens must be checked against trusted certificates");
        }
        let realm = self
            .required(&p.realm, &format!("{path}.realm"))
            .cloned()
            .unwrap_or_default();
        if p.realm.is_some() && realm.trim().is_empty() {
            self.err(format!("{path}.realm"), "must not be empty");
        }
        let algorithms = match &p.signature_algorithms {
            None => SignatureAlgorithm::defaults(),
            Some(names) => names
                .iter()
                .enumerate()
                .filter_map(|(j, n)| {
                    let alg = SignatureAlgorithm::from_name(n);
                    if alg.is_none() {
                        self.err(format!("{path}.signature_algorithms[{j}]"), format!("`{n}` is not one of rsa-sha256, rsa-sha384, rsa-sha512, ecdsa-sha256, ecdsa-sha384, rsa-sha1"));
                    }
                    alg
                })
                .collect(),
        };
        let mut algorithms = algorithms;
        if algorithms.contains(&SignatureAlgorithm::RsaSha1) && !p.dangerous_allow_sha1 {
            self.err(
                format!("{path}.signature_algorithms"),
                "rsa-sha1 needs dangerous_allow_sha1: true",
            );
        }
        if p.dangerous_allow_sha1 {
            if all_loopback {
                if !algorithms.contains(&SignatureAlgorithm::RsaSha1) {
                    algorithms.push(SignatureAlgorithm::RsaSha1);
                }
            } else {
                self.err(
                    format!("{path}.dangerous_allow_sha1"),
                    "is refused while any listener is reachable beyond loopback",
                );
            }
        }
        if algorithms.is_empty() {
            self.err(
                format!("{path}.signature_algorithms"),
                "give at least one algorithm",
            );
        }
        let clock_skew = self.duration(
            &p.clock_skew,
            &format!("{path}.clock_skew"),
            Duration::from_secs(300),
        );
        if clock_skew > Duration::from_secs(3600) {
            self.err(format!("{path}.clock_skew"), "must not exceed 1h");
        }
        let metadata_refresh = self.duration(
            &p.metadata_refresh,
            &format!("{path}.metadata_refresh"),
            Duration::from_secs(24 * 3600),
        );
        if metadata_refresh < Duration::from_secs(60) {
            self.err(format!("{path}.metadata_refresh"), "must be at least 1m");
        }
        Some(WsFedProvider {
            passive_endpoint: passive_endpoint?,
            metadata_url,
            metadata_signer,
            metadata_refresh,
            certificates,
            realm,
            clock_skew,
            algorithms,
        })
    }

    fn oidc(&mut self, p: &RawProvider, path: &str, all_loopback: bool) -> Option<OidcProvider> {
        for (set, key) in [
            (p.passive_endpoint.is_some(), "passive_endpoint"),
            (p.metadata_url.is_some(), "metadata_url"),
            (p.realm.is_some(), "realm"),
            (!p.certificates.is_empty(), "certificates"),
        ] {
            if set {
                self.err(
                    format!("{path}.{key}"),
                    "is a WS-Federation setting; this provider is oidc",
                );
            }
        }
        let issuer = self.url(&p.issuer, &format!("{path}.issuer"), all_loopback);
        let client_id = self
            .required(&p.client_id, &format!("{path}.client_id"))
            .cloned();
        let client_secret = self
            .required(&p.client_secret, &format!("{path}.client_secret"))
            .and_then(|s| self.secret(s, &format!("{path}.client_secret")))
            .and_then(|b| String::from_utf8(secret::trim_text(&b).to_vec()).ok());
        let mut scopes = p
            .scopes
            .clone()
            .unwrap_or_else(|| vec!["email".into(), "profile".into()]);
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        for (j, scope) in scopes.iter().enumerate() {
            if scope.is_empty() || scope.bytes().any(|b| b <= b' ' || b == b'"' || b == b'\\') {
                self.err(
                    format!("{path}.scopes[{j}]"),
                    format!("`{scope}` is not a scope token"),
                );
            }
        }
        const RESERVED: [&str; 8] = [
            "client_id",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
        ];
        for key in p.authorization_params.keys() {
            if RESERVED.contains(&key.as_str()) {
                self.err(
                    format!("{path}.authorization_params.{key}"),
                    "is set by Vestibule itself",
                );
            }
        }
        const ALGS: [&str; 9] = [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
        ];
        let id_token_algorithms = p.id_token_algorithms.clone().unwrap_or_else(|| {
            vec![
                "RS256".into(),
                "ES256".into(),
                "PS256".into(),
                "EdDSA".into(),
            ]
        });
        for (j, alg) in id_token_algorithms.iter().enumerate() {
            if !ALGS.contains(&alg.as_str()) {
                self.err(
                    format!("{path}.id_token_algorithms[{j}]"),
                    format!("`{alg}` is not an allowed ID token algorithm (public-key algorithms only: {})", ALGS.join(", ")),
                );
            }
        }
        let clock_skew = self.duration(
            &p.clock_skew,
            &format!("{path}.clock_skew"),
            Duration::from_secs(300),
        );
        Some(OidcProvider {
            issuer: issuer?,
            client_id: client_id?,
            client_secret: client_secret?,
            scopes,
            authorization_params: p
                .authorization_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            require_verified_email: p.require_verified_email.unwrap_or(true),
            userinfo: p.userinfo.unwrap_or(true),
            user_claim: p.user_claim.clone().unwrap_or_else(|| "email".into()),
            groups_claim: p.groups_claim.clone(),
            id_token_algorithms,
            clock_skew,
        })
    }

    fn sign_ins(&mut self, raw: &[RawTenant], raw_providers: &[RawProvider]) {
        let providers: Vec<&str> = raw_providers
            .iter()
            .filter_map(|p| p.name.as_deref())
            .collect();
        for (i, t) in raw.iter().enumerate() {
            let mut seen = HashSet::new();
            for (j, s) in t.sign_in.iter().enumerate() {
                let path = format!("tenants[{i}].sign_in[{j}]");
                let Some(name) = self.required(&s.provider, &format!("{path}.provider")) else {
                    continue;
                };
                if !providers.contains(&name.as_str()) {
                    self.err(
                        format!("{path}.provider"),
                        format!("`{name}` is not a provider in providers"),
                    );
                }
                if !seen.insert(name.clone()) {
                    self.err(
                        format!("{path}.provider"),
                        format!("`{name}` is listed twice"),
                    );
                }
                let kind = raw_providers
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .and_then(|p| p.kind.as_deref());
                if kind == Some("wsfed")
                    && s.allowed_issuers.is_empty()
                    && s.azure_tenant_ids.is_empty()
                {
                    self.err(
                        format!("{path}.allowed_issuers"),
                        "give the issuers (or azure_tenant_ids) this tenant accepts: without them any customer of the provider could sign in",
                    );
                }
                for (k, id) in s.azure_tenant_ids.iter().enumerate() {
                    if id.len() != 36 || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
                        self.err(
                            format!("{path}.azure_tenant_ids[{k}]"),
                            format!("`{id}` is not a tenant id (a GUID)"),
                        );
                    }
                }
            }
        }
    }

    fn listeners(&mut self, raw: &[RawListener]) -> Vec<Listener> {
        if raw.is_empty() {
            self.err("listeners", "give at least one listener");
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, l) in raw.iter().enumerate() {
            let path = format!("listeners[{i}]");
            let Some(text) = self.required(&l.address, &format!("{path}.address")) else {
                continue;
            };
            let address = match text.parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) => {
                    self.err(
                        format!("{path}.address"),
                        format!("`{text}` is not an ip:port address such as 127.0.0.1:8080"),
                    );
                    continue;
                }
            };
            if !seen.insert(address) {
                self.err(
                    format!("{path}.address"),
                    format!("{address} is listed twice"),
                );
            }
            let tls = l.tls.as_ref().and_then(|t| {
                let cert = self.required(&t.cert, &format!("{path}.tls.cert"))?;
                let cert = self.pem_certificates(cert, &format!("{path}.tls.cert"));
                let key = self.required(&t.key, &format!("{path}.tls.key"))?;
                let key = self.existing_file(key, &format!("{path}.tls.key"));
                Some(ListenerTls { cert, key })
            });
            out.push(Listener { address, tls });
        }
        out
    }

    fn keys(&mut self, raw: Option<&RawKeys>) -> Option<KeysConfig> {
        let Some(raw) = raw else {
            self.err(
                "keys",
                "is required: the AES-256-GCM key ring (see `vestibule keygen`)",
            );
            return None;
        };
        let active = self.required(&raw.active, "keys.active").cloned();
        if raw.ring.is_empty() {
            self.err("keys.ring", "give at least one key");
        }
        let mut ring = Vec::new();
        for (id, source) in &raw.ring {
            let path = format!("keys.ring.{id}");
            if !valid_key_id(id) {
                self.err(
                    &path,
                    "key ids are 1-32 characters of letters, digits, `-`, `_` and `.`",
                );
                continue;
            }
            let Some(bytes) = self.secret(source, &path) else {
                continue;
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(secret::trim_text(&bytes))
                .ok()
                .and_then(|k| <[u8; KEY_LEN]>::try_from(k.as_slice()).ok());
            match decoded {
                Some(key) => ring.push((id.clone(), key)),
                None => self.err(
                    &path,
                    "is not a base64-encoded 256-bit key (generate one with `vestibule keygen`)",
                ),
            }
        }
        let active = active?;
        if !raw.ring.contains_key(&active) {
            self.err(
                "keys.active",
                format!("`{active}` is not a key in keys.ring"),
            );
            return None;
        }
        (ring.len() == raw.ring.len()).then_some(KeysConfig { active, ring })
    }

    fn store(&mut self, raw: Option<&RawStore>) -> StoreConfig {
        let default = StoreConfig::Sqlite {
            path: self.base_dir.join("data/vestibule.db"),
        };
        let Some(raw) = raw else {
            return default;
        };
        match (&raw.sqlite, &raw.postgres) {
            (Some(path), None) => {
                if path.trim().is_empty() {
                    self.err("store.sqlite", "give the database file path");
                }
                StoreConfig::Sqlite {
                    path: self.base_dir.join(path),
                }
            }
            (None, Some(pg)) => {
                let url = self
                    .required(&pg.url, "store.postgres.url")
                    .and_then(|u| self.secret(u, "store.postgres.url"))
                    .and_then(|b| {
                        let text = String::from_utf8(secret::trim_text(&b).to_vec()).ok();
                        if text.is_none() {
                            self.err("store.postgres.url", "is not UTF-8");
                        }
                        text
                    });
                if let Some(u) = &url {
                    if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                        self.err("store.postgres.url", "must start with postgres://");
                    }
                }
                StoreConfig::Postgres {
                    url: url.unwrap_or_default(),
                    max_connections: pg.max_connections.unwrap_or(10).max(1),
                }
            }
            (Some(_), Some(_)) => {
                self.err("store", "give either sqlite or postgres, not both");
                default
            }
            (None, None) => {
                self.err("store", "give sqlite or postgres");
                default
            }
        }
    }

    fn session(&mut self, raw: &RawSession) -> SessionConfig {
        let cookie = raw.cookie.clone().unwrap_or_else(|| "vestibule".into());
        if cookie.is_empty()
            || !cookie
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            self.err(
                "session.cookie",
                "a cookie name is letters, digits, `-`, `_` and `.`",
            );
        }
        let idle = self.duration(&raw.idle, "session.idle", Duration::from_secs(8 * 3600));
        let absolute = self.duration(
            &raw.absolute,
            "session.absolute",
            Duration::from_secs(24 * 3600),
        );
        if idle > absolute {
            self.err("session.idle", "must not be longer than session.absolute");
        }
        let cache_ttl = self.duration(&raw.cache_ttl, "session.cache_ttl", Duration::from_secs(30));
        let cache_capacity = raw.cache_capacity.unwrap_or(200_000);
        if cache_capacity == 0 {
            self.err("session.cache_capacity", "must be at least 1");
        }
        SessionConfig {
            cookie,
            idle,
            absolute,
            cache_ttl,
            cache_capacity,
        }
    }

    fn assertion(&mut self, raw: Option<&RawAssertion>) -> Option<AssertionConfig> {
        let Some(raw) = raw else {
            self.err(
                "assertion",
                "is required: the key that signs the upstream JWT",
            );
            return None;
        };
        let lifetime = self.duration(
            &raw.lifetime,
            "assertion.lifetime",
            Duration::from_secs(300),
        );
        if lifetime < Duration::from_secs(60) {
            self.err(
                "assertion.lifetime",
                "must be at least 1m (tokens are reused until shortly before expiry)",
            );
        }
        let audience = self.required(&raw.audience, "assertion.audience").cloned();
        if audience.as_deref() == Some("") {
            self.err("assertion.audience", "must not be empty");
        }
        let key_pem = self
            .required(&raw.key, "assertion.key")
            .and_then(|k| self.secret(k, "assertion.key"));
        let algorithm = key_pem.as_ref().and_then(|pem| {
            if jsonwebtoken::EncodingKey::from_ec_pem(pem).is_ok() {
                Some(jsonwebtoken::Algorithm::ES256)
            } else if jsonwebtoken::EncodingKey::from_ed_pem(pem).is_ok() {
                Some(jsonwebtoken::Algorithm::EdDSA)
            } else {
                self.err(
                    "assertion.key",
                    "is not a PKCS#8 PEM private key for P-256 (ES256) or Ed25519 (EdDSA)",
                );
                None
            }
        });
        let kid = raw.kid.clone().unwrap_or_else(|| "vestibule-1".into());
        if !valid_key_id(&kid) {
            self.err(
                "assertion.kid",
                "key ids are 1-32 characters of letters, digits, `-`, `_` and `.`",
            );
        }
        Some(AssertionConfig {
            key_pem: key_pem?,
            algorithm: algorithm?,
            kid,
            issuer: raw.issuer.clone().unwrap_or_else(|| "vestibule".into()),
            audience: audience?,
            lifetime,
        })
    }

    fn header_name(&mut self, text: &str, path: &str) -> String {
        let normal = text.to_ascii_lowercase().replace('_', "-");
        if normal.is_empty() || http::HeaderName::from_bytes(normal.as_bytes()).is_err() {
            self.err(path, format!("`{text}` is not a valid header name"));
        }
        normal
    }

    fn headers(&mut self, raw: &RawHeaders) -> HeadersConfig {
        let prefix = match &raw.prefix {
            Some(p) => self.header_name(p, "headers.prefix"),
            None => "x-vestibule-".into(),
        };
        if prefix.len() < 3 {
            self.err(
                "headers.prefix",
                "is too short to own a header namespace safely",
            );
        }
        let strip = raw
            .strip
            .iter()
            .enumerate()
            .map(|(i, h)| self.header_name(h, &format!("headers.strip[{i}]")))
            .collect();
        HeadersConfig { prefix, strip }
    }

    fn proxy(&mut self, raw: &RawProxy) -> ProxyConfig {
        let trusted_proxies = self.networks(&raw.trusted_proxies, "proxy.trusted_proxies");
        let threads = raw
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        if threads == 0 || threads > 256 {
            self.err("proxy.threads", "must be between 1 and 256");
        }
        let max_form_body = match &raw.max_form_body {
            None => 256 * 1024,
            Some(text) => parse_size(text).unwrap_or_else(|| {
                self.err(
                    "proxy.max_form_body",
                    format!("`{text}` is not a size like 256KiB"),
                );
                256 * 1024
            }),
        };
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let sign_in_workers = raw.sign_in_workers.unwrap_or(cpus);
        if sign_in_workers == 0 || sign_in_workers > 256 {
            self.err("proxy.sign_in_workers", "must be between 1 and 256");
        }
        ProxyConfig {
            trusted_proxies,
            threads: threads.clamp(1, 256),
            max_form_body,
            form_body_timeout: self.duration(
                &raw.form_body_timeout,
                "proxy.form_body_timeout",
                Duration::from_secs(10),
            ),
            sign_in_workers: sign_in_workers.clamp(1, 256),
            sign_in_queue: match raw.sign_in_queue {
                Some(q) if q == 0 || q > 100_000 => {
                    self.err("proxy.sign_in_queue", "must be between 1 and 100000");
                    256
                }
                Some(q) => q,
                None => 256,
            },
            sign_in_starts_per_minute: raw.sign_in_starts_per_minute.unwrap_or(600),
            sign_in_completions_per_minute: raw.sign_in_completions_per_minute.unwrap_or(300),
            connect_timeout: self.duration(
                &raw.connect_timeout,
                "proxy.connect_timeout",
                DEFAULT_CONNECT_TIMEOUT,
            ),
            read_timeout: self.duration(
                &raw.read_timeout,
                "proxy.read_timeout",
                DEFAULT_READ_TIMEOUT,
            ),
        }
    }

    fn log(&mut self, raw: &RawLog) -> LogConfig {
        let json = match raw.format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                self.err("log.format", format!("`{other}` is not one of text, json"));
                false
            }
        };
        let level = raw.level.clone().unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            self.err(
                "log.level",
                format!("`{level}` is not a log filter such as info or vestibule=debug"),
            );
        }
        LogConfig { json, level }
    }

    fn tenants(
        &mut self,
        raw: &[RawTenant],
        all_loopback: bool,
        proxy: &ProxyConfig,
    ) -> Vec<Tenant> {
        if raw.is_empty() {
            self.err("tenants", "give at least one tenant");
        }
        let mut names = HashSet::new();
        let mut host_owner: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, t) in raw.iter().enumerate() {
            let path = format!("tenants[{i}]");
            let name = self
                .required(&t.name, &format!("{path}.name"))
                .cloned()
                .unwrap_or_default();
            if t.name.is_some() {
                if name.is_empty()
                    || name.len() > 64
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                {
                    self.err(
                        format!("{path}.name"),
                        "a tenant name is 1-64 letters, digits, `-`, `_` and `.`",
                    );
                } else if !names.insert(name.clone()) {
                    self.err(
                        format!("{path}.name"),
                        format!("tenant `{name}` is defined twice"),
                    );
                }
            }
            if t.hosts.is_empty() {
                self.err(format!("{path}.hosts"), "give at least one host name");
            }
            let mut hosts = Vec::new();
            for (j, h) in t.hosts.iter().enumerate() {
                let hpath = format!("{path}.hosts[{j}]");
                let host = h.to_ascii_lowercase();
                if !valid_host(&host) {
                    self.err(
                        &hpath,
                        format!("`{h}` is not a host name (no scheme, port or path)"),
                    );
                    continue;
                }
                if let Some(owner) = host_owner.insert(host.clone(), i) {
                    self.err(
                        &hpath,
                        format!("`{host}` is already routed to tenants[{owner}]"),
                    );
                }
                hosts.push(host);
            }
            let upstream = self.upstream(
                t.upstream.as_ref(),
                &format!("{path}.upstream"),
                all_loopback,
                proxy,
            );
            let public = self.prefixes(&t.public, &format!("{path}.public"));
            let api = self.prefixes(&t.api, &format!("{path}.api"));
            let sign_in = t
                .sign_in
                .iter()
                .map(|s| SignIn {
                    provider: s.provider.clone().unwrap_or_default(),
                    allowed_issuers: s
                        .allowed_issuers
                        .iter()
                        .cloned()
                        .chain(s.azure_tenant_ids.iter().map(|id| {
                            format!("https://sts.windows.net/{}/", id.to_ascii_lowercase())
                        }))
                        .collect(),
                    hosted_domains: s
                        .hosted_domains
                        .iter()
                        .map(|d| d.to_ascii_lowercase())
                        .collect(),
                })
                .collect();
            let directory = self.directory(
                t.directory.as_ref(),
                &format!("{path}.directory"),
                !t.sign_in.is_empty(),
            );
            if let Some(upstream) = upstream {
                out.push(Tenant {
                    name,
                    hosts,
                    upstream,
                    public,
                    api,
                    sign_in,
                    directory,
                });
            }
        }
        out
    }

    fn prefixes(&mut self, raw: &[String], path: &str) -> Vec<String> {
        for (i, p) in raw.iter().enumerate() {
            if !p.starts_with('/')
                || p.starts_with("/_vestibule")
                || p.bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
                || p.split('/').any(|seg| seg == "..")
            {
                self.err(
                    format!("{path}[{i}]"),
                    format!("`{p}` is not a path prefix (starts with /, no spaces, no .., not under /_vestibule)"),
                );
            }
        }
        raw.to_vec()
    }

    /// A tenant's upstream; its timeouts default to `proxy.connect_timeout`/`read_timeout`.
    fn upstream(
        &mut self,
        raw: Option<&RawUpstream>,
        path: &str,
        all_loopback: bool,
        proxy: &ProxyConfig,
    ) -> Option<Upstream> {
        let raw = self.required(&raw, path).copied()?;
        let address = self
            .required(&raw.address, &format!("{path}.address"))?
            .clone();
        let host = match split_host_port(&address) {
            Some((host, _)) => host,
            None => {
                self.err(
                    format!("{path}.address"),
                    format!(
                        "`{address}` is not host:port (e.g. 127.0.0.1:9000 or crm.internal:443)"
                    ),
                );
                return None;
            }
        };
        let sni = raw
            .sni
            .clone()
            .unwrap_or_else(|| host.trim_matches(['[', ']']).to_owned());
        if raw.sni.is_some() && !raw.tls {
            self.err(format!("{path}.sni"), "only applies when tls is true");
        }
        let ca = raw
            .ca
            .as_ref()
            .map(|c| self.pem_certificates(c, &format!("{path}.ca")));
        if raw.dangerous_skip_verify && !all_loopback {
            self.err(
                format!("{path}.dangerous_skip_verify"),
                "is refused while any listener is reachable beyond loopback",
            );
        }
        Some(Upstream {
            address,
            tls: raw.tls,
            sni,
            ca,
            verify: !raw.dangerous_skip_verify,
            connect_timeout: self.duration(
                &raw.connect_timeout,
                &format!("{path}.connect_timeout"),
                proxy.connect_timeout,
            ),
            read_timeout: self.duration(
                &raw.read_timeout,
                &format!("{path}.read_timeout"),
                proxy.read_timeout,
            ),
        })
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

/// `host:port` with a non-empty host and a non-zero port; IPv6 hosts in brackets.
fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let plain = host.trim_start_matches('[').trim_end_matches(']');
    let ok = if host.starts_with('[') {
        plain.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        valid_host(&host.to_ascii_lowercase())
    };
    ok.then_some((host, port))
}

/// A DNS name or IPv4 literal, lower case, without port.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1024,
        "MiB" | "M" | "MB" => 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult).filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_addresses() {
        assert!(valid_host("crm.contoso.example"));
        assert!(valid_host("127.0.0.1"));
        assert!(!valid_host("crm.contoso.example:443"));
        assert!(!valid_host("https://x"));
        assert!(!valid_host("-bad.example"));
        assert_eq!(split_host_port("127.0.0.1:9000"), Some(("127.0.0.1", 9000)));
        assert_eq!(split_host_port("[::1]:443"), Some(("[::1]", 443)));
        assert_eq!(split_host_port("crm:0"), None);
        assert_eq!(split_host_port("crm"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256KiB"), Some(256 * 1024));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size("0"), None);
    }
}
