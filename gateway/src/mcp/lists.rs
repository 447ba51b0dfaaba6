//! Merged lists (`tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`)
//! served in pages. Mounts are read in order; a page takes up to the gateway's page size,
//! following each upstream's own cursors, and the cursor handed to the client records where
//! every mount stands (not started, at an upstream page and an offset in it, or done). Nothing
//! is kept between pages, and nothing is ever cut off: the last page is the one without a
//! `nextCursor`.

use std::collections::{BTreeMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::methods::{Answer, Call};
use super::names::Kind;
use crate::jsonrpc::{INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, RpcError, raw};
use crate::snapshot::Mount;
use crate::upstream::{Reply, UpstreamError};

/// One page of an upstream's list.
struct Page {
    items: Vec<Map<String, Value>>,
    next_cursor: Option<String>,
    /// How long the upstream lets the page be cached, and by whom (`ttlMs`, `cacheScope`);
    /// none from servers of the session era.
    cache: Cache,
}

/// A cache hint of the stateless revision; merged, the strictest wins.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Cache {
    ttl_ms: u64,
    public: bool,
}

impl Cache {
    const NONE: Cache = Cache { ttl_ms: 0, public: false };

    fn of(page: &Map<String, Value>) -> Cache {
        match (page.get("ttlMs").and_then(Value::as_u64), page.get("cacheScope").and_then(Value::as_str)) {
            (Some(ttl_ms), Some(scope)) => Cache { ttl_ms, public: scope == "public" },
            _ => Cache::NONE,
        }
    }

    fn and(self, other: Cache) -> Cache {
        Cache { ttl_ms: self.ttl_ms.min(other.ttl_ms), public: self.public && other.public }
    }
}

/// Upstream pages read for one page of a merged list, at most; the rest follows its cursor.
const MAX_READS_PER_PAGE: usize = 50;

/// Where a listing stands, per mount key; a mount not in it has not been read yet.
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
struct Position {
    /// The list this cursor belongs to.
    list: String,
    mounts: BTreeMap<String, At>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
enum At {
    /// Reading the upstream page at `cursor` (none: the first), `skip` items already served.
    Page {
        cursor: Option<String>,
        skip: usize,
    },
    Done,
}

impl Position {
    fn decode(cursor: &str, kind: Kind) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let position: Position = serde_json::from_slice(&bytes).ok()?;
        (position.list == kind.list_method()).then_some(position)
    }

    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("positions serialize"))
    }
}

/// One page of the route's merged list.
pub async fn page(call: &Call, kind: Kind, params: Option<&RawValue>) -> Answer {
    #[derive(Deserialize)]
    struct Params {
        cursor: Option<String>,
    }
    let cursor = params.and_then(|p| serde_json::from_str::<Params>(p.get()).ok()).and_then(|p| p.cursor);
    let mut position = match cursor.as_deref() {
        None => Position { list: kind.list_method().into(), mounts: BTreeMap::new() },
        Some(cursor) => match Position::decode(cursor, kind) {
            Some(position) => position,
            None => return Answer::Error(RpcError::new(INVALID_PARAMS, format!("invalid cursor `{cursor}`"))),
        },
    };
    let page_size = call.gateway.list_page_size.max(1);
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    let mut failed = Vec::new();
    let mut answered = 0usize;
    let mut cache: Option<Cache> = None;
    let mut reads = 0;
    let route = &call.route;
    'mounts: for mount in &route.mounts {
        loop {
            let at = position.mounts.get(&*mount.key).cloned().unwrap_or(At::Page { cursor: None, skip: 0 });
            let At::Page { cursor, skip } = at else { break };
            // A page ends when full, or after enough upstream reads: pages of hidden items (or
            // an upstream's cursors going round in circles) cannot hold the request forever.
            if items.len() >= page_size || reads == MAX_READS_PER_PAGE {
                break 'mounts;
            }
            reads += 1;
            let started = std::time::Instant::now();
            let listed = list_page(call, mount, kind, cursor.as_deref()).await;
            call.observe(mount, kind.list_method(), started);
            let page = match listed {
                Ok(Ok(page)) => page,
                Ok(Err(error)) if error_code(&error) == Some(METHOD_NOT_FOUND) => {
                    // The server offers no such components: nothing to list, nothing failed.
                    answered += 1;
                    position.mounts.insert(mount.key.to_string(), At::Done);
                    break;
                }
                Ok(Err(error)) => {
                    fail(call, mount, kind, error.get(), &mut failed, "answered with an error");
                    position.mounts.insert(mount.key.to_string(), At::Done);
                    break;
                }
                Err(error) => {
                    fail(call, mount, kind, &error.to_string(), &mut failed, &error.summary());
                    position.mounts.insert(mount.key.to_string(), At::Done);
                    break;
                }
            };
            answered += 1;
            cache = Some(cache.map_or(page.cache, |c| c.and(page.cache)));
            let total = page.items.len();
            let room = page_size - items.len();
            let served = total.saturating_sub(skip).min(room);
            let mut listed = Vec::with_capacity(served);
            for item in page.items.into_iter().skip(skip).take(served) {
                let Some(Value::String(name)) = item.get(kind.key()) else { continue };
                let Some(visible) = mount.visible(kind, name) else { continue };
                listed.push((visible, item));
            }
            // Only what the caller may use is shown.
            let shown = shown(call, kind, &listed).await;
            for ((visible, mut item), shown) in listed.into_iter().zip(shown) {
                if !shown {
                    continue;
                }
                if seen.insert(visible.clone()) {
                    item.insert(kind.key().into(), Value::String(visible));
                    items.push(item);
                } else {
                    tracing::warn!(route = %route.id(), mount = %mount.config.server, name = %visible, "already listed by an earlier mount; this one is hidden");
                }
            }
            let next = if skip + served < total {
                At::Page { cursor, skip: skip + served }
            } else {
                match page.next_cursor {
                    Some(next) => At::Page { cursor: Some(next), skip: 0 },
                    None => At::Done,
                }
            };
            position.mounts.insert(mount.key.to_string(), next);
        }
    }
    if answered == 0 && !failed.is_empty() {
        // An empty list would hide the outage; say which servers did not answer.
        let message = format!("no mounted server answered {}: {}", kind.list_method(), failed.join(", "));
        return Answer::Error(RpcError::new(INTERNAL_ERROR, message));
    }
    let more = route.mounts.iter().any(|m| position.mounts.get(&*m.key) != Some(&At::Done));
    let mut result = Map::new();
    result.insert(kind.items().into(), Value::Array(items.into_iter().map(Value::Object).collect()));
    if more {
        result.insert("nextCursor".into(), json!(position.encode()));
    }
    if call.stateless.is_some() {
        // A merged page may be cached as long as every mount it holds allows; a config change
        // is announced to listeners either way.
        let cache = cache.unwrap_or(Cache::NONE);
        // A page filtered for this caller is its own, whatever the upstreams allow.
        let cache = if route.access.is_open() { cache } else { Cache { public: false, ..cache } };
        result.insert("resultType".into(), json!("complete"));
        result.insert("ttlMs".into(), json!(cache.ttl_ms));
        result.insert("cacheScope".into(), json!(if cache.public { "public" } else { "private" }));
    }
    Answer::Result(raw(&result))
}

