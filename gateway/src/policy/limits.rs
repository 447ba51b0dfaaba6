//! Rate limits: a route's compiled limits ([`Limits`]) decide which token buckets a request
//! draws from, and the gateway-wide [`Buckets`] hold their tokens, so a tenant-wide limit
//! spans the tenant's routes and buckets outlive reloads. These buckets count per replica;
//! `super::cluster` keeps the same buckets in Redis, shared by every replica.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use manifold_api::config::{RateLimitConfig, RouteConfig};
use manifold_api::resources::LimitScope;

use super::keys;
use crate::globs::Globs;
use crate::protocol::Kind;

/// Buckets kept before idle ones (full again) are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// The most limits a route has (the CRD allows 16): `check` keeps which count as bits of a u64.
const MAX_LIMITS: usize = 64;

/// A route's limits, compiled.
#[derive(Default)]
pub struct Limits(Vec<Limit>);

/// One limit of a route, compiled.
pub struct Limit {
    name: String,
    scope: LimitScope,
    /// Tokens per second, and the bucket's size.
    rate: f64,
    burst: f64,
    /// Which components' requests count; None: every request.
    targets: Option<Targets>,
    /// The bucket's key before the principal: the limit's identity and numbers.
    key: String,
    /// The same in Redis (`super::keys`).
    shared_key: String,
}

struct Targets {
    tools: Option<Globs>,
    prompts: Option<Globs>,
    resources: Option<Globs>,
}

/// A request refused by a limit.
#[derive(Debug, PartialEq)]
pub struct Limited {
    /// The limit's name.
    pub name: String,
    /// When a token will be there.
    pub retry_after: Duration,
    pub reason: Reason,
}

/// Why a limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Its bucket is empty.
    Empty,
    /// Its bucket could not be looked at: the shared store (Redis) does not answer, and the
    /// gateway fails closed.
    StoreUnavailable,
}

impl Limited {
    /// Whole seconds to wait, at least one: what callers are told.
    pub fn retry_after_seconds(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }

    /// What the caller reads.
    pub fn message(&self) -> String {
        let seconds = self.retry_after_seconds();
        let unit = if seconds == 1 { "second" } else { "seconds" };
        match self.reason {
            Reason::Empty => format!("rate limit `{}` reached: retry in {seconds} {unit}", self.name),
            Reason::StoreUnavailable => format!(
                "rate limit `{}` could not be checked (the rate limit store is unavailable): retry in {seconds} {unit}",
                self.name
            ),
        }
    }
}

