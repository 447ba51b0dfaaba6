//! Compiles a route's `authentication`, `authorization` and `audit`: checks every field,
//! reads the Secrets they name (API keys are hashed on the way), and fills defaults, so a
//! gateway authenticates and authorizes from the compiled config alone.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::secrets;
use crate::config::{
    ApiKeyConfig, ApiKeysConfig, AuthnConfig, AuthzConfig, ExternalConfig, JwksConfig, JwtConfig, ResourceMetadata,
};
use crate::outcome::Problem;
use crate::resources::{
    ApiKeys, Authentication, Authorization, ExternalAuthorization, JwtAlgorithm, JwtProvider, McpRouteSpec,
};

const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
const DEFAULT_PDP_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_PDP_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_PDP_CACHE: Duration = Duration::from_secs(5);
const MAX_PDP_CACHE: Duration = Duration::from_secs(300);
/// Shorter API keys are guessable; shorter HMAC secrets are below what RFC 7518 asks for HS256.
const MIN_API_KEY: usize = 16;
const MIN_HMAC_SECRET: usize = 32;
/// Headers an API key may not be read from: the gateway or the protocol owns them.
const RESERVED_HEADERS: &[&str] = &["host", "content-type", "content-length", "accept", "origin", "cookie"];

/// A route's access settings, resolved.
pub(super) struct Access {
    pub authentication: AuthnConfig,
    pub authorization: Option<AuthzConfig>,
    pub audit_arguments: bool,
}

/// Problems go to `invalid` (the spec is wrong) or `refs` (a Secret is missing).
pub(super) fn compile(
    spec: &McpRouteSpec,
    namespace: &str,
    secrets: &secrets::Index,
    invalid: &mut Vec<Problem>,
    refs: &mut Vec<Problem>,
) -> Access {
    let authentication = match &spec.authentication {
        Some(authentication) => authn(authentication, namespace, secrets, invalid, refs),
        None => {
            invalid.push(Problem::new(
                "spec.authentication",
                "authentication is required: list jwt providers or apiKeys, or set authentication.allowAnonymous: true",
            ));
            AuthnConfig::default()
        }
    };
    let authorization = spec.authorization.as_ref().map(|a| authz(a, namespace, secrets, invalid, refs));
    Access { authentication, authorization, audit_arguments: spec.audit.as_ref().is_some_and(|a| a.include_arguments) }
}

fn authn(
    spec: &Authentication,
    namespace: &str,
    secrets: &secrets::Index,
    invalid: &mut Vec<Problem>,
    refs: &mut Vec<Problem>,
) -> AuthnConfig {
    let field = "spec.authentication";
    if !spec.allow_anonymous && spec.jwt.is_empty() && spec.api_keys.is_none() {
        invalid.push(Problem::new(
            field,
            "authentication must list jwt providers or apiKeys, or set allowAnonymous: true",
        ));
    }
    let mut issuers: HashMap<&str, usize> = HashMap::new();
    let mut jwt = Vec::new();
    for (i, provider) in spec.jwt.iter().enumerate() {
        let at = format!("{field}.jwt[{i}]");
        if let Some(first) = issuers.insert(&provider.issuer, i) {
            invalid.push(Problem::new(
                format!("{at}.issuer"),
                format!("issuer `{}` is already trusted by {field}.jwt[{first}]", provider.issuer),
            ));
        }
        jwt.extend(jwt_provider(provider, &at, namespace, secrets, invalid, refs));
    }
    let api_keys = spec.api_keys.as_ref().and_then(|keys| api_keys(keys, namespace, secrets, invalid, refs));
    let scopes = spec.required_scopes.iter().map(|s| ("requiredScopes", s));
    let supported = spec.oauth.iter().flat_map(|o| o.scopes_supported.iter().map(|s| ("oauth.scopesSupported", s)));
    for (list, scope) in scopes.chain(supported) {
        // RFC 6749 scope-token: printable ASCII without space, `"` or `\`.
        if scope.is_empty()
            || !scope.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        {
            invalid.push(Problem::new(format!("{field}.{list}"), format!("`{scope}` is not an OAuth scope token")));
        }
    }
    let oauth = spec.oauth.clone().unwrap_or_default();
    if let Some(resource) = &oauth.resource
        && !is_http_url(resource)
    {
        invalid.push(Problem::new(
            format!("{field}.oauth.resource"),
            format!("`{resource}` is not an absolute http(s) URL"),
        ));
    }
    for (i, server) in oauth.authorization_servers.iter().enumerate() {
        if !is_http_url(server) {
            invalid.push(Problem::new(
                format!("{field}.oauth.authorizationServers[{i}]"),
                format!("`{server}` is not an absolute http(s) URL"),
            ));
        }
    }
    let metadata = ResourceMetadata {
        resource: oauth.resource,
        authorization_servers: if oauth.authorization_servers.is_empty() {
            spec.jwt.iter().map(|p| p.issuer.clone()).collect()
        } else {
            oauth.authorization_servers
        },
        scopes_supported: if oauth.scopes_supported.is_empty() {
            spec.required_scopes.clone()
        } else {
            oauth.scopes_supported
        },
    };
    AuthnConfig {
        allow_anonymous: spec.allow_anonymous,
        jwt,
        api_keys,
        required_scopes: spec.required_scopes.clone(),
        metadata,
    }
}

