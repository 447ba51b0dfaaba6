//! The MCP methods a route answers. Lists are merged from every mount (`lists`); a request
//! about one component (`tools/call`, `prompts/get`, `resources/read`, subscriptions,
//! `completion/complete`) is routed to the mount that owns it, with the upstream's name or
//! URI restored; `logging/setLevel` goes to every mount; `ping` is answered here. A mount that
//! fails affects only its own components.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::lists;
use super::names::Kind;
use super::relay;
use super::session::Session;
use crate::Gateway;
use crate::access::{self, Principal};
use crate::jsonrpc::{FORBIDDEN, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, RpcError, raw};
use crate::snapshot::{Mount, Route};
use crate::upstream::{Observer, Reply, UpstreamError};
use manifold_api::config::Action;

/// How many times one request may come back asking for input before the gateway gives up.
const MAX_INPUT_ROUNDS: usize = 8;

/// MCP's code for a resource that does not exist.
const RESOURCE_NOT_FOUND: i64 = -32002;

/// What a method produced.
pub enum Answer {
    /// A result to send.
    Result(Box<RawValue>),
    /// A tool result reporting that the owning mount failed (`isError`).
    MountFailed(Box<RawValue>),
    /// An upstream's JSON-RPC error object, passed through, with the upstream's HTTP status
    /// when it answered in the stateless revision.
    UpstreamError(Box<RawValue>, Option<u16>),
    /// The gateway's own JSON-RPC error.
    Error(RpcError),
}

impl Answer {
    /// The metrics outcome label.
    pub fn outcome(&self) -> &'static str {
        match self {
            Answer::Result(_) => "ok",
            Answer::MountFailed(_) => "upstream_error",
            Answer::UpstreamError(..) | Answer::Error(_) => "error",
        }
    }
}

/// One client request being answered.
pub struct Call {
    pub gateway: Arc<Gateway>,
    pub route: Arc<Route>,
    pub session: Arc<Session>,
    /// Who asks.
    pub principal: Arc<Principal>,
    /// The client's request id, raw.
    pub id: Box<RawValue>,
    /// Messages upstreams send while answering (progress, logging, their own requests),
    /// rewritten for the client's response stream.
    pub relay: mpsc::UnboundedSender<Bytes>,
    /// Set when the client speaks the stateless revision (2026-07-28).
    pub stateless: Option<Stateless>,
}

/// What a stateless request carries for the upstreams that serve it too.
pub struct Stateless {
    /// The request's `_meta` (protocol version, client capabilities, client info, log level).
    pub meta: Box<RawValue>,
    /// The client's `Mcp-Param-*` headers, forwarded unchanged.
    pub forwarded: http::HeaderMap,
    /// Whether the client asked for log messages (`io.modelcontextprotocol/logLevel`).
    pub wants_logs: bool,
}

impl Call {
    /// One request to a mount, in the revision both sides speak: a stateless client's request
    /// goes to a stateless upstream as it is; anything else goes through an upstream session,
    /// the client's own or, for a stateless client, the gateway's bridge session.
    pub async fn request(
        &self,
        mount: &Mount,
        method: &str,
        params: Option<&RawValue>,
        name: Option<&str>,
    ) -> Result<(Reply, Option<u16>), UpstreamError> {
        let forward = Forward::new(self, mount);
        if let Some(stateless) = &self.stateless
            && mount.client.speaks_stateless().await
        {
            let reply = mount.client.stateless_request(method, params, name, &stateless.forwarded, &forward).await?;
            return Ok((reply.0, Some(reply.1)));
        }
        if !mount.client.refuses_sessions() {
            let bridged = self.stateless.as_ref().and(params).map(session_params);
            let slot = self.session.slot(mount);
            let session_params = bridged.as_deref().or(params);
            match mount.client.request(&slot, &self.session.hello, method, session_params, &forward).await {
                Err(_) if mount.client.refuses_sessions() => {}
                reply => return Ok((reply?, None)),
            }
        }
        // An upstream of the stateless revision only, asked for a session's client: the
        // request carries what the client declared in its session, and what the upstream asks
        // of the client (`InputRequiredResult`) is asked as the session era asks it.
        let mut params = stateless_params(params, &self.session.hello);
        for _ in 0..MAX_INPUT_ROUNDS {
            let (reply, status) =
                mount.client.stateless_request(method, Some(&params), name, &http::HeaderMap::new(), &forward).await?;
            match &reply {
                Reply::Result(result) if result.get().contains(r#""input_required""#) => {
                    params = match self.fulfil(&params, result).await {
                        Ok(params) => params,
                        Err(error) => return Ok((Reply::Error(raw(&error)), Some(status))),
                    };
                }
                _ => return Ok((reply, Some(status))),
            }
        }
        let error = json!({ "code": INTERNAL_ERROR, "message": format!("{method} still needed input after {MAX_INPUT_ROUNDS} rounds") });
        Ok((Reply::Error(raw(&error)), None))
    }

