//! Authentication: a request's `Authorization: Bearer` (a JWT of a trusted issuer, or an
//! API key) or API-key header becomes a [`Principal`]; no credential becomes `anonymous`
//! where the route allows it; anything else is a [`Refusal`]. Keys are compared as SHA-256
//! hashes in constant time, over every key of the route.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderMap;
use http::header::AUTHORIZATION;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use manifold_api::config::{AuthnConfig, ClaimMappings, JwksConfig, JwtAlgorithm, ResourceMetadata, RouteConfig};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::keys::{self, KeySet};
use crate::principal::claim;
pub use crate::principal::{CallerToken, Principal, Source, binding};

/// Longer bearer values are refused unread: no provider issues tokens this large.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// How long a verified token is trusted without verifying it again.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Verified tokens kept per route, at most.
const MAX_VERIFIED: usize = 10_000;

/// Why a request is refused before anything else is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No credential, and the route needs one: 401.
    Missing,
    /// A credential that does not hold: 401 `invalid_token`, with why.
    Invalid(&'static str),
    /// Valid, but without these scopes: 403 `insufficient_scope`.
    InsufficientScope(Vec<String>),
}

/// A route's authenticator.
pub struct Authenticator {
    anonymous: Option<Arc<Principal>>,
    providers: Vec<Provider>,
    api_keys: Vec<(Vec<u8>, Arc<Principal>)>,
    api_key_header: Option<http::HeaderName>,
    required_scopes: Vec<String>,
    /// What the route's 401s point to (RFC 9728).
    pub metadata: ResourceMetadata,
    /// Tokens verified recently, with their principal and until when they are trusted.
    verified: Mutex<Verified>,
}

/// SHA-256 of a token -> (its principal, trusted until).
type Verified = HashMap<[u8; 32], (Arc<Principal>, Instant)>;

struct Provider {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    claims: ClaimMappings,
    clock_skew: u64,
    keys: Arc<KeySet>,
}

impl Authenticator {
    pub fn build(route: &RouteConfig, key_sets: &mut keys::Pool) -> Result<Self, String> {
        let AuthnConfig { allow_anonymous, jwt, api_keys, required_scopes, metadata } = &route.authentication;
        let mut providers = Vec::new();
        for provider in jwt {
            let keys = match &provider.jwks {
                JwksConfig::Uri { uri } => key_sets.fetched(&route.namespace, uri),
                JwksConfig::Keys { jwks } => {
                    let symmetric = provider.algorithms.iter().all(|a| a.is_hmac());
                    KeySet::fixed(keys::parse_jwks(jwks.as_bytes(), symmetric)?)
                }
                JwksConfig::Secret { secret } => KeySet::fixed(vec![keys::secret_key(secret)]),
            };
            providers.push(Provider {
                issuer: provider.issuer.clone(),
                audiences: provider.audiences.clone(),
                algorithms: provider.algorithms.iter().map(|a| algorithm(*a)).collect(),
                claims: provider.claims.clone(),
                clock_skew: provider.clock_skew_secs,
                keys,
            });
        }
        let mut keys = Vec::new();
        let mut header = None;
        if let Some(api_keys) = api_keys {
            for key in &api_keys.keys {
                let hash =
                    hex::decode(&key.sha256).map_err(|_| format!("API key of `{}` is not hashed", key.principal))?;
                let principal =
                    Principal::new(key.principal.clone(), key.groups.clone(), vec![], Map::new(), Source::ApiKey);
                keys.push((hash, Arc::new(principal)));
            }
            header = match &api_keys.header {
                Some(name) => Some(http::HeaderName::try_from(name).map_err(|e| format!("API key header: {e}"))?),
                None => None,
            };
        }
        Ok(Authenticator {
            anonymous: allow_anonymous.then(|| Arc::new(Principal::anonymous())),
            providers,
            api_keys: keys,
            api_key_header: header,
            required_scopes: required_scopes.clone(),
            metadata: metadata.clone(),
            verified: Mutex::default(),
        })
    }

    /// Whether the route takes credentials at all (else every caller is anonymous).
    pub fn checks_credentials(&self) -> bool {
        !self.providers.is_empty() || !self.api_keys.is_empty()
    }

    /// Scopes every caller must hold.
    pub fn required_scopes(&self) -> &[String] {
        &self.required_scopes
    }

