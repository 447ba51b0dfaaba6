//! `make bench`: what the gateway costs on the hot path. One load generator calls
//! `tools/call` on a fast upstream (the stateless rmcp `math` sample, JSON responses)
//! directly, then through a gateway route, at 1 and at 8 concurrent clients, and prints
//! throughput and latency side by side. Upstream, gateway and load generator each run on
//! their own runtime in this process, sharing the machine's cores as separate processes
//! would. A bare hyper pass-through proxy is measured beside them as the floor of the hop
//! itself, a route that authenticates each call with a JWT beside the anonymous one, and a
//! route with a local rate limit and caching rules that the calls meet but never hit (issue
//! 17: at most 2 µs more gateway CPU per call).
//! Method and recorded figures: docs/benchmarks.md.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use manifold_api::manifests::Source;
use manifold_gateway::{ConfigSource, Settings};
use manifold_samples::Sample;
use serde_json::json;

#[derive(Parser, Debug)]
struct Args {
    /// Seconds measured per run (after a one-second warm-up).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent clients of the throughput runs.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Direct and gateway runs alternate this many times; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Worker threads of the upstream and of the load generator. 1 runs each on one thread
    /// (a current-thread runtime), which takes their own wake-ups out of the latency at 1
    /// client; the CPU column then counts only the gateway.
    #[arg(long, default_value_t = 2)]
    peer_threads: usize,
    /// Instead of measuring: make this many calls, one after another, on the route named by
    /// `--route`, and exit. `make bench-policy` runs this under callgrind.
    #[arg(long)]
    calls: Option<usize>,
    /// The route `--calls` goes through: `route` (no policy) or `policed`.
    #[arg(long, default_value = "route")]
    route: String,
    /// Trace the gateway at this sampling ratio (issue 18: at 0.01, at most 2 µs more gateway
    /// CPU per call); spans are batched as for a collector, to an exporter that drops them.
    #[arg(long)]
    trace_ratio: Option<f64>,
}

/// Takes batches of spans and keeps nothing: what tracing costs the gateway, without a
/// collector's.
#[derive(Debug)]
struct Dropped;

impl opentelemetry_sdk::trace::SpanExporter for Dropped {
    async fn export(&self, _batch: Vec<opentelemetry_sdk::trace::SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

const CALL: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"NAME","arguments":{"a":2,"b":3}}}"#;

