//! `make bench-kube`: the operator at scale on a real API server (scenario 8). 1,000
//! McpServers and 200 McpRoutes over 50 tenant namespaces are applied at once (one
//! `kubectl apply --server-side`) to the test API server, with one operator and two gateway
//! replicas running as processes under their ServiceAccounts (`KubeStack`). The servers are
//! real MCP upstreams the operator probes: the rmcp `math` and `text` samples, in this process.
//!
//! The clock starts just before the apply. `kubectl get mcproutes -A` is polled (500 ms after
//! each answer) until every route is `Programmed=True`; then the operator's writes are read
//! from the API server's audit log once they have stopped: how many of each kind (config
//! publishes, status patches, Events) and when. Also reported: the config generations
//! published, and the memory and CPU time of the processes. Method and figures:
//! docs/benchmarks.md.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use manifold_e2e::cluster::condition;
use manifold_e2e::kube_stack::KubeStack;
use manifold_e2e::pods::{OPERATOR_ADMIN_PORT, Pod};
use manifold_e2e::process::{gateway_binary, operator_binary};
use manifold_e2e::yaml;
use manifold_samples::{Sample, serve};
use serde_json::Value;

/// The operator at scale: many McpServers and McpRoutes applied at once to the test API server.
#[derive(Debug, Parser)]
struct Args {
    /// McpServers, spread evenly over the namespaces.
    #[arg(long, default_value_t = 1000)]
    servers: usize,
    /// McpRoutes, spread evenly over the namespaces; each mounts up to 5 servers of its namespace.
    #[arg(long, default_value_t = 200)]
    routes: usize,
    /// Tenant namespaces.
    #[arg(long, default_value_t = 50)]
    namespaces: usize,
    /// Operator replicas (one leads and writes).
    #[arg(long, default_value_t = 1)]
    operators: usize,
    /// Gateway replicas.
    #[arg(long, default_value_t = 2)]
    gateways: usize,
    /// Upstream MCP servers (rmcp samples, alternately math and text) the McpServers point at.
    #[arg(long, default_value_t = 4)]
    upstreams: usize,
    /// Give up when the routes are not all Programmed after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
}

const MOUNTS_PER_ROUTE: usize = 5;
const POLL: Duration = Duration::from_millis(500);
/// How long the operator's writes must have stopped before they are counted.
const QUIET: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(code) = manifold_e2e::netns::run_inside() {
        return code;
    }
    assert!(args.namespaces > 0 && args.servers >= args.namespaces, "at least one server per namespace");
    // The upstreams are served by the runtime's worker threads; `run` blocks the main thread
    // on kubectl, which they never wait for.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
    if runtime.block_on(run(&args)) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Runs the bench; false when the routes were not all Programmed in time.
