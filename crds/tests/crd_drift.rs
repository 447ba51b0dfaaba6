//! The checked-in CRD YAML must be exactly what the Rust types generate (`crdgen`): in
//! `crds/manifests/` and in the CRD chart's `charts/manifold-crds/templates/`, which holds
//! those CRDs and nothing else, each annotated `helm.sh/resource-policy: keep`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const REGENERATE: &str = "run `cargo run -p manifold-api --bin crdgen` and commit the result";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.yaml` files of a directory, by name.
fn yaml_files(dir: &Path) -> BTreeSet<String> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    entries
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect()
}

fn generated_files() -> BTreeSet<String> {
    manifold_api::crd::manifests().into_iter().map(|(file, _)| file.to_owned()).collect()
}

#[test]
fn checked_in_crds_match_the_types() {
    let dir = crate_dir().join("manifests");
    for (file, generated) in manifold_api::crd::manifests() {
        let checked_in = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(checked_in == generated, "crds/manifests/{file} is stale: {REGENERATE}");
    }
    assert_eq!(yaml_files(&dir), generated_files(), "crds/manifests/ holds exactly the generated CRDs");
}

/// What `crdgen` writes now, into a scratch directory, is what is checked in: both copies.
#[test]
fn checked_in_copies_are_what_crdgen_writes() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("crdgen-{}", std::process::id()));
    let (manifests, chart) = (scratch.join("manifests"), scratch.join("chart"));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_crdgen"))
        .arg("--manifests")
        .arg(&manifests)
        .arg("--chart-templates")
        .arg(&chart)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("crdgen runs");
    assert!(status.success(), "crdgen failed: {status}");
    let chart_dir = crate_dir().join("../charts/manifold-crds/templates");
    for (written, checked_in, shown) in [
        (&manifests, crate_dir().join("manifests"), "crds/manifests"),
        (&chart, chart_dir.clone(), "charts/manifold-crds/templates"),
    ] {
        assert_eq!(yaml_files(written), generated_files(), "crdgen writes one file per CRD");
        for file in generated_files() {
            let (want, have) = (std::fs::read_to_string(written.join(&file)).unwrap(), {
                std::fs::read_to_string(checked_in.join(&file)).unwrap_or_default()
            });
            assert!(want == have, "{shown}/{file} is stale: {REGENERATE}");
        }
    }
    assert_eq!(
        yaml_files(&chart_dir),
        generated_files(),
        "charts/manifold-crds/templates/ holds exactly the generated CRDs (remove any other file)"
    );
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// The chart's copy is the plain CRD plus the keep annotation, nothing else.
#[test]
fn the_chart_copies_are_the_crds_kept_on_uninstall() {
    let chart_dir = crate_dir().join("../charts/manifold-crds/templates");
    for (file, generated) in manifold_api::crd::manifests() {
        let text = std::fs::read_to_string(chart_dir.join(file)).unwrap_or_default();
        assert!(!text.contains("{{"), "{file}: Helm would read `{{{{` as a template action");
        let mut chart: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let plain: serde_yaml::Value = serde_yaml::from_str(&generated).unwrap();
        let metadata = chart["metadata"].as_mapping_mut().unwrap();
        let annotations = metadata.remove("annotations").expect("the chart's CRDs are annotated");
        let expected: serde_yaml::Value = serde_yaml::from_str("{helm.sh/resource-policy: keep}").unwrap();
        assert_eq!(annotations, expected, "{file}: the keep annotation and no other");
        assert!(chart == plain, "{file}: the chart's copy differs from crds/manifests/ beyond the annotation");
    }
}
