//! `document_providers` and `tenants[].documents`: where document tokens come from and which
//! requests carry them.

use super::super::model::{DocumentProvider, DocumentProviderKind, DocumentsConfig};

/// A document provider kind by its name in the configuration.
pub(super) fn document_kind(name: Option<&str>) -> Option<DocumentProviderKind> {
    match name {
        Some("microsoft") => Some(DocumentProviderKind::Microsoft),
        Some("google") => Some(DocumentProviderKind::Google),
        _ => None,
    }
}
use super::super::raw::{RawDocumentProvider, RawDocuments};
use super::super::secret;
use super::Validator;
use crate::client_credential::{CertificateCredential, ClientCredential};
use std::collections::HashSet;
use std::time::Duration;

impl Validator {
    pub(super) fn document_providers(
        &mut self,
        raw: &[RawDocumentProvider],
        all_loopback: bool,
    ) -> Vec<DocumentProvider> {
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for (i, p) in raw.iter().enumerate() {
            let path = format!("document_providers[{i}]");
            let name = self.required(&p.name, &format!("{path}.name")).cloned();
            if let Some(n) = &name {
                if !names.insert(n.clone()) {
                    self.err(format!("{path}.name"), format!("`{n}` is defined twice"));
                }
            }
            let kind = document_kind(p.kind.as_deref());
            match (p.kind.as_deref(), kind) {
                (None, _) => self.err(format!("{path}.kind"), "is required (microsoft or google)"),
                (Some(other), None) => self.err(
                    format!("{path}.kind"),
                    format!("`{other}` is not a document provider kind (microsoft or google)"),
                ),
                _ => {}
            }
            let authority = self.url(&p.authority, &format!("{path}.authority"), all_loopback);
            let client_id = self
                .required(&p.client_id, &format!("{path}.client_id"))
                .cloned();
            let credential = self.client_credential(p, &path);
            if let (Some(name), Some(kind), Some(authority), Some(client_id), Some(credential)) =
                (name, kind, authority, client_id, credential)
            {
                for k in p.authorization_params.keys() {
                    if matches!(
                        k.as_str(),
                        "state"
                            | "nonce"
                            | "code_challenge"
                            | "code_challenge_method"
                            | "redirect_uri"
                            | "client_id"
                            | "response_type"
                            | "scope"
                    ) {
                        self.err(
                            format!("{path}.authorization_params.{k}"),
                            "is set by Vestibule itself",
                        );
                    }
                }
                out.push(DocumentProvider {
                    name,
                    kind,
                    authority,
                    client_id,
                    credential,
                    authorization_params: p
                        .authorization_params
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                });
            }
        }
        out
    }

    /// A document provider's client secret or certificate credential: exactly one.
    fn client_credential(
        &mut self,
        p: &RawDocumentProvider,
        path: &str,
    ) -> Option<ClientCredential> {
        match (&p.client_secret, &p.client_certificate) {
            (None, None) => {
                self.err(
                    format!("{path}.client_secret"),
                    "is required (or client_certificate, for a certificate credential)",
                );
                None
            }
            (Some(_), Some(_)) => {
                self.err(
                    format!("{path}.client_certificate"),
                    "give client_secret or client_certificate, not both",
                );
                None
            }
            (Some(s), None) => {
                let bytes = self.secret(s, &format!("{path}.client_secret"))?;
                match String::from_utf8(secret::trim_text(&bytes).to_vec()) {
                    Ok(text) => Some(ClientCredential::Secret(text)),
                    Err(_) => {
                        self.err(format!("{path}.client_secret"), "is not UTF-8 text");
                        None
                    }
                }
            }
            (None, Some(c)) => {
                let cpath = format!("{path}.client_certificate");
                let certificate = self
                    .required(&c.certificate, &format!("{cpath}.certificate"))
                    .cloned()
                    .and_then(|file| {
                        let full = self.base_dir.join(&file);
                        match std::fs::read(&full) {
                            Ok(bytes) => Some(bytes),
                            Err(e) => {
                                self.err(
                                    format!("{cpath}.certificate"),
                                    format!("cannot read {}: {e}", full.display()),
                                );
                                None
                            }
                        }
                    });
                let key = self
                    .required(&c.key, &format!("{cpath}.key"))
                    .and_then(|k| self.secret(k, &format!("{cpath}.key")));
                match CertificateCredential::from_pem(&certificate?, &key?) {
                    Ok(c) => Some(ClientCredential::Certificate(std::sync::Arc::new(c))),
                    Err(e) => {
                        self.err(cpath, e);
                        None
                    }
                }
            }
        }
    }

