//! One cached token and the single fetch that may replace it: while the token is fresh,
//! callers read it without waiting; once it is not, one caller fetches and the others wait
//! for that fetch's outcome, success or failure, rather than asking the provider again.
//! It works across the gateway's worker threads, each with its own runtime: the gate is a
//! tokio mutex, which belongs to no runtime, and the fetch runs on the thread of the caller
//! that holds the gate.

use std::future::Future;
use std::sync::{Arc, Mutex};

use super::Denied;

#[derive(Default)]
pub struct Flight {
    state: Mutex<State>,
    /// Held by the one caller fetching.
    gate: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    token: Option<Fetched>,
    /// Fetches finished so far: a caller that waited at the gate sees whether one ended
    /// meanwhile, and then takes its outcome.
    finished: u64,
    /// The last fetch's failure, for those who waited for it.
    failure: Option<Denied>,
}

/// A token and when to fetch the next one (Unix milliseconds).
#[derive(Clone)]
pub struct Fetched {
    pub token: Arc<str>,
    pub refresh_at: u64,
}

impl Flight {
    /// The token, fetched by `fetch` when there is none fresh at `now` (Unix ms).
    pub async fn get<F>(&self, now: u64, fetch: impl FnOnce() -> F) -> Result<Arc<str>, Denied>
    where
        F: Future<Output = Result<Fetched, Denied>>,
    {
        let seen = {
            let state = self.state.lock().expect("token state lock poisoned");
            if let Some(token) = state.fresh(now) {
                return Ok(token);
            }
            state.finished
        };
        let _turn = self.gate.lock().await;
        {
            let state = self.state.lock().expect("token state lock poisoned");
            if let Some(token) = state.fresh(now) {
                return Ok(token);
            }
            if state.finished != seen {
                // A fetch ended while this caller waited: its outcome is this caller's too
                // (unless its token was rejected since: then fetch anew).
                if let Some(fetched) = &state.token {
                    return Ok(fetched.token.clone());
                }
                if let Some(failure) = &state.failure {
                    return Err(failure.clone());
                }
            }
        }
        // A caller dropped while fetching releases the gate unfinished: the next one fetches.
        let outcome = fetch().await;
        let mut state = self.state.lock().expect("token state lock poisoned");
        state.finished += 1;
        match outcome {
            Ok(fetched) => {
                let token = fetched.token.clone();
                state.token = Some(fetched);
                state.failure = None;
                Ok(token)
            }
            Err(failure) => {
                state.token = None;
                state.failure = Some(failure.clone());
                Err(failure)
            }
        }
    }

    /// Drops the token if it is still `sent` (a newer one fetched meanwhile stays); whether
    /// it was dropped.
    pub fn forget(&self, sent: &str) -> bool {
        let mut state = self.state.lock().expect("token state lock poisoned");
        let is_sent = state.token.as_ref().is_some_and(|fetched| &*fetched.token == sent);
        if is_sent {
            state.token = None;
        }
        is_sent
    }

    /// Whether this holds nothing worth keeping at `now`: no fresh token and no fetch under way.
    pub fn spent(&self, now: u64) -> bool {
        let fresh = self.state.lock().expect("token state lock poisoned").fresh(now).is_some();
        !fresh && self.gate.try_lock().is_ok()
    }

    /// When its token is due for refreshing (0: none held).
    pub fn refresh_at(&self) -> u64 {
        self.state.lock().expect("token state lock poisoned").token.as_ref().map_or(0, |t| t.refresh_at)
    }
}

impl State {
    fn fresh(&self, now: u64) -> Option<Arc<str>> {
        self.token.as_ref().filter(|fetched| now < fetched.refresh_at).map(|fetched| fetched.token.clone())
    }
}

/// When a token good for `lifetime_ms` from `now` should be replaced: a little before it
/// expires, by min(30 s, a tenth of its lifetime), so a call never carries one that dies in
/// flight.
pub fn refresh_at(now: u64, lifetime_ms: u64) -> u64 {
    now + lifetime_ms - (lifetime_ms / 10).min(30_000)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}
