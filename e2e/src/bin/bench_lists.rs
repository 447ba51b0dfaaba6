//! `make bench-lists`: a merged `tools/list` over 10 mounts, each 20 ms away (every answer of
//! every upstream is held 20 ms). It times the very first list through a fresh gateway
//! (`initialize`, then `tools/list`, which opens every upstream session), then the p50 of the
//! lists after it; then, on a route mounting the same servers with `caching.lists`, the p50 of
//! a cached merged list (every list after the first is a hit). Upstreams, gateway and client
//! share one process, each on its own runtime.
//! Method and recorded figures: docs/benchmarks.md.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use manifold_api::manifests::Source;
use manifold_gateway::{ConfigSource, Settings};
use serde_json::{Value, json};

const MOUNTS: usize = 10;
const LATENCY: Duration = Duration::from_millis(20);
const LISTS: usize = 50;

fn main() {
    let upstreams: Vec<SocketAddr> = (0..MOUNTS).map(|_| start_upstream()).collect();
    let gateway = start_gateway(&upstreams);
    let client = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    client.block_on(async move {
        let http = reqwest::Client::new();
        let url = format!("http://{gateway}/acme/lists/mcp");
        let started = Instant::now();
        let session = post(&http, &url, None, "initialize", json!({
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"},
        }))
        .await
        .1
        .expect("a session");
        let (first, _) = post(&http, &url, Some(&session), "tools/list", json!({})).await;
        let first_ms = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(first["result"]["tools"].as_array().map(Vec::len), Some(MOUNTS), "one tool per mount: {first}");
        let mut times = Vec::with_capacity(LISTS);
        for _ in 0..LISTS {
            let started = Instant::now();
            post(&http, &url, Some(&session), "tools/list", json!({})).await;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let cached = cached_lists(&http, &format!("http://{gateway}/acme/cached/mcp")).await;
        println!(
            "| mounts | upstream latency | first list of a fresh gateway (initialize included) | p50 of the next {LISTS} | p90 | p50 cached | p90 cached |"
        );
        println!("|---|---|---|---|---|---|---|");
        println!(
            "| {MOUNTS} | {} ms | {first_ms:.1} ms | {:.1} ms | {:.1} ms | {:.3} ms | {:.3} ms |",
            LATENCY.as_millis(),
            times[LISTS / 2],
            times[LISTS * 9 / 10],
            cached[LISTS / 2],
            cached[LISTS * 9 / 10]
        );
    });
}

/// Milliseconds of `LISTS` merged lists on a route that keeps them, sorted: each a hit, after
/// a first list that fills the cache.
async fn cached_lists(http: &reqwest::Client, url: &str) -> Vec<f64> {
    let hello =
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}});
    let session = post(http, url, None, "initialize", hello).await.1.expect("a session");
    let (first, _) = post(http, url, Some(&session), "tools/list", json!({})).await;
    assert_eq!(first["result"]["_meta"]["dev.manifold/cache"], "miss", "{first}");
    let mut times = Vec::with_capacity(LISTS);
    for _ in 0..LISTS {
        let started = Instant::now();
        let (listed, _) = post(http, url, Some(&session), "tools/list", json!({})).await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(listed["result"]["_meta"]["dev.manifold/cache"], "hit", "{listed}");
    }
    times.sort_by(f64::total_cmp);
    times
}

/// One JSON-RPC request; its answer, and the session id the gateway gave, if any.
async fn post(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    method: &str,
    params: Value,
) -> (Value, Option<String>) {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string());
    if let Some(session) = session {
        request = request.header("mcp-session-id", session).header("mcp-protocol-version", "2025-11-25");
    }
    let response = request.send().await.expect("the gateway answers");
    let session = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (response.json().await.expect("a JSON answer"), session)
}

/// An MCP server with one tool whose every answer is held `LATENCY`, on its own thread.
fn start_upstream() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let app = axum::Router::new().route("/mcp", axum::routing::post(answer));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
            tx.send(listener.local_addr().expect("an address")).expect("the caller waits");
            axum::serve(listener, app).await.expect("the upstream serves");
        })
    });
    rx.recv().expect("the upstream started")
}

async fn answer(Json(message): Json<Value>) -> axum::response::Response {
    tokio::time::sleep(LATENCY).await;
    let id = message.get("id").cloned();
    let result = match message["method"].as_str().unwrap_or_default() {
        "initialize" => json!({
            "protocolVersion": "2025-11-25", "capabilities": { "tools": {} },
            "serverInfo": { "name": "distant", "version": "1" },
        }),
        "tools/list" => json!({ "tools": [{ "name": "t", "inputSchema": { "type": "object" } }] }),
        _ if id.is_none() => return StatusCode::ACCEPTED.into_response(),
        _ => {
            let error = json!({ "code": -32601, "message": "no such method" });
            return Json(json!({ "jsonrpc": "2.0", "id": id, "error": error })).into_response();
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert("mcp-session-id", "s".parse().expect("a header value"));
    (headers, Json(json!({ "jsonrpc": "2.0", "id": id, "result": result }))).into_response()
}

/// A gateway with one route mounting every upstream, on its own runtime.
fn start_gateway(upstreams: &[SocketAddr]) -> SocketAddr {
    let mut manifests = String::new();
    let mut mounts = Vec::new();
    for (i, upstream) in upstreams.iter().enumerate() {
        manifests += &manifold_e2e::yaml::server(&format!("m{i}"), &format!("http://{upstream}/mcp"), "");
        mounts.push(format!("{{server: m{i}}}"));
    }
    let mounts = mounts.join(", ");
    manifests += &manifold_e2e::yaml::route("lists", &format!("mounts: [{mounts}]"));
    manifests += &manifold_e2e::yaml::route("cached", &format!("mounts: [{mounts}], caching: {{lists: {{ttl: 1m}}}}"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
        runtime.expect("a runtime").block_on(async move {
            let settings = Settings {
                listen: "127.0.0.1:0".parse().expect("an address"),
                admin_listen: "127.0.0.1:0".parse().expect("an address"),
                audit_log: Some("/dev/null".into()),
                ..Settings::default()
            };
            let source = ConfigSource::Embedded(vec![Source { origin: "bench".into(), text: manifests }]);
            let running = manifold_gateway::start(settings, source).await.expect("the gateway starts");
            tx.send(running.mcp_addr).expect("the caller waits");
            std::future::pending::<()>().await;
        })
    });
    rx.recv().expect("the gateway started")
}
