//! Every folder of `examples/` compiles as local mode reads it: each McpServer and McpRoute
//! accepted with every reference resolved, so what users copy works as shipped.

mod support;
use support::{dir, yaml_files};

use manifold_api::compile;
use manifold_api::manifests::{self, Source};

#[test]
fn every_example_folder_compiles_clean() {
    let root = dir("../examples");
    let mut folders: Vec<_> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    folders.sort();
    let mut problems = Vec::new();
    let mut objects = 0;
    for folder in folders {
        let sources: Vec<Source> = yaml_files(&folder)
            .into_iter()
            .map(|file| Source { origin: file.display().to_string(), text: std::fs::read_to_string(&file).unwrap() })
            .collect();
        if sources.is_empty() {
            continue;
        }
        let read = manifests::read(&sources).unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
        let compiled = compile(&read.inputs, None);
        for outcome in &compiled.outcomes {
            objects += 1;
            for condition in outcome.conditions.iter().filter(|c| !c.status) {
                problems.push(format!(
                    "{}: {}: {} is false: {}",
                    folder.display(),
                    outcome.object,
                    condition.type_,
                    condition.message
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(objects >= 20, "expected the examples' servers and routes, compiled {objects}");
}