    /// Asks the session's client what an `InputRequiredResult` requests (sampling,
    /// elicitation, roots), as requests on the call's stream, and returns the params of the
    /// retry: the original ones with `inputResponses` and the echoed `requestState`.
    async fn fulfil(&self, params: &RawValue, result: &RawValue) -> Result<Box<RawValue>, Value> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct InputRequired {
            #[serde(default)]
            input_requests: Map<String, Value>,
            request_state: Option<Value>,
        }
        let required: InputRequired = serde_json::from_str(result.get())
            .map_err(|e| json!({ "code": INTERNAL_ERROR, "message": format!("invalid InputRequiredResult: {e}") }))?;
        let mut responses = Map::new();
        for (key, request) in required.input_requests {
            let method = request.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
            let params = request.get("params").cloned().unwrap_or_else(|| json!({}));
            let mut ask = self.session.ask();
            let _ = self.relay.send(crate::jsonrpc::request(&ask.id, &method, &raw(&params)));
            match ask.answer().await {
                Some((Some(result), _)) => {
                    responses.insert(key, serde_json::from_str(result.get()).unwrap_or_default())
                }
                Some((None, Some(error))) => return Err(serde_json::from_str(error.get()).unwrap_or_default()),
                _ => {
                    return Err(
                        json!({ "code": INTERNAL_ERROR, "message": format!("the client did not answer {method}") }),
                    );
                }
            };
        }
        let mut retry: Map<String, Value> = serde_json::from_str(params.get()).unwrap_or_default();
        retry.insert("inputResponses".into(), Value::Object(responses));
        match required.request_state {
            Some(state) => retry.insert("requestState".into(), state),
            None => retry.remove("requestState"),
        };
        Ok(raw(&retry))
    }

    /// Times one upstream exchange into the latency histogram.
    pub fn observe(&self, mount: &Mount, method: &str, started: Instant) {
        let labels = [&*self.route.config.namespace, &self.route.config.name, &mount.config.server, method];
        self.gateway.metrics.upstream_seconds.with_label_values(&labels).observe(started.elapsed().as_secs_f64());
    }
}

/// A session client's params as a request of the stateless revision: `_meta` says what the
/// client declared when it initialized.
fn stateless_params(params: Option<&RawValue>, hello: &crate::upstream::Hello) -> Box<RawValue> {
    let mut params: Map<String, Value> = params.and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or_default();
    let meta = params.entry("_meta").or_insert_with(|| json!({}));
    if let Value::Object(meta) = meta {
        meta.insert("io.modelcontextprotocol/protocolVersion".into(), json!(crate::upstream::STATELESS));
        let capabilities: Value = serde_json::from_str(hello.capabilities.get()).unwrap_or_else(|_| json!({}));
        meta.insert("io.modelcontextprotocol/clientCapabilities".into(), capabilities);
        meta.insert(
            "io.modelcontextprotocol/clientInfo".into(),
            json!({ "name": "manifold-gateway", "version": env!("CARGO_PKG_VERSION") }),
        );
    }
    raw(&params)
}