fn main() {
    let args = Args::parse();
    let upstream = start_upstream(args.peer_threads);
    let signer = manifold_e2e::tokens::Signer::rsa("rsa-a", "bench");
    let token = signer
        .token(&json!({"iss": "bench", "aud": "bench", "sub": "bench", "exp": manifold_e2e::tokens::now() + 3600}));
    let gateway = start_gateway(upstream, &manifold_e2e::tokens::jwks(&[&signer]).to_string(), args.trace_ratio);
    let load = runtime("load", args.peer_threads);
    if let Some(calls) = args.calls {
        let url = format!("http://{gateway}/acme/{}/mcp", args.route);
        load.block_on(call_times(&url, calls));
        return;
    }
    let floor = start_floor(upstream);
    let floor_url = format!("http://{floor}/mcp");
    let direct_url = format!("http://{upstream}/mcp");
    let route_url = format!("http://{gateway}/acme/route/mcp");
    let secured_url = format!("http://{gateway}/acme/secured/mcp");
    let policed_url = format!("http://{gateway}/acme/policed/mcp");
    let seconds = Duration::from_secs(args.seconds);

    let mut rows = Vec::new();
    for clients in [1, args.clients] {
        let (mut direct, mut routed, mut floored, mut secured, mut policed) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.rounds.max(1) {
            direct.push(measured(|| load.block_on(run(&direct_url, "add", false, None, clients, seconds))));
            routed.push(measured(|| load.block_on(run(&route_url, "math_add", true, None, clients, seconds))));
            floored.push(measured(|| load.block_on(run(&floor_url, "add", false, None, clients, seconds))));
            secured
                .push(measured(|| load.block_on(run(&secured_url, "math_add", true, Some(&token), clients, seconds))));
            policed.push(measured(|| load.block_on(run(&policed_url, "math_add", true, None, clients, seconds))));
        }
        rows.push((clients, median(direct), median(routed), median(floored), median(secured), median(policed)));
    }

    println!("| clients | path | requests/s | p50 µs | p90 µs | p99 µs | CPU µs/request: load, proxy, upstream |");
    println!("|---|---|---|---|---|---|---|");
    for (clients, direct, routed, floored, secured, policed) in &rows {
        let paths = [
            ("direct", direct),
            ("bare hyper proxy", floored),
            ("gateway", routed),
            ("gateway, JWT", secured),
            ("gateway, policy not hit", policed),
        ];
        for (name, r) in paths {
            let cpu = |who: &str| r.cpu.get(who).copied().unwrap_or(0.0) / r.requests as f64;
            println!(
                "| {clients} | {name} | {:.0} | {} | {} | {} | {:.0}, {:.0}, {:.0} |",
                r.rate,
                r.p(50),
                r.p(90),
                r.p(99),
                cpu("load"),
                cpu("gateway") + cpu("bare-proxy"),
                cpu("upstream")
            );
        }
    }
    let (_, direct1, routed1, _, secured1, _) = &rows[0];
    let (clients, direct_n, routed_n, _, _, policed_n) = &rows[1];
    let gateway_cpu = |r: &Result| r.cpu.get("gateway").copied().unwrap_or(0.0) / r.requests as f64;
    println!();
    println!("added p50 at 1 client: {} µs (target ≤ 50)", routed1.p(50) as i64 - direct1.p(50) as i64);
    println!("throughput at {clients} clients: {:.2}× direct (target ≥ 0.70)", routed_n.rate / direct_n.rate);
    println!("JWT authentication adds {} µs to the p50 at 1 client", secured1.p(50) as i64 - routed1.p(50) as i64);
    println!(
        "policy configured, not hit: {:+.1} µs gateway CPU per request at {clients} clients (target ≤ 2; \
         noise here is several µs: `make bench-policy` counts instructions)",
        gateway_cpu(policed_n) - gateway_cpu(routed_n)
    );
}

/// `calls` sequential `tools/call`s in one session at `url`: what callgrind counts.
async fn call_times(url: &str, calls: usize) {
    let http = reqwest::Client::builder().tcp_nodelay(true).build().unwrap();
    let session = initialize(&http, url).await;
    let body = CALL.replace("NAME", "math_add");
    for _ in 0..calls {
        let response = http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .body(body.clone())
            .send()
            .await
            .expect("request");
        let bytes = response.bytes().await.expect("body");
        assert!(bytes.windows(6).any(|w| w == b"result"), "{}", String::from_utf8_lossy(&bytes));
    }
}

struct Result {
    rate: f64,
    micros: Vec<u32>,
    /// Requests sent, warm-up included (the CPU figures cover the warm-up too).
    requests: usize,
    /// CPU time (user + system, µs) spent by each runtime's threads during the run.
    cpu: std::collections::HashMap<String, f64>,
}

/// The run with the median rate: noise on a shared 2-core machine is large, and alternating
/// rounds keeps drift from favouring either path.
fn median(mut runs: Vec<Result>) -> Result {
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    runs.swap_remove(runs.len() / 2)
}

/// Runs `f`, adding the CPU time each runtime's threads spent meanwhile (includes warm-up).
fn measured(f: impl FnOnce() -> Result) -> Result {
    let before = thread_cpu();
    let mut result = f();
    for (who, after) in thread_cpu() {
        result.cpu.insert(who.clone(), after - before.get(&who).copied().unwrap_or(0.0));
    }
    result
}