/// Which of a page's items the caller may see: all of them on an open route; else each as
/// the route's authorization decides.
async fn shown(call: &Call, kind: Kind, listed: &[(String, Map<String, Value>)]) -> Vec<bool> {
    let access = &call.route.access;
    if access.is_open() {
        return vec![true; listed.len()];
    }
    let decisions = listed.iter().map(|(visible, _)| access.lists(&call.principal, kind, visible));
    futures::future::join_all(decisions).await
}

/// One upstream page: the items under the kind's field, and the next upstream cursor. An
/// upstream's JSON-RPC error is returned as such.
async fn list_page(
    call: &Call,
    mount: &Mount,
    kind: Kind,
    cursor: Option<&str>,
) -> Result<Result<Page, Box<RawValue>>, UpstreamError> {
    let mut params = Map::new();
    if let Some(cursor) = cursor {
        params.insert("cursor".into(), json!(cursor));
    }
    if let Some(stateless) = &call.stateless {
        params.insert("_meta".into(), serde_json::from_str(stateless.meta.get()).unwrap_or_default());
    }
    let params = (!params.is_empty()).then(|| raw(&params));
    let method = kind.list_method();
    match call.request(mount, method, params.as_deref(), None).await?.0 {
        Reply::Result(result) => {
            let mut page: Map<String, Value> = serde_json::from_str(result.get())
                .map_err(|e| UpstreamError::Protocol(format!("invalid {method} result: {e}")))?;
            let Some(Value::Array(list)) = page.remove(kind.items()) else {
                return Err(UpstreamError::Protocol(format!("{method} result has no `{}` list", kind.items())));
            };
            let items = list.into_iter().filter_map(|item| if let Value::Object(o) = item { Some(o) } else { None });
            let next_cursor = match page.remove("nextCursor") {
                Some(Value::String(next)) if !next.is_empty() && cursor != Some(next.as_str()) => Some(next),
                _ => None,
            };
            Ok(Ok(Page { items: items.collect(), next_cursor, cache: Cache::of(&page) }))
        }
        Reply::Error(error) => Ok(Err(error)),
    }
}

fn fail(call: &Call, mount: &Mount, kind: Kind, error: &str, failed: &mut Vec<String>, why: &str) {
    tracing::warn!(route = %call.route.id(), mount = %mount.config.server, %error, "{} failed on a mount; its items are left out", kind.list_method());
    failed.push(format!("`{}` ({why})", mount.config.server));
}

fn error_code(error: &RawValue) -> Option<i64> {
    serde_json::from_str::<Value>(error.get()).ok()?.get("code")?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strictest_cache_hint_wins() {
        let hint = |ttl: u64, scope: &str| Cache::of(json!({"ttlMs": ttl, "cacheScope": scope}).as_object().unwrap());
        assert_eq!(hint(300_000, "public").and(hint(60_000, "public")), Cache { ttl_ms: 60_000, public: true });
        assert_eq!(hint(300_000, "public").and(hint(600_000, "private")), Cache { ttl_ms: 300_000, public: false });
        assert_eq!(hint(300_000, "public").and(Cache::of(&Map::new())), Cache::NONE, "a session-era page has no hint");
    }

    #[test]
    fn cursors_round_trip_and_belong_to_one_list() {
        let mut position = Position { list: "tools/list".into(), mounts: BTreeMap::new() };
        position.mounts.insert("a~alpha".into(), At::Done);
        position.mounts.insert("~beta".into(), At::Page { cursor: Some("p2".into()), skip: 17 });
        let cursor = position.encode();
        assert_eq!(Position::decode(&cursor, Kind::Tool), Some(position));
        assert_eq!(Position::decode(&cursor, Kind::Prompt), None, "a tools cursor is not a prompts cursor");
        assert_eq!(Position::decode("not-a-cursor", Kind::Tool), None);
        assert_eq!(Position::decode("", Kind::Tool), None);
    }
}
