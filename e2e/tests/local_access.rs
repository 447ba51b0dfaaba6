//! Access control with real peers: JWKS rotation over HTTP, two principals of one route
//! seeing and calling different tools through the Python `mcp` client (with the audit log
//! that records it), external decision points of the Permit.io and OPA kinds (with a
//! timeout), and the TypeScript SDK's OAuth discovery through a route's 401.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use manifold_e2e::peers::{Sdk, Upstream, node_command, run_client_with, tool_names};
use manifold_e2e::stub::{Reply, Stub};
use manifold_e2e::tokens::{Signer, claims, jwks};
use manifold_e2e::{LocalStack, eventually, repo_root, yaml};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.acme.test";
const AUD: &str = "https://mcp.test/acme/tools/mcp";

fn route_with(authentication: &str, authorization: &str) -> String {
    let authorization =
        if authorization.is_empty() { String::new() } else { format!(", authorization: {authorization}") };
    yaml::route(
        "tools",
        &format!("mounts: [{{server: alpha}}, {{server: beta}}], authentication: {authentication}{authorization}"),
    )
}

fn servers(alpha: &Upstream, beta: &Upstream) -> String {
    yaml::server("alpha", &alpha.mcp_url(), "") + &yaml::server("beta", &beta.mcp_url(), "")
}

