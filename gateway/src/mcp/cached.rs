//! Tool calls and merged list pages through the route's cache (`policy::cache`): a kept
//! answer is served without asking any mount; otherwise the mount is asked, and what may be
//! kept is. Every answer that met the cache says how in `_meta["dev.manifold/cache"]`
//! (`hit`, `miss`, `bypass`), a plain JSON answer in its `Manifold-Cache` header too, and is
//! counted.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use http::HeaderMap;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::call::{Answer, Call};
use crate::metrics::{CacheKind, CacheLabels};
use crate::policy::cache::{Hints, Key, Outcome, ResultRule, flagged};
use crate::protocol::{Kind, meta};
use crate::snapshot::Mount;

/// Whether the request's HTTP headers ask for a fresh answer (`Cache-Control: no-cache` or
/// `no-store`).
pub fn fresh_asked(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .any(|value| value.to_str().unwrap_or("").split(',').any(|d| matches!(d.trim(), "no-cache" | "no-store")))
}

/// Whether the request asks for a fresh answer: by header, or `_meta["dev.manifold/cache"]`
/// set to `no-cache` in its params.
fn fresh(call: &Call, params: Option<&RawValue>) -> bool {
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<Map<String, Value>>,
    }
    call.fresh
        || params.is_some_and(|params| {
            params.get().contains(meta::CACHE)
                && serde_json::from_str::<Params>(params.get())
                    .ok()
                    .and_then(|p| p.meta)
                    .is_some_and(|m| m.get(meta::CACHE).and_then(Value::as_str) == Some("no-cache"))
        })
}

fn labels(call: &Call, kind: CacheKind) -> CacheLabels<'_> {
    CacheLabels { namespace: &call.route.config.namespace, route: &call.route.config.name, kind }
}

fn count(call: &Call, kind: CacheKind, outcome: Outcome) {
    let _ = call.cached.set(outcome);
    let metrics = &call.gateway.metrics;
    let counters = match outcome {
        Outcome::Hit => &metrics.cache_hits,
        Outcome::Miss => &metrics.cache_misses,
        Outcome::Bypass => &metrics.cache_bypasses,
    };
    counters.inc(&labels(call, kind));
}

/// A `tools/call` of `visible` on `mount`, whose results `rule` keeps: served from the cache,
/// or by `ask` (the call forwarded to the mount). Only successful results are kept: never
/// `isError`, never an error; for as long as the rule and the upstream's `ttlMs` both allow;
/// shared across callers only when the rule says the results are public, the upstream
/// does not say they are private, and the mount does not call with the caller's own credential.
pub async fn tool_call(
    call: &Call,
    mount: &Mount,
    rule: ResultRule,
    visible: &str,
    params: Option<&RawValue>,
    fields: &BTreeMap<String, Box<RawValue>>,
    ask: impl Future<Output = Answer>,
) -> Answer {
    // A retry carrying the client's answers (2026-07-28 multi round-trip) depends on more
    // than the key: never kept, never served from the cache.
    if fields.contains_key("inputResponses") || fields.contains_key("requestState") {
        return ask.await;
    }
    let arguments: Value =
        fields.get("arguments").and_then(|a| serde_json::from_str(a.get()).ok()).unwrap_or(Value::Null);
    let route = (&*call.route.config.namespace, &*call.route.config.name);
    let own = Key::result(route, &mount.key, Some(&call.principal.identity), visible, &arguments);
    // What a mount answers with the caller's own credential is that caller's alone.
    let public = rule.public && !mount.client.speaks_for_caller;
    let shared = public.then(|| Key::result(route, &mount.key, None, visible, &arguments));
    let store = &call.gateway.cache;
    let outcome = if fresh(call, params) { Outcome::Bypass } else { Outcome::Miss };
    if outcome == Outcome::Miss {
        let now = Instant::now();
        let lookup = || shared.as_ref().and_then(|key| store.get(key, now)).or_else(|| store.get(&own, now));
        let found = crate::traces::instant("cache.lookup", lookup, |found| {
            vec![opentelemetry::KeyValue::new("manifold.cache", if found.is_some() { "hit" } else { "miss" })]
        });
        if let Some(hit) = found {
            count(call, CacheKind::Tools, Outcome::Hit);
            return Answer::Result(hit);
        }
    }
    count(call, CacheKind::Tools, outcome);
    let answer = ask.await;
    let Answer::Result(result) = answer else { return answer };
    let Ok(result) = serde_json::from_str::<Map<String, Value>>(result.get()) else { return Answer::Result(result) };
    if result.get("isError").and_then(Value::as_bool) != Some(true) {
        let hints = Hints::of(&result);
        if let Some(ttl) = hints.keep(rule.ttl, &result) {
            let key = match shared {
                Some(shared) if !hints.private => shared,
                _ => own,
            };
            store.put(key, result.clone(), ttl, Instant::now(), &call.gateway.metrics);
        }
    }
    Answer::Result(flagged(result, outcome))
}

/// A merged list page to keep once it is put together: under which key, for how long at
/// most, and how the request met the cache.
pub struct ListPage {
    key: Key,
    ttl: Duration,
    outcome: Outcome,
}

/// The kept page of a merged list, if the route keeps lists and has it (`Ok`); else what to
/// keep the page under once it is put together (none: the route keeps no lists).
pub fn list_page(
    call: &Call,
    kind: Kind,
    params: Option<&RawValue>,
    cursor: Option<&str>,
) -> Result<Answer, Option<ListPage>> {
    let Some(ttl) = call.route.caching.lists else { return Err(None) };
    let route = (&*call.route.config.namespace, &*call.route.config.name);
    let key = Key::list(route, &call.principal.identity, kind, call.era.is_stateless(), cursor);
    let outcome = if fresh(call, params) { Outcome::Bypass } else { Outcome::Miss };
    if outcome == Outcome::Miss
        && let Some(hit) = call.gateway.cache.get(&key, Instant::now())
    {
        count(call, CacheKind::Lists, Outcome::Hit);
        return Ok(Answer::Result(hit));
    }
    count(call, CacheKind::Lists, outcome);
    Err(Some(ListPage { key, ttl, outcome }))
}

/// Keeps a merged page put together from every mount (`complete`: none failed) for the
/// route's list TTL, or less when a mount's `ttlMs` says so (`upstream_ttl`; 0: not at all),
/// and returns it flagged.
pub fn keep_list(
    call: &Call,
    page: ListPage,
    result: Map<String, Value>,
    complete: bool,
    upstream_ttl: Option<Duration>,
) -> Box<RawValue> {
    let ttl = upstream_ttl.map_or(page.ttl, |ttl| ttl.min(page.ttl));
    if complete && !ttl.is_zero() {
        call.gateway.cache.put(page.key, result.clone(), ttl, Instant::now(), &call.gateway.metrics);
    }
    flagged(result, page.outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_no_cache_or_no_store_asks_for_a_fresh_answer() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::CACHE_CONTROL, value.parse().expect("a header value"));
            headers
        };
        assert!(fresh_asked(&headers("no-cache")));
        assert!(fresh_asked(&headers("max-age=0, no-store")));
        assert!(!fresh_asked(&headers("max-age=60")));
        assert!(!fresh_asked(&HeaderMap::new()));
    }
}
