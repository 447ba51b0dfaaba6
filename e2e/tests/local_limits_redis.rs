//! Cluster-wide rate limits with a real `redis-server`: two gateway processes share one
//! limit through it, taking from all of a request's buckets or none; and a Redis killed (or
//! frozen) mid-run is met as configured. Failing open, each replica's own buckets go on
//! limiting; failing closed, counted requests are refused with a message saying why. Either
//! way the outage is logged once (and its end once) and counted on /metrics.

use std::path::{Path, PathBuf};
use std::time::Duration;

use manifold_e2e::peers::{Sdk, Upstream, run_client};
use manifold_e2e::process::{GatewayProcess, Options};
use manifold_e2e::redis::RedisServer;
use manifold_e2e::yaml;
use serde_json::{Value, json};

const PATH: &str = "/acme/tools/mcp";
const OUTAGE: &str = "rate limit store unavailable";
const RECOVERY: &str = "rate limit store answers again";

/// A manifests folder with one route over `alpha`, and a session key file, for gateways to share.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(alpha: &Upstream, limits: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).expect("create the manifests folder");
        let route = yaml::route("tools", &format!("mounts: [{{server: alpha}}], rateLimits: [{limits}]"));
        std::fs::write(manifests.join("route.yaml"), yaml::server("alpha", &alpha.mcp_url(), "") + &route)
            .expect("write the manifests");
        std::fs::write(dir.path().join("keys"), "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=")
            .expect("write the keys");
        Files { dir }
    }

    /// A gateway on these files with `args`, logging JSON (the policy module at info) to
    /// `<name>.log`.
    async fn gateway(&self, name: &str, args: &[&str]) -> (GatewayProcess, PathBuf) {
        let log = self.dir.path().join(format!("{name}.log"));
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        // A timeout well above a loopback round trip on a busy machine: only a hung Redis
        // reaches it (the default, 50 ms, is for a production network).
        args.extend(["--rate-limit-redis-timeout-ms", "1000", "--log-format", "json"].map(String::from));
        let options =
            Options { args, log_filter: Some("warn,manifold_gateway::policy=info".into()), log: Some(log.clone()) };
        let dir = self.dir.path();
        (GatewayProcess::start_with(&dir.join("manifests"), &dir.join("keys"), options).await, log)
    }
}

/// A `tools/call` of the stateless revision; the JSON-RPC result.
async fn call(gateway: &GatewayProcess, tool: &str) -> Value {
    let arguments = if tool == "alpha_add" { json!({"a": 1, "b": 2}) } else { json!({"text": "t"}) };
    let request = manifold_e2e::raw::stateless(
        &gateway.url(PATH),
        json!(1),
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
    );
    // A guard, not a measurement: a request stalled by a hung Redis fails the test here.
    let response = tokio::time::timeout(Duration::from_secs(20), request.send())
        .await
        .expect("the gateway answers within 20 s")
        .expect("the gateway answers");
    let body: Value = response.json().await.expect("a JSON body");
    body["result"].clone()
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

/// Log lines (JSON) whose message starts with `message`.
fn logged(log: &Path, message: &str) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"].as_str().is_some_and(|m| m.starts_with(message)))
        .collect()
}

