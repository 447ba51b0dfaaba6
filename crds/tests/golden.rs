//! Golden tests for compile: each folder under `tests/compile/` holds numbered manifest
//! files, compiled in order (each step sees the config of the step before, as a reloading
//! gateway or the operator does). The config and outcomes of every step are the snapshot.

use manifold_api::manifests::{self, Source};
use manifold_api::{GatewayConfig, compile};

#[test]
fn compile_golden() {
    insta::glob!("compile/*", |case| {
        let mut steps: Vec<_> = std::fs::read_dir(case).unwrap().map(|e| e.unwrap().path()).collect();
        steps.sort();
        let mut previous: Option<GatewayConfig> = None;
        let mut snapshot = Vec::new();
        for step in steps {
            let text = std::fs::read_to_string(&step).unwrap();
            let name = step.file_name().unwrap().to_string_lossy().into_owned();
            let read = manifests::read(&[Source { origin: name.clone(), text }]).expect("case manifests read");
            let compiled = compile(&read.inputs, previous.as_ref());
            snapshot.push(serde_json::json!({
                "step": name,
                "config": compiled.config,
                "outcomes": compiled.outcomes,
            }));
            previous = Some(compiled.config);
        }
        insta::assert_yaml_snapshot!(snapshot);
    });
}
