//! The official MCP conformance suite (`@modelcontextprotocol/conformance`) against a route.
//! The route mounts our conformance fixture (`e2e/peers/conformance_fixture.py`, every tool,
//! resource and prompt the server scenarios call) with an empty prefix, so the suite sees the
//! names it expects and every message passes through the gateway. Scenarios that still fail
//! are listed, with the reason, in `e2e/conformance/expected-failures-<revision>.yaml`; the
//! suite itself fails the run on an unexpected failure and on a listed scenario that passes.

use std::path::Path;

use manifold_e2e::peers::{Upstream, node_command};
use manifold_e2e::{LocalStack, repo_root, yaml};
use serde_json::Value;

async fn suite(revision: &str) {
    let fixture = Upstream::conformance_fixture(&[]).await;
    let manifests = yaml::server("fixture", &fixture.mcp_url(), "timeout: 30s")
        + &yaml::route("conformance", "mounts: [{server: fixture, prefix: \"\"}]");
    let stack = LocalStack::start(&manifests).await;
    let out = tempfile::tempdir().expect("temp dir");
    let expected = repo_root().join(format!("e2e/conformance/expected-failures-{revision}.yaml"));
    let output = node_command("conformance")
        .args(["server", "--url", &stack.url("/acme/conformance/mcp"), "--requirements", revision])
        .arg("--expected-failures")
        .arg(&expected)
        .arg("-o")
        .arg(out.path())
        .output()
        .await
        .expect("run the conformance suite");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout.lines().filter(|l| l.contains("Total")).collect::<Vec<_>>().join("; ");
    eprintln!("conformance {revision}: {summary}");
    assert!(
        output.status.success(),
        "conformance suite at {revision} failed ({}).\nChecks that did not pass:\n{}\n\n{stdout}\n{}",
        output.status,
        failed_checks(out.path()),
        String::from_utf8_lossy(&output.stderr),
    );
}

/// `scenario:check (STATUS): message` for every check that failed or warned.
fn failed_checks(dir: &Path) -> String {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let scenario = entry.file_name().to_string_lossy().into_owned();
        let Ok(text) = std::fs::read_to_string(entry.path().join("checks.json")) else { continue };
        let checks: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
        for check in checks.iter().filter(|c| matches!(c["status"].as_str(), Some("FAILURE" | "WARNING"))) {
            lines.push(format!("{scenario}:{} ({}): {}", check["id"], check["status"], check["errorMessage"]));
        }
    }
    lines.sort();
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2025_11_25() {
    suite("2025-11-25").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_2026_07_28() {
    suite("2026-07-28").await;
}
