//! Clients for mounted sub-servers. One [`UpstreamClient`] per tenant and upstream config
//! (connections come from the calling thread's pool); one [`Slot`] per (client session,
//! mounted server) holding that client's upstream session,
//! opened lazily with `initialize` and reopened once, transparently, when the upstream has
//! forgotten it (HTTP 404, or a closed SSE stream).

pub mod client;
mod legacy;
pub mod sse;
mod streamable;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use manifold_api::config::{RemoteUpstream, Transport};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use crate::jsonrpc::Message;

/// How many pages of one upstream's list the gateway follows before it stops trusting it.
const MAX_PAGES: usize = 1000;

/// The largest message the gateway reads from an upstream, as a JSON body or one SSE event.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// What the gateway says about itself when it opens an upstream session on a client's behalf.
#[derive(Debug)]
pub struct Hello {
    /// Protocol revision negotiated with the client; offered to the upstream.
    pub protocol_version: String,
}

/// An upstream's answer to a request: a raw result or a raw JSON-RPC error object.
#[derive(Debug)]
pub enum Reply {
    Result(Box<RawValue>),
    Error(Box<RawValue>),
}

/// Why a request to an upstream failed. Only calls to that upstream are affected.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect: {0}")]
    Unreachable(String),
    #[error("no answer within {0} ms")]
    Timeout(u64),
    #[error("answered HTTP {status}: {excerpt}")]
    Status { status: u16, excerpt: String },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the upstream session has expired")]
    SessionExpired,
}

impl UpstreamError {
    /// What a client is told: the kind of failure, without upstream response bodies, TLS
    /// details or addresses (those go to the log).
    pub fn summary(&self) -> String {
        match self {
            UpstreamError::Unreachable(_) => "cannot connect".into(),
            UpstreamError::Timeout(ms) => format!("no answer within {ms} ms"),
            UpstreamError::Status { status, .. } => format!("answered HTTP {status}"),
            UpstreamError::Protocol(_) => "did not answer as an MCP server".into(),
            UpstreamError::SessionExpired => "lost its session".into(),
        }
    }
}

/// One client session's connection to one upstream.
enum Connection {
    Streamable(streamable::Session),
    Sse(legacy::Session),
}

/// Where a client session keeps its connection to one mount.
#[derive(Default)]
pub struct Slot(Mutex<Arc<OnceCell<Arc<Connection>>>>);

impl Slot {
    fn cell(&self) -> Arc<OnceCell<Arc<Connection>>> {
        self.0.lock().expect("slot lock").clone()
    }

    /// Forgets `stale`, unless another request already replaced it.
    fn reset(&self, stale: &Arc<Connection>) {
        let mut cell = self.0.lock().expect("slot lock");
        if cell.get().is_some_and(|current| Arc::ptr_eq(current, stale)) {
            *cell = Arc::new(OnceCell::new());
        }
    }

    fn take(&self) -> Option<Arc<Connection>> {
        std::mem::take(&mut *self.0.lock().expect("slot lock")).get().cloned()
    }
}

enum Wire {
    Streamable(streamable::Client),
    Sse(legacy::Client),
}

/// A client for one mounted remote MCP server.
pub struct UpstreamClient {
    /// Increases with every client built: a later config's client has a higher serial.
    pub serial: u64,
    wire: Wire,
    timeout: Duration,
    next_id: AtomicU64,
}

