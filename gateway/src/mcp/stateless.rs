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

use super::endpoint::Response;
use super::exchange::request;
use super::methods::{Answer, Call, Stateless};
use super::stream::{DirectSender, SseBody};
use crate::Gateway;
use crate::jsonrpc::{INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, RpcError, raw};
use crate::snapshot::Route;
use crate::upstream::STATELESS;

/// A header disagrees with the body, or is missing.
pub const HEADER_MISMATCH: i64 = -32020;
/// The server needs a client capability the request did not declare.
pub const MISSING_CAPABILITY: i64 = -32021;
/// The requested revision is not served.
pub const UNSUPPORTED_VERSION: i64 = -32022;

const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// Methods of the stateless revision the gateway serves; everything else gets 404.
const METHODS: &[&str] = &[
    "server/discover",
    "subscriptions/listen",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "completion/complete",
];

/// Whether a request without a session speaks the stateless revision: its
/// `MCP-Protocol-Version` is not one of the session-based revisions, or, with no such header,
/// its `_meta` names a protocol version.
pub fn applies(headers: &HeaderMap, params: Option<&RawValue>) -> bool {
    match headers.get("mcp-protocol-version") {
        Some(version) => !super::SUPPORTED_VERSIONS.contains(&version.to_str().unwrap_or("")),
        None => params.is_some_and(|p| p.get().contains(META_VERSION)),
    }
}

/// Answers one request of the stateless revision.
pub async fn answer(
    gateway: &Arc<Gateway>,
    route: &Arc<Route>,
    headers: &HeaderMap,
    principal: Arc<crate::access::Principal>,
    id: Box<RawValue>,
    method: String,
    params: Option<Box<RawValue>>,
) -> Response {
    let meta = match check(headers, &method, params.as_deref()) {
        Ok(meta) => meta,
        Err(error) => return super::endpoint::rpc_failure(status(error.code), Some(&id), error),
    };
    if !METHODS.contains(&method.as_str()) {
        let error = RpcError::new(METHOD_NOT_FOUND, format!("method `{method}` is not served in revision {STATELESS}"));
        return super::endpoint::rpc_failure(StatusCode::NOT_FOUND, Some(&id), error);
    }
    if method == "server/discover" {
        let labels = [&*route.config.namespace, &route.config.name, "server/discover", "ok"];
        gateway.metrics.requests.with_label_values(&labels).inc();
        return super::endpoint::json(StatusCode::OK, crate::jsonrpc::result(&id, &discover(route)));
    }
    if method == "subscriptions/listen" {
        if let Err(error) = may_subscribe(route, &principal, params.as_deref()).await {
            return super::endpoint::rpc_failure(status(error.code), Some(&id), error);
        }
        return listen(gateway, route, headers, id, meta, params.as_deref());
    }
    let wants_logs = meta.get(META_LOG_LEVEL).is_some();
    let forwarded = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("mcp-param-"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let stateless = Stateless { meta: raw(&meta), forwarded, wants_logs };
    let session = gateway.sessions.bridge(&(route.config.namespace.clone(), route.config.name.clone()));
    let (relay, relayed) = mpsc::unbounded_channel();
    let call = Call {
        gateway: Arc::clone(gateway),
        route: Arc::clone(route),
        session,
        principal,
        id,
        relay,
        stateless: Some(stateless),
    };
    request(call, method, params, relayed).await
}

/// The checks of the spec, in its order: `_meta` (400, -32602), the version header against
/// it (-32020), the version (-32022), `Mcp-Method` and `Mcp-Name` (-32020).
fn check(headers: &HeaderMap, method: &str, params: Option<&RawValue>) -> Result<Map<String, Value>, RpcError> {
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
        Some(meta) if meta.get(META_VERSION).is_some_and(Value::is_string) && meta.contains_key(META_CAPABILITIES) => {
            meta
        }
        _ => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                format!("params._meta must carry `{META_VERSION}` and `{META_CAPABILITIES}`"),
            ));
        }
    };
    let version = meta[META_VERSION].as_str().unwrap_or_default();
    let header = |name: &str| -> Result<Option<String>, RpcError> {
        let mut values = headers.get_all(name).iter();
        let value = values.next().map(|v| decode(v.to_str().unwrap_or("").trim()));
        if values.next().is_some() {
            return Err(RpcError::new(HEADER_MISMATCH, format!("the {name} header appears more than once")));
        }
        Ok(value)
    };
    if header("mcp-protocol-version")?.as_deref() != Some(version) {
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
    if header("mcp-method")?.as_deref() != Some(method) {
        return Err(RpcError::new(
            HEADER_MISMATCH,
            format!("the Mcp-Method header does not match the method `{method}`"),
        ));
    }
    let named = match method {
        "tools/call" | "prompts/get" => params.name.as_ref(),
        "resources/read" => params.uri.as_ref(),
        _ => None,
    };
    if let Some(Value::String(name)) = named
        && header("mcp-name")?.as_deref() != Some(name.as_str())
    {
        return Err(RpcError::new(HEADER_MISMATCH, format!("the Mcp-Name header does not match `{name}`")));
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
        "_meta": { "io.modelcontextprotocol/serverInfo": { "name": "manifold", "version": env!("CARGO_PKG_VERSION") } },
    }))
}

