//! `make bench-sessions`: what sealed sessions cost. Seals and opens session tokens (the
//! claims of a real route's session) and reports µs per token; then opens 100,000 idle
//! sessions in a gateway's session table and reports the resident memory each adds. Each
//! session holds two mounts' upstream sessions, as after `initialize` on a two-mount route.
//! Method and figures: docs/benchmarks.md.

use std::time::{Duration, Instant};

use manifold_gateway::mcp::seal::{Claims, KeyRing, binding};
use manifold_gateway::mcp::session::Sessions;
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
    let before = resident_bytes();
    let mut kept = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let capabilities = serde_json::value::RawValue::from_string(r#"{"sampling":{}}"#.into()).unwrap();
        let hello = Hello { protocol_version: "2025-11-25".into(), capabilities };
        let principal = binding(&format!("api-key caller-{i}"));
        let session = sessions.create(("acme".into(), "assistant".into()), hello, principal, upstreams());
        kept.push(session.expect("room").id.len());
    }
    let per_session = (resident_bytes() - before) as f64 / SESSIONS as f64;
    println!("{SESSIONS} idle sessions: {per_session:.0} bytes of resident memory each (target ≤ 512)");
}

/// Resident set size, from /proc/self/statm (pages).
fn resident_bytes() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: i64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
    pages * 4096
}
