//! Waits that double with each failure up to a ceiling: retries against the API server,
//! polls, and streams reopened after they break.

use std::time::Duration;

/// The wait after `failures` failures in a row: `first`, doubled per failure, at most `max`.
pub fn after(failures: u32, first: Duration, max: Duration) -> Duration {
    first.saturating_mul(1u32 << failures.min(31)).min(max)
}

/// A wait that doubles each time it is taken, up to a ceiling, until reset.
#[derive(Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff { first, max, failures: 0 }
    }

    /// The next wait; the one after is twice as long.
    pub fn take(&mut self) -> Duration {
        let wait = after(self.failures, self.first, self.max);
        self.failures = self.failures.saturating_add(1);
        wait
    }

    /// Back to the first wait.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_doubles_up_to_its_ceiling_and_starts_over_when_reset() {
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
        let waits: Vec<u64> = (0..7).map(|_| backoff.take().as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60]);
        backoff.reset();
        assert_eq!(backoff.take(), Duration::from_secs(2));
        let long = after(u32::MAX, Duration::from_millis(250), Duration::from_secs(32));
        assert_eq!(long, Duration::from_secs(32), "no overflow however many failures");
    }
}
