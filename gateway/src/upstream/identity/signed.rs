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
use crate::principal::Principal;

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::json;

    use super::*;
    use crate::upstream::identity::testing;

    const HMAC_SECRET: &str = "a test-only HMAC secret, 32 bytes+";

    fn config(algorithm: SigningAlgorithm, key: &str, per_call: bool, lifetime_secs: u64) -> SignedJwtConfig {
        SignedJwtConfig {
            algorithm,
            key: key.into(),
            key_id: Some("gw-1".into()),
            issuer: "https://gateway.test".into(),
            audience: "orders".into(),
            subject: None,
            lifetime_secs,
            per_call,
            claims: BTreeMap::from([
                ("email".into(), "email".into()),
                ("roles".into(), "realm_access.roles".into()),
                ("team".into(), "team".into()),
            ]),
        }
    }

    fn alice() -> Principal {
        let claims = json!({ "email": "alice@example.com", "realm_access": { "roles": ["buyer", "admin"] } });
        testing::caller("alice", Some("jwt-alice"), claims)
    }

    fn verify(token: &str, algorithm: Algorithm, key: &DecodingKey) -> jsonwebtoken::TokenData<Value> {
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&["orders"]);
        validation.set_issuer(&["https://gateway.test"]);
        jsonwebtoken::decode::<Value>(token, key, &validation)
            .unwrap_or_else(|e| panic!("{algorithm:?}: the minted token does not verify: {e}"))
    }

    #[test]
    fn minted_tokens_verify_for_every_algorithm_and_carry_the_mapped_claims() {
        let cases = [
            (SigningAlgorithm::HS256, Algorithm::HS256, HMAC_SECRET, DecodingKey::from_secret(HMAC_SECRET.as_bytes())),
            (
                SigningAlgorithm::RS256,
                Algorithm::RS256,
                testing::RSA_PRIVATE,
                DecodingKey::from_rsa_pem(testing::RSA_PUBLIC.as_bytes()).expect("RSA"),
            ),
            (
                SigningAlgorithm::ES256,
                Algorithm::ES256,
                testing::EC_PRIVATE,
                DecodingKey::from_ec_pem(testing::EC_PUBLIC.as_bytes()).expect("EC"),
            ),
        ];
        for (algorithm, expected, key, public) in cases {
            let signed = Signed::new(&config(algorithm, key, true, 300)).expect("a valid config");
            let now = jsonwebtoken::get_current_timestamp();
            let token = signed.token(&alice(), now).expect("a token");
            let verified = verify(&token, expected, &public);
            assert_eq!(verified.header.kid.as_deref(), Some("gw-1"));
            let Value::Object(mut claims) = verified.claims else { panic!("claims are an object") };
            let jti = claims.remove("jti").expect("a jti");
            assert!(uuid::Uuid::parse_str(jti.as_str().expect("a string")).is_ok(), "{jti}");
            let expected_claims = json!({
                "iss": "https://gateway.test", "aud": "orders", "sub": "alice", "iat": now, "exp": now + 300,
                "email": "alice@example.com", "roles": ["buyer", "admin"],
            });
            // `team`, which alice's token lacks, is left out.
            assert_eq!(Value::Object(claims), expected_claims, "{algorithm:?}");
        }
    }

    #[test]
    fn a_fixed_subject_replaces_the_callers_name() {
        let mut config = config(SigningAlgorithm::HS256, HMAC_SECRET, true, 300);
        config.subject = Some("gateway".into());
        let token = Signed::new(&config).expect("valid").token(&alice(), jsonwebtoken::get_current_timestamp());
        let verified =
            verify(&token.expect("a token"), Algorithm::HS256, &DecodingKey::from_secret(HMAC_SECRET.as_bytes()));
        assert_eq!(verified.claims["sub"], "gateway");
    }

    #[test]
    fn per_minute_tokens_are_reused_within_their_minute_by_their_caller_only() {
        let signed = Signed::new(&config(SigningAlgorithm::HS256, HMAC_SECRET, false, 600)).expect("valid");
        let bob = testing::caller("bob", Some("jwt-bob"), testing::no_claims());
        let first = signed.token(&alice(), 120).expect("a token");
        assert_eq!(signed.token(&alice(), 179).expect("a token"), first);
        assert_ne!(signed.token(&bob, 150).expect("a token"), first);
        let next_minute = signed.token(&alice(), 180).expect("a token");
        assert_ne!(next_minute, first);
        assert_eq!(signed.token(&alice(), 181).expect("a token"), next_minute);
    }

    #[test]
    fn per_minute_tokens_are_not_reused_past_half_their_lifetime() {
        let signed = Signed::new(&config(SigningAlgorithm::HS256, HMAC_SECRET, false, 20)).expect("valid");
        let first = signed.token(&alice(), 120).expect("a token");
        assert_eq!(signed.token(&alice(), 129).expect("a token"), first);
        assert_ne!(signed.token(&alice(), 130).expect("a token"), first);
    }

    #[test]
    fn per_call_tokens_are_new_every_call() {
        let signed = Signed::new(&config(SigningAlgorithm::ES256, testing::EC_PRIVATE, true, 60)).expect("valid");
        let public = DecodingKey::from_ec_pem(testing::EC_PUBLIC.as_bytes()).expect("EC");
        let now = jsonwebtoken::get_current_timestamp();
        let jti = |token: Arc<str>| verify(&token, Algorithm::ES256, &public).claims["jti"].clone();
        let first = jti(signed.token(&alice(), now).expect("a token"));
        let second = jti(signed.token(&alice(), now).expect("a token"));
        assert_ne!(first, second);
        assert!(!signed.rejected("any"), "a per-call token is fresh already");
    }

    #[test]
    fn a_rejected_per_minute_token_is_minted_anew() {
        let signed = Signed::new(&config(SigningAlgorithm::HS256, HMAC_SECRET, false, 600)).expect("valid");
        let first = signed.token(&alice(), 120).expect("a token");
        assert!(signed.rejected(&first));
        assert_ne!(signed.token(&alice(), 121).expect("a token"), first);
    }

    #[test]
    fn keys_and_claims_that_cannot_work_are_refused_at_once() {
        let mut onto_sub = config(SigningAlgorithm::HS256, HMAC_SECRET, true, 60);
        onto_sub.claims.insert("sub".into(), "email".into());
        let cases = [
            (config(SigningAlgorithm::RS256, "not a key", true, 60), "the signing key is not a RS256 PEM private key"),
            (
                config(SigningAlgorithm::ES256, testing::RSA_PRIVATE, true, 60),
                "the signing key is not a ES256 PEM private key",
            ),
            (
                config(SigningAlgorithm::RS256, testing::EC_PRIVATE, true, 60),
                "the signing key is not a RS256 PEM private key",
            ),
            (config(SigningAlgorithm::HS256, "", true, 60), "the HS256 secret is empty"),
            (config(SigningAlgorithm::HS256, HMAC_SECRET, true, 0), "lifetimeSecs must be at least 1"),
            (onto_sub, "claims: `sub` is set by the gateway and cannot be mapped"),
        ];
        for (config, expected) in cases {
            let error = Signed::new(&config).err().expect("refused");
            assert!(error.starts_with(expected), "{error}");
        }
    }
}