/// The value of the sample `series` (name and labels as exposed) on the gateway's /metrics.
async fn metric(gateway: &GatewayProcess, series: &str) -> Option<f64> {
    let metrics = reqwest::get(format!("http://{}/metrics", gateway.admin)).await.ok()?.text().await.ok()?;
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_sharing_a_redis_enforce_one_limit() {
    let (alpha, redis) = tokio::join!(Upstream::start("alpha"), RedisServer::start_with_password(Some("s3cret")));
    let files = Files::new(
        &alpha,
        "{name: calls, scope: Route, requests: 4, per: 1m, tools: ['*']}, \
         {name: echoes, scope: Principal, requests: 1, per: 1h, tools: ['alpha_echo']}",
    );
    let url = redis.url(3);
    let args = ["--rate-limit-redis", url.as_str()];
    let ((a, a_log), (b, b_log)) = tokio::join!(files.gateway("a", &args), files.gateway("b", &args));

    // An echo through A takes a token from `calls` and the one of `echoes`.
    assert_eq!(text(&call(&a, "alpha_echo").await), "alpha:t");
    // B draws from the same buckets: `echoes` is empty, so B refuses, and `calls` gives no
    // token either (all of a request's buckets or none).
    let refused = call(&b, "alpha_echo").await;
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(text(&refused).starts_with("rate limit `echoes` reached: retry in "), "{refused}");
    let wait = refused["_meta"]["dev.manifold/retryAfterSeconds"].as_u64().expect("the wait in _meta");
    assert!((3500..=3600).contains(&wait), "the next of 1 token an hour: {wait}");

    // A Redis that forgot the script (restarted, or SCRIPT FLUSH) gets it again on NOSCRIPT.
    assert_eq!(redis.cli(3, &["SCRIPT", "FLUSH"]).await.trim(), "OK");
    // `calls` has 3 of its 4 tokens left: B, A, B get through...
    for gateway in [&b, &a, &b] {
        assert_eq!(text(&call(gateway, "alpha_add").await), "3");
    }
    // ...and the fifth call it counts, through A, is refused with the wait for its next token
    // (one each 15 s), as the Python `mcp` client hands it to an agent.
    let op = json!([{"op": "call", "name": "alpha_add", "arguments": {"a": 1, "b": 2}, "meta": true}]);
    let sdk = run_client(&a.url(PATH), Sdk::Mcp, op).await;
    assert_eq!(sdk[0]["isError"], true, "{}", sdk[0]);
    assert!(text(&sdk[0]).starts_with("rate limit `calls` reached: retry in "), "{}", sdk[0]);
    assert!(text(&sdk[0]).ends_with(". Nothing was run."), "{}", sdk[0]);
    let wait = sdk[0]["_meta"]["dev.manifold/retryAfterSeconds"].as_u64().expect("the wait in _meta");
    assert!((1..=15).contains(&wait), "the next of 4 tokens a minute: {wait}");

    // The buckets live in the URL's database, named by scope, tenant, route, limit, numbers
    // and caller, and expire once they would be full again (a minute for `calls`).
    let mut keys: Vec<String> =
        redis.cli(3, &["--scan", "--pattern", "manifold:rl:*"]).await.lines().map(str::to_owned).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["manifold:rl:p:acme:tools:echoes:1-3600000-1:anonymous", "manifold:rl:r:acme:tools:calls:4-60000-4"]
    );
    let ttl: u64 = redis.cli(3, &["PTTL", &keys[1]]).await.trim().parse().expect("a TTL in ms");
    assert!((1..=61_000).contains(&ttl), "{ttl}");
    assert_eq!(redis.cli(0, &["DBSIZE"]).await.trim(), "0", "nothing in another database");

    // Every request was decided in Redis, in one round trip each.
    let answers = |answer: &'static str| {
        let series = format!("manifold_rate_limit_store_duration_seconds_count{{answer=\"{answer}\"}}");
        let (a, b) = (&a, &b);
        async move { metric(a, &series).await.unwrap_or(0.0) + metric(b, &series).await.unwrap_or(0.0) }
    };
    assert_eq!((answers("taken").await, answers("refused").await, answers("error").await), (4.0, 2.0, 0.0));
    assert!(logged(&a_log, OUTAGE).is_empty() && logged(&b_log, OUTAGE).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_or_frozen_mid_run_fails_open_to_the_replicas_own_buckets() {
    let (alpha, mut redis) = tokio::join!(Upstream::start("alpha"), RedisServer::start());
    let files = Files::new(&alpha, "{name: calls, scope: Route, requests: 2, per: 1h, tools: ['*']}");
    let url = redis.url(0);
    let (gateway, log) =
        files.gateway("open", &["--rate-limit-redis", &url, "--rate-limit-redis-unavailable", "open"]).await;
    assert_eq!(text(&call(&gateway, "alpha_add").await), "3", "Redis's bucket: one of two taken");
    let taken = r#"manifold_rate_limit_store_duration_seconds_count{answer="taken"}"#;
    assert_eq!(metric(&gateway, taken).await, Some(1.0), "decided in Redis");

    // Killed: calls go on, counted by this replica's own bucket of 2, which then refuses.
    redis.kill().await;
    for _ in 0..2 {
        let result = call(&gateway, "alpha_add").await;
        assert_eq!(text(&result), "3", "{result}");
    }
    let refused = call(&gateway, "alpha_add").await;
    assert!(text(&refused).starts_with("rate limit `calls` reached: retry in "), "{refused}");
    let outages = logged(&log, OUTAGE);
    assert_eq!(outages.len(), 1, "logged once per outage: {outages:?}");
    assert_eq!(outages[0]["level"], "WARN");
    let message = outages[0]["fields"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("each replica counts limits with its own buckets"), "{message}");
    assert_eq!(outages[0]["fields"]["url"], url.as_str());
    let failures = r#"manifold_rate_limit_store_failures_total{outcome="open"}"#;
    assert_eq!(metric(&gateway, failures).await, Some(3.0));
    assert_eq!(metric(&gateway, "manifold_rate_limit_store_down").await, Some(1.0));
    assert_eq!(metric(&gateway, "manifold_rate_limit_store_outages_total").await, Some(1.0));

    // Back, empty: within a second a request asks it again, and counting is shared again.
    redis.restart().await;
    manifold_e2e::eventually("the gateway notices Redis is back", Duration::from_secs(15), || {
        let (gateway, log) = (&gateway, &log);
        async move {
            call(gateway, "alpha_add").await;
            (!logged(log, RECOVERY).is_empty()).then_some(())
        }
    })
    .await;
    assert_eq!(metric(&gateway, "manifold_rate_limit_store_down").await, Some(0.0));
    // The replica's own bucket is empty, so this token is Redis's: the probe took the first.
    assert_eq!(text(&call(&gateway, "alpha_add").await), "3");
    assert!(text(&call(&gateway, "alpha_add").await).starts_with("rate limit `calls` reached"));
    let recoveries = logged(&log, RECOVERY);
    assert_eq!(recoveries.len(), 1, "{recoveries:?}");
    assert!(recoveries[0]["fields"]["decided_without"].as_u64() >= Some(3), "{}", recoveries[0]);

    // Frozen (connections open, no answers): a request waits no longer than the timeout, and
    // is decided by the replica's own bucket (empty, so refused).
    redis.freeze();
    let refused = call(&gateway, "alpha_add").await;
    assert!(text(&refused).starts_with("rate limit `calls` reached"), "{refused}");
    let timeouts = r#"manifold_rate_limit_store_duration_seconds_count{answer="timeout"}"#;
    assert_eq!(metric(&gateway, timeouts).await, Some(1.0));
    assert_eq!(logged(&log, OUTAGE).len(), 2, "a second outage, logged once");
    assert_eq!(metric(&gateway, "manifold_rate_limit_store_outages_total").await, Some(2.0));
    redis.thaw();
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_mid_run_fails_closed_with_a_message_that_says_why() {
    let (alpha, mut redis) = tokio::join!(Upstream::start("alpha"), RedisServer::start());
    let files = Files::new(&alpha, "{name: everything, scope: Route, requests: 100, per: 1m}");
    let url = redis.url(0);
    let (gateway, log) =
        files.gateway("closed", &["--rate-limit-redis", &url, "--rate-limit-redis-unavailable", "closed"]).await;
    assert_eq!(text(&call(&gateway, "alpha_add").await), "3");

    redis.kill().await;
    let ops = json!([
        {"op": "call", "name": "alpha_add", "arguments": {"a": 1, "b": 2}, "meta": true},
        {"op": "list_tools"},
    ]);
    let results = run_client(&gateway.url(PATH), Sdk::Mcp, ops).await;
    let says = "rate limit `everything` could not be checked (the rate limit store is unavailable): retry in 1 second";
    assert_eq!(results[0]["isError"], true, "{}", results[0]);
    assert_eq!(text(&results[0]), format!("{says}. Nothing was run."));
    assert_eq!(results[0]["_meta"]["dev.manifold/retryAfterSeconds"], 1, "{}", results[0]);
    assert_eq!(results[1]["error"]["code"], -32029, "{}", results[1]);
    assert_eq!(results[1]["error"]["message"], says, "{}", results[1]);

    let outages = logged(&log, OUTAGE);
    assert_eq!(outages.len(), 1, "logged once per outage: {outages:?}");
    let message = outages[0]["fields"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("requests that a rate limit counts are refused"), "{message}");
    let failures = r#"manifold_rate_limit_store_failures_total{outcome="closed"}"#;
    assert_eq!(metric(&gateway, failures).await, Some(2.0));
    let refused = r#"manifold_rate_limited_total{limit="everything",namespace="acme",route="tools"}"#;
    assert_eq!(metric(&gateway, refused).await, Some(2.0));
    assert_eq!(metric(&gateway, "manifold_rate_limit_store_down").await, Some(1.0));
}
