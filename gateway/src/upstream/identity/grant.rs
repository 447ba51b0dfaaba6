//! The token endpoint requests per-user tokens need (`authorization_code`, `refresh_token`):
//! a form POST with the client's authentication (RFC 6749 §2.3, RFC 7523 §2.2), an RFC 6749
//! §5.1 answer or a §5.2 error. Private to this mode until `TokenEndpoint::grant` replaces it.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http_body_util::{BodyExt, Full, Limited};
use manifold_api::config::{ClientAuthentication, SigningAlgorithm, TokenClient};
use serde::Deserialize;

use crate::upstream::client::HttpClient;

/// The longest a token request may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Larger answers are refused.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// A token endpoint's §5.1 answer.
#[derive(Deserialize)]
pub struct Granted {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// Keycloak's (and others') life of the refresh token, seconds; 0 for offline tokens.
    #[serde(default)]
    pub refresh_expires_in: Option<u64>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
}

/// Why a token request gave no token, without secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantError {
    /// The provider answered with a §5.2 error.
    Refused { error: String, description: Option<String> },
    /// No usable answer: unreachable, timed out, not JSON.
    Failed(String),
}

impl GrantError {
    /// `invalid_grant`: the code or refresh token is no good (used, revoked, expired).
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, GrantError::Refused { error, .. } if error == "invalid_grant")
    }

    /// The provider's `error` (and `error_description`), or why there was no answer.
    pub fn reason(&self) -> String {
        match self {
            GrantError::Refused { error, description: Some(description) } => format!("{error}: {description}"),
            GrantError::Refused { error, description: None } => error.clone(),
            GrantError::Failed(why) => why.clone(),
        }
    }
}

