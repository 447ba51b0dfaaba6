//! A route's tools exported for LLM APIs, over plain HTTP beside its MCP endpoint:
//! `GET <route path>/tools?format=F` answers the caller's tools as that provider's function
//! declarations (`formats`, `strict`), and `POST <route path>/tools/call` takes a provider's
//! tool call(s) and answers what that provider expects back (`calls`). Nothing here decides
//! who may do what: callers pass the MCP endpoint's own checks (`endpoint::admit`: Host,
//! Origin, credential, refused exactly as there), and every `tools/list` page and `tools/call`
//! goes through the route as a stateless MCP request (`pipeline`), so authorization, limits,
//! caching, audit, metrics and traces apply as they do to MCP clients. The paths, methods and
//! HTTP errors of the exports are decided here.

mod calls;
mod formats;
mod pipeline;
mod strict;

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{ALLOW, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming as RequestBody;
use serde_json::{Value, json};

use crate::Gateway;
use crate::access::Principal;
use crate::mcp::endpoint::{self, Response};
use crate::snapshot::Route;
use crate::traces;

use formats::Format;

/// Which export a path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `<route path>/tools`
    Tools,
    /// `<route path>/tools/call`
    Call,
}

/// Every request to the MCP listener passes here: a route's tool exports are answered here,
/// everything else goes to the MCP endpoint. An MCP request pays a suffix check for it.
pub async fn serve(
    gateway: Arc<Gateway>,
    request: Request<RequestBody>,
    link: traces::Link,
) -> Result<Response, Infallible> {
    let path = request.uri().path();
    let (route_path, export) = match (path.strip_suffix("/tools/call"), path.strip_suffix("/tools")) {
        (Some(route_path), _) => (route_path, Endpoint::Call),
        (None, Some(route_path)) => (route_path, Endpoint::Tools),
        (None, None) => return endpoint::handle(gateway, request, link).await,
    };
    let snapshot = gateway.snapshot.load_full();
    let host = request.headers().get(HOST).and_then(|h| h.to_str().ok()).map(endpoint::host_name);
    // A route's own path wins: a route whose path ends in `/tools` stays an MCP endpoint
    // (its tools are at `<its path>/tools`); only a path no route serves is an export.
    let route = match snapshot.route(host.as_deref(), path) {
        Some(_) => None,
        None => snapshot.route(host.as_deref(), route_path).map(Arc::clone),
    };
    let Some(route) = route else { return endpoint::handle(gateway, request, link).await };
    let (parts, body) = request.into_parts();
    let mut arrival = gateway.tracer.as_ref().map(|_| traces::Arrival::new(&parts.headers, link, parts.version));
    let principal = match endpoint::admit(&gateway, &route, host.as_deref(), &parts, arrival.as_mut()).await {
        Ok(principal) => principal,
        Err(refusal) => return Ok(refusal),
    };
    // Boxed: the export's future is large, and inline it would grow every MCP request's
    // future (this function's) by its size, on the workers' stacks.
    Ok(Box::pin(handle(&gateway, &route, export, &parts, body, principal, arrival.as_ref())).await)
}

/// Answers an export request of an admitted caller.
async fn handle(
    gateway: &Arc<Gateway>,
    route: &Arc<Route>,
    endpoint: Endpoint,
    parts: &http::request::Parts,
    body: RequestBody,
    principal: Arc<Principal>,
    arrival: Option<&traces::Arrival>,
) -> Response {
    let (allowed, named) = match endpoint {
        Endpoint::Tools => (Method::GET, "GET"),
        Endpoint::Call => (Method::POST, "POST"),
    };
    if parts.method != allowed {
        let mut response = error(StatusCode::METHOD_NOT_ALLOWED, format!("use {named} on this path"));
        response.headers_mut().insert(ALLOW, HeaderValue::from_static(named));
        return response;
    }
    // The route's cap on requests in flight holds for the whole export, however many MCP
    // requests it takes; it refuses as the MCP endpoint does (429, `Retry-After`).
    let _place = match &route.cap {
        None => None,
        Some(cap) => match cap.enter().await {
            Ok(place) => Some(place),
            Err(full) => return endpoint::busy(gateway, route, cap.max_in_flight, full.retry_after_seconds),
        },
    };
    let pipeline = pipeline::Pipeline { gateway, route, principal, headers: &parts.headers, arrival };
    match endpoint {
        Endpoint::Tools => tools(&pipeline, parts.uri.query()).await,
        Endpoint::Call => {
            let body = match endpoint::read_body(gateway, &parts.headers, body).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            call(&pipeline, &parts.headers, &body).await
        }
    }
}

/// `GET …/tools?format=F`: every page of the route's `tools/list`, declared for `F`.
async fn tools(pipeline: &pipeline::Pipeline<'_>, query: Option<&str>) -> Response {
    let asked = query.and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "format").map(|(_, value)| value)
    });
    let format = match asked.as_deref().map(Format::parse) {
        Some(Ok(format)) => format,
        Some(Err(message)) => return error(StatusCode::BAD_REQUEST, message),
        None => return error(StatusCode::BAD_REQUEST, format!("the query needs format=F; {}", Format::NAMED)),
    };
    match pipeline.all_tools().await {
        Ok(tools) => ok(&formats::declare(format, &tools)),
        Err(failure) => failure.response(),
    }
}

/// `POST …/tools/call`: one provider tool call or an array of them, each answered in its
/// provider's shape; the MCP calls run concurrently, the answers keep the calls' order.
async fn call(pipeline: &pipeline::Pipeline<'_>, headers: &HeaderMap, body: &[u8]) -> Response {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json".into());
    }
    let body: Value = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(why) => return error(StatusCode::BAD_REQUEST, format!("the body is not JSON: {why}")),
    };
    let (many, parsed) = match &body {
        Value::Array(items) => (true, items.iter().enumerate().map(|(i, item)| calls::parse(item, Some(i))).collect()),
        item => (false, vec![calls::parse(item, None)]),
    };
    let parsed: Vec<calls::ToolCall> = match parsed.into_iter().collect::<Result<_, _>>() {
        Ok(parsed) => parsed,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    // Strict OpenAI tools send `null` for what the caller left out: telling those from a
    // meant `null` takes the tools' own schemas, listed only when a call carries a `null`.
    // When the list fails, each call is answered with why, as the call itself would be.
    let schemas = match parsed.iter().any(calls::ToolCall::may_carry_strict_nulls) {
        true => Some(pipeline.all_tools().await),
        false => None,
    };
    let answered = futures::future::join_all(parsed.into_iter().enumerate().map(|(index, mut tool_call)| {
        let listed = match &schemas {
            Some(Err(failure)) => Err(failure.clone()),
            Some(Ok(tools)) => {
                tool_call.drop_strict_nulls(tools);
                Ok(())
            }
            None => Ok(()),
        };
        async move {
            let outcome = match listed {
                Ok(()) => pipeline.call_tool(index, &tool_call.name, &tool_call.arguments).await,
                Err(failure) => Err(failure),
            };
            tool_call.answer(outcome)
        }
    }))
    .await;
    match many {
        true => ok(&Value::Array(answered)),
        false => ok(&answered.into_iter().next().expect("one call was parsed, so one was answered")),
    }
}

fn ok(body: &Value) -> Response {
    endpoint::json_response(StatusCode::OK, body)
}

/// An export's own refusal, as JSON that names what was wrong.
fn error(status: StatusCode, message: String) -> Response {
    endpoint::json_response(status, &json!({ "error": { "message": message } }))
}