    /// Who sends this request. `cooldown` bounds re-fetching keys for unknown `kid`s.
    pub async fn authenticate(&self, headers: &HeaderMap, cooldown: Duration) -> Result<Arc<Principal>, Refusal> {
        let principal = self.identify(headers, cooldown).await?;
        let missing: Vec<String> =
            self.required_scopes.iter().filter(|s| !principal.scopes.contains(s)).cloned().collect();
        match (missing.is_empty(), &principal.source) {
            (true, _) => Ok(principal),
            // An anonymous caller is asked to authenticate, not told it lacks scopes.
            (false, Source::Anonymous) => Err(Refusal::Missing),
            (false, _) => Err(Refusal::InsufficientScope(self.required_scopes.clone())),
        }
    }

    async fn identify(&self, headers: &HeaderMap, cooldown: Duration) -> Result<Arc<Principal>, Refusal> {
        if !self.checks_credentials() {
            return self.anonymous.clone().ok_or(Refusal::Missing);
        }
        let mut authorization = headers.get_all(AUTHORIZATION).iter();
        if let Some(value) = authorization.next() {
            if authorization.next().is_some() {
                return Err(Refusal::Invalid("more than one Authorization header"));
            }
            let token = bearer(value.as_bytes())?;
            let looks_like_jwt = token.bytes().filter(|&b| b == b'.').count() == 2;
            return match (looks_like_jwt && !self.providers.is_empty(), self.api_keys.is_empty()) {
                (true, _) => self.verified(token, cooldown).await,
                (false, false) => self.api_key(token.as_bytes()),
                (false, true) => Err(Refusal::Invalid("malformed token")),
            };
        }
        if let Some(header) = &self.api_key_header {
            let mut values = headers.get_all(header).iter();
            if let Some(value) = values.next() {
                if values.next().is_some() {
                    return Err(Refusal::Invalid("more than one API key header"));
                }
                return self.api_key(value.as_bytes());
            }
        }
        self.anonymous.clone().ok_or(Refusal::Missing)
    }

    /// The principal of an API key. Every stored hash is compared, in constant time, so
    /// timing says nothing about which key came close.
    fn api_key(&self, presented: &[u8]) -> Result<Arc<Principal>, Refusal> {
        if presented.is_empty() || presented.len() > MAX_TOKEN_BYTES {
            return Err(Refusal::Invalid("invalid API key"));
        }
        let hash = Sha256::digest(presented);
        let mut found = None;
        for (stored, principal) in &self.api_keys {
            if bool::from(stored.as_slice().ct_eq(hash.as_slice())) {
                found = Some(principal);
            }
        }
        found.cloned().ok_or(Refusal::Invalid("invalid API key"))
    }

    /// A token's principal, from the cache of tokens verified recently, else verified now
    /// (and cached until its `exp`, at most [`VERIFIED_FOR`], so that a key withdrawn from
    /// the issuer's JWKS stops working soon after).
    async fn verified(&self, token: &str, cooldown: Duration) -> Result<Arc<Principal>, Refusal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((principal, until)) = self.verified.lock().expect("verified tokens").get(&digest)
            && Instant::now() < *until
        {
            return Ok(Arc::clone(principal));
        }
        let mut principal = self.verify_jwt(token, cooldown).await?;
        principal.token = Some(CallerToken::new(token));
        let principal = Arc::new(principal);
        let expires_in = principal
            .claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|exp| Duration::from_secs(exp.saturating_sub(jsonwebtoken::get_current_timestamp())));
        let until = Instant::now() + expires_in.unwrap_or_default().min(VERIFIED_FOR);
        let mut verified = self.verified.lock().expect("verified tokens");
        if verified.len() >= MAX_VERIFIED {
            verified.retain(|_, (_, until)| Instant::now() < *until);
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
        }
        verified.insert(digest, (Arc::clone(&principal), until));
        Ok(principal)
    }

    async fn verify_jwt(&self, token: &str, cooldown: Duration) -> Result<Principal, Refusal> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Refusal::Invalid("token too large"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Invalid("malformed token"))?;
        #[derive(serde::Deserialize)]
        struct Unverified {
            iss: Option<String>,
        }
        // The issuer picks the provider (and so the keys); nothing else is trusted before
        // the signature is checked.
        let unverified: Unverified =
            jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|_| Refusal::Invalid("malformed token"))?;
        let provider = unverified
            .iss
            .and_then(|iss| self.providers.iter().find(|p| p.issuer == iss))
            .ok_or(Refusal::Invalid("token issuer is not trusted here"))?;
        if !provider.algorithms.contains(&header.alg) {
            return Err(Refusal::Invalid("token algorithm is not accepted"));
        }
        let candidates = provider.keys.candidates(header.kid.as_deref(), header.alg, cooldown).await;
        if candidates.is_empty() {
            return Err(Refusal::Invalid("token signing key is unknown"));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&provider.issuer]);
        validation.set_audience(&provider.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = provider.clock_skew;
        let mut failure = Refusal::Invalid("invalid signature");
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation) {
                Ok(data) => return provider.principal(data.claims),
                Err(error) => failure = Refusal::Invalid(describe(error.kind())),
            }
        }
        Err(failure)
    }
}

