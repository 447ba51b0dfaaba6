//! A circuit breaker for one upstream, as a state machine over injected time. Closed, every
//! request goes; `consecutiveFailures` failures in a row, or a failure rate of
//! `failureRatePercent` over the window (once it holds `minimumRequests`), open it. Open,
//! every request is refused at once until `openFor` has passed; then one request goes as a
//! probe (half-open): its success closes the breaker, its failure opens it again. A probe that
//! never reports (its caller went away) is replaced by another after `openFor`.
//!
//! Admitting a request while closed is one atomic load; recording its success one more, plus
//! the window's counts. Only transitions write the state.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use manifold_api::config::BreakerConfig;

use super::window::{Count, Window};

/// Where the breaker stands; the gauge's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl State {
    fn from_u8(value: u8) -> State {
        match value {
            1 => State::Open,
            2 => State::HalfOpen,
            _ => State::Closed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

/// What the breaker lets a request do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go: the breaker is closed.
    Go,
    /// Go as the half-open breaker's probe.
    Probe,
    /// Refused: the breaker is open; the next probe goes in `retry_in_ms`.
    Refused { retry_in_ms: u64 },
}

/// A change of state, for metrics and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
}

pub struct Breaker {
    config: BreakerConfig,
    state: AtomicU8,
    consecutive: AtomicU32,
    /// When it last opened (ms on the caller's clock).
    opened_at: AtomicU64,
    /// When the current probe was let through.
    probe_at: AtomicU64,
    /// Requests (A) and failures (B).
    window: Window,
}

