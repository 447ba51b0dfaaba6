//! Support for end-to-end scenarios: real MCP peers (Python FastMCP servers and the `mcp` /
//! `fastmcp` clients, from the venv `scripts/install-peers.sh` makes), the local stack (a
//! gateway started in-process on manifests in a temporary directory), and polling helpers.
#![forbid(unsafe_code)]

pub mod apiserver;
pub mod cluster;
pub mod crd_cases;
pub mod dashboards;
pub mod helm;
pub mod install;
pub mod jaeger;
pub mod keycloak;
pub mod kind;
pub mod kube_stack;
pub mod kubelet;
pub mod netns;
pub mod outbound;
pub mod peers;
pub mod pods;
pub mod process;
pub mod prometheus;
pub mod raw;
pub mod redis;
pub mod stub;
pub mod tokens;
pub mod yaml;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use manifold_gateway::{ConfigSource, Running, Settings};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("e2e/ lives in the repo").to_path_buf()
}

/// Runs a build script of `scripts/` that prints the path of what it built (cached by the
/// script), and returns that path; its progress goes to stderr.
pub fn built_by(script: &str) -> PathBuf {
    let out = std::process::Command::new(repo_root().join("scripts").join(script))
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{script} (needs Go 1.26 and the Go module proxy): {e}"));
    assert!(out.status.success(), "scripts/{script} failed (its output is above)");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A gateway serving the manifests of a temporary directory, reloading every 100 ms.
pub struct LocalStack {
    pub gateway: Running,
    dir: tempfile::TempDir,
}

impl LocalStack {
    /// Starts a gateway on `manifests` (one YAML file) with ephemeral ports.
    pub async fn start(manifests: &str) -> Self {
        Self::start_with(manifests, |_| {}).await
    }

    /// Same, with settings adjusted by `adjust`.
    pub async fn start_with(manifests: &str, adjust: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("manifests.yaml"), manifests).expect("write manifests");
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            watch_interval: Duration::from_millis(100),
            max_body_bytes: 64 * 1024,
            audit_log: Some(dir.path().join("audit.log")),
            ..Settings::default()
        };
        adjust(&mut settings);
        let gateway = manifold_gateway::start(settings, ConfigSource::Manifests(dir.path().to_path_buf()))
            .await
            .expect("gateway starts");
        LocalStack { gateway, dir }
    }

    /// Replaces the manifests (the gateway notices within its watch interval).
    pub fn rewrite(&self, manifests: &str) {
        // Write then rename, as editors and kubectl-like tools do, so no half-written file is read.
        let tmp = self.dir.path().join(".manifests.yaml.tmp");
        std::fs::write(&tmp, manifests).expect("write manifests");
        std::fs::rename(&tmp, self.dir.path().join("manifests.yaml")).expect("replace manifests");
    }

    /// URL of a route path.
    pub fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }

    /// URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.admin_addr)
    }

    /// The audit events written so far (the `audit` object of each line).
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("audit lines are JSON")["audit"].clone())
            .collect()
    }

    /// The config generation being served.
    pub fn generation(&self) -> u64 {
        self.gateway.gateway.snapshot.load().config.generation
    }
}

/// Polls `check` until it returns Some, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
