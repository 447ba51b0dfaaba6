//! Prometheus metrics of the data plane. Labels are bounded: tenant (namespace), route,
//! mount, method (known MCP methods, else "other") and outcome; never a session, a user or
//! an argument.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::protocol::Method;

pub struct Metrics {
    registry: Registry,
    /// MCP requests by namespace, route, method and outcome.
    pub requests: IntCounterVec,
    /// Upstream request latency by namespace, route, mount and method.
    pub upstream_seconds: HistogramVec,
    /// Generation of the config being served.
    pub config_generation: IntGauge,
    /// Config loads by outcome (`applied`, `unchanged`, `rejected`).
    pub config_loads: IntCounterVec,
    /// Client sessions held in this replica's memory (a session lives in its token; an
    /// entry is what a replica keeps while the session is in use here).
    pub session_entries: IntGauge,
    /// MCP requests being answered right now.
    pub in_flight: IntGauge,
    /// Requests refused by authentication or authorization, by namespace, route and reason
    /// (`missing_credential`, `invalid_token`, `insufficient_scope`, `denied`).
    pub refusals: IntCounterVec,
}

/// Methods that get their own label value.
const KNOWN_METHODS: &[Method] = &[
    Method::Initialize,
    Method::ServerDiscover,
    Method::Initialized,
    Method::Cancelled,
    Method::Progress,
    Method::RootsListChanged,
    Method::Ping,
    Method::ToolsList,
    Method::ToolsCall,
    Method::ResourcesList,
    Method::ResourcesRead,
    Method::ResourcesTemplatesList,
    Method::ResourcesSubscribe,
    Method::ResourcesUnsubscribe,
    Method::PromptsList,
    Method::PromptsGet,
    Method::CompletionComplete,
    Method::LoggingSetLevel,
];

/// The method as a bounded label value: clients choose method names, so anything else is
/// `other`.
pub fn method_label(method: Method) -> &'static str {
    if KNOWN_METHODS.contains(&method) { method.name() } else { "other" }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("manifold_requests_total", "MCP requests by tenant namespace, route, method and outcome"),
            &["namespace", "route", "method", "outcome"],
        )
        .expect("valid metric");
        let upstream_seconds = HistogramVec::new(
            HistogramOpts::new("manifold_upstream_request_duration_seconds", "Latency of requests to mounted servers")
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
            &["namespace", "route", "mount", "method"],
        )
        .expect("valid metric");
        let config_generation =
            IntGauge::new("manifold_config_generation", "Generation of the config being served").expect("valid metric");
        let config_loads = IntCounterVec::new(
            Opts::new("manifold_config_loads_total", "Config loads by outcome: applied, unchanged or rejected"),
            &["outcome"],
        )
        .expect("valid metric");
        let session_entries =
            IntGauge::new("manifold_session_entries", "MCP client sessions held in this replica's memory")
                .expect("valid metric");
        let in_flight =
            IntGauge::new("manifold_requests_in_flight", "MCP requests being answered").expect("valid metric");
        let refusals = IntCounterVec::new(
            Opts::new("manifold_access_refusals_total", "Requests refused by authentication or authorization"),
            &["namespace", "route", "reason"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(refusals.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(requests.clone()),
            Box::new(upstream_seconds.clone()),
            Box::new(config_generation.clone()),
            Box::new(config_loads.clone()),
            Box::new(session_entries.clone()),
            Box::new(in_flight.clone()),
        ] {
            registry.register(collector).expect("metric registers once");
        }
        Metrics {
            registry,
            requests,
            upstream_seconds,
            config_generation,
            config_loads,
            session_entries,
            in_flight,
            refusals,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("metrics encode");
        String::from_utf8(out).expect("metrics are UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
