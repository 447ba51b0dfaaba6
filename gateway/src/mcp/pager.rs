//! The arithmetic of a merged list, with no IO: which upstream page to read next
//! ([`Pager::next_read`]), which of its items belong on this page ([`Pager::take`]), and the
//! page and cursor that result ([`Pager::finish`]). Mounts are read in order; a page takes up
//! to the gateway's page size, following each upstream's own cursors, and the cursor handed
//! to the client records where every mount stands (not started, at an upstream page and an
//! offset in it, or done). Nothing is kept between pages, and nothing is ever cut off: the
//! last page is the one without a `nextCursor`.

use std::collections::{BTreeMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::jsonrpc::RpcError;
use crate::protocol::Kind;
use crate::protocol::code::{INTERNAL_ERROR, INVALID_PARAMS};

/// Upstream pages read for one page of a merged list, at most; the rest follows its cursor.
const MAX_READS_PER_PAGE: usize = 50;

/// One page of an upstream's list.
pub struct Page {
    pub items: Vec<Map<String, Value>>,
    pub next_cursor: Option<String>,
    /// How long the upstream lets the page be cached, and by whom (`ttlMs`, `cacheScope`);
    /// none from servers of the session era.
    pub cache: Cache,
    /// The upstream's `ttlMs`, as the gateway's own cache reads it: none when absent (a server
    /// of the session era), 0 when negative or not a number.
    pub ttl_ms: Option<u64>,
}

/// A cache hint of the stateless revision; merged, the strictest wins.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cache {
    ttl_ms: u64,
    public: bool,
}

impl Cache {
    pub const NONE: Cache = Cache { ttl_ms: 0, public: false };

    pub fn of(page: &Map<String, Value>) -> Cache {
        match (page.get("ttlMs").and_then(Value::as_u64), page.get("cacheScope").and_then(Value::as_str)) {
            (Some(ttl_ms), Some(scope)) => Cache { ttl_ms, public: scope == "public" },
            _ => Cache::NONE,
        }
    }

    fn and(self, other: Cache) -> Cache {
        Cache { ttl_ms: self.ttl_ms.min(other.ttl_ms), public: self.public && other.public }
    }
}

/// Whether a merged page says how it may be cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// The session era: no cache hints.
    Unstated,
    /// The stateless revision: the mounts' hints, merged; `shared` when the page is the same
    /// for every caller (an open route), else it is private whatever the upstreams allow.
    Stated { shared: bool },
}

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

    fn at(&self, key: &str) -> At {
        self.mounts.get(key).cloned().unwrap_or(At::Page { cursor: None, skip: 0 })
    }
}

/// An upstream page to read: of the mount at `mount` (its index), from `cursor`.
#[derive(Debug, PartialEq)]
pub struct Read {
    pub mount: usize,
    pub cursor: Option<String>,
}

/// One page of a merged list being put together.
pub struct Pager {
    kind: Kind,
    /// The route's mount keys, in mount order.
    mounts: Vec<String>,
    page_size: usize,
    position: Position,
    /// The mount being read.
    current: usize,
    reads: usize,
    items: Vec<Map<String, Value>>,
    seen: HashSet<String>,
    /// Mounts that answered (a list, or that they have no such list).
    answered: usize,
    /// Mounts that failed, as the error names them.
    failed: Vec<String>,
    cache: Option<Cache>,
    /// The shortest `ttlMs` of the upstream pages read, where they state one.
    ttl_ms: Option<u64>,
}

impl Pager {
    /// A page starting where the client's `cursor` says (none: the first page); an error for
    /// a cursor that is not one of this list's.
    pub fn start(kind: Kind, cursor: Option<&str>, mounts: Vec<String>, page_size: usize) -> Result<Pager, RpcError> {
        let position = match cursor {
            None => Position { list: kind.list_method().into(), mounts: BTreeMap::new() },
            Some(cursor) => Position::decode(cursor, kind)
                .ok_or_else(|| RpcError::new(INVALID_PARAMS, format!("invalid cursor `{cursor}`")))?,
        };
        let page_size = page_size.max(1);
        Ok(Pager {
            kind,
            mounts,
            page_size,
            position,
            current: 0,
            reads: 0,
            items: Vec::new(),
            seen: HashSet::new(),
            answered: 0,
            failed: Vec::new(),
            cache: None,
            ttl_ms: None,
        })
    }

