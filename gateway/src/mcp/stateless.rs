//! The stateless revision (2026-07-28), served on the same endpoint as the session-based
//! ones. A request carries its own metadata (`params._meta`) and mirrors it in headers; the
//! gateway checks both in the order the spec gives, answers `server/discover` itself, and
//! routes the rest like any request: to upstreams that speak this revision as it is, to the
//! others through the route's bridge session.

use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use manifold_api::config::Action;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use super::call::{Answer, Call, Era, Stateless};
use super::exchange::request;
use super::listeners::{Filter, ListenRelay, tagged};
use super::response::{Response, event_stream, json, rpc_failure, stateless_status};
use super::stream::SseBody;
use crate::Gateway;
use crate::access::Principal;
use crate::jsonrpc::{self, RpcError, raw};
use crate::policy::resilience::cap::Place;
use crate::protocol::code::{
    FORBIDDEN, HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, UNSUPPORTED_VERSION,
};
use crate::protocol::{Kind, Method, STATELESS, SUPPORTED_VERSIONS, header, meta};
use crate::snapshot::Route;

/// Methods of the stateless revision the gateway serves; everything else gets 404.
const METHODS: &[Method] = &[
    Method::ServerDiscover,
    Method::SubscriptionsListen,
    Method::ToolsList,
    Method::ToolsCall,
    Method::PromptsList,
    Method::PromptsGet,
    Method::ResourcesList,
    Method::ResourcesTemplatesList,
    Method::ResourcesRead,
    Method::CompletionComplete,
];

/// Whether a request without a session speaks the stateless revision: its
/// `MCP-Protocol-Version` is not one of the session-based revisions, or, with no such header,
/// its `_meta` names a protocol version.
pub fn applies(headers: &HeaderMap, params: Option<&RawValue>) -> bool {
    match headers.get(header::PROTOCOL_VERSION) {
        Some(version) => !SUPPORTED_VERSIONS.contains(&version.to_str().unwrap_or("")),
        None => params.is_some_and(|p| p.get().contains(meta::PROTOCOL_VERSION)),
    }
}

/// Answers one request of the stateless revision.
#[allow(clippy::too_many_arguments)] // the request's parts, as the endpoint read them
pub async fn answer(
    gateway: &Arc<Gateway>,
    route: &Arc<Route>,
    headers: &HeaderMap,
    principal: Arc<Principal>,
    id: Box<RawValue>,
    method: String,
    params: Option<Box<RawValue>>,
    place: Option<Place>,
) -> Response {
    let parsed = Method::parse(&method);
    let meta = match check(headers, parsed, &method, params.as_deref()) {
        Ok(meta) => meta,
        Err(error) => return rpc_failure(stateless_status(error.code), Some(&id), error),
    };
    if !METHODS.contains(&parsed) {
        let error = RpcError::new(METHOD_NOT_FOUND, format!("method `{method}` is not served in revision {STATELESS}"));
        return rpc_failure(StatusCode::NOT_FOUND, Some(&id), error);
    }
    if parsed == Method::ServerDiscover {
        let started = std::time::Instant::now();
        let discovered = discover(route);
        // Answered once per client start: the copy costs nothing that matters.
        let answer = Answer::Result(discovered.clone());
        super::exchange::count(gateway, route, parsed, &answer, started);
        return json(StatusCode::OK, jsonrpc::result(&id, &discovered));
    }
    if parsed == Method::SubscriptionsListen {
        if let Err(error) = may_subscribe(route, &principal, params.as_deref()).await {
            return rpc_failure(stateless_status(error.code), Some(&id), error);
        }
        return listen(gateway, route, headers, id, meta, params.as_deref());
    }
    let wants_logs = meta.get(meta::LOG_LEVEL).is_some();
    let forwarded = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with(header::PARAM_PREFIX))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let stateless = Stateless { meta: raw(&meta), forwarded, wants_logs };
    let session = gateway.sessions.bridge(&route.config.key());
    let (relay, relayed) = mpsc::unbounded_channel();
    let call = Call {
        gateway: Arc::clone(gateway),
        route: Arc::clone(route),
        session,
        principal,
        id,
        relay,
        era: Era::Stateless(Arc::new(stateless)),
        fresh: super::cached::fresh_asked(headers),
        cached: Default::default(),
        place,
    };
    request(call, parsed, method, params, relayed).await
}