impl Breaker {
    pub fn new(config: &BreakerConfig) -> Self {
        Breaker {
            config: config.clone(),
            state: AtomicU8::new(State::Closed as u8),
            consecutive: AtomicU32::new(0),
            opened_at: AtomicU64::new(0),
            probe_at: AtomicU64::new(0),
            window: Window::new(config.window_ms),
        }
    }

    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Whether a request may go at `now`, and how; a probe let through is reported as a
    /// transition to half-open when it is the first.
    pub fn admit(&self, now: u64) -> (Admission, Option<Transition>) {
        let open_for = self.config.open_for_ms;
        match self.state() {
            State::Closed => (Admission::Go, None),
            State::Open => {
                let until = self.opened_at.load(Ordering::Acquire).saturating_add(open_for);
                if now < until {
                    return (Admission::Refused { retry_in_ms: until - now }, None);
                }
                self.probe_at.store(now, Ordering::Release);
                let half_open = self.state.compare_exchange(
                    State::Open as u8,
                    State::HalfOpen as u8,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                match half_open {
                    Ok(_) => (Admission::Probe, Some(Transition { from: State::Open, to: State::HalfOpen })),
                    // Another request took the probe (or closed it) meanwhile.
                    Err(_) => (Admission::Refused { retry_in_ms: open_for }, None),
                }
            }
            State::HalfOpen => {
                let probe_at = self.probe_at.load(Ordering::Acquire);
                let stale = probe_at.saturating_add(open_for);
                if now >= stale
                    && self.probe_at.compare_exchange(probe_at, now, Ordering::AcqRel, Ordering::Acquire).is_ok()
                {
                    return (Admission::Probe, None);
                }
                (Admission::Refused { retry_in_ms: stale.saturating_sub(now).max(1) }, None)
            }
        }
    }

    /// Records how an admitted request ended (`failed`: see `Failure` in the parent module).
    pub fn record(&self, now: u64, admission: Admission, failed: bool) -> Option<Transition> {
        match admission {
            Admission::Refused { .. } => None,
            Admission::Probe if failed => self.open(now, State::HalfOpen),
            Admission::Probe => {
                self.consecutive.store(0, Ordering::Relaxed);
                self.window.clear();
                let closed = self.state.compare_exchange(
                    State::HalfOpen as u8,
                    State::Closed as u8,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                closed.ok().map(|_| Transition { from: State::HalfOpen, to: State::Closed })
            }
            Admission::Go if !failed => {
                self.window.add(now, Count::A);
                if self.consecutive.load(Ordering::Relaxed) != 0 {
                    self.consecutive.store(0, Ordering::Relaxed);
                }
                None
            }
            Admission::Go => {
                self.window.add(now, Count::A);
                self.window.add(now, Count::B);
                let run = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
                let by_run = self.config.consecutive_failures > 0 && run >= self.config.consecutive_failures;
                if by_run || self.rate_exceeded(now) { self.open(now, State::Closed) } else { None }
            }
        }
    }

    fn rate_exceeded(&self, now: u64) -> bool {
        if self.config.failure_rate_percent == 0 {
            return false;
        }
        let (requests, failures) = self.window.sums(now);
        requests >= u64::from(self.config.minimum_requests)
            && failures * 100 >= requests * u64::from(self.config.failure_rate_percent)
    }

    fn open(&self, now: u64, from: State) -> Option<Transition> {
        self.opened_at.store(now, Ordering::Release);
        let opened = self.state.compare_exchange(from as u8, State::Open as u8, Ordering::AcqRel, Ordering::Acquire);
        opened.ok().map(|_| {
            self.consecutive.store(0, Ordering::Relaxed);
            Transition { from, to: State::Open }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(consecutive_failures: u32, failure_rate_percent: u32) -> Breaker {
        Breaker::new(&BreakerConfig {
            consecutive_failures,
            failure_rate_percent,
            minimum_requests: 10,
            window_ms: 10_000,
            open_for_ms: 1_000,
        })
    }

    /// Sends one request at `now` that ends as `failed` says, and returns its admission.
    fn send(breaker: &Breaker, now: u64, failed: bool) -> Admission {
        let (admission, _) = breaker.admit(now);
        breaker.record(now, admission, failed);
        admission
    }

    #[test]
    fn consecutive_failures_open_it_and_a_success_between_them_starts_over() {
        let b = breaker(3, 0);
        send(&b, 0, true);
        send(&b, 1, true);
        send(&b, 2, false);
        send(&b, 3, true);
        send(&b, 4, true);
        assert_eq!(b.state(), State::Closed, "two in a row since the success");
        let (admission, _) = b.admit(5);
        assert_eq!(b.record(5, admission, true), Some(Transition { from: State::Closed, to: State::Open }));
        assert_eq!(b.admit(6), (Admission::Refused { retry_in_ms: 999 }, None));
    }

    #[test]
    fn a_failure_rate_opens_it_once_the_window_holds_enough_requests() {
        let b = breaker(0, 50);
        for i in 0..4 {
            send(&b, i, true);
            send(&b, i, false);
        }
        send(&b, 5, true);
        assert_eq!(b.state(), State::Closed, "9 requests are below the minimum of 10");
        send(&b, 6, false);
        assert_eq!(b.state(), State::Closed, "a success never opens it");
        send(&b, 7, true);
        assert_eq!(b.state(), State::Open, "6 failures of 11 requests");

        let quiet = breaker(0, 50);
        for i in 0..9 {
            send(&quiet, i, true);
        }
        send(&quiet, 20_000, true);
        assert_eq!(quiet.state(), State::Closed, "the nine failures before are out of the window");
    }

    #[test]
    fn after_open_for_one_probe_goes_and_its_outcome_decides() {
        let b = breaker(1, 0);
        send(&b, 0, true);
        assert_eq!(b.admit(999).0, Admission::Refused { retry_in_ms: 1 });
        let (probe, transition) = b.admit(1_000);
        assert_eq!(
            (probe, transition),
            (Admission::Probe, Some(Transition { from: State::Open, to: State::HalfOpen }))
        );
        assert_eq!(b.admit(1_001).0, Admission::Refused { retry_in_ms: 999 }, "one probe at a time");
        assert_eq!(b.record(1_100, probe, true), Some(Transition { from: State::HalfOpen, to: State::Open }));
        assert_eq!(b.admit(2_000).0, Admission::Refused { retry_in_ms: 100 }, "open again from the probe's failure");
        let (probe, _) = b.admit(2_100);
        assert_eq!(probe, Admission::Probe);
        assert_eq!(b.record(2_200, probe, false), Some(Transition { from: State::HalfOpen, to: State::Closed }));
        assert_eq!(b.admit(2_201), (Admission::Go, None));
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_open_for() {
        let b = breaker(1, 0);
        send(&b, 0, true);
        let (lost, _) = b.admit(1_000);
        assert_eq!(lost, Admission::Probe);
        assert!(matches!(b.admit(1_500).0, Admission::Refused { .. }));
        assert_eq!(b.admit(2_000), (Admission::Probe, None), "the lost probe does not hold it half-open forever");
    }

    #[test]
    fn requests_admitted_before_it_opened_change_nothing_when_they_end() {
        let b = breaker(1, 0);
        let (early, _) = b.admit(0);
        send(&b, 0, true);
        assert_eq!(b.record(1, early, true), None, "already open");
        assert_eq!(b.record(1, early, false), None);
        assert_eq!(b.state(), State::Open);
    }
}
