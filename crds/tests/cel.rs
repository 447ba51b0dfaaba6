//! CEL rules of the checked-in CRDs (`manifests/*.yaml`) evaluated by kube's client-side
//! validator against the cases in `tests/cel/<kind>/<rule>.yaml`: each case file names one rule
//! by its message; its `valid` objects must pass every rule, its `invalid` objects must fail with
//! that message. Every rule needs a case file (≥1 valid, ≥1 invalid) and every case file a rule.

mod support;
use support::{dir, yaml_files};

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use kube::core::cel::Validator;
use serde_json::Value;

/// One rule's cases (`tests/cel/<kind>/<rule>.yaml`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    message: String,
    #[serde(default)]
    valid: Vec<Value>,
    #[serde(default)]
    invalid: Vec<Value>,
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Kind -> `openAPIV3Schema` of every CRD in `manifests/`.
fn schemas() -> BTreeMap<String, Value> {
    yaml_files(&dir("manifests"))
        .iter()
        .map(|path| read_yaml::<Value>(path))
        .filter(|crd| crd["kind"] == "CustomResourceDefinition")
        .map(|crd| {
            let versions = crd["spec"]["versions"].as_array().expect("spec.versions");
            assert_eq!(versions.len(), 1, "one version per CRD is all this test reads");
            let kind = crd["spec"]["names"]["kind"].as_str().expect("spec.names.kind");
            (kind.to_owned(), versions[0]["schema"]["openAPIV3Schema"].clone())
        })
        .collect()
}

/// The message of every `x-kubernetes-validations` rule in `schema` (as the validator reports it).
/// Every rule's (message, expression). A type used in several places (a header, a timeout)
/// brings the same rule to each: one rule, with one set of cases.
fn messages(schema: &Value, out: &mut Vec<(String, String)>) {
    match schema {
        Value::Object(map) => {
            for rule in map.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten() {
                let expression = rule["rule"].as_str().unwrap_or_default().to_owned();
                out.push(match rule["message"].as_str() {
                    Some(message) => (message.to_owned(), expression),
                    None => (format!("failed rule: {expression}"), expression),
                });
            }
            map.values().for_each(|v| messages(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| messages(v, out)),
        _ => {}
    }
}

/// `(file, cases)` for every case file, the file relative to the crate.
fn case_files() -> Vec<(String, CaseFile)> {
    yaml_files(&dir("tests/cel"))
        .iter()
        .map(|path| {
            let name = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().display().to_string();
            (name, read_yaml(path))
        })
        .collect()
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or("<no kind>")
}

fn fail_if_any(problems: Vec<String>) {
    assert!(problems.is_empty(), "{} problem(s):\n\n{}", problems.len(), problems.join("\n\n"));
}

#[test]
fn cases_pass_or_fail_with_their_rule() {
    let schemas = schemas();
    let validator = Validator::new();
    let mut problems = Vec::new();
    for (file, cases) in case_files() {
        for (list, objects) in [("valid", &cases.valid), ("invalid", &cases.invalid)] {
            for (i, object) in objects.iter().enumerate() {
                let case = format!("{file}: {list}[{i}] (metadata.name {})", object["metadata"]["name"]);
                let Some(schema) = schemas.get(kind(object)) else {
                    problems.push(format!("{case}: no CRD in manifests/ has kind {:?}", kind(object)));
                    continue;
                };
                let message = &cases.message;
                match (list == "valid", validator.validate(schema, object, None)) {
                    (true, Err(errors)) => problems.push(format!("{case}: should pass, but {errors}")),
                    (false, Ok(())) => problems.push(format!("{case}: should fail with {message:?}, but passed")),
                    (false, Err(errors)) if !errors.iter().any(|e| &e.message == message) => {
                        problems.push(format!("{case}: should fail with {message:?}, but {errors}"))
                    }
                    _ => {}
                }
            }
        }
    }
    fail_if_any(problems);
}

#[test]
fn every_rule_has_cases_and_every_case_file_a_rule() {
    let mut problems = Vec::new();
    // (kind, message) -> (file, [valid cases, invalid cases])
    let mut covered: BTreeMap<(String, String), (String, [usize; 2])> = BTreeMap::new();
    for (file, cases) in case_files() {
        if cases.valid.is_empty() && cases.invalid.is_empty() {
            problems.push(format!("{file}: no cases"));
        }
        for (n, objects) in [(0, &cases.valid), (1, &cases.invalid)] {
            for object in objects {
                let key = (kind(object).to_owned(), cases.message.clone());
                covered.entry(key).or_insert_with(|| (file.clone(), [0, 0])).1[n] += 1;
            }
        }
    }
    for (kind, schema) in schemas() {
        let mut rules = Vec::new();
        messages(&schema, &mut rules);
        rules.sort();
        rules.dedup();
        for pair in rules.windows(2).filter(|pair| pair[0].0 == pair[1].0) {
            problems
                .push(format!("{kind}: several rules have the message {:?}, cases cannot tell them apart", pair[0].0));
        }
        let mut rules: Vec<String> = rules.into_iter().map(|(message, _)| message).collect();
        rules.dedup();
        for message in rules {
            match covered.remove(&(kind.clone(), message.clone())) {
                None => problems.push(format!("{kind} rule {message:?}: no case file has {kind} cases for it")),
                Some((file, [valid, invalid])) if valid == 0 || invalid == 0 => problems.push(format!(
                    "{kind} rule {message:?}: {file} has {valid} valid and {invalid} invalid {kind} case(s), needs at least one of each"
                )),
                Some(_) => {}
            }
        }
    }
    for ((kind, message), (file, ..)) in covered {
        problems.push(format!(
            "{file}: {kind} cases name {message:?}, but no rule of a {kind} CRD has this message (stale?)"
        ));
    }
    fail_if_any(problems);
}
