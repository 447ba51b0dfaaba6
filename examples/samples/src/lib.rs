//! Tiny sample MCP servers built with the official Rust SDK ([`rmcp`]).
//!
//! Two servers are provided, [`Sample::Math`] and [`Sample::Text`]. The
//! project's quickstart mounts them behind the Manifold gateway, and the
//! benchmarks use them as a fast upstream, so they are deliberately minimal:
//!
//! * Streamable HTTP at `http://<addr>/mcp` (POST only).
//! * Stateless: no `Mcp-Session-Id`, no `initialize` needed before
//!   `tools/call` (an `initialize` is still answered, for clients that send
//!   one).
//! * Plain JSON responses (`Content-Type: application/json`), no SSE framing.
//!
//! Both servers expose a tool named `about` on purpose: the gateway's tool
//! prefixes are what tell them apart.
//!
//! Host-header (DNS-rebinding) validation follows the listener: when it is
//! bound to a loopback address only `localhost`, `127.0.0.1` and `::1` hosts
//! are accepted (rmcp's default); on any other address (for example
//! `0.0.0.0` inside a container, reached through a service name) every
//! `Host` is accepted.
#![forbid(unsafe_code)]

use std::{fmt, io, sync::Arc};

use rmcp::{
    Json, ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    schemars, tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::never::NeverSessionManager,
    },
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Path under which every sample serves MCP.
pub const MCP_PATH: &str = "/mcp";

/// One of the bundled sample servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sample {
    /// Server `math`: tools `add`, `multiply`, `about`.
    Math,
    /// Server `text`: tools `upper`, `reverse`, `word_count`, `about`.
    Text,
}

impl Sample {
    /// The MCP server name (`serverInfo.name`): `"math"` or `"text"`.
    pub fn name(self) -> &'static str {
        match self {
            Sample::Math => "math",
            Sample::Text => "text",
        }
    }

    /// Every sample, in a stable order.
    pub fn all() -> [Sample; 2] {
        [Sample::Math, Sample::Text]
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Serves `sample` at `http://<listener addr>/mcp` until the returned future
/// is dropped (or fails to accept).
pub async fn serve(sample: Sample, listener: TcpListener) -> io::Result<()> {
    serve_with_shutdown(sample, listener, CancellationToken::new()).await
}

/// Like [`serve`], but returns once `shutdown` is cancelled and in-flight
/// requests have been answered.
pub async fn serve_with_shutdown(sample: Sample, listener: TcpListener, shutdown: CancellationToken) -> io::Result<()> {
    use axum::serve::ListenerExt as _;

    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_cancellation_token(shutdown.child_token());
    if !listener.local_addr()?.ip().is_loopback() {
        config = config.disable_allowed_hosts();
    }
    let app = match sample {
        Sample::Math => router(MathServer::new(), config),
        Sample::Text => router(TextServer::new(), config),
    };
    let listener = listener.tap_io(|stream| {
        // Small request/response exchanges: don't let Nagle delay them.
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

/// Mounts a stateless, JSON-responding rmcp service at [`MCP_PATH`].
///
/// rmcp asks the factory for a fresh handler on every request in stateless
/// mode; the handlers share their tool router, so that is one `Arc` clone.
fn router<S>(server: S, config: StreamableHttpServerConfig) -> axum::Router
where
    S: ServerHandler + Clone + Send + Sync + 'static,
{
    let service =
        StreamableHttpService::new(move || Ok(server.clone()), Arc::new(NeverSessionManager::default()), config);
    axum::Router::new().route_service(MCP_PATH, service)
}

/// Arguments of the binary arithmetic tools.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct BinaryArgs {
    /// Left operand.
    a: f64,
    /// Right operand.
    b: f64,
}

/// Structured result of the arithmetic tools: `{"result": n}`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct NumberResult {
    /// The computed value.
    result: f64,
}

/// Arguments of the text tools.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct TextArgs {
    /// The input text.
    text: String,
}

/// Structured result of `word_count`: `{"count": n}`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct CountResult {
    /// Number of whitespace-separated words.
    count: u64,
}

/// Turns an arithmetic result into a tool result; an overflow is a tool error
/// (JSON cannot carry infinities).
fn number(result: f64) -> Result<Json<NumberResult>, String> {
    if result.is_finite() {
        Ok(Json(NumberResult { result }))
    } else {
        Err(format!("result is not a finite number ({result})"))
    }
}

#[derive(Debug, Clone)]
struct MathServer {
    tool_router: Arc<ToolRouter<Self>>,
}

#[tool_router]
impl MathServer {
    fn new() -> Self {
        Self { tool_router: Arc::new(Self::tool_router()) }
    }

    #[tool(
        description = "Add two numbers; returns {\"result\": a + b}.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    fn add(&self, Parameters(BinaryArgs { a, b }): Parameters<BinaryArgs>) -> Result<Json<NumberResult>, String> {
        number(a + b)
    }

    #[tool(
        description = "Multiply two numbers; returns {\"result\": a * b}.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    fn multiply(&self, Parameters(BinaryArgs { a, b }): Parameters<BinaryArgs>) -> Result<Json<NumberResult>, String> {
        number(a * b)
    }

    #[tool(
        description = "Describe this server.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    fn about(&self) -> String {
        "math: arithmetic sample server".to_owned()
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "math",
    instructions = "Arithmetic sample server: add and multiply numbers."
)]
impl ServerHandler for MathServer {}

#[derive(Debug, Clone)]
struct TextServer {
    tool_router: Arc<ToolRouter<Self>>,
}

#[tool_router]
impl TextServer {
    fn new() -> Self {
        Self { tool_router: Arc::new(Self::tool_router()) }
    }

    #[tool(
        description = "Convert text to upper case.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    fn upper(&self, Parameters(TextArgs { text }): Parameters<TextArgs>) -> String {
        text.to_uppercase()
    }

    #[tool(
        description = "Reverse text (by Unicode scalar value).",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    fn reverse(&self, Parameters(TextArgs { text }): Parameters<TextArgs>) -> String {
        text.chars().rev().collect()
    }

    #[tool(
        description = "Count whitespace-separated words; returns {\"count\": n}.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    fn word_count(&self, Parameters(TextArgs { text }): Parameters<TextArgs>) -> Json<CountResult> {
        Json(CountResult { count: text.split_whitespace().count() as u64 })
    }

    #[tool(
        description = "Describe this server.",
        annotations(read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    fn about(&self) -> String {
        "text: string sample server".to_owned()
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "text",
    instructions = "String sample server: upper-case, reverse and count words."
)]
impl ServerHandler for TextServer {}
