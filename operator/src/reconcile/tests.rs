//! Reconciles against kube's `tower_test` mock: every API call asserted.

use http::Method;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::events::{Recorder, Reporter};
use manifold_api::ObjectKey;
use manifold_api::compile::{Unreadable, compile};
use manifold_api::outcome::{Kind, ObjectRef};
use manifold_api::resources::{McpRoute, McpRouteStatus, McpServer};
use serde_json::{Value, json};

use super::*;
use crate::testing::{api_server, api_server_with_status};

fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn server(name: &str, remote: Value) -> McpServer {
    object(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer",
        "metadata": {"name": name, "namespace": "acme", "generation": 1}, "spec": {"remote": remote}}))
}

fn route(name: &str, created: &str, spec: Value) -> McpRoute {
    object(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpRoute",
        "metadata": {"name": name, "namespace": "acme", "generation": 1, "creationTimestamp": created}, "spec": spec}))
}

fn now() -> Time {
    Time(Timestamp::from_second(1_800_000_000).unwrap())
}

const LIST: &str = "/api/v1/namespaces/manifold-system/secrets?&labelSelector=manifold.dev%2Fgateway-config%3Dmanifold";
const APPLY: &str =
    "/api/v1/namespaces/manifold-system/secrets/manifold-gateway-config?&force=true&fieldManager=manifold-operator";

fn list() -> (Method, String, Value) {
    (Method::GET, LIST.into(), json!({"apiVersion": "v1", "kind": "SecretList", "metadata": {}, "items": []}))
}

fn apply() -> (Method, String, Value) {
    (Method::PATCH, APPLY.into(), json!({}))
}

fn status_of(kind: &str, name: &str, answer: Value) -> (Method, String, Value) {
    let uri = format!(
        "/apis/manifold.dev/v1alpha1/namespaces/acme/{kind}/{name}/status?&force=true&fieldManager=manifold-operator"
    );
    (Method::PATCH, uri, answer)
}

/// The condition `type_` of a status patch body.
fn condition<'a>(body: &'a Value, type_: &str) -> &'a Value {
    body["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == type_).unwrap()
}

/// Reconciles `world` once against a mock expecting `exchanges`; returns the report and
/// the request bodies.
async fn reconcile(
    reconciler: &mut Option<Reconciler>,
    world: &World,
    exchanges: Vec<(Method, String, Value)>,
) -> (Report, Vec<Value>) {
    reconcile_with(reconciler, world, &[], exchanges).await
}

/// Same, with these gateway replicas.
async fn reconcile_with(
    reconciler: &mut Option<Reconciler>,
    world: &World,
    replicas: &[Replica],
    mut exchanges: Vec<(Method, String, Value)>,
) -> (Report, Vec<Value>) {
    let first = reconciler.is_none();
    if first {
        // A first reconcile starts by reading what is published (nothing, here).
        exchanges.insert(0, list());
    }
    let (client, server) = api_server(exchanges);
    let mut fresh = Reconciler::new(client, "manifold", "manifold-system");
    if let Some(previous) = reconciler.take() {
        (fresh.memory, fresh.loaded) = (previous.memory, previous.loaded);
        (fresh.shards, fresh.verify) = (previous.shards, previous.verify);
    }
    let report = fresh.reconcile(world, replicas, &Probes::default(), &now()).await.unwrap();
    *reconciler = Some(fresh);
    let mut bodies = server.await.unwrap();
    if first {
        bodies.remove(0);
    }
    (report, bodies)
}

/// The first reconcile of a world of `weather` and `store`: a publish, and both statuses.
async fn first_reconcile(reconciler: &mut Option<Reconciler>, world: &World) -> (Report, Vec<Value>) {
    first_reconcile_with(reconciler, world, &[]).await
}

/// Same, with these gateway replicas.
async fn first_reconcile_with(
    reconciler: &mut Option<Reconciler>,
    world: &World,
    replicas: &[Replica],
) -> (Report, Vec<Value>) {
    let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
    let exchanges = vec![
        list(),
        apply(),
        status_of("mcpservers", "weather", answers[0].clone()),
        status_of("mcproutes", "store", answers[1].clone()),
    ];
    reconcile_with(reconciler, world, replicas, exchanges).await
}

fn weather() -> McpServer {
    server("weather", json!({"url": "http://weather.acme.svc:8080/mcp"}))
}

fn store() -> McpRoute {
    route(
        "store",
        "2026-01-01T00:00:00Z",
        json!({"authentication": {"allowAnonymous": true}, "mounts": [{"server": "weather"}]}),
    )
}

#[tokio::test]
async fn a_new_route_is_published_once_with_its_statuses_and_then_nothing_is_written() {
    let mut world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    let mut reconciler = None;
    let (report, bodies) = first_reconcile(&mut reconciler, &world).await;
    assert_eq!((report.generation, report.published.unwrap().applied, report.statuses), (1, 1, 2));
    let config = &bodies[1]["metadata"]["annotations"];
    assert_eq!(config["manifold.dev/generation"], "1");
    let route = &bodies[3];
    assert_eq!(route["status"]["path"], "/acme/store/mcp");
    assert_eq!(route["status"]["url"], "http://manifold-gateway.manifold-system.svc:8080/acme/store/mcp");
    assert_eq!(route["status"]["observedGeneration"], 1);
    for type_ in ["Accepted", "ResolvedRefs"] {
        assert_eq!(
            (condition(route, type_)["status"].as_str(), condition(route, type_)["observedGeneration"].as_i64()),
            (Some("True"), Some(1))
        );
    }

    // The same world again, before the watches show the new statuses, and after: no call.
    let (report, _) = reconcile(&mut reconciler, &world, vec![]).await;
    assert_eq!((&report.published, report.statuses, report.failed), (&None, 0, 0));
    world.servers[0].status = Some(object(bodies[2]["status"].clone()));
    world.routes[0].status = Some(object(bodies[3]["status"].clone()));
    let (report, _) = reconcile(&mut reconciler, &world, vec![]).await;
    assert_eq!((report.generation, &report.published, report.statuses, report.failed), (1, &None, 0, 0));
}

