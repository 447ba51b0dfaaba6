//! Test credentials: signers over the fixture keys in `e2e/fixtures/keys`, the JWKS that
//! publishes them, and tokens with the claims a scenario chooses.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::repo_root;

/// A key that signs tokens, and its public JWK.
pub struct Signer {
    key: EncodingKey,
    pub alg: Algorithm,
    pub kid: String,
    /// The public key as the JWKS carries it.
    pub jwk: Value,
    /// The public key, PEM (for the "HS256 keyed with the RSA public key" attack).
    pub public_pem: Option<String>,
}

impl Signer {
    /// An RSA fixture key (`rsa-a`, `rsa-b`, `attacker`) signing RS256.
    pub fn rsa(name: &str, kid: &str) -> Self {
        let dir = repo_root().join("e2e/fixtures/keys");
        let pem = std::fs::read(dir.join(format!("{name}.pem"))).expect("fixture key");
        let key = EncodingKey::from_rsa_pem(&pem).expect("an RSA key");
        let public_pem = std::fs::read_to_string(dir.join(format!("{name}.pub.pem"))).ok();
        Self::new(key, Algorithm::RS256, kid, public_pem)
    }

    /// The EC P-256 fixture key signing ES256.
    pub fn ec(kid: &str) -> Self {
        let pem = std::fs::read(repo_root().join("e2e/fixtures/keys/ec.pem")).expect("fixture key");
        Self::new(EncodingKey::from_ec_pem(&pem).expect("an EC key"), Algorithm::ES256, kid, None)
    }

    /// An HMAC secret signing HS256.
    pub fn hmac(secret: &[u8], kid: &str) -> Self {
        Self::new(EncodingKey::from_secret(secret), Algorithm::HS256, kid, None)
    }

    fn new(key: EncodingKey, alg: Algorithm, kid: &str, public_pem: Option<String>) -> Self {
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&key, alg).expect("a JWK")).unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Signer { key, alg, kid: kid.into(), jwk, public_pem }
    }

    /// A token with these claims, this key's algorithm and kid.
    pub fn token(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        self.token_with(header, claims)
    }

    /// A token with a header of the scenario's choosing.
    pub fn token_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.key).expect("signing works")
    }
}

/// A JWKS publishing these keys.
pub fn jwks(signers: &[&Signer]) -> Value {
    json!({ "keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>() })
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Claims valid for five minutes.
pub fn claims(issuer: &str, audience: &str, subject: &str) -> Value {
    json!({ "iss": issuer, "aud": audience, "sub": subject, "iat": now(), "exp": now() + 300 })
}

/// base64url without padding, for hand-made tokens.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
