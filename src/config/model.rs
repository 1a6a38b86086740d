//! The validated configuration that the rest of the gateway consumes. Every value here has
//! been checked; nothing downstream re-validates or handles "missing".

use crate::crypto::KEY_LEN;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listening sockets.
    pub listeners: Vec<Listener>,
    /// Key ring material.
    pub keys: KeysConfig,
    /// Store backend.
    pub store: StoreConfig,
    /// Session settings.
    pub session: SessionConfig,
    /// Upstream assertion JWT settings.
    pub assertion: AssertionConfig,
    /// Owned headers.
    pub headers: HeadersConfig,
    /// Proxy behaviour.
    pub proxy: ProxyConfig,
    /// Metrics access.
    pub metrics: MetricsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Identity providers.
    pub providers: Vec<Provider>,
    /// Authorization servers for document tokens.
    pub document_providers: Vec<DocumentProvider>,
    /// Tenants, in file order.
    pub tenants: Vec<Tenant>,
}

/// Which kind of document tokens a provider issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentProviderKind {
    /// Microsoft identity platform: per-user tokens, one per resource.
    Microsoft,
    /// Google: one tenant-wide token granted by a system user.
    Google,
}

/// An OAuth authorization server for document tokens.
#[derive(Clone)]
pub struct DocumentProvider {
    /// Unique name.
    pub name: String,
    /// Its kind.
    pub kind: DocumentProviderKind,
    /// OpenID issuer (discovery).
    pub authority: url::Url,
    /// Client id.
    pub client_id: String,
    /// The client secret or certificate (never printed).
    pub credential: crate::client_credential::ClientCredential,
    /// Extra authorization request parameters.
    pub authorization_params: Vec<(String, String)>,
}

impl std::fmt::Debug for DocumentProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentProvider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("authority", &self.authority.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A tenant's document tokens.
#[derive(Debug, Clone)]
pub struct DocumentsConfig {
    /// Document provider name.
    pub provider: String,
    /// Its kind (copied from the provider).
    pub kind: DocumentProviderKind,
    /// Path prefixes whose requests carry the tokens.
    pub paths: Vec<String>,
    /// Resources and their scopes, the default first (Google: one, `drive`).
    pub resources: Vec<(String, Vec<String>)>,
    /// Google: the system user's address, lower case.
    pub system_user: Option<String>,
    /// Google: admins' addresses, lower case.
    pub admins: Vec<String>,
    /// Refresh this long before expiry.
    pub refresh_margin: Duration,
}

impl DocumentsConfig {
    /// Whether a request path carries document tokens.
    pub fn covers(&self, path: &str) -> bool {
        self.paths.iter().any(|p| path.starts_with(p.as_str()))
    }
}

impl Config {
    /// Settings that are valid but will not work as a user expects, one line each with its
    /// YAML path: printed by `check-config` and logged at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, l) in self.listeners.iter().enumerate() {
            if l.tls.is_none()
                && !l.address.ip().is_loopback()
                && self.proxy.trusted_proxies.is_empty()
            {
                out.push(format!(
                    "listeners[{i}] ({}): plain HTTP beyond loopback, and no proxy.trusted_proxies: \
                     browsers keep Vestibule's sign-in cookies only over HTTPS (or on localhost), so \
                     sign-in through this listener fails. Give it `tls`, or put a TLS-terminating \
                     proxy in front and list it under proxy.trusted_proxies (its \
                     X-Forwarded-Proto: https is then believed)",
                    l.address
                ));
            }
        }
        out
    }
}

/// An identity provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Unique name.
    pub name: String,
    /// Button text.
    pub display_name: String,
    /// Protocol settings.
    pub kind: ProviderKind,
}

/// Protocol-specific provider settings.
#[derive(Debug, Clone)]
pub enum ProviderKind {
    /// WS-Federation 1.2.
    WsFed(WsFedProvider),
    /// OpenID Connect.
    Oidc(OidcProvider),
}

