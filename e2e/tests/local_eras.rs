//! Local stack, real peers: both protocol eras meet on one route. The gateway speaks to each
//! upstream in the newest revision it serves: a stateless client (FastMCP's, 2026-07-28)
//! reaches a session-only upstream through the gateway's bridge session, which is opened
//! again when the upstream forgets it; a session client (the `mcp` SDK, 2025-11-25) reaches
//! a stateless-only upstream with its declared capabilities in each request's `_meta`.

use manifold_e2e::peers::{Sdk, Upstream, run_client, text, tool_names};
use manifold_e2e::{LocalStack, yaml};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn clients_of_either_era_reach_upstreams_of_either_era() {
    let (mut sessions_only, stateless_only, asking) = tokio::join!(
        Upstream::start_with("alpha", &["--only-sessions"]),
        Upstream::start_with("beta", &["--only-stateless"]),
        Upstream::start_with("alpha", &["--only-stateless"]),
    );
    let manifests = yaml::server("alpha", &sessions_only.mcp_url(), "")
        + &yaml::server("beta", &stateless_only.mcp_url(), "")
        + &yaml::server("gamma", &asking.mcp_url(), "")
        + &yaml::route("eras", "mounts: [{server: alpha}, {server: beta}, {server: gamma}]");
    let stack = LocalStack::start(&manifests).await;
    let url = stack.url("/acme/eras/mcp");

    let ops = json!([
        {"op": "list_tools"},
        {"op": "call", "name": "alpha_echo", "arguments": {"text": "a"}},
        {"op": "call", "name": "beta_multiply", "arguments": {"a": 6, "b": 7}},
    ]);
    for sdk in [Sdk::Mcp, Sdk::FastMcp] {
        let r = run_client(&url, sdk, ops.clone()).await;
        let names = tool_names(&r[0]);
        assert!(
            names.contains(&"alpha_echo".to_owned()) && names.contains(&"beta_multiply".to_owned()),
            "{sdk:?}: {names:?}"
        );
        assert_eq!(text(&r[1]), "alpha:a", "{sdk:?}");
        assert_eq!(r[2]["structuredContent"], json!({"result": 42}), "{sdk:?}: {}", r[2]);
    }

    // A stateless-only upstream asks for input the stateless way (InputRequiredResult); a
    // session client is asked as sessions ask (elicitation/create), and the gateway retries
    // with the answer.
    let mut greeting =
        run_client(&url, Sdk::Mcp, json!([{"op": "call", "name": "gamma_greet", "arguments": {}}, {"op": "seen"}]))
            .await;
    assert_eq!(text(&greeting[0]), "Hello, e2e!", "{}", greeting[0]);
    assert_eq!(greeting.remove(1)["requests"], json!(["elicitation/create"]));

    // The session-only upstream restarts and forgets the bridge session: the next stateless
    // request opens a new one, unnoticed by the client.
    sessions_only.restart().await;
    let r =
        run_client(&url, Sdk::FastMcp, json!([{"op": "call", "name": "alpha_echo", "arguments": {"text": "b"}}])).await;
    assert_eq!(text(&r[0]), "alpha:b", "{}", r[0]);
}
