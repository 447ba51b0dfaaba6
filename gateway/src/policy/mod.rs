//! Traffic policy, between authorization and dispatch: a request the route's access control
//! let through meets its rate limits ([`limits`]), then its cache ([`cache`]), before it
//! reaches a mount; on its way to the mount it meets that upstream's breaker, cap and retries
//! ([`resilience`]). The [`Limiter`] counts limits in this replica's buckets, or with
//! `--rate-limit-redis` in Redis for every replica at once ([`cluster`]).

pub mod cache;
pub mod cluster;
pub mod keys;
pub mod limits;
pub mod outage;
pub mod resilience;

use std::time::Instant;

use crate::metrics::Metrics;
use crate::protocol::Kind;
use limits::{Buckets, Limited, Limits};

/// Where rate limits are counted.
#[derive(Default)]
pub struct Limiter {
    /// This replica's buckets: all of them, or, with Redis, those used while it fails open.
    local: Buckets,
    shared: Option<cluster::Shared>,
}

impl Limiter {
    /// Buckets in Redis when `redis` is set, else this replica's.
    pub fn new(redis: Option<&cluster::RedisSettings>, metrics: &Metrics) -> Result<Self, String> {
        let shared = redis.map(|settings| cluster::Shared::new(settings, metrics)).transpose()?;
        Ok(Limiter { local: Buckets::default(), shared })
    }

    /// Connects to Redis, if any, and loads the script, so the first requests do not pay for
    /// it; a Redis that does not answer then starts an outage (logged) at once.
    pub async fn warm_up(&self) {
        if let Some(shared) = &self.shared {
            shared.warm_up().await;
        }
    }

    /// Takes a token from every bucket of `limits` that counts this request (`target`: the
    /// component it is about, if any) for `principal`, or none: see [`Limits::check`].
    pub async fn check(&self, limits: &Limits, principal: &str, target: Option<(Kind, &str)>) -> Result<(), Limited> {
        match &self.shared {
            None => {
                let check = || limits.check(&self.local, principal, target, Instant::now());
                crate::traces::instant("rate_limit", check, limit_attributes)
            }
            // Boxed: the Redis round trip's state would otherwise widen every request's future.
            Some(shared) => {
                let check = Box::pin(shared.check(limits, &self.local, principal, target));
                crate::traces::traced_with("rate_limit", check, limit_attributes).await
            }
        }
    }
}

/// `manifold.limit`: `allowed`, or the name of the limit that refused.
fn limit_attributes(decided: &Result<(), Limited>) -> Vec<opentelemetry::KeyValue> {
    let outcome = match decided {
        Ok(()) => "allowed".to_owned(),
        Err(refused) => refused.name.clone(),
    };
    vec![opentelemetry::KeyValue::new("manifold.limit", outcome)]
}
