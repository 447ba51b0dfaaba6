//! `make bench-openapi`: what compiling a large OpenAPI document costs. Compiles an McpServer
//! whose `spec.openapi.url` names the GitHub REST API description (from the npm package
//! `@octokit/openapi`, installed by scripts/install-peers.sh), mounted by one route, with the
//! same pure `compile` the operator and local mode run; reports wall time per compile (median
//! of 5, after one warm-up), the operations and tools, the compiled config's size, and how
//! far the first compile raises the process's peak resident memory (the document's text is
//! already in memory). Method and figures: docs/benchmarks.md.

use std::time::Instant;

use manifold_api::compile::{Inputs, compile};
use manifold_api::config::Upstream;
use manifold_api::manifests::{Source, read};
use manifold_e2e::{repo_root, yaml};

const DOCUMENT: &str = "e2e/peers/node/node_modules/@octokit/openapi/generated/api.github.com.json";
const URL: &str = "https://api.github.example/openapi.json";

fn main() {
    let path = repo_root().join(DOCUMENT);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/install-peers.sh first", path.display()));

    let manifests =
        yaml::openapi_server("github", &format!("url: {URL}")) + &yaml::route("github", "mounts: [{server: github}]");
    let mut inputs: Inputs = read(&[Source { origin: "bench".into(), text: manifests }]).expect("manifests").inputs;
    inputs.documents.insert(URL.into(), Ok(text.clone()));

    let before = status_bytes("VmRSS:");
    let compiled = compile(&inputs, None);
    let peak = status_bytes("VmHWM:") - before;
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        std::hint::black_box(compile(std::hint::black_box(&inputs), None));
        times.push(started.elapsed().as_secs_f64());
    }
    let document: serde_json::Value = serde_json::from_str(&text).expect("the description is JSON");
    let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    let operations: usize = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().map_or(0, |i| i.keys().filter(|k| methods.contains(&k.as_str())).count()))
        .sum();
    drop(document);
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];

    let route = compiled.config.routes.first().expect("the route is served");
    let Upstream::OpenApi(api) = &route.mounts[0].upstream else { panic!("an OpenAPI upstream") };
    let skipped = compiled.outcomes.iter().flat_map(|o| &o.conditions).filter(|c| c.type_ == "PartiallyInvalid");
    let config_bytes = serde_json::to_vec(&compiled.config).expect("config serializes").len();
    println!("document: {} ({:.1} MB), {operations} operations", DOCUMENT, text.len() as f64 / 1e6);
    println!(
        "compile: {:.0} ms median of 5 ({:.0} µs per operation; target: 1,000 operations in under 1 s)",
        median * 1e3,
        median * 1e6 / operations as f64
    );
    println!(
        "served: {} tools, {} resources, {} templates; skipped: {}",
        api.tools.len(),
        api.resources.len(),
        api.templates.len(),
        skipped.map(|c| c.message.matches(" is not served").count()).sum::<usize>()
    );
    println!(
        "compiled config: {:.1} MB of JSON; peak resident memory during the first compile: +{:.0} MB",
        config_bytes as f64 / 1e6,
        peak as f64 / 1e6
    );
}

/// A memory figure of this process from /proc/self/status (`VmRSS:` now, `VmHWM:` the peak).
fn status_bytes(field: &str) -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with(field)).expect("the field");
    let kib: i64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("kB");
    kib * 1024
}
