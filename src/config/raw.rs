//! A serde mirror of the YAML file. Every struct refuses unknown keys, so a typo is an error
//! rather than a silently ignored setting. Values stay loosely typed (strings for durations,
//! addresses and networks) so `validate` can report every bad value at once with its path.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Where the gateway accepts connections.
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    /// The AES-256-GCM key ring for cookies and stored records.
    pub keys: Option<RawKeys>,
    /// Durable storage; SQLite at `data/vestibule.db` when absent.
    pub store: Option<RawStore>,
    /// Session cookie and lifetimes.
    #[serde(default)]
    pub session: RawSession,
    /// The signed JWT handed to upstreams.
    pub assertion: Option<RawAssertion>,
    /// Which headers Vestibule owns.
    #[serde(default)]
    pub headers: RawHeaders,
    /// Proxy behaviour shared by all tenants.
    #[serde(default)]
    pub proxy: RawProxy,
    /// Who may read `/_vestibule/metrics`.
    #[serde(default)]
    pub metrics: RawMetrics,
    /// Logging format and level.
    #[serde(default)]
    pub log: RawLog,
    /// Identity providers (app registrations), shared by tenants.
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    /// OAuth authorization servers for document tokens (app registrations), shared by tenants.
    #[serde(default)]
    pub document_providers: Vec<RawDocumentProvider>,
    /// The CRM installations behind the gateway.
    #[serde(default)]
    pub tenants: Vec<RawTenant>,
}

/// An OAuth authorization server issuing document tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocumentProvider {
    /// Unique name, used in `tenants[].documents.provider`.
    pub name: Option<String>,
    /// `microsoft` (per-user tokens) or `google` (one shared token granted by a system user).
    pub kind: Option<String>,
    /// The OpenID issuer whose discovery document names the endpoints
    /// (`https://login.microsoftonline.com/<tenant id>/v2.0`, `https://accounts.google.com`).
    pub authority: Option<String>,
    /// Client id of the app registration.
    pub client_id: Option<String>,
    /// Client secret (or `client_certificate`).
    pub client_secret: Option<RawSecret>,
    /// A certificate credential (`private_key_jwt`) instead of a client secret.
    pub client_certificate: Option<RawClientCertificate>,
    /// Extra authorization request parameters (e.g. `prompt: consent`).
    #[serde(default)]
    pub authorization_params: std::collections::BTreeMap<String, String>,
}

/// A certificate registered with the app registration, and its private key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientCertificate {
    /// The certificate, a PEM file.
    pub certificate: Option<String>,
    /// Its private key (PEM): a secret (`file`, `env` or `value`).
    pub key: Option<RawSecret>,
}

/// A tenant's document tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocuments {
    /// Name of a document provider.
    pub provider: Option<String>,
    /// Path prefixes whose requests carry the tokens (tokens are credentials: not every path).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Microsoft: resource name → its scopes (the first resource is the default).
    #[serde(default)]
    pub resources: Vec<RawResource>,
    /// Google: the account whose grant every user of the tenant shares.
    pub system_user: Option<String>,
    /// Google: scopes of the shared grant.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Google: users (besides the system user) who may see and connect the grant.
    #[serde(default)]
    pub admins: Vec<String>,
    /// Refresh this long before expiry (default 5m).
    pub refresh_margin: Option<String>,
}

