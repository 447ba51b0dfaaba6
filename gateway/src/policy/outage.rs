//! Whether the shared rate limit store (Redis) is answering, as this replica sees it. The
//! first failure starts an outage (the caller logs it, once); from then on requests do not
//! wait for the store, but one of them asks it again each [`PROBE_EVERY`]; the first answer
//! ends the outage (logged once too). Lock-free: it sits on the path of every limited request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a replica asks a store that failed whether it answers again.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

pub struct Outage {
    epoch: Instant,
    /// 0 while the store answers; else when the next probe may go (ms since `epoch`, plus 1).
    next_probe: AtomicU64,
    /// When the outage began (ms since `epoch`, plus 1).
    since: AtomicU64,
    /// Requests decided without the store during this outage.
    decided_without: AtomicU64,
}

/// An outage that ended.
#[derive(Debug, PartialEq)]
pub struct Ended {
    pub lasted: Duration,
    /// Requests decided without the store meanwhile.
    pub decided_without: u64,
}

impl Outage {
    pub fn new(epoch: Instant) -> Self {
        Outage { epoch, next_probe: AtomicU64::new(0), since: AtomicU64::new(0), decided_without: AtomicU64::new(0) }
    }

    /// Whether a request at `now` should ask the store: always while it answers; during an
    /// outage, only the first request once a probe is due (it takes the turn).
    pub fn ask(&self, now: Instant) -> bool {
        let next = self.next_probe.load(Ordering::Acquire);
        if next == 0 {
            return true;
        }
        let now = self.millis(now);
        now >= next
            && self
                .next_probe
                .compare_exchange(next, now + millis(PROBE_EVERY), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// The store failed a request at `now`: true when this starts an outage.
    pub fn failed(&self, now: Instant) -> bool {
        let now = self.millis(now);
        let next = now + millis(PROBE_EVERY);
        match self.next_probe.compare_exchange(0, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                self.since.store(now, Ordering::Release);
                true
            }
            Err(_) => false,
        }
    }

    /// A request was decided without the store.
    pub fn decided_without(&self) {
        self.decided_without.fetch_add(1, Ordering::Relaxed);
    }

    /// The store answered at `now`: the outage this ends, if any.
    pub fn answered(&self, now: Instant) -> Option<Ended> {
        if self.next_probe.load(Ordering::Acquire) == 0 || self.next_probe.swap(0, Ordering::AcqRel) == 0 {
            return None;
        }
        let since = self.since.load(Ordering::Acquire);
        let lasted = Duration::from_millis(self.millis(now).saturating_sub(since));
        Some(Ended { lasted, decided_without: self.decided_without.swap(0, Ordering::Relaxed) })
    }

    /// How long until the store is asked again (zero while it answers).
    pub fn next_probe_in(&self, now: Instant) -> Duration {
        match self.next_probe.load(Ordering::Acquire) {
            0 => Duration::ZERO,
            next => Duration::from_millis(next.saturating_sub(self.millis(now))),
        }
    }

    /// Whether an outage is going on.
    pub fn is_down(&self) -> bool {
        self.next_probe.load(Ordering::Acquire) != 0
    }

    fn millis(&self, at: Instant) -> u64 {
        millis(at.saturating_duration_since(self.epoch)) + 1
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_starts_once_lets_one_probe_through_each_second_and_ends_once() {
        let start = Instant::now();
        let outage = Outage::new(start);
        assert!(outage.ask(start) && !outage.is_down());
        assert_eq!(outage.answered(start), None, "no outage to end");

        let at = |ms| start + Duration::from_millis(ms);
        assert!(outage.failed(at(10)), "the first failure starts it");
        assert!(!outage.failed(at(11)), "others in flight then do not start another");
        assert!(outage.is_down());
        assert!(!outage.ask(at(500)), "no request waits for a store that failed");
        assert_eq!(outage.next_probe_in(at(500)), Duration::from_millis(510));
        outage.decided_without();
        outage.decided_without();
        assert!(outage.ask(at(1010)), "a probe is due");
        assert!(!outage.ask(at(1010)), "and only one request takes it");
        assert!(!outage.failed(at(1012)), "the probe failed: still the same outage");
        assert!(!outage.ask(at(1500)));
        assert!(outage.ask(at(2011)));

        let ended = outage.answered(at(2015)).expect("the probe's answer ends it");
        assert_eq!(ended, Ended { lasted: Duration::from_millis(2005), decided_without: 2 });
        assert_eq!(outage.answered(at(2016)), None, "ended once");
        assert!(outage.ask(at(2016)) && !outage.is_down());
        assert_eq!(outage.next_probe_in(at(2016)), Duration::ZERO);
        assert!(outage.failed(at(3000)), "the next failure is a new outage");
        assert_eq!(outage.answered(at(3000)).map(|e| e.decided_without), Some(0));
    }
}
