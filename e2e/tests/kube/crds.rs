//! Scenario 1: the generated CRDs install and become Established; the server enforces every
//! CEL case of `crds/tests/cel/`; `kubectl explain` prints the field docs; unknown fields are
//! refused by the server and by local mode naming the same field.

use manifold_api::manifests::{self, Source};
use manifold_e2e::apiserver::ApiServer;
use manifold_e2e::crd_cases;
use manifold_e2e::kube_stack::{SETTLE, install_crds};

pub async fn cel_rules() {
    let admin = ApiServer::shared().admin();
    install_crds(&admin);
    admin.namespaces(&["cel-cases"]);
    let checked = crd_cases::cel_cases_hold(&admin, "cel-cases");
    assert!(checked > 20, "expected the CEL case files, found {checked} cases");
}

pub async fn explain() {
    let admin = ApiServer::shared().admin();
    install_crds(&admin);
    // The published OpenAPI v3 lags behind Established: at first explain knows the field
    // but none of its docs.
    let text = admin.until("kubectl explain mcproute.spec.mounts to document the fields", SETTLE, || {
        let out = admin.kubectl(&["explain", "mcproute.spec.mounts"], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("server\t<string> -required-") {
            Ok(text)
        } else {
            Err(text + &String::from_utf8_lossy(&out.stderr))
        }
    });
    for expected in [
        "KIND:       McpRoute",
        "FIELD: mounts <[]Object>",
        "The McpServers (of this route's namespace) whose tools this endpoint serves.",
        "prefix\t<string>",
        "Clients see this server's tools as `<prefix>_<tool>`.",
        "rename\t<map[string]string>",
        "tools\t<Object>",
    ] {
        assert!(text.contains(expected), "`kubectl explain mcproute.spec.mounts` lacks `{expected}`:\n{text}");
    }
    let server = admin.run(&["explain", "mcpserver.spec.remote.url"], None);
    assert!(
        server.contains("Absolute http(s) URL of the server's MCP endpoint"),
        "`kubectl explain mcpserver.spec.remote.url`:\n{server}"
    );
}

pub async fn unknown_fields() {
    let admin = ApiServer::shared().admin();
    install_crds(&admin);
    admin.namespaces(&["strict"]);
    let cases = crd_cases::strict_cases("strict");
    for case in &cases {
        let server = crd_cases::server_refuses(&admin, &case.object);
        assert_eq!(server.as_deref(), Some(case.field.as_str()), "{}: the API server's verdict", case.path.display());
        let text = serde_yaml::to_string(&case.object).expect("YAML");
        let read =
            manifests::read(&[Source { origin: case.path.display().to_string(), text }]).expect("the file reads");
        let refused: Vec<_> = read.inputs.unreadable.iter().map(|u| u.problem.field.clone()).collect();
        assert_eq!(refused, std::slice::from_ref(&case.field), "{}: local mode's verdict", case.path.display());
    }
    assert!(cases.len() >= 4, "expected the strict cases, found {}", cases.len());
}