/// What a `subscriptions/listen` asks to hear about.
#[derive(serde::Deserialize, serde::Serialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    tools_list_changed: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    prompts_list_changed: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    resources_list_changed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    resource_subscriptions: Vec<String>,
}

impl Filter {
    fn wants(&self, method: &str) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools_list_changed,
            "notifications/prompts/list_changed" => self.prompts_list_changed,
            "notifications/resources/list_changed" => self.resources_list_changed,
            "notifications/resources/updated" => !self.resource_subscriptions.is_empty(),
            _ => false,
        }
    }

    /// Whether this notification is one asked for: an update only of a subscribed resource
    /// (the subscriptions were authorized; other updates on a shared upstream session were
    /// not), with URIs of the same side as the filter's.
    fn admits(&self, method: &str, params: &Map<String, Value>) -> bool {
        self.wants(method)
            && (method != "notifications/resources/updated"
                || params
                    .get("uri")
                    .and_then(Value::as_str)
                    .is_some_and(|uri| self.resource_subscriptions.iter().any(|s| s == uri)))
    }
}

/// One stateless client listening for changes.
struct Listener {
    route: (String, String),
    id: Box<RawValue>,
    filter: Filter,
    sender: DirectSender,
}

/// The stateless clients listening for changes on this replica.
#[derive(Default)]
pub struct Listeners(std::sync::Mutex<Vec<Listener>>);

impl Listeners {
    /// Tells the listeners of a route that the gateway's config changed what it exposes.
    pub fn announce(&self, route: &(String, String)) {
        let mut listeners = self.0.lock().expect("listeners lock");
        listeners.retain(|l| !l.sender.is_closed());
        for listener in listeners.iter().filter(|l| &l.route == route) {
            for method in [
                "notifications/tools/list_changed",
                "notifications/prompts/list_changed",
                "notifications/resources/list_changed",
            ] {
                if listener.filter.wants(method) {
                    listener.sender.send(&tagged(method, Map::new(), &listener.id));
                }
            }
        }
    }
}

impl Listeners {
    /// Relays what a session-only upstream announced on the route's bridge session to the
    /// route's listeners that asked for it.
    pub fn relay(&self, route: &(String, String), prefix: &str, message: crate::jsonrpc::Message) {
        let Some(method) = message.method.as_deref() else { return };
        if message.id.is_some() {
            return;
        }
        let mut params: Map<String, Value> =
            message.params.and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or_default();
        if let Some(Value::String(uri)) = params.get_mut("uri") {
            *uri = super::names::prefix_uri(prefix, uri);
        }
        let listeners = self.0.lock().expect("listeners lock");
        for listener in listeners.iter().filter(|l| &l.route == route && l.filter.admits(method, &params)) {
            listener.sender.send(&tagged(method, params.clone(), &listener.id));
        }
    }
}