/// A stateless request's params for an upstream session: without the stateless revision's
/// `_meta` fields, which a session-era server must not mistake for its own.
fn session_params(params: &RawValue) -> Box<RawValue> {
    let Ok(mut params) = serde_json::from_str::<Map<String, Value>>(params.get()) else { return params.to_owned() };
    if let Some(Value::Object(meta)) = params.get_mut("_meta") {
        meta.retain(|key, _| !key.starts_with("io.modelcontextprotocol/"));
        if meta.is_empty() {
            params.remove("_meta");
        }
    }
    raw(&params)
}

/// Relays what an upstream sends during a request to the client's stream, and records the
/// upstream id so the client can cancel it.
pub struct Forward<'a> {
    call: &'a Call,
    mount: &'a Mount,
}

impl<'a> Forward<'a> {
    pub fn new(call: &'a Call, mount: &'a Mount) -> Self {
        Forward { call, mount }
    }
}

impl Observer for Forward<'_> {
    fn sent(&self, id: u64) {
        // A stateless request shares the route's bridge session with other clients (and
        // their ids): it is cancelled by closing its connection instead.
        if self.call.stateless.is_none() {
            self.call.session.started(self.call.id.get(), &self.mount.key, id);
        }
    }

    fn message(&self, message: crate::jsonrpc::Message) {
        if let Some(stateless) = &self.call.stateless {
            // The stateless revision has no server-to-client requests, and log messages only
            // for clients that asked for them.
            let is_log = message.method.as_deref() == Some("notifications/message");
            if message.id.is_some() || (is_log && !stateless.wants_logs) {
                return;
            }
        }
        if let Some(message) = relay::to_client(&self.mount.key, &self.mount.config.prefix, message) {
            let _ = self.call.relay.send(message);
        }
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(route = %call.route.id(), session = %call.session.log_id(), method = method))]
pub async fn dispatch(call: &Call, method: &str, params: Option<&RawValue>) -> Answer {
    match method {
        "ping" => Answer::Result(raw(&json!({}))),
        "tools/list" => lists::page(call, Kind::Tool, params).await,
        "prompts/list" => lists::page(call, Kind::Prompt, params).await,
        "resources/list" => lists::page(call, Kind::Resource, params).await,
        "resources/templates/list" => lists::page(call, Kind::Template, params).await,
        "tools/call" => routed(call, Kind::Tool, method, params).await,
        "prompts/get" => routed(call, Kind::Prompt, method, params).await,
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            routed(call, Kind::Resource, method, params).await
        }
        "completion/complete" => complete(call, params).await,
        "logging/setLevel" => set_level(call, params).await,
        _ => Answer::Error(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method `{method}` is not supported by this gateway"),
        )),
    }
}

/// A request about one component, named in `params` by `name` (tools, prompts) or `uri`:
/// authorized on the name the client knows, routed to its mount, and (for calls, gets and
/// reads) written to the audit log.
async fn routed(call: &Call, kind: Kind, method: &str, params: Option<&RawValue>) -> Answer {
    let field = if kind == Kind::Resource { "uri" } else { "name" };
    let mut fields: BTreeMap<String, Box<RawValue>> = match params.map(|p| serde_json::from_str(p.get())) {
        Some(Ok(fields)) => fields,
        _ => return Answer::Error(RpcError::new(INVALID_PARAMS, format!("{method} needs params with `{field}`"))),
    };
    let visible: String = match fields.get(field).map(|n| serde_json::from_str(n.get())) {
        Some(Ok(name)) => name,
        _ => return Answer::Error(RpcError::new(INVALID_PARAMS, format!("{method} needs params.{field}, a string"))),
    };
    if kind == Kind::Resource
        && let Err(why) = super::names::check_uri(&visible)
    {
        return Answer::Error(RpcError::new(INVALID_PARAMS, format!("{why}: `{visible}`")));
    }
    if visible.len() > super::names::MAX_TARGET_BYTES {
        return Answer::Error(RpcError::new(INVALID_PARAMS, "a name must be at most 2048 bytes"));
    }
    let started = Instant::now();
    let action = if kind == Kind::Resource { Action::Read } else { access::use_action(kind) };
    let decision = call.route.access.decide(&call.principal, action, kind, &visible).await;
    let (answer, mount) = if !decision.allowed() {
        (denied(call, kind, action, &visible), None)
    } else {
        match owner(call, kind, &visible).await {
            Owner::Found(mount, upstream) => {
                fields.insert(field.into(), raw(&upstream));
                let answer = forward(call, kind, mount, method, &raw(&fields), &visible, Some(&upstream)).await;
                (answer, Some(mount.config.server.as_str()))
            }
            Owner::Unknown => (unknown(kind, &visible), None),
            Owner::Unavailable(mount) => (unavailable(kind, &visible, mount, "could not be asked for it"), Some(mount)),
        }
    };
    if matches!(method, "tools/call" | "resources/read" | "prompts/get") {
        let config = &call.route.config;
        let arguments = fields.get("arguments").filter(|_| config.audit_arguments).map(|a| &**a);
        call.gateway.audit.record(&access::audit::Event {
            tenant: &config.namespace,
            route: &config.name,
            principal: &call.principal.name,
            method,
            target: &visible,
            mount,
            decision,
            outcome: if decision.allowed() { answer.outcome() } else { "denied" },
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            arguments,
        });
    }
    answer
}

