//! The MCP methods a route answers: `ping`; `tools/list`, merged from every mount with names
//! filtered, renamed and prefixed; `tools/call`, routed to the owning mount with the upstream
//! name restored. An unreachable mount affects only its own tools.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::session::Session;
use crate::Gateway;
use crate::jsonrpc::{INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, RpcError, raw};
use crate::snapshot::{Mount, Route};
use crate::upstream::{Reply, UpstreamError};

/// What a method produced.
pub enum Answer {
    /// A result to send.
    Result(Box<RawValue>),
    /// A tool result reporting that the owning mount failed (`isError`).
    MountFailed(Box<RawValue>),
    /// An upstream's JSON-RPC error object, passed through.
    UpstreamError(Box<RawValue>),
    /// The gateway's own JSON-RPC error.
    Error(RpcError),
    /// The gateway cannot take the request now (HTTP 503).
    Unavailable(RpcError),
}

impl Answer {
    /// The metrics outcome label.
    pub fn outcome(&self) -> &'static str {
        match self {
            Answer::Result(_) => "ok",
            Answer::MountFailed(_) => "upstream_error",
            Answer::UpstreamError(_) | Answer::Error(_) => "error",
            Answer::Unavailable(_) => "unavailable",
        }
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(route = %route.id(), session = %session.log_id(), method = method))]
pub async fn dispatch(
    gateway: &Gateway,
    route: &Route,
    session: &Session,
    method: &str,
    params: Option<&RawValue>,
) -> Answer {
    match method {
        "ping" => Answer::Result(raw(&json!({}))),
        "tools/list" => list_tools(gateway, route, session, params).await,
        "tools/call" => call_tool(gateway, route, session, params).await,
        _ => Answer::Error(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method `{method}` is not supported by this gateway"),
        )),
    }
}

async fn list_tools(gateway: &Gateway, route: &Route, session: &Session, params: Option<&RawValue>) -> Answer {
    #[derive(Deserialize)]
    struct Params {
        cursor: Option<String>,
    }
    if let Some(Params { cursor: Some(cursor) }) = params.and_then(|p| serde_json::from_str(p.get()).ok()) {
        // Every tool is returned on the first page, so no cursor of ours exists.
        return Answer::Error(RpcError::new(INVALID_PARAMS, format!("invalid cursor `{cursor}`")));
    }
    let lists = futures::future::join_all(route.mounts.iter().map(|mount| async move {
        // One deadline for the whole listing: a slow mount cannot hold the route's list up
        // for a timeout per page.
        tokio::time::timeout(mount.client.timeout(), mount_tools(gateway, route, session, mount))
            .await
            .unwrap_or(Err(UpstreamError::Timeout(mount.client.timeout().as_millis() as u64)))
    }))
    .await;
    let mut tools = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut failed = Vec::new();
    for (mount, list) in route.mounts.iter().zip(lists) {
        let list = match list {
            Ok(list) => list,
            Err(error) => {
                failed.push(format!("`{}` ({})", mount.config.server, error.summary()));
                tracing::warn!(route = %route.id(), mount = %mount.config.server, %error, "tools/list failed on a mount; its tools are left out");
                continue;
            }
        };
        for mut tool in list {
            let Some(Value::String(name)) = tool.get("name") else { continue };
            let Some(visible) = mount.matcher.visible(name) else { continue };
            let visible = manifold_api::config::prefixed(&mount.config.prefix, visible);
            if seen.insert(visible.clone()) {
                tool.insert("name".into(), Value::String(visible));
                tools.push(tool);
            } else {
                tracing::warn!(route = %route.id(), mount = %mount.config.server, tool = %visible, "tool name already exposed by an earlier mount; this one is hidden");
            }
        }
    }
    if !route.mounts.is_empty() && failed.len() == route.mounts.len() {
        // An empty list would hide the outage; say which servers did not answer.
        let message = format!("no mounted server answered tools/list: {}", failed.join(", "));
        return Answer::Error(RpcError::new(INTERNAL_ERROR, message));
    }
    Answer::Result(raw(&json!({ "tools": tools })))
}