async fn run(args: &Args) -> bool {
    let mut upstreams = Vec::new();
    for i in 0..args.upstreams.max(1) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind an upstream");
        let url = format!("http://{}/mcp", listener.local_addr().expect("its address"));
        let sample = if i % 2 == 0 { Sample::Math } else { Sample::Text };
        tokio::spawn(serve(sample, listener));
        upstreams.push(url);
    }
    // Built (or found built) before anything is timed.
    let built = Instant::now();
    let _ = (operator_binary(), gateway_binary());
    eprintln!("operator and gateway binaries ready in {:.1} s", built.elapsed().as_secs_f64());

    let tenants: Vec<String> = (0..args.namespaces).map(|i| format!("t{i:02}")).collect();
    let tenant_refs: Vec<&str> = tenants.iter().map(String::as_str).collect();
    let started = Instant::now();
    let stack = KubeStack::start("scale", &tenant_refs, args.operators, args.gateways).await;
    eprintln!("stack up in {:.1} s", started.elapsed().as_secs_f64());

    let manifests = world(args, &stack.tenants, &upstreams);
    let documents = manifests.matches("\n---\n").count() + 1;
    let generation_before = generation(&stack);
    let audit_before = stack.api.audit().len();
    let before: Vec<(f64, f64)> = stack
        .operators
        .iter()
        .chain(&stack.gateways)
        .map(|pod| (cpu_seconds(pod), pid(pod).map_or(0.0, |pid| memory_mb(pid).0)))
        .collect();

    let wall_start = SystemTime::now();
    let clock = Instant::now();
    stack.admin.apply(&manifests);
    let applied = clock.elapsed();
    eprintln!("applied {documents} objects in {:.1} s", applied.as_secs_f64());
    let deadline = clock + Duration::from_secs(args.timeout);
    let polled = poll_routes(&stack, args.routes, clock, deadline);
    // The writes that follow Programmed (the last statuses) are counted too.
    let writes = Writes::new(&settled_writes(&stack, audit_before, deadline), &stack, wall_start);

    println!(
        "\nworld: {} McpServers, {} McpRoutes ({} mounts), {} namespaces, {} upstreams; {} operator(s), {} gateway(s)",
        args.servers,
        args.routes,
        routes_mounts(args),
        args.namespaces,
        upstreams.len(),
        args.operators,
        args.gateways
    );
    let seconds = |t: Option<f64>| t.map_or("none".into(), |t| format!("{t:.1}"));
    let span = |s: &[f64]| format!("{} – {}", seconds(s.first().copied()), seconds(s.last().copied()));
    println!("\n| phase (seconds from the start of the apply) | s |\n|---|---|");
    println!("| `kubectl apply --server-side` of {documents} objects returns | {:.1} |", applied.as_secs_f64());
    println!(
        "| config publishes (audit) | {} |",
        writes.publishes.iter().map(|t| format!("{t:.1}")).collect::<Vec<_>>().join(", ")
    );
    println!("| McpServer status writes (audit: first – last) | {} |", span(&writes.servers));
    println!("| McpRoute status writes (audit: first – last) | {} |", span(&writes.routes));
    for (name, at) in &polled.milestones {
        println!("| {name} (polled) | {:.1} |", at.as_secs_f64());
    }
    println!(
        "| the operator's last write (audit; none for the next {} s) | {} |",
        QUIET.as_secs(),
        seconds(writes.last)
    );
    println!(
        "\nRoutes polled {} times: a `kubectl get` took {:.0} ms on average, then {} ms of pause.",
        polled.polls,
        polled.asking.as_secs_f64() * 1e3 / f64::from(polled.polls.max(1)),
        POLL.as_millis()
    );
    println!("McpServers Ready at the end: {} of {}", count_ready(&stack), args.servers);

    println!("\n| the operator's writes after the apply (audit log) | count |\n|---|---|");
    for (what, count) in &writes.counts {
        println!("| {what} | {count} |");
    }
    println!(
        "| **config publishes** (Secret writes in {}) | **{}** |",
        stack.deployment.namespace,
        writes.publishes.len()
    );
    println!(
        "| **status writes** (mcpservers/status + mcproutes/status) | **{}** |",
        writes.servers.len() + writes.routes.len()
    );
    let generation_after = generation(&stack);
    let shown = |g: Option<u64>| g.map_or("none".into(), |g| g.to_string());
    println!(
        "| config generations published ({} → {}) | {} |",
        shown(generation_before),
        shown(generation_after),
        generation_after.unwrap_or(0).saturating_sub(generation_before.unwrap_or(0))
    );
    let selector = format!("manifold.dev/gateway-config={}", stack.deployment.release);
    let shards =
        stack.admin.run(&["get", "secrets", "-n", &stack.deployment.namespace, "-l", &selector, "-o", "name"], None);
    println!("| config shards at the end | {} |", shards.lines().count());

    println!("\n| process | RSS MB before the apply | RSS MB at the end | peak RSS MB | CPU s from the apply on |");
    println!("|---|---|---|---|---|");
    for (pod, (cpu, rss_before)) in stack.operators.iter().chain(&stack.gateways).zip(&before) {
        let (rss, peak) = pid(pod).map_or((0.0, 0.0), memory_mb);
        println!(
            "| {} | {rss_before:.0} | {rss:.0} | {peak:.0} | {:.2} |",
            pod.name,
            (cpu_seconds(pod) - cpu).max(0.0)
        );
    }
    for operator in &stack.operators {
        if let Some((200, metrics)) = operator.get(OPERATOR_ADMIN_PORT, "/metrics").await {
            for line in metrics.lines().filter(|l| l.starts_with("manifold_operator_reconciles_total")) {
                println!("{} {line}", operator.name);
            }
        }
    }
    let start = wall_start.duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64();
    for operator in &stack.operators {
        println!("\n{}'s reconciles (seconds from the start of the apply):", operator.name);
        for line in operator.log().lines().map(plain).filter(|l| l.contains(" reconciled ")) {
            let Some((stamp, rest)) = line.split_once(' ') else { continue };
            let Some(at) = unix_seconds(stamp).map(|t| t - start).filter(|at| *at >= 0.0) else { continue };
            let fields = rest.split_once(" reconciled ").map_or(rest, |(_, fields)| fields);
            println!("  {at:>5.1}  {fields}");
        }
    }
    for pod in stack.operators.iter().chain(&stack.gateways) {
        let log = pod.log();
        let bad: Vec<&str> = log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
        println!("{}: {} warning/error lines in its log", pod.name, bad.len());
        for line in bad.iter().take(5) {
            println!("    {}", line.chars().take(300).collect::<String>());
        }
    }
    if !polled.done {
        eprintln!("operator-0's log ends:\n{}", stack.operators[0].log_tail(40));
    }
    polled.done
}