impl Limits {
    pub fn build(route: &RouteConfig) -> Result<Self, String> {
        if route.rate_limits.len() > MAX_LIMITS {
            return Err(format!("{} rate limits: a route has at most {MAX_LIMITS}", route.rate_limits.len()));
        }
        route.rate_limits.iter().map(|limit| Limit::build(route, limit)).collect::<Result<_, _>>().map(Limits)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes a token from every bucket that counts this request (`target`: the component it
    /// is about, if any) for `principal`, or none if any is empty: then the answer is the
    /// limit whose token is furthest away.
    pub fn check(
        &self,
        buckets: &Buckets,
        principal: &str,
        target: Option<(Kind, &str)>,
        now: Instant,
    ) -> Result<(), Limited> {
        // Which limits count this request, as bits: no allocation on the hot path (a route has
        // at most `MAX_LIMITS`, which `build` enforces).
        let counting = self.0.iter().enumerate().fold(0u64, |bits, (i, limit)| match limit.counts(target) {
            true => bits | 1 << i,
            false => bits,
        });
        if counting == 0 {
            return Ok(());
        }
        let counted = || self.0.iter().enumerate().filter(move |(i, _)| counting & 1 << i != 0).map(|(_, l)| l);
        let mut guard = buckets.0.lock().expect("bucket lock");
        let held = &mut *guard;
        let mut refused: Option<Limited> = None;
        for limit in counted() {
            let bucket = held.bucket(limit, principal, now);
            bucket.refill(now);
            if bucket.tokens < 1.0 {
                let retry_after = Duration::from_secs_f64((1.0 - bucket.tokens) / limit.rate);
                if refused.as_ref().is_none_or(|r| retry_after > r.retry_after) {
                    refused = Some(Limited { name: limit.name.clone(), retry_after, reason: Reason::Empty });
                }
            }
        }
        if let Some(refused) = refused {
            return Err(refused);
        }
        for limit in counted() {
            held.bucket(limit, principal, now).tokens -= 1.0;
        }
        held.prune(now);
        Ok(())
    }

    /// The limits that count a request about `target` (None: not about one component).
    pub fn counting<'a>(&'a self, target: Option<(Kind, &'a str)>) -> impl Iterator<Item = &'a Limit> + 'a {
        self.0.iter().filter(move |limit| limit.counts(target))
    }
}

impl Limit {
    fn build(route: &RouteConfig, config: &RateLimitConfig) -> Result<Self, String> {
        let set = |globs: &[String]| Globs::some(globs).map_err(|e| format!("rate limit `{}`: {e}", config.name));
        let targets =
            Targets { tools: set(&config.tools)?, prompts: set(&config.prompts)?, resources: set(&config.resources)? };
        let any = targets.tools.is_some() || targets.prompts.is_some() || targets.resources.is_some();
        let numbers = format!("{}/{}ms/{}", config.requests, config.per_ms, config.burst);
        let shared_numbers = format!("{}-{}-{}", config.requests, config.per_ms, config.burst);
        let shared_key = keys::limit(config.scope, &route.namespace, &route.name, &config.name, &shared_numbers);
        let key = match config.scope {
            LimitScope::Tenant => format!("tenant\u{0}{}\u{0}{}\u{0}{numbers}", route.namespace, config.name),
            LimitScope::Route | LimitScope::Principal => {
                format!("route\u{0}{}\u{0}{}\u{0}{}\u{0}{numbers}", route.namespace, route.name, config.name)
            }
        };
        Ok(Limit {
            name: config.name.clone(),
            scope: config.scope,
            rate: f64::from(config.requests) * 1000.0 / config.per_ms.max(1) as f64,
            burst: f64::from(config.burst.max(1)),
            targets: any.then_some(targets),
            key,
            shared_key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tokens per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The most tokens the bucket holds.
    pub fn burst(&self) -> f64 {
        self.burst
    }

    /// The key of `principal`'s bucket in Redis.
    pub fn shared_key(&self, principal: &str) -> std::borrow::Cow<'_, str> {
        match self.scope {
            LimitScope::Principal => keys::caller(&self.shared_key, principal).into(),
            LimitScope::Route | LimitScope::Tenant => self.shared_key.as_str().into(),
        }
    }

    fn counts(&self, target: Option<(Kind, &str)>) -> bool {
        let Some(targets) = &self.targets else { return true };
        let set = match target {
            Some((Kind::Tool, _)) => &targets.tools,
            Some((Kind::Prompt, _)) => &targets.prompts,
            Some((Kind::Resource | Kind::Template, _)) => &targets.resources,
            None => return false,
        };
        match (set, target) {
            (Some(set), Some((_, name))) => set.is_match(name),
            _ => false,
        }
    }

    /// Whose bucket of this limit a request of `principal` draws on: the principal's own, or
    /// ("") the one every caller shares.
    fn holder<'a>(&self, principal: &'a str) -> &'a str {
        match self.scope {
            LimitScope::Principal => principal,
            LimitScope::Route | LimitScope::Tenant => "",
        }
    }
}

/// Every bucket of this replica, by limit (and principal).
#[derive(Default)]
pub struct Buckets(Mutex<Held>);

/// Buckets by limit key, then by holder (see [`Limit::holder`]): two levels, so that finding a
/// bucket that exists allocates nothing (hashbrown's `entry_ref` copies a key only to insert
/// it), and hashed with foldhash rather than SipHash, which took three quarters of the time
/// of a check.
#[derive(Default)]
struct Held {
    buckets: HashMap<Box<str>, HashMap<Box<str>, Bucket>>,
    /// Buckets in all.
    count: usize,
    /// How many buckets trigger the next pass dropping idle ones (at least `PRUNE_ABOVE`).
    prune_above: usize,
}

impl Held {
    /// `principal`'s bucket of `limit`, made full if it is new.
    fn bucket(&mut self, limit: &Limit, principal: &str, now: Instant) -> &mut Bucket {
        let count = &mut self.count;
        self.buckets.entry_ref(limit.key.as_str()).or_default().entry_ref(limit.holder(principal)).or_insert_with(
            || {
                *count += 1;
                Bucket { tokens: limit.burst, at: now, rate: limit.rate, burst: limit.burst }
            },
        )
    }

    /// Drops idle buckets (full again: they hold nothing a new one would not) once there are
    /// more than `PRUNE_ABOVE`. The next pass waits until the buckets left have doubled, so
    /// busy buckets are not scanned on every request.
    fn prune(&mut self, now: Instant) {
        if self.count <= self.prune_above.max(PRUNE_ABOVE) {
            return;
        }
        self.buckets.retain(|_, held| {
            held.retain(|_, bucket| {
                bucket.refill(now);
                bucket.tokens < bucket.burst
            });
            !held.is_empty()
        });
        self.count = self.buckets.values().map(HashMap::len).sum();
        self.prune_above = self.count * 2;
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
    /// Tokens per second, and the most it holds.
    rate: f64,
    burst: f64,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
    }
}

#[cfg(test)]
mod tests {
    use manifold_api::config::RateLimitConfig;

    use super::*;

    /// A route `acme/<name>` with no mounts.
    fn route(name: &str) -> RouteConfig {
        RouteConfig {
            namespace: "acme".into(),
            name: name.into(),
            path: format!("/{name}"),
            hostnames: vec![],
            allowed_origins: vec![],
            mounts: vec![],
            authentication: manifold_api::config::AuthnConfig::default(),
            authorization: None,
            audit_arguments: false,
            rate_limits: vec![],
            caching: Default::default(),
            resilience: Default::default(),
            compatibility: None,
        }
    }

    fn limits(limits: Vec<RateLimitConfig>) -> Limits {
        let mut config = route("tools");
        config.rate_limits = limits;
        Limits::build(&config).expect("valid limits")
    }

    fn limit(name: &str, scope: LimitScope, requests: u32, per_ms: u64, burst: u32) -> RateLimitConfig {
        RateLimitConfig {
            name: name.into(),
            scope,
            requests,
            per_ms,
            burst,
            tools: vec![],
            prompts: vec![],
            resources: vec![],
        }
    }

    #[test]
    fn a_burst_over_the_limit_is_refused_with_the_wait_for_the_next_token() {
        let limits = limits(vec![limit("calls", LimitScope::Route, 1, 2000, 2)]);
        let (buckets, start) = (Buckets::default(), Instant::now());
        assert_eq!(limits.check(&buckets, "ann", None, start), Ok(()));
        assert_eq!(limits.check(&buckets, "bob", None, start), Ok(()));
        let refused = limits.check(&buckets, "ann", None, start).unwrap_err();
        assert_eq!(
            refused,
            Limited { name: "calls".into(), retry_after: Duration::from_secs(2), reason: Reason::Empty }
        );
        assert_eq!(refused.message(), "rate limit `calls` reached: retry in 2 seconds");
        let later = start + Duration::from_millis(2000);
        assert_eq!(limits.check(&buckets, "ann", None, later), Ok(()), "a token came back");
        assert!(limits.check(&buckets, "ann", None, later).is_err());
    }

    #[test]
    fn each_principal_has_a_bucket_of_their_own() {
        let limits = limits(vec![limit("mine", LimitScope::Principal, 1, 60_000, 1)]);
        let (buckets, now) = (Buckets::default(), Instant::now());
        assert_eq!(limits.check(&buckets, "ann", None, now), Ok(()));
        assert!(limits.check(&buckets, "ann", None, now).is_err());
        assert_eq!(limits.check(&buckets, "bob", None, now), Ok(()), "ann's empty bucket is not bob's");
    }

    #[test]
    fn a_tenant_limit_spans_the_tenants_routes_and_a_route_limit_does_not() {
        let (buckets, now) = (Buckets::default(), Instant::now());
        let on = |name: &str, scope| {
            let mut config = route(name);
            config.rate_limits = vec![limit("shared", scope, 1, 60_000, 1)];
            Limits::build(&config).expect("valid")
        };
        let (one, two) = (on("one", LimitScope::Tenant), on("two", LimitScope::Tenant));
        assert_eq!(one.check(&buckets, "ann", None, now), Ok(()));
        assert!(two.check(&buckets, "ann", None, now).is_err(), "the other route drew from the same bucket");
        let (three, four) = (on("three", LimitScope::Route), on("four", LimitScope::Route));
        assert_eq!(three.check(&buckets, "ann", None, now), Ok(()));
        assert_eq!(four.check(&buckets, "ann", None, now), Ok(()));
    }

    #[test]
    fn a_limit_on_tools_counts_only_their_calls_and_no_token_is_taken_when_one_limit_refuses() {
        let mut search = limit("search", LimitScope::Route, 1, 60_000, 1);
        search.tools = vec!["a_search*".into()];
        let limits = limits(vec![limit("all", LimitScope::Route, 10, 60_000, 2), search]);
        let (buckets, now) = (Buckets::default(), Instant::now());
        let search = Some((Kind::Tool, "a_search_web"));
        assert_eq!(limits.check(&buckets, "ann", search, now), Ok(()));
        let refused = limits.check(&buckets, "ann", search, now).unwrap_err();
        assert_eq!(refused.name, "search");
        assert_eq!(
            limits.check(&buckets, "ann", Some((Kind::Tool, "a_other")), now),
            Ok(()),
            "`all` had one token left"
        );
        assert!(limits.check(&buckets, "ann", None, now).is_err(), "and now none");
        assert_eq!(limits.check(&buckets, "ann", Some((Kind::Prompt, "a_search")), now).unwrap_err().name, "all");
    }

    #[test]
    fn idle_buckets_are_dropped_once_there_are_many_and_not_on_every_request() {
        let limits = limits(vec![limit("mine", LimitScope::Principal, 1, 1000, 1)]);
        let (buckets, now) = (Buckets::default(), Instant::now());
        for caller in 0..=PRUNE_ABOVE {
            assert_eq!(limits.check(&buckets, &caller.to_string(), None, now), Ok(()));
        }
        let held = |buckets: &Buckets| buckets.0.lock().unwrap().count;
        // Every one of them is still empty: none is idle, none goes; the next pass waits.
        assert_eq!(held(&buckets), PRUNE_ABOVE + 1);
        let later = now + Duration::from_secs(1);
        assert_eq!(limits.check(&buckets, "new", None, later), Ok(()));
        assert_eq!(held(&buckets), PRUNE_ABOVE + 2, "the pass is not due before the buckets double");
        for caller in 0..=PRUNE_ABOVE {
            assert_eq!(limits.check(&buckets, &format!("more-{caller}"), None, later), Ok(()));
        }
        // The pass came: the first callers' buckets are full again and go; "new" and the
        // "more-" ones, empty, stay.
        assert_eq!(held(&buckets), PRUNE_ABOVE + 2);
        assert!(limits.check(&buckets, "more-0", None, later).is_err(), "a bucket in use is kept");
    }
}
