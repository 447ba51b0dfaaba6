//! The kind target: scenarios that need a real Kubernetes API server run when `kubectl`
//! reaches a kind cluster (a laptop or CI with Docker and kind), and skip with a clear
//! message everywhere else.

use std::path::PathBuf;
use std::process::Command;

pub use crate::cluster::Cluster;

/// The kind cluster to use, or why there is none. The context is `$MANIFOLD_E2E_CONTEXT`,
/// else the current context, which must be a kind one (`kind-*`): the suite never touches
/// another cluster by accident.
pub fn cluster() -> Result<Cluster, String> {
    let kubectl = kubectl().ok_or("no kubectl found (put it on PATH or set $KUBECTL)")?;
    let context = match std::env::var("MANIFOLD_E2E_CONTEXT") {
        Ok(context) => context,
        Err(_) => {
            let out = Command::new(&kubectl).args(["config", "current-context"]).output().map_err(|e| e.to_string())?;
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        }
    };
    if context.is_empty() {
        return Err("kubectl has no current context (no cluster is configured)".into());
    }
    if !context.starts_with("kind-") {
        return Err(format!("current kube context `{context}` is not a kind cluster"));
    }
    let cluster = Cluster { kubectl, target: vec!["--context".into(), context.clone()] };
    let probe = cluster.kubectl(&["version", "--request-timeout=5s"], None);
    if !probe.status.success() {
        return Err(format!(
            "kind cluster `{context}` is not reachable: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    Ok(cluster)
}

/// Prints why a kind scenario is skipped; returns the cluster when there is one.
pub fn or_skip(scenario: &str) -> Option<Cluster> {
    match cluster() {
        Ok(cluster) => Some(cluster),
        Err(why) => {
            // Straight to the stderr handle: the test harness captures eprintln! of passing
            // tests, and a skip must be seen.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED kind scenario `{scenario}`: {why}");
            None
        }
    }
}

fn kubectl() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("KUBECTL") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| PathBuf::from(dir).join("kubectl")).find(|p| p.exists())
}

/// A `kubectl port-forward` to `target` (`svc/NAME` or `pod/NAME`) in `namespace`, from a
/// free local port; stopped when dropped.
pub struct PortForward {
    child: std::process::Child,
    pub port: u16,
}

impl PortForward {
    /// Starts it and waits until kubectl says it forwards.
    pub fn start(cluster: &Cluster, namespace: &str, target: &str, remote: u16) -> PortForward {
        use std::io::{BufRead, BufReader};
        let port = crate::process::free_port().port();
        let mut child = Command::new(&cluster.kubectl)
            .args(&cluster.target)
            .args(["port-forward", "-n", namespace, target, &format!("{port}:{remote}")])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("run kubectl port-forward");
        let stdout = child.stdout.take().expect("piped stdout");
        let first = BufReader::new(stdout).lines().next();
        assert!(
            matches!(&first, Some(Ok(line)) if line.starts_with("Forwarding from")),
            "kubectl port-forward {target}: {first:?}"
        );
        PortForward { child, port }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
