//! Resilience as gateways execute it: every default filled in, durations in milliseconds.
//! The `Default` of each type is the default a server or route gets without the field, so a
//! config written before these fields existed reads as the defaults.

use serde::{Deserialize, Serialize};

/// Retries, breaker and concurrency cap toward one upstream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ResilienceConfig {
    pub retries: RetryConfig,
    pub circuit_breaker: BreakerConfig,
    pub concurrency: ConcurrencyConfig,
}

impl ResilienceConfig {
    /// Whether this is what a server without `resilience` gets (not written out then).
    pub fn is_default(&self) -> bool {
        *self == ResilienceConfig::default()
    }
}

/// Retries of requests that are safe to repeat.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", default)]
pub struct RetryConfig {
    /// Retries after the first attempt; 0: none.
    pub attempts: u32,
    /// The ceiling of the first retry's jittered wait.
    pub backoff_ms: u64,
    /// The ceiling the doubling wait stops at.
    pub max_backoff_ms: u64,
    /// Retries over the last 10 s may be this percentage of requests over them...
    pub budget_percent: u32,
    /// ...plus this many per second.
    pub min_retries_per_second: u32,
    /// The longest upstream `Retry-After` a retry waits out.
    pub max_retry_after_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 2,
            backoff_ms: 100,
            max_backoff_ms: 2_000,
            budget_percent: 20,
            min_retries_per_second: 3,
            max_retry_after_ms: 5_000,
        }
    }
}

/// A circuit breaker's thresholds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", default)]
pub struct BreakerConfig {
    /// Failures in a row that open it; 0: runs are not counted.
    pub consecutive_failures: u32,
    /// Failure percentage over the window that opens it; 0: the rate is not counted.
    pub failure_rate_percent: u32,
    /// Requests the window must hold before its rate counts.
    pub minimum_requests: u32,
    pub window_ms: u64,
    /// How long it stays open before a probe.
    pub open_for_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            consecutive_failures: 5,
            failure_rate_percent: 50,
            minimum_requests: 20,
            window_ms: 30_000,
            open_for_ms: 15_000,
        }
    }
}

/// A cap on requests in flight.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", default)]
pub struct ConcurrencyConfig {
    pub max_in_flight: u32,
    /// How long a request waits for a place; 0: refused at once.
    pub max_wait_ms: u64,
}

impl Default for ConcurrencyConfig {
    fn default() -> Self {
        ConcurrencyConfig { max_in_flight: 1024, max_wait_ms: 1_000 }
    }
}

/// A route's side of resilience.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct RouteResilienceConfig {
    /// The route's own cap on requests in flight; none: no cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyConfig>,
    /// Tool calls of tools declaring `idempotentHint: true` may be retried.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retry_idempotent_tools: bool,
}

impl RouteResilienceConfig {
    pub fn is_default(&self) -> bool {
        *self == RouteResilienceConfig::default()
    }
}
