//! Local stack, real peers: two servers mounted without a prefix. When tool names collide the
//! route is refused before any client sees it (local mode asks the servers what they offer);
//! once filters keep the names apart it is served.

use manifold_e2e::peers::Upstream;
use manifold_e2e::raw::RawSession;
use manifold_e2e::{LocalStack, yaml};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread")]
async fn colliding_unprefixed_mounts_are_refused_and_filters_resolve_them() {
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    // alpha and beta both offer `echo` and `whoami`.
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "")
        + &yaml::server("beta", &beta.mcp_url(), "")
        + &yaml::route("clash", "mounts: [{server: alpha, prefix: ''}, {server: beta, prefix: ''}]")
        + &yaml::route(
            "apart",
            "mounts: [{server: alpha, prefix: ''}, {server: beta, prefix: '', tools: {exclude: [echo, whoami]}}]",
        );
    let stack = LocalStack::start(&manifests).await;

    let status: serde_json::Value = reqwest::get(stack.admin_url("/status")).await.unwrap().json().await.unwrap();
    let served: Vec<&str> = status["routes"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(served, ["apart"], "the colliding route is not served: {status}");
    let clash = reqwest::Client::new().post(stack.url("/acme/clash/mcp")).body("{}").send().await.unwrap();
    assert_eq!(clash.status(), StatusCode::NOT_FOUND);

    let names = RawSession::initialize(&stack.url("/acme/apart/mcp")).await.tool_names().await;
    assert_eq!(names, ["add", "echo", "fail", "greet", "header", "multiply", "slow", "whoami"]);
}
