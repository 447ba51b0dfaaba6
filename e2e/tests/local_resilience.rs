//! Local stack, real peers: upstream resilience. A dead upstream opens its breaker (its
//! calls then fail at once, saying when it will be tried again; its tools stay listed; other
//! mounts go on) and the breaker closes once it is back. Lists and reads are retried after a
//! transient failure; a tool call the upstream received is never sent twice, unless the tool
//! declares `idempotentHint` and the route allows it. A route's cap answers 429 with
//! `Retry-After` and a body; an upstream's cap, a tool result with the wait. Counts are taken
//! at the upstream (e2e/peers/faults.py).

use std::time::Duration;

use manifold_e2e::peers::{Upstream, tool_names};
use manifold_e2e::raw::RawSession;
use manifold_e2e::{LocalStack, eventually, yaml};
use serde_json::{Value, json};

/// An McpServer at `url` with `resilience` (a YAML flow mapping, or empty for none).
fn server(name: &str, url: &str, resilience: &str) -> String {
    let resilience = if resilience.is_empty() { String::new() } else { format!(", resilience: {resilience}") };
    format!(
        "---\napiVersion: manifold.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: {name}, namespace: acme}}\n\
         spec: {{remote: {{url: \"{url}\"}}{resilience}}}\n"
    )
}

