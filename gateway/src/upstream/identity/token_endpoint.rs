//! One OAuth2 token endpoint, called by the gateway as a client: a grant's form (RFC 6749
//! §4) plus the client's authentication (`client_secret_basic`, `client_secret_post` or an
//! RFC 7523 `private_key_jwt` assertion) goes out as a form POST through the egress-guarded
//! client; a §5.1 answer comes back as [`Granted`], a §5.2 one as [`GrantError::Refused`].
//! Errors name the endpoint and the provider's words, never a secret.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http_body_util::{BodyExt, Full, Limited};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use manifold_api::config::{ClientAuthentication, SigningAlgorithm, TokenClient};
use manifold_runtime::egress::Egress;
use serde::Deserialize;
use serde_json::Value;
use url::form_urlencoded;

use crate::upstream::client::HttpClient;

/// Token answers are a few kilobytes; more is not a token endpoint.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// A client assertion is good for this long (RFC 7523 wants it short).
const ASSERTION_LIFETIME_SECS: u64 = 60;
const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A token endpoint and how the gateway authenticates to it.
pub struct TokenEndpoint {
    url: String,
    client_id: String,
    authentication: Authentication,
    egress: Egress,
    timeout: Duration,
}

enum Authentication {
    /// The `Authorization: Basic` value, computed once.
    Basic(String),
    Post(String),
    /// Boxed: a key and a header are large beside a string.
    PrivateKeyJwt(Box<(EncodingKey, Header)>),
}

/// What a token endpoint granted (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Clone, PartialEq, Eq)]
pub struct Granted {
    pub access_token: String,
    /// Seconds; none when the provider did not say.
    pub expires_in: Option<u64>,
    pub refresh_token: Option<String>,
    /// Seconds the refresh token lives (Keycloak's and others' `refresh_expires_in`); 0 for
    /// offline tokens, none when the provider did not say.
    pub refresh_expires_in: Option<u64>,
    pub id_token: Option<String>,
    pub issued_token_type: Option<String>,
    pub scope: Option<String>,
}

/// Why a grant failed, with the token endpoint's URL in its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// No answer: no connection, a broken one, or none in time.
    #[error("{0}")]
    Unreachable(String),
    /// The provider answered with an OAuth error (RFC 6749 §5.2).
    #[error("the token endpoint {token_url} refused: {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused { token_url: String, error: String, description: Option<String> },
    /// An answer that is not a token nor an OAuth error.
    #[error("{0}")]
    Invalid(String),
}

impl GrantError {
    /// `invalid_grant`: the code or refresh token is no good (used, revoked, expired).
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, GrantError::Refused { error, .. } if error == "invalid_grant")
    }

    /// The provider's `error` (and `error_description`), or why there was no answer.
    pub fn reason(&self) -> String {
        match self {
            GrantError::Refused { error, description: Some(description), .. } => format!("{error}: {description}"),
            GrantError::Refused { error, description: None, .. } => error.clone(),
            GrantError::Unreachable(why) | GrantError::Invalid(why) => why.clone(),
        }
    }
}

