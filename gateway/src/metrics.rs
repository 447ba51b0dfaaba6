//! Prometheus metrics of the data plane. Labels are bounded: tenant (namespace), route,
//! mount, method (known MCP methods, else "other") and outcome; never a session, a user or
//! an argument. The MCP conventions' histograms, with exemplars, are in [`conventions`].

pub mod conventions;

use manifold_runtime::label_set;
use manifold_runtime::metrics::{Counters, Format, Gauges, Histograms, LabelValue, gauge, render_as};
use prometheus::{IntCounter, IntGauge, Registry};

use crate::protocol::Method;

label_set! {
    /// An MCP request answered.
    pub struct RequestLabels<'a> { pub namespace: &'a str, pub route: &'a str, pub method: Method, pub outcome: Outcome }
}

label_set! {
    /// One exchange with a mounted server.
    pub struct UpstreamLabels<'a> { pub namespace: &'a str, pub route: &'a str, pub mount: &'a str, pub method: Method }
}

label_set! {
    /// A request refused by authentication or authorization.
    pub struct RefusalLabels<'a> { pub namespace: &'a str, pub route: &'a str, pub reason: RefusalReason }
}

label_set! {
    /// A request a rate limit refused; `limit` is the limit's name in the route's config.
    pub struct LimitLabels<'a> { pub namespace: &'a str, pub route: &'a str, pub limit: &'a str }
}

label_set! {
    /// A rate-limited request decided without the shared store (Redis), by what the gateway
    /// does then: `open` (this replica's own buckets) or `closed` (refused).
    pub struct StoreFailureLabels { pub outcome: StoreFailure }
}

/// What became of a rate-limited request the shared store did not decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFailure {
    /// Counted by this replica's own buckets.
    Open,
    /// Refused.
    Closed,
}

impl LabelValue for StoreFailure {
    fn label(&self) -> &str {
        match self {
            StoreFailure::Open => "open",
            StoreFailure::Closed => "closed",
        }
    }
}

label_set! {
    /// A round trip to the shared rate limit store, by its answer.
    pub struct StoreAnswerLabels { pub answer: StoreAnswer }
}

/// How a round trip to the rate limit store ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreAnswer {
    /// A token was taken from each bucket.
    Taken = 0,
    /// A bucket was empty.
    Refused = 1,
    /// A failure: the connection, Redis's error, or an answer that makes no sense.
    Error = 2,
    /// No answer within `--rate-limit-redis-timeout-ms`.
    Timeout = 3,
}

impl LabelValue for StoreAnswer {
    fn label(&self) -> &str {
        match self {
            StoreAnswer::Taken => "taken",
            StoreAnswer::Refused => "refused",
            StoreAnswer::Error => "error",
            StoreAnswer::Timeout => "timeout",
        }
    }
}

label_set! {
    /// A cache lookup or eviction: of a tool result or a merged list page, on a route.
    pub struct CacheLabels<'a> { pub namespace: &'a str, pub route: &'a str, pub kind: CacheKind }
}

/// What a cache entry holds, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheKind {
    /// A `tools/call` result.
    Tools,
    /// A merged list page.
    Lists,
}

impl LabelValue for CacheKind {
    fn label(&self) -> &str {
        match self {
            CacheKind::Tools => "tools",
            CacheKind::Lists => "lists",
        }
    }
}

label_set! {
    /// A retry of a request to a mount, or one not made: `outcome` says which.
    pub struct RetryLabels<'a> { pub namespace: &'a str, pub route: &'a str, pub mount: &'a str, pub outcome: RetryOutcome }
}

label_set! {
    /// One upstream's circuit breaker (shared by the tenant's routes, so no route label).
    pub struct BreakerLabels<'a> { pub namespace: &'a str, pub mount: &'a str }
}

label_set! {
    /// A circuit breaker's change of state.
    /// `to`: the state entered, as the breaker names it (`closed`, `open`, `half_open`).
    pub struct TransitionLabels<'a> { pub namespace: &'a str, pub mount: &'a str, pub to: &'a str }
}

label_set! {
    /// A request refused because a cap on requests in flight stayed full.
    pub struct CapLabels<'a> { pub namespace: &'a str, pub route: &'a str, pub cap: CapScope }
}

/// What became of a retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Sent, and answered.
    Succeeded,
    /// Sent, and failed too.
    Failed,
    /// Not sent: the retry budget was spent.
    BudgetExhausted,
    /// Not sent: the upstream's `Retry-After` was longer than the server's `maxRetryAfter`.
    RetryAfterTooLong,
}