async fn call(url: &str, token: &str, tool: &str) -> Value {
    let response =
        manifold_e2e::raw::stateless(url, json!(1), "tools/call", json!({"name": tool, "arguments": {"text": "t"}}))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_jwks_key_is_accepted_without_a_restart() {
    let (old, new) = (Signer::rsa("rsa-a", "2026-01"), Signer::rsa("rsa-b", "2026-02"));
    let published = Arc::new(Mutex::new((jwks(&[&old]), 200)));
    let serving = Arc::clone(&published);
    let endpoint = Stub::start(move |_| {
        let (keys, status) = serving.lock().unwrap().clone();
        if status == 200 { Reply::json(keys) } else { Reply::status(status) }
    })
    .await;
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let authentication =
        format!("{{jwt: [{{issuer: '{ISSUER}', audiences: ['{AUD}'], jwks: {{uri: '{}'}}}}]}}", endpoint.url("/jwks"));
    let manifests = servers(&alpha, &beta) + &route_with(&authentication, "");
    let stack = LocalStack::start_with(&manifests, |s| s.jwks_refetch_cooldown = Duration::from_millis(300)).await;
    let url = stack.url("/acme/tools/mcp");
    let (old_token, new_token) = (old.token(&claims(ISSUER, AUD, "alice")), new.token(&claims(ISSUER, AUD, "alice")));

    assert_eq!(call(&url, &old_token, "alpha_echo").await["result"]["content"][0]["text"], "alpha:t");
    let refused = call(&url, &new_token, "alpha_echo").await;
    assert_eq!(refused["error"]["message"], "invalid credential: token signing key is unknown");

    // The issuer publishes the new key beside the old one: the next token naming it makes
    // the gateway fetch again (once the cool-down allows), with no restart.
    published.lock().unwrap().0 = jwks(&[&old, &new]);
    eventually("the rotated key is accepted", Duration::from_secs(10), || {
        let (url, token) = (url.clone(), new_token.clone());
        async move { call(&url, &token, "alpha_echo").await.get("result").map(|_| ()) }
    })
    .await;

    // The endpoint fails: the keys known so far keep working.
    published.lock().unwrap().1 = 500;
    let stranger = Signer::rsa("attacker", "2026-03").token(&claims(ISSUER, AUD, "mallory"));
    for _ in 0..3 {
        assert_eq!(
            call(&url, &stranger, "alpha_echo").await["error"]["message"],
            "invalid credential: token signing key is unknown"
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    assert!(call(&url, &old_token, "alpha_echo").await.get("result").is_some(), "old key still accepted");
    assert!(call(&url, &new_token, "alpha_echo").await.get("result").is_some(), "new key still accepted");

    // Made-up key ids cannot make the gateway hammer the issuer: within one cool-down,
    // twenty of them cost at most one fetch.
    published.lock().unwrap().1 = 200;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let before = endpoint.requests().len();
    let started = std::time::Instant::now();
    let floods: Vec<String> =
        (0..20).map(|i| Signer::rsa("attacker", &format!("made-up-{i}")).token(&claims(ISSUER, AUD, "x"))).collect();
    for token in &floods {
        call(&url, token, "alpha_echo").await;
    }
    let fetches = endpoint.requests().len() - before;
    let cooldowns = started.elapsed().as_millis() as usize / 300 + 1;
    assert!(fetches <= cooldowns, "20 unknown kids caused {fetches} JWKS fetches in {cooldowns} cool-down(s)");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_principals_see_and_call_different_tools_and_are_audited() {
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let keys = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: keys, namespace: acme}\n\
                stringData: {alice: '{key: alice-key-0123456789abcdef, groups: [dev]}', \
                bob: '{key: bob-key-0123456789abcdef, groups: [ops]}'}\n";
    let rules = "{rules: [{effect: Deny, tools: [alpha_fail]}, \
                 {effect: Allow, groups: [dev], tools: ['alpha_*']}, \
                 {effect: Allow, groups: [ops], tools: ['beta_*']}]}";
    let manifests = servers(&alpha, &beta)
        + keys
        + &route_with("{apiKeys: {secretRef: {name: keys}}}", rules)
            .replace("spec: {", "spec: {audit: {includeArguments: true}, ");
    let stack = LocalStack::start(&manifests).await;
    let url = stack.url("/acme/tools/mcp");

    let session = |key: &str, own: &str, other: &str| {
        let headers = vec![format!("Authorization: Bearer {key}")];
        let ops = json!([
            {"op": "list_tools"},
            {"op": "call", "name": own, "arguments": {"text": "mine"}},
            {"op": "call", "name": other, "arguments": {"text": "theirs"}},
        ]);
        let url = url.clone();
        async move { run_client_with(&url, Sdk::Mcp, &headers, ops).await }
    };
    let (alice, bob) = tokio::join!(
        session("alice-key-0123456789abcdef", "alpha_echo", "beta_echo"),
        session("bob-key-0123456789abcdef", "beta_echo", "alpha_echo"),
    );
    let alice_tools = tool_names(&alice[0]);
    let bob_tools = tool_names(&bob[0]);
    assert!(!alice_tools.is_empty() && alice_tools.iter().all(|t| t.starts_with("alpha_")), "{alice_tools:?}");
    assert!(!alice_tools.contains(&"alpha_fail".to_owned()), "a denied tool is not listed");
    assert!(!bob_tools.is_empty() && bob_tools.iter().all(|t| t.starts_with("beta_")), "{bob_tools:?}");
    assert_eq!(alice[1]["content"][0]["text"], "alpha:mine");
    assert_eq!(bob[1]["content"][0]["text"], "beta:mine");
    assert_eq!(
        alice[2]["error"],
        json!({"code": -32003, "message": "tool `beta_echo`: call is not allowed for this caller"})
    );
    assert_eq!(
        bob[2]["error"],
        json!({"code": -32003, "message": "tool `alpha_echo`: call is not allowed for this caller"})
    );

    // One audit event per call, allowed or not, with arguments (the route opted in).
    let events: Vec<Value> = eventually("four audit events", Duration::from_secs(5), || {
        let events = stack.audit();
        async move { (events.len() >= 4).then_some(events) }
    })
    .await;
    let find = |principal: &str, target: &str| {
        events
            .iter()
            .find(|e| e["principal"] == principal && e["target"] == target)
            .cloned()
            .unwrap_or_else(|| panic!("no event for {principal} {target}: {events:?}"))
    };
    let allowed = find("alice", "alpha_echo");
    assert_eq!(allowed["tenant"], "acme");
    assert_eq!(allowed["route"], "tools");
    assert_eq!(allowed["method"], "tools/call");
    assert_eq!(allowed["mount"], "alpha");
    assert_eq!(allowed["decision"], "allow (rules[1])");
    assert_eq!(allowed["outcome"], "ok");
    assert_eq!(allowed["arguments"], json!({"text": "mine"}));
    assert!(allowed["latencyMs"].as_f64().unwrap() > 0.0);
    let denied = find("bob", "alpha_echo");
    assert_eq!(denied["decision"], "deny (no rule matched)");
    assert_eq!(denied["outcome"], "denied");
    assert!(denied.get("mount").is_none(), "a denied call reaches no mount");
    assert_eq!(events.len(), 4, "nothing else is audited: {events:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn external_decision_points_permit_and_opa_fail_closed() {
    let permit = Stub::start(|request| {
        let body = request.json();
        let allow = body["user"]["key"] == "alice" && body["resource"]["key"] == "alpha_echo";
        Reply::json(json!({"allow": allow}))
    })
    .await;
    let opa =
        Stub::start(|request| Reply::json(json!({"result": request.json()["input"]["user"]["key"] == "alice"}))).await;
    let slow = Stub::start(|_| Reply { delay: Duration::from_secs(3), ..Reply::json(json!({"allow": true})) }).await;
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let keys = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: keys, namespace: acme}\n\
                stringData: {alice: alice-key-0123456789abcdef, bob: bob-key-0123456789abcdef}\n\
                ---\napiVersion: v1\nkind: Secret\nmetadata: {name: pdp, namespace: acme}\nstringData: {token: permit-token}\n";
    let route = |name: &str, external: String| {
        yaml::route(
            name,
            &format!(
                "mounts: [{{server: alpha}}, {{server: beta}}], authentication: {{apiKeys: {{secretRef: {{name: keys}}}}}}, \
                 authorization: {{external: {external}}}"
            ),
        )
    };
    let manifests = servers(&alpha, &beta)
        + keys
        + &route(
            "permit",
            format!("{{url: '{}', api: permit, secretRef: {{name: pdp, key: token}}}}", permit.url("/allowed")),
        )
        + &route("opa", format!("{{url: '{}', api: opa, cacheTtl: 0s}}", opa.url("/v1/data/manifold/allow")))
        + &route("slow", format!("{{url: '{}', api: permit, timeout: 300ms}}", slow.url("/allowed")));
    let stack = LocalStack::start(&manifests).await;
    let (alice, bob) = ("alice-key-0123456789abcdef", "bob-key-0123456789abcdef");

    // Permit.io's `/allowed`: the request shape, the bearer, and the answer obeyed.
    let permit_url = stack.url("/acme/permit/mcp");
    assert!(call(&permit_url, alice, "alpha_echo").await.get("result").is_some());
    let refused = call(&permit_url, alice, "beta_echo").await;
    assert_eq!(
        refused["error"],
        json!({"code": -32003, "message": "tool `beta_echo`: call is not allowed for this caller"})
    );
    assert!(call(&permit_url, bob, "alpha_echo").await.get("error").is_some());
    let asked = permit.requests();
    assert_eq!(asked.len(), 3);
    assert_eq!(asked[0].path, "/allowed");
    assert_eq!(asked[0].headers["authorization"], "Bearer permit-token");
    let query = asked[0].json();
    assert_eq!(query["user"]["key"], "alice");
    assert_eq!(query["action"], "call");
    assert_eq!(query["resource"], json!({"type": "tool", "key": "alpha_echo", "tenant": "acme"}));
    // A decision is reused for a while: the same call again asks nothing.
    assert!(call(&permit_url, alice, "alpha_echo").await.get("result").is_some());
    assert_eq!(permit.requests().len(), 3, "the cached decision was used");
    // Lists show what the decision point allows.
    let listed = manifold_e2e::raw::stateless(&permit_url, json!(2), "tools/list", json!({}))
        .header("authorization", format!("Bearer {alice}"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(tool_names(&listed["result"]), vec!["alpha_echo"]);

    // OPA's data API: `{input: …}` in, `{result: …}` out; no cache (cacheTtl 0s).
    let opa_url = stack.url("/acme/opa/mcp");
    assert!(call(&opa_url, alice, "beta_echo").await.get("result").is_some());
    assert!(call(&opa_url, alice, "beta_echo").await.get("result").is_some());
    assert!(call(&opa_url, bob, "beta_echo").await.get("error").is_some());
    let asked = opa.requests();
    assert_eq!(asked.len(), 3, "asked every time");
    assert_eq!(asked[0].path, "/v1/data/manifold/allow");
    assert_eq!(asked[0].json()["input"]["resource"]["key"], "beta_echo");

    // A decision point that does not answer in time denies (fail-closed), promptly.
    let started = std::time::Instant::now();
    let refused = call(&stack.url("/acme/slow/mcp"), alice, "alpha_echo").await;
    assert_eq!(refused["error"]["code"], -32003);
    assert!(started.elapsed() < Duration::from_secs(3), "the timeout, not the slow answer, decided");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_typescript_sdk_discovers_oauth_through_the_401() {
    // The authorization server: its metadata (RFC 8414), and keys no token here uses.
    let server = Stub::start(|request| match request.path.as_str() {
        "/.well-known/oauth-authorization-server" => {
            let issuer = format!("http://{}", request.headers["host"].to_str().unwrap());
            Reply::json(json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code"],
                "code_challenge_methods_supported": ["S256"],
            }))
        }
        "/jwks" => Reply::json(jwks(&[&Signer::rsa("rsa-a", "k")])),
        _ => Reply::status(404),
    })
    .await;
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let issuer = server.url("");
    let authentication = format!(
        "{{jwt: [{{issuer: '{issuer}', audiences: ['{AUD}'], jwks: {{uri: '{}'}}}}], requiredScopes: ['mcp:tools']}}",
        server.url("/jwks")
    );
    let stack = LocalStack::start(&(servers(&alpha, &beta) + &route_with(&authentication, ""))).await;
    let url = stack.url("/acme/tools/mcp");

    // The metadata document itself.
    let metadata: Value = reqwest::get(stack.url("/.well-known/oauth-protected-resource/acme/tools/mcp"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], url);
    assert_eq!(metadata["authorization_servers"], json!([issuer]));
    assert_eq!(metadata["scopes_supported"], json!(["mcp:tools"]));
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));

    let output = node_command("node")
        .arg(repo_root().join("e2e/peers/node/oauth.mjs"))
        .args(["--url", &url])
        .output()
        .await
        .expect("run the TypeScript SDK");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("oauth.mjs printed `{stdout}` ({e}); stderr: {}", String::from_utf8_lossy(&output.stderr))
    });
    assert!(seen["error"].as_str().unwrap().contains("Unauthorized"), "{seen}");
    let discovery = &seen["discovery"];
    assert_eq!(discovery["resourceMetadata"]["resource"], url, "{seen}");
    assert_eq!(discovery["authorizationServerUrl"].as_str().unwrap().trim_end_matches('/'), issuer);
    let redirected = url::Url::parse(seen["redirected"].as_str().expect("the SDK reached the redirect")).unwrap();
    assert_eq!(redirected.path(), "/authorize");
    let query: std::collections::HashMap<_, _> = redirected.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], "e2e-client");
    assert_eq!(query["resource"], url, "RFC 8707: the token is asked for this route");
    assert_eq!(query["scope"], "mcp:tools");
    assert_eq!(query["code_challenge_method"], "S256");
    let fetched: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert!(fetched.contains(&"/.well-known/oauth-authorization-server".to_owned()), "{fetched:?}");
    assert!(!fetched.iter().any(|p| p == "/token" || p == "/register"), "nothing past discovery: {fetched:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_credentials_stay_with_their_tenant() {
    // Two tenants mount the same server, each with its own credential from its own Secret;
    // the callers' own credentials are never passed upstream.
    let alpha = Upstream::start("alpha").await;
    let tenant = |ns: &str| {
        format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: upstream, namespace: {ns}}}\n\
             stringData: {{token: {ns}-upstream-token, key: {ns}-caller-key-0123456789}}\n\
             ---\napiVersion: manifold.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: alpha, namespace: {ns}}}\n\
             spec: {{remote: {{url: \"{url}\", headers: [{{name: X-Upstream-Token, valueFrom: {{secretKeyRef: {{name: upstream, key: token}}}}}}]}}}}\n\
             ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: callers, namespace: {ns}}}\n\
             stringData: {{caller: {ns}-caller-key-0123456789}}\n\
             ---\napiVersion: manifold.dev/v1alpha1\nkind: McpRoute\nmetadata: {{name: tools, namespace: {ns}}}\n\
             spec: {{mounts: [{{server: alpha}}], authentication: {{apiKeys: {{secretRef: {{name: callers}}}}}}}}\n",
            url = alpha.mcp_url()
        )
    };
    let stack = LocalStack::start(&(tenant("acme") + &tenant("globex"))).await;
    let header = |ns: &'static str, name: &'static str| {
        let url = stack.url(&format!("/{ns}/tools/mcp"));
        async move {
            let response = manifold_e2e::raw::stateless(
                &url,
                json!(1),
                "tools/call",
                json!({"name": "alpha_header", "arguments": {"name": name}}),
            )
            .header("authorization", format!("Bearer {ns}-caller-key-0123456789"))
            .send()
            .await
            .unwrap();
            let body: Value = response.json().await.unwrap();
            let content = body["result"]["content"].as_array().unwrap_or_else(|| panic!("no tool result: {body}"));
            content.first().and_then(|c| c["text"].as_str()).unwrap_or_default().to_owned()
        }
    };
    // Interleaved, so a shared connection or client would show.
    for _ in 0..5 {
        let (acme, globex) = tokio::join!(header("acme", "x-upstream-token"), header("globex", "x-upstream-token"));
        assert_eq!((acme.as_str(), globex.as_str()), ("acme-upstream-token", "globex-upstream-token"));
    }
    assert_eq!(header("acme", "authorization").await, "", "the caller's credential is not forwarded");
}
