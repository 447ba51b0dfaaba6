//! The resolved form of a route's authentication, authorization and audit settings: Secrets
//! read (API keys hashed), defaults filled, so a gateway checks callers from this alone.

use serde::{Deserialize, Serialize};

pub use crate::resources::{Action, AuthorizationRule, ClaimMappings, DecisionApi, Effect, JwtAlgorithm};

/// Who may connect to a route.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuthnConfig {
    /// Callers without a credential are served as `anonymous`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_anonymous: bool,
    /// Trusted token issuers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt: Vec<JwtConfig>,
    /// Static API keys, hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<ApiKeysConfig>,
    /// Scopes every caller must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_scopes: Vec<String>,
    /// RFC 9728 protected resource metadata, defaults filled.
    pub metadata: ResourceMetadata,
}

/// One trusted issuer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JwtConfig {
    /// The exact `iss`.
    pub issuer: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// Where the keys are.
    pub jwks: JwksConfig,
    /// Accepted algorithms, never empty.
    pub algorithms: Vec<JwtAlgorithm>,
    /// Claim names for subject, groups and scopes.
    pub claims: ClaimMappings,
    /// Tolerance for `exp` and `nbf`, in seconds.
    pub clock_skew_secs: u64,
}

/// Verification keys.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum JwksConfig {
    /// Fetched (and refreshed) by each gateway.
    Uri {
        /// The JWKS URL.
        uri: String,
    },
    /// A key set, JSON.
    Keys {
        /// The JWKS document.
        jwks: String,
    },
    /// An HMAC shared secret.
    Secret {
        /// The secret's bytes, as text.
        secret: String,
    },
}

/// API keys: hashes, never the keys.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeysConfig {
    /// Extra header carrying a key (lowercase); `Authorization: Bearer` always works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The keys, ordered by principal.
    pub keys: Vec<ApiKeyConfig>,
}

/// One API key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyConfig {
    /// SHA-256 of the key, hex.
    pub sha256: String,
    /// The caller's name.
    pub principal: String,
    /// The caller's groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// RFC 9728 protected resource metadata.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetadata {
    /// The resource identifier; none: the URL the client called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Issuer URLs of the authorization servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// Scopes clients may request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
}

/// What callers may do.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuthzConfig {
    /// Ordered rules; when there are any, what none allows is denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<AuthorizationRule>,
    /// The external decision point, asked after the rules allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalConfig>,
}

/// A policy decision point, resolved.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalConfig {
    /// Where decisions are asked.
    pub url: String,
    /// Its protocol.
    pub api: DecisionApi,
    /// Past this, the call is denied.
    pub timeout_ms: u64,
    /// How long a decision is reused.
    pub cache_ttl_ms: u64,
    /// Bearer token for the decision point, from its Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}
