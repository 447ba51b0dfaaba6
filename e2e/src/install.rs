//! The platform team's path, written once for any [`Cluster`] (the test API server with a
//! stand-in kubelet, or kind with real pods): install both charts with helm, apply the
//! examples, wait until every route is Programmed, upgrade the CRD chart with a change.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{Cluster, condition};
use crate::repo_root;

/// The namespace the `manifold` chart is installed in.
pub const SYSTEM: &str = "manifold-system";

/// helm aimed at the same server and identity as `cluster`'s kubectl.
pub fn helm(cluster: &Cluster, args: &[&str]) -> Output {
    // kubectl's `--context` is helm's `--kube-context`; `--kubeconfig` is the same in both.
    let target: Vec<&str> =
        cluster.target.iter().map(|a| if a == "--context" { "--kube-context" } else { a.as_str() }).collect();
    crate::helm::run(&[&target[..], args].concat())
}

/// helm as `cluster`'s identity; panics with its output unless it succeeds.
pub fn helm_ok(cluster: &Cluster, args: &[&str]) -> String {
    let out = helm(cluster, args);
    assert!(out.status.success(), "helm {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm install` of `charts/manifold-crds` (waiting until the CRDs are Established), then
/// of `charts/manifold` as release `manifold` in [`SYSTEM`], with `values` (`--set` pairs).
pub fn install_charts(cluster: &Cluster, values: &[&str]) {
    helm_ok(cluster, &["install", "manifold-crds", "charts/manifold-crds"]);
    cluster.until_established(&["mcpservers.manifold.dev", "mcproutes.manifold.dev"]);
    let mut args = vec!["install", "manifold", "charts/manifold", "-n", SYSTEM, "--create-namespace"];
    for value in values {
        args.extend(["--set", value]);
    }
    helm_ok(cluster, &args);
}

/// Applies every manifest of `examples/` (their namespaces first).
pub fn apply_examples(cluster: &Cluster) {
    cluster.namespaces(&["demo", "acme", "globex"]);
    cluster.run(&["apply", "--server-side", "-R", "-f", &repo_root().join("examples").display().to_string()], None);
}

/// The routes of every namespace not Programmed yet, with their condition.
pub fn not_programmed(cluster: &Cluster) -> Vec<String> {
    let out = cluster.run(&["get", "mcproutes", "--all-namespaces", "-o", "json"], None);
    let list: Value = serde_json::from_str(&out).expect("kubectl prints JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| condition(r, "Programmed").is_none_or(|c| c["status"] != "True"))
        .map(|r| format!("{}/{}: {:?}", r["metadata"]["namespace"], r["metadata"]["name"], condition(r, "Programmed")))
        .collect()
}

/// Waits until every route of the cluster is Programmed.
pub fn until_all_programmed(cluster: &Cluster, timeout: Duration) {
    cluster.until("every route to be Programmed", timeout, || {
        let pending = not_programmed(cluster);
        if pending.is_empty() { Ok(()) } else { Err(pending.join("; ")) }
    });
}

/// Upgrades `manifold-crds` with a changed CRD (a printer column `Hosts` on McpRoute) and
/// waits until the API server serves the change.
pub fn upgrade_crds_with_a_change(cluster: &Cluster, timeout: Duration) {
    let changed = tempfile::tempdir().expect("temp dir");
    copy_dir(&repo_root().join("charts/manifold-crds"), changed.path());
    let crd = changed.path().join("templates/mcproutes.manifold.dev.yaml");
    let text = std::fs::read_to_string(&crd).expect("the route CRD");
    let column = "    - jsonPath: .spec.hostnames\n      name: Hosts\n      type: string\n";
    let text = text.replacen("  - additionalPrinterColumns:\n", &format!("  - additionalPrinterColumns:\n{column}"), 1);
    assert!(text.contains("name: Hosts"), "the CRD template has printer columns to extend");
    std::fs::write(&crd, text).expect("write the changed CRD");
    helm_ok(cluster, &["upgrade", "manifold-crds", &changed.path().display().to_string()]);
    cluster.until("the upgraded CRD to show the new column", timeout, || {
        let crd = cluster.get("crd", "", "mcproutes.manifold.dev").ok_or("no CRD")?;
        let columns = crd["spec"]["versions"][0]["additionalPrinterColumns"].to_string();
        if columns.contains("Hosts") { Ok(()) } else { Err(columns) }
    });
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
