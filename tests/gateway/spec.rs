//! Typed test configurations: providers, tenants, directories and the proxy settings tests
//! vary, serialised to the YAML the gateway reads. A misspelt field is a compile error here,
//! not a YAML fragment indented one space wrong.

use serde::Serialize;
use std::collections::BTreeMap;

/// A secret as the configuration names it (tests give values inline).
#[derive(Debug, Clone, Serialize)]
pub struct Secret {
    pub value: String,
}

impl Secret {
    pub fn value(v: impl Into<String>) -> Self {
        Self { value: v.into() }
    }
}

/// An identity provider.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Provider {
    WsFed(WsFed),
    Oidc(Oidc),
}

impl Provider {
    pub fn name(&self) -> &str {
        match self {
            Self::WsFed(w) => &w.name,
            Self::Oidc(o) => &o.name,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WsFed {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub passive_endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    pub realm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_max_stale: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Oidc {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub authorization_params: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo: Option<bool>,
}

/// One CRM installation.
#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub name: String,
    pub hosts: Vec<String>,
    pub upstream: Upstream,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub public: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sign_in: Vec<SignIn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<Directory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<Documents>,
}

/// An authorization server for document tokens.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentProvider {
    pub name: String,
    pub kind: String,
    pub authority: String,
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificate>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub authorization_params: BTreeMap<String, String>,
}

/// A certificate credential (`private_key_jwt`).
#[derive(Debug, Clone, Serialize)]
pub struct ClientCertificate {
    pub certificate: String,
    pub key: Secret,
}

/// A tenant's document tokens.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Documents {
    pub provider: String,
    pub paths: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_user: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_margin: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    pub name: String,
    pub scopes: Vec<String>,
}

impl Tenant {
    /// A tenant on `hosts` in front of `upstream`, admitting everyone the provider verifies.
    pub fn new(name: &str, hosts: &[&str], upstream: impl ToString) -> Self {
        Self {
            name: name.into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            upstream: Upstream::at(upstream),
            public: Vec::new(),
            api: Vec::new(),
            sign_in: Vec::new(),
            directory: Some(Directory::None),
            documents: None,
        }
    }

    /// Every path public (no sign-in).
    pub fn public(mut self, prefixes: &[&str]) -> Self {
        self.public = prefixes.iter().map(|p| p.to_string()).collect();
        self
    }

    pub fn sign_in(mut self, sign_in: SignIn) -> Self {
        self.sign_in.push(sign_in);
        self
    }

    pub fn upstream(mut self, upstream: Upstream) -> Self {
        self.upstream = upstream;
        self
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Upstream {
    pub address: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_timeout: Option<String>,
}

impl Upstream {
    pub fn at(address: impl ToString) -> Self {
        Self {
            address: address.to_string(),
            ..Self::default()
        }
    }
}

/// A provider enabled for a tenant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SignIn {
    pub provider: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_issuers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub azure_tenant_ids: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosted_domains: Vec<String>,
}

impl SignIn {
    pub fn provider(name: &str) -> Self {
        Self {
            provider: name.into(),
            ..Self::default()
        }
    }

    pub fn issuer(mut self, issuer: &str) -> Self {
        self.allowed_issuers.push(issuer.into());
        self
    }

    pub fn azure_tenant(mut self, id: &str) -> Self {
        self.azure_tenant_ids.push(id.into());
        self
    }
}

/// Who may use a tenant's CRM.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Directory {
    None,
    Sql {
        url: Secret,
        query: String,
        #[serde(rename = "match")]
        match_field: String,
        #[serde(flatten)]
        timing: DirectoryTiming,
    },
    File {
        path: String,
        #[serde(rename = "match")]
        match_field: String,
        #[serde(flatten)]
        timing: DirectoryTiming,
    },
}

/// A directory's cache and re-check settings (defaults when `None`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DirectoryTiming {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recheck: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_grace: Option<String>,
}

/// The `proxy:` settings tests vary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Proxy {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form_body_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_in_starts_per_minute: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_in_completions_per_minute: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
}

impl Proxy {
    pub fn is_empty(&self) -> bool {
        self.trusted_proxies.is_empty()
            && self.threads.is_none()
            && self.form_body_timeout.is_none()
            && self.sign_in_starts_per_minute.is_none()
            && self.sign_in_completions_per_minute.is_none()
            && self.read_timeout.is_none()
            && self.connect_timeout.is_none()
    }
}