/// POSTs `form` (the grant's own parameters) to `client`'s token endpoint, authenticated as
/// `client` says. Swappable for `identity::token_endpoint::TokenEndpoint::grant`.
pub async fn grant(
    client: &TokenClient,
    form: &[(&str, &str)],
    egress: manifold_runtime::egress::Egress,
) -> Result<Granted, GrantError> {
    let (request, body) = authenticated(client, form)?;
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| GrantError::Failed(format!("the token URL {} is not usable: {e}", client.token_url)))?;
    let exchange = async {
        let response = HttpClient::current(egress).send(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    let (status, body) = match tokio::time::timeout(TIMEOUT, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(why)) => return Err(GrantError::Failed(format!("the token endpoint {}: {why}", client.token_url))),
        Err(_) => {
            return Err(GrantError::Failed(format!(
                "the token endpoint {} did not answer within {} s",
                client.token_url,
                TIMEOUT.as_secs()
            )));
        }
    };
    if status.is_success() {
        return serde_json::from_slice::<Granted>(&body).map_err(|e| {
            GrantError::Failed(format!(
                "the token endpoint {} answered without an access token ({e})",
                client.token_url
            ))
        });
    }
    #[derive(Deserialize)]
    struct Refusal {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    match serde_json::from_slice::<Refusal>(&body) {
        Ok(refusal) => Err(GrantError::Refused { error: refusal.error, description: refusal.error_description }),
        Err(_) => Err(GrantError::Failed(format!("the token endpoint {} answered HTTP {}", client.token_url, status))),
    }
}

/// The request to the token endpoint, authenticated as `client` says, and its form body.
fn authenticated(client: &TokenClient, form: &[(&str, &str)]) -> Result<(http::request::Builder, String), GrantError> {
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    body.extend_pairs(form);
    let mut request = http::Request::post(&client.token_url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json");
    match &client.authentication {
        ClientAuthentication::ClientSecretBasic { secret } => {
            // RFC 6749 §2.3.1: each part form-encoded before they are joined.
            let encode = |part: &str| url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
            let basic = STANDARD.encode(format!("{}:{}", encode(&client.client_id), encode(secret)));
            let mut value = http::HeaderValue::try_from(format!("Basic {basic}"))
                .map_err(|_| GrantError::Failed("the client id or secret cannot be sent in a header".into()))?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
            body.append_pair("client_id", &client.client_id);
        }
        ClientAuthentication::ClientSecretPost { secret } => {
            body.append_pair("client_id", &client.client_id).append_pair("client_secret", secret);
        }
        ClientAuthentication::PrivateKeyJwt { private_key, algorithm, key_id } => {
            let assertion = assertion(client, private_key, *algorithm, key_id.as_deref())?;
            body.append_pair("client_id", &client.client_id)
                .append_pair("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                .append_pair("client_assertion", &assertion);
        }
    }
    Ok((request, body.finish()))
}

/// RFC 7523 §2.2 client assertion: `iss` = `sub` = the client, `aud` = the token endpoint.
fn assertion(
    client: &TokenClient,
    private_key: &str,
    algorithm: SigningAlgorithm,
    key_id: Option<&str>,
) -> Result<String, GrantError> {
    let (algorithm, key) = match algorithm {
        SigningAlgorithm::RS256 => {
            (jsonwebtoken::Algorithm::RS256, jsonwebtoken::EncodingKey::from_rsa_pem(private_key.as_bytes()))
        }
        SigningAlgorithm::ES256 => {
            (jsonwebtoken::Algorithm::ES256, jsonwebtoken::EncodingKey::from_ec_pem(private_key.as_bytes()))
        }
        SigningAlgorithm::HS256 => {
            return Err(GrantError::Failed("private_key_jwt needs RS256 or ES256, not HS256".into()));
        }
    };
    let key = key.map_err(|_| GrantError::Failed("the client's private key is not a usable PEM key".into()))?;
    let mut header = jsonwebtoken::Header::new(algorithm);
    header.kid = key_id.map(str::to_owned);
    let now = super::store::now();
    let claims = serde_json::json!({
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": client.token_url,
        "iat": now,
        "exp": now + 60,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
    });
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| GrantError::Failed(format!("signing the client assertion failed: {e}")))
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};

    use super::*;
    use crate::upstream::identity::per_user::testing::TokenEndpoint;

    fn client(url: &str, authentication: ClientAuthentication) -> TokenClient {
        TokenClient { token_url: url.into(), client_id: "gate way:1".into(), authentication }
    }

    const FORM: [(&str, &str); 2] = [("grant_type", "refresh_token"), ("refresh_token", "r1")];

    #[tokio::test]
    async fn clients_authenticate_with_basic_post_or_a_signed_assertion() {
        let endpoint = TokenEndpoint::start().await;
        endpoint.answer(200, json!({"access_token": "t", "expires_in": 60, "refresh_expires_in": 1800}));
        let basic = client(&endpoint.url, ClientAuthentication::ClientSecretBasic { secret: "s3cr:t/+".into() });
        let granted = grant(&basic, &FORM, Default::default()).await.unwrap();
        assert_eq!(
            (granted.access_token.as_str(), granted.expires_in, granted.refresh_expires_in),
            ("t", Some(60), Some(1800))
        );
        let form = endpoint.forms().pop().unwrap();
        // RFC 6749 §2.3.1: id and secret form-encoded, then joined and base64-encoded.
        assert_eq!(form["(authorization)"], format!("Basic {}", STANDARD.encode("gate+way%3A1:s3cr%3At%2F%2B")));
        assert_eq!((form["grant_type"].as_str(), form["refresh_token"].as_str()), ("refresh_token", "r1"));
        assert!(!form.contains_key("client_secret"));

        let post = client(&endpoint.url, ClientAuthentication::ClientSecretPost { secret: "s3cr:t/+".into() });
        grant(&post, &FORM, Default::default()).await.unwrap();
        let form = endpoint.forms().pop().unwrap();
        assert_eq!((form["client_id"].as_str(), form["client_secret"].as_str()), ("gate way:1", "s3cr:t/+"));
        assert!(!form.contains_key("(authorization)"));

        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let pem =
            format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", STANDARD.encode(pkcs8.as_ref()));
        let jwt = ClientAuthentication::PrivateKeyJwt {
            private_key: pem,
            algorithm: SigningAlgorithm::ES256,
            key_id: Some("k1".into()),
        };
        grant(&client(&endpoint.url, jwt), &FORM, Default::default()).await.unwrap();
        let form = endpoint.forms().pop().unwrap();
        assert_eq!(form["client_assertion_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        let assertion = &form["client_assertion"];
        let (signed, signature) = assertion.rsplit_once('.').unwrap();
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref());
        public
            .verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(signature).unwrap())
            .expect("signed with the client's key");
        let part = |i: usize| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(signed.split('.').nth(i).unwrap()).unwrap()).unwrap()
        };
        assert_eq!((part(0)["alg"].as_str(), part(0)["kid"].as_str()), (Some("ES256"), Some("k1")));
        let claims = part(1);
        assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some("gate way:1"), Some("gate way:1")));
        assert_eq!(claims["aud"].as_str(), Some(endpoint.url.as_str()));
        assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 60);
    }

    #[tokio::test]
    async fn refusals_name_the_providers_error_and_failures_the_endpoint() {
        let endpoint = TokenEndpoint::start().await;
        let post = client(&endpoint.url, ClientAuthentication::ClientSecretPost { secret: "s".into() });
        endpoint.answer(400, json!({"error": "invalid_grant", "error_description": "Token is not active"}));
        let refused = grant(&post, &FORM, Default::default()).await.err().unwrap();
        assert!(refused.is_invalid_grant());
        assert_eq!(refused.reason(), "invalid_grant: Token is not active");
        endpoint.answer(502, json!("bad gateway"));
        let failed = grant(&post, &FORM, Default::default()).await.err().unwrap();
        assert_eq!(
            failed,
            GrantError::Failed(format!("the token endpoint {} answered HTTP 502 Bad Gateway", endpoint.url))
        );
        endpoint.answer(200, json!({"token_type": "Bearer"}));
        let failed = grant(&post, &FORM, Default::default()).await.err().unwrap().reason();
        assert!(
            failed.starts_with(&format!("the token endpoint {} answered without an access token", endpoint.url)),
            "{failed}"
        );
        let nowhere = client("http://127.0.0.1:1/token", ClientAuthentication::ClientSecretPost { secret: "s".into() });
        let failed = grant(&nowhere, &FORM, Default::default()).await.err().unwrap().reason();
        assert!(failed.starts_with("the token endpoint http://127.0.0.1:1/token: "), "{failed}");
        let hs = ClientAuthentication::PrivateKeyJwt {
            private_key: "k".into(),
            algorithm: SigningAlgorithm::HS256,
            key_id: None,
        };
        let failed = grant(&client(&endpoint.url, hs), &FORM, Default::default()).await.err().unwrap().reason();
        assert_eq!(failed, "private_key_jwt needs RS256 or ES256, not HS256");
    }
}
