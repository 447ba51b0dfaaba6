//! The identity provider and the token-checking upstreams on their own, before any gateway
//! stands between them: Keycloak (e2e/src/keycloak.rs) issues tokens by client credentials
//! (client secret, `private_key_jwt`, `client_secret_jwt`), standard token exchange and the
//! authorization code flow with PKCE (walked by the harness's browser), and the upstreams of
//! e2e/peers/verifying.py (FastMCP's `JWTVerifier`, PyJWT in FastAPI) accept exactly the
//! tokens meant for them. Keycloak's own event store counts the grants.

use base64::Engine;
use manifold_e2e::keycloak::{self, Browser, Keycloak};
use manifold_e2e::peers::{Sdk, Upstream, run_client_with, text};
use manifold_e2e::stub::{Reply, Stub};
use manifold_e2e::tokens::now;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A token's claims, read without verification (the peers verify).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap_or_else(|| panic!("not a JWT: {token:.20}…"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Whether a token's `aud` (a string or a list) names `audience`.
fn has_audience(claims: &Value, audience: &str) -> bool {
    match &claims["aud"] {
        Value::String(aud) => aud == audience,
        Value::Array(auds) => auds.iter().any(|a| a == audience),
        _ => false,
    }
}

/// The two verifying upstreams, checking Keycloak's JWKS, issuer and the `upstream-api` audience.
async fn verifying_peers(keycloak: &Keycloak) -> (Upstream, Upstream) {
    let (jwks, issuer) = (keycloak.jwks_url(), keycloak.issuer());
    let args = ["--jwks-uri", &jwks, "--issuer", &issuer, "--audience", keycloak::UPSTREAM_AUDIENCE];
    (Upstream::verifying("mcp", &args).await, Upstream::verifying("api", &args).await)
}

/// The `whoami` claims the FastMCP peer verified, through the Python `mcp` client.
async fn mcp_whoami(peer: &Upstream, token: &str) -> Value {
    let results = run_client_with(
        &peer.mcp_url(),
        Sdk::Mcp,
        &[format!("Authorization: Bearer {token}")],
        json!([{"op": "call", "name": "whoami", "arguments": {}}]),
    )
    .await;
    serde_json::from_str(text(&results[0])).expect("whoami returns JSON")
}

/// An MCP `initialize` POSTed to the FastMCP peer with `token`: the HTTP status.
async fn mcp_status(peer: &Upstream, token: &str) -> StatusCode {
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    reqwest::Client::new()
        .post(peer.mcp_url())
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .expect("POST to the MCP peer")
        .status()
}

/// `GET /whoami` on the API peer with `token`: the response.
async fn api_whoami(peer: &Upstream, token: &str) -> reqwest::Response {
    reqwest::Client::new().get(peer.url("/whoami")).bearer_auth(token).send().await.expect("GET /whoami")
}

async fn stats(peer: &Upstream) -> Value {
    reqwest::get(peer.url("/stats")).await.expect("GET /stats").json().await.expect("stats are JSON")
}

