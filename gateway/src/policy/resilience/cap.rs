//! A cap on requests in flight with a bounded wait: per upstream (shared by every route of
//! the tenant that mounts it) and per route. Taking a place when one is free is one atomic
//! operation and allocates nothing; only a request that has to wait sets a timer.

use std::sync::Arc;
use std::time::Duration;

use manifold_api::config::ConcurrencyConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A place in flight, given back when dropped.
pub type Place = OwnedSemaphorePermit;

pub struct Cap {
    places: Arc<Semaphore>,
    max_wait: Duration,
    /// The cap, for messages.
    pub max_in_flight: u32,
}

/// No place came free within the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    /// What the caller is told to wait: the wait it was given, in whole seconds, at least 1.
    pub retry_after_seconds: u64,
}

impl Cap {
    pub fn new(config: &ConcurrencyConfig) -> Self {
        Cap {
            places: Arc::new(Semaphore::new(config.max_in_flight as usize)),
            max_wait: Duration::from_millis(config.max_wait_ms),
            max_in_flight: config.max_in_flight,
        }
    }

    /// A place, at once when one is free, else the first to come free within the wait.
    pub async fn enter(&self) -> Result<Place, Full> {
        if let Ok(place) = Arc::clone(&self.places).try_acquire_owned() {
            return Ok(place);
        }
        let full = Full { retry_after_seconds: super::retry::whole_seconds(self.max_wait) };
        if self.max_wait.is_zero() {
            return Err(full);
        }
        match tokio::time::timeout(self.max_wait, Arc::clone(&self.places).acquire_owned()).await {
            Ok(Ok(place)) => Ok(place),
            // The semaphore is never closed; a timeout is the only way out.
            _ => Err(full),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_cap_waits_for_a_place_up_to_its_bound() {
        let cap = Cap::new(&ConcurrencyConfig { max_in_flight: 1, max_wait_ms: 500 });
        let first = cap.enter().await.expect("a free place");
        assert_eq!(cap.enter().await.err(), Some(Full { retry_after_seconds: 1 }), "none came free within 500 ms");
        let waiting = cap.enter();
        let freed = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(first);
        };
        let (entered, ()) = tokio::join!(waiting, freed);
        assert!(entered.is_ok(), "the place freed within the wait is taken");

        let no_wait = Cap::new(&ConcurrencyConfig { max_in_flight: 1, max_wait_ms: 0 });
        let _held = no_wait.enter().await.expect("a free place");
        assert!(no_wait.enter().await.is_err(), "a wait of 0 refuses at once");
    }
}
