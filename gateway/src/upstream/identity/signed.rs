//! `signedJwt`: a short-lived JWT the gateway signs for each caller, with the mount's key
//! (HS256, RS256 or ES256, parsed once): `iss`, `aud`, `sub` (fixed, or the caller's name),
//! `iat`, `exp`, a fresh `jti`, and claims copied from the caller's token. Minted per call, or
//! once per caller per minute and reused within that minute (never past half its lifetime).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use manifold_api::config::{SignedJwtConfig, SigningAlgorithm};
use serde_json::{Map, Value};

use super::Denied;
use crate::access::Principal;

/// Claims the gateway sets itself, which a mapping may not replace.
const REGISTERED: [&str; 7] = ["iss", "aud", "sub", "iat", "exp", "nbf", "jti"];
/// Callers with a token kept for reuse, at most.
const MAX_REUSED: usize = 10_000;

pub struct Signed {
    key: EncodingKey,
    header: Header,
    issuer: String,
    audience: String,
    subject: Option<String>,
    lifetime_secs: u64,
    per_call: bool,
    /// Claim minted -> the caller's claim it copies (dotted).
    claims: Vec<(String, String)>,
    /// Caller identity and copied claims -> the token minted for them this minute.
    reused: Mutex<HashMap<String, Minted>>,
}

struct Minted {
    token: Arc<str>,
    issued_at: u64,
}

impl Signed {
    /// The minter `config` describes; a key that cannot sign with its algorithm, a zero
    /// lifetime or a mapping onto a registered claim is refused here.
    pub fn new(config: &SignedJwtConfig) -> Result<Self, String> {
        let (algorithm, key) = match config.algorithm {
            SigningAlgorithm::HS256 if config.key.is_empty() => return Err("the HS256 secret is empty".into()),
            SigningAlgorithm::HS256 => (Algorithm::HS256, Ok(EncodingKey::from_secret(config.key.as_bytes()))),
            SigningAlgorithm::RS256 => (Algorithm::RS256, EncodingKey::from_rsa_pem(config.key.as_bytes())),
            SigningAlgorithm::ES256 => (Algorithm::ES256, EncodingKey::from_ec_pem(config.key.as_bytes())),
        };
        let key = key.map_err(|e| format!("the signing key is not a {algorithm:?} PEM private key: {e}"))?;
        let mut header = Header::new(algorithm);
        header.kid = config.key_id.clone();
        // A key that parses may still not sign (a truncated RSA key): find out now.
        jsonwebtoken::encode(&header, &Value::Object(Map::new()), &key)
            .map_err(|e| format!("the signing key cannot sign {algorithm:?}: {e}"))?;
        if config.lifetime_secs == 0 {
            return Err("lifetimeSecs must be at least 1".into());
        }
        if let Some(claim) = config.claims.keys().find(|claim| REGISTERED.contains(&claim.as_str())) {
            return Err(format!("claims: `{claim}` is set by the gateway and cannot be mapped"));
        }
        Ok(Signed {
            key,
            header,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            subject: config.subject.clone(),
            lifetime_secs: config.lifetime_secs,
            per_call: config.per_call,
            claims: config.claims.iter().map(|(to, from)| (to.clone(), from.clone())).collect(),
            reused: Mutex::default(),
        })
    }

    /// `principal`'s token at `now` (Unix seconds).
    pub fn token(&self, principal: &Principal, now: u64) -> Result<Arc<str>, Denied> {
        let mut claims = Map::new();
        for (to, from) in &self.claims {
            // A claim the caller's token lacks is left out, not sent as null.
            if let Some(value) = principal.claim(from) {
                claims.insert(to.clone(), value.clone());
            }
        }
        if self.per_call {
            return self.mint(principal, claims, now);
        }
        let reuse_key = format!("{}\n{}", principal.identity, Value::Object(claims.clone()));
        if let Some(minted) = self.reused.lock().expect("minted tokens lock poisoned").get(&reuse_key)
            && self.reusable(minted, now)
        {
            return Ok(minted.token.clone());
        }
        let token = self.mint(principal, claims, now)?;
        let mut reused = self.reused.lock().expect("minted tokens lock poisoned");
        if reused.len() >= MAX_REUSED {
            reused.retain(|_, minted| self.reusable(minted, now));
            if reused.len() >= MAX_REUSED {
                reused.clear();
            }
        }
        reused.insert(reuse_key, Minted { token: token.clone(), issued_at: now });
        Ok(token)
    }

    /// A token minted in the same minute as `now`, and not past half its lifetime.
    fn reusable(&self, minted: &Minted, now: u64) -> bool {
        minted.issued_at / 60 == now / 60 && now < minted.issued_at + self.lifetime_secs / 2
    }

    fn mint(&self, principal: &Principal, mut claims: Map<String, Value>, now: u64) -> Result<Arc<str>, Denied> {
        let subject = self.subject.as_deref().unwrap_or(&principal.name);
        claims.insert("iss".into(), self.issuer.as_str().into());
        claims.insert("aud".into(), self.audience.as_str().into());
        claims.insert("sub".into(), subject.into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + self.lifetime_secs).into());
        claims.insert("jti".into(), uuid::Uuid::new_v4().to_string().into());
        jsonwebtoken::encode(&self.header, &claims, &self.key)
            .map(Arc::from)
            .map_err(|e| Denied::Provider(format!("cannot sign this mount's JWT: {e}")))
    }

    /// The upstream refused `sent`. Per call, every token is already fresh and signed the
    /// same way, so a retry would not help; per minute, the kept token is dropped and a
    /// retry gets a new one.
    pub fn rejected(&self, sent: &str) -> bool {
        if self.per_call {
            return false;
        }
        self.reused.lock().expect("minted tokens lock poisoned").retain(|_, minted| &*minted.token != sent);
        true
    }
}