#[tokio::test]
async fn a_new_leader_keeps_each_servers_ready_until_its_own_probe_answers() {
    // The last leader found `weather` ready at this generation; this one has not asked yet.
    let ready = |generation: i64| {
        json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "offers 2 tool(s), 0 resource(s), 0 prompt(s)",
            "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}], "tools": 2, "resources": 0, "prompts": 0})
    };
    let mut world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    world.servers[0].status = Some(object(ready(1)));
    let (_, bodies) = first_reconcile(&mut None, &world).await;
    let kept = condition(&bodies[2], "Ready");
    assert_eq!(
        (kept["status"].as_str(), kept["lastTransitionTime"].as_str()),
        (Some("True"), Some("2026-01-01T00:00:00Z"))
    );
    assert_eq!(bodies[2]["status"]["tools"], 2);

    // Said of an older spec, it says nothing of this one: an Event, not a Warning.
    world.servers[0].status = Some(object(ready(0)));
    let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
    let event = (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
    let exchanges = vec![
        list(),
        apply(),
        status_of("mcpservers", "weather", answers[0].clone()),
        event,
        status_of("mcproutes", "store", answers[1].clone()),
    ];
    let (_, bodies) = reconcile(&mut None, &world, exchanges).await;
    let unknown = condition(&bodies[2], "Ready");
    assert_eq!((unknown["status"].as_str(), unknown["reason"].as_str()), (Some("False"), Some("Probing")));
    assert_eq!((bodies[3]["type"].as_str(), bodies[3]["reason"].as_str()), (Some("Normal"), Some("Probing")));
}

#[test]
fn references_are_found_wherever_the_specs_hold_them() {
    let keyed = server(
        "weather",
        json!({"url": "http://weather:8080/mcp", "headers": [{"name": "X-Key", "valueFrom": {"secretKeyRef": {"name": "weather-key", "key": "k"}}}]}),
    );
    let api: McpServer = object(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer",
        "metadata": {"name": "pets", "namespace": "globex"},
        "spec": {"openapi": {"configMapRef": {"name": "pets-doc", "key": "openapi.yaml"},
                              "auth": {"basic": {"secretRef": {"name": "pets-login"}}}}}}));
    let guarded = route(
        "store",
        "2026-01-01T00:00:00Z",
        json!({"authentication": {"apiKeys": {"secretRef": {"name": "keys"}}, "jwt": [{"issuer": "https://idp", "audiences": ["mcp"], "jwks": {"secretRef": {"name": "jwks", "key": "set"}}}]},
               "authorization": {"external": {"url": "http://pdp", "api": "permit", "secretRef": {"name": "permit", "key": "token"}}},
               "mounts": [{"server": "weather"}]}),
    );
    let exchanging = server(
        "crm",
        json!({"url": "http://crm:8080/mcp", "auth": {"tokenExchange": {"tokenUrl": "https://idp/token", "clientId": "gw",
               "clientAuthentication": "privateKeyJwt", "privateKeyRef": {"name": "crm-client", "key": "tls.key"}, "signingAlgorithm": "ES256"}}}),
    );
    let consenting = server(
        "github",
        json!({"url": "http://github:8080/mcp", "auth": {"oauth2AuthorizationCode": {"tokenUrl": "https://idp/token", "clientId": "gw",
               "clientSecretRef": {"name": "github-client", "key": "secret"}, "authorizationUrl": "https://idp/authorize",
               "redirectUrl": "https://mcp.example.com/.manifold/oauth2/callback"}}}),
    );
    let signing = server(
        "billing",
        json!({"url": "http://billing:8080/mcp", "auth": {"signedJwt": {"algorithm": "HS256", "keyRef": {"name": "billing-jwt", "key": "k"},
               "issuer": "gw", "audience": "billing"}}}),
    );
    let found = references(&[keyed, api, exchanging, consenting, signing], &[guarded]);
    let pairs = |names: &[(&str, &str)]| names.iter().map(|(n, m)| ObjectKey::new(*n, *m)).collect();
    assert_eq!(
        found.secrets,
        pairs(&[
            ("acme", "billing-jwt"),
            ("acme", "crm-client"),
            ("acme", "github-client"),
            ("acme", "jwks"),
            ("acme", "keys"),
            ("acme", "permit"),
            ("acme", "weather-key"),
            ("globex", "pets-login")
        ])
    );
    assert_eq!(found.config_maps, pairs(&[("globex", "pets-doc")]));
}

