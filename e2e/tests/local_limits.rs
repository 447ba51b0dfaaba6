//! Rate limits with real peers: what an agent's MCP client (the official Python `mcp` and
//! TypeScript SDKs) receives when a route's limit is reached — a tool result it can read,
//! with the wait in its text and `_meta`, not a transport failure — and that one caller's
//! empty bucket leaves another's untouched while a tenant-wide limit holds across routes.

use manifold_e2e::peers::{Sdk, Upstream, run_client, run_client_with};
use manifold_e2e::{LocalStack, yaml};
use serde_json::json;

const KEYS: &str = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: keys, namespace: acme}\n\
                    stringData: {alice: alice-key-0123456789abcdef, bob: bob-key-0123456789abcdef}\n";

fn calls(n: usize, tool: &str) -> serde_json::Value {
    let call = json!({"op": "call", "name": tool, "arguments": {"text": "t"}, "meta": true});
    serde_json::Value::Array(vec![call; n])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_limited_caller_reads_when_to_retry_and_other_callers_go_on() {
    let alpha = Upstream::start("alpha").await;
    let limits = "rateLimits: [{name: per-caller, scope: Principal, requests: 2, per: 1h, tools: ['*']}, \
                  {name: echoes, scope: Tenant, requests: 3, per: 1h, tools: ['alpha_echo']}]";
    let route = |name: &str| {
        yaml::route(
            name,
            &format!(
                "mounts: [{{server: alpha}}], authentication: {{apiKeys: {{secretRef: {{name: keys}}}}}}, {limits}"
            ),
        )
    };
    let strict = yaml::route(
        "strict",
        "mounts: [{server: alpha}], rateLimits: [{name: anything, scope: Route, requests: 1, per: 1h}]",
    );
    let typescript = yaml::route(
        "typescript",
        "mounts: [{server: alpha}], rateLimits: [{name: calls, scope: Principal, requests: 1, per: 1h, tools: ['*']}]",
    );
    let manifests =
        yaml::server("alpha", &alpha.mcp_url(), "") + KEYS + &route("tools") + &route("more") + &strict + &typescript;
    let stack = LocalStack::start(&manifests).await;
    let client = |path: &str, key: &str, ops| {
        let (url, headers) = (stack.url(path), vec![format!("Authorization: Bearer {key}")]);
        async move { run_client_with(&url, Sdk::Mcp, &headers, ops).await }
    };

    // Alice's own bucket holds two: her third call is refused, and the SDK hands the agent
    // a tool result saying so, with the wait in `_meta`.
    let alice = client("/acme/tools/mcp", "alice-key-0123456789abcdef", calls(3, "alpha_echo")).await;
    assert_eq!(alice[0]["content"][0]["text"], "alpha:t");
    assert_eq!(alice[1]["content"][0]["text"], "alpha:t");
    assert_eq!(alice[2]["isError"], true, "{}", alice[2]);
    let text = alice[2]["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("rate limit `per-caller` reached: retry in "), "{text}");
    assert!(text.ends_with(" seconds. Nothing was run."), "{text}");
    let wait = alice[2]["_meta"]["dev.manifold/retryAfterSeconds"].as_u64().expect("the wait in _meta");
    assert!((1700..=1800).contains(&wait), "half an hour for the next of 2 tokens an hour: {wait}");

    // Bob's bucket is his own; but `echoes` is the tenant's, across both routes: alice took
    // two of its three, so bob, on the other route, gets one echo and then a refusal, while
    // another tool is not counted by it.
    let bob = client("/acme/more/mcp", "bob-key-0123456789abcdef", calls(2, "alpha_echo")).await;
    assert_eq!(bob[0]["content"][0]["text"], "alpha:t");
    assert_eq!(bob[1]["isError"], true, "{}", bob[1]);
    assert!(bob[1]["content"][0]["text"].as_str().unwrap_or_default().starts_with("rate limit `echoes` reached"));

    // Other methods get a JSON-RPC error the SDK raises with its message.
    let lists = json!([{"op": "list_tools"}, {"op": "list_tools"}]);
    let listed = client("/acme/strict/mcp", "", lists).await;
    assert!(listed[0]["tools"].is_array(), "{}", listed[0]);
    assert_eq!(listed[1]["error"]["code"], -32029, "{}", listed[1]);
    let message = listed[1]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("rate limit `anything` reached: retry in "), "{message}");
    // The TypeScript SDK hands over the same result, `_meta` and all.
    let ts = run_client(&stack.url("/acme/typescript/mcp"), Sdk::TypeScript, calls(2, "alpha_echo")).await;
    assert_eq!(ts[0]["content"][0]["text"], "alpha:t", "{}", ts[0]);
    assert_eq!(ts[1]["isError"], true, "{}", ts[1]);
    assert!(ts[1]["content"][0]["text"].as_str().unwrap_or_default().starts_with("rate limit `calls` reached"));
    assert_eq!(ts[1]["_meta"]["dev.manifold/retryAfterSeconds"], 3600, "{}", ts[1]);

    let metrics = reqwest::get(stack.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"manifold_rate_limited_total{limit="per-caller",namespace="acme",route="tools"} 1"#),
        "{metrics}"
    );
}
