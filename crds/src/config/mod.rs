//! The `GatewayConfig` model: plain data that `compile` produces and gateways execute.
//! Everything a gateway needs is resolved here (defaults filled, Secrets read), so a gateway
//! never consults the Kubernetes API to serve a request.

mod access;
mod openapi;
mod outbound;
mod resilience;

use std::collections::BTreeMap;

pub use access::*;
pub use openapi::*;
pub use outbound::*;
pub use resilience::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::key::ObjectKey;

pub use crate::resources::Transport;

/// Version of this config format. A gateway refuses a config of a format it does not know.
pub const FORMAT: u32 = 1;

/// Everything every gateway replica serves.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConfig {
    /// Format version (see [`FORMAT`]).
    pub format: u32,
    /// Increases by one each time the content (and so the hash) changes.
    pub generation: u64,
    /// SHA-256 of the routes, hex: equal hashes mean equal content.
    pub hash: String,
    /// Every accepted route, ordered by namespace and name.
    pub routes: Vec<RouteConfig>,
}

/// One MCP endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteConfig {
    /// Tenant: the McpRoute's namespace.
    pub namespace: String,
    /// The McpRoute's name.
    pub name: String,
    /// HTTP path, default filled in.
    pub path: String,
    /// Host names the route answers for; empty for any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Browser origins allowed besides the addressed host; `*` for any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// Mounted sub-servers, in the order the route lists them.
    pub mounts: Vec<MountConfig>,
    /// Who may connect.
    pub authentication: AuthnConfig,
    /// What callers may do; none: everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthzConfig>,
    /// Audit events carry the call's arguments.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub audit_arguments: bool,
    /// Token buckets requests draw from after authorization.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimitConfig>,
    /// The route's cap on requests in flight, and its leave to retry idempotent tools.
    #[serde(default, skip_serializing_if = "RouteResilienceConfig::is_default")]
    pub resilience: RouteResilienceConfig,
    /// Tool results and merged lists kept by the gateway.
    #[serde(default, skip_serializing_if = "CachingConfig::is_empty")]
    pub caching: CachingConfig,
    /// The providers whose rules the route's tool names and schemas meet; none: served as
    /// the upstreams give them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<CompatibilityConfig>,
}

/// A route's compatibility profile (`spec.compatibility`, `spec.incompatibleToolNames`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CompatibilityConfig {
    /// The named providers, each once, at least one.
    pub providers: Vec<crate::compat::Provider>,
    /// Tools whose names a provider refuses are left out (rather than shortened).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub report: bool,
}

/// What a route's gateways keep, defaults filled in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CachingConfig {
    /// Rules for tool results, in order: the first whose globs match a tool decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<ResultCacheConfig>,
    /// How long a caller's merged list page is kept; none: lists are not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lists_ttl_ms: Option<u64>,
}

impl CachingConfig {
    pub fn is_empty(&self) -> bool {
        self.results.is_empty() && self.lists_ttl_ms.is_none()
    }
}

/// Results of the tools matching `tools` (client-visible names, globs), kept `ttl_ms`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResultCacheConfig {
    pub tools: Vec<String>,
    pub ttl_ms: u64,
    /// Served to every caller of the route, not only the one it was fetched for.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
}

/// A rate limit, defaults filled in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitConfig {
    pub name: String,
    pub scope: crate::resources::LimitScope,
    /// Tokens that flow in per `per_ms`.
    pub requests: u32,
    pub per_ms: u64,
    /// The bucket's size.
    pub burst: u32,
    /// Globs on client-visible names; all empty: every request counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

impl Upstream {
    /// The credential obtained per call, if the upstream has one.
    pub fn auth(&self) -> Option<&OutboundAuth> {
        match self {
            Upstream::Remote(remote) => remote.auth.as_ref(),
            Upstream::OpenApi(api) => api.auth.as_ref(),
        }
    }

    /// Retries, circuit breaker and concurrency cap toward this upstream.
    pub fn resilience(&self) -> &ResilienceConfig {
        match self {
            Upstream::Remote(remote) => &remote.resilience,
            Upstream::OpenApi(api) => &api.resilience,
        }
    }
}

impl RouteConfig {
    /// The McpRoute's (namespace, name).
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(&self.namespace, &self.name)
    }
}

/// One sub-server inside a route.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MountConfig {
    /// The McpServer's name: the mount's identity in logs, metrics and errors.
    pub server: String,
    /// Client-visible names are `<prefix>_<name>`; empty for none.
    pub prefix: String,
    /// Which upstream tools are exposed and under which names.
    #[serde(default, skip_serializing_if = "ToolPolicy::is_empty")]
    pub tools: ToolPolicy,
    /// How to reach the sub-server.
    pub upstream: Upstream,
}

/// Tool include/exclude globs and renames, applied to upstream names.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ToolPolicy {
    /// Globs; empty means every tool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Globs of tools to hide.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Upstream name -> client-visible name (before the prefix).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rename: BTreeMap<String, String>,
}

impl ToolPolicy {
    fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty() && self.rename.is_empty()
    }
}

/// How a gateway reaches a sub-server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Upstream {
    /// A remote MCP server.
    Remote(RemoteUpstream),
    /// A REST API described by OpenAPI.
    OpenApi(OpenApiUpstream),
}