    /// The next upstream page to read; none once the page is full, enough pages were read, or
    /// every mount is done. A page ends after enough upstream reads, so that pages of hidden
    /// items (or an upstream's cursors going round in circles) cannot hold the request forever.
    pub fn next_read(&mut self) -> Option<Read> {
        while let Some(key) = self.mounts.get(self.current) {
            let At::Page { cursor, .. } = self.position.at(key) else {
                self.current += 1;
                continue;
            };
            if self.items.len() >= self.page_size || self.reads == MAX_READS_PER_PAGE {
                return None;
            }
            self.reads += 1;
            return Some(Read { mount: self.current, cursor });
        }
        None
    }

    /// Takes the page just read for the current mount: returns the items that belong on this
    /// page (to be named and filtered by the caller, then [`push`](Self::push)ed), and moves
    /// the mount's position past them.
    pub fn take(&mut self, page: Page) -> Vec<Map<String, Value>> {
        let key = self.mounts[self.current].clone();
        let At::Page { cursor, skip } = self.position.at(&key) else { return Vec::new() };
        self.answered += 1;
        self.cache = Some(self.cache.map_or(page.cache, |c| c.and(page.cache)));
        self.ttl_ms = match (self.ttl_ms, page.ttl_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let total = page.items.len();
        let room = self.page_size - self.items.len();
        let served = total.saturating_sub(skip).min(room);
        let next = if skip + served < total {
            At::Page { cursor, skip: skip + served }
        } else {
            match page.next_cursor {
                Some(next) => At::Page { cursor: Some(next), skip: 0 },
                None => At::Done,
            }
        };
        self.position.mounts.insert(key, next);
        page.items.into_iter().skip(skip).take(served).collect()
    }

    /// Adds an item under its client-visible name; false (and nothing added) when an earlier
    /// mount already listed that name.
    pub fn push(&mut self, visible: String, mut item: Map<String, Value>) -> bool {
        if !self.seen.insert(visible.clone()) {
            return false;
        }
        item.insert(self.kind.key().into(), Value::String(visible));
        self.items.push(item);
        true
    }

    /// The current mount has no such list: nothing to list, nothing failed.
    pub fn absent(&mut self) {
        self.answered += 1;
        self.done();
    }

    /// The current mount failed: its items are left out, and the page says so if no mount
    /// answered.
    pub fn failed(&mut self, server: &str, why: &str) {
        self.failed.push(format!("`{server}` ({why})"));
        self.done();
    }

    /// Whether every mount read answered: a page missing a failed mount's items is not one
    /// to keep.
    pub fn complete(&self) -> bool {
        self.failed.is_empty()
    }

    /// The shortest `ttlMs` the upstream pages read stated, if any stated one.
    pub fn upstream_ttl(&self) -> Option<std::time::Duration> {
        self.ttl_ms.map(std::time::Duration::from_millis)
    }

    fn done(&mut self) {
        self.position.mounts.insert(self.mounts[self.current].clone(), At::Done);
    }

    /// The merged page: its items, a `nextCursor` while any mount has more, and (in the
    /// stateless revision) how it may be cached. An error when no mount answered and some
    /// failed: an empty list would hide the outage.
    pub fn finish(self, caching: Caching) -> Result<Map<String, Value>, RpcError> {
        if self.answered == 0 && !self.failed.is_empty() {
            let list = self.kind.list_method();
            let message = format!("no mounted server answered {list}: {}", self.failed.join(", "));
            return Err(RpcError::new(INTERNAL_ERROR, message));
        }
        let more = self.mounts.iter().any(|key| self.position.mounts.get(key) != Some(&At::Done));
        let mut result = Map::new();
        result.insert(self.kind.items().into(), Value::Array(self.items.into_iter().map(Value::Object).collect()));
        if more {
            result.insert("nextCursor".into(), json!(self.position.encode()));
        }
        if let Caching::Stated { shared } = caching {
            // A merged page may be cached as long as every mount it holds allows; a config
            // change is announced to listeners either way.
            let cache = self.cache.unwrap_or(Cache::NONE);
            // A page filtered for this caller is its own, whatever the upstreams allow.
            let cache = if shared { cache } else { Cache { public: false, ..cache } };
            result.insert("resultType".into(), json!("complete"));
            result.insert("ttlMs".into(), json!(cache.ttl_ms));
            result.insert("cacheScope".into(), json!(if cache.public { "public" } else { "private" }));
        }
        Ok(result)
    }
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

    /// Upstream lists, by mount: pages of tool names.
    type Upstreams<'a> = &'a [&'a [&'a [&'a str]]];

    /// Serves merged pages of `upstreams` the way `lists::page` does, without IO: every item
    /// is shown under its own name. Returns each page's names and how many upstream reads it took.
    fn pages(upstreams: Upstreams, page_size: usize) -> Vec<(Vec<String>, usize)> {
        let keys: Vec<String> = (0..upstreams.len()).map(|i| format!("~m{i}")).collect();
        let mut cursor: Option<String> = None;
        let mut out = Vec::new();
        loop {
            let mut pager = Pager::start(Kind::Tool, cursor.as_deref(), keys.clone(), page_size).unwrap();
            let mut reads = 0;
            while let Some(Read { mount, cursor }) = pager.next_read() {
                reads += 1;
                let index: usize = cursor.as_deref().map_or(0, |c| c.parse().unwrap());
                let pages = upstreams[mount];
                let items = pages[index].iter().map(|name| json!({ "name": name }).as_object().unwrap().clone());
                let next_cursor = (index + 1 < pages.len()).then(|| (index + 1).to_string());
                let page = Page { items: items.collect(), next_cursor, cache: Cache::NONE, ttl_ms: None };
                for item in pager.take(page) {
                    let name = item["name"].as_str().unwrap().to_owned();
                    pager.push(name, item);
                }
            }
            let result = pager.finish(Caching::Unstated).unwrap();
            let names = result["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned());
            out.push((names.collect(), reads));
            match result.get("nextCursor") {
                Some(next) => cursor = Some(next.as_str().unwrap().to_owned()),
                None => return out,
            }
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn pages_fill_across_mounts_and_upstream_pages_and_lose_nothing() {
        let upstreams: Upstreams = &[&[&["a", "b", "c"], &["d"]], &[&["e", "f"]]];
        let got = pages(upstreams, 2);
        let expected = [(names(&["a", "b"]), 1), (names(&["c", "d"]), 2), (names(&["e", "f"]), 1)];
        assert_eq!(got, expected);
        let one_page = pages(upstreams, 500);
        assert_eq!(one_page, [(names(&["a", "b", "c", "d", "e", "f"]), 3)], "the last page has no nextCursor");
    }

    #[test]
    fn a_name_listed_by_an_earlier_mount_is_hidden_later() {
        let got = pages(&[&[&["a", "b"]], &[&["b", "c"]]], 500);
        assert_eq!(got, [(names(&["a", "b", "c"]), 2)]);
    }

    #[test]
    fn a_page_ends_after_enough_upstream_reads() {
        // Sixty empty upstream pages, then one item: no page waits for all of them.
        let mut upstream: Vec<&[&str]> = vec![&[]; 60];
        upstream.push(&["last"]);
        let got = pages(&[&upstream], 10);
        assert_eq!(got, [(vec![], MAX_READS_PER_PAGE), (names(&["last"]), 11)]);
    }

    #[test]
    fn failures_are_left_out_unless_no_mount_answered() {
        let keys = vec!["~a".to_owned(), "~b".to_owned()];
        let mut pager = Pager::start(Kind::Prompt, None, keys.clone(), 10).unwrap();
        assert_eq!(pager.next_read(), Some(Read { mount: 0, cursor: None }));
        pager.failed("a", "timed out");
        assert_eq!(pager.next_read(), Some(Read { mount: 1, cursor: None }));
        pager.failed("b", "answered with an error");
        assert_eq!(pager.next_read(), None);
        let error = pager.finish(Caching::Unstated).unwrap_err();
        assert_eq!(error.code, INTERNAL_ERROR);
        assert_eq!(
            error.message,
            "no mounted server answered prompts/list: `a` (timed out), `b` (answered with an error)"
        );

        let mut pager = Pager::start(Kind::Prompt, None, keys, 10).unwrap();
        pager.next_read();
        pager.failed("a", "timed out");
        pager.next_read();
        pager.absent();
        let result = pager.finish(Caching::Unstated).unwrap();
        assert_eq!(Value::Object(result), json!({ "prompts": [] }), "a mount without prompts answered");
    }

    #[test]
    fn stateless_pages_carry_the_strictest_hint_and_filtered_pages_are_private() {
        let page = |ttl: u64, scope: &str| Page {
            items: vec![],
            next_cursor: None,
            cache: Cache::of(json!({"ttlMs": ttl, "cacheScope": scope}).as_object().unwrap()),
            ttl_ms: Some(ttl),
        };
        let merged = |caching| {
            let mut pager = Pager::start(Kind::Tool, None, vec!["~a".into(), "~b".into()], 10).unwrap();
            pager.next_read();
            pager.take(page(60_000, "public"));
            pager.next_read();
            pager.take(page(5_000, "public"));
            Value::Object(pager.finish(caching).unwrap())
        };
        let open = json!({ "tools": [], "resultType": "complete", "ttlMs": 5000, "cacheScope": "public" });
        assert_eq!(merged(Caching::Stated { shared: true }), open);
        assert_eq!(merged(Caching::Stated { shared: false })["cacheScope"], "private");
        assert_eq!(merged(Caching::Unstated), json!({ "tools": [] }));
    }

    #[test]
    fn the_cache_learns_the_shortest_stated_ttl_and_whether_every_mount_answered() {
        let page = |ttl_ms: Option<u64>| Page { items: vec![], next_cursor: None, cache: Cache::NONE, ttl_ms };
        let keys = vec!["~a".to_owned(), "~b".to_owned(), "~c".to_owned()];
        let mut pager = Pager::start(Kind::Tool, None, keys.clone(), 10).unwrap();
        pager.next_read();
        pager.take(page(None));
        assert_eq!(pager.upstream_ttl(), None, "a session-era page states nothing");
        pager.next_read();
        pager.take(page(Some(60_000)));
        pager.next_read();
        pager.take(page(Some(5_000)));
        assert_eq!(pager.upstream_ttl(), Some(std::time::Duration::from_secs(5)));
        assert!(pager.complete());

        let mut pager = Pager::start(Kind::Tool, None, keys, 10).unwrap();
        pager.next_read();
        pager.take(page(Some(0)));
        pager.next_read();
        pager.failed("b", "timed out");
        assert_eq!(pager.upstream_ttl(), Some(std::time::Duration::ZERO), "ttlMs 0: not to be kept");
        assert!(!pager.complete(), "a page without b's items is not one to keep");
    }

    #[test]
    fn a_cursor_of_another_list_is_refused() {
        let tools = Pager::start(Kind::Tool, None, vec!["~a".into()], 1).unwrap();
        let cursor = tools.position.encode();
        let error = Pager::start(Kind::Prompt, Some(&cursor), vec!["~a".into()], 1).err().unwrap();
        assert_eq!((error.code, error.message), (INVALID_PARAMS, format!("invalid cursor `{cursor}`")));
    }
}
