//! `Programmed`: whether every ready gateway replica serves a route. The replicas are the
//! ready endpoints of the gateway Service's EndpointSlices. Each is asked for its admin
//! `/status`: the generation it serves, and its routes. A route is Programmed once every
//! ready replica serves a generation at least as new as the one that last changed the route,
//! with the route in it. "Accepted" says the config is right; "Programmed" says clients get it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, ListParams};
use manifold_api::ObjectKey;
use manifold_api::outcome::Verdict;
use manifold_api::outcome::condition::PROGRAMMED;
use manifold_api::outcome::reason;

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
    /// The hash of the config's routes: a replica serving the hash being published serves
    /// every route of it as it is, whatever the generation (a new leader that could not read
    /// the published config republishes the same one at a new generation).
    pub hash: String,
    /// (namespace, name) of every route, and how many of its mounts the replica built (one
    /// it cannot build, such as an upstream its egress rule refuses, is left out).
    pub routes: BTreeMap<ObjectKey, usize>,
}

/// How many answers in a row a replica may miss before what it last said is no longer
/// taken: one slow answer must not flip every route to Pending and back.
const MISSES_FORGIVEN: u32 = 2;

/// `found` with the silent replicas that answered lately taking their last answer (a
/// replica serves what it served until it says otherwise), for [`MISSES_FORGIVEN`] misses
/// in a row; `misses` counts them, by admin address.
pub fn forgive_silence(previous: &[Replica], found: Vec<Replica>, misses: &mut BTreeMap<String, u32>) -> Vec<Replica> {
    misses.retain(|admin, _| found.iter().any(|r| r.admin == *admin));
    found
        .into_iter()
        .map(|mut replica| {
            if replica.serving.is_some() {
                misses.remove(&replica.admin);
                return replica;
            }
            let missed = misses.entry(replica.admin.clone()).or_default();
            *missed += 1;
            if *missed <= MISSES_FORGIVEN {
                replica.serving = previous.iter().find(|r| r.admin == replica.admin).and_then(|r| r.serving.clone());
            }
            replica
        })
        .collect()
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
        #[serde(default)]
        hash: String,
        routes: Vec<Route>,
    }
    #[derive(serde::Deserialize)]
    struct Route {
        namespace: String,
        name: String,
        mounts: usize,
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
        hash: status.hash,
        routes: status.routes.into_iter().map(|r| (ObjectKey::new(r.namespace, r.name), r.mounts)).collect(),
    })
}

