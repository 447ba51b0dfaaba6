//! One scenario's Manifold on the test API server: namespaces of its own (namespaces cannot
//! be deleted there), the CRDs, the chart's ServiceAccounts, RBAC and gateway Service
//! (`helm template`, so the scenarios run with exactly what the chart grants), the operator and
//! gateway replicas as [`Pod`]s with those identities, and the EndpointSlices an endpoint
//! controller would write for the gateways.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;

use crate::apiserver::ApiServer;
use crate::cluster::Cluster;
use crate::pods::{Deployment, GATEWAY_ADMIN_PORT, GATEWAY_MCP_PORT, OPERATOR_ADMIN_PORT, Pod};
use crate::repo_root;

/// Long enough for a reconcile on a loaded 2-core machine (probes wait up to 11 s).
pub const SETTLE: Duration = Duration::from_secs(60);

pub struct KubeStack {
    pub api: &'static ApiServer,
    /// kubectl as the admin: the test itself, the only thing that runs as admin.
    pub admin: Cluster,
    pub deployment: Deployment,
    /// The tenants' namespaces.
    pub tenants: Vec<String>,
    pub operators: Vec<Pod>,
    pub gateways: Vec<Pod>,
    operator_identity: PathBuf,
    gateway_identity: PathBuf,
    session_keys: PathBuf,
    _dir: tempfile::TempDir,
}

