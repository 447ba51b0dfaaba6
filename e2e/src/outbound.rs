//! Scenarios of outbound identity shared by its tests (e2e/tests/local_upstream_auth.rs and
//! local_security_upstream.rs): manifests for Keycloak-backed routes and mounts, the verifying
//! upstreams, and the calls and answers a client sees.

use crate::keycloak::{self, Keycloak};
use crate::peers::Upstream;
use crate::{LocalStack, yaml};
use serde_json::{Value, json};

/// A Secret of tenant `acme` holding `entries` (stringData, flow style).
pub fn secret(name: &str, entries: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: acme}}\nstringData: {{{entries}}}\n"
    )
}

/// The route's authentication: Keycloak's tokens for the gateway.
pub fn keycloak_callers(keycloak: &Keycloak) -> String {
    format!(
        "authentication: {{jwt: [{{issuer: '{}', audiences: ['{}'], jwks: {{uri: '{}'}}}}]}}",
        keycloak.issuer(),
        keycloak::GATEWAY,
        keycloak.jwks_url()
    )
}

/// The two verifying upstreams, checking Keycloak's JWKS, issuer and the `upstream-api` audience.
pub async fn verifying_peers(keycloak: &Keycloak) -> (Upstream, Upstream) {
    let (jwks, issuer) = (keycloak.jwks_url(), keycloak.issuer());
    let args = ["--jwks-uri", &jwks, "--issuer", &issuer, "--audience", keycloak::UPSTREAM_AUDIENCE];
    tokio::join!(Upstream::verifying("mcp", &args), Upstream::verifying("api", &args))
}

/// An McpServer for the OpenAPI peer, with `auth` (flow style).
pub fn api_server(name: &str, api: &Upstream, auth: &str) -> String {
    yaml::openapi_server(name, &format!("url: \"{}\"\nauth: {auth}", api.url("/openapi.json")))
}

/// A stateless `tools/call` of `tool` as `token`'s holder: the JSON-RPC answer.
pub async fn call(url: &str, token: Option<&str>, tool: &str) -> Value {
    let mut request = crate::raw::stateless(url, json!(1), "tools/call", json!({"name": tool, "arguments": {}}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let text = request.send().await.expect("the gateway answers").text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The claims an upstream verified, from a `whoami` call's answer.
pub fn whoami(answer: &Value) -> Value {
    let text = answer["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no result: {answer}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("whoami is not JSON ({e}): {text}"))
}

/// The consent link a stateless caller is asked to open.
pub fn consent_link(answer: &Value) -> String {
    let asked = &answer["result"]["inputRequests"]["dev.manifold/consent"];
    assert_eq!(asked["method"], "elicitation/create", "{answer}");
    assert_eq!(asked["params"]["mode"], "url", "{answer}");
    asked["params"]["url"].as_str().unwrap_or_else(|| panic!("no link: {answer}")).to_owned()
}

/// A port free now, for a gateway whose callback URL must be known before it starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// A gateway replica of the consent scenario: Keycloak callers, one mount with per-user
/// tokens whose callback is at `callback_port`, tokens in `redis`, sessions sealed with `keys`.
pub async fn consent_replica(
    keycloak: &Keycloak,
    mcp: &Upstream,
    port: u16,
    callback_port: u16,
    redis: &str,
    keys: &std::path::Path,
) -> LocalStack {
    let auth = format!(
        "{{oauth2AuthorizationCode: {{tokenUrl: '{}', authorizationUrl: '{}', clientId: {}, clientSecretRef: {{name: idp, key: secret}}, redirectUrl: 'http://127.0.0.1:{callback_port}{}', scopes: [openid]}}}}",
        keycloak.token_url(),
        keycloak.authorization_url(),
        keycloak::CONSENT,
        keycloak::CALLBACK_PATH
    );
    let manifests = secret("idp", &format!("secret: {}", keycloak::CONSENT_SECRET))
        + &yaml::server("tools", &mcp.mcp_url(), &format!("auth: {auth}"))
        + &yaml::route("r", &format!("mounts: [{{server: tools}}], {}", keycloak_callers(keycloak)));
    let (redis, keys) = (redis.to_owned(), keys.to_owned());
    LocalStack::start_with(&manifests, move |settings| {
        settings.listen = ([127, 0, 0, 1], port).into();
        settings.token_store = Some(redis.parse().expect("a Redis URL"));
        settings.session_keys = Some(keys);
    })
    .await
}

/// A file with one session key, shared by replicas.
pub fn key_ring() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=\n").unwrap();
    file
}

/// A session of the 2025-11-25 revision, as `token`'s holder, that declares URL elicitation.
pub async fn session_with_url_elicitation(url: &str, token: &str) -> crate::raw::RawSession {
    let mut session = crate::raw::RawSession::new(url).with_bearer(token);
    let init = session
        .request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {"url": {}}}, "clientInfo": {"name": "raw", "version": "0"}}),
        )
        .await;
    assert_eq!(init.status, 200, "{}", init.body);
    session.adopt(&init).await;
    session
}
