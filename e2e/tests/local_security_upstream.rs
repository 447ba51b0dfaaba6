//! The security suite's attacks on outbound identity, each refused with its exact answer,
//! against Keycloak and real verifying upstreams: a forged or replayed consent `state`, a
//! callback completed by someone other than the caller, a code injected into another
//! caller's flow, an open redirect through the consent link, a token for one audience sent
//! to another, and a mount's tokens reaching another mount or tenant; and no secret or token
//! in the gateway's log (at trace level), metrics or status.

use manifold_e2e::keycloak::{self, Browser, Keycloak};
use manifold_e2e::outbound::{
    call, consent_link, consent_replica, free_port, key_ring, keycloak_callers, secret, verifying_peers, whoami,
};
use manifold_e2e::peers::Upstream;
use manifold_e2e::redis::RedisServer;
use manifold_e2e::{LocalStack, yaml};
use reqwest::StatusCode;
use serde_json::Value;

/// A consent scenario on one replica: its MCP URL, and a caller's consent link.
struct Consent {
    stack: LocalStack,
    _redis: RedisServer,
    _keys: tempfile::NamedTempFile,
    _upstream: Upstream,
}

impl Consent {
    async fn start(keycloak: &Keycloak) -> Self {
        let (upstream, _) = verifying_peers(keycloak).await;
        let (redis, keys, port) = (RedisServer::start().await, key_ring(), free_port());
        let stack = consent_replica(keycloak, &upstream, port, port, &redis.url(0), keys.path()).await;
        Consent { stack, _redis: redis, _keys: keys, _upstream: upstream }
    }

    fn url(&self) -> String {
        self.stack.url("/acme/r/mcp")
    }

    /// The consent link `user`'s first call gets.
    async fn link(&self, keycloak: &Keycloak, user: &str) -> String {
        consent_link(&call(&self.url(), Some(&keycloak.password_token(user).await), "tools_whoami").await)
    }

    fn page(&self, path_and_query: &str) -> String {
        self.stack.url(path_and_query)
    }
}

/// GET without following redirects: status, `Location` and body.
async fn visit(url: &str) -> (StatusCode, Option<String>, String) {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = http.get(url).send().await.unwrap();
    let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
    (response.status(), location, response.text().await.unwrap())
}

