//! The resolved form of `McpServer.spec.{remote,openapi}.auth` beyond static headers: how a
//! gateway proves who calls when it calls a sub-server, Secrets read. Static credentials
//! (bearer, API key, basic) compile into the upstream's headers and never appear here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A credential obtained (or minted) per call, sent as `Authorization: Bearer <token>`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum OutboundAuth {
    /// OAuth2 client credentials: one token per replica and mount, shared by every caller.
    ClientCredentials(ClientCredentialsConfig),
    /// RFC 8693 token exchange: the caller's inbound JWT for a token for this upstream.
    TokenExchange(TokenExchangeConfig),
    /// A short-lived JWT the gateway signs itself.
    SignedJwt(SignedJwtConfig),
    /// Per-user tokens from an authorization-code flow with PKCE, after the user consents.
    AuthorizationCode(AuthorizationCodeConfig),
    /// The caller's own inbound token, only when this upstream is among its audiences.
    ForwardCallerToken(ForwardConfig),
}

/// How the gateway calls a token endpoint, and authenticates to it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct TokenClient {
    /// The token endpoint (http or https).
    pub token_url: String,
    pub client_id: String,
    pub authentication: ClientAuthentication,
}

/// How a client proves itself to the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(tag = "method", rename_all = "camelCase")]
pub enum ClientAuthentication {
    /// `Authorization: Basic` with the form-encoded id and secret.
    ClientSecretBasic { secret: String },
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost { secret: String },
    /// A JWT assertion signed with the client's private key (PEM), `RS256` or `ES256`.
    PrivateKeyJwt {
        private_key: String,
        algorithm: SigningAlgorithm,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
    },
}

/// What the gateway signs with.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    HS256,
    RS256,
    ES256,
}

/// `grant_type=client_credentials`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ClientCredentialsConfig {
    pub client: TokenClient,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Sent as `audience` (the parameter most providers read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Sent as `resource` (RFC 8707).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`, the caller's JWT as the
/// subject token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct TokenExchangeConfig {
    pub client: TokenClient,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// `requested_token_type`; default `urn:ietf:params:oauth:token-type:access_token`.
    pub requested_token_type: String,
}

/// A JWT minted by the gateway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct SignedJwtConfig {
    pub algorithm: SigningAlgorithm,
    /// The HMAC secret (HS256) or the PEM private key (RS256, ES256).
    pub key: String,
    /// The JWT header's `kid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub issuer: String,
    pub audience: String,
    /// A fixed `sub`; none: the caller's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `exp - iat`, seconds.
    pub lifetime_secs: u64,
    /// A fresh token per call (a new `jti` each time); false: one per caller per minute.
    pub per_call: bool,
    /// Claim in the minted JWT -> claim of the caller's inbound token copied into it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
}

/// `response_type=code` with PKCE (S256), then `grant_type=authorization_code` and
/// `refresh_token`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationCodeConfig {
    pub client: TokenClient,
    /// The provider's authorization endpoint, where the user is sent to consent.
    pub authorization_url: String,
    /// The gateway's callback as registered at the provider: an absolute URL whose path is
    /// `/.manifold/oauth2/callback`.
    pub redirect_url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// Forward the caller's bearer token unchanged.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ForwardConfig {
    /// The upstream's audience: the caller's token is sent only if its `aud` holds it.
    pub audience: String,
}

impl OutboundAuth {
    /// The mode's name in errors and docs (as in the McpServer spec).
    pub fn mode(&self) -> &'static str {
        match self {
            OutboundAuth::ClientCredentials(_) => "oauth2ClientCredentials",
            OutboundAuth::TokenExchange(_) => "tokenExchange",
            OutboundAuth::SignedJwt(_) => "signedJwt",
            OutboundAuth::AuthorizationCode(_) => "oauth2AuthorizationCode",
            OutboundAuth::ForwardCallerToken(_) => "forwardCallerToken",
        }
    }

    /// Whether what the upstream sees depends on who calls: everything but client credentials
    /// and a signed JWT with a fixed subject and no claims of the caller. Results of such a
    /// mount are never shared between callers.
    pub fn speaks_for_caller(&self) -> bool {
        match self {
            OutboundAuth::ClientCredentials(_) => false,
            OutboundAuth::SignedJwt(jwt) => jwt.subject.is_none() || !jwt.claims.is_empty(),
            _ => true,
        }
    }

    /// Whether the mode needs the caller's inbound JWT.
    pub fn needs_caller_jwt(&self) -> bool {
        matches!(self, OutboundAuth::TokenExchange(_) | OutboundAuth::ForwardCallerToken(_))
    }
}
