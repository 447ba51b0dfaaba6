//! Agent frameworks through a route, their model scripted (e2e/peers/scripted_model.py): what
//! the model is handed when the route says no. Here the OpenAI Agents SDK, its own MCP client
//! talking to the route.

use manifold_e2e::peers::{Upstream, run_agent};
use manifold_e2e::{LocalStack, yaml};
use serde_json::json;

/// A rate limit reached mid-run reaches the model as a tool result it can read, with the
/// wait, and the run goes on to a final answer: not an exception that ends the agent.
#[tokio::test(flavor = "multi_thread")]
async fn an_openai_agent_is_told_when_to_retry_a_limited_tool() {
    let alpha = Upstream::start("alpha").await;
    let route = yaml::route(
        "agent",
        "mounts: [{server: alpha}], rateLimits: [{name: echoes, scope: Route, requests: 1, per: 1h, tools: ['*']}]",
    );
    let stack = LocalStack::start(&(yaml::server("alpha", &alpha.mcp_url(), "") + &route)).await;

    let echo = json!({"tool": "alpha_echo", "arguments": {"text": "hi"}});
    let script = json!({"input": "Echo hi, twice.", "turns": [echo, echo, {"text": "done"}]});
    let run = run_agent(&stack.url("/acme/agent/mcp"), &[], script).await;

    assert_eq!(run["final"], "done", "the run ends normally: {run}");
    let results = run["tool_results"].as_array().expect("the tool results the model saw");
    assert_eq!(results.len(), 2, "{run}");
    assert!(results[0].as_str().unwrap_or_default().contains("alpha:hi"), "{run}");
    let refused = results[1].as_str().unwrap_or_default();
    assert!(refused.contains("rate limit `echoes` reached: retry in "), "the model reads the limit: {refused}");
    assert!(refused.contains("Nothing was run."), "{refused}");
}