impl TokenEndpoint {
    /// The endpoint `client` names; a token URL that is not http(s) or a private key that
    /// cannot sign is refused here, once.
    pub fn new(client: &TokenClient, egress: Egress, timeout: Duration) -> Result<Self, String> {
        let uri: http::Uri = client.token_url.parse().map_err(|e| format!("tokenUrl `{}`: {e}", client.token_url))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!("tokenUrl `{}` is not an http(s) URL", client.token_url));
        }
        let authentication = match &client.authentication {
            ClientAuthentication::ClientSecretBasic { secret } => {
                // RFC 6749 §2.3.1: each part form-encoded, then joined and base64-encoded.
                let pair = format!("{}:{}", form_encoded(&client.client_id), form_encoded(secret));
                Authentication::Basic(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
            }
            ClientAuthentication::ClientSecretPost { secret } => Authentication::Post(secret.clone()),
            ClientAuthentication::PrivateKeyJwt { private_key, algorithm, key_id } => {
                let (algorithm, key) = match algorithm {
                    SigningAlgorithm::RS256 => (Algorithm::RS256, EncodingKey::from_rsa_pem(private_key.as_bytes())),
                    SigningAlgorithm::ES256 => (Algorithm::ES256, EncodingKey::from_ec_pem(private_key.as_bytes())),
                    SigningAlgorithm::HS256 => {
                        return Err("private_key_jwt signs with RS256 or ES256, not HS256".into());
                    }
                };
                let key = key.map_err(|e| format!("the private_key_jwt key is not a {algorithm:?} PEM key: {e}"))?;
                let mut header = Header::new(algorithm);
                header.kid = key_id.clone();
                // A key that parses may still not sign (a truncated RSA key): find out now.
                jsonwebtoken::encode(&header, &serde_json::json!({}), &key)
                    .map_err(|e| format!("the private_key_jwt key cannot sign {algorithm:?}: {e}"))?;
                Authentication::PrivateKeyJwt(Box::new((key, header)))
            }
        };
        Ok(TokenEndpoint {
            url: client.token_url.clone(),
            client_id: client.client_id.clone(),
            authentication,
            egress,
            timeout,
        })
    }

    /// The token endpoint's URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Asks for a token with the grant's `form` (`grant_type` and its parameters); the
    /// client's authentication is added here.
    pub async fn grant(&self, form: &[(&str, &str)]) -> Result<Granted, GrantError> {
        let request = self.request(form)?;
        let exchange = async {
            let response = HttpClient::current(self.egress).send(request).await.map_err(|e| {
                GrantError::Unreachable(format!("the token endpoint {} cannot be reached: {e}", self.url))
            })?;
            let status = response.status();
            let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| GrantError::Unreachable(format!("reading the token endpoint {}'s answer: {e}", self.url)))?
                .to_bytes();
            Ok((status, answer))
        };
        let (status, answer) = tokio::time::timeout(self.timeout, exchange).await.map_err(|_| {
            GrantError::Unreachable(format!("the token endpoint {} did not answer within {:?}", self.url, self.timeout))
        })??;
        self.read(status, &answer)
    }

    /// The form POST: the grant's `form` and the client's authentication.
    fn request(&self, form: &[(&str, &str)]) -> Result<http::Request<Full<Bytes>>, GrantError> {
        let mut body = form_urlencoded::Serializer::new(String::new());
        body.extend_pairs(form);
        let mut request = http::Request::post(&self.url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json");
        match &self.authentication {
            Authentication::Basic(value) => {
                let mut value = http::HeaderValue::try_from(value.as_str())
                    .map_err(|_| self.invalid("the client id or secret cannot be sent in a header"))?;
                value.set_sensitive(true);
                request = request.header(AUTHORIZATION, value);
            }
            Authentication::Post(secret) => {
                body.append_pair("client_id", &self.client_id).append_pair("client_secret", secret);
            }
            Authentication::PrivateKeyJwt(signer) => {
                let (key, header) = &**signer;
                let assertion = self.assertion(key, header)?;
                body.append_pair("client_id", &self.client_id)
                    .append_pair("client_assertion_type", JWT_BEARER_ASSERTION)
                    .append_pair("client_assertion", &assertion);
            }
        }
        request
            .body(Full::new(Bytes::from(body.finish())))
            .map_err(|e| self.invalid(&format!("cannot make the request: {e}")))
    }

    /// RFC 7523 §3: the client's own short-lived JWT, for this endpoint only.
    fn assertion(&self, key: &EncodingKey, header: &Header) -> Result<String, GrantError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = serde_json::json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.url,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        jsonwebtoken::encode(header, &claims, key)
            .map_err(|e| self.invalid(&format!("cannot sign the client assertion: {e}")))
    }

    fn read(&self, status: http::StatusCode, answer: &[u8]) -> Result<Granted, GrantError> {
        let parsed: Result<Answer, _> = serde_json::from_slice(answer);
        if !status.is_success() {
            return match parsed {
                Ok(Answer { error: Some(error), error_description, .. }) => {
                    Err(GrantError::Refused { token_url: self.url.clone(), error, description: error_description })
                }
                _ => Err(self.invalid(&format!("answered HTTP {status} without an OAuth error"))),
            };
        }
        let answer = parsed.map_err(|e| self.invalid(&format!("answered HTTP {status} with no JSON token: {e}")))?;
        let access_token = answer
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.invalid("answered without an access_token"))?;
        Ok(Granted {
            access_token,
            expires_in: seconds(answer.expires_in),
            refresh_token: answer.refresh_token,
            refresh_expires_in: seconds(answer.refresh_expires_in),
            id_token: answer.id_token,
            issued_token_type: answer.issued_token_type,
            scope: answer.scope,
        })
    }

    fn invalid(&self, what: &str) -> GrantError {
        GrantError::Invalid(format!("the token endpoint {} {what}", self.url))
    }
}

/// A token endpoint's answer, success or error.
#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    expires_in: Option<Value>,
    refresh_token: Option<String>,
    refresh_expires_in: Option<Value>,
    id_token: Option<String>,
    issued_token_type: Option<String>,
    scope: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl Granted {
    /// How long the token is good for: `expires_in`, else 5 minutes.
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.expires_in.unwrap_or(300))
    }
}