fn jwt_provider(
    provider: &JwtProvider,
    at: &str,
    namespace: &str,
    secrets: &secrets::Index,
    invalid: &mut Vec<Problem>,
    refs: &mut Vec<Problem>,
) -> Option<JwtConfig> {
    let problems_before = invalid.len() + refs.len();
    if provider.issuer.is_empty() || provider.issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
        invalid.push(Problem::new(format!("{at}.issuer"), "issuer must be non-empty, without whitespace"));
    }
    if provider.audiences.is_empty() || provider.audiences.iter().any(String::is_empty) {
        invalid.push(Problem::new(
            format!("{at}.audiences"),
            "list at least one audience (a token's `aud` must name this route's resource)",
        ));
    }
    let algorithms =
        if provider.algorithms.is_empty() { vec![JwtAlgorithm::RS256] } else { provider.algorithms.clone() };
    let hmac = algorithms.iter().any(|a| a.is_hmac());
    if hmac && algorithms.iter().any(|a| !a.is_hmac()) {
        invalid.push(Problem::new(
            format!("{at}.algorithms"),
            "HS* algorithms cannot be mixed with public-key algorithms in one provider (a public key would become an HMAC secret)",
        ));
    }
    let clock_skew = provider.clock_skew.map_or(DEFAULT_CLOCK_SKEW, Duration::from);
    if clock_skew > MAX_CLOCK_SKEW || provider.clock_skew.is_some_and(|d| d.is_negative()) {
        invalid.push(Problem::new(format!("{at}.clockSkew"), "clockSkew must be at most 5m"));
    }
    for (name, claim) in [
        ("subject", &provider.claims.subject),
        ("groups", &provider.claims.groups),
        ("scopes", &provider.claims.scopes),
    ] {
        if claim.is_empty() || claim.split('.').any(str::is_empty) {
            invalid.push(Problem::new(format!("{at}.claims.{name}"), format!("`{claim}` is not a claim name")));
        }
    }
    let source = &provider.jwks;
    let jwks = match (&source.uri, &source.inline, &source.secret_ref) {
        (Some(uri), None, None) => {
            if !is_http_url(uri) {
                invalid.push(Problem::new(format!("{at}.jwks.uri"), format!("`{uri}` is not an absolute http(s) URL")));
            }
            if hmac {
                invalid.push(Problem::new(
                    format!("{at}.algorithms"),
                    "HS* algorithms need jwks.secretRef: a shared secret must not come from a URL",
                ));
            }
            Some(JwksConfig::Uri { uri: uri.clone() })
        }
        (None, Some(inline), None) => {
            if hmac {
                invalid.push(Problem::new(
                    format!("{at}.algorithms"),
                    "HS* algorithms need jwks.secretRef: a shared secret must not be written in the route",
                ));
            }
            if let Err(why) = check_key_set(inline, false) {
                invalid.push(Problem::new(format!("{at}.jwks.inline"), why));
            }
            Some(JwksConfig::Keys { jwks: inline.clone() })
        }
        (None, None, Some(reference)) => match secrets.get(namespace, reference) {
            Err(why) => {
                refs.push(Problem::new(format!("{at}.jwks.secretRef"), why));
                None
            }
            Ok(text) if hmac && !text.trim_start().starts_with('{') => {
                if text.len() < MIN_HMAC_SECRET {
                    invalid.push(Problem::new(
                        format!("{at}.jwks.secretRef"),
                        format!("an HMAC secret must be at least {MIN_HMAC_SECRET} bytes"),
                    ));
                }
                Some(JwksConfig::Secret { secret: text })
            }
            Ok(text) => {
                if let Err(why) = check_key_set(&text, hmac) {
                    invalid.push(Problem::new(
                        format!("{at}.jwks.secretRef"),
                        format!("Secret `{}` key `{}`: {why}", reference.name, reference.key),
                    ));
                }
                Some(JwksConfig::Keys { jwks: text })
            }
        },
        _ => {
            invalid.push(Problem::new(format!("{at}.jwks"), "jwks must set exactly one of uri, inline or secretRef"));
            None
        }
    };
    (invalid.len() + refs.len() == problems_before).then(|| JwtConfig {
        issuer: provider.issuer.clone(),
        audiences: provider.audiences.clone(),
        jwks: jwks.expect("checked above"),
        algorithms,
        claims: provider.claims.clone(),
        clock_skew_secs: clock_skew.as_secs(),
    })
}

