//! Test-only: an in-process token endpoint that records every request it receives (the
//! `Authorization` header and the form) and answers what a test tells it to, the test keys
//! under `gateway/tests/keys/`, and callers to ask for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use manifold_api::config::{ClientAuthentication, TokenClient};
use serde_json::{Map, Value, json};

use crate::principal::{CallerToken, Principal, Source};

pub const RSA_PRIVATE: &str = include_str!("../../../tests/keys/rsa-private.pem");
pub const RSA_PUBLIC: &str = include_str!("../../../tests/keys/rsa-public.pem");
pub const EC_PRIVATE: &str = include_str!("../../../tests/keys/ec-private.pem");
pub const EC_PUBLIC: &str = include_str!("../../../tests/keys/ec-public.pem");

/// One request the token endpoint received.
#[derive(Clone, Debug)]
pub struct Received {
    pub authorization: Option<String>,
    pub form: HashMap<String, String>,
}

/// What the endpoint answers the `n`th request (from 1): status and JSON body.
type Answer = dyn Fn(&Received, usize) -> (u16, Value) + Send + Sync;

pub struct TokenServer {
    /// The token endpoint's URL.
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl TokenServer {
    /// A token endpoint answering `token-<n>`, good for an hour.
    pub async fn start() -> Self {
        Self::answering(Duration::ZERO, |_, n| (200, granted(&format!("token-{n}"), 3600))).await
    }

    /// A token endpoint that waits `delay` before each answer `answer` makes.
    pub async fn answering(
        delay: Duration,
        answer: impl Fn(&Received, usize) -> (u16, Value) + Send + Sync + 'static,
    ) -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answer: Arc<Answer> = Arc::new(answer);
        let log = received.clone();
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (log, answer) = (log.clone(), answer.clone());
                async move {
                    let request = Received {
                        authorization: headers
                            .get("authorization")
                            .map(|v| v.to_str().expect("an ASCII Authorization").to_owned()),
                        form: url::form_urlencoded::parse(&body).into_owned().collect(),
                    };
                    assert_eq!(
                        headers.get("content-type").map(|v| v.as_bytes()),
                        Some(&b"application/x-www-form-urlencoded"[..])
                    );
                    let n = {
                        let mut log = log.lock().expect("request log");
                        log.push(request.clone());
                        log.len()
                    };
                    tokio::time::sleep(delay).await;
                    let (status, body) = answer(&request, n);
                    (StatusCode::from_u16(status).expect("a status"), axum::Json(body))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        TokenServer { url: format!("http://{address}/token"), received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("request log").clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().expect("request log").len()
    }
}

/// An RFC 6749 §5.1 answer.
pub fn granted(token: &str, expires_in: u64) -> Value {
    json!({ "access_token": token, "token_type": "Bearer", "expires_in": expires_in })
}

/// A client of `url` authenticating with `client_secret_post`.
pub fn client(url: &str) -> TokenClient {
    TokenClient {
        token_url: url.into(),
        client_id: "gateway".into(),
        authentication: ClientAuthentication::ClientSecretPost { secret: "s3cret-value".into() },
    }
}

/// A URL where nothing listens.
pub async fn closed_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("an address");
    drop(listener);
    format!("http://{address}/token")
}

/// A caller authenticated by a JWT of `https://idp.test` (the token itself is `jwt`), with
/// `claims`.
pub fn caller(name: &str, jwt: Option<&str>, claims: Value) -> Principal {
    let Value::Object(mut claims) = claims else { panic!("claims are an object") };
    claims.entry("sub").or_insert_with(|| name.into());
    let mut principal = Principal::new(name.into(), vec![], vec![], claims, Source::Jwt("https://idp.test".into()));
    principal.token = jwt.map(CallerToken::new);
    principal
}

/// No claims.
pub fn no_claims() -> Value {
    Value::Object(Map::new())
}

/// Identity for `config` at a test mount `acme/tools` server `api`, with an in-memory token store.
pub fn identity(config: &manifold_api::config::OutboundAuth) -> super::Identity {
    let tokens = std::sync::Arc::new(super::Tokens::memory(std::sync::Arc::new(crate::mcp::seal::KeyRing::generate())));
    let place = super::Place { namespace: "acme", route: "tools", server: "api", tokens: &tokens };
    super::Identity::new(config, manifold_runtime::egress::Egress::default(), &place).expect("a valid config")
}
