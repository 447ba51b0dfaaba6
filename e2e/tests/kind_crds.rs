//! Against a real API server (kind): the generated CRDs install, and every CEL case of
//! `crds/tests/cel/` is accepted or rejected by the API server exactly as the client-side
//! test says. Skips with a message when no kind cluster is reachable.

use manifold_e2e::{kind, repo_root};

#[test]
fn api_server_enforces_the_cel_rules() {
    let Some(cluster) = kind::or_skip("api_server_enforces_the_cel_rules") else { return };
    let crds = repo_root().join("crds/manifests");
    let applied = cluster.kubectl(&["apply", "--server-side", "-f", crds.to_str().unwrap()], None);
    assert!(applied.status.success(), "CRDs install: {}", String::from_utf8_lossy(&applied.stderr));
    let established = cluster.kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/mcpservers.manifold.dev",
            "crd/mcproutes.manifold.dev",
        ],
        None,
    );
    assert!(established.status.success(), "CRDs established: {}", String::from_utf8_lossy(&established.stderr));
    cluster.kubectl(&["create", "namespace", "team-a"], None);

    let mut checked = 0;
    for kind in ["mcpserver", "mcproute"] {
        for entry in std::fs::read_dir(repo_root().join("crds/tests/cel").join(kind)).unwrap() {
            let path = entry.unwrap().path();
            let file: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let message = file["message"].as_str().unwrap();
            for (list, should_pass) in [("valid", true), ("invalid", false)] {
                for case in file[list].as_array().unwrap() {
                    let out = cluster.kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&case.to_string()));
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let name = &case["metadata"]["name"];
                    if should_pass {
                        assert!(out.status.success(), "{}: {list} case {name} was rejected: {stderr}", path.display());
                    } else {
                        assert!(!out.status.success(), "{}: {list} case {name} was accepted", path.display());
                        assert!(
                            stderr.contains(message),
                            "{}: case {name} failed for another reason: {stderr}",
                            path.display()
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 20, "expected the CEL case files, found {checked} cases");
}
