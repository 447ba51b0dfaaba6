//! `McpRoute`: one MCP endpoint for a tenant, mounting McpServers of its own namespace
//! under prefixes, with per-mount tool filters and renames.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::access::{Audit, Authentication, Authorization};
use super::caching::Caching;
use super::limits::RateLimit;
use super::status::McpRouteStatus;

/// An MCP endpoint that merges the tools of several McpServers, each under its own prefix.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    doc = "McpRoute: one MCP endpoint for a tenant, mounting McpServers of its namespace under prefixes.",
    group = "manifold.dev",
    version = "v1alpha1",
    kind = "McpRoute",
    plural = "mcproutes",
    shortname = "mcpr",
    namespaced,
    status = "McpRouteStatus",
    printcolumn = r#"{"name":"Path","type":"string","jsonPath":".status.path"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Programmed","type":"string","jsonPath":".status.conditions[?(@.type==\"Programmed\")].status"}"#,
    printcolumn = r#"{"name":"Tools","type":"integer","jsonPath":".status.tools"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("size(self.mounts) >= 1").message("mounts must list at least one McpServer"))]
#[x_kube(validation = Rule::new("self.mounts.all(m, (has(m.prefix) && m.prefix == '') || self.mounts.exists_one(n, (has(n.prefix) ? n.prefix : n.server) == (has(m.prefix) ? m.prefix : m.server)))").message("mount prefixes must be unique within a route (a missing prefix defaults to the server name)"))]
#[x_kube(validation = Rule::new("!has(self.incompatibleToolNames) || (has(self.compatibility) && size(self.compatibility) > 0)").message("incompatibleToolNames is only meaningful with compatibility: list the providers (openai, anthropic, gemini) or remove it"))]
#[x_kube(validation = Rule::new("has(self.authentication)").message("authentication is required: list jwt providers or apiKeys, or set authentication.allowAnonymous: true"))]
#[serde(rename_all = "camelCase")]
pub struct McpRouteSpec {
    /// HTTP path of the endpoint. Defaults to `/<namespace>/<name>/mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("self.matches('^/[^?#\\\\s]*$') && size(self) <= 256").message("path must start with '/', have no query, fragment or whitespace, and be at most 256 characters"))]
    pub path: Option<String>,

    /// Host names this route answers for (matched against the Host header, port ignored).
    /// `*.example.com` matches one label. Empty: any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 253)))]
    #[x_kube(validation = Rule::new("self.all(h, h.matches('^(\\\\*\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$'))").message("hostnames must be lowercase DNS names, or '*.' and a name of at least two labels"))]
    pub hostnames: Vec<String>,

    /// Browser origins (`https://app.example.com`, or `*` for any) allowed to call this
    /// endpoint. A request carrying an `Origin` header is refused unless its origin is listed
    /// or is the host the request is addressed to. At most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 253)))]
    #[x_kube(validation = Rule::new("self.all(o, o == '*' || o.matches('^https?://[^/?# ]+$'))").message("allowedOrigins entries must be `*` or a scheme and host such as https://app.example.com, with no path"))]
    pub allowed_origins: Vec<String>,

    /// The McpServers (of this route's namespace) whose tools this endpoint serves. At most 64.
    #[schemars(length(max = 64))]
    pub mounts: Vec<Mount>,

    /// Who may connect. Required: a route serves anonymous callers only when it says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,

    /// What each caller may list, call, get and read. Without it, every authenticated
    /// caller may use everything the route mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,

    /// What the audit log records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<Audit>,

    /// Token buckets the route's requests draw from, checked after authorization; a request
    /// is served only when every limit that counts it has a token. At most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub rate_limits: Vec<RateLimit>,

    /// Tool results and merged lists the gateways keep and serve again, checked after the
    /// rate limits. Nothing is cached without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caching: Option<Caching>,
    /// A cap on this route's requests in flight, and leave to retry tools that declare
    /// `idempotentHint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resilience: Option<super::RouteResilience>,

    /// LLM providers (`openai`, `anthropic`, `gemini`) whose function-calling rules this
    /// route's clients can rely on. For this route only: every tool name breaking a named
    /// provider's rule is shortened or left out (see `incompatibleToolNames`); input schemas
    /// are rewritten only where a named provider would refuse them, with what was lost noted
    /// in the tool's description; `tools/list` answers in one page of up to 1000 tools,
    /// whatever the gateway's page size (some SDKs read only the first page). Each provider
    /// at most once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    #[x_kube(validation = Rule::new("self.all(p, self.exists_one(q, q == p))").message("compatibility must not name a provider twice"))]
    pub compatibility: Vec<crate::compat::Provider>,

    /// What happens to a tool whose client-visible name breaks a rule of a provider listed in
    /// `compatibility` (only meaningful with it). `Shorten` (the default): clients see its
    /// short form (characters outside `[A-Za-z0-9_-]` become `_`, a leading digit or `-` gets
    /// a `_` first, cut to 55 characters, then `_` and the first 8 hex digits of the SHA-256 of
    /// the name), and the route's status lists each short form. `Report`: the tool is left out
    /// for this route's clients and the status names it and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incompatible_tool_names: Option<IncompatibleToolNames>,
}

/// What happens to a tool whose client-visible name breaks a rule of a provider listed in
/// `compatibility` (only meaningful with it). `Shorten` (the default): clients see its short
/// form (characters outside `[A-Za-z0-9_-]` become `_`, a leading digit or `-` gets a `_`
/// first, cut to 55 characters, then `_` and the first 8 hex digits of the SHA-256 of the
/// name), calls of it reach the tool, and the route's `Compatible` condition lists each short
/// form. `Report`: the tool is left out for this route's clients, and the route's
/// `PartiallyInvalid` condition names it and why.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IncompatibleToolNames {
    /// Clients see the name's documented short form; calls of it reach the tool.
    #[default]
    Shorten,
    /// The tool is left out for this route's clients; the route's status names it.
    Report,
}

/// One sub-server mounted into a route.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.prefix) || (self.server.matches('^[a-z0-9]([a-z0-9-]*[a-z0-9])?$') && size(self.server) <= 63)").message("the server name is not a valid prefix (lowercase letters, digits and '-'; at most 63); set prefix explicitly"))]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// Name of an McpServer in this route's namespace.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$') && size(self) <= 253").message("server must be the name of an McpServer (a DNS subdomain)"))]
    pub server: String,

    /// Clients see this server's tools as `<prefix>_<tool>`. Defaults to the server name.
    /// Lowercase letters, digits and '-', so names split unambiguously at the first '_'.
    /// The empty string mounts without a prefix: compile rejects names that then collide when
    /// the servers' tools are known; otherwise the first mount's tool wins and a warning is logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("self == '' || (self.matches('^[a-z0-9]([a-z0-9-]*[a-z0-9])?$') && size(self) <= 63)").message("prefix must be empty or a lowercase RFC 1123 label (letters, digits, '-'; at most 63)"))]
    pub prefix: Option<String>,

    /// Which of the server's tools to expose, by glob on the server's own tool names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolFilter>,

    /// Renames applied before the prefix: server tool name -> name clients see (after the prefix).
    /// Both must be tool names (1-128 letters, digits, '_', '-' or '.'); at most 256 entries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 256))]
    pub rename: BTreeMap<String, String>,
}

/// Glob filters on the server's tool names (`*`, `?`, `[abc]`, `{a,b}`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ToolFilter {
    /// Only tools matching one of these globs are exposed. Empty: all tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Tools matching one of these globs are hidden, even when included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}
