//! Prometheus metrics in a registry of our own (not the process-global one), so each gateway
//! instance — and each test — counts only its own traffic.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests by tenant and response status.
    pub requests: IntCounterVec,
    /// Completed sign-ins by tenant and provider.
    pub sign_ins: IntCounterVec,
    /// Refused requests and sign-ins by tenant and reason.
    pub rejections: IntCounterVec,
    /// Time from sending the request upstream to receiving its response header.
    pub upstream_latency: HistogramVec,
    /// Sessions held in the in-memory cache.
    pub cached_sessions: IntGauge,
    /// Directory answers by tenant and outcome (`admitted`, `unknown_user`, ...).
    pub directory_lookups: IntCounterVec,
    /// Queries sent to a directory's source (cache misses), by tenant.
    pub directory_queries: IntCounterVec,
    /// Document token refreshes by provider and outcome.
    pub document_refreshes: IntCounterVec,
    /// Identity providers that can be signed in with (1) or not (0).
    pub providers_available: prometheus::IntGaugeVec,
    /// Configuration reloads by outcome (`applied`, `refused`).
    pub config_reloads: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("vestibule_requests_total", "Requests by tenant and status"),
            &["tenant", "status"],
        )
        .expect("valid metric");
        let sign_ins = IntCounterVec::new(
            Opts::new("vestibule_sign_ins_total", "Completed sign-ins"),
            &["tenant", "provider"],
        )
        .expect("valid metric");
        let rejections = IntCounterVec::new(
            Opts::new(
                "vestibule_rejections_total",
                "Refused requests and sign-ins by reason",
            ),
            &["tenant", "reason"],
        )
        .expect("valid metric");
        let upstream_latency = HistogramVec::new(
            HistogramOpts::new(
                "vestibule_upstream_latency_seconds",
                "Upstream response header latency",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["tenant"],
        )
        .expect("valid metric");
        let cached_sessions = IntGauge::new("vestibule_cached_sessions", "Sessions held in memory")
            .expect("valid metric");
        let directory_lookups = IntCounterVec::new(
            Opts::new(
                "vestibule_directory_lookups_total",
                "User directory answers by outcome",
            ),
            &["tenant", "outcome"],
        )
        .expect("valid metric");
        let directory_queries = IntCounterVec::new(
            Opts::new(
                "vestibule_directory_queries_total",
                "Queries sent to the user directory (cache misses)",
            ),
            &["tenant"],
        )
        .expect("valid metric");
        let document_refreshes = IntCounterVec::new(
            Opts::new(
                "vestibule_document_refreshes_total",
                "Document token refreshes by outcome",
            ),
            &["provider", "outcome"],
        )
        .expect("valid metric");
        let providers_available = prometheus::IntGaugeVec::new(
            Opts::new(
                "vestibule_provider_available",
                "1 when an identity provider can be signed in with (WS-Federation: a trusted signing certificate is known), else 0",
            ),
            &["provider"],
        )
        .expect("valid metric");
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "vestibule_config_reloads_total",
                "Configuration reloads (SIGHUP) by outcome: applied, or refused (the running configuration kept)",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(config_reloads.clone()),
            Box::new(providers_available.clone()),
            Box::new(sign_ins.clone()),
            Box::new(rejections.clone()),
            Box::new(upstream_latency.clone()),
            Box::new(cached_sessions.clone()),
            Box::new(directory_lookups.clone()),
            Box::new(directory_queries.clone()),
            Box::new(document_refreshes.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Self {
            registry,
            requests,
            sign_ins,
            rejections,
            upstream_latency,
            cached_sessions,
            directory_lookups,
            directory_queries,
            document_refreshes,
            providers_available,
            config_reloads,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        out
    }
}