/// A remote MCP server with its credentials resolved.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct RemoteUpstream {
    /// The MCP endpoint URL.
    pub url: String,
    /// Wire transport.
    pub transport: Transport,
    /// Headers sent on every request, Secret values already read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// A credential obtained per call (OAuth2, token exchange, a signed JWT...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<OutboundAuth>,
    /// Per-request timeout in milliseconds.
    pub timeout_ms: u64,
    /// Retries, circuit breaker and concurrency cap.
    #[serde(default, skip_serializing_if = "ResilienceConfig::is_default")]
    pub resilience: ResilienceConfig,
}

/// A resolved request header.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

impl GatewayConfig {
    /// A config holding `routes`, numbered after `previous`: the generation moves on only when
    /// the content changes, so re-publishing identical content is a no-op downstream.
    pub fn new(routes: Vec<RouteConfig>, previous: Option<&GatewayConfig>) -> Self {
        let hash = content_hash(&routes);
        let generation = match previous {
            Some(prev) if prev.hash == hash => prev.generation,
            Some(prev) => prev.generation + 1,
            None => 1,
        };
        GatewayConfig { format: FORMAT, generation, hash, routes }
    }

    /// Parses a config (YAML or JSON) and checks its format and hash, so a gateway never
    /// serves a truncated or hand-mangled file.
    pub fn from_text(text: &str) -> Result<Self, ConfigError> {
        let config: GatewayConfig = serde_yaml::from_str(text).map_err(ConfigError::Parse)?;
        config.verify()?;
        Ok(config)
    }

    /// Checks the format and that the routes hash to the declared hash.
    pub fn verify(&self) -> Result<(), ConfigError> {
        if self.format != FORMAT {
            return Err(ConfigError::Format(self.format));
        }
        let actual = content_hash(&self.routes);
        if actual != self.hash {
            return Err(ConfigError::Hash { declared: self.hash.clone(), actual });
        }
        Ok(())
    }
}

/// Why a serialized GatewayConfig cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not a GatewayConfig at all.
    #[error("not a valid GatewayConfig: {0}")]
    Parse(serde_yaml::Error),
    /// Written by a newer (or older) Manifold.
    #[error("GatewayConfig format {0} is not supported (this gateway reads format {FORMAT})")]
    Format(u32),
    /// Content does not match its hash.
    #[error("GatewayConfig hash mismatch: declared {declared}, content hashes to {actual}")]
    Hash {
        /// The hash the file declares.
        declared: String,
        /// The hash of its routes.
        actual: String,
    },
}

fn content_hash(routes: &[RouteConfig]) -> String {
    let bytes = serde_json::to_vec(routes).expect("routes serialize to JSON");
    hex::encode(Sha256::digest(bytes))
}

/// A [`ToolPolicy`] made ready to answer "is this upstream tool exposed, and as what?".
/// Compile uses it to find collisions; gateways build one per mount per snapshot.
#[derive(Clone, Debug)]
pub struct ToolMatcher {
    include: Option<globset::GlobSet>,
    exclude: globset::GlobSet,
    rename: BTreeMap<String, String>,
    renamed_to: BTreeMap<String, String>,
}

impl ToolPolicy {
    /// Compiles the globs. Fails on a glob that does not parse.
    pub fn matcher(&self) -> Result<ToolMatcher, globset::Error> {
        let set = |globs: &[String]| -> Result<globset::GlobSet, globset::Error> {
            let mut builder = globset::GlobSetBuilder::new();
            for glob in globs {
                builder.add(globset::Glob::new(glob)?);
            }
            builder.build()
        };
        Ok(ToolMatcher {
            include: if self.include.is_empty() { None } else { Some(set(&self.include)?) },
            exclude: set(&self.exclude)?,
            rename: self.rename.clone(),
            renamed_to: self.rename.iter().map(|(from, to)| (to.clone(), from.clone())).collect(),
        })
    }
}

impl ToolMatcher {
    /// Whether the filters let this upstream tool through.
    pub fn admits(&self, upstream: &str) -> bool {
        self.include.as_ref().is_none_or(|set| set.is_match(upstream)) && !self.exclude.is_match(upstream)
    }

    /// The name clients see for an upstream tool (before the prefix), or None when hidden.
    pub fn visible<'a>(&'a self, upstream: &'a str) -> Option<&'a str> {
        if !self.admits(upstream) {
            return None;
        }
        Some(self.rename.get(upstream).map_or(upstream, String::as_str))
    }

    /// The upstream tool behind a client-visible name (prefix removed), or None when no
    /// exposed tool can have that name.
    pub fn upstream<'a>(&'a self, visible: &'a str) -> Option<&'a str> {
        let upstream = match self.renamed_to.get(visible) {
            Some(from) => from.as_str(),
            // A renamed tool is no longer reachable under its upstream name.
            None if self.rename.contains_key(visible) => return None,
            None => visible,
        };
        self.admits(upstream).then_some(upstream)
    }
}

/// Whether a `*.` host pattern covers `host`: the wildcard stands for exactly one label
/// (`*.example.com` covers `api.example.com`, not `example.com` nor `a.b.example.com`).
/// Compile's conflict checks and the gateway's routing both use this, so they cannot disagree.
pub fn wildcard_covers(pattern: &str, host: &str) -> bool {
    pattern.strip_prefix("*.").is_some_and(|parent| host.split_once('.').is_some_and(|(_, rest)| rest == parent))
}

/// The client-visible name of a tool: `<prefix>_<name>`, or the name alone without a prefix.
pub fn prefixed(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}_{name}") }
}
