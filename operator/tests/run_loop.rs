//! `manifold-operator run` end to end against a stand-in for the Kubernetes API server over
//! real HTTP (reached through a kubeconfig, as in a cluster, given to `run_with`: no environment): it checks the CRDs, takes the
//! Lease, lists and watches, and publishes the config of what it finds; `/readyz` turns
//! ready once its caches have listed. The stand-in holds an McpServer and an McpRoute in each
//! of two tenant namespaces, keeps the Lease it is given, records every request, and can
//! tell the operator's watch that its config Secret was deleted. It answers the operator's
//! SelfSubjectAccessReviews (allowed, unless a test denies a permission, which the stand-in
//! then refuses with 403 too).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const TENANTS: [&str; 2] = ["acme", "globex"];

#[derive(Default)]
struct Api {
    seen: Mutex<Vec<(Method, String, Value)>>,
    lease: Mutex<Option<Value>>,
    /// Tells the watch of the config Secrets that the first shard was deleted.
    delete_config: tokio::sync::Notify,
    /// Permissions the operator lacks, as (verb, API group, resource): reviews say so, and
    /// the calls that need them are refused.
    denied: Mutex<Vec<(&'static str, &'static str, &'static str)>>,
}

impl Api {
    fn denies(&self, verb: &str, group: &str, resource: &str) -> bool {
        self.denied.lock().unwrap().contains(&(verb, group, resource))
    }
}

/// The answer to a SelfSubjectAccessReview: allowed unless denied.
fn review(api: &Api, body: &Value) -> Value {
    let asked = &body["spec"]["resourceAttributes"];
    let text = |key: &str| asked[key].as_str().unwrap_or_default().to_owned();
    let resource = match text("subresource").as_str() {
        "" => text("resource"),
        subresource => format!("{}/{subresource}", text("resource")),
    };
    let allowed = !api.denies(&text("verb"), &text("group"), &resource);
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": body["spec"], "status": {"allowed": allowed}})
}

fn server(namespace: &str) -> Value {
    json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer",
        "metadata": {"name": "weather", "namespace": namespace, "generation": 1, "resourceVersion": "5", "uid": format!("{namespace}-weather")},
        "spec": {"remote": {"url": "http://127.0.0.1:1/mcp"}}})
}

fn route(namespace: &str) -> Value {
    json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpRoute",
        "metadata": {"name": "store", "namespace": namespace, "generation": 1, "resourceVersion": "6", "uid": format!("{namespace}-store")},
        "spec": {"authentication": {"allowAnonymous": true}, "mounts": [{"server": "weather"}]}})
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "10"}, "items": items})
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": reason})
}