impl UpstreamClient {
    /// A client for `config` (connections come from the calling thread's pool).
    pub fn new(config: &RemoteUpstream) -> Result<Self, String> {
        let url = url::Url::parse(&config.url).map_err(|e| format!("invalid upstream URL `{}`: {e}", config.url))?;
        let uri = Uri::try_from(url.as_str()).map_err(|e| format!("invalid upstream URL `{}`: {e}", config.url))?;
        let mut headers = HeaderMap::new();
        for header in &config.headers {
            let name =
                HeaderName::try_from(header.name.as_str()).map_err(|e| format!("header `{}`: {e}", header.name))?;
            let mut value =
                HeaderValue::try_from(header.value.as_str()).map_err(|e| format!("header `{}`: {e}", header.name))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        let wire = match config.transport {
            Transport::StreamableHttp => Wire::Streamable(streamable::Client { uri, headers }),
            Transport::Sse => Wire::Sse(legacy::Client { url, headers }),
        };
        static SERIALS: AtomicU64 = AtomicU64::new(0);
        let serial = SERIALS.fetch_add(1, Ordering::Relaxed);
        Ok(UpstreamClient {
            serial,
            wire,
            timeout: Duration::from_millis(config.timeout_ms),
            next_id: AtomicU64::new(1),
        })
    }

    /// Sends a request in the session held by `slot`, opening it first if needed.
    #[tracing::instrument(level = "debug", skip_all, fields(method = method))]
    pub async fn request(
        &self,
        slot: &Slot,
        hello: &Hello,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<Reply, UpstreamError> {
        let attempt = async {
            for retry in [false, true] {
                let cell = slot.cell();
                let connection = cell.get_or_try_init(|| self.open(hello)).await?;
                match self.send(connection, method, params).await {
                    Err(UpstreamError::SessionExpired) if !retry => slot.reset(connection),
                    other => return other,
                }
            }
            Err(UpstreamError::SessionExpired)
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or(Err(UpstreamError::Timeout(self.timeout.as_millis() as u64)))
    }

    /// Every tool the upstream offers, following its pagination to the end.
    pub async fn list_tools(&self, slot: &Slot, hello: &Hello) -> Result<Vec<Map<String, Value>>, UpstreamError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            tools: Vec<Map<String, Value>>,
            next_cursor: Option<String>,
        }
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = cursor.as_ref().map(|c| crate::jsonrpc::raw(&serde_json::json!({ "cursor": c })));
            let page: Page = match self.request(slot, hello, "tools/list", params.as_deref()).await? {
                Reply::Result(result) => serde_json::from_str(result.get())
                    .map_err(|e| UpstreamError::Protocol(format!("invalid tools/list result: {e}")))?,
                Reply::Error(error) => {
                    return Err(UpstreamError::Protocol(format!("tools/list failed: {}", error.get())));
                }
            };
            tools.extend(page.tools);
            match page.next_cursor {
                Some(next) if !next.is_empty() && cursor.as_ref() != Some(&next) => cursor = Some(next),
                _ => return Ok(tools),
            }
        }
        Err(UpstreamError::Protocol(format!("tools/list did not end within {MAX_PAGES} pages")))
    }

    /// Ends the session held by `slot`, if any (best effort: the client is gone either way).
    pub async fn close(&self, slot: &Slot) {
        let Some(connection) = slot.take() else { return };
        if let (Wire::Streamable(client), Connection::Streamable(session)) = (&self.wire, connection.as_ref()) {
            let _ = tokio::time::timeout(self.timeout, client.close(session)).await;
        }
        // A legacy SSE session ends when its stream is dropped with the connection.
    }

    /// How long one request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(version = %hello.protocol_version))]
    async fn open(&self, hello: &Hello) -> Result<Arc<Connection>, UpstreamError> {
        let params = initialize_params(hello);
        Ok(Arc::new(match &self.wire {
            Wire::Streamable(client) => Connection::Streamable(client.open(self.id(), &params).await?),
            Wire::Sse(client) => Connection::Sse(client.open(self.id(), &params).await?),
        }))
    }

    async fn send(
        &self,
        connection: &Connection,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<Reply, UpstreamError> {
        let id = self.id();
        match (&self.wire, connection) {
            (Wire::Streamable(client), Connection::Streamable(session)) => {
                client.request(Some(session), id, method, params).await.map(|(reply, _)| reply)
            }
            (Wire::Sse(client), Connection::Sse(session)) => client.request(session, id, method, params).await,
            _ => unreachable!("a connection is opened by the client that uses it"),
        }
    }
}

fn initialize_params(hello: &Hello) -> Box<RawValue> {
    crate::jsonrpc::raw(&serde_json::json!({
        "protocolVersion": hello.protocol_version,
        "capabilities": {},
        "clientInfo": { "name": "manifold-gateway", "version": env!("CARGO_PKG_VERSION") },
    }))
}

/// The protocol revision an upstream chose in its `initialize` result.
fn negotiated_version(reply: Reply) -> Result<String, UpstreamError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct InitializeResult {
        protocol_version: String,
    }
    match reply {
        Reply::Result(raw) => serde_json::from_str::<InitializeResult>(raw.get())
            .map(|r| r.protocol_version)
            .map_err(|e| UpstreamError::Protocol(format!("bad initialize result: {e}"))),
        Reply::Error(error) => Err(UpstreamError::Protocol(format!("initialize failed: {}", error.get()))),
    }
}

/// A request body with our own id (ids are per client, so answers on a shared stream match).
fn request_body(id: u64, method: &str, params: Option<&RawValue>) -> String {
    let method = serde_json::to_string(method).expect("strings serialize");
    match params {
        Some(params) => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{method},"params":{}}}"#, params.get()),
        None => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{method}}}"#),
    }
}

fn notification_body(method: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":{}}}"#, serde_json::to_string(method).expect("strings serialize"))
}

/// The reply in `message` if it answers request `id`.
fn reply_to(message: Message, id: u64) -> Option<Reply> {
    let answers = message.id.as_ref().is_some_and(|raw| raw.get() == id.to_string()) && message.method.is_none();
    if !answers {
        return None;
    }
    match (message.result, message.error) {
        (Some(result), _) => Some(Reply::Result(result)),
        (None, Some(error)) => Some(Reply::Error(error)),
        (None, None) => None,
    }
}

/// The start of a response body, for error messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.trim().to_owned()
}
