//! `providers` and each tenant's `sign_in` references to them.

use super::super::model::*;
use super::super::raw::*;
use super::super::secret;
use super::*;
use std::collections::HashSet;
use std::time::Duration;

impl Validator {
    pub(super) fn providers(&mut self, raw: &[RawProvider], all_loopback: bool) -> Vec<Provider> {
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

    pub(super) fn wsfed(
        &mut self,
        p: &RawProvider,
        path: &str,
        all_loopback: bool,
    ) -> Option<WsFedProvider> {
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
        let metadata_max_stale = self.duration(
            &p.metadata_max_stale,
            &format!("{path}.metadata_max_stale"),
            Duration::from_secs(7 * 24 * 3600),
        );
        if metadata_max_stale > Duration::from_secs(90 * 24 * 3600) {
            self.err(
                format!("{path}.metadata_max_stale"),
                "must not exceed 90d (Microsoft rolls its signing keys every few weeks)",
            );
        }
        Some(WsFedProvider {
            passive_endpoint: passive_endpoint?,
            metadata_url,
            metadata_signer,
            metadata_refresh,
            metadata_max_stale,
            certificates,
            realm,
            clock_skew,
            algorithms,
        })
    }

    pub(super) fn oidc(
        &mut self,
        p: &RawProvider,
        path: &str,
        all_loopback: bool,
    ) -> Option<OidcProvider> {
        for (set, key) in [
            (p.passive_endpoint.is_some(), "passive_endpoint"),
            (p.metadata_url.is_some(), "metadata_url"),
            (p.metadata_max_stale.is_some(), "metadata_max_stale"),
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
            client_certificate: None,
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

    pub(super) fn sign_ins(&mut self, raw: &[RawTenant], raw_providers: &[RawProvider]) {
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
}
