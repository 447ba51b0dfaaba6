//! Caching of an McpRoute: which tool results are kept and for how long, and whether the
//! merged lists are.

use kube::KubeSchema;
use kube::core::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the route's gateways keep and serve again without asking the mount.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Caching {
    /// Tool results kept, by rule: the first rule whose `tools` match the called tool decides.
    /// Only successful results are kept (never `isError`, never an error). At most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub results: Vec<ResultCache>,
    /// Keeps each caller's merged `tools/list`, `prompts/list`, `resources/list` and
    /// `resources/templates/list` pages for a short time. Without it, every list asks every
    /// mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lists: Option<ListCache>,
}

/// Results of matching tools, kept for `ttl`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResultCache {
    /// Client-visible tool names (globs such as `weather_*`). 1 to 64.
    #[schemars(length(min = 1, max = 64), inner(length(max = 256)))]
    pub tools: Vec<String>,
    /// How long a result is served again; more than 0s, at most 24h. An upstream's shorter
    /// `ttlMs` hint wins.
    #[x_kube(validation = Rule::new("duration(self) > duration('0s') && duration(self) <= duration('24h')").message("ttl must be greater than 0s and at most 24h"))]
    pub ttl: Duration,
    /// Who a kept result is served to: `Principal` (default: only the caller it was fetched
    /// for) or `Public` (every caller of this route: only for results that hold nothing
    /// specific to the caller; an upstream marking a result private still keeps it per caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<CacheScope>,
}

/// Merged lists, kept per caller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListCache {
    /// How long a caller's merged list page is served again; more than 0s, at most 1h. A
    /// mount's change notification or a config change ends it sooner, and so does a
    /// shorter `ttlMs` of a mount.
    #[x_kube(validation = Rule::new("duration(self) > duration('0s') && duration(self) <= duration('1h')").message("lists ttl must be greater than 0s and at most 1h"))]
    pub ttl: Duration,
}

/// Who may be served a kept result.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CacheScope {
    /// Only the caller (principal) it was fetched for.
    #[default]
    Principal,
    /// Every caller of the route.
    Public,
}