impl std::fmt::Debug for Granted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |present: bool| if present { "(hidden)" } else { "none" };
        f.debug_struct("Granted")
            .field("access_token", &"(hidden)")
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &hidden(self.refresh_token.is_some()))
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("id_token", &hidden(self.id_token.is_some()))
            .field("issued_token_type", &self.issued_token_type)
            .field("scope", &self.scope)
            .finish()
    }
}

/// A number of seconds, which some providers send as a string.
fn seconds(value: Option<Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn form_encoded(part: &str) -> String {
    form_urlencoded::byte_serialize(part.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::json;

    use super::*;
    use crate::upstream::identity::testing::{self, TokenServer};

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn endpoint(url: &str, authentication: ClientAuthentication) -> TokenEndpoint {
        let client = TokenClient { token_url: url.into(), client_id: "gate way:1".into(), authentication };
        TokenEndpoint::new(&client, Egress::default(), TIMEOUT).expect("a valid token client")
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[tokio::test]
    async fn client_secret_basic_form_encodes_id_and_secret_before_base64() {
        let server = TokenServer::start().await;
        let secret = ClientAuthentication::ClientSecretBasic { secret: "s3cr&t+/= é".into() };
        let granted = endpoint(&server.url, secret).grant(&[("grant_type", "client_credentials")]).await;
        assert_eq!(granted.expect("a token").access_token, "token-1");
        let [received] = &server.received()[..] else { panic!("one request") };
        let basic = received.authorization.as_deref().and_then(|v| v.strip_prefix("Basic ")).expect("Basic");
        let decoded = base64::engine::general_purpose::STANDARD.decode(basic).expect("base64");
        assert_eq!(String::from_utf8(decoded).expect("UTF-8"), "gate+way%3A1:s3cr%26t%2B%2F%3D+%C3%A9");
        assert_eq!(received.form, form(&[("grant_type", "client_credentials")]));
    }

    #[tokio::test]
    async fn client_secret_post_sends_id_and_secret_in_the_form() {
        let server = TokenServer::start().await;
        let secret = ClientAuthentication::ClientSecretPost { secret: "s3cr&t".into() };
        endpoint(&server.url, secret).grant(&[("grant_type", "client_credentials")]).await.expect("a token");
        let [received] = &server.received()[..] else { panic!("one request") };
        assert_eq!(received.authorization, None);
        let expected = [("grant_type", "client_credentials"), ("client_id", "gate way:1"), ("client_secret", "s3cr&t")];
        assert_eq!(received.form, form(&expected));
    }

    #[tokio::test]
    async fn private_key_jwt_sends_an_assertion_signed_by_the_clients_key() {
        let cases = [
            (
                SigningAlgorithm::RS256,
                Algorithm::RS256,
                testing::RSA_PRIVATE,
                DecodingKey::from_rsa_pem(testing::RSA_PUBLIC.as_bytes()),
            ),
            (
                SigningAlgorithm::ES256,
                Algorithm::ES256,
                testing::EC_PRIVATE,
                DecodingKey::from_ec_pem(testing::EC_PUBLIC.as_bytes()),
            ),
        ];
        for (algorithm, expected, private_key, public_key) in cases {
            let server = TokenServer::start().await;
            let authentication = ClientAuthentication::PrivateKeyJwt {
                private_key: private_key.into(),
                algorithm,
                key_id: Some("k1".into()),
            };
            endpoint(&server.url, authentication)
                .grant(&[("grant_type", "client_credentials")])
                .await
                .expect("a token");
            let [received] = &server.received()[..] else { panic!("one request") };
            assert_eq!(received.authorization, None);
            assert_eq!(received.form["client_id"], "gate way:1");
            assert_eq!(received.form["client_assertion_type"], JWT_BEARER_ASSERTION);
            assert!(!received.form.contains_key("client_secret"));
            let assertion = &received.form["client_assertion"];
            let mut validation = Validation::new(expected);
            validation.set_audience(&[&server.url]);
            validation.set_issuer(&["gate way:1"]);
            let verified = jsonwebtoken::decode::<Value>(assertion, &public_key.expect("a public key"), &validation)
                .unwrap_or_else(|e| panic!("{algorithm:?}: the assertion does not verify: {e}"));
            assert_eq!(verified.header.kid.as_deref(), Some("k1"));
            let claims = verified.claims;
            assert_eq!(claims["sub"], "gate way:1");
            assert_eq!(claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"), 60);
            assert!(uuid::Uuid::parse_str(claims["jti"].as_str().expect("jti")).is_ok());
        }
    }

    #[tokio::test]
    async fn a_refusal_is_the_providers_error_and_description() {
        let server = TokenServer::answering(Duration::ZERO, |_, _| {
            (400, json!({ "error": "invalid_scope", "error_description": "no such scope: x" }))
        })
        .await;
        let secret = ClientAuthentication::ClientSecretPost { secret: "s3cr&t".into() };
        let error =
            endpoint(&server.url, secret).grant(&[("grant_type", "client_credentials")]).await.expect_err("refused");
        assert_eq!(
            error,
            GrantError::Refused {
                token_url: server.url.clone(),
                error: "invalid_scope".into(),
                description: Some("no such scope: x".into())
            }
        );
        assert_eq!(
            error.to_string(),
            format!("the token endpoint {} refused: invalid_scope: no such scope: x", server.url)
        );
    }

    #[tokio::test]
    async fn answers_that_are_neither_token_nor_error_are_invalid() {
        let server = TokenServer::answering(Duration::ZERO, |_, n| match n {
            1 => (200, json!({ "token_type": "Bearer" })),
            _ => (502, json!({ "message": "bad gateway" })),
        })
        .await;
        let secret = ClientAuthentication::ClientSecretPost { secret: "s3cr&t".into() };
        let endpoint = endpoint(&server.url, secret);
        let no_token = endpoint.grant(&[("grant_type", "client_credentials")]).await.expect_err("no token");
        assert_eq!(
            no_token,
            GrantError::Invalid(format!("the token endpoint {} answered without an access_token", server.url))
        );
        let no_error = endpoint.grant(&[("grant_type", "client_credentials")]).await.expect_err("no error");
        let expected =
            format!("the token endpoint {} answered HTTP 502 Bad Gateway without an OAuth error", server.url);
        assert_eq!(no_error, GrantError::Invalid(expected));
    }

    #[tokio::test]
    async fn every_field_of_a_grant_is_read_and_none_is_printed() {
        let server = TokenServer::answering(Duration::ZERO, |_, _| {
            let answer = json!({
                "access_token": "at-secret", "expires_in": "120", "refresh_token": "rt-secret", "refresh_expires_in": 1800, "id_token": "it-secret",
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "scope": "a b",
            });
            (200, answer)
        })
        .await;
        let secret = ClientAuthentication::ClientSecretPost { secret: "s3cr&t".into() };
        let granted = endpoint(&server.url, secret).grant(&[("grant_type", "refresh_token")]).await.expect("a token");
        let expected = Granted {
            access_token: "at-secret".into(),
            expires_in: Some(120),
            refresh_token: Some("rt-secret".into()),
            refresh_expires_in: Some(1800),
            id_token: Some("it-secret".into()),
            issued_token_type: Some("urn:ietf:params:oauth:token-type:access_token".into()),
            scope: Some("a b".into()),
        };
        assert_eq!(granted, expected);
        assert_eq!(granted.lifetime(), Duration::from_secs(120));
        let printed = format!("{granted:?}");
        assert!(!printed.contains("secret"), "{printed}");
    }

    #[test]
    fn keys_and_urls_that_cannot_work_are_refused_at_once() {
        let client = |token_url: &str, authentication| TokenClient {
            token_url: token_url.into(),
            client_id: "c".into(),
            authentication,
        };
        let post = || ClientAuthentication::ClientSecretPost { secret: "s".into() };
        let key = |private_key: &str, algorithm| ClientAuthentication::PrivateKeyJwt {
            private_key: private_key.into(),
            algorithm,
            key_id: None,
        };
        let cases = [
            (client("ftp://idp/token", post()), "tokenUrl `ftp://idp/token` is not an http(s) URL"),
            (client("/token", post()), "tokenUrl `/token` is not an http(s) URL"),
            (
                client("http://idp/token", key(testing::RSA_PRIVATE, SigningAlgorithm::HS256)),
                "private_key_jwt signs with RS256 or ES256, not HS256",
            ),
            (
                client("http://idp/token", key("not a key", SigningAlgorithm::RS256)),
                "the private_key_jwt key is not a RS256 PEM key",
            ),
            (
                client("http://idp/token", key(testing::RSA_PRIVATE, SigningAlgorithm::ES256)),
                "the private_key_jwt key is not a ES256 PEM key",
            ),
        ];
        for (client, expected) in cases {
            let error = TokenEndpoint::new(&client, Egress::default(), TIMEOUT).err().expect("refused");
            assert!(error.starts_with(expected), "{error}");
        }
    }
}