#[tokio::test]
async fn a_route_is_programmed_once_the_replicas_serve_its_generation() {
    use crate::programmed::Serving;
    let world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
    let replica = |generation| Replica {
        admin: "10.0.0.1:9090".into(),
        serving: Some(Serving {
            generation,
            hash: String::new(),
            routes: [(ObjectKey::new("acme", "store"), 1)].into(),
        }),
    };
    let mut reconciler = None;
    let (report, bodies) = first_reconcile_with(&mut reconciler, &world, &[replica(0)]).await;
    let pending = condition(&bodies[3], "Programmed");
    assert_eq!((pending["status"].as_str(), pending["reason"].as_str()), (Some("False"), Some("Pending")));
    assert_eq!(pending["message"], "waiting for every ready gateway replica to serve generation 1");
    assert_eq!((report.pending, report.programmed_after.len()), (1, 0));

    // The replica catches up: the route's status changes, and the transition is an Event.
    let event = (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
    let (report, bodies) = reconcile_with(
        &mut reconciler,
        &world,
        &[replica(1)],
        vec![status_of("mcproutes", "store", answers[1].clone()), event],
    )
    .await;
    let programmed = condition(&bodies[0], "Programmed");
    assert_eq!((programmed["status"].as_str(), programmed["reason"].as_str()), (Some("True"), Some("Programmed")));
    assert_eq!((bodies[1]["type"].as_str(), bodies[1]["reason"].as_str()), (Some("Normal"), Some("Programmed")));
    assert_eq!((report.pending, report.programmed_after.len()), (0, 1));
}

#[tokio::test]
async fn probed_servers_report_ready_and_counts_and_routes_their_visible_tools() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(manifold_samples::serve(manifold_samples::Sample::Math, listener));
    let math = server("math", json!({"url": format!("http://{address}/mcp")}));
    let down = server("down", json!({"url": "http://127.0.0.1:1/mcp"}));
    let calc = route(
        "calc",
        "2026-01-01T00:00:00Z",
        json!({"authentication": {"allowAnonymous": true}, "mounts": [{"server": "math", "tools": {"exclude": ["about"]}}]}),
    );
    let world = World { servers: vec![down.clone(), math.clone()], routes: vec![calc.clone()], ..World::default() };
    let mut prober = crate::probe::Prober::spawn(manifold_api::egress::Egress::default());
    let servers = world.servers_to_probe();
    let fresh = prober.want(&servers);
    prober.settled(&fresh, std::time::Duration::from_secs(20)).await;

    let event = (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
    let (client, server) = api_server(vec![
        list(),
        list(),
        apply(),
        status_of("mcpservers", "down", serde_json::to_value(&down).unwrap()),
        event,
        status_of("mcpservers", "math", serde_json::to_value(&math).unwrap()),
        status_of("mcproutes", "calc", serde_json::to_value(&calc).unwrap()),
    ]);
    let mut reconciler = Reconciler::new(client, "manifold", "manifold-system");
    reconciler.reconcile(&world, &[], &prober.probes(&servers), &now()).await.unwrap();
    let mut bodies = server.await.unwrap();
    bodies.remove(0); // reading what is published
    let unreachable = condition(&bodies[2], "Ready");
    assert_eq!((unreachable["status"].as_str(), unreachable["reason"].as_str()), (Some("False"), Some("Unreachable")));
    assert_eq!((bodies[3]["type"].as_str(), bodies[3]["reason"].as_str()), (Some("Warning"), Some("Unreachable")));
    let ready = condition(&bodies[4], "Ready");
    assert_eq!(ready["message"], "offers 3 tool(s), 0 resource(s), 0 prompt(s)");
    assert_eq!((bodies[4]["status"]["tools"].as_u64(), bodies[4]["status"]["prompts"].as_u64()), (Some(3), Some(0)));
    assert_eq!(bodies[5]["status"]["tools"], 2, "what a client sees: `about` is excluded");
}

#[tokio::test]
async fn servers_whose_credential_the_gateway_makes_are_ready_unprobed_saying_why() {
    let client =
        json!({"tokenUrl": "https://idp/token", "clientId": "gw", "clientSecretRef": {"name": "idp", "key": "secret"}});
    let with = |auth: Value| json!({"url": "http://127.0.0.1:1/mcp", "auth": auth});
    let servers = vec![
        server("crm", with(json!({"tokenExchange": client}))),
        server("reports", with(json!({"oauth2ClientCredentials": client}))),
        server("search", with(json!({"forwardCallerToken": {"audience": "search"}}))),
    ];
    let secret: Secret = object(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "idp", "namespace": "acme"}, "stringData": {"secret": "s"}}));
    let world = World { servers: servers.clone(), secrets: vec![secret], ..World::default() };
    let usable = world.servers_to_probe();
    assert_eq!(usable.len(), 3, "all three compile");
    let prober = crate::probe::Prober::spawn(manifold_api::egress::Egress::default());
    assert!(prober.want(&usable).is_empty(), "none is probed: nothing answers at 127.0.0.1:1 and nothing needs to");

    let statuses = servers.iter().map(|s| status_of("mcpservers", &s.name_any(), serde_json::to_value(s).unwrap()));
    let (_, bodies) = reconcile(&mut None, &world, [list(), apply()].into_iter().chain(statuses).collect()).await;
    let ready: Vec<(&str, &str, &str)> = bodies[2..]
        .iter()
        .map(|body| condition(body, "Ready"))
        .map(|c| (c["status"].as_str().unwrap(), c["reason"].as_str().unwrap(), c["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ready,
        [
            (
                "True",
                "ToolsPerCaller",
                "not probed: with tokenExchange the server answers each caller as that caller, so its tools are listed \
                 per caller, through a route"
            ),
            ("True", "NotProbed", "not probed: credentials obtained by the gateway (oauth2ClientCredentials)"),
            (
                "True",
                "ToolsPerCaller",
                "not probed: with forwardCallerToken the server answers each caller as that caller, so its tools are \
                 listed per caller, through a route"
            ),
        ]
    );
    assert!(bodies[2..].iter().all(|b| b["status"].get("tools").is_none()), "no count is made up");
}

#[tokio::test]
async fn an_unreadable_server_is_told_in_its_status_and_the_rest_goes_on() {
    let unreadable = Unreadable {
        object: ObjectRef { kind: Kind::McpServer, namespace: "acme".into(), name: "typo".into() },
        generation: Some(2),
        problem: manifold_api::manifests::typed::<McpServer>(serde_yaml::to_value(json!({"apiVersion": "manifold.dev/v1alpha1",
            "kind": "McpServer", "metadata": {"name": "typo"}, "spec": {"remote": {"url": "http://x", "transport": "websocket"}}})).unwrap())
        .unwrap_err(),
    };
    let world =
        World { servers: vec![weather()], routes: vec![store()], unreadable: vec![unreadable], ..World::default() };
    let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
    let event = (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
    let mut reconciler = None;
    let (report, bodies) = reconcile(
        &mut reconciler,
        &world,
        vec![
            list(),
            apply(),
            status_of("mcpservers", "typo", json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer", "metadata": {"name": "typo"}, "spec": {}})),
            event,
            status_of("mcpservers", "weather", answers[0].clone()),
            status_of("mcproutes", "store", answers[1].clone()),
        ],
    )
    .await;
    assert_eq!(report.generation, 1, "the route is served");
    let accepted = condition(&bodies[2], "Accepted");
    assert_eq!((accepted["status"].as_str(), accepted["reason"].as_str()), (Some("False"), Some("Invalid")));
    assert!(
        accepted["message"].as_str().unwrap().starts_with("spec.remote.transport: unknown variant `websocket`"),
        "{accepted}"
    );
    assert_eq!(bodies[2]["status"]["observedGeneration"], 2);
}

#[tokio::test]
async fn a_restarted_operator_goes_on_from_what_is_published() {
    // Generation 5 is published, with the route valid; since then the route was broken.
    let valid = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    let compiled = compile(&valid.inputs(BTreeMap::new()), None);
    let mut published = compiled.config.clone();
    published.generation = 5;
    let shards = manifold_api::publish::secrets(&published, "manifold", "manifold-system").unwrap();
    let listed = json!({"apiVersion": "v1", "kind": "SecretList", "metadata": {}, "items": shards});
    let mut broken = store();
    broken.spec.path = Some("no-slash".into());
    let world = World { servers: vec![weather()], routes: vec![broken.clone()], ..World::default() };

    let (client, server) = api_server(vec![
        (Method::GET, LIST.into(), listed),
        status_of("mcpservers", "weather", serde_json::to_value(weather()).unwrap()),
        status_of("mcproutes", "store", serde_json::to_value(&broken).unwrap()),
        (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({})),
    ]);
    let mut reconciler = Reconciler::new(client, "manifold", "manifold-system");
    let report = reconciler.reconcile(&world, &[], &Probes::default(), &now()).await.unwrap();
    let bodies = server.await.unwrap();
    assert_eq!((report.generation, &report.published), (5, &None), "nothing to publish: the route stays as it was");
    let accepted = condition(&bodies[2], "Accepted");
    assert_eq!(accepted["status"], "False");
    assert!(accepted["message"].as_str().unwrap().ends_with("(the last valid version of this route is still served)"));
}

#[tokio::test]
async fn a_route_mounting_a_missing_server_says_which() {
    let world = World { routes: vec![store()], ..World::default() };
    let answer = serde_json::to_value(store()).unwrap();
    let mut reconciler = None;
    let event = (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
    let (_, bodies) =
        reconcile(&mut reconciler, &world, vec![list(), apply(), status_of("mcproutes", "store", answer), event]).await;
    let recorded = &bodies[3];
    assert_eq!((recorded["type"].as_str(), recorded["reason"].as_str()), (Some("Warning"), Some("RefNotFound")));
    assert_eq!(recorded["regarding"]["name"], "store");
    assert_eq!(recorded["reportingController"], "manifold-operator");
    assert_eq!(
        recorded["note"],
        "ResolvedRefs=False: spec.mounts[0].server: McpServer `weather` does not exist in namespace acme"
    );
    let resolved = condition(&bodies[2], "ResolvedRefs");
    assert_eq!((resolved["status"].as_str(), resolved["reason"].as_str()), (Some("False"), Some("RefNotFound")));
    assert_eq!(resolved["message"], "spec.mounts[0].server: McpServer `weather` does not exist in namespace acme");
}

#[tokio::test]
async fn a_rotated_secret_is_republished() {
    let keyed = server(
        "weather",
        json!({"url": "http://weather.acme.svc:8080/mcp", "headers": [{"name": "X-Api-Key", "valueFrom": {"secretKeyRef": {"name": "weather", "key": "key"}}}]}),
    );
    let secret = |key: &str| -> Secret {
        object(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "weather", "namespace": "acme"}, "stringData": {"key": key}}),
        )
    };
    let mut world =
        World { servers: vec![keyed.clone()], routes: vec![store()], secrets: vec![secret("one")], ..World::default() };
    let mut reconciler = None;
    let (_, first) = first_reconcile(&mut reconciler, &world).await;
    world.secrets = vec![secret("two")];
    let (report, again) = reconcile(&mut reconciler, &world, vec![list(), apply()]).await;
    assert_eq!((report.generation, report.statuses, report.failed), (2, 0, 0), "a new generation, no status change");
    assert_ne!(first[1]["data"], again[1]["data"], "the new key is in the published bytes");
    assert_eq!(again[1]["metadata"]["annotations"]["manifold.dev/generation"], "2");
}

#[tokio::test]
async fn of_two_routes_claiming_one_path_the_older_wins() {
    let spec =
        json!({"path": "/shared/mcp", "authentication": {"allowAnonymous": true}, "mounts": [{"server": "weather"}]});
    let (older, newer) =
        (route("first", "2026-01-01T00:00:00Z", spec.clone()), route("second", "2026-02-01T00:00:00Z", spec));
    let world = World { servers: vec![weather()], routes: vec![newer.clone(), older.clone()], ..World::default() };
    let mut reconciler = None;
    let (_, bodies) = reconcile(
        &mut reconciler,
        &world,
        vec![
            list(),
            apply(),
            status_of("mcpservers", "weather", serde_json::to_value(weather()).unwrap()),
            status_of("mcproutes", "first", serde_json::to_value(&older).unwrap()),
            status_of("mcproutes", "second", serde_json::to_value(&newer).unwrap()),
            (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({})),
        ],
    )
    .await;
    assert_eq!(
        (bodies[5]["reason"].as_str(), bodies[5]["regarding"]["name"].as_str()),
        (Some("PathConflict"), Some("second"))
    );
    assert_eq!(condition(&bodies[3], "Accepted")["status"], "True");
    let refused = condition(&bodies[4], "Accepted");
    assert_eq!((refused["status"].as_str(), refused["reason"].as_str()), (Some("False"), Some("PathConflict")));
    assert!(refused["message"].as_str().unwrap().contains("acme/first"), "{refused}");
    assert_eq!(bodies[3]["status"]["url"], "http://manifold-gateway.manifold-system.svc:8080/shared/mcp");
    let (path, url) = (bodies[4]["status"].get("path"), bodies[4]["status"].get("url"));
    assert_eq!((path, url), (None, None), "the path is the older route's: the newer is reached nowhere");
}

/// An McpServer of `namespace` sending a header whose value is `value`, read from a Secret.
fn keyed_world(namespace: &str, value: String) -> (McpServer, McpRoute, Secret) {
    let server = object(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer",
        "metadata": {"name": "weather", "namespace": namespace, "generation": 1},
        "spec": {"remote": {"url": "http://weather:8080/mcp", "headers": [{"name": "X-Key", "valueFrom": {"secretKeyRef": {"name": "key", "key": "k"}}}]}}}));
    let route = object(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpRoute",
        "metadata": {"name": "store", "namespace": namespace, "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"authentication": {"allowAnonymous": true}, "mounts": [{"server": "weather"}]}}));
    let secret = object(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "key", "namespace": namespace}, "stringData": {"k": value}}));
    (server, route, secret)
}