impl Provider {
    fn principal(&self, claims: Map<String, Value>) -> Result<Principal, Refusal> {
        let name = match claim(&claims, &self.claims.subject) {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            _ => return Err(Refusal::Invalid("token names no subject")),
        };
        let strings = |value: Option<&Value>, split: bool| -> Vec<String> {
            match value {
                Some(Value::String(text)) if split => text.split_whitespace().map(str::to_owned).collect(),
                Some(Value::String(text)) => vec![text.clone()],
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                _ => vec![],
            }
        };
        let groups = strings(claim(&claims, &self.claims.groups), false);
        let scopes = strings(claim(&claims, &self.claims.scopes), true);
        Ok(Principal::new(name, groups, scopes, claims, Source::Jwt(self.issuer.clone())))
    }
}

/// The token of `Bearer <token>`, strictly: the scheme (any case), one space, and a
/// b64token (RFC 6750) with nothing around it.
fn bearer(value: &[u8]) -> Result<&str, Refusal> {
    const MALFORMED: Refusal = Refusal::Invalid("malformed Authorization header: expected `Bearer <token>`");
    if value.len() > MAX_TOKEN_BYTES + 7 {
        return Err(Refusal::Invalid("token too large"));
    }
    let text = std::str::from_utf8(value).map_err(|_| MALFORMED)?;
    let (scheme, token) = text.split_at_checked(7).ok_or(MALFORMED)?;
    let b64token = |t: &str| {
        let body = t.trim_end_matches('=');
        !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    };
    if !scheme.eq_ignore_ascii_case("bearer ") || !b64token(token) {
        return Err(MALFORMED);
    }
    Ok(token)
}

fn describe(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not yet valid",
        ErrorKind::InvalidAudience => "token audience is not accepted",
        ErrorKind::InvalidIssuer => "token issuer is not trusted here",
        ErrorKind::InvalidSignature => "invalid signature",
        ErrorKind::InvalidAlgorithm => "token algorithm is not accepted",
        ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => "token has no expiry",
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => "token has no audience",
        ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
        _ => "malformed token",
    }
}

fn algorithm(alg: JwtAlgorithm) -> Algorithm {
    match alg {
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::RS384 => Algorithm::RS384,
        JwtAlgorithm::RS512 => Algorithm::RS512,
        JwtAlgorithm::PS256 => Algorithm::PS256,
        JwtAlgorithm::PS384 => Algorithm::PS384,
        JwtAlgorithm::PS512 => Algorithm::PS512,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::ES384 => Algorithm::ES384,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::HS384 => Algorithm::HS384,
        JwtAlgorithm::HS512 => Algorithm::HS512,
    }
}

/// What a session is bound to for a principal: a hash of its identity, so tokens do not
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_is_strict() {
        assert_eq!(bearer(b"Bearer abc.def-ghi_~+/=="), Ok("abc.def-ghi_~+/=="));
        assert_eq!(bearer(b"bearer abc"), Ok("abc"), "the scheme is case-insensitive");
        for bad in
            [&b"Bearerabc"[..], b"Bearer  abc", b"Bearer abc ", b"Bearer ", b"Basic abc", b"Bearer a b", b"Bearer ==="]
        {
            assert!(bearer(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn dotted_claims_reach_into_objects() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"realm_access": {"roles": ["a"]}, "x.y": 1}"#).unwrap();
        assert_eq!(claim(&claims, "realm_access.roles"), Some(&serde_json::json!(["a"])));
        assert_eq!(claim(&claims, "x.y"), Some(&serde_json::json!(1)), "a literal dotted name first");
        assert_eq!(claim(&claims, "realm_access.none"), None);
    }
}
