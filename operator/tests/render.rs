//! `manifold-operator render` as a user runs it: the binary on manifest directories.

use std::process::Command;

use manifold_api::GatewayConfig;

fn render(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_manifold-operator")).arg("render").args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn examples(dir: &str) -> String {
    format!("{}/../examples/{dir}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn renders_the_quickstart_into_a_servable_config() {
    let (code, yaml, stderr) = render(&["-f", &examples("quickstart")]);
    assert_eq!(code, 0, "{stderr}");
    let config = GatewayConfig::from_text(&yaml).expect("render output is a valid, hash-checked config");
    let route = &config.routes[0];
    assert_eq!((route.namespace.as_str(), route.path.as_str()), ("demo", "/demo/quickstart/mcp"));
    assert_eq!(route.mounts.iter().map(|m| m.prefix.as_str()).collect::<Vec<_>>(), ["math", "text"]);

    let (code, json, _) = render(&["-f", &examples("quickstart"), "-o", "json"]);
    assert_eq!(code, 0);
    assert_eq!(GatewayConfig::from_text(&json).unwrap(), config, "JSON and YAML carry the same config");
}

#[test]
fn every_example_renders_without_rejections() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut rendered = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let has_manifests = path.is_dir()
            && std::fs::read_dir(&path).unwrap().any(|f| f.unwrap().path().extension().is_some_and(|e| e == "yaml"));
        if !has_manifests {
            continue;
        }
        let (code, yaml, stderr) = render(&["-f", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {stderr}", path.display());
        assert!(!GatewayConfig::from_text(&yaml).unwrap().routes.is_empty(), "{} serves no route", path.display());
        rendered += 1;
    }
    assert!(rendered >= 2, "expected the quickstart and multi-tenant examples, rendered {rendered}");
}

#[test]
fn rejected_objects_are_reported_and_fail_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("route.yaml"),
        "apiVersion: manifold.dev/v1alpha1\nkind: McpRoute\nmetadata: {name: r, namespace: acme}\nspec: {authentication: {allowAnonymous: true}, mounts: [{server: missing}]}\n",
    )
    .unwrap();
    let (code, yaml, stderr) = render(&["-f", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("McpRoute acme/r ResolvedRefs (RefNotFound): spec.mounts[0].server: McpServer `missing` does not exist in namespace acme"), "{stderr}");
    assert!(GatewayConfig::from_text(&yaml).unwrap().routes.is_empty());

    std::fs::write(dir.path().join("broken.yaml"), "kind: [unclosed").unwrap();
    let (code, _, stderr) = render(&["-f", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("broken.yaml (document 1): not valid YAML"), "{stderr}");

    let (code, _, stderr) = render(&["-f", "/no/such/dir"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/no/such/dir"), "{stderr}");
}

#[test]
fn unknown_fields_are_refused_naming_the_field_and_the_rest_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let route = |name: &str, extra: &str| {
        format!(
            "---\napiVersion: manifold.dev/v1alpha1\nkind: McpRoute\nmetadata: {{name: {name}, namespace: acme}}\nspec:\n  authentication: {{allowAnonymous: true}}\n  mounts: [{{server: math{extra}}}]\n"
        )
    };
    let server = "apiVersion: manifold.dev/v1alpha1\nkind: McpServer\nmetadata: {name: math, namespace: acme}\nspec: {remote: {url: 'http://math:8080/mcp'}}\n";
    std::fs::write(
        dir.path().join("all.yaml"),
        [server.into(), route("bad", ", prefx: m"), route("good", "")].concat(),
    )
    .unwrap();
    let (code, yaml, stderr) = render(&["-f", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        r#"rejected: McpRoute acme/bad Accepted (Invalid): spec.mounts[0].prefx: unknown field "spec.mounts[0].prefx" (did you mean "prefix"?)"#
    );
    let config = GatewayConfig::from_text(&yaml).unwrap();
    assert_eq!(config.routes.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["good"]);
}
