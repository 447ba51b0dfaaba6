//! Who may use a route and what each caller may do: `McpRoute.spec.authentication` (JWT
//! providers, API keys, OAuth protected-resource metadata), `spec.authorization` (ordered
//! rules and an external decision point) and `spec.audit`.

use std::collections::BTreeMap;

use kube::KubeSchema;
use kube::core::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretKeyRef;

/// How callers prove who they are. Every route must say: list JWT providers or API keys,
/// or set `allowAnonymous: true`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("(has(self.allowAnonymous) && self.allowAnonymous) || (has(self.jwt) && size(self.jwt) > 0) || has(self.apiKeys)").message("authentication must list jwt providers or apiKeys, or set allowAnonymous: true"))]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// Serve callers that present no credential, as the principal `anonymous`. Where the
    /// route also takes JWTs or API keys, a credential that is presented is still checked,
    /// and refused when invalid.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_anonymous: bool,

    /// JWT issuers whose bearer tokens are accepted (the first provider whose issuer matches
    /// the token's `iss` checks it). At most 8.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub jwt: Vec<JwtProvider>,

    /// Static API keys, read from a Secret of the route's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<ApiKeys>,

    /// OAuth 2.0 protected resource metadata (RFC 9728), served at
    /// `/.well-known/oauth-protected-resource<route path>` and named in every 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthMetadata>,

    /// Scopes every caller must hold; a caller without them gets 403 `insufficient_scope`.
    /// API keys hold no scopes. At most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 128)))]
    pub required_scopes: Vec<String>,
}

/// One trusted token issuer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JwtProvider {
    /// The exact `iss` of its tokens.
    #[schemars(length(min = 1, max = 2048))]
    pub issuer: String,

    /// Accepted `aud` values (RFC 8707: this route's resource URL, usually). At least one.
    #[schemars(length(min = 1, max = 16), inner(length(max = 2048)))]
    pub audiences: Vec<String>,

    /// Where the verification keys come from.
    pub jwks: JwksSource,

    /// Accepted signature algorithms. Default `[RS256]`. HS256/384/512 need `jwks.secretRef`
    /// and cannot be mixed with public-key algorithms in one provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 12))]
    pub algorithms: Vec<JwtAlgorithm>,

    /// Which claims name the caller, its groups and its scopes.
    #[serde(default)]
    pub claims: ClaimMappings,

    /// Tolerance for `exp` and `nbf` (Go duration). Default `60s`, at most `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('0s') && duration(self) <= duration('5m')").message("clockSkew must be between 0s and 5m"))]
    pub clock_skew: Option<Duration>,
}

/// A JSON Web Key Set, from exactly one place.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("[has(self.uri), has(self.inline), has(self.secretRef)].filter(s, s).size() == 1").message("jwks must set exactly one of uri, inline or secretRef"))]
#[serde(rename_all = "camelCase")]
pub struct JwksSource {
    /// An https (or http) URL the gateway fetches, caches as `Cache-Control` allows, and
    /// fetches again when a token names an unknown `kid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub uri: Option<String>,
    /// The key set itself, as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub inline: Option<String>,
    /// A Secret key holding a key set (JSON), or for HS* algorithms the shared secret itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

/// A JWS algorithm. `none` does not exist here.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs, clippy::upper_case_acronyms)]
pub enum JwtAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl JwtAlgorithm {
    /// Whether this is a shared-secret (HMAC) algorithm.
    pub fn is_hmac(self) -> bool {
        matches!(self, JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512)
    }
}

/// Claim names read from a token. Dotted names (`realm_access.roles`) reach into objects.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimMappings {
    /// The caller's name. Default `sub`.
    #[serde(default = "sub")]
    pub subject: String,
    /// The caller's groups: an array of strings, or one string. Default `groups`.
    #[serde(default = "groups")]
    pub groups: String,
    /// The caller's scopes: a space-separated string (`scope`, RFC 8693) or an array
    /// (`scp`). Default `scope`.
    #[serde(default = "scope")]
    pub scopes: String,
}

impl Default for ClaimMappings {
    fn default() -> Self {
        ClaimMappings { subject: sub(), groups: groups(), scopes: scope() }
    }
}