async fn serve(api: Arc<Api>, request: Request) -> Response {
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let body = axum::body::to_bytes(request.into_body(), usize::MAX).await.unwrap();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    api.seen.lock().unwrap().push((method.clone(), uri.to_string(), body.clone()));
    let (path, query) = (uri.path(), uri.query().unwrap_or(""));
    let json = |status: StatusCode, value: Value| (status, axum::Json(value)).into_response();
    if query.contains("watch=true") {
        if path == "/api/v1/namespaces/manifold-system/secrets" {
            // The config Secrets' watch: quiet until the test deletes the first shard.
            let api = Arc::clone(&api);
            let deleted = async move {
                api.delete_config.notified().await;
                let event = json!({"type": "DELETED", "object": {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                    "metadata": {"name": "manifold-gateway-config", "namespace": "manifold-system", "resourceVersion": "11"}}});
                Ok::<_, std::io::Error>(bytes::Bytes::from(format!("{event}\n")))
            };
            let events = futures::StreamExt::chain(futures::stream::once(deleted), futures::stream::pending());
            return Body::from_stream(events).into_response();
        }
        // Any other watch stays open and quiet.
        return Body::from_stream(futures::stream::pending::<Result<bytes::Bytes, std::io::Error>>()).into_response();
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let forbidden = || json(StatusCode::FORBIDDEN, status(403, "Forbidden"));
    match (&method, segments.as_slice()) {
        (&Method::POST, ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"]) => {
            json(StatusCode::CREATED, review(&api, &body))
        }
        (&Method::POST, ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"]) => json(
            StatusCode::CREATED,
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                "status": {"userInfo": {"username": "system:serviceaccount:manifold-system:manifold-operator"}}}),
        ),
        (&Method::GET, ["apis", "discovery.k8s.io", ..])
            if api.denies("list", "discovery.k8s.io", "endpointslices") =>
        {
            forbidden()
        }
        (&Method::POST, ["apis", "events.k8s.io", ..]) if api.denies("create", "events.k8s.io", "events") => {
            forbidden()
        }
        (&Method::GET, ["apis", "manifold.dev", "v1alpha1"]) => json(
            StatusCode::OK,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "manifold.dev/v1alpha1", "resources": [
                {"name": "mcpservers", "singularName": "mcpserver", "namespaced": true, "kind": "McpServer", "verbs": ["list"]},
                {"name": "mcproutes", "singularName": "mcproute", "namespaced": true, "kind": "McpRoute", "verbs": ["list"]}]}),
        ),
        // Lists of every namespace, or of one.
        (&Method::GET, ["apis", "manifold.dev", "v1alpha1", kind]) => json(StatusCode::OK, tenant_list(kind, &TENANTS)),
        (&Method::GET, ["apis", "manifold.dev", "v1alpha1", "namespaces", namespace, kind]) => {
            json(StatusCode::OK, tenant_list(kind, &[namespace]))
        }
        (&Method::PATCH, ["apis", "manifold.dev", "v1alpha1", "namespaces", namespace, "mcpservers", _, "status"]) => {
            json(StatusCode::OK, server(namespace))
        }
        (&Method::PATCH, ["apis", "manifold.dev", "v1alpha1", "namespaces", namespace, "mcproutes", _, "status"]) => {
            json(StatusCode::OK, route(namespace))
        }
        (
            &Method::GET,
            ["api", "v1", "secrets" | "configmaps"] | ["api", "v1", "namespaces", _, "secrets" | "configmaps"],
        ) => json(StatusCode::OK, list("List", vec![])),
        (&Method::GET, ["apis", "coordination.k8s.io", "v1", "namespaces", "manifold-system", "leases", _]) => {
            match api.lease.lock().unwrap().clone() {
                Some(lease) => json(StatusCode::OK, lease),
                None => json(StatusCode::NOT_FOUND, status(404, "NotFound")),
            }
        }
        (&Method::POST | &Method::PUT, ["apis", "coordination.k8s.io", ..]) => {
            *api.lease.lock().unwrap() = Some(body.clone());
            json(if method == Method::POST { StatusCode::CREATED } else { StatusCode::OK }, body)
        }
        (&Method::GET, ["apis", "discovery.k8s.io", "v1", "namespaces", "manifold-system", "endpointslices"]) => {
            json(StatusCode::OK, list("EndpointSliceList", vec![]))
        }
        (&Method::PATCH, ["api", "v1", "namespaces", "manifold-system", "secrets", _]) => json(StatusCode::OK, body),
        (&Method::POST, ["apis", "events.k8s.io", ..]) => json(StatusCode::CREATED, json!({})),
        _ => json(StatusCode::NOT_FOUND, status(404, "NotFound")),
    }
}

fn tenant_list(kind: &str, namespaces: &[&str]) -> Value {
    match kind {
        "mcpservers" => list("McpServerList", namespaces.iter().map(|n| server(n)).collect()),
        "mcproutes" => list("McpRouteList", namespaces.iter().map(|n| route(n)).collect()),
        _ => list("List", vec![]),
    }
}

/// A stand-in API server, reached through a kubeconfig the operator is given.
struct Cluster {
    api: Arc<Api>,
    config: kube::Config,
}

