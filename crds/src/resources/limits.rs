//! Rate limits of an McpRoute: token buckets some of its requests draw from.

use kube::KubeSchema;
use kube::core::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A token bucket: `requests` per `per` flow in, up to `burst` wait in it, and each request it
/// counts takes one. A request finding it empty is refused with the time until a token comes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Names the limit in answers, logs and metrics; unique in the route. Lowercase letters,
    /// digits and '-'; at most 63.
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("name must be a lowercase RFC 1123 label (letters, digits, '-'; at most 63)"))]
    pub name: String,
    /// Whose requests share the bucket: `Route` (every caller's, on this route), `Principal`
    /// (each caller's own, on this route) or `Tenant` (every caller's, on every route of the
    /// namespace that declares a limit of this name with the same numbers).
    pub scope: LimitScope,
    /// Requests per `per`: the rate the bucket refills at. 1 to 1,000,000.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub requests: i32,
    /// The period `requests` are counted over. Default `1s`; more than 0s, at most 24h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s') && duration(self) <= duration('24h')").message("per must be greater than 0s and at most 24h"))]
    pub per: Option<Duration>,
    /// Requests allowed at once after a quiet spell: the bucket's size. Default `requests`;
    /// 1 to 1,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub burst: Option<i32>,
    /// Only calls of these tools count (client-visible names, globs such as `github_*`). With
    /// no `tools`, `prompts` or `resources`, every request counts: lists and pings too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 256)))]
    pub tools: Vec<String>,
    /// Only gets of these prompts count (globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 256)))]
    pub prompts: Vec<String>,
    /// Only reads of these resources count (URI globs; `*` crosses `/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 2048)))]
    pub resources: Vec<String>,
}

/// Whose requests share one bucket.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitScope {
    /// Every caller of the route.
    Route,
    /// Each caller (principal) of the route on their own.
    Principal,
    /// Every caller of every route of the namespace declaring the same limit.
    Tenant,
}
