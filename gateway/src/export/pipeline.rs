//! An export's MCP requests, through the same path a stateless MCP request takes: each is
//! written as a JSON-RPC request of the stateless revision, with the headers it mirrors, and
//! handed to the endpoint with the caller already authenticated; its answer (JSON, or an
//! event stream when an upstream spoke first) is read back to its final message.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};

use crate::Gateway;
use crate::access::Principal;
use crate::mcp::endpoint::{self, Response};
use crate::protocol::code::{FORBIDDEN, RATE_LIMITED};
use crate::protocol::{Method, STATELESS, header, meta};
use crate::snapshot::Route;
use crate::traces;

/// `tools/list` pages one export reads at most: a route that keeps handing out cursors is
/// cut there rather than looped on.
const MAX_PAGES: usize = 1000;

/// What an export's requests share: the route, the caller, and the request they came in.
pub struct Pipeline<'a> {
    pub gateway: &'a Arc<Gateway>,
    pub route: &'a Arc<Route>,
    pub principal: Arc<Principal>,
    /// The export request's headers (for `Cache-Control`).
    pub headers: &'a HeaderMap,
    pub arrival: Option<&'a traces::Arrival>,
}

/// A JSON-RPC error the route answered, with the HTTP status the endpoint gave it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: StatusCode,
    pub code: i64,
    pub message: String,
}

impl Failure {
    /// The failure as an answer to `GET …/tools`, where there is no tool result to carry it:
    /// a refusal keeps its meaning (403, 429), anything else is the route's failure (502).
    pub fn response(&self) -> Response {
        let status = match self.code {
            _ if self.status != StatusCode::OK => self.status,
            FORBIDDEN => StatusCode::FORBIDDEN,
            RATE_LIMITED => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_GATEWAY,
        };
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        endpoint::json_response(status, &body)
    }
}

impl Pipeline<'_> {
    /// Every tool the caller may see, all pages of the route's merged `tools/list`.
    pub async fn all_tools(&self) -> Result<Vec<Value>, Failure> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for page in 0..MAX_PAGES {
            let mut params = Map::new();
            if let Some(cursor) = cursor.take() {
                params.insert("cursor".into(), Value::String(cursor));
            }
            let mut result = self.ask(page, Method::ToolsList, None, params).await?;
            if let Some(Value::Array(listed)) = result.get_mut("tools").map(Value::take) {
                tools.extend(listed);
            }
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(tools)
    }

    /// One `tools/call`: its result, or the route's JSON-RPC error.
    pub async fn call_tool(&self, index: usize, name: &str, arguments: &Map<String, Value>) -> Result<Value, Failure> {
        let mut params = Map::new();
        params.insert("name".into(), Value::String(name.to_owned()));
        params.insert("arguments".into(), Value::Object(arguments.clone()));
        self.ask(index, Method::ToolsCall, Some(name), params).await
    }

    /// One request through the endpoint's stateless path: `params` gets the request's `_meta`,
    /// the headers mirror it (and `Mcp-Name` the tool's name) as the revision asks.
    async fn ask(
        &self,
        id: usize,
        method: Method,
        name: Option<&str>,
        mut params: Map<String, Value>,
    ) -> Result<Value, Failure> {
        params.insert(
            "_meta".into(),
            json!({
                meta::PROTOCOL_VERSION: STATELESS,
                meta::CLIENT_CAPABILITIES: {},
                meta::CLIENT_INFO: { "name": "manifold-export", "version": env!("CARGO_PKG_VERSION") },
            }),
        );
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method.name(), "params": params });
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        headers.insert(header::PROTOCOL_VERSION, HeaderValue::from_static(STATELESS));
        headers.insert(header::METHOD, HeaderValue::from_static(method.name()));
        if let Some(name) = name {
            headers.insert(header::NAME, header_value(name));
        }
        if let Some(cache_control) = self.headers.get(CACHE_CONTROL) {
            headers.insert(CACHE_CONTROL, cache_control.clone());
        }
        let body = Bytes::from(body.to_string());
        // The export holds the route's cap for all its requests: none takes a place of its own.
        let response =
            endpoint::post(self.gateway, self.route, &headers, &body, Arc::clone(&self.principal), None, self.arrival)
                .await;
        read_answer(response).await
    }
}

/// A header value as the stateless revision writes one: as it is when it can be, else the
/// `=?base64?…?=` form.
fn header_value(text: &str) -> HeaderValue {
    use base64::Engine;
    let plain = text.bytes().all(|b| (0x20..0x7f).contains(&b)) && text.trim() == text;
    match plain.then(|| HeaderValue::from_str(text).ok()).flatten() {
        Some(value) => value,
        None => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            HeaderValue::from_str(&format!("=?base64?{encoded}?=")).expect("base64 is header-safe")
        }
    }
}

/// The result or error of the endpoint's answer: its JSON body, or the last JSON-RPC
/// response of its event stream (what came before it is progress or logging, not for a model).
async fn read_answer(response: Response) -> Result<Value, Failure> {
    let status = response.status();
    let is_stream = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    let unreadable = |what: &str| Failure { status, code: 0, message: format!("the route's answer {what}") };
    let body = match response.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Err(unreadable("could not be read")),
    };
    let message: Value = match is_stream {
        false => serde_json::from_slice(&body).map_err(|_| unreadable("is not JSON"))?,
        true => last_response(&body).ok_or_else(|| unreadable("stream ended without a response"))?,
    };
    if let Some(result) = message.get("result") {
        return Ok(result.clone());
    }
    let error = message.get("error").ok_or_else(|| unreadable("carries neither result nor error"))?;
    Err(Failure {
        status,
        code: error.get("code").and_then(Value::as_i64).unwrap_or_default(),
        message: error.get("message").and_then(Value::as_str).unwrap_or("the route answered an error").to_owned(),
    })
}

/// The last JSON-RPC response (a message with a result or an error) in an event stream.
fn last_response(stream: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(stream);
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event.lines().filter_map(|line| line.strip_prefix("data:")).map(str::trim).collect();
            serde_json::from_str::<Value>(&data.join("\n")).ok()
        })
        .filter(|message| message.get("result").is_some() || message.get("error").is_some())
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_response_of_a_stream_is_read_past_what_came_before_it() {
        let stream = b": keep-alive\n\n\
            event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n\
            id: 3\ndata: {\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{\"content\":[]}}\n\n";
        assert_eq!(last_response(stream), Some(json!({"jsonrpc": "2.0", "id": 0, "result": {"content": []}})));
        assert_eq!(last_response(b": keep-alive\n\n"), None);
    }

    #[test]
    fn names_that_are_not_plain_header_text_are_sent_in_base64() {
        assert_eq!(header_value("alpha_echo"), "alpha_echo");
        assert_eq!(header_value("météo"), "=?base64?bcOpdMOpbw==?=");
    }
}
