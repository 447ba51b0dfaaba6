//! The platform team's path, on an API server of its own (helm owns the CRDs there): both
//! charts linted and installed, a schema violation refused by name, every option accepted by
//! the API server; the chart's workloads run as a kubelet would run them, under the chart's
//! ServiceAccounts; the examples applied, every route Programmed and a client served; an
//! upgrade with a changed value and one with a CRD change; uninstall keeps the CRDs and the
//! tenants' objects.

use std::path::Path;

use manifold_e2e::apiserver::ApiServer;
use manifold_e2e::install::{
    SYSTEM, apply_examples, helm, helm_ok, install_charts, until_all_programmed, upgrade_crds_with_a_change,
};
use manifold_e2e::kube_stack::{SETTLE, write_endpoints};
use manifold_e2e::peers::{Sdk, run_client, text};
use manifold_e2e::{kubelet, repo_root};
use serde_json::json;

/// Starts a Deployment's pods and waits until each passes its readiness probe.
async fn run(api: &ApiServer, name: &str, replicas: Option<usize>, logs: &Path) -> kubelet::Started {
    let started = kubelet::start(api, SYSTEM, name, replicas, logs);
    for pod in &started.pods {
        pod.until_ready(started.readiness.0, SETTLE).await;
    }
    started
}

async fn add(url: &str) -> String {
    let ops = json!([{"op": "call", "name": "math_add", "arguments": {"a": 2, "b": 40}}]);
    text(&run_client(url, Sdk::Mcp, ops).await[0]).to_owned()
}

