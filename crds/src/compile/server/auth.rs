//! Compiles `spec.{remote,openapi}.auth`: a static credential becomes one header (or query
//! parameter) value, every other mode a [`OutboundAuth`] with its Secret values read and its
//! keys parsed, so a gateway never meets a key it cannot sign with. Each problem names its
//! field; no Secret value ever enters a message (a jsonwebtoken error is never quoted: a
//! base64 error would show a byte of the key).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::EncodingKey;

use super::{Found, RESERVED_HEADERS, check_url, secrets};
use crate::config::{
    AuthorizationCodeConfig, ClientAuthentication, ClientCredentialsConfig, ForwardConfig, OutboundAuth,
    SignedJwtConfig, SigningAlgorithm, TokenClient, TokenExchangeConfig,
};
use crate::outcome::Problem;
use crate::resources::{
    ApiKeyLocation, AssertionAlgorithm, AuthorizationCodeAuth, ClientAuthenticationMethod, ClientCredentialsAuth,
    JwtSigningAlgorithm, MintPolicy, SecretKeyRef, SignedJwtAuth, TokenClientSpec, TokenExchangeAuth, UpstreamAuth,
};

/// RFC 8693's default, and what a plain OAuth2 access token is.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Where the gateway receives authorization codes, on any host.
pub const CALLBACK_PATH: &str = "/.manifold/oauth2/callback";
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
const MIN_LIFETIME: Duration = Duration::from_secs(10);
const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// A `perMinute` token is reused for up to a minute, and must outlive that with room to spare.
const MIN_PER_MINUTE_LIFETIME: Duration = Duration::from_secs(120);
/// Below what RFC 7518 §3.2 asks of an HS256 key.
const MIN_HMAC_KEY: usize = 32;
/// Claims the gateway sets itself in a minted JWT.
const REGISTERED_CLAIMS: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// What `auth` compiles to.
pub(super) enum Credential {
    /// The same value on every request: a header (or query parameter) name and its value.
    Static { location: ApiKeyLocation, name: String, value: String },
    /// A credential obtained or minted per call.
    PerCall(OutboundAuth),
}

