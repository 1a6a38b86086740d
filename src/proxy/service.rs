//! Start-up: builds the store, sessions, signer and gateway from a validated configuration,
//! binds the listeners, and runs pingora.

use super::{BuildError, Gateway, Live, Parts, Sessions};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Tenant};
use crate::crypto::KeyRing;
use crate::directory::{Directories, SourceError};
use crate::headers::SessionHeaders;
use crate::metrics::Metrics;
use crate::providers::{ProviderError, Providers};
use crate::store::{self, StoreError};
use crate::upstream_jwt::{UpstreamJwtKeyError, UpstreamJwtSigner};
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::tls::x509::X509;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened or migrated.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The assertion key could not be loaded.
    #[error("{0}")]
    Assertion(#[from] UpstreamJwtKeyError),
    /// A tenant's upstream could not be prepared.
    #[error("{0}")]
    Build(#[from] BuildError),
    /// A listener could not be set up.
    #[error("listener {address}: {message}")]
    Listener {
        /// Listener address.
        address: String,
        /// What failed.
        message: String,
    },
    /// An identity provider has no trusted certificate.
    #[error("{0}")]
    Provider(#[from] ProviderError),
    /// A tenant's user directory could not be built (unreadable file, bad database URL).
    #[error("{0}")]
    Directory(#[from] SourceError),
    /// The support runtime could not start.
    #[error("runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// The pingora peer for a tenant's upstream, with its timeouts and TLS verification.
pub(super) fn upstream_peer(tenant: &Tenant) -> Result<HttpPeer, BuildError> {
    let up = &tenant.upstream;
    let fail = |message: String| BuildError::Upstream {
        tenant: tenant.name.clone(),
        address: up.address.clone(),
        message,
    };
    // Resolved once at start: pingora would otherwise resolve (blocking) on every request.
    let addr = up
        .address
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| fail("resolves to no address".into()))?;
    let mut peer = HttpPeer::new(addr, up.tls, up.sni.clone());
    peer.options.connection_timeout = Some(up.connect_timeout);
    peer.options.total_connection_timeout = Some(up.connect_timeout * 2);
    peer.options.read_timeout = Some(up.read_timeout);
    peer.options.write_timeout = Some(up.read_timeout);
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    peer.options.verify_cert = up.verify;
    peer.options.verify_hostname = up.verify;
    if let Some(ca) = &up.ca {
        let pem =
            std::fs::read(ca).map_err(|e| fail(format!("cannot read {}: {e}", ca.display())))?;
        let certs = X509::stack_from_pem(&pem).map_err(|e| fail(format!("bad CA file: {e}")))?;
        peer.options.ca = Some(Arc::new(certs.into_boxed_slice()));
    }
    Ok(peer)
}

/// Installs the tracing subscriber (text or JSON) once.
pub fn init_logging(json: bool, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VESTIBULE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// What outlives a configuration reload: the store and its connections, the metrics
/// registry (counters keep counting), the clock and the process's draining flag.
#[derive(Clone)]
pub struct Shared {
    /// The durable store.
    pub store: Arc<dyn crate::store::Store>,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Set while shutting down or handing over to a new process.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

impl Shared {
    /// Opens the store (and migrates it when the configuration says so).
    pub async fn open(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        Ok(Self {
            store: store::open(&config.store).await?,
            metrics: Arc::new(Metrics::new()),
            clock,
            draining: Arc::default(),
        })
    }
}

/// Builds a gateway for `config` over the shared parts: everything the configuration decides
/// (key ring, sessions, signer, providers, directories, document tokens, routes). Used at
/// start and by every reload, so both assemble the same way.
pub async fn build(config: Arc<Config>, shared: &Shared) -> Result<Gateway, StartError> {
    let keys = Arc::new(
        KeyRing::new(&config.keys.active, &config.keys.ring)
            .expect("validated: active key is in the ring"),
    );
    let signer = Arc::new(UpstreamJwtSigner::new(&config.assertion)?);
    let sessions = Arc::new(Sessions::new(
        shared.store.clone(),
        keys.clone(),
        shared.clock.clone(),
        config.session.clone(),
        SessionHeaders::preparer(signer.clone(), keys),
    ));
    let providers = Arc::new(
        Providers::start(
            &config.providers,
            shared.clock.clone(),
            Some(shared.store.clone()),
        )
        .await?,
    );
    let directories = Arc::new(Directories::new(&config.tenants, &shared.metrics)?);
    let document_grants = Arc::new(crate::tokens::DocumentGrants::new(
        &config.document_providers,
        sessions.keys().clone(),
        shared.store.clone(),
        shared.clock.clone(),
    ));
    let document_tokens = Arc::new(
        crate::tokens::DocumentTokens::new(
            shared.store.clone(),
            sessions.keys().clone(),
            shared.clock.clone(),
            &config.document_providers,
        )
        .with_metrics(shared.metrics.document_refreshes.clone()),
    );
    let parts = Parts {
        sessions,
        signer,
        metrics: shared.metrics.clone(),
        store: shared.store.clone(),
        clock: shared.clock.clone(),
        providers,
        directories,
        document_tokens,
        document_grants,
        draining: shared.draining.clone(),
    };
    Ok(Gateway::new(config, parts)?)
}

/// Everything the gateway needs, built from configuration (shared by `run`, tests and
/// benches so they exercise the same assembly).
pub struct Assembly {
    /// The proxy service.
    pub gateway: Gateway,
    /// The session manager (tests create sessions through it).
    pub sessions: Arc<Sessions>,
    /// The store.
    pub store: Arc<dyn crate::store::Store>,
}

/// Opens the store and builds the gateway.
pub async fn assemble(config: &Config, clock: Arc<dyn Clock>) -> Result<Assembly, StartError> {
    let shared = Shared::open(config, clock).await?;
    let gateway = build(Arc::new(config.clone()), &shared).await?;
    Ok(Assembly {
        sessions: gateway.sessions().clone(),
        store: shared.store,
        gateway,
    })
}

/// The jobs that run beside the proxy for the life of the process. Each reads the gateway
/// current at that moment, so after a reload they work on the new configuration.
fn spawn_background_jobs(support: &tokio::runtime::Runtime, live: &Live, shared: &Shared) {
    // Sessions ended by another instance (sign-out, IdP sign-out, `vestibule sessions revoke`)
    // leave this cache at once; after a gap in the notifications, everything is re-checked.
    let (watching, store) = (live.clone(), shared.store.clone());
    support.spawn(async move {
        let Some(mut ends) = store.watch_session_ends().await else {
            return;
        };
        while let Some(end) = ends.recv().await {
            let sessions = watching.current().sessions().clone();
            match end {
                crate::store::SessionEnd::Ended(id) => sessions.ended_elsewhere(&id),
                crate::store::SessionEnd::Missed => sessions.recheck_all(),
            }
        }
    });

    let purging = live.clone();
    support.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            let sessions = purging.current().sessions().clone();
            match sessions.purge_expired().await {
                Ok(n) if n > 0 => tracing::info!(purged = n, "expired sessions removed"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not purge expired sessions"),
            }
            if let Err(e) = sessions.purge_seen().await {
                tracing::warn!(error = %e, "could not purge used sign-in records");
            }
        }
    });

    let sweeping = live.clone();
    support.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            sweeping.current().sessions().sweep();
        }
    });

    let refreshing = live.clone();
    support.spawn(async move {
        // Each provider's own schedule decides (metadata_refresh, hourly discovery, or the
        // quick back-off of a provider with nothing trusted); this only looks often.
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let providers = refreshing.current().providers().clone();
            providers.refresh_due().await;
        }
    });

    let renewing = live.clone();
    support.spawn(async move {
        loop {
            // Not holding the gateway while asleep: a reload's old one is dropped soon.
            let every =
                crate::tokens::refresh::refresh_interval(&renewing.current().config().tenants);
            tokio::time::sleep(every).await;
            let gateway = renewing.current();
            let tenants = &gateway.config().tenants;
            let renewed = gateway
                .document_tokens()
                .refresh_due(tenants, gateway.config().session.idle)
                .await;
            if renewed > 0 {
                tracing::info!(renewed, "document tokens refreshed ahead of expiry");
            }
        }
    });

    // SIGQUIT (an upgrade's hand-over) and SIGTERM (shutdown) reach pingora too; here they
    // make every further response close its connection, so keep-alive clients move over
    // (to the new process, or to another instance) without meeting a dropped connection.
    let draining = shared.draining.clone();
    support.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut quit), Ok(mut term)) =
            (signal(SignalKind::quit()), signal(SignalKind::terminate()))
        else {
            return;
        };
        tokio::select! {
            _ = quit.recv() => {}
            _ = term.recv() => {}
        }
        draining.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!("draining: responses now close their connections");
    });
}

