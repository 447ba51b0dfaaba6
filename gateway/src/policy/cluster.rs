//! Cluster-wide rate limits: the buckets of [`super::limits`] kept in Redis, shared by every
//! replica. A request's buckets are drawn from in one round trip, by a Lua script that takes a
//! token from each or from none, on Redis's clock. When Redis fails or is slow, the request is
//! decided without it as configured ([`Unavailable`]), and [`Outage`] keeps the outage to one
//! log line and no waiting.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use prometheus::{Histogram, IntCounter, IntGauge};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::limits::{Buckets, Limit, Limited, Limits, Reason};
use super::outage::Outage;
use crate::metrics::{Metrics, StoreAnswer, StoreAnswerLabels, StoreFailure, StoreFailureLabels};
use crate::protocol::Kind;

/// Takes a token from every bucket of KEYS, or from none. ARGV holds each bucket's rate (tokens
/// a second) and size. Answers `{1}` when taken, else `{0, i, µs}`: bucket i (from 1) has its
/// next token furthest away, in µs. Buckets expire once they would be full again.
const SCRIPT: &str = r"
redis.replicate_commands()
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local levels, emptiest, wait = {}, 0, 0
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local held = redis.call('HMGET', key, 'tokens', 'at')
  local level = burst
  if held[1] and held[2] then
    local elapsed = math.max(0, now - tonumber(held[2]))
    level = math.min(burst, tonumber(held[1]) + elapsed * rate / 1000000)
  end
  levels[i] = level
  if level < 1 then
    local until_one = math.ceil((1 - level) * 1000000 / rate)
    if until_one > wait then emptiest, wait = i, until_one end
  end
end
if emptiest > 0 then return {0, emptiest, wait} end
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('HSET', key, 'tokens', levels[i] - 1, 'at', now)
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
end
return {1}
";

/// The longest the first connection and script load may take at start-up.
const WARM_UP: Duration = Duration::from_secs(5);

/// What a limited request gets while Redis does not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Unavailable {
    /// Counted by this replica's own buckets, as without Redis: limits hold per replica.
    Open,
    /// Refused, with a retry hint.
    Closed,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unavailable::Open => "open",
            Unavailable::Closed => "closed",
        })
    }
}

/// A `redis://[user:password@]host[:port][/db]` URL, checked. Shown without its password.
#[derive(Clone)]
pub struct RedisUrl(String);

impl FromStr for RedisUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text)
            .map_err(|e| format!("not a URL ({e}): expected redis://[user:password@]host:port[/db]"))?;
        if url.scheme() != "redis" {
            return Err(format!(
                "scheme `{}` is not supported: expected redis://[user:password@]host:port[/db]",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("no host: expected redis://[user:password@]host:port[/db]".into());
        }
        let db = url.path().trim_start_matches('/');
        if !db.is_empty() && db.parse::<u16>().is_err() {
            return Err(format!("`/{db}` is not a database number: expected redis://[user:password@]host:port[/db]"));
        }
        redis::Client::open(text).map_err(|e| e.to_string())?;
        Ok(RedisUrl(text.to_owned()))
    }
}

impl RedisUrl {
    /// A client for this URL (the per-user token store shares the rate limits' Redis).
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        redis::Client::open(self.0.as_str())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("redacted"));
                f.write_str(url.as_str())
            }
            _ => f.write_str(&self.0),
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

/// How the gateway reaches Redis for cluster-wide limits.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    pub url: RedisUrl,
    pub unavailable: Unavailable,
    /// The longest a request waits for Redis before it is decided without it.
    pub timeout: Duration,
}

/// The script's answer.
#[derive(Debug, PartialEq)]
enum Verdict {
    Taken,
    /// The 0-based index (in KEYS) of the bucket whose next token is furthest away, and when.
    Refused {
        bucket: usize,
        retry_after: Duration,
    },
}

/// Reads the script's answer for `buckets` keys.
fn verdict(answer: &[i64], buckets: usize) -> Result<Verdict, String> {
    match *answer {
        [1] => Ok(Verdict::Taken),
        [0, bucket, micros] if (1..=buckets as i64).contains(&bucket) && micros > 0 => {
            Ok(Verdict::Refused { bucket: (bucket - 1) as usize, retry_after: Duration::from_micros(micros as u64) })
        }
        _ => Err(format!("the rate limit script answered {answer:?} for {buckets} buckets")),
    }
}