/// Every tool of one mount, timed into the latency histogram as one listing.
async fn mount_tools(
    gateway: &Gateway,
    route: &Route,
    session: &Session,
    mount: &Mount,
) -> Result<Vec<Map<String, Value>>, UpstreamError> {
    let started = Instant::now();
    let slot = session.slot(&mount.config.server, &mount.client);
    let tools = mount.client.list_tools(&slot, &session.hello).await;
    gateway
        .metrics
        .upstream_seconds
        .with_label_values(&[&route.config.namespace, &route.config.name, &mount.config.server, "tools/list"])
        .observe(started.elapsed().as_secs_f64());
    tools
}

async fn call_tool(gateway: &Gateway, route: &Route, session: &Session, params: Option<&RawValue>) -> Answer {
    let mut fields: BTreeMap<String, Box<RawValue>> = match params.map(|p| serde_json::from_str(p.get())) {
        Some(Ok(fields)) => fields,
        _ => return Answer::Error(RpcError::new(INVALID_PARAMS, "tools/call needs params with a `name`")),
    };
    let name: String = match fields.get("name").map(|n| serde_json::from_str(n.get())) {
        Some(Ok(name)) => name,
        _ => return Answer::Error(RpcError::new(INVALID_PARAMS, "tools/call needs params.name, a string")),
    };
    let (mount, upstream_name) = match owner(gateway, route, session, &name).await {
        Owner::Found(mount, upstream_name) => (mount, upstream_name),
        Owner::Unknown => return Answer::Error(RpcError::new(INVALID_PARAMS, format!("Unknown tool: `{name}`"))),
        Owner::Unavailable(server) => {
            let text = format!("tool `{name}` is unavailable: mounted server `{server}` could not be asked for it");
            return Answer::MountFailed(raw(
                &json!({ "content": [{ "type": "text", "text": text }], "isError": true }),
            ));
        }
    };
    fields.insert("name".into(), raw(&upstream_name));
    let params = raw(&fields);
    match request(gateway, route, session, mount, "tools/call", Some(&params)).await {
        Ok(Reply::Result(result)) => Answer::Result(result),
        Ok(Reply::Error(error)) => Answer::UpstreamError(error),
        Err(error) => {
            tracing::warn!(route = %route.id(), mount = %mount.config.server, tool = %name, %error, "tools/call failed upstream");
            let text =
                format!("tool `{name}` is unavailable: mounted server `{}` {}", mount.config.server, error.summary());
            Answer::MountFailed(raw(&json!({ "content": [{ "type": "text", "text": text }], "isError": true })))
        }
    }
}

/// Who serves a client-visible tool name.
enum Owner<'a> {
    /// This mount, under this upstream name.
    Found(&'a Mount, String),
    /// No mount can have it.
    Unknown,
    /// A mount that may own it, and takes precedence, did not answer.
    Unavailable(&'a str),
}

/// The prefix decides directly; only when several mounts could hold the name are their
/// lists consulted, in mount order (the order `tools/list` gives them precedence in).
async fn owner<'a>(gateway: &Gateway, route: &'a Route, session: &Session, name: &str) -> Owner<'a> {
    let candidates = route.tool_candidates(name);
    if candidates.len() <= 1 {
        return match candidates.first() {
            Some(&(i, upstream)) => Owner::Found(&route.mounts[i], upstream.to_owned()),
            None => Owner::Unknown,
        };
    }
    for (i, upstream) in candidates {
        let mount = &route.mounts[i];
        let listing = tokio::time::timeout(mount.client.timeout(), mount_tools(gateway, route, session, mount)).await;
        match listing {
            Ok(Ok(tools)) if tools.iter().any(|t| t.get("name").and_then(Value::as_str) == Some(upstream)) => {
                return Owner::Found(mount, upstream.to_owned());
            }
            Ok(Ok(_)) => {}
            // The mount that takes precedence did not answer: a later one must not get the
            // call in its place.
            _ => return Owner::Unavailable(mount.config.server.as_str()),
        }
    }
    Owner::Unknown
}

/// One upstream request, timed into the latency histogram.
async fn request(
    gateway: &Gateway,
    route: &Route,
    session: &Session,
    mount: &Mount,
    method: &str,
    params: Option<&RawValue>,
) -> Result<Reply, UpstreamError> {
    let started = Instant::now();
    let slot = session.slot(&mount.config.server, &mount.client);
    let reply = mount.client.request(&slot, &session.hello, method, params).await;
    gateway
        .metrics
        .upstream_seconds
        .with_label_values(&[&route.config.namespace, &route.config.name, &mount.config.server, method])
        .observe(started.elapsed().as_secs_f64());
    reply
}