#[tokio::test]
async fn a_client_credentials_token_is_accepted_by_both_verifying_upstreams() {
    let keycloak = Keycloak::shared().await;
    let token = keycloak.client_credentials_token().await;
    let minted = claims(&token);
    assert!(has_audience(&minted, keycloak::UPSTREAM_AUDIENCE), "aud: {minted}");
    assert_eq!(minted["azp"], keycloak::GATEWAY);
    let (mcp, api) = verifying_peers(keycloak).await;

    let seen = mcp_whoami(&mcp, &token).await;
    assert_eq!(seen["azp"], keycloak::GATEWAY, "the MCP peer verified {seen}");
    assert_eq!(seen["sub"], minted["sub"]);
    assert_eq!(seen["iss"], keycloak.issuer());

    let response = api_whoami(&api, &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen: Value = response.json().await.expect("claims");
    assert_eq!(seen["azp"], keycloak::GATEWAY, "the API peer verified {seen}");
    assert_eq!(stats(&api).await, json!({"accepted": 1, "refused": 0}));
}

#[tokio::test]
async fn tokens_for_another_audience_are_refused_by_both_verifying_upstreams() {
    let keycloak = Keycloak::shared().await;
    // The inbound token is for the gateway (aud manifold-gateway), not for upstreams.
    let inbound = keycloak.password_token("alice").await;
    assert!(!has_audience(&claims(&inbound), keycloak::UPSTREAM_AUDIENCE));
    let (mcp, api) = verifying_peers(keycloak).await;

    assert_eq!(mcp_status(&mcp, &inbound).await, StatusCode::UNAUTHORIZED);
    assert_eq!(mcp_status(&mcp, "not-a-jwt").await, StatusCode::UNAUTHORIZED);
    assert_eq!(stats(&mcp).await, json!({"accepted": 0, "refused": 2}));

    let response = api_whoami(&api, &inbound).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers().get("www-authenticate").expect("a challenge").to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer") && challenge.contains("invalid_token"), "{challenge}");
    assert_eq!(stats(&api).await, json!({"accepted": 0, "refused": 1}));
}

#[tokio::test]
async fn standard_token_exchange_gives_the_gateway_an_upstream_token_of_the_same_user() {
    let keycloak = Keycloak::shared().await;
    let before = keycloak.events(keycloak::GATEWAY, "TOKEN_EXCHANGE").await;
    let inbound = keycloak.password_token("alice").await;
    let inbound_claims = claims(&inbound);
    assert!(has_audience(&inbound_claims, keycloak::GATEWAY), "inbound aud: {inbound_claims}");
    assert_eq!(inbound_claims["azp"], keycloak::APP);
    assert_eq!(inbound_claims["department"], keycloak::department("alice"));
    assert_eq!(inbound_claims["email"], keycloak::email("alice"));

    let (status, body) = keycloak
        .token_request(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("client_id", keycloak::GATEWAY),
            ("client_secret", keycloak::GATEWAY_SECRET),
            ("subject_token", &inbound),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
            ("requested_token_type", "urn:ietf:params:oauth:token-type:access_token"),
            ("audience", keycloak::UPSTREAM_AUDIENCE),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "token exchange: {body}");
    let exchanged = body["access_token"].as_str().expect("an access_token").to_owned();
    let exchanged_claims = claims(&exchanged);
    assert_eq!(exchanged_claims["sub"], keycloak.user_id("alice").await);
    assert_eq!(exchanged_claims["sub"], inbound_claims["sub"]);
    assert_eq!(exchanged_claims["azp"], keycloak::GATEWAY);
    assert!(has_audience(&exchanged_claims, keycloak::UPSTREAM_AUDIENCE), "exchanged aud: {exchanged_claims}");
    assert!(!has_audience(&exchanged_claims, keycloak::GATEWAY), "exchanged aud: {exchanged_claims}");
    assert_eq!(keycloak.events(keycloak::GATEWAY, "TOKEN_EXCHANGE").await, before + 1);

    let (_mcp, api) = verifying_peers(keycloak).await;
    let seen: Value = api_whoami(&api, &exchanged).await.json().await.expect("claims");
    assert_eq!(seen["sub"], inbound_claims["sub"]);
    assert_eq!(seen["department"], keycloak::department("alice"));
}

/// A `private_key_jwt` client assertion of `client_id` for `keycloak`, signed with `alg`'s key.
fn signed_assertion(
    keycloak: &Keycloak,
    client_id: &str,
    alg: jsonwebtoken::Algorithm,
    key: jsonwebtoken::EncodingKey,
    kid: Option<String>,
) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid;
    let claims = json!({
        "iss": client_id, "sub": client_id, "aud": keycloak.issuer(),
        "jti": format!("{client_id}-{}-{}", now(), keycloak::pkce().0), "iat": now(), "exp": now() + 60,
    });
    jsonwebtoken::encode(&header, &claims, &key).expect("signing works")
}

async fn assertion_grant(keycloak: &Keycloak, assertion: &str) -> (StatusCode, Value) {
    keycloak
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion),
        ])
        .await
}

