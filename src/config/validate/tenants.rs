//! `tenants`: names, host names, upstreams, path prefixes (the directory is `directory.rs`).

use super::super::model::*;
use super::super::raw::*;
use super::*;
use std::collections::{HashMap, HashSet};

impl Validator {
    pub(super) fn tenants(
        &mut self,
        raw: &[RawTenant],
        all_loopback: bool,
        proxy: &ProxyConfig,
        document_providers: &[(String, Option<DocumentProviderKind>)],
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
            let documents = self.documents(
                t.documents.as_ref(),
                &format!("{path}.documents"),
                document_providers,
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
                    documents,
                });
            }
        }
        out
    }

    pub(super) fn prefixes(&mut self, raw: &[String], path: &str) -> Vec<String> {
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
    pub(super) fn upstream(
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
}