/// The `state` query parameter of a URL.
fn state_of(url: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    url.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()).expect("a state")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_or_replayed_state_is_refused() {
    let keycloak = Keycloak::shared().await;
    let consent = Consent::start(keycloak).await;

    let forged = consent.page("/.manifold/oauth2/callback?code=anything&state=not-a-sealed-state");
    assert_eq!(
        visit(&forged).await,
        (StatusCode::BAD_REQUEST, None, "this consent link is not valid: it was not made by this gateway".into())
    );
    let link = consent.link(keycloak, "alice").await;
    let mut tampered = state_of(&link);
    tampered.replace_range(10..11, if &tampered[10..11] == "A" { "B" } else { "A" });
    let (status, _, body) = visit(&consent.page(&format!("/.manifold/oauth2/start?state={tampered}"))).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_REQUEST, "this consent link is not valid: it was not made by this gateway")
    );

    let browser = Browser::new(keycloak);
    let callback = browser.authorize(&link, "alice", &keycloak::password("alice")).await.expect("alice signs in");
    let (status, page) = browser.get(&callback).await;
    assert_eq!(status, 200, "{page}");
    // Replayed by the same browser: the link opened again (its cookie set again), then the
    // callback sent again.
    let (status, _) = browser.get(&link).await;
    assert_eq!(status, StatusCode::FOUND);
    let (status, page) = browser.get(&callback).await;
    assert_eq!((status, page.as_str()), (StatusCode::BAD_REQUEST, "this consent link was already used"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consent_completed_by_someone_else_stores_nothing() {
    let keycloak = Keycloak::shared().await;
    let consent = Consent::start(keycloak).await;
    let alice = keycloak.password_token("alice").await;
    let link = consent.link(keycloak, "alice").await;

    // Alice's link, opened by bob, who signs in as himself: the provider's answer names bob.
    let (status, page) = Browser::new(keycloak).consent(&link, "bob", &keycloak::password("bob")).await;
    assert_eq!(
        (status, page.as_str()),
        (StatusCode::BAD_REQUEST, "signed in at the provider as someone other than the caller")
    );
    consent_link(&call(&consent.url(), Some(&alice), "tools_whoami").await);

    // Alice's own callback, carried to another browser (one without her flow's cookie).
    let callback = Browser::new(keycloak).authorize(&link, "alice", &keycloak::password("alice")).await.unwrap();
    let (status, page) = Browser::new(keycloak).get(&callback).await;
    assert_eq!((status, page.as_str()), (StatusCode::BAD_REQUEST, "this consent was started in another browser"));
    consent_link(&call(&consent.url(), Some(&alice), "tools_whoami").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_injected_into_another_callers_flow_fails_pkce() {
    let keycloak = Keycloak::shared().await;
    let consent = Consent::start(keycloak).await;
    let (alice_link, bob_link) = (consent.link(keycloak, "alice").await, consent.link(keycloak, "bob").await);

    // Bob's browser gets bob's code; alice's browser runs alice's flow up to its callback.
    let bobs = Browser::new(keycloak).authorize(&bob_link, "bob", &keycloak::password("bob")).await.unwrap();
    let code = url::Url::parse(&bobs).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let alices_browser = Browser::new(keycloak);
    let alices = alices_browser.authorize(&alice_link, "alice", &keycloak::password("alice")).await.unwrap();
    let mut injected = url::Url::parse(&alices).unwrap();
    let state = state_of(&alices);
    injected.query_pairs_mut().clear().append_pair("code", &code).append_pair("state", &state);
    let (status, page) = alices_browser.get(injected.as_str()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert_eq!(
        page,
        "the provider refused the authorization code: invalid_grant: PKCE verification failed: Code mismatch"
    );
    let alice = keycloak.password_token("alice").await;
    consent_link(&call(&consent.url(), Some(&alice), "tools_whoami").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consent_link_redirects_only_to_the_configured_provider() {
    let keycloak = Keycloak::shared().await;
    let consent = Consent::start(keycloak).await;
    let link = consent.link(keycloak, "alice").await;
    let evil = format!(
        "{link}&redirect_uri=https%3A%2F%2Fevil.test%2F&next=https%3A%2F%2Fevil.test%2F&authorizationUrl=https%3A%2F%2Fevil.test"
    );
    let (status, location, _) = visit(&evil).await;
    assert_eq!(status, StatusCode::FOUND);
    let location = url::Url::parse(&location.expect("a redirect")).unwrap();
    assert!(location.as_str().starts_with(&keycloak.authorization_url()), "{location}");
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    let port = url::Url::parse(&consent.url()).unwrap().port().unwrap();
    assert_eq!(query["redirect_uri"], format!("http://127.0.0.1:{port}{}", keycloak::CALLBACK_PATH));
    assert_eq!((query["code_challenge_method"].as_str(), query["client_id"].as_str()), ("S256", keycloak::CONSENT));
    assert!(!location.as_str().contains("evil"), "{location}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_for_one_audience_is_never_sent_to_another() {
    let keycloak = Keycloak::shared().await;
    let (jwks, issuer) = (keycloak.jwks_url(), keycloak.issuer());
    // An upstream that wants tokens for `other-api`.
    let other =
        Upstream::verifying("mcp", &["--jwks-uri", &jwks, "--issuer", &issuer, "--audience", "other-api"]).await;
    let exchange = format!(
        "auth: {{tokenExchange: {{tokenUrl: '{}', clientId: {}, clientSecretRef: {{name: idp, key: secret}}, audience: {}}}}}",
        keycloak.token_url(),
        keycloak::GATEWAY,
        keycloak::UPSTREAM_AUDIENCE
    );
    let manifests = secret("idp", &format!("secret: {}", keycloak::GATEWAY_SECRET))
        + &yaml::server("forwarded", &other.mcp_url(), "auth: {forwardCallerToken: {audience: other-api}}")
        + &yaml::server("exchanged", &other.mcp_url(), &exchange)
        + &yaml::route(
            "r",
            &format!("mounts: [{{server: forwarded}}, {{server: exchanged}}], {}", keycloak_callers(keycloak)),
        );
    let stack = LocalStack::start(&manifests).await;
    let url = stack.url("/acme/r/mcp");
    let alice = keycloak.password_token("alice").await;

    // The caller's token is for the gateway: forwarding it to `other-api` is refused unsent.
    let refused = call(&url, Some(&alice), "forwarded_whoami").await;
    assert_eq!(
        refused["result"]["content"][0]["text"],
        "tool `forwarded_whoami` is unavailable: mounted server `forwarded` the caller's token is not for this mount: its audience does not include `other-api`"
    );
    let stats: Value = reqwest::get(other.url("/stats")).await.unwrap().json().await.unwrap();
    assert_eq!(stats["refused"], 0, "nothing reached the upstream");
    // An exchanged token for `upstream-api` is refused by `other-api`, once fresh too.
    let refused = call(&url, Some(&alice), "exchanged_whoami").await;
    assert_eq!(
        refused["result"]["content"][0]["text"],
        "tool `exchanged_whoami` is unavailable: mounted server `exchanged` answered HTTP 401"
    );
    let stats: Value = reqwest::get(other.url("/stats")).await.unwrap().json().await.unwrap();
    // Asked which revisions it serves, then the request, then one retry with a fresh token.
    assert_eq!((stats["refused"].as_u64(), stats["accepted"].as_u64()), (Some(3), Some(0)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mounts_tokens_never_reach_another_mount_or_tenant() {
    let keycloak = Keycloak::shared().await;
    let (upstream, _) = verifying_peers(keycloak).await;
    let (signed_key, kid) = keycloak::signed_jwt_key("RS256");
    let gateway_client = format!(
        "auth: {{oauth2ClientCredentials: {{tokenUrl: '{}', clientId: {}, clientSecretRef: {{name: idp, key: secret}}}}}}",
        keycloak.token_url(),
        keycloak::GATEWAY
    );
    let signed_client = format!(
        "auth: {{oauth2ClientCredentials: {{tokenUrl: '{}', clientId: {}, clientAuthentication: privateKeyJwt, privateKeyRef: {{name: idp, key: key}}, signingAlgorithm: RS256, keyId: {kid}}}}}",
        keycloak.token_url(),
        keycloak::SIGNED
    );
    let secrets =
        secret("idp", &format!("secret: {}, key: {}", keycloak::GATEWAY_SECRET, serde_json::json!(signed_key)));
    let acme = secrets.clone()
        + &yaml::server("one", &upstream.mcp_url(), &gateway_client)
        + &yaml::server("two", &upstream.mcp_url(), &signed_client)
        + &yaml::route("r", "mounts: [{server: one}, {server: two}]");
    // Tenant `globex` mounts the same upstream under the same name with the other client.
    let globex = yaml::in_namespace(
        &(secrets
            + &yaml::server("one", &upstream.mcp_url(), &signed_client)
            + &yaml::route("r", "mounts: [{server: one}]")),
        "globex",
    );
    let stack = LocalStack::start(&(acme + &globex)).await;
    let (acme_url, globex_url) = (stack.url("/acme/r/mcp"), stack.url("/globex/r/mcp"));

    for _ in 0..3 {
        assert_eq!(whoami(&call(&acme_url, None, "one_whoami").await)["azp"], keycloak::GATEWAY);
        assert_eq!(whoami(&call(&acme_url, None, "two_whoami").await)["azp"], keycloak::SIGNED);
        assert_eq!(whoami(&call(&globex_url, None, "one_whoami").await)["azp"], keycloak::SIGNED, "globex's own");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_token_or_secret_reaches_the_log_the_metrics_or_the_status() {
    use manifold_e2e::process::{GatewayProcess, Options};
    let keycloak = Keycloak::shared().await;
    let (upstream, _) = verifying_peers(keycloak).await;
    let (dir, keys, log) = (tempfile::tempdir().unwrap(), key_ring(), tempfile::NamedTempFile::new().unwrap());
    let options = Options {
        log_filter: Some("debug,manifold_gateway=trace".into()),
        log: Some(log.path().to_owned()),
        ..Options::default()
    };
    std::fs::write(dir.path().join("manifests.yaml"), "").unwrap();
    let gateway = GatewayProcess::start_with(dir.path(), keys.path(), options).await;
    // Every mode that holds a secret or a token: client credentials, exchange, per-user.
    let client = |mode: &str, client: &str, secret: &str, extra: &str| {
        format!(
            "auth: {{{mode}: {{tokenUrl: '{}', clientId: {client}, clientSecretRef: {{name: idp, key: {secret}}}{extra}}}}}",
            keycloak.token_url()
        )
    };
    let consent = format!(
        ", authorizationUrl: '{}', redirectUrl: 'http://{}{}'",
        keycloak.authorization_url(),
        gateway.mcp,
        keycloak::CALLBACK_PATH
    );
    let manifests =
        secret("idp", &format!("gateway: {}, consent: {}", keycloak::GATEWAY_SECRET, keycloak::CONSENT_SECRET))
            + &yaml::server(
                "cc",
                &upstream.mcp_url(),
                &client("oauth2ClientCredentials", keycloak::GATEWAY, "gateway", ""),
            )
            + &yaml::server(
                "tx",
                &upstream.mcp_url(),
                &client("tokenExchange", keycloak::GATEWAY, "gateway", ", audience: upstream-api"),
            )
            + &yaml::server(
                "me",
                &upstream.mcp_url(),
                &client("oauth2AuthorizationCode", keycloak::CONSENT, "consent", &consent),
            )
            + &yaml::route(
                "r",
                &format!("mounts: [{{server: cc}}, {{server: tx}}, {{server: me}}], {}", keycloak_callers(keycloak)),
            );
    std::fs::write(dir.path().join("manifests.yaml"), manifests).unwrap();
    let url = gateway.url("/acme/r/mcp");
    let alice = keycloak.password_token("alice").await;
    manifold_e2e::eventually("the route is served", std::time::Duration::from_secs(20), || {
        let (url, alice) = (url.clone(), alice.clone());
        async move {
            let request = manifold_e2e::raw::stateless(
                &url,
                serde_json::json!(1),
                "tools/call",
                serde_json::json!({"name": "cc_whoami"}),
            );
            let answer: Value = request.bearer_auth(&alice).send().await.ok()?.json().await.ok()?;
            answer.get("result").map(|_| ())
        }
    })
    .await;

    let browser = Browser::new(keycloak);
    let link = consent_link(&call(&url, Some(&alice), "me_whoami").await);
    let callback = browser.authorize(&link, "alice", &keycloak::password("alice")).await.unwrap();
    let code = url::Url::parse(&callback).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    assert_eq!(browser.get(&callback).await.0, 200);
    for tool in ["cc_whoami", "tx_whoami", "me_whoami"] {
        assert!(whoami(&call(&url, Some(&alice), tool).await)["sub"].is_string(), "{tool}");
    }
    // A caller the route refuses is logged too.
    call(&url, Some("not-a-token"), "cc_whoami").await;

    let metrics = reqwest::get(format!("http://{}/metrics", gateway.admin)).await.unwrap().text().await.unwrap();
    let status = reqwest::get(format!("http://{}/status", gateway.admin)).await.unwrap().text().await.unwrap();
    let logged = std::fs::read_to_string(log.path()).unwrap();
    assert!(logged.lines().count() > 20, "the gateway logged at trace level: {logged}");
    let secrets = [keycloak::GATEWAY_SECRET, keycloak::CONSENT_SECRET, alice.as_str(), code.as_str()];
    for (place, text) in [("log", &logged), ("metrics", &metrics), ("status", &status)] {
        for secret in secrets {
            assert!(!text.contains(secret), "{place} holds a secret ({:.12}…)", secret);
        }
        // Whatever token the gateway obtained: no JWT at all appears.
        assert!(!text.contains("eyJ"), "{place} holds a JWT");
    }
}