/// A notification of a listen stream, tagged with the stream's subscription id.
fn tagged(method: &str, mut params: Map<String, Value>, id: &RawValue) -> Vec<u8> {
    let id: Value = serde_json::from_str(id.get()).unwrap_or_default();
    let meta = params.entry("_meta").or_insert_with(|| json!({}));
    if let Value::Object(meta) = meta {
        meta.insert(SUBSCRIPTION_ID.into(), id);
    }
    serde_json::to_vec(&json!({ "jsonrpc": "2.0", "method": method, "params": params })).expect("JSON serializes")
}

/// `subscriptions/listen`: a stream that first acknowledges what it will carry, then carries
/// the list changes of the route (from config reloads, and from the mounts that serve this
/// revision, which the gateway listens to for as long as the client does) and updates of the
/// subscribed resources, each tagged with the request's id. It ends when the client closes it.
/// Resource subscriptions one `subscriptions/listen` may hold.
const MAX_SUBSCRIPTIONS: usize = 256;

/// A caller hears about updates only of resources it may read.
async fn may_subscribe(
    route: &Route,
    principal: &crate::access::Principal,
    params: Option<&RawValue>,
) -> Result<(), RpcError> {
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
        let decision = route.access.decide(principal, Action::Read, super::names::Kind::Resource, uri).await;
        if !decision.allowed() {
            let message = format!("resource `{uri}`: read is not allowed for this caller");
            return Err(RpcError::new(crate::jsonrpc::FORBIDDEN, message));
        }
    }
    Ok(())
}

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
        return super::endpoint::rpc_failure(StatusCode::NOT_ACCEPTABLE, Some(&id), error);
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
    let ack = tagged("notifications/subscriptions/acknowledged", acknowledged, &id);

    let route_key = (route.config.namespace.clone(), route.config.name.clone());
    let bridge = gateway.sessions.bridge(&route_key);
    let mounts: Vec<_> = route
        .mounts
        .iter()
        .map(|mount| {
            let upstream_filter = Filter {
                resource_subscriptions: filter
                    .resource_subscriptions
                    .iter()
                    .filter_map(|uri| mount.upstream(super::names::Kind::Resource, uri).map(|u| u.into_owned()))
                    .collect(),
                ..filter.clone()
            };
            (Arc::clone(&mount.client), mount.config.prefix.clone(), upstream_filter, bridge.slot(mount))
        })
        .collect();
    let listeners = Arc::clone(&gateway.sessions.listeners);
    let task = tokio::spawn(async move {
        let mut readies = Vec::new();
        let relays: Vec<_> = mounts
            .into_iter()
            .map(|(client, prefix, upstream_filter, slot)| {
                let (ready, is_ready) = oneshot::channel::<()>();
                readies.push(is_ready);
                let (sender, id, meta, bridge) = (&sender, &id, &meta, &bridge);
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
                    };
                    if let Err(error) = client.stateless_stream("subscriptions/listen", &params, &relay).await {
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
            let mut registered = listeners.0.lock().expect("listeners lock");
            // Clients that went away are forgotten here, as new ones arrive.
            registered.retain(|l| !l.sender.is_closed());
            registered.push(Listener {
                route: route_key.clone(),
                id: id.clone(),
                filter: filter.clone(),
                sender: sender.clone(),
            });
        };
        futures::future::join(futures::future::join_all(relays), acknowledge).await;
        // Keep the stream open for config changes after the upstreams' streams end.
        std::future::pending::<()>().await;
    });
    body.cancel_on_drop(task.abort_handle());
    super::endpoint::event_stream(body)
}

/// How long a `subscriptions/listen` waits for the upstreams' acknowledgements before it
/// acknowledges the client anyway.
const ACKNOWLEDGE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Relays an upstream's listen stream to the client's: changes it asked for, tagged with the
/// client's subscription id, resource URIs in the client's form.
struct ListenRelay<'a> {
    sender: &'a DirectSender,
    id: &'a RawValue,
    prefix: &'a str,
    filter: &'a Filter,
    /// Fired when the upstream acknowledges its subscription.
    ready: std::sync::Mutex<Option<oneshot::Sender<()>>>,
}