/// One resource of a Microsoft document provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResource {
    /// Short name (`graph`, `sharepoint`): header suffix and record key.
    pub name: Option<String>,
    /// Scopes, e.g. `Files.ReadWrite.All` or `https://contoso.sharepoint.com/AllSites.Write`.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// One identity provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Unique name, used in `tenants[].sign_in[].provider` and `?provider=`.
    pub name: Option<String>,
    /// `wsfed` (more kinds in later versions).
    pub kind: Option<String>,
    /// Text on the sign-in button.
    pub display_name: Option<String>,
    /// WS-Fed passive endpoint, e.g. `https://login.microsoftonline.com/<tenant>/wsfed`.
    pub passive_endpoint: Option<String>,
    /// Federation metadata URL.
    pub metadata_url: Option<String>,
    /// Certificate that must have signed the metadata document.
    pub metadata_signing_certificate: Option<String>,
    /// How often metadata is fetched again.
    pub metadata_refresh: Option<String>,
    /// How old a stored copy of the metadata may be and still be trusted while the metadata
    /// endpoint does not answer (default 7d).
    pub metadata_max_stale: Option<String>,
    /// Pinned token-signing certificates (PEM files).
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Our realm (`wtrealm`), the audience tokens must name.
    pub realm: Option<String>,
    /// Allowed clock difference.
    pub clock_skew: Option<String>,
    /// Allowed signature algorithms.
    pub signature_algorithms: Option<Vec<String>>,
    /// Accept RSA-SHA1 signatures: loopback-only configurations may set it.
    #[serde(default)]
    pub dangerous_allow_sha1: bool,
    /// OpenID Connect issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: Option<String>,
    /// OAuth client id.
    pub client_id: Option<String>,
    /// OAuth client secret.
    pub client_secret: Option<RawSecret>,
    /// Scopes to request (`openid` is always added).
    pub scopes: Option<Vec<String>>,
    /// Extra authorization request parameters (Google: `access_type`, `prompt`, `hd`).
    #[serde(default)]
    pub authorization_params: BTreeMap<String, String>,
    /// Require `email_verified: true` (default true).
    pub require_verified_email: Option<bool>,
    /// Fetch claims the ID token lacks from the userinfo endpoint (default true).
    pub userinfo: Option<bool>,
    /// Claim that becomes the user name (default `email`).
    pub user_claim: Option<String>,
    /// Claim holding group names or ids.
    pub groups_claim: Option<String>,
    /// Allowed ID token signature algorithms.
    pub id_token_algorithms: Option<Vec<String>>,
}

/// A provider enabled for a tenant, with the issuers this tenant accepts from it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignIn {
    /// Name of a provider in `providers`.
    pub provider: Option<String>,
    /// Exact issuers accepted (Azure AD: `https://sts.windows.net/<tenant id>/`).
    #[serde(default)]
    pub allowed_issuers: Vec<String>,
    /// Azure AD tenant ids; each adds `https://sts.windows.net/<id>/` to the issuers.
    #[serde(default)]
    pub azure_tenant_ids: Vec<String>,
    /// OpenID Connect: hosted domains (Google `hd`) accepted; an absent `hd` is then refused.
    #[serde(default)]
    pub hosted_domains: Vec<String>,
}

/// A secret from exactly one source. Inline `value` exists for development configs only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    /// Name of an environment variable holding the secret.
    pub env: Option<String>,
    /// Path of a file holding the secret (trailing newline trimmed for text secrets).
    pub file: Option<String>,
    /// The secret itself, written inline.
    pub value: Option<String>,
}

/// One listening socket.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    /// `ip:port` to bind.
    pub address: Option<String>,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<RawListenerTls>,
}

/// Certificate and key files of an HTTPS listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenerTls {
    /// PEM certificate chain.
    pub cert: Option<String>,
    /// PEM private key.
    pub key: Option<String>,
}

/// The key ring.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    /// Id of the key that seals new data.
    pub active: Option<String>,
    /// Every key that may open data, by id; each a base64 256-bit key.
    #[serde(default)]
    pub ring: BTreeMap<String, RawSecret>,
}

/// Exactly one store backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// Path of the SQLite database file (created at start).
    pub sqlite: Option<String>,
    /// PostgreSQL connection, for several gateway instances sharing state.
    pub postgres: Option<RawPostgres>,
    /// Apply schema migrations at start (default true; false where `vestibule migrate` runs
    /// separately, e.g. with a more privileged database role).
    pub migrate: Option<bool>,
}

/// PostgreSQL settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    /// Connection URL (contains a password: a secret).
    pub url: Option<RawSecret>,
    /// Connection pool.
    #[serde(default)]
    pub pool: RawPool,
}

/// A database connection pool.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    /// Most connections per gateway instance (default 10).
    pub max_connections: Option<u32>,
    /// How long to wait for a free connection (default 5s).
    pub acquire_timeout: Option<String>,
}

/// Session settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    /// Cookie name.
    pub cookie: Option<String>,
    /// Idle lifetime, e.g. `8h`.
    pub idle: Option<String>,
    /// Absolute lifetime, e.g. `24h`.
    pub absolute: Option<String>,
    /// How long a cached session is trusted before the store is read again.
    pub cache_ttl: Option<String>,
    /// Most sessions held in memory.
    pub cache_capacity: Option<u64>,
}

