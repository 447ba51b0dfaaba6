//! Scenario 7: one RBAC rule removed (the operator may not record Events): the operator says
//! which permission it lacks, in its log and on `/readyz`, and everything else goes on.

use manifold_e2e::kube_stack::{KubeStack, OPERATOR_RBAC};
use manifold_e2e::peers::{Sdk, Upstream, run_client, text};
use manifold_e2e::pods::OPERATOR_ADMIN_PORT;
use manifold_e2e::yaml;
use serde_json::json;

const EVENTS_RULE: &str = "  - apiGroups: [events.k8s.io]\n    resources: [events]\n    verbs: [create, patch]\n";

pub async fn missing_rule() {
    let alpha = Upstream::start("alpha").await;
    let mut stack = KubeStack::new("norbac", &["acme"]);
    let operator = stack.chart(OPERATOR_RBAC);
    assert!(operator.contains(EVENTS_RULE), "the chart grants Events as this test expects:\n{operator}");
    stack.admin.apply(&operator.replace(EVENTS_RULE, ""));
    // Never ready while a permission is missing: /readyz says why.
    stack.spawn_operator("operator-0");
    stack.start_gateway("gateway-0").await;
    let acme = stack.tenant(0).to_owned();
    stack.admin.apply(&yaml::in_namespace(
        &(yaml::server("alpha", &alpha.mcp_url(), "") + &yaml::route("tools", "mounts: [{server: alpha}]")),
        &acme,
    ));

    // Everything the remaining rules allow still happens.
    stack.until_programmed(&acme, "tools");
    let url = stack.route_url(0, &format!("/{acme}/tools/mcp"));
    let ops = json!([{"op": "call", "name": "alpha_echo", "arguments": {"text": "no events"}}]);
    assert_eq!(text(&run_client(&url, Sdk::Mcp, ops).await[0]), "alpha:no events");

    // And the operator names what it lacks.
    let pod = &stack.operators[0];
    let (status, body) = pod.get(OPERATOR_ADMIN_PORT, "/readyz").await.expect("/readyz answers");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("create events.events.k8s.io") && body.contains(&acme), "/readyz: {body}");
    let log = pod.log();
    assert!(
        log.lines()
            .any(|l| l.contains("missing permission") && l.contains("events.events.k8s.io") && l.contains(&acme)),
        "the operator's log names the permission:\n{log}"
    );
    assert!(stack.events(&acme, "tools").is_empty(), "no Event could be written");
}