/// The `Programmed` condition of `route`, whose current version, with `mounts` mounts,
/// appeared in generation `needed` of the config whose hash is `current`. Messages count no
/// replicas: scaling the gateways, or a rollout, must not rewrite every route's status.
pub fn verdict(route: &ObjectKey, needed: u64, current: &str, mounts: usize, replicas: &[Replica]) -> Verdict {
    let built = |replica: &Replica| {
        let serving = replica.serving.as_ref().filter(|s| s.generation >= needed || s.hash == current)?;
        serving.routes.get(route).copied()
    };
    let (status, because, message) = if replicas.is_empty() {
        (false, reason::NO_REPLICAS, "no gateway replica is ready".to_owned())
    } else if replicas.iter().all(|r| built(r).is_some_and(|built| built >= mounts)) {
        (true, reason::PROGRAMMED, format!("served by every ready gateway replica at generation {needed} or later"))
    } else if replicas.iter().any(|r| built(r).is_some_and(|built| built < mounts)) {
        (
            false,
            reason::MOUNTS_NOT_BUILT,
            "a gateway replica serves the route without some of its mounts: it could not build them (its log and \
             /status say why)"
                .to_owned(),
        )
    } else {
        (false, reason::PENDING, format!("waiting for every ready gateway replica to serve generation {needed}"))
    };
    Verdict { type_: PROGRAMMED.into(), status, reason: because.into(), message }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::json;

    use super::*;
    use crate::testing::api_server;

    fn route() -> ObjectKey {
        ObjectKey::new("acme", "store")
    }

    fn replica(generation: Option<u64>, with_route: bool) -> Replica {
        let routes = if with_route { BTreeMap::from([(route(), 2)]) } else { BTreeMap::new() };
        let hash = format!("hash of {generation:?}");
        Replica {
            admin: "10.0.0.1:9090".into(),
            serving: generation.map(|generation| Serving { generation, hash, routes }),
        }
    }

    #[test]
    fn a_route_is_programmed_once_every_ready_replica_serves_it() {
        let verdict = |replicas: &[Replica]| {
            let v = verdict(&route(), 4, "current", 2, replicas);
            (v.status, v.reason, v.message)
        };
        assert_eq!(verdict(&[]), (false, "NoReplicas".into(), "no gateway replica is ready".into()));
        let pending = (false, "Pending".into(), "waiting for every ready gateway replica to serve generation 4".into());
        assert_eq!(verdict(&[replica(Some(4), true), replica(Some(3), true)]), pending);
        assert_eq!(verdict(&[replica(Some(5), true), replica(None, false)]), pending, "one did not answer");
        assert!(!verdict(&[replica(Some(4), false)]).0, "a generation without the route");
        assert_eq!(
            verdict(&[replica(Some(4), true), replica(Some(6), true)]),
            (true, "Programmed".into(), "served by every ready gateway replica at generation 4 or later".into())
        );
        let mut short = replica(Some(4), true);
        short.serving.as_mut().unwrap().routes.insert(route(), 1);
        let (status, reason, _) = verdict(&[replica(Some(4), true), short]);
        assert_eq!((status, reason.as_str()), (false, "MountsNotBuilt"), "a mount left out is not served");
    }

    #[test]
    fn a_replica_serving_the_same_config_at_an_older_generation_serves_the_route() {
        // A new leader that found no published config republishes the same one at 4.
        let mut same = replica(Some(2), true);
        same.serving.as_mut().unwrap().hash = "current".into();
        assert!(verdict(&route(), 4, "current", 2, &[same.clone(), replica(Some(4), true)]).status);
        let older = replica(Some(2), true);
        assert!(!verdict(&route(), 4, "current", 2, &[older]).status, "another config at 2 is not enough");
        let mut without = same;
        without.serving.as_mut().unwrap().routes.clear();
        assert!(!verdict(&route(), 4, "current", 2, &[without]).status, "the same hash, yet not built");
    }

    #[test]
    fn a_replica_that_misses_an_answer_or_two_still_serves_what_it_said() {
        let answered = |generation| Replica { admin: "10.0.0.1:9090".into(), ..replica(Some(generation), true) };
        let silent = || Replica { admin: "10.0.0.1:9090".into(), serving: None };
        let mut misses = BTreeMap::new();
        let mut replicas = forgive_silence(&[], vec![answered(4)], &mut misses);
        for miss in 1..=MISSES_FORGIVEN {
            replicas = forgive_silence(&replicas, vec![silent()], &mut misses);
            assert_eq!(replicas, [answered(4)], "miss {miss}: its last answer stands");
        }
        replicas = forgive_silence(&replicas, vec![silent()], &mut misses);
        assert_eq!(replicas, [silent()], "silent too long: it serves nothing we know of");
        replicas = forgive_silence(&replicas, vec![answered(5)], &mut misses);
        assert_eq!(replicas, [answered(5)]);
        assert!(misses.is_empty(), "an answer clears the count");
        assert_eq!(forgive_silence(&[], vec![silent()], &mut misses), [silent()], "never answered: nothing to take");
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
        let serving = Serving { generation: 7, hash: "h".into(), routes: BTreeMap::from([(route(), 1)]) };
        let mut expected = vec![
            Replica { admin: format!("127.0.0.1:{port}"), serving: Some(serving) },
            Replica { admin: format!("127.0.0.1:{closed}"), serving: None },
        ];
        expected.sort_by(|a, b| a.admin.cmp(&b.admin));
        assert_eq!(found, expected, "the not-ready endpoint is not a replica");
    }
}
