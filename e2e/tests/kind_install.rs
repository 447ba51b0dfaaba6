//! On kind, where pods really run (`make e2e-kind` builds the images, loads them and runs
//! this): the platform team's path of `src/install.rs`, as the test API server's scenario
//! runs it, with real pods, a client through a port-forward, the gateway scaled to three and
//! the pod a session started on deleted (the session goes on), and a CRD upgrade. Skips with
//! one line when no kind cluster is reachable.

use std::time::Duration;

use manifold_e2e::install::{SYSTEM, apply_examples, install_charts, until_all_programmed, upgrade_crds_with_a_change};
use manifold_e2e::kind::{self, PortForward};
use manifold_e2e::raw::RawSession;
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(180);

async fn add(url: &str, session: Option<String>) -> (String, serde_json::Value) {
    let raw = match session {
        Some(session) => RawSession::resume(url, Some(session)),
        None => RawSession::initialize(url).await,
    };
    let answer = raw.request("tools/call", json!({"name": "math_add", "arguments": {"a": 2, "b": 40}})).await;
    (raw.session.clone().unwrap_or_default(), answer.body)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_charts_install_and_serve_on_kind() {
    let Some(cluster) = kind::or_skip("the_charts_install_and_serve_on_kind") else { return };
    let images = [
        "operator.image.tag=dev",
        "operator.image.pullPolicy=Never",
        "gateway.image.tag=dev",
        "gateway.image.pullPolicy=Never",
        // No metrics server in kind: the test scales the gateways itself.
        "gateway.autoscaling.enabled=false",
        "gateway.replicas=2",
    ];
    install_charts(&cluster, &images);
    for deployment in ["manifold-operator", "manifold-gateway"] {
        cluster.run(&["rollout", "status", "-n", SYSTEM, &format!("deploy/{deployment}"), "--timeout=180s"], None);
    }
    // examples/in-cluster runs the sample servers as pods, behind /samples/quickstart/mcp.
    apply_examples(&cluster);
    cluster.run(&["rollout", "status", "-n", "samples", "deploy/samples", "--timeout=180s"], None);
    until_all_programmed(&cluster, SETTLE);

    let service = PortForward::start(&cluster, SYSTEM, "svc/manifold-gateway", 8080);
    let (_, answer) = add(&service.url("/samples/quickstart/mcp"), None).await;
    assert!(answer.to_string().contains("42"), "math_add through the Service: {answer}");
    drop(service);

    // Three replicas; a session begun on one goes on through another once its pod is gone.
    cluster.run(&["scale", "-n", SYSTEM, "deploy/manifold-gateway", "--replicas=3"], None);
    cluster.run(&["rollout", "status", "-n", SYSTEM, "deploy/manifold-gateway", "--timeout=180s"], None);
    let pods: Vec<String> = cluster
        .list("pods", SYSTEM)
        .iter()
        .filter(|p| p["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway")
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(pods.len(), 3, "{pods:?}");
    let first = PortForward::start(&cluster, SYSTEM, &format!("pod/{}", pods[0]), 8080);
    let (session, answer) = add(&first.url("/samples/quickstart/mcp"), None).await;
    assert!(answer.to_string().contains("42"), "{answer}");
    drop(first);
    cluster.run(&["delete", "pod", "-n", SYSTEM, &pods[0], "--wait=true"], None);
    let other = PortForward::start(&cluster, SYSTEM, &format!("pod/{}", pods[1]), 8080);
    let (_, answer) = add(&other.url("/samples/quickstart/mcp"), Some(session)).await;
    assert!(answer.to_string().contains("42"), "the session went on on another replica: {answer}");

    upgrade_crds_with_a_change(&cluster, SETTLE);
}