    /// `declared`: every document provider's name with its kind, when the kind is valid
    /// (a provider with other errors is still found, so its tenants are checked too).
    pub(super) fn documents(
        &mut self,
        raw: Option<&RawDocuments>,
        path: &str,
        declared: &[(String, Option<DocumentProviderKind>)],
    ) -> Option<DocumentsConfig> {
        let raw = raw?;
        if raw.paths.is_empty() {
            self.err(
                format!("{path}.paths"),
                "give the path prefixes whose requests carry the tokens (tokens are credentials: never every path)",
            );
        }
        for (j, p) in raw.paths.iter().enumerate() {
            if !p.starts_with('/') || p == "/" {
                self.err(
                    format!("{path}.paths[{j}]"),
                    format!("`{p}` must be a path prefix such as /documents/ (not /)"),
                );
            }
        }
        let name = self
            .required(&raw.provider, &format!("{path}.provider"))?
            .clone();
        let Some((_, kind)) = declared.iter().find(|(n, _)| *n == name) else {
            self.err(
                format!("{path}.provider"),
                format!("`{name}` is not a provider in document_providers"),
            );
            return None;
        };
        let kind = (*kind)?;
        let refresh_margin = self.duration(
            &raw.refresh_margin,
            &format!("{path}.refresh_margin"),
            Duration::from_secs(300),
        );
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.len() <= 32
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let mut resources = Vec::new();
        match kind {
            DocumentProviderKind::Microsoft => {
                for (field, present) in [
                    ("system_user", raw.system_user.is_some()),
                    ("scopes", !raw.scopes.is_empty()),
                    ("admins", !raw.admins.is_empty()),
                ] {
                    if present {
                        self.err(
                            format!("{path}.{field}"),
                            "is a Google setting (Microsoft tokens are per user: give resources)",
                        );
                    }
                }
                if raw.resources.is_empty() {
                    self.err(
                        format!("{path}.resources"),
                        "give at least one resource with its scopes (e.g. graph: Files.ReadWrite.All)",
                    );
                }
                let mut seen = HashSet::new();
                for (j, r) in raw.resources.iter().enumerate() {
                    let rpath = format!("{path}.resources[{j}]");
                    let Some(n) = self.required(&r.name, &format!("{rpath}.name")).cloned() else {
                        continue;
                    };
                    if n == "expires" || n == "status" {
                        self.err(
                            format!("{rpath}.name"),
                            format!(
                                "`{n}` would collide with the -{n} header of the default resource"
                            ),
                        );
                    } else if !valid_name(&n) {
                        self.err(
                            format!("{rpath}.name"),
                            "a resource name is 1-32 lower-case letters, digits and `-`",
                        );
                    } else if !seen.insert(n.clone()) {
                        self.err(format!("{rpath}.name"), format!("`{n}` is given twice"));
                    }
                    if r.scopes.is_empty() {
                        self.err(
                            format!("{rpath}.scopes"),
                            "give the scopes this resource needs",
                        );
                    }
                    resources.push((n, r.scopes.clone()));
                }
            }
            DocumentProviderKind::Google => {
                if !raw.resources.is_empty() {
                    self.err(
                        format!("{path}.resources"),
                        "is a Microsoft setting (Google shares one token: give scopes)",
                    );
                }
                match raw.system_user.as_deref().map(str::trim) {
                    None => self.err(
                        format!("{path}.system_user"),
                        "is required: the account whose grant every user shares",
                    ),
                    Some(user) if !looks_like_email(user) => self.err(
                        format!("{path}.system_user"),
                        format!(
                            "`{user}` is not an e-mail address (the Google account that grants)"
                        ),
                    ),
                    Some(_) => {}
                }
                for (j, admin) in raw.admins.iter().enumerate() {
                    if !looks_like_email(admin.trim()) {
                        self.err(
                            format!("{path}.admins[{j}]"),
                            format!("`{admin}` is not an e-mail address or sign-in name"),
                        );
                    }
                }
                // drive.file (files the application created or opened) needs no review by
                // Google; `drive` is a restricted scope (see docs/documents.md).
                let scopes = if raw.scopes.is_empty() {
                    vec![DEFAULT_GOOGLE_SCOPE.to_owned()]
                } else {
                    raw.scopes.clone()
                };
                resources.push(("drive".to_owned(), scopes));
            }
        }
        Some(DocumentsConfig {
            provider: name,
            kind,
            paths: raw.paths.clone(),
            resources,
            system_user: raw.system_user.as_ref().map(|s| s.trim().to_lowercase()),
            admins: raw.admins.iter().map(|a| a.trim().to_lowercase()).collect(),
            refresh_margin,
        })
    }
}

/// The shared Google grant's scope when none is given.
pub const DEFAULT_GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/drive.file";

/// One `@` with something on both sides and no spaces: enough to catch a name put where an
/// address belongs (the provider's ID token decides the rest).
fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}
