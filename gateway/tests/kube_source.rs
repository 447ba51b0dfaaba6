//! `--kube`: a real gateway whose Kubernetes client is kube's `tower_test` mock. Each test plays
//! the API server: it asserts every call the gateway makes (method, path, query), answers it,
//! and checks what the gateway then serves.
//!
//! The watcher makes its next call only after the gateway has handled the events of the last
//! answer, so "the next call arrived" is the point where the effect of an answer can be checked.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::client::Body;
use manifold_api::GatewayConfig;
use manifold_api::config::{AuthnConfig, MountConfig, RemoteUpstream, RouteConfig, ToolPolicy, Transport, Upstream};
use manifold_api::publish;
use manifold_gateway::metrics::{Load, LoadLabels};
use manifold_gateway::{ConfigSource, KubeSource, Running, Settings};
use serde_json::json;
use tower_test::mock::{self, Handle, SendResponse};

const NAMESPACE: &str = "manifold-system";
const RELEASE: &str = "manifold";
/// Where the shards are: Secrets in the gateway's namespace.
const SECRETS: &str = "/api/v1/namespaces/manifold-system/secrets";
/// Only this release's shards.
const SELECTOR: (&str, &str) = ("labelSelector", "manifold.dev/gateway-config=manifold");

/// The list call, in pages of 500.
fn list_call() -> Call<'static> {
    (SECRETS, vec![SELECTOR, ("limit", "500")])
}

/// The watch call that follows a list (or a watch) ending at `resource_version`.
fn watch_call(resource_version: &str) -> Call<'_> {
    (
        SECRETS,
        vec![
            ("watch", "true"),
            ("timeoutSeconds", "290"),
            SELECTOR,
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
        ],
    )
}

/// A GET: path, and query parameters in order.
type Call<'a> = (&'a str, Vec<(&'a str, &'a str)>);

/// The API server's side of the mock.
struct ApiServer(Handle<Request<Body>, Response<Body>>);

impl ApiServer {
    /// The gateway's next call, which must be a GET of `call`.
    async fn expect(&mut self, (path, query): Call<'_>) -> SendResponse<Response<Body>> {
        let (request, respond) = tokio::time::timeout(Duration::from_secs(5), self.0.next_request())
            .await
            .unwrap_or_else(|_| panic!("the gateway did not call GET {path} {query:?} within 5 s"))
            .expect("the client is alive");
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri().path(), path);
        let sent: Vec<(String, String)> =
            url::form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes()).into_owned().collect();
        let expected: Vec<(String, String)> = query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert_eq!(sent, expected, "query of GET {path}");
        respond
    }
}

fn route(name: &str) -> RouteConfig {
    RouteConfig {
        namespace: "acme".into(),
        name: name.into(),
        path: format!("/acme/{name}/mcp"),
        hostnames: vec![],
        allowed_origins: vec![],
        mounts: vec![MountConfig {
            server: "weather".into(),
            prefix: "weather".into(),
            tools: ToolPolicy::default(),
            // Never called: these tests look at what is served, not at upstreams.
            upstream: Upstream::Remote(RemoteUpstream {
                url: "http://127.0.0.1:1/mcp".into(),
                transport: Transport::StreamableHttp,
                headers: vec![],
                auth: None,
                timeout_ms: 1000,
                resilience: Default::default(),
            }),
        }],
        authentication: AuthnConfig { allow_anonymous: true, ..AuthnConfig::default() },
        authorization: None,
        audit_arguments: false,
        rate_limits: vec![],
        caching: Default::default(),
        resilience: Default::default(),
        compatibility: None,
    }
}

/// Generation 1 serves `acme/tools`; generation 2 adds `acme/weather`.
fn generations() -> (GatewayConfig, GatewayConfig) {
    let first = GatewayConfig::new(vec![route("tools")], None);
    let second = GatewayConfig::new(vec![route("tools"), route("weather")], Some(&first));
    assert_eq!((first.generation, second.generation), (1, 2));
    (first, second)
}

/// The Secrets the operator publishes for `config`, as the API server returns them.
fn published(config: &GatewayConfig, resource_version: &str) -> Vec<Secret> {
    let mut secrets = publish::secrets(config, RELEASE, NAMESPACE).expect("fits");
    for secret in &mut secrets {
        secret.metadata.resource_version = Some(resource_version.into());
    }
    secrets
}

fn list(resource_version: &str, items: &[Secret]) -> Response<Body> {
    let list = json!({
        "apiVersion": "v1", "kind": "SecretList",
        "metadata": {"resourceVersion": resource_version},
        "items": items,
    });
    Response::new(Body::from(serde_json::to_vec(&list).unwrap()))
}

/// A watch answer carrying `events` and then ending, as a watch does at its timeout.
fn events(events: &[(&str, &Secret)]) -> Response<Body> {
    let mut body = Vec::new();
    for (kind, object) in events {
        serde_json::to_writer(&mut body, &json!({"type": kind, "object": object})).unwrap();
        body.push(b'\n');
    }
    Response::new(Body::from(body))
}

