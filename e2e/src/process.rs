//! The real `manifold-gateway` binary as a child process, for scenarios where a gateway must
//! die (killed, not shut down) or be measured from outside. The binary is built with cargo on
//! first use, with the same profile (debug or release) and target directory as the caller.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::repo_root;

/// The path of the built `manifold-gateway` binary.
pub fn gateway_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| built("manifold-gateway", "manifold-gateway")).clone()
}

/// The path of the built `manifold-operator` binary.
pub fn operator_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| built("manifold-operator", "manifold-operator")).clone()
}

/// Builds a binary of the workspace with cargo, same profile and target directory as the
/// caller, and returns its path.
fn built(package: &str, binary: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let release = (!cfg!(debug_assertions)).then_some("--release");
    let output = std::process::Command::new(cargo)
        .current_dir(repo_root())
        .args(["build", "-q", "-p", package, "--bin", binary, "--message-format=json"])
        .args(release)
        .output()
        .expect("run cargo build");
    assert!(output.status.success(), "building {binary} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == binary)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo names the {binary} executable"))
}

/// How [`GatewayProcess::start_with`] starts a gateway, beyond its manifests and keys.
#[derive(Debug, Default)]
pub struct Options {
    /// More arguments.
    pub args: Vec<String>,
    /// `RUST_LOG`; default: the caller's, else `warn`.
    pub log_filter: Option<String>,
    /// A file its stderr (the log) is written to; default: the caller's stderr.
    pub log: Option<PathBuf>,
}

/// A gateway process serving a manifests directory.
pub struct GatewayProcess {
    child: Child,
    pub mcp: SocketAddr,
    pub admin: SocketAddr,
}

impl GatewayProcess {
    /// Starts `manifold-gateway --manifests DIR --session-keys KEYS` on free ports and waits
    /// until it is ready.
    pub async fn start(manifests: &Path, session_keys: &Path) -> Self {
        Self::start_with(manifests, session_keys, Options::default()).await
    }

    /// Same, with more arguments, and its log where `options` says.
    pub async fn start_with(manifests: &Path, session_keys: &Path, options: Options) -> Self {
        let (mcp, admin) = (free_port(), free_port());
        let mut command = Command::new(gateway_binary());
        command
            .arg("--manifests")
            .arg(manifests)
            .arg("--session-keys")
            .arg(session_keys)
            .args(["--listen", &mcp.to_string(), "--admin-listen", &admin.to_string(), "--workers", "1"])
            .args(["--audit-log", "/dev/null"])
            .args(&options.args)
            // Warnings and errors only, unless the caller asks for more.
            .env(
                "RUST_LOG",
                options.log_filter.or_else(|| std::env::var("RUST_LOG").ok()).unwrap_or_else(|| "warn".into()),
            )
            .kill_on_drop(true);
        if let Some(log) = &options.log {
            command.stderr(std::fs::File::create(log).expect("create the gateway's log file"));
        }
        let child = command.spawn().expect("start manifold-gateway");
        let process = GatewayProcess { child, mcp, admin };
        let ready = format!("http://{admin}/readyz");
        crate::eventually("the gateway process is ready", Duration::from_secs(30), || {
            let ready = ready.clone();
            async move { reqwest::get(&ready).await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
        process
    }

    /// `http://<mcp addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.mcp)
    }

    /// The process's resident memory, in bytes (from /proc).
    pub fn resident_bytes(&self) -> u64 {
        let pid = self.child.id().expect("the gateway runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/PID/status");
        let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS in kB");
        kib * 1024
    }

    /// Kills the process (SIGKILL: no drain, no goodbye) and waits for it.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill the gateway");
    }
}

/// A free port on 127.0.0.1.
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port")
}