/// What polling the routes saw.
struct Polled {
    done: bool,
    /// When each milestone was first seen, from the start of the apply.
    milestones: Vec<(&'static str, Duration)>,
    polls: u32,
    /// Time spent in `kubectl get`.
    asking: Duration,
}

/// Polls the routes until all `routes` are Programmed, or until `deadline`.
fn poll_routes(stack: &KubeStack, routes: usize, clock: Instant, deadline: Instant) -> Polled {
    let mut polled = Polled { done: false, milestones: Vec::new(), polls: 0, asking: Duration::ZERO };
    let mut last_report = Instant::now();
    loop {
        let asked = Instant::now();
        let seen = Routes::read(stack);
        polled.asking += asked.elapsed();
        polled.polls += 1;
        for (name, reached) in [
            ("all routes Accepted", seen.accepted == routes),
            ("first route Programmed", seen.programmed > 0),
            ("all routes Programmed", seen.programmed == routes),
        ] {
            if reached && !polled.milestones.iter().any(|(n, _)| *n == name) {
                polled.milestones.push((name, clock.elapsed()));
            }
        }
        if seen.programmed == routes {
            polled.done = true;
            return polled;
        }
        if Instant::now() >= deadline {
            eprintln!("timed out: {seen:?}");
            return polled;
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            eprintln!("{:>6.1} s  {seen:?}", clock.elapsed().as_secs_f64());
            last_report = Instant::now();
        }
        std::thread::sleep(POLL);
    }
}

/// The operator's writes after the apply, by kind, and when they happened (seconds from the
/// start of the apply, in order).
struct Writes {
    /// `<verb> <resource>[/<subresource>] (<code>)` → how many.
    counts: BTreeMap<String, usize>,
    publishes: Vec<f64>,
    servers: Vec<f64>,
    routes: Vec<f64>,
    /// The last write of any kind.
    last: Option<f64>,
}

impl Writes {
    fn new(events: &[Value], stack: &KubeStack, start: SystemTime) -> Writes {
        let start = start.duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64();
        let mut writes = Writes {
            counts: BTreeMap::new(),
            publishes: Vec::new(),
            servers: Vec::new(),
            routes: Vec::new(),
            last: None,
        };
        for event in events {
            let object = &event["objectRef"];
            let resource = object["resource"].as_str().unwrap_or("?");
            let subresource = object["subresource"].as_str();
            let code = event["responseStatus"]["code"].as_i64().unwrap_or(0);
            let verb = event["verb"].as_str().unwrap_or("?");
            let what = subresource.map_or(resource.to_owned(), |sub| format!("{resource}/{sub}"));
            *writes.counts.entry(format!("{verb} {what} ({code})")).or_default() += 1;
            let Some(at) = event["stageTimestamp"].as_str().and_then(unix_seconds).map(|t| t - start) else { continue };
            writes.last = Some(writes.last.map_or(at, |last: f64| last.max(at)));
            match (resource, subresource) {
                ("secrets", None) if object["namespace"] == stack.deployment.namespace.as_str() => {
                    writes.publishes.push(at)
                }
                ("mcpservers", Some("status")) => writes.servers.push(at),
                ("mcproutes", Some("status")) => writes.routes.push(at),
                _ => {}
            }
        }
        for times in [&mut writes.publishes, &mut writes.servers, &mut writes.routes] {
            times.sort_by(f64::total_cmp);
        }
        writes
    }
}

/// How many of the McpServers are Ready.
fn count_ready(stack: &KubeStack) -> usize {
    let out = stack.admin.run(&["get", "mcpservers", "-A", "-o", "json"], None);
    let list: Value = serde_json::from_str(&out).expect("kubectl prints JSON");
    list["items"].as_array().into_iter().flatten().filter(|s| is_true(s, "Ready")).count()
}

fn is_true(object: &Value, kind: &str) -> bool {
    condition(object, kind).is_some_and(|c| c["status"] == "True")
}

/// Every object of the world as one multi-document YAML: per namespace, its share of the
/// servers (`server-NN`, each pointing at one of the upstreams) and of the routes
/// (`route-N`, mounting up to 5 consecutive servers of the namespace under their names).
fn world(args: &Args, namespaces: &[String], upstreams: &[String]) -> String {
    let mut text = String::new();
    let mut next_upstream = 0;
    for (i, namespace) in namespaces.iter().enumerate() {
        let servers = share(args.servers, args.namespaces, i);
        let mut objects = String::new();
        for s in 0..servers {
            objects += &yaml::server(&format!("server-{s:02}"), &upstreams[next_upstream % upstreams.len()], "");
            next_upstream += 1;
        }
        for r in 0..share(args.routes, args.namespaces, i) {
            let mounts: Vec<String> = (0..MOUNTS_PER_ROUTE.min(servers))
                .map(|k| format!("{{server: server-{:02}}}", (r * MOUNTS_PER_ROUTE + k) % servers))
                .collect();
            objects += &yaml::route(&format!("route-{r}"), &format!("mounts: [{}]", mounts.join(", ")));
        }
        text += &yaml::in_namespace(&objects, namespace);
    }
    text
}

/// Namespace `i`'s share of `total` objects spread over `namespaces`.
fn share(total: usize, namespaces: usize, i: usize) -> usize {
    total / namespaces + usize::from(i < total % namespaces)
}

/// The mounts of all routes.
fn routes_mounts(args: &Args) -> usize {
    (0..args.namespaces)
        .map(|i| share(args.routes, args.namespaces, i) * MOUNTS_PER_ROUTE.min(share(args.servers, args.namespaces, i)))
        .sum()
}

/// How far the routes have come, from one `kubectl get`.
#[derive(Debug, Default)]
struct Routes {
    accepted: usize,
    programmed: usize,
}

impl Routes {
    fn read(stack: &KubeStack) -> Routes {
        let out = stack.admin.kubectl(&["get", "mcproutes", "-A", "-o", "json"], None);
        let mut routes = Routes::default();
        let Ok(list) = serde_json::from_slice::<Value>(&out.stdout) else { return routes };
        for route in list["items"].as_array().into_iter().flatten() {
            if stack.tenants.iter().any(|t| route["metadata"]["namespace"] == t.as_str()) {
                routes.accepted += usize::from(is_true(route, "Accepted"));
                routes.programmed += usize::from(is_true(route, "Programmed"));
            }
        }
        routes
    }
}

/// The operator's writes after the first `skip` audit events, once they have stopped for
/// [`QUIET`] (or at `deadline`).
fn settled_writes(stack: &KubeStack, skip: usize, deadline: Instant) -> Vec<Value> {
    let user = format!("system:serviceaccount:{}:{}-operator", stack.deployment.namespace, stack.deployment.release);
    let writes = || -> Vec<Value> {
        stack
            .api
            .audit()
            .into_iter()
            .skip(skip)
            .filter(|e| e["user"]["username"] == user.as_str() && e["stage"] == "ResponseComplete")
            // Lease renewals are the operator's heartbeat, not work.
            .filter(|e| e["objectRef"]["resource"] != "leases")
            .collect()
    };
    let mut last = (writes().len(), Instant::now());
    loop {
        std::thread::sleep(POLL);
        let now = writes();
        if now.len() != last.0 {
            last = (now.len(), Instant::now());
        } else if last.1.elapsed() >= QUIET || Instant::now() >= deadline {
            return now;
        }
    }
}

/// The `manifold.dev/generation` of the config Secret (its first shard).
fn generation(stack: &KubeStack) -> Option<u64> {
    let name = format!("{}-gateway-config", stack.deployment.release);
    let secret = stack.admin.get("secret", &stack.deployment.namespace, &name)?;
    secret["metadata"]["annotations"]["manifold.dev/generation"].as_str()?.parse().ok()
}

/// The process id of a pod: the child of this process listening on its address (in its
/// command line; other scenarios' network namespaces may use the same addresses).
fn pid(pod: &Pod) -> Option<u32> {
    let needle = format!("{}:", pod.address);
    let me = std::process::id();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        // After the command name (which may hold spaces): state, then the parent's id.
        let parent: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let listens = cmdline.split(|b| *b == 0).any(|arg| arg.starts_with(needle.as_bytes()));
        (parent == me && listens).then_some(pid)
    })
}

/// Resident and peak resident memory (`VmRSS`, `VmHWM`) in MB.
fn memory_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU time of a pod's process so far, in seconds (clock ticks of 10 ms).
fn cpu_seconds(pod: &Pod) -> f64 {
    let Some(pid) = pid(pod) else { return 0.0 };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// A log line without its colours (ANSI escape sequences).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, up to a final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Seconds since 1970 of an RFC 3339 UTC timestamp (`2026-12-06T12:05:01.123456Z`).
fn unix_seconds(stamp: &str) -> Option<f64> {
    let (date, time) = stamp.strip_suffix('Z')?.split_once('T')?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, d) = (ymd.next()?.ok()?, ymd.next()?.ok()?, ymd.next()?.ok()?);
    let mut hms = time.split(':');
    let (h, min) = (hms.next()?.parse::<f64>().ok()?, hms.next()?.parse::<f64>().ok()?);
    let s = hms.next()?.parse::<f64>().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}
