//! helm v4, built from the Go module proxy by `scripts/build-helm.sh` (cached), and the
//! charts of `charts/` rendered or installed with it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::repo_root;

/// The helm binary, built on first use.
pub fn binary() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| crate::built_by("build-helm.sh"))
}

/// Runs helm with `args` (from the repository's root, so `charts/...` paths work).
pub fn run(args: &[&str]) -> Output {
    Command::new(binary()).current_dir(repo_root()).args(args).output().expect("run helm")
}

/// `helm template <release> charts/manifold -n <namespace>` with `--set` values, only the
/// templates named: what a scenario applies of the chart.
pub fn template(release: &str, namespace: &str, sets: &[String], show_only: &[&str]) -> String {
    let mut args = vec!["template", release, "charts/manifold", "--namespace", namespace];
    for set in sets {
        args.extend(["--set", set]);
    }
    for template in show_only {
        args.extend(["--show-only", template]);
    }
    let out = run(&args);
    assert!(out.status.success(), "helm {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
