//! Result and list caching: a route's compiled [`Rules`] say which tool results and merged
//! lists are kept and for how long, a [`Key`] names what is kept (route, mount, caller unless
//! shared, tool or list, canonical arguments), and the gateway-wide [`Store`] holds the kept
//! answers within a byte budget, dropping the least recently used ones past it. What the
//! upstream's hints allow (`ttlMs`, `cacheScope`) is decided here too ([`Hints`]).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use manifold_api::config::RouteConfig;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::globs::Globs;
use crate::metrics::{CacheKind, CacheLabels, Metrics};
use crate::protocol::{Kind, Method, meta};

/// Bytes an entry costs beyond its key and answer: the map's slot and the entry's fields.
const ENTRY_OVERHEAD: usize = 96;

/// A route's caching rules, compiled.
#[derive(Default)]
pub struct Rules {
    /// Result rules in order, with the tool globs each covers.
    results: Vec<(Globs, ResultRule)>,
    /// How long merged list pages are kept; none: they are not.
    pub lists: Option<Duration>,
}

/// What a result rule allows for a tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResultRule {
    pub ttl: Duration,
    /// Kept for every caller of the route, not only the one it was fetched for.
    pub public: bool,
}

impl Rules {
    pub fn build(route: &RouteConfig) -> Result<Self, String> {
        let caching = &route.caching;
        let set = |globs: &[String]| Globs::new(globs).map_err(|e| format!("caching: {e}"));
        let mut results = Vec::with_capacity(caching.results.len());
        for rule in &caching.results {
            let ttl = Duration::from_millis(rule.ttl_ms);
            results.push((set(&rule.tools)?, ResultRule { ttl, public: rule.public }));
        }
        Ok(Rules { results, lists: caching.lists_ttl_ms.map(Duration::from_millis) })
    }

    /// The rule for a tool's results: the first whose globs match its client-visible name.
    pub fn result_rule(&self, tool: &str) -> Option<ResultRule> {
        self.results.iter().find(|(globs, _)| globs.is_match(tool)).map(|(_, rule)| *rule)
    }
}

/// What an upstream says of its result: how long it may be kept (`ttlMs`; absent: the
/// route's TTL alone decides) and whether it may be shared (`cacheScope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hints {
    pub ttl: Option<Duration>,
    pub private: bool,
}

impl Hints {
    /// The hints on a result. A negative or non-numeric `ttlMs` counts as 0, as the
    /// 2026-07-28 revision asks; a `cacheScope` other than `public` is private.
    pub fn of(result: &Map<String, Value>) -> Hints {
        let ttl = result.get("ttlMs").map(|ttl| Duration::from_millis(ttl.as_u64().unwrap_or(0)));
        let private = result.get("cacheScope").is_some_and(|scope| scope.as_str() != Some("public"));
        Hints { ttl, private }
    }

    /// How long a result may be kept under a route TTL: the shorter of the two; none when
    /// the upstream says not to keep it (`ttlMs: 0`) or the result is not complete (an
    /// `input_required` result asks for more before it is one).
    pub fn keep(self, route_ttl: Duration, result: &Map<String, Value>) -> Option<Duration> {
        if result.get("resultType").is_some_and(|t| t.as_str() != Some("complete")) {
            return None;
        }
        let ttl = self.ttl.map_or(route_ttl, |ttl| ttl.min(route_ttl));
        (!ttl.is_zero()).then_some(ttl)
    }
}

/// Names one kept answer. Fixed parts (namespace, route, mount key: DNS names and prefixes)
/// are separated by NUL; parts a client chooses are length-prefixed, so no two different
/// requests spell the same key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key(String);

impl Key {
    /// A tool result: of `tool` on the mount `mount` of route `namespace/route`, for
    /// `principal` (none: shared by the route's callers), with `arguments` in canonical form.
    pub fn result(
        (namespace, route): (&str, &str),
        mount: &str,
        principal: Option<&str>,
        tool: &str,
        arguments: &Value,
    ) -> Key {
        let mut key = format!("r\0{namespace}\0{route}\0{mount}\0");
        part(&mut key, principal.unwrap_or(""));
        key.push(if principal.is_some() { 'p' } else { '*' });
        part(&mut key, tool);
        canonical(&mut key, arguments);
        Key(key)
    }

