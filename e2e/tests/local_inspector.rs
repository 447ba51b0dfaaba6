//! Local stack, real peers: MCP Inspector's CLI lists and calls tools through a route.

use manifold_e2e::peers::{Upstream, node_command};
use manifold_e2e::{LocalStack, yaml};
use serde_json::Value;

/// Runs `inspector --cli <url> <args>` and returns its JSON output.
async fn inspector(url: &str, args: &[&str]) -> Value {
    let output = node_command("inspector")
        .args(["--cli", url, "--transport", "http"])
        .args(args)
        .output()
        .await
        .expect("run the Inspector CLI");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "inspector {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("inspector printed non-JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn inspector_cli_lists_and_calls_tools_in_both_eras() {
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "")
        + &yaml::server("beta", &beta.mcp_url(), "")
        + &yaml::route("tools", "mounts: [{server: alpha}, {server: beta}]");
    let stack = LocalStack::start(&manifests).await;
    let url = stack.url("/acme/tools/mcp");

    // `legacy` is the session-based revisions (initialize), `modern` the stateless 2026-07-28.
    for era in ["legacy", "modern"] {
        let era = ["--protocol-era", era];
        let listed = inspector(&url, &[&era[..], &["--method", "tools/list"]].concat()).await;
        let names: Vec<&str> =
            listed["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"alpha_echo") && names.contains(&"beta_multiply"), "{era:?}: {names:?}");
        let call = ["--method", "tools/call", "--tool-name", "beta_multiply", "--tool-arg", "a=6", "b=7"];
        let called = inspector(&url, &[&era[..], &call[..]].concat()).await;
        assert_eq!(called["content"][0]["text"], "42", "{era:?}: {called}");
    }
    let metrics = reqwest::get(stack.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("manifold_requests_total") && l.contains("method=\"server/discover\"")),
        "the modern era discovered the route"
    );
}