impl Cluster {
    async fn start() -> Self {
        let api = Arc::new(Api::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback({
            let api = Arc::clone(&api);
            move |request: Request| serve(Arc::clone(&api), request)
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"http://{address}\"}}}}]\n\
                 users: [{{name: fake, user: {{}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n\
                 current-context: fake\n"
            ),
        )
        .unwrap();
        let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let options = kube::config::KubeConfigOptions::default();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.unwrap();
        Cluster { api, config }
    }

    fn requests(&self) -> Vec<(Method, String, Value)> {
        self.api.seen.lock().unwrap().clone()
    }

    /// The bodies of the requests `method` made to paths starting with `prefix`.
    fn sent(&self, method: &Method, prefix: &str) -> Vec<Value> {
        self.requests().into_iter().filter(|(m, uri, _)| m == method && uri.starts_with(prefix)).map(|r| r.2).collect()
    }

    /// Waits until `done` holds of the requests so far.
    async fn until(&self, what: &str, done: impl Fn(&Cluster) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done(self) {
            let requests: Vec<String> = self.requests().iter().map(|(m, uri, _)| format!("{m} {uri}")).collect();
            assert!(tokio::time::Instant::now() < deadline, "no {what}; requests: {requests:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

const CONFIG: &str = "/api/v1/namespaces/manifold-system/secrets/manifold-gateway-config?";

fn args(admin: std::net::SocketAddr, watch_namespaces: &[&str]) -> manifold_operator::run::RunArgs {
    manifold_operator::run::RunArgs {
        namespace: Some("manifold-system".into()),
        release: "manifold".into(),
        watch_namespaces: watch_namespaces.iter().map(|n| (*n).to_owned()).collect(),
        identity: Some("operator-0".into()),
        admin_listen: admin,
        gateway_url: None,
        allow_link_local_upstreams: false,
        log_format: Default::default(),
        telemetry: Default::default(),
    }
}

fn published_paths(secret: &Value) -> Vec<String> {
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(secret.clone()).unwrap();
    let config = manifold_api::publish::assemble([&secret]).unwrap();
    config.routes.iter().map(|r| r.path.clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_publishes_what_it_watches_and_gives_the_lease_up_when_stopped() {
    let cluster = Cluster::start().await;
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let args = args(admin, &[]);
    let config = cluster.config.clone();
    let running = tokio::spawn(async move {
        manifold_operator::run::run_with(config, &args, async move {
            let _ = stopped.await;
        })
        .await
    });

    let route_status = "/apis/manifold.dev/v1alpha1/namespaces/acme/mcproutes/store/status?";
    cluster
        .until("publish and route status", |c| {
            !c.sent(&Method::PATCH, CONFIG).is_empty() && !c.sent(&Method::PATCH, route_status).is_empty()
        })
        .await;
    let applied = cluster.sent(&Method::PATCH, CONFIG);
    assert_eq!(published_paths(&applied[0]), ["/acme/store/mcp", "/globex/store/mcp"]);

    let requests: Vec<String> = cluster.requests().iter().map(|(m, uri, _)| format!("{m} {uri}")).collect();
    for expected in [
        "GET /apis/manifold.dev/v1alpha1",
        "POST /apis/coordination.k8s.io/v1/namespaces/manifold-system/leases?",
        "PATCH /apis/manifold.dev/v1alpha1/namespaces/acme/mcpservers/weather/status?&force=true&fieldManager=manifold-operator",
    ] {
        assert!(requests.iter().any(|r| r == expected), "`{expected}` in {requests:#?}");
    }
    let status = &cluster.sent(&Method::PATCH, route_status)[0];
    let conditions: Vec<(&str, &str)> = status["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(conditions, [("Accepted", "True"), ("ResolvedRefs", "True"), ("Programmed", "False")]);
    let ready = reqwest::get(format!("http://{admin}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let reviews = cluster.sent(&Method::POST, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews");
    assert!(reviews.len() >= 25, "every permission asked: {reviews:#?}");
    let metrics = reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("manifold_operator_leader 1"), "{metrics}");

    // Someone deletes the config Secret: the operator writes it again, unasked.
    cluster.api.delete_config.notify_one();
    cluster.until("second publish", |c| c.sent(&Method::PATCH, CONFIG).len() >= 2).await;
    assert_eq!(cluster.sent(&Method::PATCH, CONFIG)[1], applied[0], "the same config, the same generation");

    // Stopped, it releases the Lease so that another replica leads at once.
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let lease = cluster.api.lease.lock().unwrap().clone().unwrap();
    assert_eq!((lease["spec"].get("holderIdentity"), lease["spec"]["leaseDurationSeconds"].as_i64()), (None, Some(1)));
}

#[tokio::test(flavor = "multi_thread")]
async fn several_watched_namespaces_are_all_published() {
    let cluster = Cluster::start().await;
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let args = args(admin, &TENANTS);
    let config = cluster.config.clone();
    let running =
        tokio::spawn(async move { manifold_operator::run::run_with(config, &args, std::future::pending()).await });
    cluster.until("publish", |c| !c.sent(&Method::PATCH, CONFIG).is_empty()).await;
    assert_eq!(published_paths(&cluster.sent(&Method::PATCH, CONFIG)[0]), ["/acme/store/mcp", "/globex/store/mcp"]);
    let requests: Vec<String> = cluster.requests().iter().map(|(m, uri, _)| format!("{m} {uri}")).collect();
    for namespace in TENANTS {
        for kind in ["secrets", "configmaps"] {
            let watched = format!("GET /api/v1/namespaces/{namespace}/{kind}?&watch=true");
            assert!(requests.iter().any(|r| r.starts_with(&watched)), "`{watched}` in {requests:#?}");
        }
    }
    assert!(!requests.iter().any(|r| r.starts_with("GET /api/v1/secrets")), "no cluster-wide Secret watch");
    running.abort();
}

/// What `/readyz` answers once the permissions have been checked.
async fn readyz_once_checked(admin: std::net::SocketAddr) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ready = reqwest::get(format!("http://{admin}/readyz")).await.unwrap();
        let answer = (ready.status().as_u16(), ready.text().await.unwrap());
        if !answer.1.contains("permissions not checked yet") {
            return answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "permissions never checked: {answer:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Without two permissions (Events, and the gateway's EndpointSlices), `/readyz` and the
/// metrics name them, and the operator still publishes and writes every status: routes are
/// just not Programmed.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_permission_is_named_and_everything_else_goes_on() {
    let cluster = Cluster::start().await;
    *cluster.api.denied.lock().unwrap() =
        vec![("create", "events.k8s.io", "events"), ("list", "discovery.k8s.io", "endpointslices")];
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let args = args(admin, &[]);
    let config = cluster.config.clone();
    let running =
        tokio::spawn(async move { manifold_operator::run::run_with(config, &args, std::future::pending()).await });

    let route_status = "/apis/manifold.dev/v1alpha1/namespaces/acme/mcproutes/store/status?";
    let server_status = "/apis/manifold.dev/v1alpha1/namespaces/acme/mcpservers/weather/status?";
    cluster
        .until("publish, statuses and a refused Event", |c| {
            !c.sent(&Method::PATCH, CONFIG).is_empty()
                && !c.sent(&Method::PATCH, route_status).is_empty()
                && !c.sent(&Method::PATCH, server_status).is_empty()
                && !c.sent(&Method::POST, "/apis/events.k8s.io/").is_empty()
        })
        .await;
    assert_eq!(published_paths(&cluster.sent(&Method::PATCH, CONFIG)[0]), ["/acme/store/mcp", "/globex/store/mcp"]);
    let programmed = cluster.sent(&Method::PATCH, route_status)[0]["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Programmed")
        .cloned()
        .unwrap();
    assert_eq!((programmed["status"].as_str(), programmed["reason"].as_str()), (Some("False"), Some("NoReplicas")));

    let expected = "missing permission: create events.events.k8s.io in all namespaces\n\
                    missing permission: list endpointslices.discovery.k8s.io in namespace manifold-system";
    assert_eq!(readyz_once_checked(admin).await, (503, expected.to_owned()));
    let metrics = reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("manifold_operator_missing_permissions 2"), "{metrics}");
    running.abort();
}