    /// A merged list page of `kind` for `principal`, at `cursor` (none: the first page), in
    /// the form the client's era has (stateless pages carry cache hints).
    pub fn list(
        (namespace, route): (&str, &str),
        principal: &str,
        kind: Kind,
        stateless: bool,
        cursor: Option<&str>,
    ) -> Key {
        let mut key = format!("l\0{namespace}\0{route}\0{}\0{}\0", kind.list_method(), u8::from(stateless));
        part(&mut key, principal);
        part(&mut key, cursor.unwrap_or(""));
        Key(key)
    }

    /// Namespace, route and kind, for the eviction metric.
    fn labels(&self) -> (&str, &str, CacheKind) {
        let mut parts = self.0.split('\0');
        let kind = if parts.next() == Some("r") { CacheKind::Tools } else { CacheKind::Lists };
        (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), kind)
    }
}

fn part(key: &mut String, value: &str) {
    let _ = write!(key, "{}:{value}", value.len());
}

/// JSON with object keys sorted at every depth, so that equal arguments sent in another
/// order name the same entry; absent arguments are `{}`.
fn canonical(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("{}"),
        value => write_sorted(out, value),
    }
}

fn write_sorted(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_sorted(out, &map[key]);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(out, item);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// How a request met the cache, as `_meta["dev.manifold/cache"]` tells the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Served from the cache; the upstream was not asked.
    Hit,
    /// Not in the cache: asked upstream (and kept, if it may be).
    Miss,
    /// The client asked for a fresh answer: asked upstream, and kept again.
    Bypass,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Bypass => "bypass",
        }
    }
}

/// A result with `_meta["dev.manifold/cache"]` set to `outcome`.
pub fn flagged(mut result: Map<String, Value>, outcome: Outcome) -> Box<RawValue> {
    let meta = result.entry("_meta").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(meta) = meta {
        meta.insert(meta::CACHE.into(), Value::String(outcome.as_str().into()));
    }
    serde_json::value::to_raw_value(&result).expect("a JSON object serializes")
}

/// The kept answers of every route on this replica, within a byte budget.
pub struct Store {
    budget: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    entries: HashMap<Key, Entry>,
    bytes: usize,
    /// Counts uses: an entry's `used` is the count at its last use.
    clock: u64,
}

struct Entry {
    /// The answer as a hit serves it (flagged `hit`).
    answer: Box<RawValue>,
    expires: Instant,
    used: u64,
    bytes: usize,
}

impl Store {
    /// A store keeping at most `budget` bytes of keys and answers.
    pub fn new(budget: usize) -> Self {
        Store { budget, held: Mutex::default() }
    }

    /// The kept answer for `key`, if it is still fresh at `now`.
    pub fn get(&self, key: &Key, now: Instant) -> Option<Box<RawValue>> {
        let mut guard = self.held.lock().expect("cache lock");
        let held = &mut *guard;
        held.clock += 1;
        let entry = held.entries.get_mut(key)?;
        if entry.expires <= now {
            let bytes = entry.bytes;
            held.entries.remove(key);
            held.bytes -= bytes;
            return None;
        }
        entry.used = held.clock;
        Some(entry.answer.clone())
    }

    /// Keeps `result` under `key` for `ttl`, flagged as a hit. An answer larger than an
    /// eighth of the budget is not kept; past the budget, expired entries go first, then
    /// the least recently used, until a quarter of the budget is free (so that eviction
    /// does not run on every insert), each counted.
    pub fn put(&self, key: Key, result: Map<String, Value>, ttl: Duration, now: Instant, metrics: &Metrics) {
        let answer = flagged(result, Outcome::Hit);
        let bytes = key.0.len() + answer.get().len() + ENTRY_OVERHEAD;
        let mut guard = self.held.lock().expect("cache lock");
        let held = &mut *guard;
        if bytes > self.budget / 8 {
            // Not kept; nor is what the key held before, which this answer replaces.
            if let Some(old) = held.entries.remove(&key) {
                held.bytes -= old.bytes;
            }
            return;
        }
        held.clock += 1;
        let entry = Entry { answer, expires: now + ttl, used: held.clock, bytes };
        if let Some(old) = held.entries.insert(key, entry) {
            held.bytes -= old.bytes;
        }
        held.bytes += bytes;
        if held.bytes > self.budget {
            self.evict(held, now, metrics);
        }
        metrics.cache_bytes.set(held.bytes as i64);
    }

