//! The MCP endpoint over streamable HTTP. Finds the route for Host + path, checks the
//! headers (Host, Origin, protocol version) and the session, parses JSON-RPC, and hands on:
//! requests to `exchange` (the stateless revision's to `stateless` first), the client's
//! answers and notifications to `relay`, GET to the session's standalone stream. The HTTP
//! statuses and JSON-RPC errors of refusals are decided here, in this one place. Every
//! request is authenticated (`access`) before its body is read; a session belongs to the
//! principal that opened it.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{
    ACCEPT, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, EXPECT,
    HOST, ORIGIN, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming as RequestBody;
use opentelemetry::context::FutureExt as _;
use tokio::sync::mpsc;

use super::call::{Answer, Call, Era};
pub use super::response::Response;
use super::response::{empty, event_stream, json, plain, respond, rpc_failure};
use super::session::{Keep, Session};
use super::{inbound, stateless};
use crate::Gateway;
use crate::access::{Principal, Refusal as AuthnRefusal, metadata};
use crate::jsonrpc::{self, Incoming, RpcError};
use crate::metrics::{CapLabels, CapScope, RefusalLabels, RefusalReason};
use crate::policy::resilience::breaker::State as BreakerState;
use crate::policy::resilience::cap::Place;
use crate::protocol::code::{FORBIDDEN, INVALID_PARAMS, INVALID_REQUEST, RATE_LIMITED, UNAUTHORIZED};
use crate::protocol::header::{LAST_EVENT_ID, PROTOCOL_VERSION, SESSION_ID};
use crate::protocol::{self, STATELESS, SUPPORTED_VERSIONS};
use crate::snapshot::Route;
use crate::traces;
use crate::upstream::Hello;

const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// How much of an oversized body is read and dropped before the connection is closed.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// Every request to the MCP listener lands here.
pub async fn handle(
    gateway: Arc<Gateway>,
    request: Request<RequestBody>,
    link: traces::Link,
) -> Result<Response, Infallible> {
    let (parts, body) = request.into_parts();
    let mut arrival = gateway.tracer.as_ref().map(|_| traces::Arrival::new(&parts.headers, link, parts.version));
    let snapshot = gateway.snapshot.load_full();
    let host = parts.headers.get(HOST).and_then(|h| h.to_str().ok()).map(host_name);
    if let Some(resource_path) = parts.uri.path().strip_prefix(metadata::WELL_KNOWN) {
        return Ok(protected_resource(&snapshot, host.as_deref(), resource_path, &parts.method, &parts.headers));
    }
    if let Some(page) = parts.uri.path().strip_prefix(super::consent::PREFIX) {
        return Ok(
            super::consent::handle(&gateway, &snapshot, page, &parts.method, parts.uri.query(), &parts.headers).await
        );
    }
    let Some(route) = snapshot.route(host.as_deref(), parts.uri.path()) else {
        return Ok(plain(StatusCode::NOT_FOUND, format!("no MCP route is served at {}", parts.uri.path())));
    };
    let principal = match admit(&gateway, route, host.as_deref(), &parts, arrival.as_mut()).await {
        Ok(principal) => principal,
        Err(refusal) => return Ok(refusal),
    };
    Ok(match parts.method {
        Method::POST => {
            // The route's cap, before the body is read: the one refusal that cannot be a tool
            // result, so it is HTTP 429 with `Retry-After` (and a JSON-RPC error body).
            let place = match &route.cap {
                None => None,
                Some(cap) => match cap.enter().await {
                    Ok(place) => Some(place),
                    Err(full) => return Ok(busy(&gateway, route, cap.max_in_flight, full.retry_after_seconds)),
                },
            };
            match read_body(&gateway, &parts.headers, body).await {
                Ok(body) => post(&gateway, route, &parts.headers, &body, principal, place, arrival.as_ref()).await,
                Err(response) => response,
            }
        }
        // The stateless revision has no standalone stream and no session to end.
        Method::GET | Method::DELETE
            if !parts.headers.contains_key(SESSION_ID) && stateless::applies(&parts.headers, None) =>
        {
            let mut response =
                plain(StatusCode::METHOD_NOT_ALLOWED, format!("revision {STATELESS} is served over POST"));
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
            response
        }
        Method::GET => get(&gateway, route, &parts.headers, &principal),
        Method::DELETE => delete(&gateway, route, &parts.headers, &principal).await,
        _ => {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "use POST, GET or DELETE".into());
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            response
        }
    })
}

