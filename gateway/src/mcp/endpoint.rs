//! The MCP endpoint over streamable HTTP. Finds the route for Host + path, checks the
//! headers and the session, parses JSON-RPC, hands requests to `methods`, and maps every
//! outcome to the HTTP status and JSON-RPC error the spec asks for, in this one place.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming as RequestBody;

use super::SUPPORTED_VERSIONS;
use super::methods::{self, Answer};
use super::session::Session;
use crate::Gateway;
use crate::jsonrpc::{self, INVALID_REQUEST, Incoming, RpcError};
use crate::snapshot::Route;
use crate::upstream::Hello;

const SESSION_ID: &str = "mcp-session-id";
const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// How much of an oversized body is read and dropped before the connection is closed.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;
const PROTOCOL_VERSION: &str = "mcp-protocol-version";

/// A response of the MCP listener.
pub type Response = http::Response<Full<Bytes>>;

/// Every request to the MCP listener lands here.
pub async fn handle(gateway: Arc<Gateway>, request: Request<RequestBody>) -> Result<Response, Infallible> {
    let (parts, body) = request.into_parts();
    let snapshot = gateway.snapshot.load_full();
    let host = parts.headers.get(HOST).and_then(|h| h.to_str().ok()).map(host_name);
    let Some(route) = snapshot.route(host.as_deref(), parts.uri.path()) else {
        return Ok(plain(StatusCode::NOT_FOUND, format!("no MCP route is served at {}", parts.uri.path())));
    };
    Ok(match parts.method {
        Method::POST => match read_body(&gateway, &parts.headers, body).await {
            Ok(body) => post(&gateway, route, &parts.headers, &body).await,
            Err(response) => response,
        },
        Method::DELETE => delete(&gateway, route, &parts.headers).await,
        // The standalone server-to-client stream is not offered yet; the spec allows 405.
        _ => {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "use POST (or DELETE to end a session)".into());
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("POST, DELETE"));
            response
        }
    })
}

