//! A stand-in kubelet: reads a Deployment from the API server and runs its container as
//! processes, one per replica, the way a kubelet would start a pod: the container's args and
//! env (downward API fields filled in), its Secret volumes written to a folder, and the
//! credentials of the pod's ServiceAccount. Each pod gets an address of its own
//! ([`crate::netns`]), so the args' `0.0.0.0` becomes that address, and a mount path becomes
//! the folder holding that volume: the two rewrites a process needs to stand in for a pod.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::apiserver::ApiServer;
use crate::netns::pod_address;
use crate::pods::Pod;
use crate::process::{gateway_binary, operator_binary};

/// The pods of one Deployment, the port and path of its readiness probe, and its container's
/// named ports.
pub struct Started {
    pub pods: Vec<Pod>,
    pub readiness: (u16, String),
    pub ports: BTreeMap<String, u16>,
}

/// Starts `replicas` pods of Deployment `namespace/name` (its own `spec.replicas` when None),
/// logging under `logs`.
pub fn start(api: &ApiServer, namespace: &str, name: &str, replicas: Option<usize>, logs: &Path) -> Started {
    let admin = api.admin();
    let deployment =
        admin.get("deployment", namespace, name).unwrap_or_else(|| panic!("no Deployment {namespace}/{name}"));
    let spec = &deployment["spec"]["template"]["spec"];
    let replicas = replicas.or(deployment["spec"]["replicas"].as_u64().map(|r| r as usize)).unwrap_or(1);
    let account = spec["serviceAccountName"].as_str().unwrap_or("default");
    let kubeconfig = api.service_account(namespace, account);
    let container = &spec["containers"][0];
    let image = container["image"].as_str().expect("the container names its image");
    let binary = if image.contains("manifold-operator") {
        operator_binary()
    } else if image.contains("manifold-gateway") {
        gateway_binary()
    } else {
        panic!("no binary stands in for image {image}")
    };
    let ports: BTreeMap<String, u16> = container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["name"].as_str()?.to_owned(), u16::try_from(p["containerPort"].as_u64()?).ok()?)))
        .collect();
    let probe = &container["readinessProbe"]["httpGet"];
    let port = match &probe["port"] {
        Value::String(name) => ports[name],
        number => u16::try_from(number.as_u64().expect("a probe port")).expect("a port"),
    };
    let readiness = (port, probe["path"].as_str().unwrap_or("/").to_owned());

    let pods = (0..replicas)
        .map(|index| {
            // Named after the Deployment's generation, as a ReplicaSet's pods are after its hash.
            let pod = format!("{name}-{}-{index}", deployment["metadata"]["generation"]);
            let address = pod_address().to_string();
            let mounts = volumes(&admin, namespace, spec, container, &logs.join(&pod));
            let args: Vec<String> = container["args"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|arg| {
                    let mut arg = arg.as_str().expect("args are strings").replace("0.0.0.0:", &format!("{address}:"));
                    for (mount, dir) in &mounts {
                        if let Some(rest) = arg.strip_prefix(mount.as_str()) {
                            arg = format!("{}{rest}", dir.display());
                        }
                    }
                    arg
                })
                .collect();
            let mut command = tokio::process::Command::new(&binary);
            command.args(&args);
            for variable in container["env"].as_array().into_iter().flatten() {
                let value = match variable["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                    Some("metadata.namespace") => namespace.to_owned(),
                    Some("metadata.name") => pod.clone(),
                    Some("status.podIP") => address.clone(),
                    Some(other) => panic!("no stand-in for the downward API field {other}"),
                    None => variable["value"].as_str().unwrap_or_default().to_owned(),
                };
                command.env(variable["name"].as_str().expect("an env name"), value);
            }
            Pod::spawn(&pod, address.parse().expect("an IPv4 address"), command, &kubeconfig, logs)
        })
        .collect();
    Started { pods, readiness, ports }
}

/// Writes each Secret volume the container mounts into a folder under `root`; returns the
/// mount paths and the folders that stand in for them.
fn volumes(
    admin: &crate::cluster::Cluster,
    namespace: &str,
    spec: &Value,
    container: &Value,
    root: &Path,
) -> Vec<(String, PathBuf)> {
    let mut mounts = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = mount["name"].as_str().expect("a mount names its volume");
        let volume = spec["volumes"].as_array().into_iter().flatten().find(|v| v["name"] == name).expect("the volume");
        let secret = volume["secret"]["secretName"]
            .as_str()
            .unwrap_or_else(|| panic!("volume {name}: only Secret volumes stand in"));
        let object = admin.get("secret", namespace, secret).unwrap_or_else(|| panic!("no Secret {namespace}/{secret}"));
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("create the volume's folder");
        let data = object["data"].as_object().cloned().unwrap_or_default();
        let items: Vec<(String, String)> = match volume["secret"]["items"].as_array() {
            Some(items) => items
                .iter()
                .map(|i| (i["key"].as_str().unwrap().to_owned(), i["path"].as_str().unwrap().to_owned()))
                .collect(),
            None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
        };
        for (key, path) in items {
            use base64::Engine;
            let value =
                data.get(&key).and_then(Value::as_str).unwrap_or_else(|| panic!("Secret {secret} has no key {key}"));
            let bytes = base64::engine::general_purpose::STANDARD.decode(value).expect("Secret data is base64");
            std::fs::write(dir.join(path), bytes).expect("write the volume's file");
        }
        mounts.push((mount["mountPath"].as_str().expect("a mount path").to_owned(), dir));
    }
    mounts
}