/// What every request to a route passes before its body is read: its Host and Origin, then
/// its caller's credential, so that an unauthenticated caller costs no more than its headers.
/// The MCP endpoint and the route's tool exports (`crate::export`) admit callers alike.
pub(crate) async fn admit(
    gateway: &Gateway,
    route: &Route,
    host: Option<&str>,
    parts: &http::request::Parts,
    mut arrival: Option<&mut traces::Arrival>,
) -> Result<Arc<Principal>, Response> {
    if let Err(refusal) = check_host(gateway, route, host).and_then(|()| check_origin(route, &parts.headers, host)) {
        return Err(rpc_failure(StatusCode::FORBIDDEN, None, RpcError::new(INVALID_REQUEST, refusal)));
    }
    // Spans need the body's `_meta` for their parent: authentication's is made once it is read.
    let authenticate = route.access.authn.authenticate(&parts.headers, gateway.jwks_refetch_cooldown);
    let authenticated = match arrival.as_deref_mut() {
        Some(arrival) => traces::authenticating(arrival, authenticate).await,
        None => authenticate.await,
    };
    authenticated.map_err(|refusal| {
        let method = parts.headers.get(crate::protocol::header::METHOD).and_then(|v| v.to_str().ok());
        let context = arrival.as_deref().map(|arrival| (arrival, method, &parts.method));
        refused(gateway, route, &parts.headers, &refusal, context)
    })
}

/// DNS rebinding protection: on a loopback listener, a route with no host names of its own
/// answers only requests addressed to a loopback name.
fn check_host(gateway: &Gateway, route: &Route, host: Option<&str>) -> Result<(), String> {
    if !gateway.loopback || !route.config.hostnames.is_empty() {
        return Ok(());
    }
    match host {
        Some("localhost" | "127.0.0.1" | "[::1]") => Ok(()),
        Some(host) => Err(format!("Host `{host}` is not served on this loopback listener")),
        None => Err("a Host header is required".into()),
    }
}

/// A browser's request (it carries `Origin`) is accepted from the route's allowed origins,
/// or from the host it is addressed to; anything else could be a page driving the
/// user's browser against a local or internal gateway.
fn check_origin(route: &Route, headers: &HeaderMap, host: Option<&str>) -> Result<(), String> {
    let Some(origin) = headers.get(ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
    let allowed = &route.config.allowed_origins;
    if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) {
        return Ok(());
    }
    if origin_is_host(origin, host) {
        return Ok(());
    }
    Err(format!("Origin `{origin}` is not allowed on this route"))
}

/// Whether an origin names the host a request is addressed to (`host` as [`host_name`] gives it).
fn origin_is_host(origin: &str, host: Option<&str>) -> bool {
    let origin_host = url::Url::parse(origin).ok().and_then(|u| u.host_str().map(host_name));
    origin_host.is_some() && origin_host.as_deref() == host
}

/// The request body, refused with 413 past the configured size. An oversized body is still
/// read (and dropped, up to [`DRAIN_LIMIT`] more) so that the client, still writing it,
/// receives the 413 instead of a broken connection.
pub(crate) async fn read_body(
    gateway: &Gateway,
    headers: &HeaderMap,
    mut body: RequestBody,
) -> Result<Bytes, Response> {
    let limit = gateway.max_body_bytes;
    let too_large = || plain(StatusCode::PAYLOAD_TOO_LARGE, format!("request bodies are limited to {limit} bytes"));
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let waits_for_continue = headers.get(EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if declared
        .is_some_and(|length| length > limit.saturating_add(DRAIN_LIMIT) || (length > limit && waits_for_continue))
    {
        // Refused before any of it is sent (100-continue) or too large to be worth reading.
        return Err(too_large());
    }
    let mut kept = BytesMut::with_capacity(declared.unwrap_or(0).min(limit).min(64 * 1024));
    let mut seen = 0usize;
    let read = async {
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else { continue };
            seen += data.len();
            if seen <= limit {
                kept.extend_from_slice(&data);
            } else if seen > limit.saturating_add(DRAIN_LIMIT) {
                break;
            }
        }
        Ok::<_, hyper::Error>(())
    };
    // A body trickled in byte by byte cannot hold a worker's connection for long.
    match tokio::time::timeout(BODY_DEADLINE, read).await {
        Ok(Ok(())) if seen <= limit => Ok(kept.freeze()),
        Ok(Ok(())) => Err(too_large()),
        Ok(Err(_)) => Err(plain(StatusCode::BAD_REQUEST, "the request body could not be read".into())),
        Err(_) => {
            Err(plain(StatusCode::REQUEST_TIMEOUT, format!("the request body took longer than {BODY_DEADLINE:?}")))
        }
    }
}