/// The checks of the spec, in its order: `_meta` (400, -32602), the version header against
/// it (-32020), the version (-32022), `Mcp-Method` and `Mcp-Name` (-32020).
/// `method` is `name` parsed.
fn check(
    headers: &HeaderMap,
    method: Method,
    name: &str,
    params: Option<&RawValue>,
) -> Result<Map<String, Value>, RpcError> {
    /// What the checks read of the params; the arguments are skipped, not parsed.
    #[derive(serde::Deserialize, Default)]
    struct Envelope {
        #[serde(rename = "_meta")]
        meta: Option<Map<String, Value>>,
        name: Option<Value>,
        uri: Option<Value>,
    }
    let params: Envelope = params.and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or_default();
    let meta = match params.meta {
        Some(meta)
            if meta.get(meta::PROTOCOL_VERSION).is_some_and(Value::is_string)
                && meta.contains_key(meta::CLIENT_CAPABILITIES) =>
        {
            meta
        }
        _ => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                format!("params._meta must carry `{}` and `{}`", meta::PROTOCOL_VERSION, meta::CLIENT_CAPABILITIES),
            ));
        }
    };
    let version = meta[meta::PROTOCOL_VERSION].as_str().unwrap_or_default();
    let header = |name: &str| -> Result<Option<String>, RpcError> {
        let mut values = headers.get_all(name).iter();
        let value = values.next().map(|v| decode(v.to_str().unwrap_or("").trim()));
        if values.next().is_some() {
            return Err(RpcError::new(HEADER_MISMATCH, format!("the {name} header appears more than once")));
        }
        Ok(value)
    };
    if header(header::PROTOCOL_VERSION)?.as_deref() != Some(version) {
        return Err(RpcError::new(
            HEADER_MISMATCH,
            format!("the MCP-Protocol-Version header does not match _meta's `{version}`"),
        ));
    }
    if version != STATELESS {
        return Err(RpcError {
            code: UNSUPPORTED_VERSION,
            message: format!("protocol version `{version}` is not supported"),
            data: Some(json!({ "supported": [STATELESS], "requested": version })),
        });
    }
    if header(header::METHOD)?.as_deref() != Some(name) {
        return Err(RpcError::new(
            HEADER_MISMATCH,
            format!("the Mcp-Method header does not match the method `{name}`"),
        ));
    }
    let named = match method {
        Method::ToolsCall | Method::PromptsGet => params.name.as_ref(),
        Method::ResourcesRead => params.uri.as_ref(),
        _ => None,
    };
    if let Some(Value::String(target)) = named
        && header(header::NAME)?.as_deref() != Some(target.as_str())
    {
        return Err(RpcError::new(HEADER_MISMATCH, format!("the Mcp-Name header does not match `{target}`")));
    }
    Ok(meta)
}

/// A header value as the stateless revision encodes it: `=?base64?…?=` or plain text. A
/// sentinel that does not decode to UTF-8 stays as it is, and then matches nothing.
fn decode(value: &str) -> String {
    use base64::Engine;
    if let Some(encoded) = value.strip_prefix("=?base64?").and_then(|v| v.strip_suffix("?="))
        && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded)
        && let Ok(text) = String::from_utf8(bytes)
    {
        return text;
    }
    value.to_owned()
}

fn discover(route: &Route) -> Box<RawValue> {
    raw(&json!({
        "resultType": "complete",
        "supportedVersions": [STATELESS],
        "capabilities": {
            "tools": { "listChanged": true },
            "prompts": { "listChanged": true },
            "resources": { "listChanged": true, "subscribe": true },
            "completions": {},
        },
        "instructions": format!(
            "Tools, prompts and resources of {} mounted server(s): names are <prefix>_<name>, URIs <scheme>://<prefix>/<rest>.",
            route.mounts.len()
        ),
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": { meta::SERVER_INFO: { "name": "manifold", "version": env!("CARGO_PKG_VERSION") } },
    }))
}

/// Resource subscriptions one `subscriptions/listen` may hold.
const MAX_SUBSCRIPTIONS: usize = 256;

/// A caller hears about updates only of resources it may read.
async fn may_subscribe(route: &Route, principal: &Principal, params: Option<&RawValue>) -> Result<(), RpcError> {
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(default)]
        notifications: Filter,
    }
    let Some(Params { notifications }) = params.and_then(|p| serde_json::from_str(p.get()).ok()) else {
        return Ok(());
    };
    if notifications.resource_subscriptions.len() > MAX_SUBSCRIPTIONS {
        let message = format!("at most {MAX_SUBSCRIPTIONS} resource subscriptions per listen");
        return Err(RpcError::new(INVALID_PARAMS, message));
    }
    for uri in &notifications.resource_subscriptions {
        super::names::check_uri(uri).map_err(|why| RpcError::new(INVALID_PARAMS, format!("{why}: `{uri}`")))?;
        let decision = route.access.decide(principal, Action::Read, Kind::Resource, uri).await;
        if !decision.allowed() {
            let message = format!("resource `{uri}`: read is not allowed for this caller");
            return Err(RpcError::new(FORBIDDEN, message));
        }
    }
    Ok(())
}

