//! `make bench-sessions`: what sealed sessions cost. Seals and opens session tokens (the
//! claims of a real route's session) and reports µs per token; then opens 100,000 sessions
//! as `initialize` and `notifications/initialized` do and reports the resident memory each
//! leaves in the gateway (the bench's own copies of the tokens not counted); then makes a
//! request on each and reports what an entry of a session in use costs. Each session holds
//! two mounts' upstream sessions, as after `initialize` on a two-mount route. Last, the same
//! through a real gateway process over HTTP: 100,000 sessions opened, its resident memory
//! read from /proc before and after.
//! Method and figures: docs/benchmarks.md.

use std::time::{Duration, Instant};

use base64::Engine;
use manifold_e2e::process::GatewayProcess;
use manifold_e2e::stub::{Reply, Stub};
use manifold_e2e::yaml;
use manifold_gateway::mcp::seal::{Claims, KeyRing, binding};
use manifold_gateway::mcp::session::{Keep, Sessions};
use manifold_gateway::upstream::{Held, Hello};
use serde_json::json;

const TOKENS: usize = 200_000;
const SESSIONS: usize = 100_000;

/// Two mounts' upstream sessions, as a token carries them.
fn upstreams() -> Vec<(String, Held)> {
    ["github~github", "jira~jira"]
        .into_iter()
        .map(|key| (key.to_owned(), Held { id: uuid_like(key), version: "2025-11-25".into() }))
        .collect()
}

fn uuid_like(seed: &str) -> String {
    format!("{:032x}", seed.len() as u128 * 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834)
}

fn main() {
    let ring = KeyRing::new(&[[7u8; 32], [8u8; 32]]);
    let claims = Claims {
        route: "acme/assistant".into(),
        principal: binding("jwt https://login.acme.example alice"),
        version: "2025-11-25".into(),
        capabilities: serde_json::value::RawValue::from_string(
            json!({"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}}).to_string(),
        )
        .unwrap(),
        issued: 1_795_000_000,
        upstreams: upstreams(),
    };
    let token = ring.seal(&claims);
    let started = Instant::now();
    for _ in 0..TOKENS {
        std::hint::black_box(ring.seal(std::hint::black_box(&claims)));
    }
    let seal = started.elapsed().as_secs_f64() * 1e6 / TOKENS as f64;
    let started = Instant::now();
    for _ in 0..TOKENS {
        std::hint::black_box(ring.open(std::hint::black_box(&token)));
    }
    let open = started.elapsed().as_secs_f64() * 1e6 / TOKENS as f64;
    println!(
        "token: {} bytes; seal {seal:.2} µs, open {open:.2} µs, seal+open {:.2} µs (target ≤ 5)",
        token.len(),
        seal + open
    );

    let sessions =
        Sessions::new(Duration::from_secs(3600), SESSIONS + 1, KeyRing::generate(), Duration::from_secs(86400));
    let route = ("acme", "assistant");
    let before = resident_bytes();
    let mut tokens = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let capabilities = serde_json::value::RawValue::from_string(r#"{"sampling":{}}"#.into()).unwrap();
        let hello = Hello { protocol_version: "2025-11-25".into(), capabilities };
        let principal = binding(&format!("api-key caller-{i}"));
        let session =
            sessions.create(manifold_api::ObjectKey::new(route.0, route.1), hello, principal.clone(), upstreams());
        // What the client sends next: `notifications/initialized`.
        let session = sessions.get(&session.id, route, &principal, Keep::No).expect("the token opens");
        tokens.push((session.id.to_string(), principal));
    }
    let tokens_bytes = tokens.capacity() * std::mem::size_of::<(String, String)>()
        + tokens.iter().map(|(token, principal)| token.capacity() + principal.capacity()).sum::<usize>();
    let idle = (resident_bytes() - before - tokens_bytes as i64) as f64 / SESSIONS as f64;
    println!("{SESSIONS} idle sessions: {idle:.0} bytes of resident memory each (target ≤ 512)");

    let before = resident_bytes();
    for (token, principal) in &tokens {
        sessions.get(token, route, principal, Keep::Yes).expect("the token opens");
    }
    let warm = (resident_bytes() - before) as f64 / SESSIONS as f64;
    println!(
        "{} sessions in use (a request in the last minute): {warm:.0} bytes each while their entries last",
        sessions.count()
    );

    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(gateway_process());
}

/// 100,000 sessions opened over HTTP through a real gateway process (release build) on a
/// two-mount route whose upstreams give every session an id; the process's resident memory
/// is read from /proc before and after.
async fn gateway_process() {
    let minted = std::sync::atomic::AtomicU64::new(0);
    let upstream = Stub::start(move |request| {
        let message = request.json();
        match (message["method"].as_str(), message.get("id")) {
            (Some("initialize"), Some(id)) => {
                let mut reply = Reply::json(json!({"jsonrpc": "2.0", "id": id, "result": {
                    "protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                    "serverInfo": {"name": "bench", "version": "1"}}}));
                let id = minted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                reply.headers.push(("mcp-session-id", format!("{:032x}", id)));
                reply
            }
            (Some(_), Some(id)) => Reply::json(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}}),
            ),
            _ => Reply::status(202),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, base64::engine::general_purpose::STANDARD.encode([9u8; 32])).unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let url = upstream.url("/mcp");
    let yaml = yaml::server("github", &url, "")
        + &yaml::server("jira", &url, "")
        + &yaml::route("assistant", "mounts: [{server: github}, {server: jira}]");
    std::fs::write(manifests.join("route.yaml"), yaml).unwrap();
    let gateway = GatewayProcess::start(&manifests, &keys).await;
    let endpoint = gateway.url("/acme/assistant/mcp");

    open_sessions(&endpoint, 2_000).await; // pools, arenas and caches reach their working size
    let before = gateway.resident_bytes();
    let started = Instant::now();
    open_sessions(&endpoint, SESSIONS).await;
    let per_session = (gateway.resident_bytes() as f64 - before as f64) / SESSIONS as f64;
    println!(
        "gateway process, {SESSIONS} sessions opened over HTTP in {:.1} s (initialize, notifications/initialized): \
         {per_session:.0} bytes of resident memory each (target ≤ 512)",
        started.elapsed().as_secs_f64()
    );
}

/// Opens `count` sessions, 16 clients at a time, as an MCP client does, and leaves them idle.
async fn open_sessions(endpoint: &str, count: usize) {
    let http = reqwest::Client::new();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let client = || async {
        while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
            let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}});
            let response = http
                .post(endpoint)
                .header("accept", "application/json, text/event-stream")
                .json(&initialize)
                .send()
                .await
                .expect("initialize");
            let token = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
            response.bytes().await.unwrap();
            let initialized = http
                .post(endpoint)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", token)
                .header("mcp-protocol-version", "2025-11-25")
                .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .send()
                .await
                .expect("notifications/initialized");
            assert_eq!(initialized.status(), 202);
        }
    };
    futures::future::join_all((0..16).map(|_| client())).await;
}

/// Resident set size, from /proc/self/statm (pages).
fn resident_bytes() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: i64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
    pages * 4096
}
