//! Upstream resilience, as pure parts over injected time: a circuit breaker per upstream
//! ([`breaker`]), retries within a budget with jittered backoff and `Retry-After`
//! ([`retry`]), caps on requests in flight ([`cap`]), and the sliding counts they keep
//! ([`window`]), and what the upstream's lists last said ([`known`]). [`Guard`] holds one
//! upstream's; `mcp::call` applies them to each request.

pub mod breaker;
pub mod cap;
pub mod known;
pub mod retry;
mod window;

use std::time::Instant;

use manifold_api::config::ResilienceConfig;

/// One upstream's breaker, retry budget and cap, shared by every route of the tenant that
/// mounts it (it lives in the upstream's client).
pub struct Guard {
    pub config: ResilienceConfig,
    pub breaker: breaker::Breaker,
    pub budget: retry::Budget,
    pub cap: cap::Cap,
    /// What its lists last said.
    pub known: known::Known,
    /// Time zero of the breaker's and the budget's clock.
    origin: Instant,
}

impl Guard {
    pub fn new(config: &ResilienceConfig) -> Self {
        Guard {
            config: config.clone(),
            breaker: breaker::Breaker::new(&config.circuit_breaker),
            budget: retry::Budget::new(&config.retries),
            cap: cap::Cap::new(&config.concurrency),
            known: known::Known::default(),
            origin: Instant::now(),
        }
    }

    /// Now, in ms on this guard's clock.
    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
