//! The test API server: a real kube-apiserver and etcd (built from Go modules by
//! `scripts/build-apiserver.sh`, cached) started by `testenv serve`, one per test process.
//! It hands out kubectl [`Cluster`]s and kubeconfigs for the admin and for any
//! ServiceAccount, so each binary under test runs with exactly the identity a pod would have.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Cluster;

/// The folder holding `kube-apiserver`, `kubectl` and `testenv`, built on first use (minutes
/// the first time on a machine, nothing after: the build is cached by its sources' hash).
pub fn binaries() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| crate::built_by("build-apiserver.sh"))
}

/// A running API server; stopped (API server, then etcd) when dropped or when this process
/// dies, since `testenv` stops when its stdin closes.
pub struct ApiServer {
    child: Mutex<Child>,
    _stdin: ChildStdin,
    dir: tempfile::TempDir,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    admin: PathBuf,
}

impl ApiServer {
    /// The API server of this test process, started on first use.
    pub fn shared() -> &'static ApiServer {
        static SERVER: OnceLock<ApiServer> = OnceLock::new();
        SERVER.get_or_init(ApiServer::start)
    }

    /// Starts a new API server and waits until `/readyz` answers.
    pub fn start() -> ApiServer {
        let dir = tempfile::Builder::new().prefix("manifold-apiserver-").tempdir().expect("temp dir");
        let started = Instant::now();
        let mut child = Command::new(binaries().join("testenv"))
            .args(["serve", "--stop-on-stdin-eof", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start testenv");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(180)).unwrap_or_else(|_| {
            let log = std::fs::read_to_string(dir.path().join("apiserver.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!("the test API server did not start; apiserver.log ends:\n{}", tail.join("\n"))
        });
        let mut words = ready.split_whitespace();
        assert_eq!(words.next(), Some("ready"), "testenv printed `{ready}`");
        let url = words.next().expect("ready <url> <kubeconfig>").to_owned();
        let admin = PathBuf::from(words.next().expect("ready <url> <kubeconfig>"));
        eprintln!(
            "test API server at {url}, ready in {:.1} s (KUBECONFIG={})",
            started.elapsed().as_secs_f64(),
            admin.display()
        );
        ApiServer { child: Mutex::new(child), _stdin: stdin, dir, url, admin }
    }

    /// The admin's kubeconfig (`system:masters`).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin
    }

    /// kubectl as the admin.
    pub fn admin(&self) -> Cluster {
        self.cluster(&self.admin)
    }

    /// kubectl with a kubeconfig.
    pub fn cluster(&self, kubeconfig: &Path) -> Cluster {
        Cluster {
            kubectl: binaries().join("kubectl"),
            target: vec!["--kubeconfig".into(), kubeconfig.display().to_string()],
        }
    }

    /// A kubeconfig with the identity the API server gives ServiceAccount `namespace/name`
    /// (a client certificate, user `system:serviceaccount:<namespace>:<name>`).
    pub fn service_account(&self, namespace: &str, name: &str) -> PathBuf {
        let out = self.dir.path().join(format!("sa-{namespace}-{name}.kubeconfig"));
        self.credential(&["--service-account", &format!("{namespace}/{name}")], &out);
        out
    }

    /// A kubeconfig for a user in groups.
    pub fn user(&self, name: &str, groups: &[&str]) -> PathBuf {
        let out = self.dir.path().join(format!("user-{}.kubeconfig", name.replace(':', "-")));
        let mut args = vec!["--user", name];
        for group in groups {
            args.extend(["--group", group]);
        }
        self.credential(&args, &out);
        out
    }

    fn credential(&self, args: &[&str], out: &Path) {
        let status = Command::new(binaries().join("testenv"))
            .arg("credential")
            .arg("--dir")
            .arg(self.dir.path())
            .args(args)
            .arg("--out")
            .arg(out)
            .status()
            .expect("run testenv credential");
        assert!(status.success(), "testenv credential {args:?} failed");
    }

    /// The audit log so far: one event per write (reads are not recorded).
    pub fn audit(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
    }

    /// The folder with the PKI, logs and kubeconfigs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let _ = child.wait();
    }
}