impl LabelValue for RetryOutcome {
    fn label(&self) -> &str {
        match self {
            RetryOutcome::Succeeded => "succeeded",
            RetryOutcome::Failed => "failed",
            RetryOutcome::BudgetExhausted => "budget_exhausted",
            RetryOutcome::RetryAfterTooLong => "retry_after_too_long",
        }
    }
}

/// Which cap refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapScope {
    Route,
    Upstream,
}

impl LabelValue for CapScope {
    fn label(&self) -> &str {
        match self {
            CapScope::Route => "route",
            CapScope::Upstream => "upstream",
        }
    }
}

label_set! {
    /// A config load.
    pub struct LoadLabels { pub outcome: Load }
}

/// What a config load did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    Applied,
    /// The same config again.
    Unchanged,
    Rejected,
}

impl LabelValue for Load {
    fn label(&self) -> &str {
        match self {
            Load::Applied => "applied",
            Load::Unchanged => "unchanged",
            Load::Rejected => "rejected",
        }
    }
}

/// How a request ended, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A mounted server failed it.
    UpstreamError,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Error => "error",
        }
    }
}

impl LabelValue for Outcome {
    fn label(&self) -> &str {
        self.as_str()
    }
}

/// Why access was refused, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    MissingCredential,
    InvalidToken,
    InsufficientScope,
    /// Authorization's rules said no.
    Denied,
}

impl LabelValue for RefusalReason {
    fn label(&self) -> &str {
        match self {
            RefusalReason::MissingCredential => "missing_credential",
            RefusalReason::InvalidToken => "invalid_token",
            RefusalReason::InsufficientScope => "insufficient_scope",
            RefusalReason::Denied => "denied",
        }
    }
}

/// Clients choose method names: only the methods of [`KNOWN_METHODS`] are their own label
/// value, anything else is `other`.
impl LabelValue for Method {
    fn label(&self) -> &str {
        method_label(*self)
    }
}