#[tokio::test]
async fn a_tenant_too_large_for_a_secret_is_refused_and_the_others_are_published() {
    // 2.5 MB that compresses to about 1.5 MB: globex's route alone cannot fit in a Secret.
    let mut seed = 7u64;
    let noise: String = (0..2_500_000)
        .map(|_| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            char::from(b'a' + u8::try_from((seed >> 33) % 26).unwrap())
        })
        .collect();
    let (acme_server, acme_route, acme_key) = keyed_world("acme", "small".into());
    let (globex_server, globex_route, globex_key) = keyed_world("globex", noise);
    let world = World {
        servers: vec![acme_server.clone(), globex_server.clone()],
        routes: vec![acme_route.clone(), globex_route.clone()],
        secrets: vec![acme_key, globex_key],
        ..World::default()
    };
    let status_in = |namespace: &str, kind: &str, name: &str, answer: Value| {
        let uri = format!(
            "/apis/manifold.dev/v1alpha1/namespaces/{namespace}/{kind}/{name}/status?&force=true&fieldManager=manifold-operator"
        );
        (Method::PATCH, uri, answer)
    };
    let event =
        |namespace: &str| (Method::POST, format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events?"), json!({}));
    let mut reconciler = None;
    let (report, bodies) = reconcile(
        &mut reconciler,
        &world,
        vec![
            list(),
            apply(),
            status_in("acme", "mcpservers", "weather", serde_json::to_value(&acme_server).unwrap()),
            status_in("globex", "mcpservers", "weather", serde_json::to_value(&globex_server).unwrap()),
            status_in("acme", "mcproutes", "store", serde_json::to_value(&acme_route).unwrap()),
            status_in("globex", "mcproutes", "store", serde_json::to_value(&globex_route).unwrap()),
            event("globex"),
        ],
    )
    .await;
    assert_eq!(report.generation, 1);
    let published: Secret = serde_json::from_value(bodies[1].clone()).unwrap();
    let config = manifold_api::publish::assemble([&published]).unwrap();
    assert_eq!(config.routes.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/acme/store/mcp"]);
    assert_eq!(condition(&bodies[4], "Accepted")["status"], "True");
    let refused = condition(&bodies[5], "Accepted");
    assert_eq!((refused["status"].as_str(), refused["reason"].as_str()), (Some("False"), Some("TooLarge")));
    assert!(
        refused["message"].as_str().unwrap().starts_with("the routes of namespace globex compress to "),
        "{refused}"
    );
    assert_eq!(bodies[5]["status"].get("url"), None, "not served");
    assert_eq!(
        (bodies[6]["reason"].as_str(), bodies[6]["regarding"]["namespace"].as_str()),
        (Some("TooLarge"), Some("globex"))
    );
}

#[tokio::test]
async fn a_refused_status_write_is_tried_again_and_a_recreated_object_gets_its_status() {
    let world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
    let uri = |kind: &str, name: &str| {
        format!(
            "/apis/manifold.dev/v1alpha1/namespaces/acme/{kind}/{name}/status?&force=true&fieldManager=manifold-operator"
        )
    };
    let unavailable = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "ServiceUnavailable", "code": 503, "message": "etcd is slow"});
    let (client, server) = api_server_with_status(vec![
        (Method::GET, LIST.into(), 200, list().2),
        (Method::GET, LIST.into(), 200, list().2),
        (Method::PATCH, APPLY.into(), 200, json!({})),
        (Method::PATCH, uri("mcpservers", "weather"), 503, unavailable),
        (Method::PATCH, uri("mcproutes", "store"), 200, answers[1].clone()),
    ]);
    let mut fresh = Reconciler::new(client, "manifold", "manifold-system");
    let report = fresh.reconcile(&world, &[], &Probes::default(), &now()).await.unwrap();
    server.await.unwrap();
    assert_eq!((report.statuses, report.failed), (1, 1), "one refusal stops no other status");
    let mut reconciler = Some(fresh);
    let (report, _) =
        reconcile(&mut reconciler, &world, vec![status_of("mcpservers", "weather", answers[0].clone())]).await;
    assert_eq!((report.statuses, report.failed), (1, 0), "the refused one is written next time");
    let (report, _) = reconcile(&mut reconciler, &world, vec![]).await;
    assert_eq!((report.statuses, report.failed), (0, 0));

    // The route is deleted and created again under the same name, at the same generation.
    let mut again = world.clone();
    again.routes[0].metadata.uid = Some("another".into());
    let (report, _) =
        reconcile(&mut reconciler, &again, vec![status_of("mcproutes", "store", answers[1].clone())]).await;
    assert_eq!(report.statuses, 1, "a new object: its status is new");
}