/// Compiles `auth`, found at `field` (`spec.remote.auth` or `spec.openapi.auth`).
pub(super) fn compile(
    auth: &UpstreamAuth,
    field: &str,
    namespace: &str,
    secrets: &secrets::Index,
    found: &mut Found,
) -> Option<Credential> {
    let reader = Reader { namespace, secrets };
    let set = [
        auth.bearer.is_some(),
        auth.api_key.is_some(),
        auth.basic.is_some(),
        auth.oauth2_client_credentials.is_some(),
        auth.token_exchange.is_some(),
        auth.signed_jwt.is_some(),
        auth.oauth2_authorization_code.is_some(),
        auth.forward_caller_token.is_some(),
    ];
    if set.iter().filter(|set| **set).count() != 1 {
        found.invalid.push(Problem::new(
            field,
            "exactly one of bearer, apiKey, basic, oauth2ClientCredentials, tokenExchange, signedJwt, \
             oauth2AuthorizationCode or forwardCallerToken must be set",
        ));
        return None;
    }
    let per_call = |auth: Option<OutboundAuth>| auth.map(Credential::PerCall);
    if let Some(bearer) = &auth.bearer {
        reader.secret(&bearer.secret_key_ref, &format!("{field}.bearer.secretKeyRef"), found).map(|token| {
            Credential::Static {
                location: ApiKeyLocation::Header,
                name: "Authorization".into(),
                value: format!("Bearer {token}"),
            }
        })
    } else if let Some(key) = &auth.api_key {
        let at = format!("{field}.apiKey");
        let name_ok = !key.name.is_empty()
            && key.name.len() <= 128
            && key.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        let owned =
            key.in_ == ApiKeyLocation::Header && RESERVED_HEADERS.contains(&key.name.to_ascii_lowercase().as_str());
        if !name_ok {
            found
                .invalid
                .push(Problem::new(format!("{at}.name"), "name must be 1-128 letters, digits, '_', '-' or '.'"));
        } else if owned {
            found.invalid.push(Problem::new(
                format!("{at}.name"),
                format!("header `{}` is set by the gateway and cannot carry an API key", key.name),
            ));
        }
        reader
            .secret(&key.secret_key_ref, &format!("{at}.secretKeyRef"), found)
            .filter(|_| name_ok && !owned)
            .map(|value| Credential::Static { location: key.in_, name: key.name.clone(), value })
    } else if let Some(basic) = &auth.basic {
        let at = format!("{field}.basic.secretRef");
        let name = &basic.secret_ref.name;
        match secrets.entries(namespace, name) {
            Ok(entries) => match (entries.get("username"), entries.get("password")) {
                (Some(user), Some(password)) => {
                    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                    Some(Credential::Static {
                        location: ApiKeyLocation::Header,
                        name: "Authorization".into(),
                        value: format!("Basic {pair}"),
                    })
                }
                _ => {
                    found.refs.push(Problem::new(at, format!("Secret `{name}` needs keys `username` and `password`")));
                    None
                }
            },
            Err(why) => {
                found.refs.push(Problem::new(at, why));
                None
            }
        }
    } else if let Some(spec) = &auth.oauth2_client_credentials {
        per_call(client_credentials(spec, &format!("{field}.oauth2ClientCredentials"), &reader, found))
    } else if let Some(spec) = &auth.token_exchange {
        per_call(token_exchange(spec, &format!("{field}.tokenExchange"), &reader, found))
    } else if let Some(spec) = &auth.signed_jwt {
        per_call(signed_jwt(spec, &format!("{field}.signedJwt"), &reader, found))
    } else if let Some(spec) = &auth.oauth2_authorization_code {
        per_call(authorization_code(spec, &format!("{field}.oauth2AuthorizationCode"), &reader, found))
    } else {
        let forward = auth.forward_caller_token.as_ref().expect("exactly one mode is set, checked above");
        let audience = text(&forward.audience, &format!("{field}.forwardCallerToken.audience"), 2048, found);
        audience.map(|audience| Credential::PerCall(OutboundAuth::ForwardCallerToken(ForwardConfig { audience })))
    }
}

fn client_credentials(
    spec: &ClientCredentialsAuth,
    field: &str,
    reader: &Reader,
    found: &mut Found,
) -> Option<OutboundAuth> {
    let client = client(&spec.client, field, reader, found);
    let scopes = scopes(&spec.scopes, field, found);
    let audience = optional_text(spec.audience.as_deref(), &format!("{field}.audience"), 2048, found);
    let resource = resource(spec.resource.as_deref(), field, found);
    Some(OutboundAuth::ClientCredentials(ClientCredentialsConfig { client: client?, scopes, audience, resource }))
}

fn token_exchange(spec: &TokenExchangeAuth, field: &str, reader: &Reader, found: &mut Found) -> Option<OutboundAuth> {
    let client = client(&spec.client, field, reader, found);
    let scopes = scopes(&spec.scopes, field, found);
    let audience = optional_text(spec.audience.as_deref(), &format!("{field}.audience"), 2048, found);
    let resource = resource(spec.resource.as_deref(), field, found);
    let requested_token_type = spec.requested_token_type.clone().unwrap_or_else(|| ACCESS_TOKEN_TYPE.into());
    if requested_token_type.len() > 256 || !absolute_uri(&requested_token_type) {
        found.invalid.push(Problem::new(
            format!("{field}.requestedTokenType"),
            format!("`{requested_token_type}` is not a token type URI such as `{ACCESS_TOKEN_TYPE}`"),
        ));
    }
    Some(OutboundAuth::TokenExchange(TokenExchangeConfig {
        client: client?,
        audience,
        resource,
        scopes,
        requested_token_type,
    }))
}

