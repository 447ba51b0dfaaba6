//! Local stack, real peers: one route mounting two FastMCP servers (streamable HTTP, sharing
//! a tool name) and a legacy-SSE FastMCP server, driven by the official `mcp` client and by
//! FastMCP's `Client`. Names, results and errors are asserted.

use manifold_e2e::peers::{Sdk, Upstream, run_client, text, tool_names};
use manifold_e2e::{LocalStack, yaml};
use serde_json::json;

fn manifests(alpha: &Upstream, beta: &Upstream, legacy: &Upstream) -> String {
    let secret = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: upstream-creds, namespace: acme}\n\
                  stringData: {tenant: acme}\n";
    let tenant_header = "headers: [{name: X-Tenant, valueFrom: {secretKeyRef: {name: upstream-creds, key: tenant}}}]";
    yaml::server("alpha", &alpha.mcp_url(), tenant_header)
        + secret
        + &yaml::server("beta", &beta.mcp_url(), "")
        + &yaml::server("legacy", &legacy.sse_url(), "transport: sse")
        + &yaml::route(
            "tools",
            "mounts: [{server: alpha}, {server: beta, tools: {exclude: [whoami]}}, \
             {server: legacy, prefix: old, rename: {reverse: backwards}}]",
        )
}

#[tokio::test(flavor = "multi_thread")]
async fn one_route_mounts_three_servers_for_both_client_sdks() {
    let (alpha, beta, legacy) =
        tokio::join!(Upstream::start("alpha"), Upstream::start("beta"), Upstream::start("legacy"));
    let stack = LocalStack::start(&manifests(&alpha, &beta, &legacy)).await;
    let url = stack.url("/acme/tools/mcp");

    for sdk in Sdk::ALL {
        let ops = json!([
            {"op": "list_tools"},
            {"op": "call", "name": "alpha_echo", "arguments": {"text": "hi"}},
            {"op": "call", "name": "beta_echo", "arguments": {"text": "hi"}},
            {"op": "call", "name": "alpha_add", "arguments": {"a": 2, "b": 40}},
            {"op": "call", "name": "beta_multiply", "arguments": {"a": 6, "b": 7}},
            {"op": "call", "name": "old_backwards", "arguments": {"text": "abc"}},
            {"op": "call", "name": "old_echo", "arguments": {"text": "sse"}},
            {"op": "call", "name": "alpha_fail", "arguments": {}},
            {"op": "call", "name": "no_such_tool", "arguments": {}},
            {"op": "call", "name": "beta_whoami", "arguments": {}},
            {"op": "call", "name": "old_reverse", "arguments": {"text": "abc"}},
            {"op": "ping"},
            {"op": "call", "name": "alpha_header", "arguments": {"name": "X-Tenant"}},
        ]);
        let r = run_client(&url, sdk, ops).await;
        assert_eq!(
            tool_names(&r[0]),
            [
                "alpha_add",
                "alpha_echo",
                "alpha_fail",
                "alpha_greet",
                "alpha_header",
                "alpha_slow",
                "alpha_whoami",
                "beta_echo",
                "beta_multiply",
                "old_ask",
                "old_backwards",
                "old_echo"
            ],
            "{sdk:?}"
        );
        let add = r[0]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "alpha_add").unwrap();
        assert_eq!(add["description"], "Add two integers.", "descriptions pass through");
        assert_eq!(add["outputSchema"]["properties"]["result"]["type"], "integer", "output schemas pass through");

        assert_eq!(text(&r[1]), "alpha:hi", "{sdk:?}");
        assert_eq!(text(&r[2]), "beta:hi", "same tool name, other mount");
        assert_eq!(r[3]["structuredContent"], json!({"result": 42}));
        assert_eq!(r[4]["structuredContent"], json!({"result": 42}));
        assert_eq!(text(&r[5]), "cba", "renamed tool on the legacy SSE mount");
        assert_eq!(text(&r[6]), "legacy:sse");
        assert_eq!(r[7]["isError"], true);
        assert_eq!(text(&r[7]), "alpha failed on purpose", "a tool error passes through as a result");
        for (i, name) in [(8, "no_such_tool"), (9, "beta_whoami"), (10, "old_reverse")] {
            assert_eq!(r[i]["error"]["code"], -32602, "{sdk:?} {name}: {}", r[i]);
            let message = r[i]["error"]["message"].as_str().unwrap();
            assert!(message.contains(name), "the error names the unknown tool: {message}");
        }
        match sdk {
            Sdk::Mcp => assert_eq!(r[11], json!({"ok": true})),
            // FastMCP's client speaks the stateless revision (2026-07-28), which has no `ping`.
            _ => assert_eq!(r[11]["error"]["code"], -32601, "{}", r[11]),
        }
        assert_eq!(text(&r[12]), "acme", "the header from the Secret reaches alpha");
    }
}
