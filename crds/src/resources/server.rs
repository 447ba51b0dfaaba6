//! `McpServer`: one sub-server a route can mount. Exactly one source: `remote` (an MCP
//! server reached over streamable HTTP or legacy SSE) or `openapi` (a REST API described by
//! OpenAPI, see `openapi.rs`).

use kube::{CustomResource, KubeSchema, core::Duration};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::McpServerStatus;

/// A sub-server that McpRoutes in the same namespace can mount under a prefix.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    doc = "McpServer: one MCP sub-server (a remote MCP server, or a REST API described by OpenAPI) that McpRoutes of its namespace can mount.",
    group = "manifold.dev",
    version = "v1alpha1",
    kind = "McpServer",
    plural = "mcpservers",
    shortname = "mcps",
    namespaced,
    status = "McpServerStatus",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.remote.url"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Tools","type":"integer","jsonPath":".status.tools"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("[has(self.remote), has(self.openapi)].filter(s, s).size() == 1").message("exactly one source must be set: remote or openapi"))]
#[serde(rename_all = "camelCase")]
pub struct McpServerSpec {
    /// A remote MCP server, reached over streamable HTTP (default) or legacy SSE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteSource>,

    /// A REST API described by an OpenAPI 3.0 or 3.1 document, its operations served as
    /// tools, resources and resource templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<super::OpenApiSource>,

    /// Retries, circuit breaker and concurrency cap toward this server. Defaults apply
    /// without it (see docs/traffic.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resilience: Option<super::Resilience>,
}

/// Where a remote MCP server lives and how to talk to it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.auth) || !has(self.auth.apiKey) || self.auth.apiKey.__in__ == 'header'").message("a remote server takes an API key in a header only (in: header): in the URL's query it would show wherever the URL does"))]
#[serde(rename_all = "camelCase")]
pub struct RemoteSource {
    /// Absolute http(s) URL of the server's MCP endpoint, for example
    /// `http://weather.tools.svc:8080/mcp` (streamable HTTP) or `http://legacy:8000/sse` (SSE).
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#\\\\s]+([/?#]\\\\S*)?$')").message("url must be an absolute http:// or https:// URL"))]
    pub url: String,

    /// Wire transport: `streamableHttp` (MCP 2025-03-26 and later) or `sse` (the legacy
    /// HTTP+SSE transport of 2024-11-05).
    #[serde(default)]
    pub transport: Transport,

    /// Static headers sent on every request to this server, literal or read from a Secret key
    /// in the server's namespace (for example an upstream API token).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub headers: Vec<HeaderSource>,

    /// How the gateway authenticates to this server: static credentials or a token per
    /// call, from Secrets in the server's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<super::UpstreamAuth>,

    /// How long one request to this server may take before the call fails (Go duration,
    /// for example `30s`). Default `30s`, at most `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s') && duration(self) <= duration('1h')").message("timeout must be greater than 0s and at most 1h"))]
    pub timeout: Option<Duration>,
}

/// The transport an upstream MCP server speaks.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Streamable HTTP: one POST per message, JSON or SSE responses, optional sessions.
    #[default]
    #[serde(rename = "streamableHttp")]
    StreamableHttp,
    /// Legacy HTTP+SSE: a long-lived GET event stream plus a POST endpoint it announces.
    #[serde(rename = "sse")]
    Sse,
}

/// One request header sent to the upstream.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)").message("exactly one of value or valueFrom must be set"))]
#[serde(rename_all = "camelCase")]
pub struct HeaderSource {
    /// Header name, for example `Authorization` or `X-Api-Key`.
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9-]{1,128}$')").message("header name must be 1-128 letters, digits or '-'"))]
    pub name: String,
    /// Literal value. Use `valueFrom` for credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Read the value from a Secret key in this server's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<HeaderValueSource>,
}

/// Where a header value comes from.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HeaderValueSource {
    /// A key of a Secret in the server's namespace.
    pub secret_key_ref: SecretKeyRef,
}

/// A key of a Secret in the referring object's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret's data.
    pub key: String,
}