async fn start() -> (Running, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, NAMESPACE);
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        ..Settings::default()
    };
    let source = KubeSource { client, namespace: NAMESPACE.into(), release: RELEASE.into() };
    let running = manifold_gateway::start(settings, ConfigSource::Kube(source)).await.expect("gateway starts");
    (running, ApiServer(handle))
}

/// Status and body of a GET on the admin listener.
async fn admin(addr: SocketAddr, path: &str) -> (u16, String) {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (status, body)
    })
    .await
    .unwrap()
}

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "not within 5 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn generation(running: &Running) -> u64 {
    running.gateway.snapshot.load().config.generation
}

fn loads(running: &Running, outcome: &str) -> u64 {
    let outcome = match outcome {
        "applied" => Load::Applied,
        "rejected" => Load::Rejected,
        other => panic!("no such load outcome: {other}"),
    };
    running.gateway.metrics.config_loads.with(&LoadLabels { outcome }).get()
}

fn ready(running: &Running) -> bool {
    running.gateway.ready.load(Ordering::Acquire)
}

/// Lists generation 1 and leaves the first watch open; returns that watch's responder.
async fn serve_first(api: &mut ApiServer, first: &GatewayConfig) -> SendResponse<Response<Body>> {
    api.expect(list_call()).await.send_response(list("100", &published(first, "7")));
    api.expect(watch_call("100")).await
}

#[tokio::test]
async fn initial_load_serves_the_listed_config() {
    let (running, mut api) = start().await;
    let (first, _) = generations();

    let listing = api.expect(list_call()).await;
    assert!(!ready(&running));
    assert_eq!(admin(running.admin_addr, "/readyz").await.0, 503, "not ready before a config is loaded");
    listing.send_response(list("100", &published(&first, "7")));
    let _watch = api.expect(watch_call("100")).await;

    eventually("ready", || ready(&running)).await;
    let snapshot = running.gateway.snapshot.load();
    assert_eq!(*snapshot.config, first);
    assert!(snapshot.route(None, "/acme/tools/mcp").is_some(), "the route is served");
    assert_eq!((loads(&running, "applied"), loads(&running, "rejected")), (1, 0));
    assert_eq!(running.gateway.metrics.config_generation.get(), 1);
    assert_eq!(admin(running.admin_addr, "/readyz").await, (200, "ready".into()));
    let (status, body) = admin(running.admin_addr, "/status").await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200);
    assert_eq!((body["generation"].as_u64(), body["hash"].as_str()), (Some(1), Some(first.hash.as_str())));
    running.shutdown().await;
}

#[tokio::test]
async fn status_lists_only_the_routes_built() {
    // A route the gateway cannot build (a tool glob compile would have refused): served to
    // nobody, so `/status`, which the operator's `Programmed` reads, must not list it.
    let mut broken = route("broken");
    broken.mounts[0].tools.include = vec!["[".into()];
    let config = GatewayConfig::new(vec![broken, route("tools")], None);
    let (running, mut api) = start().await;
    let _watch = serve_first(&mut api, &config).await;
    eventually("ready", || ready(&running)).await;
    let (_, body) = admin(running.admin_addr, "/status").await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let routes: Vec<&str> = body["routes"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(routes, ["tools"]);
    assert_eq!(body["generation"], 1);
    running.shutdown().await;
}

#[tokio::test]
async fn an_update_is_swapped_in() {
    let (running, mut api) = start().await;
    let (first, second) = generations();
    let watching = serve_first(&mut api, &first).await;
    eventually("generation 1 served", || ready(&running)).await;

    let update = published(&second, "101");
    watching.send_response(events(&[("MODIFIED", &update[0])]));
    // The watch ended after the event; the next one resumes from the event's version.
    let _watch = api.expect(watch_call("101")).await;

    eventually("generation 2 served", || generation(&running) == 2).await;
    let snapshot = running.gateway.snapshot.load();
    assert_eq!(*snapshot.config, second);
    assert!(snapshot.route(None, "/acme/weather/mcp").is_some(), "the new route is served");
    assert_eq!((loads(&running, "applied"), loads(&running, "rejected")), (2, 0));
    assert_eq!(running.gateway.metrics.config_generation.get(), 2);
    running.shutdown().await;
}

#[tokio::test]
async fn the_same_config_republished_at_a_new_generation_is_served_at_it() {
    // A new leader publishes what was served at a generation of its own, and waits for every
    // replica to report that generation before calling routes Programmed.
    let (running, mut api) = start().await;
    let (first, _) = generations();
    let watching = serve_first(&mut api, &first).await;
    eventually("generation 1 served", || ready(&running)).await;

    let mut again = first.clone();
    again.generation = 7;
    assert_eq!(again.hash, first.hash, "the same content");
    watching.send_response(events(&[("MODIFIED", &published(&again, "101")[0])]));
    let _watch = api.expect(watch_call("101")).await;
    eventually("generation 7 served", || generation(&running) == 7).await;
    let (_, body) = admin(running.admin_addr, "/status").await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["generation"], 7);
    running.shutdown().await;
}