fn signed_jwt(spec: &SignedJwtAuth, field: &str, reader: &Reader, found: &mut Found) -> Option<OutboundAuth> {
    let algorithm = match spec.algorithm {
        JwtSigningAlgorithm::HS256 => SigningAlgorithm::HS256,
        JwtSigningAlgorithm::RS256 => SigningAlgorithm::RS256,
        JwtSigningAlgorithm::ES256 => SigningAlgorithm::ES256,
    };
    let key = reader.signing_key(&spec.key_ref, algorithm, &format!("{field}.keyRef"), found);
    let key_id = optional_text(spec.key_id.as_deref(), &format!("{field}.keyId"), 256, found);
    let issuer = text(&spec.issuer, &format!("{field}.issuer"), 2048, found);
    let audience = text(&spec.audience, &format!("{field}.audience"), 2048, found);
    let subject = optional_text(spec.subject.as_deref(), &format!("{field}.subject"), 1024, found);
    let lifetime = spec.lifetime.map(Duration::from).unwrap_or(DEFAULT_LIFETIME);
    if spec.lifetime.is_some_and(|l| l.is_negative()) || !(MIN_LIFETIME..=MAX_LIFETIME).contains(&lifetime) {
        found.invalid.push(Problem::new(format!("{field}.lifetime"), "lifetime must be between 10s and 1h"));
    } else if spec.mint == MintPolicy::PerMinute && lifetime < MIN_PER_MINUTE_LIFETIME {
        found.invalid.push(Problem::new(
            format!("{field}.mint"),
            "mint: perMinute needs a lifetime of at least 2m (a token is reused for up to a minute)",
        ));
    }
    let claims = claims(&spec.claims, &format!("{field}.claims"), found);
    Some(OutboundAuth::SignedJwt(SignedJwtConfig {
        algorithm,
        key: key?,
        key_id,
        issuer: issuer?,
        audience: audience?,
        subject,
        lifetime_secs: lifetime.as_secs(),
        per_call: spec.mint == MintPolicy::PerCall,
        claims,
    }))
}

fn authorization_code(
    spec: &AuthorizationCodeAuth,
    field: &str,
    reader: &Reader,
    found: &mut Found,
) -> Option<OutboundAuth> {
    let client = client(&spec.client, field, reader, found);
    let authorization_url = endpoint(&spec.authorization_url, &format!("{field}.authorizationUrl"), found);
    let redirect = url::Url::parse(&spec.redirect_url).ok().filter(|url| {
        check_url(&spec.redirect_url).is_ok()
            && url.path() == CALLBACK_PATH
            && url.query().is_none()
            && url.fragment().is_none()
    });
    if redirect.is_none() {
        found.invalid.push(Problem::new(
            format!("{field}.redirectUrl"),
            format!("redirectUrl must be an absolute http:// or https:// URL whose path is {CALLBACK_PATH}"),
        ));
    }
    let scopes = scopes(&spec.scopes, field, found);
    let audience = optional_text(spec.audience.as_deref(), &format!("{field}.audience"), 2048, found);
    let resource = resource(spec.resource.as_deref(), field, found);
    redirect?;
    Some(OutboundAuth::AuthorizationCode(AuthorizationCodeConfig {
        client: client?,
        authorization_url: authorization_url?,
        redirect_url: spec.redirect_url.clone(),
        scopes,
        audience,
        resource,
    }))
}