/// The operator without permission to record Events, or to write one kind of status: the
/// config is still published, and every other status written.
#[tokio::test]
async fn refused_events_and_status_writes_hold_nothing_else_back() {
    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403, "message": "forbidden"});
    let answer = |(method, uri, answer): (Method, String, Value)| (method, uri, 200, answer);
    let events = "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned();
    // A route mounting a missing server: its Warning Event is refused.
    let world = World { routes: vec![store()], ..World::default() };
    let (client, server) = api_server_with_status(vec![
        answer(list()),
        answer(list()),
        answer(apply()),
        answer(status_of("mcproutes", "store", serde_json::to_value(store()).unwrap())),
        (Method::POST, events, 403, forbidden.clone()),
    ]);
    let report = Reconciler::new(client, "manifold", "manifold-system")
        .reconcile(&world, &[], &Probes::default(), &now())
        .await
        .unwrap();
    server.await.unwrap();
    assert_eq!((report.published.is_some(), report.statuses, report.failed), (true, 1, 0), "an Event is best effort");

    // McpServer statuses refused: published, and the route's status written.
    let world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    let (client, server) = api_server_with_status(vec![
        answer(list()),
        answer(list()),
        answer(apply()),
        (Method::PATCH, status_of("mcpservers", "weather", json!({})).1, 403, forbidden),
        answer(status_of("mcproutes", "store", serde_json::to_value(store()).unwrap())),
    ]);
    let report = Reconciler::new(client, "manifold", "manifold-system")
        .reconcile(&world, &[], &Probes::default(), &now())
        .await
        .unwrap();
    server.await.unwrap();
    assert_eq!((report.published.is_some(), report.statuses, report.failed), (true, 1, 1));
}