pub async fn helm_install() {
    let api = ApiServer::start();
    let admin = api.admin();
    let logs = tempfile::tempdir().expect("temp dir");

    for args in [
        &["lint", "--strict", "charts/manifold-crds"][..],
        &["lint", "--strict", "charts/manifold"],
        &["lint", "--strict", "charts/manifold", "-f", "charts/manifold/ci/all-options-values.yaml"],
    ] {
        helm_ok(&admin, args);
    }

    // The CRDs first, from their own chart; then Manifold, with default values.
    install_charts(&admin, &[]);

    // A value the schema refuses fails the install, naming it; nothing is installed.
    let bad = helm(
        &admin,
        &[
            "install",
            "bad",
            "charts/manifold",
            "-n",
            "bad",
            "--create-namespace",
            "-f",
            "charts/manifold/tests/bad-values.yaml",
        ],
    );
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "bad values were accepted");
    for named in [
        "watchNamespace",
        "/operator/replicas",
        "pullPolicy",
        "logFormat",
        "autoscalling",
        "/metrics/prometheusRule/enabled",
        "/dashboards/enabled",
        "/telemetry/otlp/endpoint",
        "/telemetry/otlp/protocol",
        "/telemetry/traces/samplingRatio",
    ] {
        assert!(stderr.contains(named), "the refusal names `{named}`: {stderr}");
    }
    assert!(admin.list("deployments", "bad").is_empty(), "nothing was installed for the refused values");

    // Every option on: each object is accepted by the API server (ServiceMonitor,
    // PrometheusRule and HTTPRoute by stand-in CRDs, e2e/fixtures/crds/third-party.yaml).
    admin.run(
        &[
            "apply",
            "--server-side",
            "-f",
            &repo_root().join("e2e/fixtures/crds/third-party.yaml").display().to_string(),
        ],
        None,
    );
    admin.until_established(&[
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "httproutes.gateway.networking.k8s.io",
    ]);
    admin.namespaces(&["team-a", "team-b"]);
    helm_ok(
        &admin,
        &[
            "install",
            "every-option",
            "charts/manifold",
            "-n",
            "every-option",
            "--create-namespace",
            "-f",
            "charts/manifold/ci/all-options-values.yaml",
        ],
    );
    for (kind, name) in [
        ("servicemonitor", "every-option-gateway"),
        ("httproute", "every-option-gateway"),
        ("networkpolicy", "every-option-gateway"),
        ("ingress", "every-option-gateway"),
        ("hpa", "every-option-gateway"),
        ("pdb", "every-option-gateway"),
        ("prometheusrule", "every-option-alerts"),
    ] {
        assert!(admin.get(kind, "every-option", name).is_some(), "{kind} {name} was installed");
    }
    // The dashboards go where Grafana's sidecar looks: the namespace and labels the values name.
    let dashboards = admin.list("configmaps", "team-a");
    let labelled = dashboards.iter().filter(|map| map["metadata"]["labels"]["grafana_dashboard"] == "1").count();
    assert_eq!(labelled, 3, "the tenant, fleet and operator dashboards in team-a");

    // The default install's workloads, run as the chart says.
    // (the operators run until the scenario ends: dropping a Pod kills it)
    let operators = run(&api, "manifold-operator", None, logs.path()).await.pods;
    assert_eq!(operators.len(), 2, "the chart runs two operator replicas");
    let hpa = admin.get("hpa", SYSTEM, "manifold-gateway").expect("the gateway's HPA");
    let min = hpa["spec"]["minReplicas"].as_u64().expect("minReplicas") as usize;
    // No autoscaler runs here: start what it would scale to at once.
    let started = run(&api, "manifold-gateway", Some(min), logs.path()).await;
    let (mut gateways, ports) = (started.pods, started.ports);
    write_endpoints(&admin, SYSTEM, "manifold-gateway", &gateways, &ports).await;

    // The examples: a tenant with servers, an OpenAPI sub-server, two tenants with their
    // routes and auth. The quickstart's upstreams are the sample servers, on loopback.
    for (sample, port) in [(manifold_samples::Sample::Math, 9301), (manifold_samples::Sample::Text, 9302)] {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind a sample's port");
        tokio::spawn(manifold_samples::serve(sample, listener));
    }
    apply_examples(&admin);
    until_all_programmed(&admin, SETTLE);
    let path = "/demo/quickstart/mcp";
    for gateway in &gateways {
        assert_eq!(add(&gateway.url(8080, path)).await, r#"{"result":42.0}"#, "through {}", gateway.name);
    }

    // An upgrade with a changed value reaches the pods: a rollout, one replica at a time.
    helm_ok(
        &admin,
        &[
            "upgrade",
            "manifold",
            "charts/manifold",
            "-n",
            SYSTEM,
            "--reuse-values",
            "--set",
            "gateway.sessionMaxAgeSecs=3600",
        ],
    );
    let deployment = admin.get("deployment", SYSTEM, "manifold-gateway").expect("the gateway Deployment");
    assert!(deployment.to_string().contains("\"3600\""), "the new value is in the Deployment");
    // The API server serves PrometheusRules now (the stand-in CRD): `auto` renders the alerts.
    assert!(admin.get("prometheusrule", SYSTEM, "manifold-alerts").is_some(), "the alerts follow the API");
    let rolled = run(&api, "manifold-gateway", Some(min), logs.path()).await.pods;
    for pod in &mut gateways {
        pod.terminate().await;
    }
    gateways = rolled;
    write_endpoints(&admin, SYSTEM, "manifold-gateway", &gateways, &ports).await;
    for gateway in &gateways {
        assert_eq!(
            add(&gateway.url(8080, path)).await,
            r#"{"result":42.0}"#,
            "through {} after the upgrade",
            gateway.name
        );
    }
    until_all_programmed(&admin, SETTLE);

    // An upgrade of the CRD chart changes the CRDs in place.
    upgrade_crds_with_a_change(&admin, SETTLE);

    // Uninstalling Manifold keeps the CRDs and every tenant's objects.
    helm_ok(&admin, &["uninstall", "manifold", "-n", SYSTEM]);
    assert!(admin.get("crd", "", "mcproutes.manifold.dev").is_some(), "the CRDs stay");
    assert!(admin.get("mcproute", "demo", "quickstart").is_some(), "the tenants' routes stay");
    assert!(admin.get("deployment", SYSTEM, "manifold-gateway").is_none(), "the workloads are gone");
}