/// OpenID Connect provider settings.
#[derive(Clone)]
pub struct OidcProvider {
    /// Issuer URL.
    pub issuer: url::Url,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// A certificate credential (`private_key_jwt`) used instead of the secret (document
    /// providers only, for now).
    pub client_certificate: Option<std::sync::Arc<crate::client_credential::CertificateCredential>>,
    /// Scopes (with `openid`).
    pub scopes: Vec<String>,
    /// Extra authorization parameters.
    pub authorization_params: Vec<(String, String)>,
    /// Require `email_verified`.
    pub require_verified_email: bool,
    /// Fetch claims the ID token lacks (e-mail, name, the user and groups claims) from the
    /// userinfo endpoint, when the provider has one.
    pub userinfo: bool,
    /// Claim used as the user name.
    pub user_claim: String,
    /// Claim with groups.
    pub groups_claim: Option<String>,
    /// Allowed ID token algorithms (JOSE names).
    pub id_token_algorithms: Vec<String>,
    /// Clock skew.
    pub clock_skew: Duration,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// WS-Federation provider settings.
#[derive(Debug, Clone)]
pub struct WsFedProvider {
    /// Passive requestor endpoint.
    pub passive_endpoint: url::Url,
    /// Federation metadata URL.
    pub metadata_url: Option<url::Url>,
    /// Certificate (DER) that must sign the metadata.
    pub metadata_signer: Option<Vec<u8>>,
    /// Metadata refresh interval.
    pub metadata_refresh: Duration,
    /// Oldest stored metadata copy trusted while the endpoint does not answer.
    pub metadata_max_stale: Duration,
    /// Pinned signing certificates (DER).
    pub certificates: Vec<Vec<u8>>,
    /// Our realm.
    pub realm: String,
    /// Clock skew.
    pub clock_skew: Duration,
    /// Allowed signature algorithms.
    pub algorithms: Vec<vestibule_xmlsig::Algorithm>,
}

/// One listening socket.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Address to bind.
    pub address: SocketAddr,
    /// HTTPS material, when this listener serves TLS.
    pub tls: Option<ListenerTls>,
}

/// Certificate and key paths of an HTTPS listener.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Key ring material, decoded.
#[derive(Clone)]
pub struct KeysConfig {
    /// Id of the sealing key.
    pub active: String,
    /// Every key by id.
    pub ring: Vec<(String, [u8; KEY_LEN])>,
}

impl std::fmt::Debug for KeysConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.ring.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("KeysConfig")
            .field("active", &self.active)
            .field("ring", &ids)
            .finish()
    }
}

/// Store backend.
#[derive(Clone)]
pub enum StoreConfig {
    /// Embedded SQLite file.
    Sqlite {
        /// Database file, created at start.
        path: PathBuf,
    },
    /// Shared PostgreSQL.
    Postgres {
        /// Connection URL.
        url: String,
        /// Connection pool.
        pool: crate::store::PgPoolSettings,
        /// Apply migrations at start.
        migrate: bool,
    },
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            Self::Postgres { pool, migrate, .. } => f
                .debug_struct("Postgres")
                .field("url", &"<redacted>")
                .field("pool", pool)
                .field("migrate", migrate)
                .finish(),
        }
    }
}

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Cookie name.
    pub cookie: String,
    /// Idle lifetime.
    pub idle: Duration,
    /// Absolute lifetime.
    pub absolute: Duration,
    /// How long a cached session is trusted before the store is consulted again; bounds how
    /// long a revocation on another instance takes to apply here.
    pub cache_ttl: Duration,
    /// Most sessions held in memory.
    pub cache_capacity: u64,
}

/// Assertion JWT settings.
#[derive(Clone)]
pub struct AssertionConfig {
    /// PEM private key.
    pub key_pem: Vec<u8>,
    /// Signing algorithm derived from the key.
    pub algorithm: jsonwebtoken::Algorithm,
    /// Key id.
    pub kid: String,
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// Token lifetime.
    pub lifetime: Duration,
}

impl std::fmt::Debug for AssertionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionConfig")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// Headers Vestibule owns.
#[derive(Debug, Clone)]
pub struct HeadersConfig {
    /// Lower-case prefix of owned headers, `-` spelling (e.g. `x-vestibule-`).
    pub prefix: String,
    /// Further owned header names, lower case, `-` spelling.
    pub strip: Vec<String>,
}