/// A request the route's authorization refuses: a JSON-RPC error naming the component.
fn denied(call: &Call, kind: Kind, action: Action, visible: &str) -> Answer {
    let labels = [&*call.route.config.namespace, &call.route.config.name, "denied"];
    call.gateway.metrics.refusals.with_label_values(&labels).inc();
    let message =
        format!("{} `{visible}`: {} is not allowed for this caller", kind.noun(), access::action_name(action));
    Answer::Error(RpcError::new(FORBIDDEN, message))
}

/// `completion/complete` goes where the prompt or resource template it completes lives.
async fn complete(call: &Call, params: Option<&RawValue>) -> Answer {
    let mut params: Map<String, Value> = match params.map(|p| serde_json::from_str(p.get())) {
        Some(Ok(params)) => params,
        _ => return Answer::Error(RpcError::new(INVALID_PARAMS, "completion/complete needs params with `ref`")),
    };
    let reference = params.get_mut("ref").and_then(Value::as_object_mut);
    let Some(reference) = reference else {
        return Answer::Error(RpcError::new(INVALID_PARAMS, "completion/complete needs params.ref, an object"));
    };
    let (kind, field) = match reference.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => (Kind::Prompt, "name"),
        Some("ref/resource") => (Kind::Template, "uri"),
        other => {
            let message = format!("params.ref.type must be `ref/prompt` or `ref/resource`, not {other:?}");
            return Answer::Error(RpcError::new(INVALID_PARAMS, message));
        }
    };
    let Some(visible) = reference.get(field).and_then(Value::as_str).map(str::to_owned) else {
        return Answer::Error(RpcError::new(INVALID_PARAMS, format!("params.ref.{field} must be a string")));
    };
    if kind == Kind::Template
        && let Err(why) = super::names::check_uri(&visible)
    {
        return Answer::Error(RpcError::new(INVALID_PARAMS, format!("{why}: `{visible}`")));
    }
    if visible.len() > super::names::MAX_TARGET_BYTES {
        return Answer::Error(RpcError::new(INVALID_PARAMS, "a name must be at most 2048 bytes"));
    }
    // Completing an argument reveals what the prompt or template offers: it needs get or read.
    let action = access::use_action(kind);
    if !call.route.access.decide(&call.principal, action, kind, &visible).await.allowed() {
        return denied(call, kind, action, &visible);
    }
    let (mount, upstream) = match owner(call, kind, &visible).await {
        Owner::Found(mount, upstream) => (mount, upstream),
        Owner::Unknown => return unknown(kind, &visible),
        Owner::Unavailable(mount) => return unavailable(kind, &visible, mount, "could not be asked for it"),
    };
    reference.insert(field.into(), Value::String(upstream.into_owned()));
    forward(call, kind, mount, "completion/complete", &raw(&params), &visible, None).await
}