/// The token endpoint and how the gateway authenticates there.
fn client(spec: &TokenClientSpec, field: &str, reader: &Reader, found: &mut Found) -> Option<TokenClient> {
    let token_url = endpoint(&spec.token_url, &format!("{field}.tokenUrl"), found);
    let client_id = text(&spec.client_id, &format!("{field}.clientId"), 256, found);
    let key_id = optional_text(spec.key_id.as_deref(), &format!("{field}.keyId"), 256, found);
    let private = spec.client_authentication == ClientAuthenticationMethod::PrivateKeyJwt;
    let authentication = match (&spec.client_secret_ref, &spec.private_key_ref, private) {
        (Some(_), Some(_), _) | (None, None, _) => {
            found.invalid.push(Problem::new(field, "exactly one of clientSecretRef or privateKeyRef must be set"));
            None
        }
        (Some(_), None, true) | (None, Some(_), false) => {
            found.invalid.push(Problem::new(
                format!("{field}.clientAuthentication"),
                "privateKeyRef goes with clientAuthentication: privateKeyJwt, clientSecretRef with clientSecretBasic \
                 or clientSecretPost",
            ));
            None
        }
        (Some(reference), None, false) => {
            if spec.signing_algorithm.is_some() {
                found.invalid.push(Problem::new(
                    format!("{field}.signingAlgorithm"),
                    "privateKeyJwt needs signingAlgorithm (RS256 or ES256), and only it takes one",
                ));
            }
            if spec.key_id.is_some() {
                found.invalid.push(Problem::new(format!("{field}.keyId"), "keyId applies to privateKeyJwt only"));
            }
            let secret = reader.secret(reference, &format!("{field}.clientSecretRef"), found)?;
            Some(match spec.client_authentication {
                ClientAuthenticationMethod::ClientSecretPost => ClientAuthentication::ClientSecretPost { secret },
                _ => ClientAuthentication::ClientSecretBasic { secret },
            })
        }
        (None, Some(reference), true) => {
            let Some(algorithm) = spec.signing_algorithm else {
                found.invalid.push(Problem::new(
                    format!("{field}.signingAlgorithm"),
                    "privateKeyJwt needs signingAlgorithm (RS256 or ES256), and only it takes one",
                ));
                return None;
            };
            let algorithm = match algorithm {
                AssertionAlgorithm::RS256 => SigningAlgorithm::RS256,
                AssertionAlgorithm::ES256 => SigningAlgorithm::ES256,
            };
            let private_key = reader.signing_key(reference, algorithm, &format!("{field}.privateKeyRef"), found)?;
            Some(ClientAuthentication::PrivateKeyJwt { private_key, algorithm, key_id })
        }
    };
    Some(TokenClient { token_url: token_url?, client_id: client_id?, authentication: authentication? })
}

/// Reads Secret keys of the server's namespace.
struct Reader<'a> {
    namespace: &'a str,
    secrets: &'a secrets::Index<'a>,
}

impl Reader<'_> {
    /// A credential's text, without the line break `kubectl create secret --from-file` keeps.
    fn secret(&self, reference: &SecretKeyRef, field: &str, found: &mut Found) -> Option<String> {
        match self.secrets.get(self.namespace, reference) {
            Ok(value) if value.trim_end_matches(['\r', '\n']).is_empty() => {
                let why = format!("key `{}` of Secret `{}` is empty", reference.key, reference.name);
                found.refs.push(Problem::new(field, why));
                None
            }
            Ok(value) => Some(value.trim_end_matches(['\r', '\n']).to_owned()),
            Err(why) => {
                found.refs.push(Problem::new(field, why));
                None
            }
        }
    }

    /// A key `algorithm` can sign with: an HMAC secret of at least 32 bytes, taken byte for
    /// byte, or a PEM private key of the algorithm's kind.
    fn signing_key(
        &self,
        reference: &SecretKeyRef,
        algorithm: SigningAlgorithm,
        field: &str,
        found: &mut Found,
    ) -> Option<String> {
        let value = match self.secrets.get(self.namespace, reference) {
            Ok(value) => value,
            Err(why) => {
                found.refs.push(Problem::new(field, why));
                return None;
            }
        };
        let (usable, wanted) = match algorithm {
            SigningAlgorithm::HS256 => (value.len() >= MIN_HMAC_KEY, "a secret of at least 32 bytes for HS256"),
            SigningAlgorithm::RS256 => (
                EncodingKey::from_rsa_pem(value.as_bytes()).is_ok(),
                "an RSA private key, PEM (PKCS#1 or PKCS#8), for RS256",
            ),
            SigningAlgorithm::ES256 => (
                EncodingKey::from_ec_pem(value.as_bytes()).is_ok() && on_p256(&value),
                "an EC P-256 private key, PEM (PKCS#8), for ES256",
            ),
        };
        if !usable {
            let why = format!("key `{}` of Secret `{}` is not {wanted}", reference.key, reference.name);
            found.refs.push(Problem::new(field, why));
            return None;
        }
        Some(value)
    }
}

