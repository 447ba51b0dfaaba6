//! Compiles `resilience` of McpServers and McpRoutes: defaults filled in, every bound the CRD
//! states checked again (local mode has no API server), each mistake named by its path.

use std::time::Duration;

use crate::config::{BreakerConfig, ConcurrencyConfig, ResilienceConfig, RetryConfig, RouteResilienceConfig};
use crate::outcome::Problem;
use crate::resources::{Concurrency, Resilience, RouteResilience};

/// A server's resilience; `at` is where it is declared (`spec.resilience`).
pub(super) fn server(resilience: Option<&Resilience>, at: &str, invalid: &mut Vec<Problem>) -> ResilienceConfig {
    let Some(resilience) = resilience else { return ResilienceConfig::default() };
    let mut fields = Fields { invalid };
    let (d_retry, d_breaker) = (RetryConfig::default(), BreakerConfig::default());
    let retries = resilience.retries.as_ref().map_or(d_retry.clone(), |r| {
        let at = format!("{at}.retries");
        let attempts = fields.count(r.attempts, d_retry.attempts, &at, "attempts", (0, 5));
        let backoff_ms = fields.millis(r.backoff, d_retry.backoff_ms, &at, "backoff", (1, 10_000));
        let max_backoff_ms =
            fields.millis(r.max_backoff, d_retry.max_backoff_ms.max(backoff_ms), &at, "maxBackoff", (1, 60_000));
        if max_backoff_ms < backoff_ms {
            fields.invalid.push(Problem::new(format!("{at}.maxBackoff"), "maxBackoff must be at least backoff"));
        }
        RetryConfig {
            attempts,
            backoff_ms,
            max_backoff_ms,
            budget_percent: fields.count(r.budget_percent, d_retry.budget_percent, &at, "budgetPercent", (0, 100)),
            min_retries_per_second: fields.count(
                r.min_retries_per_second,
                d_retry.min_retries_per_second,
                &at,
                "minRetriesPerSecond",
                (0, 1000),
            ),
            max_retry_after_ms: fields.millis(
                r.max_retry_after,
                d_retry.max_retry_after_ms,
                &at,
                "maxRetryAfter",
                (0, 60_000),
            ),
        }
    });
    let circuit_breaker = resilience.circuit_breaker.as_ref().map_or(d_breaker.clone(), |b| {
        let at = format!("{at}.circuitBreaker");
        BreakerConfig {
            consecutive_failures: fields.count(
                b.consecutive_failures,
                d_breaker.consecutive_failures,
                &at,
                "consecutiveFailures",
                (0, 1000),
            ),
            failure_rate_percent: fields.count(
                b.failure_rate_percent,
                d_breaker.failure_rate_percent,
                &at,
                "failureRatePercent",
                (0, 100),
            ),
            minimum_requests: fields.count(
                b.minimum_requests,
                d_breaker.minimum_requests,
                &at,
                "minimumRequests",
                (1, 100_000),
            ),
            window_ms: fields.millis(b.window, d_breaker.window_ms, &at, "window", (1_000, 600_000)),
            open_for_ms: fields.millis(b.open_for, d_breaker.open_for_ms, &at, "openFor", (100, 3_600_000)),
        }
    });
    let concurrency = match &resilience.concurrency {
        Some(cap) => fields.concurrency(cap, &format!("{at}.concurrency")),
        None => ConcurrencyConfig::default(),
    };
    ResilienceConfig { retries, circuit_breaker, concurrency }
}

/// A route's resilience.
pub(super) fn route(resilience: Option<&RouteResilience>, invalid: &mut Vec<Problem>) -> RouteResilienceConfig {
    let Some(resilience) = resilience else { return RouteResilienceConfig::default() };
    let mut fields = Fields { invalid };
    RouteResilienceConfig {
        concurrency: resilience.concurrency.as_ref().map(|cap| fields.concurrency(cap, "spec.resilience.concurrency")),
        retry_idempotent_tools: resilience.retry_idempotent_tools,
    }
}

/// Reads fields, pushing what is out of bounds to `invalid`.
struct Fields<'a> {
    invalid: &'a mut Vec<Problem>,
}

impl Fields<'_> {
    fn concurrency(&mut self, cap: &Concurrency, at: &str) -> ConcurrencyConfig {
        let default = ConcurrencyConfig::default();
        ConcurrencyConfig {
            max_in_flight: self.count(Some(cap.max_in_flight), default.max_in_flight, at, "maxInFlight", (1, 100_000)),
            max_wait_ms: self.millis(cap.max_wait, default.max_wait_ms, at, "maxWait", (0, 60_000)),
        }
    }

    fn count(&mut self, value: Option<i32>, default: u32, at: &str, field: &str, (min, max): (u32, u32)) -> u32 {
        let Some(value) = value else { return default };
        match u32::try_from(value) {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                self.invalid
                    .push(Problem::new(format!("{at}.{field}"), format!("{field} must be between {min} and {max}")));
                default
            }
        }
    }

    fn millis(
        &mut self,
        value: Option<kube::core::Duration>,
        default: u64,
        at: &str,
        field: &str,
        (min, max): (u64, u64),
    ) -> u64 {
        let Some(value) = value else { return default };
        let ms = u64::try_from(Duration::from(value).as_millis()).unwrap_or(u64::MAX);
        if value.is_negative() || !(min..=max).contains(&ms) {
            let (min, max) = (human(min), human(max));
            self.invalid
                .push(Problem::new(format!("{at}.{field}"), format!("{field} must be between {min} and {max}")));
            return default;
        }
        ms
    }
}

/// A duration as the CRD's messages write it: `0s`, `100ms`, `10s`, `1m`, `1h`.
fn human(ms: u64) -> String {
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}