/// Proxy behaviour.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Networks whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Worker threads.
    pub threads: usize,
    /// Largest body accepted by Vestibule's own POST endpoints.
    pub max_form_body: usize,
    /// Longest time a client may take to send a form body to Vestibule's own endpoints.
    pub form_body_timeout: Duration,
    /// Sign-in verifications that may run at once (low-priority threads).
    pub sign_in_workers: usize,
    /// Sign-in verifications that may wait for a worker.
    pub sign_in_queue: usize,
    /// Sign-in starts per client address and minute (0: no limit).
    pub sign_in_starts_per_minute: u32,
    /// Sign-in completions (provider responses) per client address and minute (0: no limit).
    pub sign_in_completions_per_minute: u32,
    /// Upstream connect timeout for tenants that set none.
    pub connect_timeout: Duration,
    /// Upstream read/write timeout for tenants that set none.
    pub read_timeout: Duration,
}

impl ProxyConfig {
    /// Whether a direct peer is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// Metrics access.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Client networks allowed to read metrics.
    pub allow: Vec<IpNet>,
}

/// Logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// JSON lines instead of text.
    pub json: bool,
    /// tracing filter directive.
    pub level: String,
}

/// One CRM installation.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Unique name.
    pub name: String,
    /// Lower-case host names (no port).
    pub hosts: Vec<String>,
    /// Upstream.
    pub upstream: Upstream,
    /// Public path prefixes.
    pub public: Vec<String>,
    /// API path prefixes.
    pub api: Vec<String>,
    /// Providers enabled for this tenant.
    pub sign_in: Vec<SignIn>,
    /// Who may use this CRM.
    pub directory: DirectoryConfig,
    /// Document tokens, when the tenant uses them.
    pub documents: Option<DocumentsConfig>,
}

/// A tenant's user directory.
#[derive(Clone)]
pub struct DirectoryConfig {
    /// Where the users are.
    pub source: DirectorySource,
    /// The identity field matched (`upn`, `email`, `subject`, `name_id`, `object_id`, or a
    /// claim name).
    pub match_field: String,
    /// Cache lifetime of an admitted user's lookup.
    pub cache_ttl: Duration,
    /// Cache lifetime of a refusal.
    pub negative_cache_ttl: Duration,
    /// Most cached lookups.
    pub cache_capacity: u64,
    /// Re-check interval for live sessions.
    pub recheck: Duration,
    /// How long past a due re-check a session keeps working while the directory is down.
    pub stale_grace: Duration,
    /// Longest wait for the database.
    pub timeout: Duration,
}

impl std::fmt::Debug for DirectoryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryConfig")
            .field("source", &self.source)
            .field("match_field", &self.match_field)
            .field("recheck", &self.recheck)
            .finish_non_exhaustive()
    }
}

/// Where a directory's users are.
#[derive(Clone)]
pub enum DirectorySource {
    /// Everyone the provider verified is admitted.
    None,
    /// A query on the CRM's database.
    Sql {
        /// Database URL (holds a password: never printed).
        url: String,
        /// The query, one parameter.
        query: String,
    },
    /// A YAML or CSV file.
    File {
        /// Its path.
        path: PathBuf,
    },
}

impl std::fmt::Debug for DirectorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Sql { query, .. } => f
                .debug_struct("Sql")
                .field("url", &"<redacted>")
                .field("query", query)
                .finish(),
            Self::File { path } => f.debug_struct("File").field("path", path).finish(),
        }
    }
}

/// A provider enabled for a tenant.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// Provider name.
    pub provider: String,
    /// Issuers this tenant accepts from it (WS-Federation).
    pub allowed_issuers: Vec<String>,
    /// Hosted domains accepted (OpenID Connect `hd`); empty means any.
    pub hosted_domains: Vec<String>,
}

/// A tenant's upstream.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `host:port` as written.
    pub address: String,
    /// Connect with TLS.
    pub tls: bool,
    /// SNI and verification name.
    pub sni: String,
    /// CA bundle path.
    pub ca: Option<PathBuf>,
    /// Verify the certificate (on unless the dangerous switch is set).
    pub verify: bool,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout.
    pub read_timeout: Duration,
}