/// The upstream assertion JWT.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAssertion {
    /// PEM private key (PKCS#8, P-256 for ES256 or Ed25519 for EdDSA).
    pub key: Option<RawSecret>,
    /// Key id published in the JWKS.
    pub kid: Option<String>,
    /// `iss` claim.
    pub issuer: Option<String>,
    /// `aud` claim.
    pub audience: Option<String>,
    /// Token lifetime, e.g. `5m`.
    pub lifetime: Option<String>,
}

/// Headers Vestibule owns.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaders {
    /// Prefix of every header Vestibule sets; client copies are always removed.
    pub prefix: Option<String>,
    /// Further header names to remove from client requests (e.g. `Remote-User`).
    #[serde(default)]
    pub strip: Vec<String>,
}

/// Proxy behaviour.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    /// Networks whose `X-Forwarded-*` headers are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Upstream connect timeout for tenants that set none (default 5s).
    pub connect_timeout: Option<String>,
    /// Upstream read timeout for tenants that set none (default 60s).
    pub read_timeout: Option<String>,
    /// Worker threads for the proxy.
    pub threads: Option<usize>,
    /// Largest request body accepted on Vestibule's own endpoints.
    pub max_form_body: Option<String>,
    /// Longest time a client may take to send such a body (default 10s).
    pub form_body_timeout: Option<String>,
    /// Sign-in verifications run at once, off the proxy workers (default: CPUs).
    pub sign_in_workers: Option<usize>,
    /// Sign-in verifications that may wait for a worker (default 256); beyond, 503.
    pub sign_in_queue: Option<usize>,
    /// Sign-in starts per client address and minute (default 600; 0: no limit).
    pub sign_in_starts_per_minute: Option<u32>,
    /// Sign-in completions per client address and minute (default 300; 0: no limit).
    pub sign_in_completions_per_minute: Option<u32>,
}

/// Metrics endpoint access.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Client networks allowed to read metrics (loopback only by default).
    pub allow: Option<Vec<String>>,
}

/// Logging.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `text` or `json`.
    pub format: Option<String>,
    /// A tracing filter such as `info` or `vestibule=debug,info`.
    pub level: Option<String>,
}

/// One CRM installation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    /// Unique name, also sent upstream.
    pub name: Option<String>,
    /// Host names routed to this tenant.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Where requests go.
    pub upstream: Option<RawUpstream>,
    /// Path prefixes served without sign-in.
    #[serde(default)]
    pub public: Vec<String>,
    /// Path prefixes that get 401 instead of a sign-in redirect.
    #[serde(default)]
    pub api: Vec<String>,
    /// Providers users of this tenant sign in with.
    #[serde(default)]
    pub sign_in: Vec<RawSignIn>,
    /// Who may use this CRM: its existing users.
    pub directory: Option<RawDirectory>,
    /// Document tokens for the CRM's document handlers.
    pub documents: Option<RawDocuments>,
}

/// A tenant's user directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirectory {
    /// `sql`, `file` or `none`.
    pub kind: Option<String>,
    /// `sql`: the CRM database URL (a secret).
    pub url: Option<RawSecret>,
    /// `sql`: the query, with one parameter for the matched value.
    pub query: Option<String>,
    /// `file`: a YAML or CSV list of users.
    pub path: Option<String>,
    /// The identity field matched: `upn`, `email`, `subject`, `name_id`, `object_id` or a
    /// claim name.
    #[serde(rename = "match")]
    pub match_field: Option<String>,
    /// How long an admitted user's lookup is cached.
    pub cache_ttl: Option<String>,
    /// How long a refusal (no user, deactivated, ambiguous) is cached.
    pub negative_cache_ttl: Option<String>,
    /// Most cached lookups.
    pub cache_capacity: Option<u64>,
    /// How often a live session is checked against the directory again.
    pub recheck: Option<String>,
    /// How long past a due re-check a session keeps working while the directory is down.
    pub stale_grace: Option<String>,
    /// Longest wait for the database.
    pub timeout: Option<String>,
}

/// The tenant's upstream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// `host:port`.
    pub address: Option<String>,
    /// Connect with TLS.
    #[serde(default)]
    pub tls: bool,
    /// Server name for SNI and certificate checks (defaults to the address host).
    pub sni: Option<String>,
    /// PEM CA bundle to verify the upstream with (system roots otherwise).
    pub ca: Option<String>,
    /// Skip certificate verification: loopback-only configurations may set it.
    #[serde(default)]
    pub dangerous_skip_verify: bool,
    /// Connect timeout for this upstream.
    pub connect_timeout: Option<String>,
    /// Read timeout for this upstream.
    pub read_timeout: Option<String>,
}