/// `subscriptions/listen`: a stream that first acknowledges what it will carry, then carries
/// the list changes of the route (from config reloads, and from the mounts that serve this
/// revision, which the gateway listens to for as long as the client does) and updates of the
/// subscribed resources, each tagged with the request's id. It ends when the client closes it.
fn listen(
    gateway: &Arc<Gateway>,
    route: &Arc<Route>,
    headers: &HeaderMap,
    id: Box<RawValue>,
    meta: Map<String, Value>,
    params: Option<&RawValue>,
) -> Response {
    let accepts_stream = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"));
    if !accepts_stream {
        let error = RpcError::new(
            INVALID_REQUEST,
            "subscriptions/listen answers with an event stream: Accept must allow text/event-stream",
        );
        return rpc_failure(StatusCode::NOT_ACCEPTABLE, Some(&id), error);
    }
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(default)]
        notifications: Filter,
    }
    let filter =
        params.and_then(|p| serde_json::from_str::<Params>(p.get()).ok()).map(|p| p.notifications).unwrap_or_default();
    let (sender, mut body) = SseBody::direct();
    let mut acknowledged = Map::new();
    acknowledged.insert("notifications".into(), serde_json::to_value(&filter).expect("filters serialize"));
    let ack = tagged(Method::SubscriptionsAcknowledged.name(), acknowledged, &id);

    let route_key = route.config.key();
    let bridge = gateway.sessions.bridge(&route_key);
    let mounts: Vec<_> = route
        .mounts
        .iter()
        .map(|mount| {
            let upstream_filter = filter.with_subscriptions(
                filter
                    .resource_subscriptions
                    .iter()
                    .filter_map(|uri| mount.upstream(Kind::Resource, uri).map(|u| u.into_owned()))
                    .collect(),
            );
            let prefix = mount.config.prefix.clone();
            (Arc::clone(&mount.client), prefix, Arc::clone(&mount.key), upstream_filter, bridge.slot(mount))
        })
        .collect();
    let listeners = Arc::clone(&gateway.sessions.listeners);
    let cache = Arc::clone(&gateway.cache);
    let task = tokio::spawn(async move {
        let mut readies = Vec::new();
        let relays: Vec<_> = mounts
            .into_iter()
            .map(|(client, prefix, mount, upstream_filter, slot)| {
                let (ready, is_ready) = oneshot::channel::<()>();
                readies.push(is_ready);
                let (sender, id, meta, bridge, cache, route) = (&sender, &id, &meta, &bridge, &cache, &route_key);
                async move {
                    if !client.speaks_stateless().await {
                        // A session-only upstream announces on its session's own stream: the
                        // bridge session keeps it open, and it reaches the route's listeners.
                        drop(ready);
                        if let Err(error) = client.listen(&slot, &bridge.hello).await {
                            tracing::debug!(%error, "cannot listen to a session-only upstream's own messages");
                        }
                        return;
                    }
                    let params = raw(&json!({ "notifications": upstream_filter, "_meta": meta }));
                    let relay = ListenRelay {
                        sender,
                        id,
                        prefix: &prefix,
                        filter: &upstream_filter,
                        ready: std::sync::Mutex::new(Some(ready)),
                        changes: (cache, route, &mount),
                    };
                    if let Err(error) =
                        client.stateless_stream(Method::SubscriptionsListen.name(), &params, &relay).await
                    {
                        tracing::debug!(%error, "an upstream's listen stream ended");
                    }
                }
            })
            .collect();
        // The client is acknowledged once the upstreams are (or after a short wait), so that a
        // change it causes right after the acknowledgement is not missed.
        let acknowledge = async {
            let _ = tokio::time::timeout(ACKNOWLEDGE_WAIT, futures::future::join_all(readies)).await;
            sender.send(&ack);
            listeners.register(route_key.clone(), id.clone(), filter.clone(), sender.clone());
        };
        futures::future::join(futures::future::join_all(relays), acknowledge).await;
        // Keep the stream open for config changes after the upstreams' streams end.
        std::future::pending::<()>().await;
    });
    body.cancel_on_drop(task.abort_handle());
    event_stream(body)
}

/// How long a `subscriptions/listen` waits for the upstreams' acknowledgements before it
/// acknowledges the client anyway.
const ACKNOWLEDGE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_decode() {
        assert_eq!(decode("=?base64?ZWNobw==?="), "echo");
        assert_eq!(decode("=?base64?!!?="), "=?base64?!!?=");
        assert_eq!(decode("plain"), "plain");
    }
}
