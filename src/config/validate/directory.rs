//! `tenants[i].directory`: who may use a tenant's CRM.

use super::super::model::{DirectoryConfig, DirectorySource, Provider, ProviderKind, Tenant};
use super::super::raw::{RawDirectory, RawTenant};
use super::super::secret;
use super::Validator;
use std::time::Duration;

const MATCH_FIELDS: &str = "upn, email, subject, name_id, object_id or a claim name";

impl Validator {
    /// `has_sign_in`: the tenant offers sign-in, so it must say who may use it (`kind: none`
    /// admits everyone the provider verifies, and only when written down).
    pub(super) fn directory(
        &mut self,
        raw: Option<&RawDirectory>,
        path: &str,
        has_sign_in: bool,
    ) -> DirectoryConfig {
        let mut config = DirectoryConfig {
            source: DirectorySource::None,
            match_field: "email".into(),
            cache_ttl: Duration::from_secs(300),
            negative_cache_ttl: Duration::from_secs(30),
            cache_capacity: 10_000,
            recheck: Duration::from_secs(15 * 60),
            stale_grace: Duration::from_secs(60 * 60),
            timeout: Duration::from_secs(5),
        };
        let Some(raw) = raw else {
            if has_sign_in {
                self.err(
                    path,
                    "is required: say who may sign in (kind: sql or file for the CRM's users; kind: none admits everyone the provider verifies)",
                );
            }
            return config;
        };
        config.cache_ttl = self.duration(
            &raw.cache_ttl,
            &format!("{path}.cache_ttl"),
            config.cache_ttl,
        );
        config.negative_cache_ttl = self.duration(
            &raw.negative_cache_ttl,
            &format!("{path}.negative_cache_ttl"),
            config.negative_cache_ttl,
        );
        config.recheck = self.duration(&raw.recheck, &format!("{path}.recheck"), config.recheck);
        config.stale_grace = self.duration(
            &raw.stale_grace,
            &format!("{path}.stale_grace"),
            config.stale_grace,
        );
        config.timeout = self.duration(&raw.timeout, &format!("{path}.timeout"), config.timeout);
        if let Some(capacity) = raw.cache_capacity {
            if capacity == 0 {
                self.err(format!("{path}.cache_capacity"), "must be at least 1");
            }
            config.cache_capacity = capacity.max(1);
        }
        let kind = raw.kind.as_deref();
        let unused = |v: &mut Self, present: bool, field: &str| {
            if present {
                v.err(
                    format!("{path}.{field}"),
                    format!("is not used by kind: {}", kind.unwrap_or_default()),
                );
            }
        };
        match kind {
            Some("none") => {
                unused(self, raw.url.is_some(), "url");
                unused(self, raw.query.is_some(), "query");
                unused(self, raw.path.is_some(), "path");
                unused(self, raw.match_field.is_some(), "match");
            }
            Some("sql") => {
                unused(self, raw.path.is_some(), "path");
                config.match_field = self.match_field(raw, path);
                let url = self
                    .required(&raw.url, &format!("{path}.url"))
                    .and_then(|s| self.secret(s, &format!("{path}.url")))
                    .and_then(|bytes| String::from_utf8(secret::trim_text(&bytes).to_vec()).ok())
                    .unwrap_or_default();
                let url_ok = !url.is_empty() && database_kind(&url).is_some();
                if raw.url.is_some() && !url.is_empty() && !url_ok {
                    self.err(
                        format!("{path}.url"),
                        "must start with postgres://, mysql://, mariadb:// or sqlite:",
                    );
                }
                let query = self
                    .required(&raw.query, &format!("{path}.query"))
                    .cloned()
                    .unwrap_or_default();
                if raw.query.is_some() && url_ok {
                    if let Err(e) = check_query(&query, database_kind(&url).unwrap_or_default()) {
                        self.err(format!("{path}.query"), e);
                    }
                }
                config.source = DirectorySource::Sql { url, query };
            }
            Some("file") => {
                unused(self, raw.url.is_some(), "url");
                unused(self, raw.query.is_some(), "query");
                config.match_field = self.match_field(raw, path);
                // Its contents are checked when the directory is built (`check-config` does
                // that too), by the same parser that reloads it.
                if let Some(file) = self.required(&raw.path, &format!("{path}.path")) {
                    let full = self.base_dir.join(file);
                    if !full.is_file() {
                        self.err(
                            format!("{path}.path"),
                            format!("{} is not a readable file", full.display()),
                        );
                    }
                    config.source = DirectorySource::File { path: full };
                }
            }
            Some(other) => self.err(
                format!("{path}.kind"),
                format!("`{other}` is not a directory kind (sql, file or none)"),
            ),
            None => self.err(format!("{path}.kind"), "is required (sql, file or none)"),
        }
        config
    }

