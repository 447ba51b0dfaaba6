//! A wait that doubles each time it is taken: how long the controller waits before it looks
//! again at routes not Programmed yet, or tries a failed reconcile again. (The shared
//! runtime crate is to take this over.)

use std::time::Duration;

/// The longest any wait grows to.
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// A wait that doubles each time it is taken, up to [`MAX_RETRY`], until reset.
#[derive(Debug)]
pub struct Backoff {
    first: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration) -> Self {
        Backoff { first, next: first }
    }

    /// The wait now; the next one is twice as long.
    pub fn take(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_RETRY);
        wait
    }

    /// Back to the first wait.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_while_nothing_moves() {
        let mut poll = Backoff::new(Duration::from_secs(2));
        let waits: Vec<u64> = (0..7).map(|_| poll.take().as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60]);
        poll.reset();
        assert_eq!(poll.take(), Duration::from_secs(2));
    }
}