#[tokio::test]
async fn generations_go_on_above_a_publish_cut_short() {
    // Shard 0 of 2 at generation 7 survived; shard 1 never came.
    let valid = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    let mut cut = compile(&valid.inputs(BTreeMap::new()), None).config;
    cut.generation = 7;
    let mut shard = manifold_api::publish::secrets(&cut, "manifold", "manifold-system").unwrap().remove(0);
    shard.metadata.annotations.as_mut().unwrap().insert("manifold.dev/shard".into(), "0/2".into());
    let listed = json!({"apiVersion": "v1", "kind": "SecretList", "metadata": {}, "items": [shard]});
    let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
    let (client, server) = api_server(vec![
        (Method::GET, LIST.into(), listed.clone()),
        (Method::GET, LIST.into(), listed),
        apply(),
        status_of("mcpservers", "weather", answers[0].clone()),
        status_of("mcproutes", "store", answers[1].clone()),
    ]);
    let mut reconciler = Reconciler::new(client, "manifold", "manifold-system");
    let report = reconciler.reconcile(&valid, &[], &Probes::default(), &now()).await.unwrap();
    let bodies = server.await.unwrap();
    assert_eq!(report.generation, 8, "never back to 1: gateways would take it for old news");
    assert_eq!(bodies[2]["metadata"]["annotations"]["manifold.dev/generation"], "8");
    assert_eq!(bodies[2]["metadata"]["annotations"]["manifold.dev/shard"], "0/1");
}

#[tokio::test]
async fn a_failed_publish_is_retried_at_its_generation_and_a_change_back_gets_a_new_one() {
    let world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    let broken = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500, "message": "etcd"});
    let (client, server) = api_server_with_status(vec![
        (Method::GET, LIST.into(), 200, list().2),
        (Method::GET, LIST.into(), 200, list().2),
        (Method::PATCH, APPLY.into(), 500, broken.clone()),
    ]);
    let mut fresh = Reconciler::new(client, "manifold", "manifold-system");
    let failed = fresh.reconcile(&world, &[], &Probes::default(), &now()).await;
    assert!(matches!(failed, Err(PublishError::Api(_))), "{failed:?}");
    let first = server.await.unwrap();
    let mut reconciler = Some(fresh);
    let (report, again) = first_reconcile(&mut reconciler, &world).await;
    assert_eq!(report.generation, 1, "the same config, tried again, keeps its generation");
    assert_eq!(again[1], first[2]);

    // A change whose publish is cut short, then the world goes back: generation 2 may be
    // half out, so going back is generation 3, not 1 again.
    let mut changed = world.clone();
    changed.routes[0].spec.path = Some("/elsewhere/mcp".into());
    let (client, server) = api_server_with_status(vec![
        (Method::GET, LIST.into(), 200, list().2),
        (Method::PATCH, APPLY.into(), 500, broken),
    ]);
    let mut cut = reconciler.take().unwrap();
    cut.client = client.clone();
    cut.events = Recorder::new(client, Reporter { controller: "manifold-operator".into(), instance: None });
    assert!(cut.reconcile(&changed, &[], &Probes::default(), &now()).await.is_err());
    server.await.unwrap();
    reconciler = Some(cut);
    let (report, back) = reconcile(&mut reconciler, &world, vec![list(), apply()]).await;
    assert_eq!(
        (report.generation, back[1]["metadata"]["annotations"]["manifold.dev/generation"].as_str()),
        (3, Some("3"))
    );
}