/// Sends a routed request to its mount and maps the outcome.
async fn forward(
    call: &Call,
    kind: Kind,
    mount: &Mount,
    method: &str,
    params: &RawValue,
    visible: &str,
    name: Option<&str>,
) -> Answer {
    let started = Instant::now();
    let reply = call.request(mount, method, Some(params), name).await;
    call.observe(mount, method, started);
    match reply {
        Ok((Reply::Result(result), _)) => Answer::Result(client_side_uris(mount, method, result)),
        Ok((Reply::Error(error), status)) => Answer::UpstreamError(error, status),
        Err(error) => {
            tracing::warn!(route = %call.route.id(), mount = %mount.config.server, name = %visible, %error, "{method} failed upstream");
            unavailable(kind, visible, &mount.config.server, &error.summary())
        }
    }
}

/// A result that names resources (the contents `resources/read` returns, resource links and
/// embedded resources in tool results and prompt messages) names them as the client knows them,
/// so that each can be read through the route. Results that cannot hold a URI are passed
/// untouched, without being parsed.
fn client_side_uris(mount: &Mount, method: &str, result: Box<RawValue>) -> Box<RawValue> {
    let prefix = &mount.config.prefix;
    if prefix.is_empty() || !result.get().contains("\"uri\"") {
        return result;
    }
    let Ok(mut value) = serde_json::from_str::<Value>(result.get()) else { return result };
    let rewrite = |uri: &mut Value| {
        if let Value::String(text) = uri {
            *text = super::names::prefix_uri(prefix, text);
        }
    };
    let blocks: Vec<&mut Value> = match method {
        "resources/read" => value.get_mut("contents").and_then(Value::as_array_mut).into_iter().flatten().collect(),
        "tools/call" => value.get_mut("content").and_then(Value::as_array_mut).into_iter().flatten().collect(),
        "prompts/get" => value
            .get_mut("messages")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get_mut("content"))
            .collect(),
        _ => return result,
    };
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("resource") => block.get_mut("resource").and_then(|r| r.get_mut("uri")).map(rewrite),
            _ => block.get_mut("uri").map(rewrite),
        };
    }
    raw(&value)
}

/// `logging/setLevel` applies to every mount; servers without logging are left alone.
async fn set_level(call: &Call, params: Option<&RawValue>) -> Answer {
    let Some(params) = params else {
        return Answer::Error(RpcError::new(INVALID_PARAMS, "logging/setLevel needs params.level"));
    };
    let replies = futures::future::join_all(call.route.mounts.iter().map(|mount| async move {
        let slot = call.session.slot(mount);
        let forward = Forward::new(call, mount);
        let reply = mount.client.request(&slot, &call.session.hello, "logging/setLevel", Some(params), &forward).await;
        (mount, reply)
    }))
    .await;
    for (mount, reply) in replies {
        match reply {
            Ok(Reply::Result(_)) => {}
            Ok(Reply::Error(error)) => {
                tracing::debug!(mount = %mount.config.server, error = %error.get(), "logging/setLevel refused by a mount")
            }
            Err(error) => tracing::warn!(mount = %mount.config.server, %error, "logging/setLevel failed on a mount"),
        }
    }
    Answer::Result(raw(&json!({})))
}

fn unknown(kind: Kind, visible: &str) -> Answer {
    Answer::Error(match kind {
        Kind::Tool => RpcError::new(INVALID_PARAMS, format!("Unknown tool: `{visible}`")),
        Kind::Prompt => RpcError::new(INVALID_PARAMS, format!("Unknown prompt: `{visible}`")),
        Kind::Resource | Kind::Template => {
            RpcError::new(RESOURCE_NOT_FOUND, format!("Resource not found: `{visible}`"))
        }
    })
}