/// Whether `text` is a JWK Set with at least one key the gateway can use. Symmetric (`oct`)
/// keys are accepted only from a Secret (`secret`).
fn check_key_set(text: &str, secret: bool) -> Result<(), String> {
    let set: Value = serde_json::from_str(text).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
    let keys = set.get("keys").and_then(Value::as_array).ok_or("a JSON Web Key Set needs a `keys` array")?;
    for (i, key) in keys.iter().enumerate() {
        let has = |field: &str| key.get(field).is_some_and(Value::is_string);
        let usable = match key.get("kty").and_then(Value::as_str) {
            Some("RSA") => has("n") && has("e"),
            Some("EC") => has("crv") && has("x") && has("y"),
            Some("OKP") => key.get("crv").and_then(Value::as_str) == Some("Ed25519") && has("x"),
            Some("oct") if secret => has("k"),
            Some("oct") => return Err(format!("keys[{i}] is a symmetric key: those belong in a Secret")),
            _ => false,
        };
        if !usable {
            return Err(format!("keys[{i}] is not an RSA, EC or Ed25519 public key with all its parameters"));
        }
    }
    if keys.is_empty() { Err("the key set has no keys".into()) } else { Ok(()) }
}

fn api_keys(
    spec: &ApiKeys,
    namespace: &str,
    secrets: &secrets::Index,
    invalid: &mut Vec<Problem>,
    refs: &mut Vec<Problem>,
) -> Option<ApiKeysConfig> {
    let at = "spec.authentication.apiKeys";
    let header = spec.header.as_ref().map(|h| h.to_ascii_lowercase());
    if let Some(header) = &header
        && (RESERVED_HEADERS.contains(&header.as_str())
            || header.starts_with("mcp-")
            || header.is_empty()
            || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        invalid.push(Problem::new(format!("{at}.header"), format!("`{header}` cannot carry API keys")));
    }
    let entries = match secrets.entries(namespace, &spec.secret_ref.name) {
        Ok(entries) => entries,
        Err(why) => {
            refs.push(Problem::new(format!("{at}.secretRef"), why));
            return None;
        }
    };
    let secret = &spec.secret_ref.name;
    let mut keys = Vec::new();
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    for (principal, value) in entries {
        #[derive(serde::Deserialize)]
        struct Entry {
            key: String,
            #[serde(default)]
            groups: Vec<String>,
        }
        let (key, groups) = match serde_yaml::from_str::<Entry>(&value) {
            Ok(entry) => (entry.key, entry.groups),
            Err(_) => (value.trim().to_owned(), Vec::new()),
        };
        if key.len() < MIN_API_KEY || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            invalid.push(Problem::new(
                format!("{at}.secretRef"),
                format!(
                    "Secret `{secret}` entry `{principal}`: a key must be at least {MIN_API_KEY} characters without whitespace"
                ),
            ));
            continue;
        }
        let sha256 = hex::encode(Sha256::digest(key.as_bytes()));
        if let Some(first) = hashes.insert(sha256.clone(), principal.clone()) {
            invalid.push(Problem::new(
                format!("{at}.secretRef"),
                format!("Secret `{secret}` entries `{first}` and `{principal}` hold the same key"),
            ));
            continue;
        }
        keys.push(ApiKeyConfig { sha256, principal, groups });
    }
    if keys.is_empty() {
        invalid.push(Problem::new(format!("{at}.secretRef"), format!("Secret `{secret}` holds no usable key")));
    }
    Some(ApiKeysConfig { header, keys })
}

