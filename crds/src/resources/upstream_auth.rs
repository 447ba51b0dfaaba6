//! `McpServer.spec.{remote,openapi}.auth`: how the gateway proves who calls when it calls a
//! sub-server. Static credentials (bearer, API key, basic) are read from Secrets once;
//! the other modes obtain or mint a token per call, from a token endpoint, the caller's own
//! token, or a key of a Secret. Compile turns this into headers or a `config::OutboundAuth`.

use std::collections::BTreeMap;

use kube::{KubeSchema, core::Duration};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::server::SecretKeyRef;

/// How the gateway authenticates to the upstream: exactly one mode.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("[has(self.bearer), has(self.apiKey), has(self.basic), has(self.oauth2ClientCredentials), has(self.tokenExchange), has(self.signedJwt), has(self.oauth2AuthorizationCode), has(self.forwardCallerToken)].filter(s, s).size() == 1").message("exactly one of bearer, apiKey, basic, oauth2ClientCredentials, tokenExchange, signedJwt, oauth2AuthorizationCode or forwardCallerToken must be set"))]
#[serde(rename_all = "camelCase")]
pub struct UpstreamAuth {
    /// `Authorization: Bearer <token>`, the token from a Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<BearerAuth>,
    /// An API key in a header (or, for an OpenAPI source only, a query parameter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyAuth>,
    /// HTTP basic authentication from a Secret with keys `username` and `password`
    /// (type `kubernetes.io/basic-auth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    /// OAuth2 client credentials (RFC 6749 §4.4): the gateway gets a token for itself from
    /// `tokenUrl`, caches it until shortly before it expires, and sends it for every caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_client_credentials: Option<ClientCredentialsAuth>,
    /// OAuth2 token exchange (RFC 8693): the caller's inbound JWT is exchanged at `tokenUrl`
    /// for a token for this upstream, cached per caller. Only routes that accept JWTs can
    /// mount such a server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_exchange: Option<TokenExchangeAuth>,
    /// A short-lived JWT the gateway signs itself with a key from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_jwt: Option<SignedJwtAuth>,
    /// Per-user tokens: each caller consents once at the provider (authorization code with
    /// PKCE); the gateway keeps and refreshes that caller's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_authorization_code: Option<AuthorizationCodeAuth>,
    /// The caller's own bearer token, forwarded unchanged, and only when its `aud` names
    /// this upstream. Only routes that accept JWTs can mount such a server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_caller_token: Option<ForwardCallerTokenAuth>,
}

/// A bearer token.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BearerAuth {
    /// The Secret key holding the token.
    pub secret_key_ref: SecretKeyRef,
}

/// An API key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyAuth {
    /// Where the key goes: `header`, or `query` (OpenAPI sources only: in a remote MCP
    /// server's URL the key would show wherever the URL does).
    #[serde(rename = "in")]
    pub in_: ApiKeyLocation,
    /// The header or query parameter name, for example `X-Api-Key` or `api_key`.
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_.-]{1,128}$')").message("name must be 1-128 letters, digits, '_', '-' or '.'"))]
    pub name: String,
    /// The Secret key holding the API key.
    pub secret_key_ref: SecretKeyRef,
}

/// Where an API key is sent.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum ApiKeyLocation {
    Header,
    Query,
}

/// Basic authentication.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// A Secret in the server's namespace with keys `username` and `password`.
    pub secret_ref: super::SecretRef,
}

/// The gateway as an OAuth2 client: where it asks for tokens and how it proves itself
/// there. Shared by `oauth2ClientCredentials`, `tokenExchange` and `oauth2AuthorizationCode`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.clientSecretRef) != has(self.privateKeyRef)").message("exactly one of clientSecretRef or privateKeyRef must be set"))]
#[x_kube(validation = Rule::new("has(self.privateKeyRef) == (has(self.clientAuthentication) && self.clientAuthentication == 'privateKeyJwt')").message("privateKeyRef goes with clientAuthentication: privateKeyJwt, clientSecretRef with clientSecretBasic or clientSecretPost"))]
#[x_kube(validation = Rule::new("has(self.signingAlgorithm) == has(self.privateKeyRef)").message("privateKeyJwt needs signingAlgorithm (RS256 or ES256), and only it takes one"))]
#[x_kube(validation = Rule::new("!has(self.keyId) || has(self.privateKeyRef)").message("keyId applies to privateKeyJwt only"))]
#[serde(rename_all = "camelCase")]
pub struct TokenClientSpec {
    /// The provider's token endpoint, for example
    /// `https://login.example.com/realms/acme/protocol/openid-connect/token`.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#\\\\s]+([/?#]\\\\S*)?$')").message("tokenUrl must be an absolute http:// or https:// URL"))]
    pub token_url: String,

    /// The gateway's client id at the provider.
    #[schemars(length(min = 1, max = 256))]
    pub client_id: String,

    /// The Secret key holding the client secret (`clientSecretBasic`, `clientSecretPost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeyRef>,

    /// The Secret key holding the client's private key, PEM (`privateKeyJwt`): an RSA key
    /// (PKCS#1 or PKCS#8) for RS256, a P-256 key (PKCS#8) for ES256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_ref: Option<SecretKeyRef>,

    /// How the gateway authenticates to the token endpoint: `clientSecretBasic` (default:
    /// HTTP basic with the client id and secret), `clientSecretPost` (both in the form
    /// body) or `privateKeyJwt` (a JWT assertion signed with `privateKeyRef`, RFC 7523).
    #[serde(default)]
    pub client_authentication: ClientAuthenticationMethod,

    /// The algorithm of `privateKeyJwt` assertions (required with it): `RS256` or `ES256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_algorithm: Option<AssertionAlgorithm>,

