//! When the controller reconciles next: changes, a new term, polls and retries in; the
//! instant the next reconcile is due out. Pure: the loop reads [`Debounce::due`] and sleeps
//! until it ([`sleep_until`]).

use std::time::Duration;

use tokio::time::Instant;

/// How long a burst of changes must be quiet before a reconcile: 100 objects applied at
/// once make a handful of publishes, not 100.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// The longest a change waits while others keep coming: a steady stream of changes cannot
/// hold publishing off.
pub const MAX_DELAY: Duration = Duration::from_secs(2);

/// When to reconcile next.
#[derive(Debug, Default)]
pub struct Debounce {
    /// The first change not reconciled yet.
    pending_since: Option<Instant>,
    pub due: Option<Instant>,
    /// Not before this (a failure's backoff): changes do not bring a retry forward.
    hold: Option<Instant>,
}

impl Debounce {
    /// A change at `now`: reconcile once things are quiet for [`DEBOUNCE`], and at the
    /// latest [`MAX_DELAY`] after the first change not reconciled yet.
    pub fn changed(&mut self, now: Instant) {
        let first = *self.pending_since.get_or_insert(now);
        let due = (now + DEBOUNCE).min(first + MAX_DELAY);
        self.due = Some(self.hold.map_or(due, |hold| due.max(hold)));
    }

    /// Reconcile at once (this replica just became leader, or must start again).
    pub fn now(&mut self, now: Instant) {
        self.pending_since.get_or_insert(now);
        self.hold = None;
        self.due = Some(now);
    }

    /// Look again after `wait`, unless a change comes first.
    pub fn poll(&mut self, now: Instant, wait: Duration) {
        self.due = Some(self.due.map_or(now + wait, |due| due.min(now + wait)));
    }

    /// Try again after `wait`, whatever comes meanwhile.
    pub fn retry(&mut self, now: Instant, wait: Duration) {
        self.hold = Some(now + wait);
        self.due = self.hold;
    }

    /// A reconcile starts: what changed until now is in it.
    pub fn started(&mut self) {
        (self.pending_since, self.due) = (None, None);
    }

    /// It succeeded: no backoff holds.
    pub fn succeeded(&mut self) {
        self.hold = None;
    }
}

/// Sleeps until `at`, or for ever when there is nothing to wait for.
pub async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many reconciles `changes` (offsets from a start) lead to, the loop taking each due
    /// reconcile as soon as it is due.
    fn reconciles(changes: &[Duration]) -> usize {
        let start = Instant::now();
        let mut debounce = Debounce::default();
        let mut count = 0;
        for at in changes.iter().map(|offset| start + *offset) {
            if debounce.due.is_some_and(|due| due <= at) {
                debounce.started();
                count += 1;
            }
            debounce.changed(at);
        }
        count + usize::from(debounce.due.is_some())
    }

    #[test]
    fn bursts_of_changes_make_a_handful_of_reconciles() {
        let burst: Vec<Duration> = (0..100).map(|i| Duration::from_millis(i * 2)).collect();
        assert_eq!(reconciles(&burst), 1, "100 objects applied at once");
        let steady: Vec<Duration> = (0..100).map(|i| Duration::from_millis(i * 100)).collect();
        assert_eq!(reconciles(&steady), 5, "a change every 100 ms for 10 s: every MAX_DELAY");
        let apart: Vec<Duration> = (0..3).map(|i| Duration::from_secs(i * 10)).collect();
        assert_eq!(reconciles(&apart), 3, "changes far apart each get theirs");
    }

    #[test]
    fn changes_do_not_bring_a_retry_forward_but_do_bring_a_poll() {
        let start = Instant::now();
        let mut debounce = Debounce::default();
        debounce.retry(start, Duration::from_secs(20));
        debounce.changed(start + Duration::from_secs(1));
        assert_eq!(debounce.due, Some(start + Duration::from_secs(20)), "a failure's backoff holds");
        debounce.started();
        debounce.succeeded();
        debounce.poll(start + Duration::from_secs(30), Duration::from_secs(60));
        debounce.changed(start + Duration::from_secs(31));
        assert_eq!(
            debounce.due,
            Some(start + Duration::from_secs(31) + DEBOUNCE),
            "a change does not wait for the poll"
        );
    }
}