pub struct Metrics {
    registry: Registry,
    /// The conventions' histograms: requests answered, attempts at mounts, sessions ended.
    pub conventions: conventions::Conventions,
    /// MCP requests by namespace, route, method and outcome.
    pub requests: Counters<RequestLabels<'static>>,
    /// Upstream request latency by namespace, route, mount and method.
    pub upstream_seconds: Histograms<UpstreamLabels<'static>>,
    /// Generation of the config being served.
    pub config_generation: IntGauge,
    /// Config loads by outcome (`applied`, `unchanged`, `rejected`).
    pub config_loads: Counters<LoadLabels>,
    /// Client sessions held in this replica's memory (a session lives in its token; an
    /// entry is what a replica keeps while the session is in use here).
    pub session_entries: IntGauge,
    /// MCP requests being answered right now.
    pub in_flight: IntGauge,
    /// Requests refused by authentication or authorization, by namespace, route and reason.
    pub refusals: Counters<RefusalLabels<'static>>,
    /// Requests refused by a rate limit, by namespace, route and limit.
    pub rate_limited: Counters<LimitLabels<'static>>,
    /// Rate-limited requests decided without the shared store, by outcome (`open`, `closed`).
    pub rate_limit_store_failures: Counters<StoreFailureLabels>,
    /// Round trips to the shared store, by answer.
    pub rate_limit_store_seconds: Histograms<StoreAnswerLabels>,
    /// 1 while the shared store does not answer this replica.
    pub rate_limit_store_down: IntGauge,
    /// Outages of the shared store seen by this replica.
    pub rate_limit_store_outages: IntCounter,
    /// Answers served from the cache, by namespace, route and kind (`tools`, `lists`).
    pub cache_hits: Counters<CacheLabels<'static>>,
    /// Cacheable requests not found in the cache, so asked upstream.
    pub cache_misses: Counters<CacheLabels<'static>>,
    /// Cacheable requests whose client asked for a fresh answer.
    pub cache_bypasses: Counters<CacheLabels<'static>>,
    /// Entries dropped to stay within the cache's byte budget.
    pub cache_evictions: Counters<CacheLabels<'static>>,
    /// Bytes the cache holds.
    pub cache_bytes: IntGauge,
    /// Retries of requests to mounts, by outcome.
    pub retries: Counters<RetryLabels<'static>>,
    /// Each upstream's breaker: 0 closed, 1 open, 2 half-open.
    pub breaker_state: Gauges<BreakerLabels<'static>>,
    /// Breaker changes of state, by the state entered.
    pub breaker_transitions: Counters<TransitionLabels<'static>>,
    /// Requests refused at once because a mount's breaker was open.
    pub breaker_refusals: Counters<BreakerLabels<'static>>,
    /// Requests refused because a cap on requests in flight stayed full.
    pub concurrency_refusals: Counters<CapLabels<'static>>,
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
        let conventions = conventions::Conventions::register(&registry);
        let requests = Counters::register(
            &registry,
            "manifold_requests_total",
            "MCP requests by tenant namespace, route, method and outcome",
        );
        let upstream_seconds = Histograms::register(
            &registry,
            "manifold_upstream_request_duration_seconds",
            "Latency of requests to mounted servers",
            vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
        );
        let config_generation = gauge(&registry, "manifold_config_generation", "Generation of the config being served");
        let config_loads = Counters::register(
            &registry,
            "manifold_config_loads_total",
            "Config loads by outcome: applied, unchanged or rejected",
        );
        let session_entries =
            gauge(&registry, "manifold_session_entries", "MCP client sessions held in this replica's memory");
        let in_flight = gauge(&registry, "manifold_requests_in_flight", "MCP requests being answered");
        let refusals = Counters::register(
            &registry,
            "manifold_access_refusals_total",
            "Requests refused by authentication or authorization",
        );
        let rate_limited =
            Counters::register(&registry, "manifold_rate_limited_total", "Requests refused by a route's rate limit");
        let rate_limit_store_failures = Counters::register(
            &registry,
            "manifold_rate_limit_store_failures_total",
            "Rate-limited requests decided without the shared store (Redis): open (this replica's buckets) or closed \
             (refused)",
        );
        let rate_limit_store_seconds = Histograms::register(
            &registry,
            "manifold_rate_limit_store_duration_seconds",
            "Round trips to the shared rate limit store (Redis), by answer: taken, refused, error, timeout",
            vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
        );
        let rate_limit_store_down = gauge(
            &registry,
            "manifold_rate_limit_store_down",
            "1 while the shared rate limit store (Redis) does not answer this replica",
        );
        let rate_limit_store_outages = IntCounter::new(
            "manifold_rate_limit_store_outages_total",
            "Outages of the shared rate limit store (Redis) seen by this replica",
        )
        .expect("a valid metric name");
        registry.register(Box::new(rate_limit_store_outages.clone())).expect("each metric is registered once");
        let cache = |name: &str, help: &str| Counters::register(&registry, name, help);
        let cache_hits = cache("manifold_cache_hits_total", "Answers served from the cache, upstreams not asked");
        let cache_misses = cache("manifold_cache_misses_total", "Cacheable requests not in the cache, asked upstream");
        let cache_bypasses =
            cache("manifold_cache_bypasses_total", "Cacheable requests whose client asked for a fresh answer");
        let cache_evictions =
            cache("manifold_cache_evictions_total", "Cache entries dropped to stay within the byte budget");
        let cache_bytes = gauge(&registry, "manifold_cache_bytes", "Bytes of keys and answers the cache holds");
        let retries = Counters::register(
            &registry,
            "manifold_upstream_retries_total",
            "Retries of requests to mounted servers by outcome: succeeded, failed, budget_exhausted, retry_after_too_long",
        );
        let breaker_state = Gauges::register(
            &registry,
            "manifold_circuit_breaker_state",
            "Circuit breaker of each mounted server: 0 closed, 1 open, 2 half-open",
        );
        let breaker_transitions = Counters::register(
            &registry,
            "manifold_circuit_breaker_transitions_total",
            "Circuit breaker changes of state, by the state entered",
        );
        let breaker_refusals = Counters::register(
            &registry,
            "manifold_circuit_breaker_refusals_total",
            "Requests failed at once because the mounted server's circuit breaker was open",
        );
        let concurrency_refusals = Counters::register(
            &registry,
            "manifold_concurrency_refusals_total",
            "Requests refused because a cap on requests in flight (route or upstream) stayed full",
        );
        Metrics {
            conventions,
            cache_hits,
            cache_misses,
            cache_bypasses,
            cache_evictions,
            cache_bytes,
            retries,
            breaker_state,
            breaker_transitions,
            breaker_refusals,
            concurrency_refusals,
            rate_limited,
            rate_limit_store_failures,
            rate_limit_store_seconds,
            rate_limit_store_down,
            rate_limit_store_outages,
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
        self.render_as(Format::Classic)
    }

    /// The registry in `format`; OpenMetrics carries the conventions' exemplars.
    pub fn render_as(&self, format: Format) -> String {
        let conventions = &self.conventions;
        render_as(
            format,
            &self.registry,
            &[conventions.server.family(), conventions.client.family(), conventions.session.family()],
        )
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
