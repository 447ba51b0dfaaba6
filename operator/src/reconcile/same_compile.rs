//! `render` and `run` share one compile: the golden test.

use http::Method;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use manifold_api::GatewayConfig;
use manifold_api::manifests::{Source, read};

use super::*;
use crate::render::{Format, RenderArgs, render};
use crate::testing::api_server;

/// `render` of a manifests directory and the controller, given the same objects, publish
/// the same config: they share one compile.
#[tokio::test]
async fn render_and_the_controller_publish_the_same_config() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/multi-tenant");
    let rendered = render(&RenderArgs { paths: vec![dir.clone()], output: Format::Json }).unwrap();
    assert!(rendered.failures.is_empty(), "{:?}", rendered.failures);
    let rendered: GatewayConfig = serde_json::from_str(&rendered.output).unwrap();

    let mut sources = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        sources.push(Source { origin: path.display().to_string(), text: std::fs::read_to_string(&path).unwrap() });
    }
    let inputs = read(&sources).unwrap().inputs;
    let world = World {
        servers: inputs.servers,
        routes: inputs.routes,
        secrets: inputs.secrets,
        config_maps: inputs.config_maps,
        ..World::default()
    };
    // The statuses' answers are not looked at: any object will do.
    let shards = "/api/v1/namespaces/manifold-system/secrets?&labelSelector=manifold.dev%2Fgateway-config%3Dmanifold";
    let mut exchanges = vec![
        // What is published already (nothing), then the shards to compare with.
        (Method::GET, shards.to_owned(), serde_json::json!({"items": [], "metadata": {}})),
        (Method::GET, shards.to_owned(), serde_json::json!({"items": [], "metadata": {}})),
        (Method::PATCH, "/api/v1/namespaces/manifold-system/secrets/manifold-gateway-config?&force=true&fieldManager=manifold-operator".to_owned(), serde_json::json!({})),
    ];
    let objects = world
        .servers
        .iter()
        .map(|s| ("mcpservers", s.namespace().unwrap(), s.name_any(), serde_json::to_value(s).unwrap()));
    let objects: Vec<_> = objects
        .chain(
            world
                .routes
                .iter()
                .map(|r| ("mcproutes", r.namespace().unwrap(), r.name_any(), serde_json::to_value(r).unwrap())),
        )
        .collect();
    let mut sorted = objects.clone();
    // Outcomes come ordered by kind, then namespace and name.
    sorted.sort_by(|a, b| (a.0 != "mcpservers", &a.1, &a.2).cmp(&(b.0 != "mcpservers", &b.1, &b.2)));
    for (kind, namespace, name, answer) in sorted {
        let uri = format!(
            "/apis/manifold.dev/v1alpha1/namespaces/{namespace}/{kind}/{name}/status?&force=true&fieldManager=manifold-operator"
        );
        exchanges.push((Method::PATCH, uri, answer));
    }
    let (client, server) = api_server(exchanges);
    let mut reconciler = Reconciler::new(client, "manifold", "manifold-system");
    reconciler
        .reconcile(&world, &[], &crate::probe::Probes::default(), &Time(Timestamp::from_second(1_800_000_000).unwrap()))
        .await
        .unwrap();
    let bodies = server.await.unwrap();
    let published: Secret = serde_json::from_value(bodies[2].clone()).unwrap();
    let controller = manifold_api::publish::assemble([&published]).unwrap();
    assert_eq!(controller, rendered);
}