#[tokio::test]
async fn signed_jwt_clients_get_tokens_and_keycloak_counts_each_grant() {
    let keycloak = Keycloak::shared().await;
    let before = keycloak.events(keycloak::SIGNED, "CLIENT_LOGIN").await;
    for (alg, algorithm) in [("RS256", jsonwebtoken::Algorithm::RS256), ("ES256", jsonwebtoken::Algorithm::ES256)] {
        let (pem, kid) = keycloak::signed_jwt_key(alg);
        let key = match algorithm {
            jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
            _ => jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()),
        }
        .expect("a fixture key");
        let (status, body) =
            assertion_grant(keycloak, &signed_assertion(keycloak, keycloak::SIGNED, algorithm, key, Some(kid))).await;
        assert_eq!(status, StatusCode::OK, "{alg} assertion: {body}");
        let minted = claims(body["access_token"].as_str().expect("an access_token"));
        assert_eq!(minted["azp"], keycloak::SIGNED);
        assert!(has_audience(&minted, keycloak::UPSTREAM_AUDIENCE), "aud: {minted}");
    }
    // An assertion signed by a key Keycloak does not hold for the client is refused, and
    // counted as an error, not as a login.
    let attacker =
        std::fs::read(manifold_e2e::repo_root().join("e2e/fixtures/keys/attacker.pem")).expect("fixture key");
    let forged = signed_assertion(
        keycloak,
        keycloak::SIGNED,
        jsonwebtoken::Algorithm::RS256,
        jsonwebtoken::EncodingKey::from_rsa_pem(&attacker).expect("an RSA key"),
        Some(keycloak::signed_jwt_key("RS256").1),
    );
    let (status, body) = assertion_grant(keycloak, &forged).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "forged assertion: {body}");
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(keycloak.events(keycloak::SIGNED, "CLIENT_LOGIN").await, before + 2);

    // A client registered by the test with a key of its own.
    let signer = manifold_e2e::tokens::Signer::rsa("rsa-b", "test-registered-rs256");
    keycloak.add_signed_jwt_client("test-registered", &manifold_e2e::tokens::jwks(&[&signer])).await;
    let assertion = signer.token(&json!({
        "iss": "test-registered", "sub": "test-registered", "aud": keycloak.issuer(),
        "jti": keycloak::pkce().0, "iat": now(), "exp": now() + 60,
    }));
    let (status, body) = assertion_grant(keycloak, &assertion).await;
    assert_eq!(status, StatusCode::OK, "assertion of a registered key: {body}");
    assert_eq!(claims(body["access_token"].as_str().expect("an access_token"))["azp"], "test-registered");

    // client_secret_jwt (HS256 over the client secret), with a shortened token lifespan.
    keycloak.set_token_lifespan(keycloak::SECRET_JWT, 7).await;
    let assertion = signed_assertion(
        keycloak,
        keycloak::SECRET_JWT,
        jsonwebtoken::Algorithm::HS256,
        jsonwebtoken::EncodingKey::from_secret(keycloak::SECRET_JWT_SECRET.as_bytes()),
        None,
    );
    let (status, body) = assertion_grant(keycloak, &assertion).await;
    assert_eq!(status, StatusCode::OK, "HS256 assertion: {body}");
    let minted = claims(body["access_token"].as_str().expect("an access_token"));
    assert_eq!(minted["exp"].as_i64().expect("exp") - minted["iat"].as_i64().expect("iat"), 7, "{minted}");
}

