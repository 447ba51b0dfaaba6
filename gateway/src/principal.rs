//! Who calls: the [`Principal`] authentication makes of a request's credential (its name,
//! groups, scopes and claims, where the name comes from, and the JWT it presented), which
//! authorization decides on and outbound identity speaks for.

use std::sync::Arc;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The caller's name: a token's subject, an API key's entry, or `anonymous`.
    pub name: String,
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
    /// The token's claims (empty for API keys and anonymous callers).
    pub claims: Map<String, Value>,
    /// Who vouches for the name.
    pub source: Source,
    /// Source and name in one string.
    pub identity: String,
    /// A hash of the identity: what session tokens are bound to.
    pub binding: String,
    /// The bearer JWT the caller presented, for the upstreams that take it further (token
    /// exchange, forwarding); none for API keys and anonymous callers.
    pub token: Option<CallerToken>,
}

/// A caller's JWT: never printed, not even by `Debug`.
#[derive(Clone, PartialEq)]
pub struct CallerToken(Arc<str>);

impl CallerToken {
    pub fn new(token: &str) -> Self {
        CallerToken(token.into())
    }

    /// The token itself, to be sent on; never to be logged.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for CallerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallerToken(..)")
    }
}

/// Where a principal's name comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Anonymous,
    ApiKey,
    /// A token of this issuer.
    Jwt(String),
}

impl Principal {
    /// A principal; its identity follows from where the name comes from.
    pub fn new(
        name: String,
        groups: Vec<String>,
        scopes: Vec<String>,
        claims: Map<String, Value>,
        source: Source,
    ) -> Self {
        let identity = match &source {
            Source::Anonymous => "anonymous".into(),
            Source::ApiKey => format!("api-key {name}"),
            Source::Jwt(issuer) => format!("jwt {issuer} {name}"),
        };
        let binding = binding(&identity);
        Principal { name, groups, scopes, claims, source, identity, binding, token: None }
    }

    /// The `aud` claim of the caller's token, as a list.
    pub fn audiences(&self) -> Vec<&str> {
        match self.claims.get("aud") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        }
    }

    /// How the caller authenticated (`anonymous`, `api-key`, `jwt`), which says nothing of who
    /// it is: what traces record.
    pub fn kind(&self) -> &'static str {
        match self.source {
            Source::Anonymous => "anonymous",
            Source::ApiKey => "api-key",
            Source::Jwt(_) => "jwt",
        }
    }

    pub fn anonymous() -> Self {
        Principal::new("anonymous".into(), vec![], vec![], Map::new(), Source::Anonymous)
    }

    /// A claim by dotted name (`realm_access.roles`).
    pub fn claim(&self, name: &str) -> Option<&Value> {
        claim(&self.claims, name)
    }
}

/// A claim by name, or by dotted path into nested objects (`realm_access.roles`).
pub fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(name) {
        return Some(value);
    }
    let mut parts = name.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

/// carry names.
pub fn binding(identity: &str) -> String {
    hex::encode(&Sha256::digest(identity.as_bytes())[..12])
}
