//! Outbound identity against a real identity provider (Keycloak, e2e/src/keycloak.rs) and
//! real upstreams that verify what they are sent (e2e/peers/verifying.py: FastMCP's
//! `JWTVerifier`, PyJWT in FastAPI): client credentials fetched once for many calls and again
//! at expiry, a token exchange whose upstream sees the caller, JWTs the gateway signs, the
//! per-user consent flow across two replicas sharing Redis, a revoked consent asked again,
//! and a provider that is down failing only its mount. The attacks on the consent flow are in
//! `local_security_upstream.rs`.

use std::time::Duration;

use manifold_e2e::keycloak::{self, Browser, Keycloak};
use manifold_e2e::outbound::{
    api_server, call, consent_link, consent_replica, free_port, key_ring, keycloak_callers, secret,
    session_with_url_elicitation, verifying_peers, whoami,
};
use manifold_e2e::peers::Upstream;
use manifold_e2e::redis::RedisServer;
use manifold_e2e::{LocalStack, repo_root, yaml};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_are_fetched_once_for_many_calls_and_again_at_expiry() {
    let keycloak = Keycloak::shared().await;
    keycloak.set_token_lifespan(keycloak::GATEWAY, 8).await;
    let (mcp, api) = verifying_peers(keycloak).await;
    let auth = format!(
        "{{oauth2ClientCredentials: {{tokenUrl: '{}', clientId: {}, clientSecretRef: {{name: idp, key: secret}}}}}}",
        keycloak.token_url(),
        keycloak::GATEWAY
    );
    let manifests = secret("idp", &format!("secret: {}", keycloak::GATEWAY_SECRET))
        + &yaml::server("tools", &mcp.mcp_url(), &format!("auth: {auth}"))
        + &api_server("api", &api, &auth)
        + &yaml::route("r", "mounts: [{server: tools}, {server: api}]");
    let stack = LocalStack::start(&manifests).await;
    let url = stack.url("/acme/r/mcp");

    let before = keycloak.events(keycloak::GATEWAY, "CLIENT_LOGIN").await;
    let calls = (0..20).flat_map(|_| [call(&url, None, "tools_whoami"), call(&url, None, "api_whoami")]);
    for answer in futures::future::join_all(calls).await {
        let seen = whoami(&answer);
        assert_eq!(seen["azp"], keycloak::GATEWAY, "{answer}");
        assert_eq!(seen["iss"], keycloak.issuer());
    }
    let fetched = keycloak.events(keycloak::GATEWAY, "CLIENT_LOGIN").await - before;
    assert_eq!(fetched, 2, "one token per mount for 40 calls");

    // Past the tokens' 8 s: each mount fetches once more, before they run out.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let answers = futures::future::join_all((0..5).map(|_| call(&url, None, "tools_whoami"))).await;
    assert!(answers.iter().all(|a| whoami(a)["azp"] == keycloak::GATEWAY));
    assert_eq!(whoami(&call(&url, None, "api_whoami").await)["azp"], keycloak::GATEWAY);
    let fetched = keycloak.events(keycloak::GATEWAY, "CLIENT_LOGIN").await - before;
    assert_eq!(fetched, 4, "one more token per mount after expiry");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exchanged_token_carries_the_callers_subject_to_the_upstream() {
    let keycloak = Keycloak::shared().await;
    let (mcp, api) = verifying_peers(keycloak).await;
    let auth = format!(
        "{{tokenExchange: {{tokenUrl: '{}', clientId: {}, clientSecretRef: {{name: idp, key: secret}}, audience: {}}}}}",
        keycloak.token_url(),
        keycloak::GATEWAY,
        keycloak::UPSTREAM_AUDIENCE
    );
    let manifests = secret("idp", &format!("secret: {}", keycloak::GATEWAY_SECRET))
        + &yaml::server("tools", &mcp.mcp_url(), &format!("auth: {auth}"))
        + &api_server("api", &api, &auth)
        + &yaml::route("r", &format!("mounts: [{{server: tools}}, {{server: api}}], {}", keycloak_callers(keycloak)));
    let stack = LocalStack::start(&manifests).await;
    let url = stack.url("/acme/r/mcp");

    for user in keycloak::USERS {
        let token = keycloak.password_token(user).await;
        let subject = keycloak.user_id(user).await;
        for tool in ["tools_whoami", "api_whoami"] {
            let seen = whoami(&call(&url, Some(&token), tool).await);
            assert_eq!(seen["sub"], subject, "{tool} sees {user}");
            assert_eq!(seen["azp"], keycloak::GATEWAY, "the gateway exchanged it");
            assert_eq!(seen["department"], keycloak::department(user));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jwts_the_gateway_signs_are_verified_by_the_upstreams() {
    let keycloak = Keycloak::shared().await;
    let keys = repo_root().join("gateway/tests/keys");
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), "an-hs256-secret-shared-with-the-api-0123456789").unwrap();
    let public = keys.join("rsa-public.pem");
    let mcp_args = ["--public-key-file", public.to_str().unwrap(), "--issuer", "https://manifold.test"];
    let mcp =
        Upstream::verifying("mcp", &[&mcp_args[..], &["--audience", "signed-mcp", "--algorithm", "RS256"]].concat())
            .await;
    let hs = secret_file.path().to_str().unwrap();
    let api_args = ["--hs256-secret-file", hs, "--issuer", "https://manifold.test", "--audience", "signed-api"];
    let api = Upstream::verifying("api", &api_args).await;
    let private = std::fs::read_to_string(keys.join("rsa-private.pem")).unwrap();
    let manifests = secret(
        "signing",
        &format!("rsa: {}, hs: an-hs256-secret-shared-with-the-api-0123456789", json!(private)),
    ) + &yaml::server(
        "tools",
        &mcp.mcp_url(),
        "auth: {signedJwt: {algorithm: RS256, keyRef: {name: signing, key: rsa}, keyId: rsa-1, issuer: 'https://manifold.test', audience: signed-mcp, claims: {department: department, mail: email}}}",
    ) + &api_server(
        "api",
        &api,
        "{signedJwt: {algorithm: HS256, keyRef: {name: signing, key: hs}, issuer: 'https://manifold.test', audience: signed-api, mint: perMinute}}",
    ) + &yaml::route(
        "r",
        &format!("mounts: [{{server: tools}}, {{server: api}}], {}", keycloak_callers(keycloak)),
    );
    let stack = LocalStack::start(&manifests).await;
    let url = stack.url("/acme/r/mcp");

    let token = keycloak.password_token("alice").await;
    let subject = keycloak.user_id("alice").await;
    let seen = whoami(&call(&url, Some(&token), "tools_whoami").await);
    assert_eq!((seen["iss"].as_str(), seen["aud"].as_str()), (Some("https://manifold.test"), Some("signed-mcp")));
    assert_eq!(seen["sub"], subject);
    assert_eq!(seen["department"], keycloak::department("alice"));
    assert_eq!(seen["mail"], keycloak::email("alice"));
    assert!(seen["exp"].as_u64() > seen["iat"].as_u64() && seen["jti"].is_string(), "{seen}");
    let seen = whoami(&call(&url, Some(&token), "api_whoami").await);
    assert_eq!((seen["sub"].as_str(), seen["aud"].as_str()), (Some(subject.as_str()), Some("signed-api")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_consents_once_and_every_replica_then_calls_as_that_user() {
    let keycloak = Keycloak::shared().await;
    let (mcp, _) = verifying_peers(keycloak).await;
    let redis = RedisServer::start().await;
    let keys = key_ring();
    let (port_a, port_b) = (free_port(), free_port());
    let a = consent_replica(keycloak, &mcp, port_a, port_a, &redis.url(0), keys.path()).await;
    let b = consent_replica(keycloak, &mcp, port_b, port_a, &redis.url(0), keys.path()).await;
    let (url_a, url_b) = (a.url("/acme/r/mcp"), b.url("/acme/r/mcp"));
    let alice = keycloak.password_token("alice").await;

    // First call: the client is asked to open a consent link at the gateway.
    let link = consent_link(&call(&url_a, Some(&alice), "tools_whoami").await);
    assert!(link.starts_with(&format!("http://127.0.0.1:{port_a}/.manifold/oauth2/start?state=")), "{link}");
    // A client of a session revision that can show links gets the same as a -32042 error.
    let session = session_with_url_elicitation(&url_a, &alice).await;
    let asked = session.request("tools/call", json!({"name": "tools_whoami", "arguments": {}})).await;
    assert_eq!(asked.body["error"]["code"], -32042, "{}", asked.body);
    let elicitation = &asked.body["error"]["data"]["elicitations"][0];
    assert_eq!(elicitation["mode"], "url");
    assert!(elicitation["url"].as_str().unwrap().contains("/.manifold/oauth2/start?state="));

    // The user signs in at Keycloak in a browser; the gateway's callback stores the tokens.
    let (status, page) = Browser::new(keycloak).consent(&link, "alice", &keycloak::password("alice")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("tools may now act for you"), "{page}");

    let subject = keycloak.user_id("alice").await;
    let seen = whoami(&call(&url_a, Some(&alice), "tools_whoami").await);
    assert_eq!((seen["sub"].as_str(), seen["azp"].as_str()), (Some(subject.as_str()), Some(keycloak::CONSENT)));
    // The other replica finds the consent in Redis: no second one.
    let seen = whoami(&call(&url_b, Some(&alice), "tools_whoami").await);
    assert_eq!(seen["sub"], subject, "replica B calls as alice without asking");
    let answered = session.request("tools/call", json!({"name": "tools_whoami", "arguments": {}})).await;
    assert_eq!(whoami(&answered.body)["sub"], subject, "the session client too");

    // Bob is asked for his own consent, and his token is his.
    let bob = keycloak.password_token("bob").await;
    let bobs_link = consent_link(&call(&url_b, Some(&bob), "tools_whoami").await);
    assert_ne!(bobs_link, link);
    let (status, page) = Browser::new(keycloak).consent(&bobs_link, "bob", &keycloak::password("bob")).await;
    assert_eq!(status, 200, "{page}");
    let seen = whoami(&call(&url_b, Some(&bob), "tools_whoami").await);
    assert_eq!(seen["sub"], keycloak.user_id("bob").await);
    assert_eq!(whoami(&call(&url_a, Some(&alice), "tools_whoami").await)["sub"], subject, "alice is still alice");

    // What Redis holds is sealed: neither token appears in it.
    let stored = redis.cli(0, &["--scan", "--pattern", "manifold:tokens:*"]).await;
    assert_eq!(stored.lines().count(), 2, "one entry per user: {stored}");
    for key in stored.lines() {
        let value = redis.cli(0, &["GET", key]).await;
        assert!(!value.contains("eyJ"), "a stored entry holds a readable JWT");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_consent_is_asked_again() {
    let keycloak = Keycloak::shared().await;
    keycloak.set_token_lifespan(keycloak::CONSENT, 5).await;
    let (mcp, _) = verifying_peers(keycloak).await;
    let redis = RedisServer::start().await;
    let keys = key_ring();
    let port = free_port();
    let stack = consent_replica(keycloak, &mcp, port, port, &redis.url(0), keys.path()).await;
    let url = stack.url("/acme/r/mcp");
    let bob = keycloak.password_token("bob").await;
    let link = consent_link(&call(&url, Some(&bob), "tools_whoami").await);
    let (status, page) = Browser::new(keycloak).consent(&link, "bob", &keycloak::password("bob")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(whoami(&call(&url, Some(&bob), "tools_whoami").await)["sub"], keycloak.user_id("bob").await);

    // Bob's sessions at Keycloak end: once the access token runs out, its refresh is refused
    // and bob is asked to consent again.
    keycloak.revoke("bob").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let again = call(&url, Some(&bob), "tools_whoami").await;
    let relink = consent_link(&again);
    assert_ne!(relink, link, "a fresh link");
    let (status, page) = Browser::new(keycloak).consent(&relink, "bob", &keycloak::password("bob")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(whoami(&call(&url, Some(&bob), "tools_whoami").await)["sub"], keycloak.user_id("bob").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_is_down_fails_only_its_mounts_calls() {
    let keycloak = Keycloak::shared().await;
    let (mcp, _) = verifying_peers(keycloak).await;
    let plain = Upstream::start("alpha").await;
    let down = format!("http://127.0.0.1:{}/token", free_port());
    let manifests = secret("idp", "secret: whatever")
        + &yaml::server(
            "tools",
            &mcp.mcp_url(),
            &format!(
                "auth: {{oauth2ClientCredentials: {{tokenUrl: '{down}', clientId: x, clientSecretRef: {{name: idp, key: secret}}}}}}"
            ),
        )
        + &yaml::server("alpha", &plain.mcp_url(), "")
        + &yaml::route("r", "mounts: [{server: tools}, {server: alpha}]");
    let stack = LocalStack::start(&manifests).await;
    let url = stack.url("/acme/r/mcp");

    let failed = call(&url, None, "tools_whoami").await;
    assert_eq!(failed["result"]["isError"], true, "{failed}");
    let text = failed["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "tool `tools_whoami` is unavailable: mounted server `tools` could not get a credential for it: "
        ) && text.contains(&down),
        "{text}"
    );
    assert!(!text.contains("whatever"), "no secret in the answer");
    let answered = manifold_e2e::raw::stateless(
        &url,
        json!(2),
        "tools/call",
        json!({"name": "alpha_echo", "arguments": {"text": "t"}}),
    )
    .send()
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    assert_eq!(answered["result"]["content"][0]["text"], "alpha:t", "the other mount is untouched");
}