#[tokio::test]
async fn the_browser_consents_with_pkce_and_the_refresh_token_dies_with_the_session() {
    let keycloak = Keycloak::shared().await;
    let callback = Stub::start(|_| Reply { body: "callback received".into(), ..Reply::status(200) }).await;
    let redirect_uri = callback.url(keycloak::CALLBACK_PATH);
    let (before_code, before_refresh) = (
        keycloak.events(keycloak::CONSENT, "CODE_TO_TOKEN").await,
        keycloak.events(keycloak::CONSENT, "REFRESH_TOKEN").await,
    );
    let (verifier, challenge) = keycloak::pkce();
    let authorize = url::Url::parse_with_params(
        &keycloak.authorization_url(),
        [
            ("response_type", "code"),
            ("client_id", keycloak::CONSENT),
            ("redirect_uri", &redirect_uri),
            ("scope", "openid"),
            ("state", "state-1234"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .expect("an authorization URL");

    let browser = Browser::new(keycloak);
    // The registered loopback URI matches any port, but only this path.
    let mut elsewhere = authorize.clone();
    let pairs: Vec<(String, String)> = authorize
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "redirect_uri" { callback.url("/elsewhere") } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    elsewhere.query_pairs_mut().clear().extend_pairs(pairs);
    let (status, page) =
        browser.authorize(elsewhere.as_str(), "bob", &keycloak::password("bob")).await.expect_err("an error page");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page:.300}");
    assert!(page.contains("redirect_uri"), "{page:.300}");

    let (status, body) = browser.consent(authorize.as_str(), "bob", &keycloak::password("bob")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "callback received"));
    let requests = callback.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, keycloak::CALLBACK_PATH);
    let query: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(requests[0].query.as_bytes()).into_owned().collect();
    assert_eq!(query["state"], "state-1234");
    assert_eq!(query["iss"], keycloak.issuer());

    let code_grant = |verifier: String| {
        let (code, redirect_uri) = (query["code"].clone(), redirect_uri.clone());
        async move {
            keycloak
                .token_request(&[
                    ("grant_type", "authorization_code"),
                    ("client_id", keycloak::CONSENT),
                    ("client_secret", keycloak::CONSENT_SECRET),
                    ("code", &code),
                    ("redirect_uri", &redirect_uri),
                    ("code_verifier", &verifier),
                ])
                .await
        }
    };
    // PKCE binds the code: the wrong verifier is refused.
    let (status, body) = code_grant(keycloak::pkce().0).await;
    assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &json!("invalid_grant")), "{body}");
    drop(verifier);

    // A second walk, with a fresh PKCE pair, goes straight through on Keycloak's session
    // cookie, and stops before the callback.
    let (verifier, challenge) = keycloak::pkce();
    let mut again = authorize.clone();
    again.query_pairs_mut().clear().extend_pairs([
        ("response_type", "code"),
        ("client_id", keycloak::CONSENT),
        ("redirect_uri", &redirect_uri),
        ("scope", "openid"),
        ("state", "state-5678"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let back = browser.authorize(again.as_str(), "bob", "unused: the session is there").await.expect("a callback URL");
    assert!(back.starts_with(&redirect_uri), "{back}");
    assert_eq!(callback.requests().len(), 1, "authorize stops before the callback");
    let back = url::Url::parse(&back).expect("a URL");
    let code = back.query_pairs().find(|(k, _)| k == "code").expect("a code").1.into_owned();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", keycloak::CONSENT),
        ("client_secret", keycloak::CONSENT_SECRET),
        ("code", &code),
        ("redirect_uri", &redirect_uri),
        ("code_verifier", &verifier),
    ];
    let (status, tokens) = keycloak.token_request(&form).await;
    assert_eq!(status, StatusCode::OK, "code grant: {tokens}");
    let minted = claims(tokens["access_token"].as_str().expect("an access_token"));
    assert_eq!(minted["sub"], keycloak.user_id("bob").await);
    assert_eq!(minted["azp"], keycloak::CONSENT);
    assert_eq!(minted["department"], keycloak::department("bob"));
    assert!(has_audience(&minted, keycloak::UPSTREAM_AUDIENCE), "aud: {minted}");

    let refresh = |refresh_token: String| async move {
        keycloak
            .token_request(&[
                ("grant_type", "refresh_token"),
                ("client_id", keycloak::CONSENT),
                ("client_secret", keycloak::CONSENT_SECRET),
                ("refresh_token", &refresh_token),
            ])
            .await
    };
    let refresh_token = tokens["refresh_token"].as_str().expect("a refresh_token").to_owned();
    let (status, refreshed) = refresh(refresh_token.clone()).await;
    assert_eq!(status, StatusCode::OK, "refresh: {refreshed}");
    assert_eq!(claims(refreshed["access_token"].as_str().expect("an access_token"))["sub"], minted["sub"]);

    keycloak.revoke("bob").await;
    let newest = refreshed["refresh_token"].as_str().expect("a refresh_token").to_owned();
    let (status, body) = refresh(newest).await;
    assert_eq!((status, &body["error"]), (StatusCode::BAD_REQUEST, &json!("invalid_grant")), "after revoke: {body}");

    // One code grant and one refresh succeeded; the refused ones count as `<TYPE>_ERROR`.
    assert_eq!(keycloak.events(keycloak::CONSENT, "CODE_TO_TOKEN").await, before_code + 1);
    assert_eq!(keycloak.events(keycloak::CONSENT, "REFRESH_TOKEN").await, before_refresh + 1);
}