#[tokio::test]
async fn generations_go_on_above_what_the_gateways_serve() {
    // The Secrets are gone, but a gateway still serves generation 57.
    use crate::programmed::Serving;
    let world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    let replica = Replica {
        admin: "10.0.0.1:9090".into(),
        serving: Some(Serving { generation: 57, hash: String::new(), routes: BTreeMap::new() }),
    };
    let mut reconciler = None;
    let (report, bodies) = first_reconcile_with(&mut reconciler, &world, &[replica]).await;
    assert_eq!(report.generation, 58);
    assert_eq!(bodies[1]["metadata"]["annotations"]["manifold.dev/generation"], "58");
}

#[tokio::test]
async fn a_status_changed_by_someone_else_is_set_right() {
    let mut world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
    let mut reconciler = None;
    let (_, bodies) = first_reconcile(&mut reconciler, &world).await;
    world.routes[0].status = Some(object(bodies[3]["status"].clone()));
    let (report, _) = reconcile(&mut reconciler, &world, vec![]).await;
    assert_eq!(report.statuses, 0, "shown as written");
    world.routes[0].status.as_mut().unwrap().url = Some("http://wrong".into());
    let (report, fixed) =
        reconcile(&mut reconciler, &world, vec![status_of("mcproutes", "store", answers[1].clone())]).await;
    assert_eq!(report.statuses, 1);
    assert_eq!(fixed[0]["status"], bodies[3]["status"]);
}

#[tokio::test]
async fn a_status_changed_by_someone_else_before_the_watch_showed_ours_is_set_right() {
    let mut world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    world.routes[0].metadata.resource_version = Some("10".into());
    let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
    let mut reconciler = None;
    let (_, bodies) = first_reconcile(&mut reconciler, &world).await;
    // The watch never shows our write: an older leader's late write lands after it.
    let mut theirs: McpRouteStatus = object(bodies[3]["status"].clone());
    theirs.url = Some("http://old-leader".into());
    world.routes[0].status = Some(theirs);
    world.routes[0].metadata.resource_version = Some("12".into());
    let (report, fixed) =
        reconcile(&mut reconciler, &world, vec![status_of("mcproutes", "store", answers[1].clone())]).await;
    assert_eq!(report.statuses, 1, "the watch moved past our write: what it shows is what the object says");
    assert_eq!(fixed[0]["status"], bodies[3]["status"]);
}

