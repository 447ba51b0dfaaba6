//! The operator and gateways as processes, each with a pod's address ([`crate::netns`]), a
//! ServiceAccount's kubeconfig and the arguments a Deployment would give it: what a kubelet
//! would run, without one. Their output goes to a log file a scenario can read.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::netns::pod_address;
use crate::process::{gateway_binary, operator_binary};

/// The admin port of both binaries, as the chart sets it.
pub const GATEWAY_ADMIN_PORT: u16 = 9090;
pub const GATEWAY_MCP_PORT: u16 = 8080;
pub const OPERATOR_ADMIN_PORT: u16 = 9091;

/// A running process standing in for a pod; killed (SIGKILL) when dropped.
pub struct Pod {
    pub name: String,
    pub address: Ipv4Addr,
    child: Option<Child>,
    log: PathBuf,
}

/// Where the operator and gateways of one scenario run, and as whom.
pub struct Deployment {
    /// The gateways' namespace (config Secrets, Lease, EndpointSlices).
    pub namespace: String,
    pub release: String,
    pub logs: PathBuf,
}

impl Deployment {
    /// An operator replica, as ServiceAccount `<release>-operator` (its kubeconfig) would run
    /// it; the caller waits for it with [`Pod::until_ready`] if it should become ready.
    pub fn operator(&self, name: &str, kubeconfig: &Path, watch: &[&str]) -> Pod {
        let address = pod_address();
        let mut command = Command::new(operator_binary());
        command
            .args(["run", "--release", &self.release, "--admin-listen"])
            .arg(SocketAddr::from((address, OPERATOR_ADMIN_PORT)).to_string())
            .args(["--gateway-url", &format!("http://{}-gateway.{}.svc:8080", self.release, self.namespace)]);
        for namespace in watch {
            command.args(["--watch-namespace", namespace]);
        }
        // The downward API's fields.
        command.env("POD_NAMESPACE", &self.namespace).env("POD_NAME", name);
        self.spawn(name, address, command, kubeconfig)
    }

    /// A gateway replica, as ServiceAccount `<release>-gateway` would run it; ready once it
    /// serves a config (`/readyz`), which the caller waits for with [`Pod::until_ready`].
    pub fn gateway(&self, name: &str, kubeconfig: &Path, session_keys: &Path) -> Pod {
        self.gateway_with(name, kubeconfig, session_keys, &[])
    }

    /// Same, with more arguments (the chart's `gateway.extraArgs`, or what its values turn
    /// into flags, such as `--rate-limit-redis`).
    pub fn gateway_with(&self, name: &str, kubeconfig: &Path, session_keys: &Path, extra: &[&str]) -> Pod {
        let address = pod_address();
        let mut command = Command::new(gateway_binary());
        command
            .args(["--kube", "--release", &self.release, "--listen"])
            .arg(SocketAddr::from((address, GATEWAY_MCP_PORT)).to_string())
            .arg("--admin-listen")
            .arg(SocketAddr::from((address, GATEWAY_ADMIN_PORT)).to_string())
            .arg("--session-keys")
            .arg(session_keys)
            .args(["--workers", "1", "--audit-log", "/dev/null"])
            .args(extra)
            .env("POD_NAMESPACE", &self.namespace)
            .env("POD_NAME", name);
        self.spawn(name, address, command, kubeconfig)
    }

    fn spawn(&self, name: &str, address: Ipv4Addr, command: Command, kubeconfig: &Path) -> Pod {
        Pod::spawn(name, address, command, kubeconfig, &self.logs)
    }
}

impl Pod {
    /// Runs `command` as pod `name` at `address`, reaching the API server with `kubeconfig`,
    /// its output in `<logs>/<name>.log`.
    pub fn spawn(name: &str, address: Ipv4Addr, mut command: Command, kubeconfig: &Path, logs: &Path) -> Pod {
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create the pod's log");
        let child = command
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(file.try_clone().expect("clone the log handle"))
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start pod {name}: {e}"));
        Pod { name: name.into(), address, child: Some(child), log }
    }
}

impl Pod {
    /// `http://<address>:<port><path>`.
    pub fn url(&self, port: u16, path: &str) -> String {
        format!("http://{}:{port}{path}", self.address)
    }

    /// Waits until `/readyz` on `port` answers 200; panics with the end of the pod's log.
    pub async fn until_ready(&self, port: u16, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = None;
        while tokio::time::Instant::now() < deadline {
            last = self.get(port, "/readyz").await;
            if matches!(last, Some((200, _))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "pod {} was not ready within {timeout:?} (last /readyz: {last:?}); its log ends:\n{}",
            self.name,
            self.log_tail(30)
        );
    }

    /// The last `lines` lines of the pod's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// GET `path` on `port` as text (status and body), or None when it does not answer.
    pub async fn get(&self, port: u16, path: &str) -> Option<(u16, String)> {
        let response = reqwest::get(self.url(port, path)).await.ok()?;
        Some((response.status().as_u16(), response.text().await.ok()?))
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process (SIGKILL, as a node failure would) and waits for it.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill the pod");
        }
    }

    /// Stops the process with SIGTERM (as a rollout does) and waits up to 10 s.
    pub async fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }
}
