//! What the API server itself decides about our resources, checked against the files that
//! describe it: the CEL cases of `crds/tests/cel/` (each valid case accepted, each invalid one
//! refused with its rule's message) and the unknown-field cases of `crds/tests/strict/`.
//! Written once for any [`Cluster`]: the test API server and kind.

use std::path::PathBuf;

use serde_json::Value;

use crate::cluster::Cluster;
use crate::repo_root;

/// Applies every CEL case with `--dry-run=server` in `namespace`; returns how many were
/// checked, or panics listing every case the server judged otherwise.
pub fn cel_cases_hold(cluster: &Cluster, namespace: &str) -> usize {
    let (mut checked, mut wrong) = (0, Vec::new());
    for path in case_files("crds/tests/cel") {
        let file: Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read a CEL case")).expect("YAML");
        let message = file["message"].as_str().expect("each CEL file names its message");
        for (list, should_pass) in [("valid", true), ("invalid", false)] {
            for case in file[list].as_array().expect("valid and invalid lists") {
                let mut case = case.clone();
                case["metadata"]["namespace"] = namespace.into();
                let out = cluster.kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&case.to_string()));
                let stderr = String::from_utf8_lossy(&out.stderr);
                let name = &case["metadata"]["name"];
                let verdict = match (should_pass, out.status.success()) {
                    (true, false) => Some(format!("was refused: {stderr}")),
                    (false, true) => Some("was accepted".to_owned()),
                    (false, false) if !stderr.contains(message) => {
                        Some(format!("was refused for another reason: {stderr}"))
                    }
                    _ => None,
                };
                if let Some(verdict) = verdict {
                    wrong.push(format!("{}: {list} case {name} {verdict}", path.display()));
                }
                checked += 1;
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the API server judged {} of {checked} CEL cases otherwise:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    checked
}

/// One unknown-field case: the object, and the field the server names.
pub struct StrictCase {
    pub path: PathBuf,
    pub field: String,
    pub object: Value,
}

/// The cases of `crds/tests/strict/`, their objects moved to `namespace`.
pub fn strict_cases(namespace: &str) -> Vec<StrictCase> {
    case_files("crds/tests/strict")
        .into_iter()
        .map(|path| {
            let file: Value =
                serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read a strict case")).expect("YAML");
            let mut object = file["object"].clone();
            object["metadata"]["namespace"] = namespace.into();
            let field = file["field"].as_str().expect("each strict case names its field").to_owned();
            StrictCase { path, field, object }
        })
        .collect()
}

/// The field the API server names when it refuses `object` (kubectl's strict field
/// validation), or None when it accepts it.
pub fn server_refuses(cluster: &Cluster, object: &Value) -> Option<String> {
    let out =
        cluster.kubectl(&["apply", "--dry-run=server", "--validate=strict", "-f", "-"], Some(&object.to_string()));
    if out.status.success() {
        return None;
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let field = stderr.split("unknown field \"").nth(1).and_then(|rest| rest.split('"').next());
    Some(field.map_or(stderr.clone(), str::to_owned))
}

fn case_files(dir: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let root = repo_root().join(dir);
    for entry in walk(&root) {
        if entry.extension().is_some_and(|e| e == "yaml") {
            files.push(entry);
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no case files under {}", root.display());
    files
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}