#[tokio::test]
async fn a_change_undone_before_the_watch_shows_it_is_undone_on_the_server_too() {
    let mut world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    let answers = [serde_json::to_value(weather()).unwrap(), serde_json::to_value(store()).unwrap()];
    let mut reconciler = None;
    let (_, valid) = first_reconcile(&mut reconciler, &world).await;
    // The watch shows the valid status. The route breaks (written), and is mended
    // before the watch shows the broken status: the server holds it, so write again.
    world.routes[0].status = Some(object(valid[3]["status"].clone()));
    let mut broken = world.clone();
    broken.routes[0].spec.path = Some("no-slash".into());
    let event = (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
    let (report, _) =
        reconcile(&mut reconciler, &broken, vec![status_of("mcproutes", "store", answers[1].clone()), event]).await;
    assert_eq!(report.statuses, 1);
    let event = (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
    let (report, mended) =
        reconcile(&mut reconciler, &world, vec![status_of("mcproutes", "store", answers[1].clone()), event]).await;
    assert_eq!(report.statuses, 1, "the object's own copy is older than what was written");
    assert_eq!(condition(&mended[0], "Accepted")["status"], "True");
}

#[tokio::test]
async fn an_unreadable_object_created_again_gets_its_status_again() {
    let typo = ObjectRef { kind: Kind::McpServer, namespace: "acme".into(), name: "typo".into() };
    let problem = manifold_api::manifests::typed::<McpServer>(serde_yaml::to_value(json!({"apiVersion": "manifold.dev/v1alpha1",
        "kind": "McpServer", "metadata": {"name": "typo"}, "spec": {"remote": {"url": "http://x", "transport": "websocket"}}})).unwrap())
    .unwrap_err();
    let world = |uid: &str| World {
        unreadable: vec![Unreadable { object: typo.clone(), generation: Some(1), problem: problem.clone() }],
        unreadable_seen: BTreeMap::from([(typo.clone(), (Some(uid.to_owned()), None))]),
        ..World::default()
    };
    let answer =
        json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer", "metadata": {"name": "typo"}, "spec": {}});
    let event = || (Method::POST, "/apis/events.k8s.io/v1/namespaces/acme/events?".to_owned(), json!({}));
    let mut reconciler = None;
    let (report, _) = reconcile(
        &mut reconciler,
        &world("first"),
        vec![list(), apply(), status_of("mcpservers", "typo", answer.clone()), event()],
    )
    .await;
    assert_eq!(report.statuses, 1);
    let (report, _) = reconcile(&mut reconciler, &world("first"), vec![]).await;
    assert_eq!((report.statuses, report.failed), (0, 0));
    let (report, _) =
        reconcile(&mut reconciler, &world("second"), vec![status_of("mcpservers", "typo", answer), event()]).await;
    assert_eq!(report.statuses, 1, "deleted and created again: a new object");
}

#[tokio::test]
async fn a_replica_whose_lease_lapsed_writes_nothing() {
    let world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    let (client, server) = api_server(vec![list(), list()]);
    let mut reconciler = Reconciler::new(client, "manifold", "manifold-system");
    reconciler.leadership = Leadership::lapsed();
    let result = reconciler.reconcile(&world, &[], &Probes::default(), &now()).await;
    assert!(matches!(result, Err(PublishError::NotLeading)), "{result:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn a_leader_change_hands_over_without_a_write() {
    // Replica A leads: it publishes and writes both statuses, which the watches then show.
    let mut world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    let mut a = None;
    let (_, bodies) = first_reconcile(&mut a, &world).await;
    let shard = bodies[1].clone();
    world.servers[0].status = Some(object(bodies[2]["status"].clone()));
    world.routes[0].status = Some(object(bodies[3]["status"].clone()));

    // A's Lease lapses while the world changes: A writes nothing more.
    let mut changed = world.clone();
    changed.routes[0].spec.mounts[0].prefix = Some("wx".into());
    changed.routes[0].metadata.generation = Some(2);
    let (client, server) = api_server(vec![list()]);
    let mut old = a.take().unwrap();
    old.client = client;
    old.leadership = Leadership::lapsed();
    let refused = old.reconcile(&changed, &[], &Probes::default(), &now()).await;
    assert!(matches!(refused, Err(PublishError::NotLeading)), "{refused:?}");
    server.await.unwrap();

    // Replica B leads: it reads what A published, and an unchanged world costs no write.
    let listed = json!({"apiVersion": "v1", "kind": "SecretList", "metadata": {}, "items": [shard]});
    let (client, server) = api_server(vec![(Method::GET, LIST.into(), listed)]);
    let mut b = Reconciler::new(client, "manifold", "manifold-system");
    let report = b.reconcile(&world, &[], &Probes::default(), &now()).await.unwrap();
    server.await.unwrap();
    assert_eq!((report.generation, &report.published, report.statuses, report.failed), (1, &None, 0, 0));

    // The change A could not make, B makes, at the next generation.
    let mut b = Some(b);
    let answer = serde_json::to_value(&changed.routes[0]).unwrap();
    let (report, bodies) =
        reconcile(&mut b, &changed, vec![list(), apply(), status_of("mcproutes", "store", answer)]).await;
    assert_eq!((report.generation, report.statuses), (2, 1));
    assert_eq!(bodies[1]["metadata"]["annotations"]["manifold.dev/generation"], "2");
}

#[tokio::test]
async fn a_config_secret_changed_behind_the_operators_back_is_written_again() {
    let world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    let mut reconciler = None;
    let (_, first) = first_reconcile(&mut reconciler, &world).await;
    let ours = fingerprint(&serde_json::from_value(first[1]["metadata"]["annotations"].clone()).unwrap()).unwrap();
    let operator = reconciler.as_mut().unwrap();
    assert!(!operator.shard_changed("manifold-gateway-config", Some(&ours)), "the watch showing our own write");
    assert!(!operator.shard_changed("manifold-gateway-config-1", None), "a shard we deleted");
    assert!(operator.shard_changed("manifold-gateway-config", None), "deleted by someone");
    let (report, again) = reconcile(&mut reconciler, &world, vec![list(), apply()]).await;
    assert_eq!((report.generation, report.published.unwrap().applied), (1, 1));
    assert_eq!(again[1], first[1], "the same bytes at the same generation");
    let (report, _) = reconcile(&mut reconciler, &world, vec![]).await;
    assert_eq!(report.published, None, "checked once");
}

#[tokio::test]
async fn a_reconcile_is_one_trace_of_compile_publish_and_each_status_write() {
    use opentelemetry::context::FutureExt;
    use opentelemetry::trace::TraceContextExt;

    use crate::spans::testing::{exporter, of_trace, tree};

    exporter();
    let world = World { servers: vec![weather()], routes: vec![store()], ..World::default() };
    let pass = crate::spans::reconcile();
    let trace = pass.span().span_context().trace_id();
    assert!(pass.span().span_context().is_sampled(), "the test provider records every span");
    let mut reconciler = None;
    let (report, _) = first_reconcile(&mut reconciler, &world).with_context(pass.clone()).await;
    assert_eq!((report.generation, report.statuses), (1, 2));
    drop(pass);

    let spans = of_trace(trace);
    let pairs = |names: &[(&str, &str)]| names.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(
        tree(&spans),
        pairs(&[
            ("compile", "reconcile"),
            ("publish", "reconcile"),
            ("reconcile", ""),
            ("status write", "reconcile"),
            ("status write", "reconcile"),
        ])
    );
    let mut written: Vec<Vec<String>> = spans
        .iter()
        .filter(|s| s.name == "status write")
        .map(|s| s.attributes.iter().map(|kv| format!("{}={}", kv.key, kv.value)).collect())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            ["k8s.namespace.name=acme", "manifold.kind=McpRoute", "manifold.name=store"],
            ["k8s.namespace.name=acme", "manifold.kind=McpServer", "manifold.name=weather"],
        ]
    );
    let publish = spans.iter().find(|s| s.name == "publish").expect("a publish span");
    let generation = publish.attributes.iter().find(|kv| kv.key.as_str() == "manifold.config.generation");
    assert_eq!(generation.map(|kv| kv.value.to_string()), Some("1".to_owned()));
}
