//! What retries are allowed: a budget (retries over the last 10 s at most a percentage of the
//! requests over them, plus a floor per second), the wait before each (exponential, with full
//! jitter), and an upstream's `Retry-After`. Pure: time and randomness come from the caller.

use std::time::{Duration, SystemTime};

use manifold_api::config::RetryConfig;

use super::window::{Count, Window};

/// The budget looks this far back.
const BUDGET_WINDOW_MS: u64 = 10_000;

/// Requests (A) and retries (B) over the last 10 s, and what retries they allow.
pub struct Budget {
    percent: u64,
    floor: u64,
    window: Window,
}

impl Budget {
    pub fn new(config: &RetryConfig) -> Self {
        Budget {
            percent: u64::from(config.budget_percent),
            floor: u64::from(config.min_retries_per_second) * BUDGET_WINDOW_MS / 1000,
            window: Window::new(BUDGET_WINDOW_MS),
        }
    }

    /// Counts a request (its first attempt).
    pub fn request(&self, now: u64) {
        self.window.add(now, Count::A);
    }

    /// Whether one more retry fits at `now`; if so it is counted.
    pub fn withdraw(&self, now: u64) -> bool {
        let (requests, retries) = self.window.sums(now);
        if retries >= requests * self.percent / 100 + self.floor {
            return false;
        }
        self.window.add(now, Count::B);
        true
    }
}

/// The wait before retry number `retry` (0 for the first): drawn uniformly below a ceiling
/// that starts at `backoff` and doubles per retry up to `maxBackoff` (full jitter, so the
/// callers a failure hit at once do not come back at once). `random` is any random number.
pub fn backoff(config: &RetryConfig, retry: u32, random: u64) -> Duration {
    let ceiling = manifold_runtime::backoff::after(
        retry,
        Duration::from_millis(config.backoff_ms),
        Duration::from_millis(config.max_backoff_ms),
    );
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(random % ceiling_ms.saturating_add(1))
}

/// A random number for [`backoff`], from the standard library's per-process random keys (no
/// generator to keep: retries are rare).
pub fn random() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now())
}

/// An HTTP `Retry-After` value: whole seconds, or an HTTP date (the time from `now` until
/// then; a date past is no wait). None when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A delay as clients are told it: whole seconds, rounded up, at least 1.
pub fn whole_seconds(delay: Duration) -> u64 {
    delay.as_millis().div_ceil(1000).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RetryConfig {
        RetryConfig {
            backoff_ms: 100,
            max_backoff_ms: 1_000,
            budget_percent: 20,
            min_retries_per_second: 1,
            ..Default::default()
        }
    }

    #[test]
    fn the_budget_allows_a_percentage_of_recent_requests_plus_a_floor() {
        let budget = Budget::new(&config());
        let granted = (0..100).filter(|_| budget.withdraw(0)).count();
        assert_eq!(granted, 10, "with no traffic, the floor: 1 per second over 10 s");
        for _ in 0..100 {
            budget.request(1);
        }
        let granted = (0..100).filter(|_| budget.withdraw(1)).count();
        assert_eq!(granted, 20, "20% of 100 requests, the floor already spent");
        assert!(!budget.withdraw(9_999));
        assert!(budget.withdraw(10_000), "the first retries have left the window");
    }

    #[test]
    fn a_budget_of_nothing_allows_nothing() {
        let budget = Budget::new(&RetryConfig { budget_percent: 0, min_retries_per_second: 0, ..config() });
        budget.request(0);
        assert!(!budget.withdraw(0));
    }

    #[test]
    fn backoff_stays_below_a_doubling_ceiling_and_varies() {
        let config = config();
        for (retry, ceiling) in [(0, 100), (1, 200), (2, 400), (3, 800), (4, 1_000), (30, 1_000)] {
            for random in [0, 1, 99, 12_345, u64::MAX] {
                let wait = backoff(&config, retry, random).as_millis() as u64;
                assert!(wait <= ceiling, "retry {retry}: {wait} ms over {ceiling}");
            }
            assert_eq!(backoff(&config, retry, ceiling).as_millis() as u64, ceiling, "the ceiling itself is reachable");
        }
        assert_eq!(backoff(&config, 0, 0), Duration::ZERO);
        let draws: std::collections::HashSet<Duration> = (0..20).map(|_| backoff(&config, 3, random())).collect();
        assert!(draws.len() > 1, "jitter: waits differ");
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let now = httpdate::parse_http_date("Sun, 06 Dec 2026 17:00:00 GMT").expect("a date");
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Sun, 06 Dec 2026 17:00:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Sun, 06 Dec 2026 16:59:00 GMT", now), Some(Duration::ZERO), "a date past");
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
    }

    #[test]
    fn clients_are_told_whole_seconds_at_least_one() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1_001)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
    }
}
