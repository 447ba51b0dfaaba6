//! Scenario 8: every Grafana dashboard query and every alert's series, against a real
//! Prometheus (Debian's, `scripts/install-prometheus.sh`) scraping an operator and a gateway
//! every second while a tenant's route is used the ways the panels are about: tool calls
//! (cached, failing, of an unknown tool), a rate-limited call counted in Redis, a caller
//! without a key, a full cap on requests in flight, a mounted server that dies (retries, its
//! breaker opens), Redis down, sessions opened and closed, and a route added while the operator
//! may not write status (a reload, a reconcile error, then Programmed).
//!
//! Then each panel's queries, with the dashboard's variables set to this tenant, route and
//! scrape jobs (each variable's own `label_values` must offer that value) and
//! `$__rate_interval` as 5m (so the whole scenario lies inside every rate's window), must
//! answer at least one series with a number (not NaN: something was measured). Alerts need
//! not fire: their firing is `promtool test rules`' job (`tests/alert_rules.rs`); here each
//! series selector inside each alert's expression must select series, so an alert cannot wait
//! on a metric or a label value the binaries do not expose, and each whole expression must be
//! accepted by Prometheus. Every failure is listed, naming the dashboard, panel and query.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use manifold_e2e::dashboards::{self, PanelQuery};
use manifold_e2e::kube_stack::{KubeStack, OPERATOR_RBAC, SETTLE};
use manifold_e2e::peers::{Sdk, Upstream, run_client_with};
use manifold_e2e::pods::{GATEWAY_ADMIN_PORT, OPERATOR_ADMIN_PORT};
use manifold_e2e::prometheus::{Job, Prometheus};
use manifold_e2e::redis::RedisServer;
use manifold_e2e::{eventually, raw, yaml};
use serde_json::json;

const ALICE: &str = "Bearer alice-key-0123456789abcdef";
const BOB: &str = "Bearer bob-key-0123456789abcdef";
/// The ClusterRole's rule that lets the operator write status.
const STATUS_RULE: &str =
    "  - apiGroups: [manifold.dev]\n    resources: [mcpservers/status, mcproutes/status]\n    verbs: [patch]\n";
/// Grafana's `$__rate_interval`, long enough to hold the whole scenario.
const RATE_INTERVAL: &str = "5m";

/// Tenant `namespace`: API keys, McpServers alpha and beta, and route `tools` mounting both,
/// with a per-caller limit on `alpha_echo`, `alpha_add` results cached, and one request in
/// flight at a time.
fn tenant(namespace: &str, alpha: &Upstream, beta: &Upstream) -> String {
    let keys = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: keys, namespace: acme}\n\
                stringData: {alice: alice-key-0123456789abcdef, bob: bob-key-0123456789abcdef}\n";
    let route = yaml::route(
        "tools",
        "mounts: [{server: alpha}, {server: beta}], authentication: {apiKeys: {secretRef: {name: keys}}}, \
         rateLimits: [{name: echoes, scope: Principal, requests: 3, per: 1h, tools: [alpha_echo]}], \
         caching: {results: [{tools: [alpha_add], ttl: 10m}]}, \
         resilience: {concurrency: {maxInFlight: 1, maxWait: 0s}}",
    );
    let manifests = keys.to_owned()
        + &yaml::server("alpha", &alpha.mcp_url(), "")
        + &yaml::server("beta", &beta.mcp_url(), "")
        + &route;
    yaml::in_namespace(&manifests, namespace)
}

fn call(name: &str, arguments: serde_json::Value) -> serde_json::Value {
    json!({"op": "call", "name": name, "arguments": arguments})
}