impl KubeStack {
    /// Namespaces `<scenario>-system` (release `<scenario>`) and `<scenario>-<tenant>` for
    /// each tenant, RBAC applied; no process started yet.
    pub fn new(scenario: &str, tenants: &[&str]) -> Self {
        let api = ApiServer::shared();
        let admin = api.admin();
        install_crds(&admin);
        let namespace = format!("{scenario}-system");
        let tenants: Vec<String> = tenants.iter().map(|t| format!("{scenario}-{t}")).collect();
        let mut all: Vec<&str> = vec![&namespace];
        all.extend(tenants.iter().map(String::as_str));
        admin.namespaces(&all);
        admin.apply(&chart(scenario, &namespace, &tenants, &[OPERATOR_RBAC, GATEWAY_RBAC, GATEWAY_SERVICE]));
        let dir = tempfile::tempdir().expect("temp dir");
        let session_keys = dir.path().join("session-keys");
        std::fs::write(&session_keys, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n")
            .expect("write the session keys");
        KubeStack {
            api,
            admin,
            operator_identity: api.service_account(&namespace, &format!("{scenario}-operator")),
            gateway_identity: api.service_account(&namespace, &format!("{scenario}-gateway")),
            deployment: Deployment { namespace, release: scenario.into(), logs: dir.path().to_path_buf() },
            tenants,
            operators: Vec::new(),
            gateways: Vec::new(),
            session_keys,
            _dir: dir,
        }
    }

    /// `new`, then `operators` operator replicas and `gateways` gateway replicas, waiting
    /// until every gateway serves a config and is in the EndpointSlice.
    pub async fn start(scenario: &str, tenants: &[&str], operators: usize, gateways: usize) -> Self {
        let mut stack = Self::new(scenario, tenants);
        for i in 0..operators {
            stack.start_operator(&format!("operator-{i}")).await;
        }
        for i in 0..gateways {
            stack.start_gateway(&format!("gateway-{i}")).await;
        }
        stack
    }

    /// One more operator replica, watching the tenants' namespaces; returns once it is ready.
    pub async fn start_operator(&mut self, name: &str) {
        self.spawn_operator(name);
        self.operators.last().expect("just started").until_ready(OPERATOR_ADMIN_PORT, SETTLE).await;
    }

    /// One more operator replica, not waiting for it to be ready.
    pub fn spawn_operator(&mut self, name: &str) {
        let watch: Vec<&str> = self.tenants.iter().map(String::as_str).collect();
        let pod = self.deployment.operator(name, &self.operator_identity, &watch);
        self.operators.push(pod);
    }

    /// One more gateway replica; returns once it serves a config and its endpoint is ready.
    pub async fn start_gateway(&mut self, name: &str) {
        self.start_gateway_with(name, &[]).await;
    }

    /// Same, with more arguments of `manifold-gateway`.
    pub async fn start_gateway_with(&mut self, name: &str, extra: &[&str]) {
        let pod = self.deployment.gateway_with(name, &self.gateway_identity, &self.session_keys, extra);
        pod.until_ready(GATEWAY_ADMIN_PORT, SETTLE).await;
        self.gateways.push(pod);
        self.sync_endpoints().await;
    }

    /// Writes the gateway Service's EndpointSlice as the endpoint controller would.
    pub async fn sync_endpoints(&self) {
        let service = format!("{}-gateway", self.deployment.release);
        write_endpoints(&self.admin, &self.deployment.namespace, &service, &self.gateways, &gateway_ports()).await;
    }

    /// A template of the chart as this scenario applied it (for example [`OPERATOR_RBAC`]).
    pub fn chart(&self, template: &str) -> String {
        chart(&self.deployment.release, &self.deployment.namespace, &self.tenants, &[template])
    }

    /// The namespace of tenant `index`.
    pub fn tenant(&self, index: usize) -> &str {
        &self.tenants[index]
    }

    /// The MCP URL of a route path on gateway `index`.
    pub fn route_url(&self, gateway: usize, path: &str) -> String {
        self.gateways[gateway].url(GATEWAY_MCP_PORT, path)
    }

    /// Waits until a route is `Programmed=True` and returns it.
    pub fn until_programmed(&self, namespace: &str, route: &str) -> serde_json::Value {
        self.admin.until_condition("mcproute", namespace, route, "Programmed", "True", SETTLE)
    }

    /// The Events recorded about an object, as `<type> <reason>: <note>` lines.
    pub fn events(&self, namespace: &str, name: &str) -> Vec<String> {
        self.admin
            .list("events.events.k8s.io", namespace)
            .into_iter()
            .filter(|e| e["regarding"]["name"] == name)
            .map(|e| {
                format!(
                    "{} {}: {}",
                    e["type"].as_str().unwrap_or(""),
                    e["reason"].as_str().unwrap_or(""),
                    e["note"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// The operator replica holding the Lease, by its name.
    pub fn leader(&self) -> Option<String> {
        let lease =
            self.admin.get("lease", &self.deployment.namespace, &format!("{}-operator", self.deployment.release))?;
        lease["spec"]["holderIdentity"].as_str().filter(|h| !h.is_empty()).map(str::to_owned)
    }
}

/// Writes Service `service`'s EndpointSlice as the endpoint controller would: every gateway
/// pod, `ready` when its `/readyz` answers 200, and the Service's ports, a named `targetPort`
/// resolved with the pods' `container_ports`.
pub async fn write_endpoints(
    admin: &Cluster,
    namespace: &str,
    service: &str,
    gateways: &[Pod],
    container_ports: &BTreeMap<String, u16>,
) {
    let object = admin.get("service", namespace, service).unwrap_or_else(|| panic!("no Service {namespace}/{service}"));
    let ports: Vec<_> = object["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|port| {
            let target = match &port["targetPort"] {
                serde_json::Value::String(name) => {
                    *container_ports.get(name).unwrap_or_else(|| panic!("no container port {name}"))
                }
                number => number.as_u64().and_then(|n| u16::try_from(n).ok()).expect("a port number"),
            };
            json!({"name": port["name"], "port": target, "protocol": "TCP"})
        })
        .collect();
    let mut endpoints = Vec::new();
    for pod in gateways {
        let ready = matches!(pod.get(GATEWAY_ADMIN_PORT, "/readyz").await, Some((200, _)));
        endpoints.push(json!({"addresses": [pod.address.to_string()], "conditions": {"ready": ready},
                              "targetRef": {"kind": "Pod", "name": pod.name, "namespace": namespace}}));
    }
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-e2e"), "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service,
                                "endpointslice.kubernetes.io/managed-by": "e2e.manifold.dev"}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    });
    admin.apply(&slice.to_string());
}

/// The gateway container's named ports.
pub fn gateway_ports() -> BTreeMap<String, u16> {
    BTreeMap::from([("mcp".to_owned(), GATEWAY_MCP_PORT), ("admin".to_owned(), GATEWAY_ADMIN_PORT)])
}

/// The chart's templates for the operator's ServiceAccount and RBAC, the gateways', and the
/// gateway Service.
pub const OPERATOR_RBAC: &str = "templates/operator-rbac.yaml";
pub const GATEWAY_RBAC: &str = "templates/gateway-rbac.yaml";
pub const GATEWAY_SERVICE: &str = "templates/gateway-service.yaml";

/// Templates of `charts/manifold` for `release` in `namespace`, watching `tenants`.
fn chart(release: &str, namespace: &str, tenants: &[String], templates: &[&str]) -> String {
    crate::helm::template(release, namespace, &[format!("watchNamespaces={{{}}}", tenants.join(","))], templates)
}

/// Installs the generated CRDs once per API server and waits until they are Established.
pub fn install_crds(admin: &Cluster) {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let crds = repo_root().join("crds/manifests");
        admin.run(&["apply", "--server-side", "-f", &crds.display().to_string()], None);
        admin.until_established(&["mcpservers.manifold.dev", "mcproutes.manifold.dev"]);
    });
}
