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