    /// The assertion's `kid` header for `privateKeyJwt`, as the provider knows the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub key_id: Option<String>,
}

/// How a client authenticates to a token endpoint (RFC 6749 §2.3, RFC 7523 §2.2).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub enum ClientAuthenticationMethod {
    /// `Authorization: Basic` with the form-encoded client id and secret.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT assertion signed with the client's private key.
    PrivateKeyJwt,
}

/// The algorithm of `privateKeyJwt` assertions (required with it): `RS256` or `ES256`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AssertionAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, an RSA key.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
}

/// `oauth2ClientCredentials`: one token for the gateway itself, shared by every caller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientCredentialsAuth {
    #[serde(flatten)]
    pub client: TokenClientSpec,

    /// Scopes asked for (`scope`). At most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256)))]
    pub scopes: Vec<String>,

    /// The `audience` parameter: the upstream as the provider names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub audience: Option<String>,

    /// The `resource` parameter (RFC 8707): the upstream's absolute URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub resource: Option<String>,
}

/// `tokenExchange`: the caller's JWT as the subject token, a token for this upstream back.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenExchangeAuth {
    #[serde(flatten)]
    pub client: TokenClientSpec,

    /// The `audience` parameter: the upstream as the provider names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub audience: Option<String>,

    /// The `resource` parameter (RFC 8707): the upstream's absolute URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub resource: Option<String>,

    /// Scopes asked for (`scope`). At most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256)))]
    pub scopes: Vec<String>,

    /// The `requested_token_type`. Default `urn:ietf:params:oauth:token-type:access_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub requested_token_type: Option<String>,
}

/// `signedJwt`: a JWT minted by the gateway, with `iss`, `aud`, `sub`, `iat`, `exp`, `jti`
/// and the claims mapped from the caller's token.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.mint) || self.mint == 'perCall' || !has(self.lifetime) || duration(self.lifetime) >= duration('2m')").message("mint: perMinute needs a lifetime of at least 2m (a token is reused for up to a minute)"))]
#[serde(rename_all = "camelCase")]
pub struct SignedJwtAuth {
    /// The signing algorithm: `HS256` (a shared secret), `RS256` or `ES256` (a private key).
    pub algorithm: JwtSigningAlgorithm,

    /// The Secret key holding the HMAC secret (HS256, at least 32 bytes) or the PEM private
    /// key (RS256: RSA, PKCS#1 or PKCS#8; ES256: P-256, PKCS#8).
    pub key_ref: SecretKeyRef,

    /// The JWT header's `kid`, so the upstream can pick the verification key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub key_id: Option<String>,

    /// The `iss` claim.
    #[schemars(length(min = 1, max = 2048))]
    pub issuer: String,

    /// The `aud` claim: the upstream as it checks it.
    #[schemars(length(min = 1, max = 2048))]
    pub audience: String,

    /// A fixed `sub` claim. Without it, `sub` is the caller (the route's principal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub subject: Option<String>,

    /// How long a minted token is valid, `exp - iat` (Go duration). Default `5m`, between
    /// `10s` and `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('10s') && duration(self) <= duration('1h')").message("lifetime must be between 10s and 1h"))]
    pub lifetime: Option<Duration>,

    /// `perCall` (default): a fresh token, with a fresh `jti`, for every call. `perMinute`:
    /// one token per caller per minute, reused meanwhile.
    #[serde(default)]
    pub mint: MintPolicy,

    /// Claims copied from the caller's inbound token: claim in the minted JWT -> dotted path
    /// of a claim of the caller's token (for example `email: email`, `tenant: org.id`). A
    /// claim the caller's token lacks is left out. At most 32; the registered claims above
    /// cannot be set here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub claims: BTreeMap<String, String>,
}

/// What the gateway signs a `signedJwt` with.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JwtSigningAlgorithm {
    HS256,
    RS256,
    ES256,
}

/// How often a `signedJwt` is minted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub enum MintPolicy {
    /// A new token for every call.
    #[default]
    PerCall,
    /// One token per caller per minute.
    PerMinute,
}

/// `oauth2AuthorizationCode`: per-user tokens, each caller consenting once.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationCodeAuth {
    #[serde(flatten)]
    pub client: TokenClientSpec,

    /// The provider's authorization endpoint, where a caller is sent to consent.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#\\\\s]+([/?#]\\\\S*)?$')").message("authorizationUrl must be an absolute http:// or https:// URL"))]
    pub authorization_url: String,

    /// The gateway's callback as registered at the provider: an absolute http(s) URL whose
    /// path is `/.manifold/oauth2/callback`, on a host that reaches the gateway (for example
    /// `https://mcp.example.com/.manifold/oauth2/callback`). Callers are sent to consent
    /// through `/.manifold/oauth2/start` on the same origin.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#\\\\s]+/\\\\.manifold/oauth2/callback$')").message("redirectUrl must be an absolute http:// or https:// URL whose path is /.manifold/oauth2/callback"))]
    pub redirect_url: String,

    /// Scopes asked for (`scope`), for example `offline_access` for a refresh token. At
    /// most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 256)))]
    pub scopes: Vec<String>,

    /// The `audience` parameter: the upstream as the provider names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub audience: Option<String>,

    /// The `resource` parameter (RFC 8707): the upstream's absolute URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub resource: Option<String>,
}

/// `forwardCallerToken`: the caller's token, sent on only to the audience it was issued for.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ForwardCallerTokenAuth {
    /// The upstream's audience: the caller's token is forwarded only when its `aud` holds
    /// this value; otherwise the call is refused.
    #[schemars(length(min = 1, max = 2048))]
    pub audience: String,
}