/// The request body, refused with 413 past the configured size. An oversized body is still
/// read (and dropped, up to [`DRAIN_LIMIT`] more) so that the client, still writing it,
/// receives the 413 instead of a broken connection.
async fn read_body(gateway: &Gateway, headers: &HeaderMap, mut body: RequestBody) -> Result<Bytes, Response> {
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

async fn post(gateway: &Gateway, route: &Arc<Route>, headers: &HeaderMap, body: &[u8]) -> Response {
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
    // A client of a newer revision (fastmcp probes with `server/discover` at 2026-07-28) gets
    // a 400 with a JSON-RPC error, its cue to fall back to `initialize`.
    if let Some(v) = headers.get(PROTOCOL_VERSION).map(|v| v.to_str().unwrap_or(""))
        && !SUPPORTED_VERSIONS.contains(&v)
    {
        let message = format!("unsupported MCP-Protocol-Version `{v}`; supported: {}", SUPPORTED_VERSIONS.join(", "));
        return rpc_failure(StatusCode::BAD_REQUEST, None, RpcError::new(INVALID_REQUEST, message));
    }
    let incoming = match jsonrpc::parse(body) {
        Ok(incoming) => incoming,
        Err(error) => return rpc_failure(StatusCode::BAD_REQUEST, None, error),
    };
    let (id, method, params) = match incoming {
        Incoming::Request { id, method, params } => (id, method, params),
        Incoming::Notification { .. } | Incoming::Response => {
            // Not relayed yet; a notification about an unknown session is still refused.
            if let Err(refusal) = session(gateway, route, headers) {
                return refusal.response(None);
            }
            return empty(StatusCode::ACCEPTED);
        }
    };

    let (answer, session) = if method == "initialize" {
        initialize(gateway, route, params.as_deref())
    } else {
        let session = match session(gateway, route, headers) {
            Ok(session) => session,
            Err(refusal) => return refusal.response(Some(&id)),
        };
        let _in_flight = InFlight::new(&gateway.metrics.in_flight);
        (methods::dispatch(gateway, route, &session, &method, params.as_deref()).await, None)
    };
    gateway
        .metrics
        .requests
        .with_label_values(&[
            &route.config.namespace,
            &route.config.name,
            crate::metrics::method_label(&method),
            answer.outcome(),
        ])
        .inc();
    let body = match answer {
        Answer::Result(result) | Answer::MountFailed(result) => jsonrpc::result(&id, &result),
        Answer::UpstreamError(error) => jsonrpc::raw_error(&id, &error),
        Answer::Error(error) => jsonrpc::error(Some(&id), &error),
        Answer::Unavailable(error) => return rpc_failure(StatusCode::SERVICE_UNAVAILABLE, Some(&id), error),
    };
    let mut response = json(StatusCode::OK, body);
    if let Some(session) = session {
        response
            .headers_mut()
            .insert(SESSION_ID, HeaderValue::from_str(&session.id).expect("session ids are header-safe"));
    }
    response
}

fn initialize(
    gateway: &Gateway,
    route: &Route,
    params: Option<&serde_json::value::RawValue>,
) -> (Answer, Option<Arc<Session>>) {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Params {
        protocol_version: String,
    }
    let requested = match params.map(|p| serde_json::from_str::<Params>(p.get())) {
        Some(Ok(params)) => params.protocol_version,
        _ => {
            return (
                Answer::Error(RpcError::new(jsonrpc::INVALID_PARAMS, "initialize needs params.protocolVersion")),
                None,
            );
        }
    };
    let version =
        if SUPPORTED_VERSIONS.contains(&requested.as_str()) { requested } else { SUPPORTED_VERSIONS[0].to_owned() };
    let hello = Hello { protocol_version: version.clone() };
    let key = (route.config.namespace.clone(), route.config.name.clone());
    let Some(session) = gateway.sessions.create(key, hello) else {
        return (
            Answer::Unavailable(RpcError::new(
                jsonrpc::INTERNAL_ERROR,
                "this gateway holds its maximum number of sessions; retry later",
            )),
            None,
        );
    };
    gateway.metrics.sessions.set(gateway.sessions.count() as i64);
    tracing::info!(route = %route.id(), session = %session.log_id(), %version, "session opened");
    let result = serde_json::json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": "manifold", "title": "Manifold MCP gateway", "version": env!("CARGO_PKG_VERSION") },
        "instructions": format!("Tools of {} mounted server(s), each named <prefix>_<tool>.", route.mounts.len()),
    });
    (Answer::Result(jsonrpc::raw(&result)), Some(session))
}

async fn delete(gateway: &Gateway, route: &Route, headers: &HeaderMap) -> Response {
    let session = match session(gateway, route, headers) {
        Ok(session) => session,
        Err(refusal) => return refusal.response(None),
    };
    gateway.sessions.remove(&session.id);
    gateway.metrics.sessions.set(gateway.sessions.count() as i64);
    tracing::info!(route = %route.id(), session = %session.log_id(), "session closed by client");
    session.close().await;
    empty(StatusCode::NO_CONTENT)
}

/// Counts a request in flight until dropped: also when the client goes away mid-call and the
/// request's future is dropped.
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
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

/// The session named by the request, which must belong to this route.
fn session(gateway: &Gateway, route: &Route, headers: &HeaderMap) -> Result<Arc<Session>, Refusal> {
    let session_id = headers.get(SESSION_ID).and_then(|v| v.to_str().ok()).ok_or(Refusal::Missing)?;
    match gateway.sessions.get(session_id) {
        Some(session) if session.route.0 == route.config.namespace && session.route.1 == route.config.name => {
            Ok(session)
        }
        _ => Err(Refusal::NotFound),
    }
}

fn host_name(host: &str) -> String {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn json(status: StatusCode, body: Bytes) -> Response {
    let mut response = http::Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn empty(status: StatusCode) -> Response {
    let mut response = http::Response::new(Full::default());
    *response.status_mut() = status;
    response
}

fn rpc_failure(status: StatusCode, id: Option<&serde_json::value::RawValue>, error: RpcError) -> Response {
    json(status, jsonrpc::error(id, &error))
}

fn plain(status: StatusCode, message: String) -> Response {
    let mut response = http::Response::new(Full::new(Bytes::from(message)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn host_names_lose_port_case_and_trailing_dot() {
        assert_eq!(host_name("API.Example.com:8443"), "api.example.com");
        assert_eq!(host_name("example.com."), "example.com");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("localhost"), "localhost");
    }
}