/// CPU µs by thread name, from /proc/self/task/*/stat (utime + stime, in clock ticks).
fn thread_cpu() -> std::collections::HashMap<String, f64> {
    let mut cpu = std::collections::HashMap::new();
    let tick_us = 1e6 / 100.0; // USER_HZ is 100 on Linux
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        // The gateway's MCP workers count as the gateway.
        let name = match &stat[open + 1..close] {
            worker if worker.starts_with("mcp-worker") => "gateway".to_owned(),
            worker if worker.starts_with("bare-proxy") => "bare-proxy".to_owned(),
            // The main thread drives the load generator's runtime (with one peer thread, it
            // is that runtime's only thread).
            "bench" => "load".to_owned(),
            name => name.to_owned(),
        };
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
        *cpu.entry(name).or_insert(0.0) += ticks * tick_us;
    }
    cpu
}

impl Result {
    fn p(&self, percentile: usize) -> u32 {
        self.micros[(self.micros.len() * percentile / 100).min(self.micros.len() - 1)]
    }
}

/// `clients` loops calling `tool` as fast as answers come, each on its own connection (and,
/// through the gateway, its own session), sending `token` as a bearer token when given.
async fn run(url: &str, tool: &str, session: bool, token: Option<&str>, clients: usize, seconds: Duration) -> Result {
    let token = token.map(str::to_owned);
    let body = CALL.replace("NAME", tool);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (url, body, token) = (url.to_owned(), body.clone(), token.clone());
            tokio::spawn(async move {
                let mut headers = reqwest::header::HeaderMap::new();
                if let Some(token) = &token {
                    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
                }
                let http = reqwest::Client::builder().tcp_nodelay(true).default_headers(headers).build().unwrap();
                let session_id = if session { Some(initialize(&http, &url).await) } else { None };
                let call = || {
                    let mut request = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("accept", "application/json, text/event-stream")
                        .body(body.clone());
                    if let Some(id) = &session_id {
                        request = request.header("mcp-session-id", id);
                    }
                    async move {
                        let response = request.send().await.expect("request");
                        assert!(response.status().is_success(), "status {}", response.status());
                        let bytes = response.bytes().await.expect("body");
                        assert!(bytes.windows(6).any(|w| w == b"result"), "{}", String::from_utf8_lossy(&bytes));
                    }
                };
                let warm = Instant::now();
                let mut warm_up = 0;
                while warm.elapsed() < Duration::from_secs(1) {
                    call().await;
                    warm_up += 1;
                }
                let mut micros = Vec::new();
                let started = Instant::now();
                while started.elapsed() < seconds {
                    let t = Instant::now();
                    call().await;
                    micros.push(t.elapsed().as_micros() as u32);
                }
                (micros, warm_up)
            })
        })
        .collect();
    let (mut micros, mut requests) = (Vec::new(), 0);
    for task in tasks {
        let (measured, warm_up) = task.await.unwrap();
        requests += measured.len() + warm_up;
        micros.extend(measured);
    }
    micros.sort_unstable();
    Result { rate: micros.len() as f64 / seconds.as_secs_f64(), micros, requests, cpu: Default::default() }
}

async fn initialize(http: &reqwest::Client, url: &str) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}});
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string())
        .send()
        .await
        .expect("initialize");
    response.headers()["mcp-session-id"].to_str().unwrap().to_owned()
}

fn runtime(name: &str, workers: usize) -> tokio::runtime::Runtime {
    if workers == 1 {
        return tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    }
    tokio::runtime::Builder::new_multi_thread().worker_threads(workers).thread_name(name).enable_all().build().unwrap()
}

/// The `math` sample on its own runtime; returns its address.
fn start_upstream(threads: usize) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("upstream".into())
        .spawn(move || {
            runtime("upstream", threads).block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                manifold_samples::serve(Sample::Math, listener).await.unwrap();
            })
        })
        .unwrap();
    rx.recv().unwrap()
}

