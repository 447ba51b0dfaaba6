//! A deliberately plain MCP client over raw HTTP, for checks the SDKs hide: status codes,
//! headers, malformed input, and quick polling while config reloads.

use reqwest::StatusCode;
use serde_json::{Value, json};

/// One session (or none yet) on one MCP URL.
pub struct RawSession {
    http: reqwest::Client,
    pub url: String,
    pub session: Option<String>,
    /// Sent as `Authorization: Bearer` with every request, when set.
    bearer: Option<String>,
}

/// The JSON-RPC messages of an event stream, as they arrive.
pub struct Events {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Events {
    /// The messages of a response's event stream.
    pub fn of(response: reqwest::Response) -> Self {
        Events { stream: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next message, or None when the stream ends or `within` passes first.
    pub async fn next(&mut self, within: std::time::Duration) -> Option<Value> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> =
                    event.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
                if !data.is_empty()
                    && let Ok(message) = serde_json::from_str(&data.join("\n"))
                {
                    return Some(message);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next()).await.ok()??.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// What came back.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl RawSession {
    /// No session yet.
    pub fn new(url: &str) -> Self {
        RawSession { http: reqwest::Client::new(), url: url.to_owned(), session: None, bearer: None }
    }

    /// An existing session, used from another task.
    pub fn resume(url: &str, session: Option<String>) -> Self {
        RawSession { session, ..RawSession::new(url) }
    }

    /// Initializes; panics unless the gateway answers with a session.
    pub async fn initialize(url: &str) -> Self {
        let mut raw = RawSession::new(url);
        let answer = raw
            .request("initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "initialize: {}", answer.body);
        raw.session = Some(answer.headers["mcp-session-id"].to_str().unwrap().to_owned());
        raw.post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
        raw
    }

    /// The same, sending `Authorization: Bearer <token>` with every request.
    pub fn with_bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }

    /// Goes on in the session an `initialize` answer opened, and says it is initialized.
    pub async fn adopt(&mut self, initialized: &Answer) {
        let id = initialized.headers.get("mcp-session-id").expect("initialize opened a session");
        self.session = Some(id.to_str().expect("a session id is text").to_owned());
        self.post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    }

    /// Sends a request with id 1.
    pub async fn request(&self, method: &str, params: Value) -> Answer {
        self.post(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string()).await
    }

    /// POSTs a body as JSON with this session's id.
    pub async fn post(&self, body: &str) -> Answer {
        self.send(self.http.post(&self.url).header("content-type", "application/json").body(body.to_owned())).await
    }

    /// Sends any request with this session's headers.
    pub async fn send(&self, mut request: reqwest::RequestBuilder) -> Answer {
        request = request.header("accept", "application/json, text/event-stream");
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("gateway answers");
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, headers, body }
    }

    /// The sorted tool names this session sees (panics on an error).
    pub async fn tool_names(&self) -> Vec<String> {
        let answer = self.request("tools/list", json!({})).await;
        assert_eq!(answer.status, StatusCode::OK, "tools/list: {}", answer.body);
        crate::peers::tool_names(&answer.body["result"])
    }

    /// Opens the session's standalone stream (GET); panics unless it is an event stream.
    pub async fn listen(&self) -> Events {
        let mut request = self.http.get(&self.url).header("accept", "text/event-stream");
        if let Some(session) = &self.session {
            request = request.header("mcp-session-id", session);
        }
        let response = request.send().await.expect("gateway answers");
        assert_eq!(response.status(), StatusCode::OK, "GET stream: {}", response.status());
        Events::of(response)
    }

    /// A client used elsewhere (DELETE, GET).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// A request of the stateless revision (2026-07-28): `params` gain the `_meta` a client with
/// no capabilities sends (beside the `_meta` entries they hold, such as a `traceparent`), and
/// the headers mirror the body (`Mcp-Name` from `params.name` or `params.uri`).
pub fn stateless(url: &str, id: Value, method: &str, mut params: Value) -> reqwest::RequestBuilder {
    let mut meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    if let Some(Value::Object(given)) = params.get("_meta") {
        for (key, value) in given {
            meta[key] = value.clone();
        }
    }
    params["_meta"] = meta;
    let name = params.get("name").or_else(|| params.get("uri")).and_then(Value::as_str).map(str::to_owned);
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = name.filter(|_| matches!(method, "tools/call" | "prompts/get" | "resources/read")) {
        request = request.header("mcp-name", name);
    }
    request.body(body.to_string())
}