/// Buckets kept in Redis, and what to do without it.
pub struct Shared {
    connection: ConnectionManager,
    script: redis::Script,
    url: RedisUrl,
    timeout: Duration,
    unavailable: Unavailable,
    outage: Outage,
    /// Metrics, resolved once: no label lookups per request.
    decided_without: IntCounter,
    answers: [Histogram; 4],
    down: IntGauge,
    outages: IntCounter,
}

impl Shared {
    /// A lazily connected client: the gateway starts (and limits requests as configured)
    /// whether or not Redis answers yet. Needs a Tokio runtime, which runs the connection.
    pub fn new(settings: &RedisSettings, metrics: &Metrics) -> Result<Self, String> {
        let client = redis::Client::open(settings.url.0.as_str())
            .map_err(|e| format!("--rate-limit-redis {}: {e}", settings.url))?;
        // One connection attempt per try: `Outage` paces the tries. Requests give up after
        // `timeout` themselves; the connection drops what a hung Redis never answers later.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(settings.timeout.max(Duration::from_millis(200))))
            .set_response_timeout(Some(settings.timeout * 4));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("--rate-limit-redis {}: {e}", settings.url))?;
        let answer = |answer| metrics.rate_limit_store_seconds.with(&StoreAnswerLabels { answer });
        Ok(Shared {
            connection,
            script: redis::Script::new(SCRIPT),
            url: settings.url.clone(),
            timeout: settings.timeout,
            unavailable: settings.unavailable,
            outage: Outage::new(Instant::now()),
            decided_without: metrics.rate_limit_store_failures.with(&StoreFailureLabels {
                outcome: match settings.unavailable {
                    Unavailable::Open => StoreFailure::Open,
                    Unavailable::Closed => StoreFailure::Closed,
                },
            }),
            answers: [StoreAnswer::Taken, StoreAnswer::Refused, StoreAnswer::Error, StoreAnswer::Timeout].map(answer),
            down: metrics.rate_limit_store_down.clone(),
            outages: metrics.rate_limit_store_outages.clone(),
        })
    }

    /// Connects and loads the script (Redis keeps it until it restarts or is told to forget
    /// it; then the next request loads it again).
    pub async fn warm_up(&self) {
        let now = Instant::now();
        let mut connection = self.connection.clone();
        match tokio::time::timeout(WARM_UP, self.script.load_async(&mut connection)).await {
            Ok(Ok(_)) => tracing::debug!(url = %self.url, "rate limit store answers: script loaded"),
            Ok(Err(error)) => self.failed(now, &error.to_string()),
            Err(_) => self.failed(now, &format!("no answer within {} s", WARM_UP.as_secs())),
        }
    }

    /// Takes a token from each bucket that counts this request, in Redis, or decides without
    /// Redis when it fails (`local`: this replica's buckets, for failing open).
    pub async fn check(
        &self,
        limits: &Limits,
        local: &Buckets,
        principal: &str,
        target: Option<(Kind, &str)>,
    ) -> Result<(), Limited> {
        let counting: Vec<&Limit> = limits.counting(target).collect();
        let Some(first) = counting.first() else { return Ok(()) };
        let now = Instant::now();
        if !self.outage.ask(now) {
            return self.without_store(limits, local, principal, target, first.name(), now);
        }
        let mut invocation = self.script.prepare_invoke();
        for limit in &counting {
            invocation.key(limit.shared_key(principal).as_ref()).arg(limit.rate()).arg(limit.burst());
        }
        let mut connection = self.connection.clone();
        let answer = tokio::time::timeout(self.timeout, invocation.invoke_async::<Vec<i64>>(&mut connection)).await;
        let elapsed = now.elapsed().as_secs_f64();
        let failure = match answer {
            Ok(Ok(answer)) => match verdict(&answer, counting.len()) {
                Ok(verdict) => {
                    self.answered(now);
                    return match verdict {
                        Verdict::Taken => {
                            self.answers[StoreAnswer::Taken as usize].observe(elapsed);
                            Ok(())
                        }
                        Verdict::Refused { bucket, retry_after } => {
                            self.answers[StoreAnswer::Refused as usize].observe(elapsed);
                            Err(Limited {
                                name: counting[bucket].name().to_owned(),
                                retry_after,
                                reason: Reason::Empty,
                            })
                        }
                    };
                }
                Err(error) => (StoreAnswer::Error, error),
            },
            Ok(Err(error)) => (StoreAnswer::Error, error.to_string()),
            Err(_) => (StoreAnswer::Timeout, format!("no answer within {} ms", self.timeout.as_millis())),
        };
        self.answers[failure.0 as usize].observe(elapsed);
        self.failed(now, &failure.1);
        self.without_store(limits, local, principal, target, first.name(), now)
    }

    /// Redis failed a request at `now`: the first failure of an outage is logged and counted.
    fn failed(&self, now: Instant, error: &str) {
        if !self.outage.failed(now) {
            return;
        }
        self.down.set(1);
        self.outages.inc();
        match self.unavailable {
            Unavailable::Open => tracing::warn!(
                url = %self.url, error,
                "rate limit store unavailable: each replica counts limits with its own buckets until it answers \
                 (--rate-limit-redis-unavailable open)"
            ),
            Unavailable::Closed => tracing::warn!(
                url = %self.url, error,
                "rate limit store unavailable: requests that a rate limit counts are refused until it answers \
                 (--rate-limit-redis-unavailable closed)"
            ),
        }
    }

    fn answered(&self, now: Instant) {
        if let Some(ended) = self.outage.answered(now) {
            self.down.set(0);
            tracing::info!(
                url = %self.url,
                outage_seconds = ended.lasted.as_secs_f64(),
                decided_without = ended.decided_without,
                "rate limit store answers again: limits are counted across replicas again"
            );
        }
    }

    /// A request decided while Redis does not answer.
    fn without_store(
        &self,
        limits: &Limits,
        local: &Buckets,
        principal: &str,
        target: Option<(Kind, &str)>,
        first: &str,
        now: Instant,
    ) -> Result<(), Limited> {
        self.outage.decided_without();
        self.decided_without.inc();
        match self.unavailable {
            Unavailable::Open => limits.check(local, principal, target, now),
            Unavailable::Closed => Err(Limited {
                name: first.to_owned(),
                retry_after: self.outage.next_probe_in(now),
                reason: Reason::StoreUnavailable,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_answer_is_taken_or_the_emptiest_bucket_and_anything_else_is_an_error() {
        assert_eq!(verdict(&[1], 2), Ok(Verdict::Taken));
        assert_eq!(
            verdict(&[0, 2, 1_500_000], 2),
            Ok(Verdict::Refused { bucket: 1, retry_after: Duration::from_millis(1500) })
        );
        for wrong in [&[][..], &[0], &[0, 3, 10], &[0, 0, 10], &[0, 1, 0], &[2], &[1, 1]] {
            let error = verdict(wrong, 2).unwrap_err();
            assert!(error.starts_with("the rate limit script answered"), "{error}");
        }
    }

    #[test]
    fn a_redis_url_is_checked_and_shown_without_its_password() {
        let url: RedisUrl = "redis://limits:s3cret@redis.manifold.svc:6379/2".parse().expect("a valid URL");
        assert_eq!(url.to_string(), "redis://limits:redacted@redis.manifold.svc:6379/2");
        assert!(!format!("{url:?}").contains("s3cret"));
        let plain: RedisUrl = "redis://127.0.0.1:6379".parse().expect("a valid URL");
        assert_eq!(plain.to_string(), "redis://127.0.0.1:6379");
        for (wrong, says) in [
            ("127.0.0.1:6379", "not a URL"),
            ("redis:6379", "no host"),
            ("rediss://redis:6380", "scheme `rediss` is not supported"),
            ("http://redis:6379", "scheme `http` is not supported"),
            ("redis://redis:6379/cache", "`/cache` is not a database number"),
        ] {
            let error = wrong.parse::<RedisUrl>().unwrap_err();
            assert!(error.starts_with(says), "{wrong}: {error}");
        }
    }
}
