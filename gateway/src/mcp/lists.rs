//! Merged lists (`tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`)
//! served in pages: the `pager` decides which upstream pages to read and what the page and
//! its cursor are; this module reads them, names their items as clients see them, and shows
//! only what the caller may use.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::cached;
use super::call::{Answer, Call};
use super::pager::{Cache, Caching, Page, Pager, Read};
use crate::jsonrpc::raw;
use crate::protocol::Kind;
use crate::protocol::code::METHOD_NOT_FOUND;
use crate::snapshot::Mount;
use crate::upstream::identity::Denied;
use crate::upstream::{Reply, UpstreamError};

/// One page of the route's merged list.
pub async fn page(call: &Call, kind: Kind, params: Option<&RawValue>) -> Answer {
    #[derive(Deserialize)]
    struct Params {
        cursor: Option<String>,
    }
    let cursor = params.and_then(|p| serde_json::from_str::<Params>(p.get()).ok()).and_then(|p| p.cursor);
    let kept = match cached::list_page(call, kind, params, cursor.as_deref()) {
        Ok(hit) => return hit,
        Err(kept) => kept,
    };
    let route = &call.route;
    let keys = route.mounts.iter().map(|mount| mount.key.to_string()).collect();
    // A route with a compatibility profile lists its tools in one page, up to a bound.
    let profile = route.config.compatibility.as_ref().filter(|_| kind == Kind::Tool);
    let page_size = match profile {
        Some(_) => call.gateway.list_page_size.max(super::compat::ONE_PAGE_TOOLS),
        None => call.gateway.list_page_size,
    };
    let mut pager = match Pager::start(kind, cursor.as_deref(), keys, page_size) {
        Ok(pager) => pager,
        Err(error) => return Answer::Error(error),
    };
    // A first page asks every mount for its first page at once: the client waits for the
    // slowest mount, not for the sum of them. Pages the merged page has no room for are
    // dropped unread.
    let mut first_pages = match cursor {
        None => futures::future::join_all(route.mounts.iter().map(|mount| timed_page(call, mount, kind, None))).await,
        Some(_) => Vec::new(),
    }
    .into_iter()
    .map(Some)
    .collect::<Vec<_>>();
    while let Some(Read { mount: index, cursor }) = pager.next_read() {
        let mount = &route.mounts[index];
        let prefetched = match cursor {
            None => first_pages.get_mut(index).and_then(Option::take),
            Some(_) => None,
        };
        let listed = match prefetched {
            Some(listed) => listed,
            None => timed_page(call, mount, kind, cursor.as_deref()).await,
        };
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
            // A client that can show the consent link is asked for it: once it has
            // consented, its next list holds the mount's items.
            Err(UpstreamError::Credential(Denied::Consent { url, elicitation_id }))
                if call.offers_url_elicitation() =>
            {
                let stateless = call.era.is_stateless();
                return match super::elicit::consent_required(stateless, &mount.config.server, &url, &elicitation_id) {
                    Ok(input_required) => Answer::Result(input_required),
                    Err(error) => Answer::Error(error),
                };
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
        for ((visible, mut item), shown) in listed.into_iter().zip(shown) {
            // Authorization saw the client-visible name; the profile then names the tool as
            // its clients see it, or leaves it out.
            let visible = match profile {
                Some(profile) if shown => match super::compat::client_tool(profile, &visible, &mut item) {
                    Some(name) => name,
                    None => continue,
                },
                _ => visible,
            };
            if shown && !pager.push(visible.clone(), item) {
                tracing::warn!(route = %route.id(), mount = %mount.config.server, name = %visible, "already listed by an earlier mount; this one is hidden");
            }
        }
    }
    let caching = match call.era.is_stateless() {
        // A list any caller gets alike may be kept by anyone: not when a mount lists with
        // the caller's own credential.
        true => Caching::Stated {
            shared: route.access.is_open() && !route.mounts.iter().any(|mount| mount.client.speaks_for_caller),
        },
        false => Caching::Unstated,
    };
    let (complete, upstream_ttl) = (pager.complete(), pager.upstream_ttl());
    match (pager.finish(caching), kept) {
        (Ok(result), Some(kept)) => Answer::Result(cached::keep_list(call, kept, result, complete, upstream_ttl)),
        (Ok(result), None) => Answer::Result(raw(&result)),
        (Err(error), _) => Answer::Error(error),
    }
}

/// One upstream page, timed into the mount's latency histogram.
async fn timed_page(
    call: &Call,
    mount: &Mount,
    kind: Kind,
    cursor: Option<&str>,
) -> Result<Result<Page, Box<RawValue>>, UpstreamError> {
    let started = std::time::Instant::now();
    let listed = list_page(call, mount, kind, cursor).await;
    call.observe(mount, kind.list(), started);
    listed
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
    let known = &mount.client.guard.known;
    let reply = match call.request(mount, method, params.as_deref(), None).await {
        Ok((Reply::Result(result), _)) => {
            known.remember(method, cursor, &result);
            Reply::Result(result)
        }
        // A mount whose breaker is open stays listed as it was last seen; its calls fail at
        // once, saying when it will be tried again.
        Err(UpstreamError::CircuitOpen(wait)) => match known.recall(method, cursor) {
            Some(page) => Reply::Result(page),
            None => return Err(UpstreamError::CircuitOpen(wait)),
        },
        other => other?.0,
    };
    match reply {
        Reply::Result(result) => {
            let mut page: Map<String, Value> = serde_json::from_str(result.get())
                .map_err(|e| UpstreamError::Protocol(format!("invalid {method} result: {e}")))?;
            let Some(Value::Array(list)) = page.remove(kind.items()) else {
                return Err(UpstreamError::Protocol(format!("{method} result has no `{}` list", kind.items())));
            };
            let items: Vec<Map<String, Value>> =
                list.into_iter().filter_map(|item| if let Value::Object(o) = item { Some(o) } else { None }).collect();
            if kind == Kind::Tool {
                known.learn_tools(&items);
                if call.route.config.compatibility.is_some() {
                    known.learn_schemas(&items);
                }
            }
            let next_cursor = match page.remove("nextCursor") {
                Some(Value::String(next)) if !next.is_empty() && cursor != Some(next.as_str()) => Some(next),
                _ => None,
            };
            let ttl_ms = page.get("ttlMs").map(|ttl| ttl.as_u64().unwrap_or(0));
            Ok(Ok(Page { items, next_cursor, cache: Cache::of(&page), ttl_ms }))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::Json;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use manifold_api::config::{RemoteUpstream, Transport, Upstream};
    use serde_json::json;

    use super::*;
    use crate::mcp::call::Era;
    use crate::mcp::call::testing::{call, route};

    /// An MCP server whose `tools/list` answers only once `barrier` is full: a list that read
    /// its mounts one after another would wait on the first one forever.
    async fn waiting_server(barrier: Arc<tokio::sync::Barrier>) -> String {
        let app = axum::Router::new().route(
            "/mcp",
            axum::routing::post(move |Json(message): Json<Value>| {
                let barrier = barrier.clone();
                async move {
                    let id = message.get("id").cloned();
                    let result = match message["method"].as_str().unwrap_or_default() {
                        "initialize" => json!({
                            "protocolVersion": "2025-11-25", "capabilities": { "tools": {} },
                            "serverInfo": { "name": "waiting", "version": "1" },
                        }),
                        "tools/list" => {
                            barrier.wait().await;
                            json!({ "tools": [{ "name": "t", "inputSchema": { "type": "object" } }] })
                        }
                        _ if id.is_none() => return StatusCode::ACCEPTED.into_response(),
                        _ => {
                            let error = json!({ "code": -32601, "message": "no such method" });
                            return Json(json!({ "jsonrpc": "2.0", "id": id, "error": error })).into_response();
                        }
                    };
                    let mut headers = HeaderMap::new();
                    headers.insert("mcp-session-id", "s".parse().expect("a header value"));
                    (headers, Json(json!({ "jsonrpc": "2.0", "id": id, "result": result }))).into_response()
                }
            })
            .get(|| async { Response::builder().status(405).body(axum::body::Body::empty()).expect("a response") })
            .delete(|| async { StatusCode::OK }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}/mcp")
    }

    #[tokio::test]
    async fn a_first_page_asks_every_mount_at_once() {
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let mut config = route(&["a", "b", "c"], None);
        for mount in &mut config.mounts {
            let url = waiting_server(barrier.clone()).await;
            mount.upstream = Upstream::Remote(RemoteUpstream {
                url,
                transport: Transport::StreamableHttp,
                headers: vec![],
                auth: None,
                timeout_ms: 30_000,
                resilience: Default::default(),
            });
        }
        let (call, _) = call(config, Era::Session).await;
        let listed = tokio::time::timeout(std::time::Duration::from_secs(20), page(&call, Kind::Tool, None)).await;
        let Ok(Answer::Result(result)) = listed else { panic!("the mounts were not asked at once") };
        let result: Value = serde_json::from_str(result.get()).expect("JSON");
        let names: Vec<&str> =
            result["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(names, ["a_t", "b_t", "c_t"]);
    }
}