async fn call(session: &RawSession, tool: &str, arguments: Value) -> Value {
    let answer = session.request("tools/call", json!({ "name": tool, "arguments": arguments })).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["result"].clone()
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

/// What the upstream received so far, by method (and `tools/call:<tool>`).
async fn counts(upstream: &Upstream) -> Value {
    reqwest::get(upstream.url("/_counts")).await.expect("counts").json().await.expect("JSON counts")
}

/// The upstream fails requests as `rules` say (faults.py).
async fn fault(upstream: &Upstream, rules: Value) {
    let response = reqwest::Client::new().post(upstream.url("/_faults")).json(&rules).send().await.expect("faults");
    assert!(response.status().is_success());
}

/// The value of the metric line starting with `series` (name and labels, exactly).
async fn metric(stack: &LocalStack, series: &str) -> Option<f64> {
    let text = reqwest::get(stack.admin_url("/metrics")).await.ok()?.text().await.ok()?;
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_upstream_opens_its_breaker_alone_and_it_closes_when_the_upstream_returns() {
    let (mut flaky, beta) = tokio::join!(Upstream::start_with("flaky", &[]), Upstream::start("beta"));
    let breaker = "{circuitBreaker: {consecutiveFailures: 3, openFor: 1s}}";
    let manifests = server("flaky", &flaky.mcp_url(), breaker)
        + &server("beta", &beta.mcp_url(), "")
        + &yaml::route("tools", "mounts: [{server: flaky}, {server: beta}]");
    let stack = LocalStack::start(&manifests).await;
    let session = RawSession::initialize(&stack.url("/acme/tools/mcp")).await;
    let listed = session.tool_names().await;
    assert_eq!(listed, ["beta_echo", "beta_multiply", "beta_whoami", "flaky_lookup", "flaky_record", "flaky_wait"]);

    flaky.kill().await;
    // A refused connection never left: retried twice, which makes three failures in a row.
    let failed = call(&session, "flaky_record", json!({ "text": "x" })).await;
    assert_eq!(failed["isError"], true);
    assert_eq!(text(&failed), "tool `flaky_record` is unavailable: mounted server `flaky` cannot connect");
    let open = metric(&stack, r#"manifold_circuit_breaker_state{mount="flaky",namespace="acme"}"#).await;
    assert_eq!(open, Some(1.0), "open");

    let refused = call(&session, "flaky_lookup", json!({ "key": "k" })).await;
    assert_eq!(refused["isError"], true);
    assert_eq!(
        text(&refused),
        "tool `flaky_lookup` is unavailable: mounted server `flaky` is not called for now: its circuit breaker is \
         open after repeated failures; retry in 1 seconds. Nothing was sent to it."
    );
    assert_eq!(refused["_meta"]["dev.manifold/retryAfterSeconds"], 1);
    assert_eq!(text(&call(&session, "beta_echo", json!({ "text": "on" })).await), "beta:on", "other mounts go on");
    assert_eq!(session.tool_names().await, listed, "its tools stay listed as last seen");
    let refusals = metric(&stack, r#"manifold_circuit_breaker_refusals_total{mount="flaky",namespace="acme"}"#).await;
    assert!(refusals >= Some(1.0), "{refusals:?}");

    flaky.restart().await;
    let back = eventually("the breaker to let a probe through and close", Duration::from_secs(20), || async {
        let result = call(&session, "flaky_record", json!({ "text": "back" })).await;
        (result["isError"] != true).then_some(result)
    })
    .await;
    assert_eq!(text(&back), "recorded:back");
    let closed = metric(&stack, r#"manifold_circuit_breaker_state{mount="flaky",namespace="acme"}"#).await;
    assert_eq!(closed, Some(0.0));
    let closings = r#"manifold_circuit_breaker_transitions_total{mount="flaky",namespace="acme",to="closed"}"#;
    assert_eq!(metric(&stack, closings).await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn safe_requests_are_retried_and_a_tool_call_the_upstream_received_is_never_sent_twice() {
    let flaky = Upstream::start_with("flaky", &["--faults"]).await;
    let manifests = server("flaky", &flaky.mcp_url(), "{retries: {backoff: 10ms}}")
        + &yaml::route("tools", "mounts: [{server: flaky}]")
        + &yaml::route("retrying", "mounts: [{server: flaky}], resilience: {retryIdempotentTools: true}");
    let stack = LocalStack::start(&manifests).await;
    let session = RawSession::initialize(&stack.url("/acme/tools/mcp")).await;

    // A list and a prompt, failed once after the upstream read them, are asked again.
    fault(&flaky, json!([{ "method": "tools/list", "status": 503, "times": 1 }])).await;
    assert!(session.tool_names().await.contains(&"flaky_record".to_owned()));
    fault(&flaky, json!([{ "method": "prompts/get", "status": 502, "times": 1 }])).await;
    let prompt = session.request("prompts/get", json!({ "name": "flaky_hello", "arguments": { "name": "Ada" } })).await;
    assert_eq!(prompt.body["result"]["messages"][0]["content"]["text"], "Hello, Ada", "{}", prompt.body);
    let seen = counts(&flaky).await;
    assert_eq!((seen["tools/list"].as_i64(), seen["prompts/get"].as_i64()), (Some(2), Some(2)), "{seen}");

    // A tool call that failed after the upstream received it is not sent again.
    fault(&flaky, json!([{ "method": "tools/call", "name": "record", "status": 500 }])).await;
    let failed = call(&session, "flaky_record", json!({ "text": "once" })).await;
    assert_eq!(failed["isError"], true);
    assert_eq!(text(&failed), "tool `flaky_record` is unavailable: mounted server `flaky` answered HTTP 500");
    assert_eq!(counts(&flaky).await["tools/call:record"], 1, "sent exactly once");

    // Refused with Retry-After: not sent again either, and the client is told the wait.
    fault(&flaky, json!([{ "method": "tools/call", "name": "record", "status": 503, "retryAfter": "7" }])).await;
    let paced = call(&session, "flaky_record", json!({ "text": "later" })).await;
    assert_eq!(paced["_meta"]["dev.manifold/retryAfterSeconds"], 7, "{paced}");
    assert_eq!(
        text(&paced),
        "tool `flaky_record` is unavailable: mounted server `flaky` answered HTTP 503; retry in 7 seconds."
    );
    assert_eq!(counts(&flaky).await["tools/call:record"], 2);

    // An idempotent tool is retried only on the route that allows it.
    fault(&flaky, json!([{ "method": "tools/call", "name": "lookup", "status": 500, "times": 1 }])).await;
    assert_eq!(call(&session, "flaky_lookup", json!({ "key": "k" })).await["isError"], true);
    assert_eq!(counts(&flaky).await["tools/call:lookup"], 1);
    let retrying = RawSession::initialize(&stack.url("/acme/retrying/mcp")).await;
    fault(&flaky, json!([{ "method": "tools/call", "name": "lookup", "status": 500, "times": 1 }])).await;
    assert_eq!(text(&call(&retrying, "flaky_lookup", json!({ "key": "k" })).await), "found:k");
    assert_eq!(counts(&flaky).await["tools/call:lookup"], 3, "the failed call and its retry");

    let succeeded =
        r#"manifold_upstream_retries_total{mount="flaky",namespace="acme",outcome="succeeded",route="retrying"}"#;
    assert_eq!(metric(&stack, succeeded).await, Some(1.0));
    let breaker = metric(&stack, r#"manifold_circuit_breaker_state{mount="flaky",namespace="acme"}"#).await;
    assert_ne!(breaker, Some(1.0), "answers in between keep it closed");
}

#[tokio::test(flavor = "multi_thread")]
async fn full_caps_refuse_with_the_wait_a_route_before_reading_with_429() {
    let flaky = Upstream::start_with("flaky", &["--faults"]).await;
    let manifests = server("flaky", &flaky.mcp_url(), "{concurrency: {maxInFlight: 1, maxWait: 0s}}")
        + &yaml::route("capped", "mounts: [{server: flaky}], resilience: {concurrency: {maxInFlight: 1, maxWait: 0s}}")
        + &yaml::route("open", "mounts: [{server: flaky}]");
    let stack = LocalStack::start(&manifests).await;
    let capped = RawSession::initialize(&stack.url("/acme/capped/mcp")).await;
    let open = RawSession::initialize(&stack.url("/acme/open/mcp")).await;

    let held = RawSession::resume(&capped.url, capped.session.clone());
    let waiting = tokio::spawn(async move {
        held.request("tools/call", json!({ "name": "flaky_wait", "arguments": { "seconds": 3 } })).await
    });
    eventually("the long call to reach the upstream", Duration::from_secs(10), || async {
        (counts(&flaky).await["tools/call:wait"] == 1).then_some(())
    })
    .await;

    let refused = capped.request("tools/list", json!({})).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(refused.body["error"]["code"], -32029, "{}", refused.body);
    assert_eq!(refused.body["error"]["data"]["retryAfterSeconds"], 1);
    assert_eq!(
        refused.body["error"]["message"],
        "route acme/capped is busy: 1 requests are in flight already; retry in 1 seconds. Nothing was run."
    );
    assert_eq!(refused.body["id"], Value::Null, "the body was not read");

    let busy = call(&open, "flaky_record", json!({ "text": "x" })).await;
    assert_eq!(busy["isError"], true);
    assert_eq!(
        text(&busy),
        "tool `flaky_record` is unavailable: mounted server `flaky` is busy: 1 requests to it are in flight \
         already; retry in 1 seconds. Nothing was sent to it."
    );
    assert_eq!(busy["_meta"]["dev.manifold/retryAfterSeconds"], 1);
    assert_eq!(counts(&flaky).await["tools/call:record"], Value::Null, "never sent");

    let finished = waiting.await.expect("the long call");
    assert_eq!(finished.body["result"]["content"][0]["text"], "waited");
    assert_eq!(tool_names(&capped.request("tools/list", json!({})).await.body["result"]).len(), 3, "a place again");
    let route = r#"manifold_concurrency_refusals_total{cap="route",namespace="acme",route="capped"}"#;
    let upstream = r#"manifold_concurrency_refusals_total{cap="upstream",namespace="acme",route="open"}"#;
    assert_eq!((metric(&stack, route).await, metric(&stack, upstream).await), (Some(1.0), Some(1.0)));
}
