//! `Programmed`: whether every ready gateway replica serves a route. The replicas are the
//! ready endpoints of the gateway Service's EndpointSlices. Each is asked for its admin
//! `/status`: the generation it serves, and its routes. A route is Programmed once every
//! ready replica serves a generation at least as new as the one that last changed the route,
//! with the route in it. "Accepted" says the config is right; "Programmed" says clients get it.

use std::collections::BTreeSet;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, ListParams};
use manifold_api::outcome::Verdict;

/// How long a replica's admin endpoint may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// One ready gateway replica, and what it said it serves (None: it did not answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    /// `address:port` of its admin endpoint.
    pub admin: String,
    pub serving: Option<Serving>,
}

/// What a replica serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serving {
    pub generation: u64,
    /// (namespace, name) of every route.
    pub routes: BTreeSet<(String, String)>,
}

/// The ready replicas behind `service` in `namespace` and what each serves; `port` names
/// the admin port in the EndpointSlices.
pub async fn replicas(client: &Client, namespace: &str, service: &str, port: &str) -> kube::Result<Vec<Replica>> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let listed = slices.list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}"))).await?;
    let mut admins = BTreeSet::new();
    for slice in &listed.items {
        let Some(number) = slice.ports.iter().flatten().find(|p| p.name.as_deref() == Some(port)).and_then(|p| p.port)
        else {
            continue;
        };
        for endpoint in &slice.endpoints {
            // An endpoint without conditions counts as ready, as Kubernetes says.
            if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            for address in &endpoint.addresses {
                let host = if address.contains(':') { format!("[{address}]") } else { address.clone() };
                admins.insert(format!("{host}:{number}"));
            }
        }
    }
    let http = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let asked = admins.into_iter().map(|admin| {
        let http = http.clone();
        async move {
            let serving = tokio::time::timeout(ASK_TIMEOUT, ask(&http, &admin)).await.ok().flatten();
            Replica { admin, serving }
        }
    });
    Ok(futures::future::join_all(asked).await)
}

async fn ask(
    http: &HttpClient<hyper_util::client::legacy::connect::HttpConnector, Empty<bytes::Bytes>>,
    admin: &str,
) -> Option<Serving> {
    #[derive(serde::Deserialize)]
    struct Status {
        generation: u64,
        routes: Vec<Route>,
    }
    #[derive(serde::Deserialize)]
    struct Route {
        namespace: String,
        name: String,
    }
    let uri = format!("http://{admin}/status").parse().ok()?;
    let response = http.get(uri).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = response.into_body().collect().await.ok()?.to_bytes();
    let status: Status = serde_json::from_slice(&body).ok()?;
    Some(Serving {
        generation: status.generation,
        routes: status.routes.into_iter().map(|r| (r.namespace, r.name)).collect(),
    })
}

/// The `Programmed` condition of `route`, whose current version appeared in generation
/// `needed`.
pub fn verdict(route: &(String, String), needed: u64, replicas: &[Replica]) -> Verdict {
    let (status, reason, message) = if replicas.is_empty() {
        (false, "NoReplicas", "no gateway replica is ready".to_owned())
    } else {
        let serving = replicas
            .iter()
            .filter(|r| r.serving.as_ref().is_some_and(|s| s.generation >= needed && s.routes.contains(route)))
            .count();
        if serving == replicas.len() {
            // No replica count here: scaling the gateways must not rewrite every route's status.
            (true, "Programmed", format!("served by every ready gateway replica at generation {needed} or later"))
        } else {
            let silent = replicas.iter().filter(|r| r.serving.is_none()).count();
            let why = if silent > 0 { format!("; {silent} did not answer") } else { String::new() };
            (
                false,
                "Pending",
                format!("{serving} of {} gateway replicas serve generation {needed}{why}", replicas.len()),
            )
        }
    };
    Verdict { type_: "Programmed".into(), status, reason: reason.into(), message }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::json;

    use super::*;
    use crate::testing::api_server;

    fn route() -> (String, String) {
        ("acme".into(), "store".into())
    }

    fn replica(generation: Option<u64>, with_route: bool) -> Replica {
        let routes = if with_route { BTreeSet::from([route()]) } else { BTreeSet::new() };
        Replica { admin: "10.0.0.1:9090".into(), serving: generation.map(|generation| Serving { generation, routes }) }
    }

    #[test]
    fn a_route_is_programmed_once_every_ready_replica_serves_it() {
        let verdict = |replicas: &[Replica]| {
            let v = verdict(&route(), 4, replicas);
            (v.status, v.reason, v.message)
        };
        assert_eq!(verdict(&[]), (false, "NoReplicas".into(), "no gateway replica is ready".into()));
        assert_eq!(
            verdict(&[replica(Some(4), true), replica(Some(3), true)]),
            (false, "Pending".into(), "1 of 2 gateway replicas serve generation 4".into())
        );
        assert_eq!(
            verdict(&[replica(Some(5), true), replica(None, false)]),
            (false, "Pending".into(), "1 of 2 gateway replicas serve generation 4; 1 did not answer".into())
        );
        assert!(!verdict(&[replica(Some(4), false)]).0, "a generation without the route");
        assert_eq!(
            verdict(&[replica(Some(4), true), replica(Some(6), true)]),
            (true, "Programmed".into(), "served by every ready gateway replica at generation 4 or later".into())
        );
    }

    #[tokio::test]
    async fn replicas_are_the_ready_endpoints_and_say_what_they_serve() {
        // One real admin endpoint on this machine, and a ready endpoint that does not answer.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let status = json!({"ready": true, "generation": 7, "hash": "h", "routes": [{"namespace": "acme", "name": "store", "path": "/acme/store/mcp", "mounts": 1}]});
        let app = axum::Router::new().route("/status", axum::routing::get(move || async move { axum::Json(status) }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();

        let slice = |port: u16, address: &str, ready: bool| {
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": format!("s{port}")},
                   "addressType": "IPv4", "ports": [{"name": "admin", "port": port}, {"name": "mcp", "port": 8080}],
                   "endpoints": [{"addresses": [address], "conditions": {"ready": ready}}]})
        };
        let slices = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList", "metadata": {},
            "items": [slice(port, "127.0.0.1", true), slice(closed, "127.0.0.1", true), slice(1, "10.9.9.9", false)]});
        let uri = "/apis/discovery.k8s.io/v1/namespaces/manifold-system/endpointslices?&labelSelector=kubernetes.io%2Fservice-name%3Dmanifold-gateway";
        let (client, server) = api_server(vec![(Method::GET, uri.into(), slices)]);
        let found = replicas(&client, "manifold-system", "manifold-gateway", "admin").await.unwrap();
        server.await.unwrap();
        let serving = Serving { generation: 7, routes: BTreeSet::from([route()]) };
        let mut expected = vec![
            Replica { admin: format!("127.0.0.1:{port}"), serving: Some(serving) },
            Replica { admin: format!("127.0.0.1:{closed}"), serving: None },
        ];
        expected.sort_by(|a, b| a.admin.cmp(&b.admin));
        assert_eq!(found, expected, "the not-ready endpoint is not a replica");
    }
}
