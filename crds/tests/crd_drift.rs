//! The checked-in CRD YAML must be exactly what the Rust types generate (`crdgen`).

#[test]
fn checked_in_crds_match_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    for (file, generated) in manifold_api::crd::manifests() {
        let checked_in = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            checked_in == generated,
            "crds/manifests/{file} is stale: run `cargo run -p manifold-api --bin crdgen` and commit the result"
        );
    }
}
