//! `manifold-operator run` end to end against a stand-in for the Kubernetes API server over
//! real HTTP (reached through a kubeconfig, as in a cluster): it checks the CRDs, takes the
//! Lease, lists and watches, and publishes the config of what it finds; `/readyz` turns
//! ready once its caches have listed. The stand-in serves one McpServer and one McpRoute
//! and records every request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<(Method, String, Value)>>>;

fn weather() -> Value {
    json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer",
        "metadata": {"name": "weather", "namespace": "acme", "generation": 1, "resourceVersion": "5"},
        "spec": {"remote": {"url": "http://127.0.0.1:1/mcp"}}})
}

fn store() -> Value {
    json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpRoute",
        "metadata": {"name": "store", "namespace": "acme", "generation": 1, "resourceVersion": "6"},
        "spec": {"authentication": {"allowAnonymous": true}, "mounts": [{"server": "weather"}]}})
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "10"}, "items": items})
}

async fn api(seen: Seen, request: Request) -> Response {
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let body = axum::body::to_bytes(request.into_body(), usize::MAX).await.unwrap();
    seen.lock().unwrap().push((method.clone(), uri.to_string(), serde_json::from_slice(&body).unwrap_or(Value::Null)));
    let (path, query) = (uri.path(), uri.query().unwrap_or(""));
    if query.contains("watch=true") {
        // A watch that stays open and quiet.
        return Body::from_stream(futures::stream::pending::<Result<bytes::Bytes, std::io::Error>>()).into_response();
    }
    let json = |status: StatusCode, value: Value| (status, axum::Json(value)).into_response();
    match (method, path) {
        (Method::GET, "/apis/manifold.dev/v1alpha1") => json(
            StatusCode::OK,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "manifold.dev/v1alpha1", "resources": [
                {"name": "mcpservers", "singularName": "mcpserver", "namespaced": true, "kind": "McpServer", "verbs": ["list"]},
                {"name": "mcproutes", "singularName": "mcproute", "namespaced": true, "kind": "McpRoute", "verbs": ["list"]}]}),
        ),
        (Method::GET, "/apis/manifold.dev/v1alpha1/mcpservers") => {
            json(StatusCode::OK, list("McpServerList", vec![weather()]))
        }
        (Method::GET, "/apis/manifold.dev/v1alpha1/mcproutes") => {
            json(StatusCode::OK, list("McpRouteList", vec![store()]))
        }
        (Method::PATCH, "/apis/manifold.dev/v1alpha1/namespaces/acme/mcpservers/weather/status") => {
            json(StatusCode::OK, weather())
        }
        (Method::PATCH, "/apis/manifold.dev/v1alpha1/namespaces/acme/mcproutes/store/status") => {
            json(StatusCode::OK, store())
        }
        (Method::GET, "/api/v1/secrets" | "/api/v1/configmaps") => {
            json(StatusCode::OK, list("PartialObjectMetadataList", vec![]))
        }
        (Method::GET, "/apis/coordination.k8s.io/v1/namespaces/manifold-system/leases/manifold-operator") => json(
            StatusCode::NOT_FOUND,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
        ),
        (Method::POST, "/apis/coordination.k8s.io/v1/namespaces/manifold-system/leases") => json(
            StatusCode::CREATED,
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "manifold-operator"}}),
        ),
        (Method::GET, "/api/v1/namespaces/manifold-system/secrets") => json(StatusCode::OK, list("SecretList", vec![])),
        (Method::GET, "/apis/discovery.k8s.io/v1/namespaces/manifold-system/endpointslices") => {
            json(StatusCode::OK, list("EndpointSliceList", vec![]))
        }
        (Method::PATCH, _) => json(
            StatusCode::OK,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "acme"}}),
        ),
        (Method::POST, _) => json(StatusCode::CREATED, json!({})),
        _ => {
            json(StatusCode::NOT_FOUND, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}))
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_publishes_what_it_watches() {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback({
        let seen = Arc::clone(&seen);
        move |request: Request| api(Arc::clone(&seen), request)
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
    // SAFETY: this test binary runs this one test; nothing else reads the environment.
    unsafe { std::env::set_var("KUBECONFIG", &kubeconfig) };
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let args = manifold_operator::run::RunArgs {
        namespace: Some("manifold-system".into()),
        release: "manifold".into(),
        watch_namespaces: vec![],
        identity: Some("operator-0".into()),
        admin_listen: admin,
        gateway_url: None,
        allow_link_local_upstreams: false,
    };
    let running = tokio::spawn(async move { manifold_operator::run::run(&args).await });

    let patched = |seen: &Seen, prefix: &str| {
        seen.lock().unwrap().iter().find(|(m, uri, _)| *m == Method::PATCH && uri.starts_with(prefix)).cloned()
    };
    let applied = |seen: &Seen| patched(seen, "/api/v1/namespaces/manifold-system/secrets/manifold-gateway-config?");
    let route_status = "/apis/manifold.dev/v1alpha1/namespaces/acme/mcproutes/store/status?";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while applied(&seen).is_none() || patched(&seen, route_status).is_none() {
        assert!(!running.is_finished(), "the operator stopped: {:?}", running.await);
        assert!(tokio::time::Instant::now() < deadline, "no publish; requests: {:#?}", seen.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, _, secret) = applied(&seen).unwrap();
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(secret).unwrap();
    let config = manifold_api::publish::assemble([&secret]).unwrap();
    assert_eq!(config.routes.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/acme/store/mcp"]);

    let requests: Vec<String> = seen.lock().unwrap().iter().map(|(m, uri, _)| format!("{m} {uri}")).collect();
    for expected in [
        "GET /apis/manifold.dev/v1alpha1",
        "POST /apis/coordination.k8s.io/v1/namespaces/manifold-system/leases?",
        "PATCH /apis/manifold.dev/v1alpha1/namespaces/acme/mcpservers/weather/status?&fieldManager=manifold-operator",
    ] {
        assert!(requests.iter().any(|r| r == expected), "`{expected}` in {requests:#?}");
    }
    let (_, _, status) = patched(&seen, route_status).unwrap();
    let conditions: Vec<(&str, &str)> = status["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(conditions, [("Accepted", "True"), ("ResolvedRefs", "True"), ("Programmed", "False")]);
    let ready = reqwest::get(format!("http://{admin}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("manifold_operator_leader 1"), "{metrics}");
    running.abort();
}