/// Policy on the hot path, configured but not hit: every call draws on a limit it never
/// reaches, and meets caching rules none of which names its tool.
const POLICED: &str = "mounts: [{server: math}], \
    rateLimits: [{name: calls, scope: Principal, requests: 1000000, per: 1s, tools: ['math_*']}], \
    caching: {results: [{tools: [math_search*, other_*], ttl: 1m}], lists: {ttl: 1m}}";

/// A gateway with three routes mounting the upstream: one open, one taking JWTs signed by a
/// key of `jwks`, and one with policy configured (`POLICED`), on its own runtime; returns its
/// address.
fn start_gateway(upstream: SocketAddr, jwks: &str, trace_ratio: Option<f64>) -> SocketAddr {
    let secured = format!(
        "mounts: [{{server: math}}], authentication: {{jwt: [{{issuer: bench, audiences: [bench], jwks: {{inline: '{jwks}'}}}}]}}"
    );
    let manifests = manifold_e2e::yaml::server("math", &format!("http://{upstream}/mcp"), "")
        + &manifold_e2e::yaml::route("route", "mounts: [{server: math}]")
        + &manifold_e2e::yaml::route("secured", &secured)
        + &manifold_e2e::yaml::route("policed", POLICED);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        runtime("gateway", 2).block_on(async move {
            let tracer = trace_ratio.map(|ratio| {
                use opentelemetry::trace::TracerProvider as _;
                use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
                use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
                let batches = BatchSpanProcessor::builder(Dropped, opentelemetry_sdk::runtime::Tokio).build();
                let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)));
                SdkTracerProvider::builder()
                    .with_span_processor(batches)
                    .with_sampler(sampler)
                    .build()
                    .tracer("manifold")
            });
            let settings = Settings {
                listen: "127.0.0.1:0".parse().unwrap(),
                admin_listen: "127.0.0.1:0".parse().unwrap(),
                // Audit lines are written (their cost is in the figures), not printed among them.
                audit_log: Some("/dev/null".into()),
                tracer,
                ..Settings::default()
            };
            let source = ConfigSource::Embedded(vec![Source { origin: "bench".into(), text: manifests }]);
            let running = manifold_gateway::start(settings, source).await.unwrap();
            tx.send(running.mcp_addr).unwrap();
            std::future::pending::<()>().await;
        })
    });
    rx.recv().unwrap()
}

/// The floor of any hyper-based gateway: a pass-through proxy with no MCP logic at all (no
/// parsing, sessions, routing or metrics), on per-core current-thread runtimes as the
/// gateway's workers are. What the gateway costs beyond it is its own work.
fn start_floor(upstream: SocketAddr) -> SocketAddr {
    use http_body_util::{BodyExt, Full};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    for i in 0..2 {
        let listener = listener.try_clone().unwrap();
        std::thread::Builder::new()
            .name(format!("bare-proxy-{i}"))
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
                        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                            .build(hyper_util::client::legacy::connect::HttpConnector::new());
                    loop {
                        let (stream, _) = listener.accept().await.unwrap();
                        stream.set_nodelay(true).unwrap();
                        let client = client.clone();
                        tokio::spawn(async move {
                            let service =
                                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                                    let client = client.clone();
                                    async move {
                                        let (parts, body) = req.into_parts();
                                        let body = body.collect().await.unwrap().to_bytes();
                                        let mut up = hyper::Request::new(Full::new(body));
                                        *up.method_mut() = parts.method;
                                        *up.uri_mut() = format!("http://{upstream}/mcp").parse().unwrap();
                                        *up.headers_mut() = parts.headers;
                                        let resp = client.request(up).await.unwrap();
                                        let (parts, body) = resp.into_parts();
                                        let body = body.collect().await.unwrap().to_bytes();
                                        Ok::<_, std::convert::Infallible>(hyper::Response::from_parts(
                                            parts,
                                            Full::new(body),
                                        ))
                                    }
                                });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        });
                    }
                })
            })
            .unwrap();
    }
    addr
}