    fn evict(&self, held: &mut Held, now: Instant, metrics: &Metrics) {
        let target = self.budget - self.budget / 4;
        held.entries.retain(|_, entry| entry.expires > now);
        let mut by_use: Vec<(u64, Key)> = held.entries.iter().map(|(key, entry)| (entry.used, key.clone())).collect();
        by_use.sort_unstable_by_key(|(used, _)| *used);
        held.bytes = held.entries.values().map(|e| e.bytes).sum();
        for (_, key) in by_use {
            if held.bytes <= target {
                break;
            }
            if let Some(entry) = held.entries.remove(&key) {
                held.bytes -= entry.bytes;
                let (namespace, route, kind) = key.labels();
                metrics.cache_evictions.inc(&CacheLabels { namespace, route, kind });
            }
        }
    }

    /// Forgets every entry of a route: results and lists.
    pub fn forget_route(&self, namespace: &str, route: &str) {
        let results = format!("r\0{namespace}\0{route}\0");
        let lists = format!("l\0{namespace}\0{route}\0");
        self.forget(|key| key.starts_with(&results) || key.starts_with(&lists));
    }

    /// Forgets a route's merged lists (its mounts' components changed, or who sees what).
    pub fn forget_lists(&self, namespace: &str, route: &str) {
        let lists = format!("l\0{namespace}\0{route}\0");
        self.forget(|key| key.starts_with(&lists));
    }

    /// Forgets the results of one mount of a route.
    pub fn forget_mount(&self, namespace: &str, route: &str, mount: &str) {
        let results = format!("r\0{namespace}\0{route}\0{mount}\0");
        self.forget(|key| key.starts_with(&results));
    }

    fn forget(&self, doomed: impl Fn(&str) -> bool) {
        let mut held = self.held.lock().expect("cache lock");
        if held.entries.is_empty() {
            return;
        }
        held.entries.retain(|key, _| !doomed(&key.0));
        held.bytes = held.entries.values().map(|e| e.bytes).sum();
    }

    /// What an upstream's notification `method` (of the mount `mount` of a route) makes stale:
    /// a list change, the route's merged lists and, for tools, the mount's results.
    pub fn upstream_changed(&self, namespace: &str, route: &str, mount: &str, method: &str) {
        match Method::parse(method) {
            Method::ToolsListChanged => {
                self.forget_lists(namespace, route);
                self.forget_mount(namespace, route, mount);
            }
            Method::PromptsListChanged | Method::ResourcesListChanged => self.forget_lists(namespace, route),
            _ => return,
        }
        tracing::debug!(namespace, route, mount, method, "an upstream's change emptied the cache");
    }

    /// Bytes held, keys and answers.
    pub fn bytes(&self) -> usize {
        self.held.lock().expect("cache lock").bytes
    }
}

#[cfg(test)]
mod tests {
    use manifold_api::config::{CachingConfig, ResultCacheConfig};
    use serde_json::json;

    use super::*;

