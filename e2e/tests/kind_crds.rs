//! Against a kind cluster: the CEL scenario of the kube suite (`tests/kube/`), where pods
//! really run. Skips with a message when no kind cluster is reachable.

use manifold_e2e::{crd_cases, kind};

#[test]
fn api_server_enforces_the_cel_rules() {
    let Some(cluster) = kind::or_skip("api_server_enforces_the_cel_rules") else { return };
    let crds = manifold_e2e::repo_root().join("crds/manifests");
    cluster.run(&["apply", "--server-side", "-f", crds.to_str().unwrap()], None);
    cluster.until_established(&["mcpservers.manifold.dev", "mcproutes.manifold.dev"]);
    cluster.namespaces(&["cel-cases"]);
    let checked = crd_cases::cel_cases_hold(&cluster, "cel-cases");
    assert!(checked > 20, "expected the CEL case files, found {checked} cases");
}