fn sub() -> String {
    "sub".into()
}
fn groups() -> String {
    "groups".into()
}
fn scope() -> String {
    "scope".into()
}

/// API keys from a Secret: each entry is one principal. The entry's name is the principal's
/// name; its value is the key, or YAML `{key: <key>, groups: [..]}`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeys {
    /// The Secret, in the route's namespace.
    pub secret_ref: SecretRef,
    /// Header carrying the key instead of `Authorization: Bearer <key>` (for example
    /// `X-API-Key`). `Authorization: Bearer` is always accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9-]{1,64}$')").message("header must be an HTTP header name"))]
    pub header: Option<String>,
}

/// A whole Secret in the referring object's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecretRef {
    /// Name of the Secret.
    pub name: String,
}

/// What the route tells OAuth clients (RFC 9728 protected resource metadata).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OAuthMetadata {
    /// The resource identifier clients request tokens for (RFC 8707), for example
    /// `https://mcp.example.com/acme/tools/mcp`. Default: the URL the client called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^?#\\\\s]+$')").message("resource must be an absolute http(s) URL without query or fragment"))]
    pub resource: Option<String>,
    /// Authorization servers (issuer URLs). Default: the issuers of `jwt`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 2048)))]
    pub authorization_servers: Vec<String>,
    /// Scopes clients may request. Default: `requiredScopes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 128)))]
    pub scopes_supported: Vec<String>,
}

/// What each caller may do. With rules, anything no rule allows is denied; lists show only
/// what the caller may use.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// Checked in order; the first rule matching the caller, the action and the target
    /// decides. At most 128.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub rules: Vec<AuthorizationRule>,

    /// A policy decision point asked about every call, read and get the rules allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalAuthorization>,
}

/// One rule: who (all given conditions must hold), what actions, on which targets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationRule {
    /// `Allow` or `Deny`.
    pub effect: Effect,
    /// Caller names (globs). Empty: any caller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub principals: Vec<String>,
    /// The caller is in at least one of these groups. Empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub groups: Vec<String>,
    /// The caller holds every one of these scopes. Empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub scopes: Vec<String>,
    /// Token claims that must have these values (a string claim equal to it, or an array
    /// claim containing it). Dotted names reach into objects.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub claims: BTreeMap<String, String>,
    /// `call` (tools), `get` (prompts), `read` (resources), `list`. Empty: all. Allowing
    /// call, get or read also allows listing; denying `list` only hides from lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
    /// Client-visible tool names (globs, for example `github_*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub tools: Vec<String>,
    /// Client-visible prompt names (globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub prompts: Vec<String>,
    /// Client-visible resource URIs and templates (globs; `*` crosses `/`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub resources: Vec<String>,
}

/// A rule's decision.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Effect {
    Allow,
    Deny,
}

/// What a caller does to a component.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub enum Action {
    Call,
    Get,
    Read,
    List,
}

/// An HTTP policy decision point.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAuthorization {
    /// Where decisions are asked: Permit's PDP `/allowed`, or an OPA data API path such as
    /// `http://opa:8181/v1/data/manifold/allow`.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^\\\\s]+$')").message("url must be an absolute http(s) URL"))]
    pub url: String,
    /// `permit` (body `{user, action, resource, context}`, answer `{allow}`) or `opa` (body
    /// `{input: …}`, answer `{result}`).
    pub api: DecisionApi,
    /// How long a decision may take; past it the call is denied. Default `1s`, at most `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s') && duration(self) <= duration('30s')").message("timeout must be greater than 0s and at most 30s"))]
    pub timeout: Option<Duration>,
    /// How long a decision is reused for the same caller, action and target. Default `5s`,
    /// `0s` to ask every time, at most `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('0s') && duration(self) <= duration('5m')").message("cacheTtl must be between 0s and 5m"))]
    pub cache_ttl: Option<Duration>,
    /// A Secret key holding a bearer token for the decision point (Permit's API key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

/// The protocol of a policy decision point.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub enum DecisionApi {
    Permit,
    Opa,
}

/// The audit log: one event per `tools/call`, `resources/read` and `prompts/get`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    /// Include the call's arguments in its event. Off by default: arguments may hold
    /// personal data.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_arguments: bool,
}