/// Whether a PEM EC key names the curve ES256 signs on: jsonwebtoken takes any EC key, and
/// one on P-384 would fail only when the gateway first signs.
fn on_p256(pem: &str) -> bool {
    /// The DER of OID 1.2.840.10045.3.1.7 (prime256v1).
    const P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let body: String = pem.lines().map(str::trim).filter(|line| !line.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).is_ok_and(|der| der.windows(P256.len()).any(|w| w == P256))
}

/// An endpoint of the provider: an absolute http(s) URL without credentials or a fragment
/// (RFC 6749 §3.1, §3.2).
fn endpoint(url: &str, field: &str, found: &mut Found) -> Option<String> {
    let fragment = url::Url::parse(url).is_ok_and(|u| u.fragment().is_some());
    match check_url(url) {
        Err(why) => found.invalid.push(Problem::new(field, why)),
        Ok(()) if fragment => found.invalid.push(Problem::new(field, format!("`{url}` must not have a fragment"))),
        Ok(()) => return Some(url.to_owned()),
    }
    None
}

/// A required text field: 1 to `max` characters, no control characters.
fn text(value: &str, field: &str, max: usize, found: &mut Found) -> Option<String> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        let name = field.rsplit('.').next().unwrap_or(field);
        found
            .invalid
            .push(Problem::new(field, format!("{name} must be 1-{max} characters without control characters")));
        return None;
    }
    Some(value.to_owned())
}

fn optional_text(value: Option<&str>, field: &str, max: usize, found: &mut Found) -> Option<String> {
    text(value?, field, max, found)
}

/// RFC 6749 §3.3 scope tokens: printable ASCII without spaces, `"` or `\`.
fn scopes(scopes: &[String], field: &str, found: &mut Found) -> Vec<String> {
    if scopes.len() > 32 {
        found.invalid.push(Problem::new(format!("{field}.scopes"), "at most 32 scopes"));
    }
    for (i, scope) in scopes.iter().enumerate() {
        let token = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
        if scope.is_empty() || scope.len() > 256 || !scope.bytes().all(token) {
            found.invalid.push(Problem::new(
                format!("{field}.scopes[{i}]"),
                format!("`{scope}` is not a scope: 1-256 printable ASCII characters without spaces, '\"' or '\\'"),
            ));
        }
    }
    scopes.to_vec()
}

/// RFC 8707 §2: an absolute URI without a fragment.
fn resource(resource: Option<&str>, field: &str, found: &mut Found) -> Option<String> {
    let resource = resource?;
    let fragment = url::Url::parse(resource).is_ok_and(|u| u.fragment().is_some());
    if resource.len() > 2048 || !absolute_uri(resource) || fragment {
        found.invalid.push(Problem::new(
            format!("{field}.resource"),
            format!("`{resource}` is not an absolute URI without a fragment (RFC 8707)"),
        ));
        return None;
    }
    Some(resource.to_owned())
}

fn absolute_uri(text: &str) -> bool {
    !text.chars().any(|c| c.is_whitespace() || c.is_control()) && url::Url::parse(text).is_ok()
}

/// The claims copied from the caller's token: names the gateway does not set itself, paths
/// of non-empty dotted segments.
fn claims(claims: &BTreeMap<String, String>, field: &str, found: &mut Found) -> BTreeMap<String, String> {
    if claims.len() > 32 {
        found.invalid.push(Problem::new(field, "at most 32 claims"));
    }
    for (name, path) in claims {
        if REGISTERED_CLAIMS.contains(&name.as_str()) {
            found.invalid.push(Problem::new(
                format!("{field}.{name}"),
                format!("claim `{name}` is set by the gateway (issuer, audience, subject, lifetime)"),
            ));
        } else if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            found.invalid.push(Problem::new(field, "a claim name must be 1-256 characters without control characters"));
        }
        if path.is_empty()
            || path.len() > 256
            || path.split('.').any(|s| s.is_empty() || s.chars().any(char::is_control))
        {
            found.invalid.push(Problem::new(
                format!("{field}.{name}"),
                format!("`{path}` is not a dotted claim path of the caller's token (such as `email` or `org.id`)"),
            ));
        }
    }
    claims.clone()
}
