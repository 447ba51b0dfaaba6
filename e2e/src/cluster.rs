//! A Kubernetes API server reached with kubectl, whichever it is: the test API server
//! ([`crate::apiserver`], every run) or a kind cluster ([`crate::kind`], where Docker is).
//! Scenarios are written once against this and run on both.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// kubectl aimed at one API server as one identity.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub kubectl: PathBuf,
    /// The arguments that select the server and identity (`--kubeconfig F` or `--context C`).
    pub target: Vec<String>,
}

impl Cluster {
    /// Runs kubectl with `stdin` as input.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(&self.kubectl)
            .args(&self.target)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        if let Some(input) = stdin {
            use std::io::Write;
            child.stdin.take().expect("piped stdin").write_all(input.as_bytes()).expect("write kubectl stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// Runs kubectl and returns its stdout; panics with its stderr when it fails.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply --server-side` of YAML text (strict field validation, as users get it).
    pub fn apply(&self, yaml: &str) {
        self.run(&["apply", "--server-side", "--field-manager=e2e", "-f", "-"], Some(yaml));
    }

    /// Waits (a minute at most) until each CRD named is Established.
    pub fn until_established(&self, crds: &[&str]) {
        let names: Vec<String> = crds.iter().map(|crd| format!("crd/{crd}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.run(&[&["wait", "--for=condition=Established", "--timeout=60s"][..], &names].concat(), None);
    }

    /// Creates namespaces (ignoring those that exist already).
    pub fn namespaces(&self, names: &[&str]) {
        let yaml: Vec<String> =
            names.iter().map(|name| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")).collect();
        self.apply(&yaml.join("---\n"));
    }

    /// An object as JSON, or None when it does not exist; `namespace` is "" for a
    /// cluster-scoped one.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let scope: &[&str] = if namespace.is_empty() { &[] } else { &["-n", namespace] };
        let args = [&["get", resource, name, "-o", "json"][..], scope].concat();
        let out = self.kubectl(&args, None);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("NotFound"), "kubectl get {resource} {namespace}/{name}: {stderr}");
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).expect("kubectl prints JSON"))
    }

    /// The items of a list (`kubectl get <resource> -n <namespace>`).
    pub fn list(&self, resource: &str, namespace: &str) -> Vec<Value> {
        let out = self.run(&["get", resource, "-n", namespace, "-o", "json"], None);
        let list: Value = serde_json::from_str(&out).expect("kubectl prints JSON");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Polls `check` (every 200 ms) until it returns Some, or panics after `timeout` naming
    /// `what` and the last thing `check` saw.
    pub fn until<T>(&self, what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            match check() {
                Ok(value) => return value,
                Err(last) if Instant::now() >= deadline => {
                    panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Waits until the object's condition `type` has `status`, and returns the object.
    pub fn until_condition(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        kind: &str,
        status: &str,
        timeout: Duration,
    ) -> Value {
        self.until(&format!("{resource} {namespace}/{name} {kind}={status}"), timeout, || {
            let object = self.get(resource, namespace, name).ok_or("no such object")?;
            match condition(&object, kind) {
                Some(found) if found["status"] == status => Ok(object),
                found => Err(format!("{found:?}")),
            }
        })
    }
}

/// The condition of `type` in an object's status.
pub fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind)
}