    /// A value that each accepted issuer's administrators choose freely (e-mail addresses,
    /// ADFS subjects, claims) names nobody reliably once a tenant accepts several WS-Federation
    /// issuers: another directory's administrator could give their user this CRM user's
    /// address. UPNs (their domain is one the issuer verified) and Azure AD object ids
    /// (assigned, never chosen) stay safe; OpenID e-mail is used only when verified.
    pub(super) fn directory_issuers(
        &mut self,
        raw: &[RawTenant],
        tenants: &[Tenant],
        providers: &[Provider],
    ) {
        for tenant in tenants {
            if matches!(tenant.directory.source, DirectorySource::None) {
                continue;
            }
            let field = tenant.directory.match_field.as_str();
            if matches!(field, "upn" | "object_id") {
                continue;
            }
            let mut issuers: Vec<&str> = tenant
                .sign_in
                .iter()
                .filter(|s| {
                    providers
                        .iter()
                        .any(|p| p.name == s.provider && matches!(p.kind, ProviderKind::WsFed(_)))
                })
                .flat_map(|s| s.allowed_issuers.iter().map(String::as_str))
                .collect();
            issuers.sort_unstable();
            issuers.dedup();
            if issuers.len() > 1 {
                let i = raw
                    .iter()
                    .position(|t| t.name.as_deref() == Some(tenant.name.as_str()))
                    .unwrap_or_default();
                self.err(
                    format!("tenants[{i}].directory.match"),
                    format!(
                        "`{field}` is chosen by each issuer's administrators, and this tenant accepts {} WS-Federation issuers: one of them could claim another's user. Match on upn or object_id, or accept one issuer",
                        issuers.len()
                    ),
                );
            }
        }
    }

    fn match_field(&mut self, raw: &RawDirectory, path: &str) -> String {
        match raw.match_field.as_deref() {
            None => {
                self.err(
                    format!("{path}.match"),
                    format!("is required: {MATCH_FIELDS}"),
                );
                String::new()
            }
            Some(m) if m.trim().is_empty() || m.trim() != m => {
                self.err(format!("{path}.match"), format!("give {MATCH_FIELDS}"));
                String::new()
            }
            Some(m) => m.to_owned(),
        }
    }
}

/// Which database a URL names, by its scheme (`mariadb://` is MySQL's protocol).
pub fn database_kind(url: &str) -> Option<&'static str> {
    let scheme = url.split_once(':')?.0.to_ascii_lowercase();
    match scheme.as_str() {
        "postgres" | "postgresql" => Some("postgres"),
        "mysql" | "mariadb" => Some("mysql"),
        "sqlite" => Some("sqlite"),
        _ => None,
    }
}

/// The query must be a SELECT taking the matched value as a parameter in the database's own
/// syntax (`$1` for PostgreSQL and SQLite, `?` for MySQL/MariaDB), and only that one.
fn check_query(query: &str, kind: &str) -> Result<(), String> {
    let first_word: String = query
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    if first_word != "select" && first_word != "with" {
        return Err("must be a SELECT (or WITH … SELECT) query".into());
    }
    match kind {
        "mysql" => {
            if !query.contains('?') {
                return Err("must bind the matched value as `?` (MySQL/MariaDB)".into());
            }
        }
        _ => {
            if !query.contains("$1") {
                return Err("must bind the matched value as `$1`".into());
            }
            if query.contains("$2") {
                return Err("may use one parameter only (`$1`, the matched value)".into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_query, database_kind};

    #[test]
    fn the_scheme_names_the_database() {
        assert_eq!(database_kind("postgres://u@h/db"), Some("postgres"));
        assert_eq!(database_kind("PostgreSQL://u@h/db"), Some("postgres"));
        assert_eq!(
            database_kind("mariadb://root@127.0.0.1:3306/crm"),
            Some("mysql")
        );
        assert_eq!(database_kind("sqlite:///var/lib/crm.db"), Some("sqlite"));
        assert_eq!(database_kind("odbc://x"), None);
        assert_eq!(database_kind("no scheme"), None);
    }

    #[test]
    fn the_query_takes_exactly_the_matched_value() {
        assert!(check_query(
            "SELECT id FROM u WHERE lower(email) = lower($1)",
            "postgres"
        )
        .is_ok());
        assert!(check_query("select id from u where email = ?", "mysql").is_ok());
        assert!(check_query(
            "WITH x AS (SELECT 1) SELECT id FROM u WHERE e = $1",
            "sqlite"
        )
        .is_ok());
        assert!(check_query("SELECT id FROM u WHERE email = 'x'", "postgres").is_err());
        assert!(check_query("SELECT id FROM u WHERE a = $1 AND b = $2", "postgres").is_err());
        assert!(check_query("DELETE FROM u WHERE email = $1", "postgres").is_err());
        assert!(check_query("SELECT id FROM u WHERE email = $1", "mysql").is_err());
    }
}
