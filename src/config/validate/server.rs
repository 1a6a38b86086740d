//! The gateway's own settings: `listeners`, `keys`, `store`, `session`, `assertion`,
//! `headers`, `proxy`, `log`.

use super::super::model::*;
use super::super::raw::*;
use super::super::secret;
use super::*;
use crate::crypto::{valid_key_id, KEY_LEN};
use base64::Engine;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

impl Validator {
    pub(super) fn listeners(&mut self, raw: &[RawListener]) -> Vec<Listener> {
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

    pub(super) fn keys(&mut self, raw: Option<&RawKeys>) -> Option<KeysConfig> {
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

    pub(super) fn store(&mut self, raw: Option<&RawStore>) -> StoreConfig {
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
                let defaults = crate::store::PgPoolSettings::default();
                let max_connections = pg.pool.max_connections.unwrap_or(defaults.max_connections);
                if max_connections < 2 {
                    self.err(
                        "store.postgres.pool.max_connections",
                        "give at least 2 (a document token refresh holds one connection while it asks the provider)",
                    );
                }
                StoreConfig::Postgres {
                    url: url.unwrap_or_default(),
                    pool: crate::store::PgPoolSettings {
                        max_connections,
                        acquire_timeout: self.duration(
                            &pg.pool.acquire_timeout,
                            "store.postgres.pool.acquire_timeout",
                            defaults.acquire_timeout,
                        ),
                    },
                    migrate: raw.migrate.unwrap_or(true),
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

    pub(super) fn session(&mut self, raw: &RawSession) -> SessionConfig {
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

    pub(super) fn assertion(&mut self, raw: Option<&RawAssertion>) -> Option<AssertionConfig> {
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

    pub(super) fn header_name(&mut self, text: &str, path: &str) -> String {
        let normal = text.to_ascii_lowercase().replace('_', "-");
        if normal.is_empty() || http::HeaderName::from_bytes(normal.as_bytes()).is_err() {
            self.err(path, format!("`{text}` is not a valid header name"));
        }
        normal
    }

    pub(super) fn headers(&mut self, raw: &RawHeaders) -> HeadersConfig {
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

    pub(super) fn proxy(&mut self, raw: &RawProxy) -> ProxyConfig {
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

    pub(super) fn log(&mut self, raw: &RawLog) -> LogConfig {
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
    fn sizes() {
        assert_eq!(parse_size("256KiB"), Some(256 * 1024));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size("0"), None);
    }
}