/// How `run` takes its listening sockets.
#[derive(Debug, Clone, Default)]
pub struct Upgrade {
    /// Take the listening sockets from the running gateway (which then drains and exits once
    /// it gets SIGQUIT) instead of binding them: a binary upgrade without a refused connection.
    pub take_over: bool,
    /// The Unix socket the sockets are handed over on (the same for both processes); `None`:
    /// `/tmp/vestibule-upgrade.sock`.
    pub socket: Option<std::path::PathBuf>,
}

/// The default hand-over socket of a graceful upgrade.
pub const UPGRADE_SOCKET: &str = "/tmp/vestibule-upgrade.sock";

/// How `run` starts besides its configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Binary upgrade: take the sockets over from a running gateway.
    pub upgrade: Upgrade,
    /// The file the configuration came from: SIGHUP reads it again (`None`: no reload).
    pub config_path: Option<std::path::PathBuf>,
    /// Where to write the process id (for `vestibule reload` and service managers).
    pub pid_file: Option<std::path::PathBuf>,
}

/// Runs the gateway until a shutdown signal. Never returns on success.
pub fn run(config: Config) -> Result<(), StartError> {
    run_with(config, RunOptions::default())
}

/// `run`, taking over from a running gateway when `options.upgrade.take_over`, and reloading
/// `options.config_path` on SIGHUP.
pub fn run_with(config: Config, options: RunOptions) -> Result<(), StartError> {
    init_logging(config.log.json, &config.log.level);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    // A small runtime of our own owns the store's connections and background jobs; pingora
    // runs its own runtimes for the proxy threads.
    let support = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("vestibule-support")
        .enable_all()
        .build()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let shared = support.block_on(Shared::open(&config, clock))?;
    let config = Arc::new(config);
    let live = Live::new(support.block_on(build(config.clone(), &shared))?);
    spawn_background_jobs(&support, &live, &shared);
    if let Some(path) = options.config_path.clone() {
        super::reload::reload_on_hangup(&support, live.clone(), shared.clone(), path);
    }
    if let Some(pid_file) = &options.pid_file {
        std::fs::write(pid_file, format!("{}\n", std::process::id())).map_err(|e| {
            StartError::Listener {
                address: pid_file.display().to_string(),
                message: format!("cannot write the pid file: {e}"),
            }
        })?;
    }
    let upgrade = options.upgrade;

    let conf = ServerConf {
        threads: config.proxy.threads,
        // After SIGTERM or an upgrade's hand-over the listeners stop at once; requests already
        // accepted get this long to finish before the runtime is shut down (tokio drops
        // unfinished tasks then): 1 s cut slow requests on a busy machine.
        grace_period_seconds: Some(5),
        graceful_shutdown_timeout_seconds: Some(10),
        upgrade_sock: upgrade.socket.as_ref().map_or_else(
            || UPGRADE_SOCKET.to_owned(),
            |p| p.to_string_lossy().into_owned(),
        ),
        ..ServerConf::default()
    };
    // On SIGQUIT pingora hands the listening sockets to a process started with
    // `--upgrade` on the same socket path, then finishes its in-flight requests and exits.
    let opt = pingora::server::configuration::Opt {
        upgrade: upgrade.take_over,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();
    let mut proxy =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, live, "vestibule");
    for listener in &config.listeners {
        let address = listener.address.to_string();
        match &listener.tls {
            None => proxy.add_tcp(&address),
            Some(tls) => {
                let listener_error = |message: String| StartError::Listener {
                    address: address.clone(),
                    message,
                };
                let mut settings = TlsSettings::intermediate(
                    &tls.cert.to_string_lossy(),
                    &tls.key.to_string_lossy(),
                )
                .map_err(|e| listener_error(e.to_string()))?;
                settings.enable_h2();
                proxy.add_tls_with_settings(&address, None, settings);
            }
        }
        tracing::info!(%address, tls = listener.tls.is_some(), "listening");
    }
    server.add_service(proxy);
    // Keep the support runtime alive for the life of the process.
    let _support = support;
    server.run_forever();
}