    fn rules(results: &[(&[&str], u64, bool)], lists_ttl_ms: Option<u64>) -> Rules {
        let route = RouteConfig {
            namespace: "acme".into(),
            name: "tools".into(),
            path: "/tools".into(),
            hostnames: vec![],
            allowed_origins: vec![],
            mounts: vec![],
            authentication: manifold_api::config::AuthnConfig::default(),
            authorization: None,
            audit_arguments: false,
            rate_limits: vec![],
            resilience: Default::default(),
            caching: CachingConfig {
                results: results
                    .iter()
                    .map(|(tools, ttl_ms, public)| ResultCacheConfig {
                        tools: tools.iter().map(|t| (*t).into()).collect(),
                        ttl_ms: *ttl_ms,
                        public: *public,
                    })
                    .collect(),
                lists_ttl_ms,
            },
            compatibility: None,
        };
        Rules::build(&route).expect("valid rules")
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    #[test]
    fn the_first_matching_rule_decides_and_unmatched_tools_have_none() {
        let rules = rules(&[(&["w_forecast*"], 300_000, true), (&["w_*"], 30_000, false)], Some(5000));
        let public = ResultRule { ttl: Duration::from_secs(300), public: true };
        assert_eq!(rules.result_rule("w_forecast_today"), Some(public));
        assert_eq!(rules.result_rule("w_now"), Some(ResultRule { ttl: Duration::from_secs(30), public: false }));
        assert_eq!(rules.result_rule("x_now"), None);
        assert_eq!(rules.lists, Some(Duration::from_secs(5)));
        assert_eq!(super::Rules::default().result_rule("w_now"), None, "no rules, no caching");
    }

    #[test]
    fn equal_arguments_in_another_order_name_the_same_entry_and_callers_differ() {
        let route = ("acme", "tools");
        let a = json!({ "city": "Oslo", "days": 3, "opts": { "units": "metric", "lang": "no" } });
        let b = json!({ "opts": { "lang": "no", "units": "metric" }, "days": 3, "city": "Oslo" });
        let key = |principal, arguments: &Value| Key::result(route, "w~weather", principal, "w_forecast", arguments);
        assert_eq!(key(Some("ann"), &a), key(Some("ann"), &b));
        assert_ne!(key(Some("ann"), &a), key(Some("bob"), &a), "each caller has their own entries");
        assert_ne!(key(Some("ann"), &a), key(None, &a), "a shared entry is not a caller's");
        assert_ne!(key(Some("ann"), &a), key(Some("ann"), &json!({ "city": "Oslo", "days": 4 })));
        assert_eq!(key(None, &Value::Null), key(None, &json!({})), "no arguments are empty arguments");
        assert_ne!(
            Key::result(route, "w~weather", None, "w_forecast", &a),
            Key::result(("acme", "other"), "w~weather", None, "w_forecast", &a),
            "never across routes"
        );
        assert_ne!(
            Key::result(route, "m", Some("a:b"), "c", &Value::Null),
            Key::result(route, "m", Some("a"), "b:c", &Value::Null),
            "parts a client chooses cannot run into each other"
        );
        let mut canonical_a = String::new();
        canonical(&mut canonical_a, &a);
        assert_eq!(canonical_a, r#"{"city":"Oslo","days":3,"opts":{"lang":"no","units":"metric"}}"#);
    }

    #[test]
    fn an_upstreams_shorter_ttl_and_private_scope_win_and_ttl_zero_keeps_nothing() {
        let minute = Duration::from_secs(60);
        let none = Hints::of(&Map::new());
        assert_eq!(none, Hints { ttl: None, private: false });
        assert_eq!(none.keep(minute, &Map::new()), Some(minute), "no hints: the route decides");
        let shorter = object(json!({ "ttlMs": 5000, "cacheScope": "public" }));
        assert_eq!(Hints::of(&shorter).keep(minute, &shorter), Some(Duration::from_secs(5)));
        let longer = object(json!({ "ttlMs": 600_000, "cacheScope": "private" }));
        assert_eq!(Hints::of(&longer), Hints { ttl: Some(Duration::from_secs(600)), private: true });
        assert_eq!(Hints::of(&longer).keep(minute, &longer), Some(minute), "the route's TTL is the most");
        let zero = object(json!({ "ttlMs": 0, "cacheScope": "public" }));
        assert_eq!(Hints::of(&zero).keep(minute, &zero), None, "ttlMs 0: not kept");
        let negative = object(json!({ "ttlMs": -5 }));
        assert_eq!(Hints::of(&negative).keep(minute, &negative), None, "a negative ttlMs counts as 0");
        let odd = object(json!({ "cacheScope": "team" }));
        assert!(Hints::of(&odd).private, "an unknown scope is not public");
        let input = object(json!({ "resultType": "input_required", "inputRequests": {} }));
        assert_eq!(none.keep(minute, &input), None, "an interim result is never kept");
        let complete = object(json!({ "resultType": "complete", "content": [] }));
        assert_eq!(none.keep(minute, &complete), Some(minute));
    }

    #[test]
    fn entries_expire_and_are_flagged_as_hits() {
        let (store, metrics, now) = (Store::new(1 << 20), Metrics::new(), Instant::now());
        let key = Key::list(("acme", "tools"), "ann", Kind::Tool, false, None);
        let result = object(json!({ "tools": [], "_meta": { "x": 1 } }));
        store.put(key.clone(), result, Duration::from_secs(10), now, &metrics);
        let hit = store.get(&key, now + Duration::from_secs(9)).expect("fresh");
        let hit: Value = serde_json::from_str(hit.get()).unwrap();
        assert_eq!(hit, json!({ "tools": [], "_meta": { "x": 1, "dev.manifold/cache": "hit" } }));
        assert!(store.get(&key, now + Duration::from_secs(10)).is_none(), "expired");
        assert_eq!(store.bytes(), 0, "an expired entry found is dropped");
    }

    #[test]
    fn past_the_budget_the_least_recently_used_go_and_are_counted() {
        let metrics = Metrics::new();
        let now = Instant::now();
        let result = || object(json!({ "content": [{ "type": "text", "text": "x".repeat(200) }] }));
        let key =
            |i: usize| Key::result(("acme", "tools"), "w~weather", None, "w_t", &json!({ "i": format!("{i:02}") }));
        let one = key(0).0.len() + flagged(result(), Outcome::Hit).get().len() + ENTRY_OVERHEAD;
        let store = Store::new(one * 10);
        for i in 0..10 {
            store.put(key(i), result(), Duration::from_secs(60), now, &metrics);
        }
        assert_eq!(store.bytes(), one * 10, "ten fit");
        assert!(store.get(&key(0), now).is_some(), "the first is used again");
        store.put(key(10), result(), Duration::from_secs(60), now, &metrics);
        // Over the budget: entries go, least recently used first, until a quarter is free.
        assert_eq!(store.bytes(), one * 7);
        assert!(store.get(&key(0), now).is_some(), "used recently: kept");
        assert!(store.get(&key(10), now).is_some(), "just kept");
        for i in 1..=4 {
            assert!(store.get(&key(i), now).is_none(), "entry {i} was the least recently used");
        }
        let labels = CacheLabels { namespace: "acme", route: "tools", kind: CacheKind::Tools };
        assert_eq!(metrics.cache_evictions.with(&labels).get(), 4);
        let huge = object(json!({ "content": "x".repeat(one * 2) }));
        store.put(key(99), huge, Duration::from_secs(60), now, &metrics);
        assert!(store.get(&key(99), now).is_none(), "an answer over an eighth of the budget is not kept");
    }

    #[test]
    fn forgetting_a_mount_keeps_the_others_and_forgetting_lists_keeps_results() {
        let (store, metrics, now) = (Store::new(1 << 20), Metrics::new(), Instant::now());
        let ttl = Duration::from_secs(60);
        let a = Key::result(("acme", "tools"), "a~alpha", None, "a_t", &Value::Null);
        let b = Key::result(("acme", "tools"), "b~beta", None, "b_t", &Value::Null);
        let other = Key::result(("acme", "other"), "a~alpha", None, "a_t", &Value::Null);
        let list = Key::list(("acme", "tools"), "ann", Kind::Tool, false, None);
        for key in [&a, &b, &other, &list] {
            store.put(key.clone(), Map::new(), ttl, now, &metrics);
        }
        store.forget_mount("acme", "tools", "a~alpha");
        assert!(store.get(&a, now).is_none());
        assert!(store.get(&b, now).is_some() && store.get(&other, now).is_some() && store.get(&list, now).is_some());
        store.forget_lists("acme", "tools");
        assert!(store.get(&list, now).is_none());
        assert!(store.get(&b, now).is_some(), "results stay");
        store.forget_route("acme", "tools");
        assert!(store.get(&b, now).is_none());
        assert!(store.get(&other, now).is_some(), "another route's stay");
    }
}