/// The owning mount failed: a tool reports it in its result (`isError`), as tool failures
/// are reported to models; everything else gets a JSON-RPC error naming the mount.
fn unavailable(kind: Kind, visible: &str, server: &str, why: &str) -> Answer {
    let text = format!("{} `{visible}` is unavailable: mounted server `{server}` {why}", kind.noun());
    match kind {
        Kind::Tool => {
            Answer::MountFailed(raw(&json!({ "content": [{ "type": "text", "text": text }], "isError": true })))
        }
        _ => Answer::Error(RpcError::new(INTERNAL_ERROR, text)),
    }
}

/// Who serves a client-visible name.
enum Owner<'a> {
    /// This mount, under this upstream name.
    Found(&'a Mount, Cow<'a, str>),
    /// No mount can have it.
    Unknown,
    /// A mount that may own it, and takes precedence, did not answer.
    Unavailable(&'a str),
}

/// The prefix decides directly; only when several mounts could hold the name are their
/// lists consulted, in mount order (the order lists give them precedence in).
async fn owner<'a>(call: &'a Call, kind: Kind, visible: &'a str) -> Owner<'a> {
    let route: &'a Route = &call.route;
    let candidates = route.candidates(kind, visible);
    if candidates.len() <= 1 {
        return match candidates.into_iter().next() {
            Some((i, upstream)) => Owner::Found(&route.mounts[i], upstream),
            None => Owner::Unknown,
        };
    }
    for (i, upstream) in candidates {
        let mount = &route.mounts[i];
        match holds(call, mount, kind, &upstream).await {
            Ok(true) => return Owner::Found(mount, upstream),
            Ok(false) => {}
            // The mount that takes precedence did not answer: a later one must not get the
            // request in its place.
            Err(_) => return Owner::Unavailable(&mount.config.server),
        }
    }
    Owner::Unknown
}

/// Whether a mount's upstream lists `upstream` (for resources, also as a template match).
async fn holds(call: &Call, mount: &Mount, kind: Kind, upstream: &str) -> Result<bool, UpstreamError> {
    let slot = call.session.slot(mount);
    let hello = &call.session.hello;
    let list = |kind: Kind| mount.client.within(mount.client.list_all(&slot, hello, kind.list_method(), kind.items()));
    let named = |items: &[Map<String, Value>], kind: Kind, matches: &dyn Fn(&str) -> bool| {
        items.iter().any(|item| item.get(kind.key()).and_then(Value::as_str).is_some_and(matches))
    };
    match kind {
        Kind::Tool | Kind::Prompt | Kind::Template => Ok(named(&list(kind).await?, kind, &|n| n == upstream)),
        Kind::Resource => {
            if named(&list(Kind::Resource).await?, kind, &|n| n == upstream) {
                return Ok(true);
            }
            let templates = list(Kind::Template).await?;
            Ok(named(&templates, Kind::Template, &|template| template_matches(template, upstream)))
        }
    }
}

/// Whether `uri` is an expansion of an RFC 6570 template: its literal parts in order, each
/// expression standing for at least one character.
fn template_matches(template: &str, uri: &str) -> bool {
    let mut rest = uri;
    let mut parts = template.split('{');
    let Some(head) = parts.next() else { return false };
    let Some(after) = rest.strip_prefix(head) else { return false };
    rest = after;
    for part in parts {
        let Some((_, literal)) = part.split_once('}') else { return false };
        if literal.is_empty() {
            rest = "";
            continue;
        }
        // The expression takes at least one character, up to the next occurrence of the literal.
        match rest.get(1..).and_then(|tail| tail.find(literal)) {
            Some(at) => rest = &rest[1 + at + literal.len()..],
            None => return false,
        }
    }
    rest.is_empty() || template.ends_with('}')
}

#[cfg(test)]
mod tests {
    use super::template_matches;

    #[test]
    fn uris_match_templates() {
        assert!(template_matches("test://template/{id}/data", "test://template/42/data"));
        assert!(template_matches("file:///{path}", "file:///etc/hosts"));
        assert!(template_matches("demo://static", "demo://static"));
        assert!(!template_matches("test://template/{id}/data", "test://template//data"));
        assert!(!template_matches("test://template/{id}/data", "test://other/42/data"));
        assert!(!template_matches("test://template/{id}/data", "test://template/42/data/more"));
    }
}