fn authz(
    spec: &Authorization,
    namespace: &str,
    secrets: &secrets::Index,
    invalid: &mut Vec<Problem>,
    refs: &mut Vec<Problem>,
) -> AuthzConfig {
    let at = "spec.authorization";
    for (i, rule) in spec.rules.iter().enumerate() {
        let globs = [
            ("principals", &rule.principals),
            ("tools", &rule.tools),
            ("prompts", &rule.prompts),
            ("resources", &rule.resources),
        ];
        for (field, globs) in globs {
            for glob in globs {
                if let Err(e) = globset::Glob::new(glob) {
                    invalid
                        .push(Problem::new(format!("{at}.rules[{i}].{field}"), format!("invalid glob `{glob}`: {e}")));
                }
            }
        }
    }
    let external = spec.external.as_ref().map(|e| external(e, namespace, secrets, invalid, refs));
    AuthzConfig { rules: spec.rules.clone(), external: external.flatten() }
}

fn external(
    spec: &ExternalAuthorization,
    namespace: &str,
    secrets: &secrets::Index,
    invalid: &mut Vec<Problem>,
    refs: &mut Vec<Problem>,
) -> Option<ExternalConfig> {
    let at = "spec.authorization.external";
    if !is_http_url(&spec.url) {
        invalid.push(Problem::new(format!("{at}.url"), format!("`{}` is not an absolute http(s) URL", spec.url)));
    }
    let timeout = spec.timeout.map_or(DEFAULT_PDP_TIMEOUT, Duration::from);
    if timeout.is_zero() || timeout > MAX_PDP_TIMEOUT || spec.timeout.is_some_and(|d| d.is_negative()) {
        invalid.push(Problem::new(format!("{at}.timeout"), "timeout must be greater than 0s and at most 30s"));
    }
    let cache_ttl = spec.cache_ttl.map_or(DEFAULT_PDP_CACHE, Duration::from);
    if cache_ttl > MAX_PDP_CACHE || spec.cache_ttl.is_some_and(|d| d.is_negative()) {
        invalid.push(Problem::new(format!("{at}.cacheTtl"), "cacheTtl must be at most 5m"));
    }
    let token = match &spec.secret_ref {
        None => None,
        Some(reference) => match secrets.get(namespace, reference) {
            Ok(token) => Some(token.trim().to_owned()),
            Err(why) => {
                refs.push(Problem::new(format!("{at}.secretRef"), why));
                return None;
            }
        },
    };
    Some(ExternalConfig {
        url: spec.url.clone(),
        api: spec.api,
        timeout_ms: timeout.as_millis() as u64,
        cache_ttl_ms: cache_ttl.as_millis() as u64,
        token,
    })
}

fn is_http_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}
