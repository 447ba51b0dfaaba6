//! Local stack, real peers: editing the manifests changes what a route serves without a
//! restart; an invalid edit keeps the last good config serving; a request in flight when a
//! reload lands finishes on the config it started with.

use std::time::Duration;

use manifold_e2e::peers::Upstream;
use manifold_e2e::raw::RawSession;
use manifold_e2e::{LocalStack, eventually, yaml};
use serde_json::json;

fn manifests(alpha: &Upstream, beta: &Upstream, mounts: &str) -> String {
    yaml::server("alpha", &alpha.mcp_url(), "")
        + &yaml::server("beta", &beta.mcp_url(), "")
        + &yaml::route("tools", &format!("mounts: {mounts}"))
}

async fn names(stack: &LocalStack) -> Vec<String> {
    RawSession::initialize(&stack.url("/acme/tools/mcp")).await.tool_names().await
}

async fn metric(stack: &LocalStack, line_start: &str) -> f64 {
    let text = reqwest::get(stack.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_apply_without_restart_and_invalid_edits_keep_the_last_good_config() {
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let stack = LocalStack::start(&manifests(&alpha, &beta, "[{server: alpha}]")).await;
    assert!(names(&stack).await.iter().all(|n| n.starts_with("alpha_")));
    assert_eq!(stack.generation(), 1);

    stack.rewrite(&manifests(&alpha, &beta, "[{server: alpha}, {server: beta, tools: {include: [echo]}}]"));
    let served = eventually("beta mounted", Duration::from_secs(10), || async {
        let names = names(&stack).await;
        names.contains(&"beta_echo".to_owned()).then_some(names)
    })
    .await;
    assert_eq!(served.iter().filter(|n| n.starts_with("beta_")).count(), 1, "{served:?}");
    assert_eq!(stack.generation(), 2);

    // Not YAML at all: rejected as a whole, last good config still served.
    let rejected_before = metric(&stack, "manifold_config_loads_total{outcome=\"rejected\"}").await;
    stack.rewrite("apiVersion: [unclosed");
    eventually("the broken file rejected", Duration::from_secs(10), || async {
        (metric(&stack, "manifold_config_loads_total{outcome=\"rejected\"}").await > rejected_before).then_some(())
    })
    .await;
    assert!(names(&stack).await.contains(&"beta_echo".to_owned()));
    assert_eq!(stack.generation(), 2);

    // Valid YAML, invalid route (mounts a server that does not exist): the route keeps its
    // last valid version.
    let unchanged_before = metric(&stack, "manifold_config_loads_total{outcome=\"unchanged\"}").await;
    stack.rewrite(&manifests(&alpha, &beta, "[{server: alpha}, {server: nobody}]"));
    eventually("the invalid route compiled", Duration::from_secs(10), || async {
        (metric(&stack, "manifold_config_loads_total{outcome=\"unchanged\"}").await > unchanged_before).then_some(())
    })
    .await;
    assert!(names(&stack).await.contains(&"beta_echo".to_owned()));
    assert_eq!(stack.generation(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_in_flight_finishes_on_its_config() {
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let stack = LocalStack::start(&manifests(&alpha, &beta, "[{server: alpha}, {server: beta}]")).await;
    let session = RawSession::initialize(&stack.url("/acme/tools/mcp")).await;
    let slow = tokio::spawn({
        let session = RawSession::resume(&session.url, session.session.clone());
        async move { session.request("tools/call", json!({"name": "alpha_slow", "arguments": {"seconds": 8}})).await }
    });
    eventually("the slow call in flight", Duration::from_secs(10), || async {
        (metric(&stack, "manifold_requests_in_flight").await >= 1.0).then_some(())
    })
    .await;
    stack.rewrite(&manifests(&alpha, &beta, "[{server: beta}]"));
    eventually("alpha unmounted", Duration::from_secs(10), || async { (stack.generation() == 2).then_some(()) }).await;
    assert!(!slow.is_finished(), "the reload landed while the call was in flight");
    let answer = slow.await.unwrap();
    assert_eq!(answer.body["result"]["content"][0]["text"], "done", "{}", answer.body);
    let after = session.request("tools/call", json!({"name": "alpha_echo", "arguments": {"text": "x"}})).await;
    assert_eq!(after.body["error"]["code"], -32602, "alpha is gone after the reload: {}", after.body);
}
