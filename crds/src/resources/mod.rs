//! The custom resources platform teams apply: `McpServer` (one sub-server) and `McpRoute`
//! (one tenant endpoint mounting several sub-servers). Types here are what `kubectl explain`
//! shows; CEL rules on them are what the API server rejects before any controller runs.

mod access;
mod caching;
mod limits;
mod openapi;
mod resilience;
mod route;
mod server;
mod status;
mod upstream_auth;

pub use access::{
    Action, ApiKeys, Audit, Authentication, Authorization, AuthorizationRule, ClaimMappings, DecisionApi, Effect,
    ExternalAuthorization, JwksSource, JwtAlgorithm, JwtProvider, OAuthMetadata, SecretRef,
};
pub use caching::{CacheScope, Caching, ListCache, ResultCache};
pub use limits::{LimitScope, RateLimit};
pub use openapi::{ComponentType, ConfigMapKeyRef, HttpMethod, OpenApiSource, OperationOverride, RouteMap};
pub use resilience::{CircuitBreaker, Concurrency, Resilience, Retries, RouteResilience};
pub use route::{IncompatibleToolNames, McpRoute, McpRouteSpec, Mount, ToolFilter};
pub use server::{HeaderSource, HeaderValueSource, McpServer, McpServerSpec, RemoteSource, SecretKeyRef, Transport};
pub use status::{McpRouteStatus, McpServerStatus};
pub use upstream_auth::{
    ApiKeyAuth, ApiKeyLocation, AssertionAlgorithm, AuthorizationCodeAuth, BasicAuth, BearerAuth,
    ClientAuthenticationMethod, ClientCredentialsAuth, ForwardCallerTokenAuth, JwtSigningAlgorithm, MintPolicy,
    SignedJwtAuth, TokenClientSpec, TokenExchangeAuth, UpstreamAuth,
};

/// API group of every Manifold resource.
pub const GROUP: &str = "manifold.dev";
/// The one served version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "manifold.dev/v1alpha1";

/// The fields that name a Secret of the referrer's namespace (`{name}` or `{name, key}`),
/// wherever they are in a spec: what the operator watches and reads for compile.
pub const SECRET_REFERENCES: [&str; 5] = ["secretRef", "secretKeyRef", "clientSecretRef", "privateKeyRef", "keyRef"];
/// The fields that name a ConfigMap of the referrer's namespace.
pub const CONFIG_MAP_REFERENCES: [&str; 1] = ["configMapRef"];

/// RFC 1123 label: what a mount prefix must be, so that `<prefix>_<name>` splits at the first `_`.
pub const PREFIX_PATTERN: &str = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$";
/// A lowercase DNS name, or `*.` followed by a name of at least two labels.
pub const HOSTNAME_PATTERN: &str = r"^(\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$";
/// Characters and length MCP allows in a tool name (2025-11-25 revision).
pub const TOOL_NAME_PATTERN: &str = "^[A-Za-z0-9_.-]{1,128}$";