impl crate::upstream::Observer for ListenRelay<'_> {
    fn message(&self, message: crate::jsonrpc::Message) {
        let Some(method) = message.method.as_deref() else { return };
        if method == "notifications/subscriptions/acknowledged" {
            if let Some(ready) = self.ready.lock().expect("ready lock").take() {
                let _ = ready.send(());
            }
            return;
        }
        if message.id.is_some() {
            return;
        }
        let mut params: Map<String, Value> =
            message.params.and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or_default();
        if !self.filter.admits(method, &params) {
            return;
        }
        if let Some(Value::String(uri)) = params.get_mut("uri") {
            *uri = super::names::prefix_uri(self.prefix, uri);
        }
        self.sender.send(&tagged(method, params, self.id));
    }
}

/// Every result of the stateless revision says what it is (`resultType`), and a read says how
/// long it may be cached. Results of upstreams of this revision already do and pass
/// untouched; the others gain the fields without being parsed.
pub fn stamp(method: &str, answer: Answer) -> Answer {
    let stamp = |result: Box<RawValue>| {
        let text = result.get();
        let mut fields = String::new();
        if !text.contains("\"resultType\"") {
            fields.push_str(r#""resultType":"complete","#);
        }
        if method == "resources/read" && !text.contains("\"ttlMs\"") {
            fields.push_str(r#""ttlMs":0,"cacheScope":"private","#);
        }
        let Some(rest) = text.trim_start().strip_prefix('{') else { return result };
        if fields.is_empty() {
            return result;
        }
        if rest.trim_start().starts_with('}') {
            fields.pop();
        }
        RawValue::from_string(format!("{{{fields}{rest}")).unwrap_or(result)
    };
    match answer {
        Answer::Result(result) => Answer::Result(stamp(result)),
        Answer::MountFailed(result) => Answer::MountFailed(stamp(result)),
        other => other,
    }
}

/// The HTTP status of the gateway's own errors in the stateless revision.
pub fn status(code: i64) -> StatusCode {
    match code {
        METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        PARSE_ERROR | INVALID_REQUEST | INVALID_PARAMS | HEADER_MISMATCH | MISSING_CAPABILITY | UNSUPPORTED_VERSION => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::OK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_hears_updates_only_of_its_own_subscriptions() {
        let filter: Filter =
            serde_json::from_value(json!({"resourceSubscriptions": ["res://a/mine"], "toolsListChanged": true}))
                .unwrap();
        let params = |uri: &str| json!({ "uri": uri }).as_object().unwrap().clone();
        assert!(filter.admits("notifications/resources/updated", &params("res://a/mine")));
        assert!(!filter.admits("notifications/resources/updated", &params("res://a/theirs")));
        assert!(!filter.admits("notifications/resources/updated", &Map::new()));
        assert!(filter.admits("notifications/tools/list_changed", &Map::new()));
        assert!(!filter.admits("notifications/prompts/list_changed", &Map::new()));
    }

    #[test]
    fn results_gain_a_result_type_once() {
        let stamped =
            |method, text: &str| match stamp(method, Answer::Result(RawValue::from_string(text.into()).unwrap())) {
                Answer::Result(result) => result.get().to_owned(),
                _ => unreachable!(),
            };
        assert_eq!(stamped("tools/call", r#"{"content":[]}"#), r#"{"resultType":"complete","content":[]}"#);
        assert_eq!(stamped("tools/call", "{}"), r#"{"resultType":"complete"}"#);
        assert_eq!(stamped("tools/call", r#"{"resultType":"input_required"}"#), r#"{"resultType":"input_required"}"#);
        let read = stamped("resources/read", r#"{"contents":[]}"#);
        assert_eq!(read, r#"{"resultType":"complete","ttlMs":0,"cacheScope":"private","contents":[]}"#);
    }

    #[test]
    fn header_values_decode() {
        assert_eq!(decode("=?base64?ZWNobw==?="), "echo");
        assert_eq!(decode("=?base64?!!?="), "=?base64?!!?=");
        assert_eq!(decode("plain"), "plain");
    }
}
