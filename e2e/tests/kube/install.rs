//! The platform team's path, on an API server of its own (helm owns the CRDs there): both
//! charts linted and installed, a schema violation refused by name, every option accepted by
//! the API server; the chart's workloads run as a kubelet would run them, under the chart's
//! ServiceAccounts; the examples applied, every route Programmed and a client served; an
//! upgrade with a changed value and one with a CRD change; uninstall keeps the CRDs and the
//! tenants' objects.

use std::path::Path;

use manifold_e2e::apiserver::ApiServer;
use manifold_e2e::cluster::{Cluster, condition};
use manifold_e2e::kube_stack::{SETTLE, write_endpoints};
use manifold_e2e::peers::{Sdk, run_client, text};
use manifold_e2e::{helm, kubelet, repo_root};
use serde_json::{Value, json};

const SYSTEM: &str = "manifold-system";

/// helm as the admin of `api`; panics with its output unless it succeeds.
fn helm_ok(api: &ApiServer, args: &[&str]) -> String {
    let out = helm_as_admin(api, args);
    assert!(out.status.success(), "helm {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn helm_as_admin(api: &ApiServer, args: &[&str]) -> std::process::Output {
    let kubeconfig = api.admin_kubeconfig().display().to_string();
    let mut all = vec!["--kubeconfig", kubeconfig.as_str()];
    all.extend(args);
    helm::run(&all)
}

/// Starts a Deployment's pods and waits until each passes its readiness probe.
async fn run(api: &ApiServer, name: &str, replicas: Option<usize>, logs: &Path) -> kubelet::Started {
    let started = kubelet::start(api, SYSTEM, name, replicas, logs);
    for pod in &started.pods {
        pod.until_ready(started.readiness.0, SETTLE).await;
    }
    started
}

/// The routes of every namespace not Programmed yet, with their condition.
fn not_programmed(admin: &Cluster) -> Vec<String> {
    let out = admin.run(&["get", "mcproutes", "--all-namespaces", "-o", "json"], None);
    let list: Value = serde_json::from_str(&out).expect("JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| condition(r, "Programmed").is_none_or(|c| c["status"] != "True"))
        .map(|r| format!("{}/{}: {:?}", r["metadata"]["namespace"], r["metadata"]["name"], condition(r, "Programmed")))
        .collect()
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
        helm_ok(&api, args);
    }

    // The CRDs first, from their own chart.
    helm_ok(&api, &["install", "manifold-crds", "charts/manifold-crds"]);
    admin.run(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/mcpservers.manifold.dev",
            "crd/mcproutes.manifold.dev",
        ],
        None,
    );

    // A value the schema refuses fails the install, naming it; nothing is installed.
    let bad = helm_as_admin(
        &api,
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
    for named in ["watchNamespace", "/operator/replicas", "pullPolicy", "logFormat", "autoscalling"] {
        assert!(stderr.contains(named), "the refusal names `{named}`: {stderr}");
    }
    assert!(admin.list("deployments", "bad").is_empty(), "nothing was installed for the refused values");

    // Every option on: each object is accepted by the API server (ServiceMonitor and
    // HTTPRoute by stand-in CRDs, e2e/fixtures/crds/third-party.yaml).
    admin.run(
        &[
            "apply",
            "--server-side",
            "-f",
            &repo_root().join("e2e/fixtures/crds/third-party.yaml").display().to_string(),
        ],
        None,
    );
    admin.run(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/httproutes.gateway.networking.k8s.io",
        ],
        None,
    );
    admin.namespaces(&["team-a", "team-b"]);
    helm_ok(
        &api,
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
    ] {
        assert!(admin.get(kind, "every-option", name).is_some(), "{kind} {name} was installed");
    }

    // The default install, and its workloads run as the chart says.
    helm_ok(&api, &["install", "manifold", "charts/manifold", "-n", SYSTEM, "--create-namespace"]);
    let _operators = run(&api, "manifold-operator", None, logs.path()).await.pods;
    // (the operators run until the scenario ends: dropping a Pod kills it)
    assert_eq!(_operators.len(), 2, "the chart runs two operator replicas");
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
    admin.namespaces(&["demo", "acme", "globex"]);
    admin.run(&["apply", "--server-side", "-R", "-f", &repo_root().join("examples").display().to_string()], None);
    admin.until("every example route to be Programmed", SETTLE, || {
        let pending = not_programmed(&admin);
        if pending.is_empty() { Ok(()) } else { Err(pending.join("; ")) }
    });
    let path = "/demo/quickstart/mcp";
    for gateway in &gateways {
        assert_eq!(add(&gateway.url(8080, path)).await, r#"{"result":42.0}"#, "through {}", gateway.name);
    }

    // An upgrade with a changed value reaches the pods: a rollout, one replica at a time.
    helm_ok(
        &api,
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
    admin.until("every route Programmed after the rollout", SETTLE, || {
        let pending = not_programmed(&admin);
        if pending.is_empty() { Ok(()) } else { Err(pending.join("; ")) }
    });

    // An upgrade of the CRD chart changes the CRDs in place (a new printer column here).
    let changed = tempfile::tempdir().expect("temp dir");
    copy_dir(&repo_root().join("charts/manifold-crds"), changed.path());
    let crd = changed.path().join("templates/mcproutes.manifold.dev.yaml");
    let text = std::fs::read_to_string(&crd).expect("the route CRD");
    let column = "    - jsonPath: .spec.hostnames\n      name: Hosts\n      type: string\n";
    let text = text.replacen("  - additionalPrinterColumns:\n", &format!("  - additionalPrinterColumns:\n{column}"), 1);
    assert!(text.contains("name: Hosts"), "the CRD template has printer columns to extend");
    std::fs::write(&crd, text).expect("write the changed CRD");
    helm_ok(&api, &["upgrade", "manifold-crds", &changed.path().display().to_string()]);
    admin.until("the upgraded CRD to show the new column", SETTLE, || {
        let crd = admin.get("crd", "", "mcproutes.manifold.dev").ok_or("no CRD")?;
        let columns = crd["spec"]["versions"][0]["additionalPrinterColumns"].to_string();
        if columns.contains("Hosts") { Ok(()) } else { Err(columns) }
    });

    // Uninstalling Manifold keeps the CRDs and every tenant's objects.
    helm_ok(&api, &["uninstall", "manifold", "-n", SYSTEM]);
    assert!(admin.get("crd", "", "mcproutes.manifold.dev").is_some(), "the CRDs stay");
    assert!(admin.get("mcproute", "demo", "quickstart").is_some(), "the tenants' routes stay");
    assert!(admin.get("deployment", SYSTEM, "manifold-gateway").is_none(), "the workloads are gone");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a folder");
    for entry in std::fs::read_dir(from).expect("read a folder") {
        let path = entry.expect("an entry").path();
        let target = to.join(path.file_name().expect("a name"));
        if path.is_dir() {
            copy_dir(&path, &target)
        } else {
            std::fs::copy(&path, &target).map(|_| ()).expect("copy a file")
        }
    }
}
