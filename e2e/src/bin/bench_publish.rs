//! `make bench-publish`: what it costs to go from the world to the bytes the operator
//! publishes. 1,000 tenant namespaces, each with 10 McpServers (remote MCP servers with a
//! header) and 2 McpRoutes (5 mounts each, API keys from a Secret), are compiled with
//! `manifold_api::compile` and packed into gateway-config Secrets with
//! `manifold_api::publish::secrets`. Reports the time of both (median of 5, after one warm-up),
//! the compressed size and the shard count. Method and figures: docs/benchmarks.md.

use std::time::Instant;

use manifold_api::compile::{Inputs, compile};
use manifold_api::manifests::{Source, read};
use manifold_api::publish::{DATA_KEY, secrets};

const TENANTS: usize = 1000;

fn main() {
    let mut text = String::new();
    for t in 0..TENANTS {
        let ns = format!("tenant-{t:04}");
        for s in 0..10 {
            text += &format!(
                "---\napiVersion: manifold.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: server-{s}, namespace: {ns}}}\n\
                 spec: {{remote: {{url: \"http://server-{s}.{ns}.svc:8080/mcp\", timeout: 20s, headers: [{{name: X-Tenant, value: {ns}}}]}}}}\n"
            );
        }
        text += &format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: keys, namespace: {ns}}}\n\
             stringData: {{ci: key-{ns}-0123456789abcdef, ops: ops-{ns}-0123456789abcdef}}\n"
        );
        for r in 0..2 {
            let mounts: Vec<String> = (r * 5..r * 5 + 5).map(|s| format!("{{server: server-{s}}}")).collect();
            text += &format!(
                "---\napiVersion: manifold.dev/v1alpha1\nkind: McpRoute\nmetadata: {{name: route-{r}, namespace: {ns}}}\n\
                 spec: {{authentication: {{apiKeys: {{secretRef: {{name: keys}}}}}}, mounts: [{}]}}\n",
                mounts.join(", ")
            );
        }
    }
    let inputs: Inputs = read(&[Source { origin: "bench".into(), text }]).expect("manifests").inputs;
    let world = |inputs: &Inputs| {
        let compiled = compile(inputs, None);
        let published = secrets(&compiled.config, "manifold", "manifold-system").expect("it fits");
        (compiled, published)
    };
    let (compiled, published) = world(&inputs);
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        std::hint::black_box(world(std::hint::black_box(&inputs)));
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let rejected = compiled.outcomes.iter().filter(|o| !o.is_ok()).count();
    assert_eq!(rejected, 0, "every object compiles");
    let compressed: usize = published.iter().map(|s| s.data.as_ref().unwrap()[DATA_KEY].0.len()).sum();
    let json = serde_json::to_vec(&compiled.config).unwrap().len();
    println!(
        "world: {TENANTS} namespaces, {} McpServers, {} McpRoutes ({} mounts)",
        inputs.servers.len(),
        inputs.routes.len(),
        compiled.config.routes.iter().map(|r| r.mounts.len()).sum::<usize>()
    );
    println!("compile + publish: {:.0} ms median of 5 (target: under 1 s)", times[times.len() / 2] * 1e3);
    println!(
        "published: {} shard(s), {:.2} MB gzipped ({:.1} MB of JSON)",
        published.len(),
        compressed as f64 / 1e6,
        json as f64 / 1e6
    );
}
