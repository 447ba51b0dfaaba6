//! Upstream resilience: how the gateway treats an McpServer that fails or is slow (retries,
//! a circuit breaker, a concurrency cap), and what an McpRoute adds on its side (a cap on
//! its own requests in flight, and leave to retry tools that declare `idempotentHint`).

use kube::KubeSchema;
use kube::core::Duration;
use serde::{Deserialize, Serialize};

/// How the gateway protects itself and the server from a failing or slow server. Every field
/// has a default, so a server without `resilience` is already retried, guarded by a breaker
/// and capped.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Resilience {
    /// Retries of requests that are safe to repeat (lists, `resources/read`, `prompts/get`,
    /// and `tools/call` of tools declaring `idempotentHint` on routes that allow it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// Stops calling a server that keeps failing, and tries it again after a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// How many requests may be in flight to this server at once (across every route of the
    /// namespace that mounts it), and how long one waits for its turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
}

/// Retries with exponential backoff, full jitter and a budget.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    /// Retries after the first attempt. Default 2; 0 turns retries off; at most 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 5))]
    pub attempts: Option<i32>,
    /// The longest wait before the first retry; each further retry may wait twice as long.
    /// The wait is drawn at random below it (full jitter). Default `100ms`; more than 0s, at
    /// most `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s') && duration(self) <= duration('10s')").message("backoff must be greater than 0s and at most 10s"))]
    pub backoff: Option<Duration>,
    /// The ceiling of the doubling wait. Default `2s`; at most `1m`, at least `backoff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s') && duration(self) <= duration('1m')").message("maxBackoff must be greater than 0s and at most 1m"))]
    pub max_backoff: Option<Duration>,
    /// The retry budget: retries over the last 10 seconds may be at most this percentage of
    /// the requests over the same 10 seconds (plus `minRetriesPerSecond`), so a failing server
    /// gets a trickle of retries, not a multiple of its load. Default 20; 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub budget_percent: Option<i32>,
    /// Retries per second always allowed, whatever the traffic. Default 3; 0 to 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_retries_per_second: Option<i32>,
    /// The longest `Retry-After` of a server's 429 or 503 that a retry waits out; a longer one
    /// is passed to the client instead. Default `5s`; at most `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('0s') && duration(self) <= duration('1m')").message("maxRetryAfter must be between 0s and 1m"))]
    pub max_retry_after: Option<Duration>,
}

/// A circuit breaker: opened by consecutive failures or by a failure rate over a window;
/// while open every request to the server fails at once; after `openFor` one probe request
/// goes through (half-open), and its success closes the breaker, its failure opens it again.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreaker {
    /// Failures in a row that open the breaker. Default 5; 0 ignores runs of failures; at
    /// most 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub consecutive_failures: Option<i32>,
    /// The percentage of failed requests over `window` that opens the breaker (once the
    /// window holds `minimumRequests`). Default 50; 0 ignores the rate; at most 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub failure_rate_percent: Option<i32>,
    /// Requests the window must hold before its failure rate counts. Default 20; 1 to 100000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100_000))]
    pub minimum_requests: Option<i32>,
    /// How far back the failure rate looks. Default `30s`; from `1s` to `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('10m')").message("window must be between 1s and 10m"))]
    pub window: Option<Duration>,
    /// How long the breaker stays open before a probe is let through. Default `15s`; from
    /// `100ms` to `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('100ms') && duration(self) <= duration('1h')").message("openFor must be between 100ms and 1h"))]
    pub open_for: Option<Duration>,
}

/// A cap on requests in flight, with a bounded wait for a free place.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Concurrency {
    /// Requests in flight at once. 1 to 100000 (a server's default is 1024).
    #[schemars(range(min = 1, max = 100_000))]
    pub max_in_flight: i32,
    /// How long a request waits for a place before it is refused with a retry hint.
    /// Default `1s`; `0s` refuses at once; at most `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('0s') && duration(self) <= duration('1m')").message("maxWait must be between 0s and 1m"))]
    pub max_wait: Option<Duration>,
}

/// A route's side of resilience.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteResilience {
    /// A cap on this route's requests in flight (POSTs; event streams are not counted). A
    /// request that finds no place within `maxWait` is refused before its body is read, with
    /// HTTP 429 and `Retry-After`. None: no cap of the route's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// Whether a `tools/call` that failed after it reached the server may be sent again when
    /// the tool's annotations (in the server's `tools/list`) declare `idempotentHint: true`.
    /// The route then trusts the server's hint: such a call may run twice. Default false: a
    /// tool call the server may have acted on is never sent again (one that provably never
    /// left the gateway, such as a refused connection, is retried either way).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry_idempotent_tools: bool,
}