/// The operator's count of reconciles that ended in `outcome`, from its `/metrics`.
async fn reconciles(stack: &KubeStack, outcome: &str) -> Option<u64> {
    let (_, text) = stack.operators[0].get(OPERATOR_ADMIN_PORT, "/metrics").await?;
    let line = format!("manifold_operator_reconciles_total{{outcome=\"{outcome}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&line)).and_then(|n| n.parse().ok())
}

pub async fn every_panel_answers() {
    let (alpha, mut beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let mut redis = RedisServer::start().await;
    let mut stack = KubeStack::new("dash", &["acme"]);
    stack.start_operator("operator-0").await;
    stack.start_gateway_with("gateway-0", &["--rate-limit-redis", &redis.url(0)]).await;
    let acme = stack.tenant(0).to_owned();
    stack.admin.apply(&tenant(&acme, &alpha, &beta));
    stack.until_programmed(&acme, "tools");
    let (gateway_job, operator_job) = ("dash-gateway", "dash-operator");
    let target = |address, port| SocketAddr::from((address, port)).to_string();
    let prometheus = Prometheus::start(&[
        Job { name: gateway_job.into(), targets: vec![target(stack.gateways[0].address, GATEWAY_ADMIN_PORT)] },
        Job { name: operator_job.into(), targets: vec![target(stack.operators[0].address, OPERATOR_ADMIN_PORT)] },
    ])
    .await;
    let url = stack.route_url(0, &format!("/{acme}/tools/mcp"));
    // What the replicas expose before any load is Prometheus' starting point.
    prometheus.until_scraped_twice_more().await;

    // Alice: a session with lists, calls, a cached result, a tool error, an unknown tool, and a
    // fourth echo her limit refuses (counted in Redis).
    let mut ops = vec![json!({"op": "list_tools"})];
    ops.extend((0..4).map(|i| call("alpha_echo", json!({"text": format!("hi {i}")}))));
    ops.extend([
        call("alpha_add", json!({"a": 1, "b": 2})),
        call("alpha_add", json!({"a": 1, "b": 2})),
        call("alpha_fail", json!({})),
        call("alpha_nope", json!({})),
        call("alpha_slow", json!({"seconds": 0.2})),
    ]);
    let results = run_client_with(&url, Sdk::Mcp, &[format!("Authorization: {ALICE}")], json!(ops)).await;
    assert_eq!(results[4]["isError"], true, "alice's fourth echo is refused by her limit: {}", results[4]);
    assert_eq!(results[7]["isError"], true, "alpha_fail fails: {}", results[7]);

    // A caller without a key is refused.
    let anonymous = raw::RawSession::new(&url)
        .request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "0"}}),
        )
        .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);

    // Two calls at once on a route that takes one: the second finds the cap full.
    let slow = |id: u64| {
        raw::stateless(&url, json!(id), "tools/call", json!({"name": "alpha_slow", "arguments": {"seconds": 1}}))
            .header("authorization", ALICE)
            .send()
    };
    let (first, second) = tokio::join!(slow(1), slow(2));
    let statuses = [first.expect("the gateway answers").status(), second.expect("the gateway answers").status()];
    assert!(statuses.iter().any(|s| !s.is_success()), "one of two calls at once is refused: {statuses:?}");

    // beta dies and Redis with it: bob's calls to beta fail, are retried, and open beta's
    // breaker; his echo is counted without Redis.
    beta.kill().await;
    redis.kill().await;
    let mut ops: Vec<_> = (0..6).map(|i| call("beta_echo", json!({"text": format!("down {i}")}))).collect();
    ops.push(call("alpha_echo", json!({"text": "no redis"})));
    let results = run_client_with(&url, Sdk::Mcp, &[format!("Authorization: {BOB}")], json!(ops)).await;
    assert_eq!(results[6]["content"][0]["text"], "alpha:no redis", "counted by the replica alone: {}", results[6]);

    // A route added while the operator may not write status: published (the gateway
    // reloads), the reconcile fails on the status, and once the rule is back it is Programmed.
    let rbac = stack.chart(OPERATOR_RBAC);
    assert!(rbac.contains(STATUS_RULE), "the chart grants status writes as this test expects:\n{rbac}");
    stack.admin.apply(&rbac.replace(STATUS_RULE, ""));
    let errors_before = reconciles(&stack, "error").await.unwrap_or(0);
    stack.admin.apply(&yaml::in_namespace(&yaml::route("extra", "mounts: [{server: alpha}]"), &acme));
    eventually("a reconcile fails on the refused status write", SETTLE, || async {
        reconciles(&stack, "error").await.filter(|n| *n > errors_before)
    })
    .await;
    stack.admin.apply(&rbac);
    stack.until_programmed(&acme, "extra");
    // A family a replica creates at its first count shows Prometheus that count as its first
    // value, so a rate sees only later ones: once every series is scraped, alice comes back
    // (a second session, a cache hit, an echo: Redis still down, her replica's own bucket,
    // fresh, lets it through).
    prometheus.until_scraped_twice_more().await;
    let ops = json!([{"op": "list_tools"}, call("alpha_add", json!({"a": 1, "b": 2})), call("alpha_echo", json!({"text": "again"}))]);
    let results = run_client_with(&url, Sdk::Mcp, &[format!("Authorization: {ALICE}")], ops).await;
    assert_eq!(results[2]["content"][0]["text"], "alpha:again", "counted by the replica alone: {}", results[2]);
    // Prometheus has it all.
    prometheus.until_scraped_twice_more().await;

    let mut failures = Vec::new();
    for path in dashboards::files() {
        let dashboard = dashboards::read(&path);
        let title = dashboard["title"].as_str().unwrap_or_default().to_owned();
        let job = if title.contains("Operator") { operator_job } else { gateway_job };
        let values =
            BTreeMap::from([("namespace", acme.clone()), ("route", "tools".to_owned()), ("job", job.to_owned())]);
        for variable in dashboards::label_variables(&dashboard) {
            let matcher = dashboards::substitute(&variable.matcher, &values, RATE_INTERVAL);
            let wanted = &values[variable.name.as_str()];
            match prometheus.label_values(&variable.label, &matcher).await {
                Ok(offered) if offered.contains(wanted) => {}
                answer => failures.push(format!(
                    "{title}: variable `{}` (label_values({matcher}, {})) does not offer `{wanted}`: {answer:?}",
                    variable.name, variable.label
                )),
            }
        }
        for PanelQuery { panel, expr, .. } in dashboards::panel_queries(&dashboard) {
            let query = dashboards::substitute(&expr, &values, RATE_INTERVAL);
            let problem = match prometheus.query(&query).await {
                Err(refused) => Some(format!("refused: {refused}")),
                Ok(samples) if samples.is_empty() => Some("no series".to_owned()),
                Ok(samples) if !samples.iter().any(|s| s.value.is_finite()) => {
                    Some(format!("no series with a number: {samples:?}"))
                }
                Ok(_) => None,
            };
            if let Some(problem) = problem {
                failures.push(format!("{title} / panel \"{panel}\": {problem}\n    {query}"));
            }
        }
    }
    for rule in dashboards::alert_rules() {
        if let Err(refused) = prometheus.query(&rule.expr).await {
            failures.push(format!("alert {}: the expression is refused: {refused}\n    {}", rule.name, rule.expr));
        }
        for selector in dashboards::selectors(&rule.expr) {
            match prometheus.query(&selector).await {
                Ok(samples) if !samples.is_empty() => {}
                answer => failures.push(format!("alert {}: selects no series: {answer:?}\n    {selector}", rule.name)),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} dashboard queries or alert selectors found nothing in what the operator and gateway expose:\n{}\n\
         (prometheus' log: {})",
        failures.len(),
        failures.join("\n"),
        prometheus.log()
    );
}
