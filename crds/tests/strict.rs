//! Unknown fields, refused by local reading as the API server refuses them: each case in
//! `tests/strict/` names the one field to be refused; the examples and every CEL case (their
//! objects are otherwise well formed) must pass; a bad route leaves the others served.

mod support;
use support::{dir, yaml_files};

use std::fs;

use manifold_api::compile;
use manifold_api::manifests::{self, Source};
use manifold_api::outcome::{Kind, Serving};
use manifold_api::strict;
use serde_yaml::Value;

/// One case (`tests/strict/<case>.yaml`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    field: String,
    object: Value,
}

fn read(origin: &str, text: String) -> manifests::Manifests {
    manifests::read(&[Source { origin: origin.into(), text }]).unwrap_or_else(|e| panic!("{e}"))
}

fn kind_of(object: &Value) -> Option<Kind> {
    match object["kind"].as_str() {
        Some("McpServer") => Some(Kind::McpServer),
        Some("McpRoute") => Some(Kind::McpRoute),
        _ => None,
    }
}

#[test]
fn every_case_is_refused_naming_its_field() {
    let files = yaml_files(&dir("tests/strict"));
    assert!(files.len() >= 4, "expected the cases in tests/strict/, found {files:?}");
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&file).unwrap();
        let case: Case = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let object = &case.object;
        assert_eq!(object["metadata"]["namespace"].as_str(), Some("strict"), "{name}: namespace");
        let kind = kind_of(object).unwrap_or_else(|| panic!("{name}: not an McpServer or McpRoute"));

        let found: Vec<String> = strict::unknown_fields(kind, object).into_iter().map(|f| f.path).collect();
        assert_eq!(found, std::slice::from_ref(&case.field), "{name}: exactly the named field is unknown");

        let read = read(&name, serde_yaml::to_string(object).unwrap());
        assert!(read.inputs.servers.is_empty() && read.inputs.routes.is_empty(), "{name}: read as valid");
        let [unreadable] = read.inputs.unreadable.as_slice() else {
            panic!("{name}: expected one unreadable object, got {:?}", read.inputs.unreadable)
        };
        assert_eq!(unreadable.object.name, object["metadata"]["name"].as_str().unwrap(), "{name}");
        assert_eq!(unreadable.problem.field, case.field, "{name}");
        let expected = format!("unknown field {:?}", case.field);
        assert!(unreadable.problem.message.starts_with(&expected), "{name}: {}", unreadable.problem.message);
    }
}

#[test]
fn every_example_has_only_known_fields() {
    let mut checked = 0;
    for file in yaml_files(&dir("../examples")) {
        let text = fs::read_to_string(&file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let object: Value = serde::Deserialize::deserialize(document).unwrap();
            if let Some(kind) = kind_of(&object) {
                assert_eq!(strict::unknown_fields(kind, &object), [], "{}", file.display());
                checked += 1;
            }
        }
        let read = read(&file.display().to_string(), text);
        assert!(read.inputs.unreadable.is_empty(), "{}: {:?}", file.display(), read.inputs.unreadable);
    }
    assert!(checked >= 8, "expected the examples' servers and routes, checked {checked}");
}

#[test]
fn every_cel_case_has_only_known_fields() {
    let mut checked = 0;
    for file in yaml_files(&dir("tests/cel")) {
        let cases: Value = serde_yaml::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
        for list in ["valid", "invalid"] {
            for (i, object) in cases[list].as_sequence().into_iter().flatten().enumerate() {
                let kind = kind_of(object).unwrap_or_else(|| panic!("{}: {list}[{i}]: kind", file.display()));
                assert_eq!(strict::unknown_fields(kind, object), [], "{}: {list}[{i}]", file.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 50, "expected the CEL cases, checked {checked}");
}

const SERVER: &str = "apiVersion: manifold.dev/v1alpha1
kind: McpServer
metadata: {name: math, namespace: acme}
spec: {remote: {url: 'http://math:8080/mcp'}}
";

fn route(name: &str, extra: &str) -> String {
    format!(
        "---
apiVersion: manifold.dev/v1alpha1
kind: McpRoute
metadata: {{name: {name}, namespace: acme}}
spec:
  authentication: {{allowAnonymous: true}}
  mounts: [{{server: math}}]
{extra}"
    )
}

#[test]
fn a_route_with_an_unknown_field_leaves_the_others_served() {
    let text = [SERVER.to_owned(), route("bad", "  authorizaton: {rules: []}\n"), route("good", "")].concat();
    let compiled = compile(&read("routes.yaml", text).inputs, None);

    let served: Vec<&str> = compiled.config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(served, ["good"]);
    let outcome = |name: &str| compiled.outcomes.iter().find(|o| o.object.name == name).expect("an outcome");
    assert!(outcome("good").is_ok() && outcome("math").is_ok());
    let bad = outcome("bad");
    assert_eq!(bad.serving, Serving::Nothing);
    assert_eq!(
        bad.failures().collect::<Vec<_>>(),
        [
            r#"McpRoute acme/bad Accepted (Invalid): spec.authorizaton: unknown field "spec.authorizaton" (did you mean "authorization"?)"#
        ]
    );
}

#[test]
fn a_misspelt_required_field_is_named_as_unknown_not_as_missing() {
    let text = [SERVER.to_owned(), route("typo", "").replace("mounts:", "mount:")].concat();
    let read = read("routes.yaml", text);
    let [unreadable] = read.inputs.unreadable.as_slice() else { panic!("{:?}", read.inputs.unreadable) };
    assert_eq!(unreadable.problem.field, "spec.mount");
    assert_eq!(unreadable.problem.message, r#"unknown field "spec.mount" (did you mean "mounts"?)"#);
}

#[test]
fn a_duplicate_key_fails_the_whole_read() {
    // The server refuses `duplicate field "spec.mounts"`; the YAML reader refuses the document.
    let text = [SERVER.to_owned(), route("twice", "  mounts: [{server: other}]\n")].concat();
    let error = manifests::read(&[Source { origin: "routes.yaml".into(), text }]).expect_err("refused");
    assert_eq!(error.origin, "routes.yaml (document 2)");
    assert!(error.message.contains("duplicate entry with key \"mounts\""), "{error}");
}
