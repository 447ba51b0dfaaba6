//! Local stack, real peers: the reference server `@modelcontextprotocol/server-everything`
//! mounted beside a FastMCP server. Through the gateway a client sees all of its tools,
//! resources, templates and prompts (paginated as the server paginates them), and its
//! sampling, elicitation, progress and long-running tools work end to end with a client that
//! answers sampling and elicitation, with the official Python and TypeScript SDKs.

use manifold_e2e::peers::{Sdk, Upstream, run_client};
use manifold_e2e::{LocalStack, yaml};
use serde_json::{Value, json};

fn names(list: &Value, key: &str) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|i| i[key].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn server_everything_works_through_a_route_with_the_python_and_typescript_sdks() {
    let (everything, alpha) = tokio::join!(Upstream::everything(), Upstream::start("alpha"));
    let manifests = yaml::server("everything", &everything.mcp_url(), "timeout: 30s")
        + &yaml::server("alpha", &alpha.mcp_url(), "")
        + &yaml::route("agents", "mounts: [{server: everything, prefix: every}, {server: alpha}]");
    let stack = LocalStack::start(&manifests).await;
    let url = stack.url("/acme/agents/mcp");

    let lists = json!([
        {"op": "list", "kind": "tools"}, {"op": "list", "kind": "resources"},
        {"op": "list", "kind": "templates"}, {"op": "list", "kind": "prompts"},
    ]);
    for sdk in [Sdk::Mcp, Sdk::TypeScript] {
        // Compared with the same client directly: server-everything offers some tools only
        // to clients with some capabilities, and the gateway passes the client's on.
        let direct = run_client(&everything.mcp_url(), sdk, lists.clone()).await;
        exercise(sdk, &url, &direct, run_client(&url, sdk, lists.clone()).await).await;
    }
}

/// Lists through the route equal the direct lists under the mount's prefix; the
/// interactive tools work.
async fn exercise(sdk: Sdk, url: &str, direct: &[Value], routed: Vec<Value>) {
    eprintln!("client: {sdk:?}");
    let prefixed = |names: Vec<String>| names.into_iter().map(|n| format!("every_{n}")).collect::<Vec<_>>();
    let tools = names(&routed[0], "name");
    assert_eq!(
        tools.iter().filter(|n| n.starts_with("every_")).cloned().collect::<Vec<_>>(),
        prefixed(names(&direct[0], "name"))
    );
    assert!(tools.contains(&"alpha_echo".to_owned()), "{tools:?}");
    let uri = |uri: &str| uri.replacen("://", "://every/", 1);
    for (i, key) in [(1, "uri"), (2, "uriTemplate")] {
        let want: Vec<String> = names(&direct[i], key).iter().map(|u| uri(u)).collect();
        assert!(!want.is_empty(), "server-everything lists {key}s");
        assert_eq!(names(&routed[i], key), want, "every {key}, rewritten under the mount's prefix");
    }
    assert_eq!(names(&routed[3], "name"), prefixed(names(&direct[3], "name")));

    let first_resource = names(&routed[1], "uri")[0].clone();
    let results = run_client(
        url,
        sdk,
        json!([
            {"op": "call", "name": "every_trigger-sampling-request", "arguments": {"prompt": "hello", "maxTokens": 20}},
            {"op": "call", "name": "every_trigger-elicitation-request", "arguments": {}},
            {"op": "call", "name": "every_trigger-long-running-operation", "arguments": {"duration": 1, "steps": 4}, "progress": true},
            {"op": "read", "uri": first_resource},
            {"op": "get_prompt", "name": "every_simple-prompt", "arguments": {}},
            {"op": "call", "name": "alpha_echo", "arguments": {"text": "hi"}},
            {"op": "call", "name": "every_get-roots-list", "arguments": {}},
            {"op": "seen"},
        ]),
    )
    .await;
    let text = |i: usize| results[i]["content"].to_string();
    assert!(text(0).contains("sampled: "), "the client's sampling answer reaches the tool: {}", results[0]);
    assert!(results[1].get("error").is_none() && results[1]["isError"] != true, "elicitation: {}", results[1]);
    assert!(text(1).contains("accept"), "the client's elicitation answer reaches the tool: {}", results[1]);
    let progress = results[2]["progress"].as_array().unwrap_or_else(|| panic!("{}", results[2]));
    assert!(progress.len() >= 4, "progress of every step: {}", results[2]);
    assert!(text(2).contains("completed") || text(2).contains("Long running"), "{}", results[2]);
    assert_eq!(results[3]["contents"][0]["uri"], first_resource, "the client-side URI comes back: {}", results[3]);
    assert!(results[4]["messages"].as_array().is_some_and(|m| !m.is_empty()), "{}", results[4]);
    assert_eq!(manifold_e2e::peers::text(&results[5]), "alpha:hi");
    assert!(text(6).contains("file:///e2e"), "{sdk:?}: the client's roots reach the tool: {}", results[6]);
    let asked = results[7]["requests"].as_array().unwrap_or_else(|| panic!("{sdk:?}: {results:?}"));
    for method in ["sampling/createMessage", "elicitation/create", "roots/list"] {
        assert!(asked.contains(&json!(method)), "{sdk:?} was asked {method}: {asked:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_updates_reach_subscribers_with_the_client_side_uri() {
    let everything = Upstream::everything().await;
    let manifests = yaml::server("everything", &everything.mcp_url(), "timeout: 30s")
        + &yaml::route("agents", "mounts: [{server: everything, prefix: every}]");
    let stack = LocalStack::start(&manifests).await;
    let uri = "demo://every/resource/static/document/architecture.md";
    let results = run_client(
        &stack.url("/acme/agents/mcp"),
        Sdk::Mcp,
        json!([
            {"op": "subscribe", "uri": uri},
            {"op": "call", "name": "every_toggle-subscriber-updates", "arguments": {}},
            // server-everything sends an update at once and then every 5 s, on its own stream.
            {"op": "wait_for", "notification": format!("notifications/resources/updated {uri}"), "seconds": 20},
            {"op": "unsubscribe", "uri": uri},
        ]),
    )
    .await;
    assert_eq!(results[0], json!({"ok": true}), "subscribe: {}", results[0]);
    assert_eq!(results[2]["seen"], true, "the update names the URI the client subscribed to: {}", results[2]);
    assert_eq!(results[3], json!({"ok": true}), "unsubscribe: {}", results[3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_sse_upstreams_requests_reach_the_client_and_its_answers_come_back() {
    let legacy = Upstream::start("legacy").await;
    let manifests = yaml::server("legacy", &legacy.sse_url(), "transport: sse")
        + &yaml::route("old", "mounts: [{server: legacy, prefix: old}]");
    let stack = LocalStack::start(&manifests).await;
    // The elicitation comes on the legacy stream, reaches the client on its standalone
    // stream, and the client's answer is POSTed to the legacy endpoint under the upstream's id.
    let results = run_client(
        &stack.url("/acme/old/mcp"),
        Sdk::Mcp,
        json!([{"op": "call", "name": "old_ask", "arguments": {}}, {"op": "seen"}]),
    )
    .await;
    assert_eq!(manifold_e2e::peers::text(&results[0]), "Hello, e2e!", "{}", results[0]);
    assert_eq!(results[1]["requests"], json!(["elicitation/create"]));
}