#[tokio::test]
async fn a_corrupt_update_is_ignored_with_a_log_line_and_the_last_config_keeps_serving() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt().with_writer(logs.clone()).with_ansi(false).finish();
    // The gateway's config task runs on this test's (single-threaded) runtime, so on this thread.
    let _logging = tracing::subscriber::set_default(subscriber);
    let (running, mut api) = start().await;
    let (first, second) = generations();
    let watching = serve_first(&mut api, &first).await;
    eventually("generation 1 served", || ready(&running)).await;

    let mut corrupt = published(&second, "101").remove(0);
    corrupt.data.as_mut().unwrap().insert(publish::DATA_KEY.into(), ByteString(b"not gzip".to_vec()));
    watching.send_response(events(&[("MODIFIED", &corrupt)]));
    let watching = api.expect(watch_call("101")).await;

    eventually("the update rejected", || loads(&running, "rejected") == 1).await;
    assert!(ready(&running));
    assert_eq!(*running.gateway.snapshot.load().config, first, "generation 1 still served");
    assert_eq!(running.gateway.metrics.config_generation.get(), 1);
    assert_eq!(loads(&running, "applied"), 1);
    let line = logs.lines().into_iter().find(|l| l.contains("published config rejected")).expect("a log line");
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("secret=manifold-gateway-config"), "{line}");
    assert!(line.contains("why=not gzip"), "{line}");
    assert!(line.contains("serving_generation=1"), "{line}");

    // The operator rewrites it: served.
    watching.send_response(events(&[("MODIFIED", &published(&second, "102")[0])]));
    let _watch = api.expect(watch_call("102")).await;
    eventually("generation 2 served", || generation(&running) == 2).await;
    assert_eq!(loads(&running, "rejected"), 1);
    running.shutdown().await;
}

#[tokio::test]
async fn shards_are_swapped_in_once_all_of_them_are_there() {
    let (running, mut api) = start().await;
    let (first, _) = generations();
    let watching = serve_first(&mut api, &first).await;
    eventually("generation 1 served", || ready(&running)).await;

    // Generation 2 in two shards, one route each, written one at a time.
    let routes = vec![route("tools"), route("weather")];
    let second = GatewayConfig::new(routes.clone(), Some(&first));
    let shard = |index: usize, resource_version: &str| {
        let part = GatewayConfig { routes: vec![routes[index].clone()], ..second.clone() };
        let mut secret = published(&part, resource_version).remove(0);
        secret.metadata.name = Some(publish::shard_name(RELEASE, index));
        let annotations = secret.metadata.annotations.as_mut().unwrap();
        annotations.insert(publish::SHARD_ANNOTATION.into(), format!("{index}/2"));
        secret
    };
    watching.send_response(events(&[("ADDED", &shard(1, "101"))]));
    let watching = api.expect(watch_call("101")).await;
    // The gateway has taken in the event: only one shard of two of generation 2 is there.
    assert_eq!(generation(&running), 1);
    assert_eq!(loads(&running, "rejected"), 0, "an incomplete set is not an error");

    watching.send_response(events(&[("MODIFIED", &shard(0, "102"))]));
    let _watch = api.expect(watch_call("102")).await;
    eventually("generation 2 served", || generation(&running) == 2).await;
    assert_eq!(*running.gateway.snapshot.load().config, second);
    assert_eq!((loads(&running, "applied"), loads(&running, "rejected")), (2, 0));
    running.shutdown().await;
}

#[tokio::test]
async fn a_deleted_secret_leaves_the_last_config_serving() {
    let (running, mut api) = start().await;
    let (first, _) = generations();
    let watching = serve_first(&mut api, &first).await;
    eventually("generation 1 served", || ready(&running)).await;

    watching.send_response(events(&[("DELETED", &published(&first, "101")[0])]));
    let _watch = api.expect(watch_call("101")).await;
    assert!(ready(&running));
    assert_eq!(*running.gateway.snapshot.load().config, first);
    assert_eq!((loads(&running, "applied"), loads(&running, "rejected")), (1, 0));
    running.shutdown().await;
}

#[tokio::test]
async fn api_failures_are_retried_and_serving_goes_on() {
    let (running, mut api) = start().await;
    let (first, _) = generations();

    // No API server at first: nothing to serve, not ready; the list is retried (with backoff).
    api.expect(list_call()).await.send_error(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    let listing = api.expect(list_call()).await;
    assert!(!ready(&running));
    listing.send_response(list("100", &published(&first, "7")));
    let watching = api.expect(watch_call("100")).await;
    eventually("generation 1 served", || ready(&running)).await;

    // The API server goes away while serving: the watch is retried from where it was.
    watching.send_error(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    let _watch = api.expect(watch_call("100")).await;
    assert!(ready(&running));
    assert_eq!(*running.gateway.snapshot.load().config, first);
    assert_eq!((loads(&running, "applied"), loads(&running, "rejected")), (1, 0));
    running.shutdown().await;
}

/// Log lines written by the test's subscriber.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap()).lines().map(str::to_owned).collect()
    }
}

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
