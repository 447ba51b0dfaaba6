//! Merged lists (`tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`)
//! served in pages: the `pager` decides which upstream pages to read and what the page and
//! its cursor are; this module reads them, names their items as clients see them, and shows
//! only what the caller may use.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::call::{Answer, Call};
use super::pager::{Cache, Caching, Page, Pager, Read};
use crate::jsonrpc::raw;
use crate::protocol::Kind;
use crate::protocol::code::METHOD_NOT_FOUND;
use crate::snapshot::Mount;
use crate::upstream::{Reply, UpstreamError};

/// One page of the route's merged list.
pub async fn page(call: &Call, kind: Kind, params: Option<&RawValue>) -> Answer {
    #[derive(Deserialize)]
    struct Params {
        cursor: Option<String>,
    }
    let cursor = params.and_then(|p| serde_json::from_str::<Params>(p.get()).ok()).and_then(|p| p.cursor);
    let route = &call.route;
    let keys = route.mounts.iter().map(|mount| mount.key.to_string()).collect();
    let mut pager = match Pager::start(kind, cursor.as_deref(), keys, call.gateway.list_page_size) {
        Ok(pager) => pager,
        Err(error) => return Answer::Error(error),
    };
    while let Some(Read { mount, cursor }) = pager.next_read() {
        let mount = &route.mounts[mount];
        let started = std::time::Instant::now();
        let listed = list_page(call, mount, kind, cursor.as_deref()).await;
        call.observe(mount, kind.list(), started);
        let page = match listed {
            Ok(Ok(page)) => page,
            Ok(Err(error)) if error_code(&error) == Some(METHOD_NOT_FOUND) => {
                // The server offers no such components: nothing to list, nothing failed.
                pager.absent();
                continue;
            }
            Ok(Err(error)) => {
                fail(call, mount, kind, error.get());
                pager.failed(&mount.config.server, "answered with an error");
                continue;
            }
            Err(error) => {
                fail(call, mount, kind, &error.to_string());
                pager.failed(&mount.config.server, &error.summary());
                continue;
            }
        };
        let mut listed = Vec::new();
        for item in pager.take(page) {
            let Some(Value::String(name)) = item.get(kind.key()) else { continue };
            let Some(visible) = mount.visible(kind, name) else { continue };
            listed.push((visible, item));
        }
        // Only what the caller may use is shown.
        let shown = shown(call, kind, &listed).await;
        for ((visible, item), shown) in listed.into_iter().zip(shown) {
            if shown && !pager.push(visible.clone(), item) {
                tracing::warn!(route = %route.id(), mount = %mount.config.server, name = %visible, "already listed by an earlier mount; this one is hidden");
            }
        }
    }
    let caching = match call.era.is_stateless() {
        true => Caching::Stated { shared: route.access.is_open() },
        false => Caching::Unstated,
    };
    match pager.finish(caching) {
        Ok(result) => Answer::Result(raw(&result)),
        Err(error) => Answer::Error(error),
    }
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
    if let Some(stateless) = call.era.stateless() {
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

fn fail(call: &Call, mount: &Mount, kind: Kind, error: &str) {
    tracing::warn!(route = %call.route.id(), mount = %mount.config.server, %error, "{} failed on a mount; its items are left out", kind.list_method());
}

fn error_code(error: &RawValue) -> Option<i64> {
    serde_json::from_str::<Value>(error.get()).ok()?.get("code")?.as_i64()
}
