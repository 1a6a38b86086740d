//! Start-up: builds the store, sessions, signer and gateway from a validated configuration,
//! binds the listeners, and runs pingora.

use super::{BuildError, Gateway, Parts, Sessions};
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

/// Everything the gateway needs, built from configuration (shared by `run`, tests and
/// benches so they exercise the same assembly).
pub struct Assembly {
    /// The proxy service.
    pub gateway: Gateway,
    /// The session manager (tests create sessions through it).
    pub sessions: Arc<Sessions>,
    /// Identity providers (refreshed by a background job).
    pub providers: Arc<Providers>,
    /// Document tokens (refreshed ahead of expiry by a background job).
    pub document_tokens: Arc<crate::tokens::DocumentTokens>,
    /// The store (its session-end notifications reach the session cache).
    pub store: Arc<dyn crate::store::Store>,
}

/// Builds the store, key ring, sessions, signer and gateway.
pub async fn assemble(config: &Config, clock: Arc<dyn Clock>) -> Result<Assembly, StartError> {
    let store = store::open(&config.store).await?;
    let keys = Arc::new(
        KeyRing::new(&config.keys.active, &config.keys.ring)
            .expect("validated: active key is in the ring"),
    );
    let signer = Arc::new(UpstreamJwtSigner::new(&config.assertion)?);
    let sessions = Arc::new(Sessions::new(
        store.clone(),
        keys.clone(),
        clock.clone(),
        config.session.clone(),
        SessionHeaders::preparer(signer.clone(), keys),
    ));
    let providers =
        Arc::new(Providers::start(&config.providers, clock.clone(), Some(store.clone())).await?);
    let metrics = Arc::new(Metrics::new());
    let directories = Arc::new(Directories::new(&config.tenants, &metrics)?);
    let document_grants = Arc::new(crate::tokens::DocumentGrants::new(
        &config.document_providers,
        sessions.keys().clone(),
        store.clone(),
        clock.clone(),
    ));
    let document_tokens = Arc::new(
        crate::tokens::DocumentTokens::new(
            store.clone(),
            sessions.keys().clone(),
            clock.clone(),
            &config.document_providers,
        )
        .with_metrics(metrics.document_refreshes.clone()),
    );
    let parts = Parts {
        sessions: sessions.clone(),
        signer,
        metrics,
        store: store.clone(),
        clock,
        providers: providers.clone(),
        directories,
        document_tokens: document_tokens.clone(),
        document_grants,
    };
    let gateway = Gateway::new(config, parts)?;
    Ok(Assembly {
        gateway,
        sessions,
        providers,
        document_tokens,
        store,
    })
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

/// Runs the gateway until a shutdown signal. Never returns on success.
pub fn run(config: Config) -> Result<(), StartError> {
    run_with(config, Upgrade::default())
}

/// `run`, taking over from a running gateway when `upgrade.take_over`.
pub fn run_with(config: Config, upgrade: Upgrade) -> Result<(), StartError> {
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
    let assembly = support.block_on(assemble(&config, clock))?;

    // Sessions ended by another instance (sign-out, IdP sign-out, `vestibule sessions revoke`)
    // leave this cache at once; after a gap in the notifications, everything is re-checked.
    let watched = assembly.sessions.clone();
    let store = assembly.store.clone();
    support.spawn(async move {
        let Some(mut ends) = store.watch_session_ends().await else {
            return;
        };
        while let Some(end) = ends.recv().await {
            match end {
                crate::store::SessionEnd::Ended(id) => watched.ended_elsewhere(&id),
                crate::store::SessionEnd::Missed => watched.recheck_all(),
            }
        }
    });

    let sessions = assembly.sessions.clone();
    support.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
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

    let cached = assembly.sessions.clone();
    support.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            cached.sweep();
        }
    });

    let providers = assembly.providers.clone();
    support.spawn(async move {
        // Each provider's own schedule decides (metadata_refresh, hourly discovery, or the
        // quick back-off of a provider with nothing trusted); this only looks often.
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            providers.refresh_due().await;
        }
    });

    let document_tokens = assembly.document_tokens.clone();
    let tenants = config.tenants.clone();
    let idle = config.session.idle;
    support.spawn(async move {
        let mut tick = tokio::time::interval(crate::tokens::refresh::refresh_interval(&tenants));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let renewed = document_tokens.refresh_due(&tenants, idle).await;
            if renewed > 0 {
                tracing::info!(renewed, "document tokens refreshed ahead of expiry");
            }
        }
    });

    // SIGQUIT (an upgrade's hand-over) and SIGTERM (shutdown) reach pingora too; here they
    // make every further response close its connection, so keep-alive clients move over
    // (to the new process, or to another instance) without meeting a dropped connection.
    let draining = assembly.gateway.draining_flag();
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
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        assembly.gateway,
        "vestibule",
    );
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