pub(crate) async fn post(
    gateway: &Arc<Gateway>,
    route: &Arc<Route>,
    headers: &HeaderMap,
    body: &[u8],
    principal: Arc<Principal>,
    place: Option<Place>,
    arrival: Option<&traces::Arrival>,
) -> Response {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return rpc_failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            RpcError::new(INVALID_REQUEST, "Content-Type must be application/json"),
        );
    }
    let incoming = match jsonrpc::parse(body) {
        Ok(incoming) => incoming,
        Err(error) => return rpc_failure(StatusCode::BAD_REQUEST, None, error),
    };
    match (&gateway.tracer, arrival) {
        (Some(tracer), Some(arrival)) => {
            let context = server_span(tracer, arrival, route, headers, &principal, &incoming);
            message(gateway, route, headers, incoming, principal, place).with_context(context).await
        }
        _ => message(gateway, route, headers, incoming, principal, place).await,
    }
}

/// The SERVER span of a message (answers to the gateway's own requests get none).
fn server_span(
    tracer: &opentelemetry_sdk::trace::SdkTracer,
    arrival: &traces::Arrival,
    route: &Route,
    headers: &HeaderMap,
    principal: &Principal,
    incoming: &Incoming,
) -> opentelemetry::Context {
    let (method, params, id) = match incoming {
        Incoming::Request { id, method, params } => (method.as_str(), params.as_deref(), Some(&**id)),
        // Progress comes too often to be worth a span each.
        Incoming::Notification { method, .. } if method == protocol::Method::Progress.name() => {
            return opentelemetry::Context::current();
        }
        Incoming::Notification { method, params } => (method.as_str(), params.as_deref(), None),
        Incoming::Response { .. } => return opentelemetry::Context::current(),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // The session's id as logs show it: the token itself would hand the session out.
    let session = header(SESSION_ID).map(|id| &id[id.len().saturating_sub(8)..]);
    let message = traces::Message {
        method,
        params,
        id,
        session,
        protocol_version: header(PROTOCOL_VERSION),
        tenant: &route.config.namespace,
        route: &route.config.name,
        principal_kind: principal.kind(),
    };
    traces::server(tracer, arrival, &message)
}

/// Answers one parsed message.
async fn message(
    gateway: &Arc<Gateway>,
    route: &Arc<Route>,
    headers: &HeaderMap,
    incoming: Incoming,
    principal: Arc<Principal>,
    place: Option<Place>,
) -> Response {
    // No session and no session-era revision: the stateless revision (2026-07-28).
    let sessionless = !headers.contains_key(SESSION_ID);
    if let Incoming::Request { params, .. } = &incoming
        && sessionless
        && stateless::applies(headers, params.as_deref())
    {
        let Incoming::Request { id, method, params } = incoming else { unreachable!() };
        return stateless::answer(gateway, route, headers, principal, id, method, params, place).await;
    }
    if sessionless && !matches!(incoming, Incoming::Request { .. }) && stateless::applies(headers, None) {
        // The stateless revision has no notifications for a server to act on.
        return empty(StatusCode::ACCEPTED);
    }
    if let Some(v) = headers.get(PROTOCOL_VERSION).map(|v| v.to_str().unwrap_or(""))
        && !SUPPORTED_VERSIONS.contains(&v)
    {
        let message = format!(
            "unsupported MCP-Protocol-Version `{v}` for a session; supported: {}",
            SUPPORTED_VERSIONS.join(", ")
        );
        return rpc_failure(StatusCode::BAD_REQUEST, None, RpcError::new(INVALID_REQUEST, message));
    }
    let (id, method, params) = match incoming {
        Incoming::Request { id, method, params } => (id, method, params),
        Incoming::Notification { method, params } => {
            return match session(gateway, route, headers, &principal, Keep::No) {
                Ok(session) => {
                    inbound::notified(route, &session, &method, params.as_deref());
                    empty(StatusCode::ACCEPTED)
                }
                Err(refusal) => refusal.response(None),
            };
        }
        Incoming::Response { id, result, error } => {
            return match session(gateway, route, headers, &principal, Keep::No) {
                Ok(session) => {
                    inbound::answered(route, &session, &id, result.as_deref(), error.as_deref());
                    empty(StatusCode::ACCEPTED)
                }
                Err(refusal) => refusal.response(None),
            };
        }
    };

    let parsed = protocol::Method::parse(&method);
    if parsed == protocol::Method::Initialize {
        let started = std::time::Instant::now();
        let (answer, session) = initialize(gateway, route, params.as_deref(), &principal).await;
        if gateway.tracer.is_some()
            && let Some(session) = &session
        {
            traces::annotate(&[
                ("mcp.session.id", session.log_id()),
                ("mcp.protocol.version", &session.hello.protocol_version),
            ]);
        }
        super::exchange::count(gateway, route, parsed, &answer, started);
        let mut response = respond(&id, answer, &Era::Session);
        if let Some(session) = session {
            response
                .headers_mut()
                .insert(SESSION_ID, HeaderValue::from_str(&session.id).expect("session ids are header-safe"));
        }
        return response;
    }
    let session = match session(gateway, route, headers, &principal, Keep::Yes) {
        Ok(session) => session,
        Err(refusal) => return refusal.response(Some(&id)),
    };
    let (relay, relayed) = mpsc::unbounded_channel();
    let call = Call {
        gateway: Arc::clone(gateway),
        route: Arc::clone(route),
        session,
        principal,
        id,
        relay,
        era: Era::Session,
        fresh: super::cached::fresh_asked(headers),
        cached: Default::default(),
        place,
    };
    super::exchange::request(call, parsed, method, params, relayed).await
}

/// GET: the session's standalone stream (or, with `Last-Event-ID`, the rest of an earlier
/// stream). Opening it also opens each mount's upstream stream, so what upstreams send on
/// their own reaches the client.
fn get(gateway: &Gateway, route: &Route, headers: &HeaderMap, principal: &Arc<Principal>) -> Response {
    let accepts_stream = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream") || v.contains("*/*"));
    if !accepts_stream {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "GET opens an event stream: Accept must allow text/event-stream".into(),
        );
    }
    let session = match session(gateway, route, headers, principal, Keep::Yes) {
        Ok(session) => session,
        Err(refusal) => return refusal.response(None),
    };
    let last_event = headers.get(LAST_EVENT_ID).and_then(|v| v.to_str().ok());
    let Some(body) = session.streams.listen(last_event) else {
        return plain(StatusCode::BAD_REQUEST, "Last-Event-ID names no event of this session".into());
    };
    for mount in &route.mounts {
        let (client, slot, session) = (Arc::clone(&mount.client), session.slot(mount), Arc::clone(&session));
        let (server, principal) = (mount.config.server.clone(), Arc::clone(principal));
        tokio::spawn(async move {
            if let Err(error) = client.as_caller(&principal, client.listen(&slot, &session.hello)).await {
                tracing::warn!(mount = %server, %error, "cannot listen to an upstream's own messages");
            }
        });
    }
    event_stream(body)
}

async fn initialize(
    gateway: &Gateway,
    route: &Route,
    params: Option<&serde_json::value::RawValue>,
    principal: &Principal,
) -> (Answer, Option<Arc<Session>>) {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Params {
        protocol_version: String,
        capabilities: Option<Box<serde_json::value::RawValue>>,
    }
    let (requested, capabilities) = match params.map(|p| serde_json::from_str::<Params>(p.get())) {
        Some(Ok(params)) => {
            // Kept as the client wrote it, when it is an object (what upstreams are offered).
            let declared = params.capabilities.filter(|c| c.get().trim_start().starts_with('{'));
            (params.protocol_version, declared.unwrap_or_else(|| jsonrpc::raw(&serde_json::json!({}))))
        }
        _ => {
            return (Answer::Error(RpcError::new(INVALID_PARAMS, "initialize needs params.protocolVersion")), None);
        }
    };
    let version =
        if SUPPORTED_VERSIONS.contains(&requested.as_str()) { requested } else { SUPPORTED_VERSIONS[0].to_owned() };
    let hello = Hello { protocol_version: version.clone(), capabilities };
    let upstreams = open_upstreams(gateway, route, &hello, principal).await;
    let session = gateway.sessions.create(route.config.key(), hello, principal.binding.clone(), upstreams);
    tracing::info!(route = %route.id(), session = %session.log_id(), principal = %principal.name, %version, "session opened");
    let result = serde_json::json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": { "listChanged": true },
            "prompts": { "listChanged": true },
            "resources": { "subscribe": true, "listChanged": true },
            "logging": {},
            "completions": {},
        },
        "serverInfo": { "name": "manifold", "title": "Manifold MCP gateway", "version": env!("CARGO_PKG_VERSION") },
        "instructions": format!(
            "Tools, prompts and resources of {} mounted server(s): names are <prefix>_<name>, URIs <scheme>://<prefix>/<rest>.",
            route.mounts.len()
        ),
    });
    (Answer::Result(jsonrpc::raw(&result)), Some(session))
}

/// How long `initialize` waits for a mount's upstream session; one that takes longer is
/// opened on the session's first request to that mount instead (and is not in the token).
const EAGER_OPEN: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens every mount's upstream session for a new client session, so that its token carries
/// them and any replica goes on in them. Mounts that fail or are slow are left out.
async fn open_upstreams(
    gateway: &Gateway,
    route: &Route,
    hello: &Hello,
    principal: &Principal,
) -> Vec<(String, crate::upstream::Held)> {
    let provisional = gateway.sessions.provisional(route.config.key(), hello.clone());
    let opened = route.mounts.iter().map(|mount| {
        let slot = provisional.slot(mount);
        async move {
            // A mount whose breaker is open is not waited for: its session opens on first use.
            if mount.client.guard.breaker.state() == BreakerState::Open {
                return None;
            }
            let hold = mount.client.as_caller(principal, mount.client.hold(&slot, hello));
            match tokio::time::timeout(EAGER_OPEN, hold).await {
                Ok(Ok(Some(held))) => Some((mount.key.to_string(), held)),
                Ok(Ok(None)) => None,
                Ok(Err(error)) => {
                    tracing::debug!(mount = %mount.config.server, %error, "upstream session not opened at initialize");
                    None
                }
                Err(_) => None,
            }
        }
    });
    futures::future::join_all(opened).await.into_iter().flatten().collect()
}

async fn delete(gateway: &Gateway, route: &Route, headers: &HeaderMap, principal: &Principal) -> Response {
    let session = match session(gateway, route, headers, principal, Keep::No) {
        Ok(session) => session,
        Err(refusal) => return refusal.response(None),
    };
    gateway.sessions.remove(&session);
    tracing::info!(route = %route.id(), session = %session.log_id(), "session closed by client");
    session.close(Some(route)).await;
    empty(StatusCode::NO_CONTENT)
}

/// Why a request names no usable session.
enum Refusal {
    /// No `Mcp-Session-Id` header: 400, as the spec asks.
    Missing,
    /// Unknown, ended, or opened on another route: 404, so the client re-initializes.
    NotFound,
}

impl Refusal {
    fn response(self, id: Option<&serde_json::value::RawValue>) -> Response {
        match self {
            Refusal::Missing => rpc_failure(
                StatusCode::BAD_REQUEST,
                id,
                RpcError::new(INVALID_REQUEST, "missing Mcp-Session-Id header; send initialize first"),
            ),
            Refusal::NotFound => rpc_failure(
                StatusCode::NOT_FOUND,
                id,
                RpcError::new(INVALID_REQUEST, "session not found; initialize a new session"),
            ),
        }
    }
}

/// The session named by the request, which must belong to this route and to this caller:
/// a session id alone does not let another caller in (it is told the session does not exist).
fn session(
    gateway: &Gateway,
    route: &Route,
    headers: &HeaderMap,
    principal: &Principal,
    keep: Keep,
) -> Result<Arc<Session>, Refusal> {
    let session_id = headers.get(SESSION_ID).and_then(|v| v.to_str().ok()).ok_or(Refusal::Missing)?;
    let route = (route.config.namespace.as_str(), route.config.name.as_str());
    gateway.sessions.get(session_id, route, &principal.binding, keep).ok_or(Refusal::NotFound)
}

/// 429 for a request the route's cap on requests in flight refused before reading it: the
/// wait in `Retry-After` and in a JSON-RPC error's `data.retryAfterSeconds` (its id unknown,
/// so null), never an empty body.
pub(crate) fn busy(gateway: &Gateway, route: &Route, max_in_flight: u32, seconds: u64) -> Response {
    let (namespace, route_name) = (&*route.config.namespace, &*route.config.name);
    gateway.metrics.concurrency_refusals.inc(&CapLabels { namespace, route: route_name, cap: CapScope::Route });
    let message = format!(
        "route {namespace}/{route_name} is busy: {max_in_flight} requests are in flight already; retry in {seconds} seconds. Nothing was run."
    );
    let data = serde_json::json!({ "retryAfterSeconds": seconds });
    let mut response =
        rpc_failure(StatusCode::TOO_MANY_REQUESTS, None, RpcError { code: RATE_LIMITED, message, data: Some(data) });
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// 401 or 403, with the challenge that tells a client where to get a token.
/// A traced request's arrival, `Mcp-Method` header and HTTP method go with it (`traced`).
fn refused(
    gateway: &Gateway,
    route: &Route,
    headers: &HeaderMap,
    refusal: &AuthnRefusal,
    traced: Option<(&traces::Arrival, Option<&str>, &Method)>,
) -> Response {
    let (status, reason, message) = match refusal {
        AuthnRefusal::Missing => (
            StatusCode::UNAUTHORIZED,
            RefusalReason::MissingCredential,
            "authentication required: send Authorization: Bearer <token>".to_owned(),
        ),
        AuthnRefusal::Invalid(why) => {
            (StatusCode::UNAUTHORIZED, RefusalReason::InvalidToken, format!("invalid credential: {why}"))
        }
        AuthnRefusal::InsufficientScope(scopes) => (
            StatusCode::FORBIDDEN,
            RefusalReason::InsufficientScope,
            format!("insufficient scope: this route requires {}", scopes.join(" ")),
        ),
    };
    let (namespace, route_name) = (&*route.config.namespace, &*route.config.name);
    gateway.metrics.refusals.inc(&RefusalLabels { namespace, route: route_name, reason });
    let code = if status == StatusCode::FORBIDDEN { FORBIDDEN } else { UNAUTHORIZED };
    if let (Some(tracer), Some((arrival, method, http_method))) = (&gateway.tracer, traced) {
        traces::refused(tracer, arrival, method, http_method, namespace, route_name, code, &message);
    }
    let mut response = rpc_failure(status, None, RpcError::new(code, message));
    let challenge = metadata::challenge(&route.config, &route.access.authn, headers, refusal);
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// `GET /.well-known/oauth-protected-resource<route path>`: the route's RFC 9728 metadata,
/// for routes that take credentials.
fn protected_resource(
    snapshot: &crate::snapshot::Snapshot,
    host: Option<&str>,
    path: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let route = snapshot.route(host, path).filter(|r| r.access.authn.checks_credentials());
    let Some(route) = route else {
        return plain(StatusCode::NOT_FOUND, format!("no protected resource is served at {path}"));
    };
    let mut response = match *method {
        Method::GET | Method::HEAD => {
            let document = metadata::document(&route.config, &route.access.authn, headers);
            json(StatusCode::OK, Bytes::from(document.to_string()))
        }
        Method::OPTIONS => empty(StatusCode::NO_CONTENT),
        _ => {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET".into());
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
            response
        }
    };
    // Public metadata: browser-based clients (MCP Inspector) read it cross-origin.
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(PROTOCOL_VERSION));
    response
}

/// A JSON body with `status`, for the answers of the routes' tool exports.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    json(status, Bytes::from(body.to_string()))
}

pub(crate) fn host_name(host: &str) -> String {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::{host_name, origin_is_host};

    #[test]
    fn an_origin_of_the_addressed_host_is_its_own() {
        let same = |origin: &str, host: &str| origin_is_host(origin, Some(&host_name(host)));
        assert!(same("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(same("https://MCP.example.com", "mcp.example.com."));
        assert!(same("http://[::1]:6274", "[::1]:8080"), "IPv6 literals keep their brackets on both sides");
        assert!(!same("http://evil.example.com", "127.0.0.1:8080"));
        assert!(!same("null", "127.0.0.1"));
    }

    #[test]
    fn host_names_lose_port_case_and_trailing_dot() {
        assert_eq!(host_name("API.Example.com:8443"), "api.example.com");
        assert_eq!(host_name("example.com."), "example.com");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("localhost"), "localhost");
    }
}
