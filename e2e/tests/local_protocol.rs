//! Local stack, raw HTTP: what the SDKs hide. Status codes and JSON-RPC error codes for
//! malformed input, sessions, headers and sizes; protocol version negotiation; admin
//! endpoints and metrics.

use manifold_e2e::peers::Upstream;
use manifold_e2e::raw::RawSession;
use manifold_e2e::{LocalStack, yaml};
use manifold_gateway::metrics::conventions::{ErrorType, ServerLabels};
use manifold_gateway::protocol::Method;
use opentelemetry::trace::TraceId;
use reqwest::StatusCode;
use serde_json::json;

async fn stack() -> (Upstream, LocalStack) {
    let alpha = Upstream::start("alpha").await;
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "")
        + &yaml::route("tools", "allowedOrigins: [\"https://app.example.com\"], mounts: [{server: alpha}]")
        + &yaml::route(
            "other",
            "hostnames: [other.example.com], path: /acme/tools/mcp, mounts: [{server: alpha, prefix: other}]",
        );
    let stack = LocalStack::start(&manifests).await;
    (alpha, stack)
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_the_specs_errors() {
    let (_alpha, stack) = stack().await;
    let session = RawSession::initialize(&stack.url("/acme/tools/mcp")).await;

    let parse = session.post("{not json").await;
    assert_eq!((parse.status, parse.body["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(-32700)));
    assert_eq!(parse.body["id"], serde_json::Value::Null);
    let no_version = session.post(r#"{"id":1,"method":"ping"}"#).await;
    assert_eq!((no_version.status, no_version.body["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(-32600)));
    let null_id = session.post(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#).await;
    assert_eq!(null_id.body["error"]["code"], -32600, "MCP forbids a null id: {}", null_id.body);
    let wrong_shape = session.post(r#"{"jsonrpc":"2.0","id":1,"method":5}"#).await;
    assert_eq!(wrong_shape.body["error"]["code"], -32600);
    let batch = session.post(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).await;
    assert_eq!(batch.body["error"]["code"], -32600);
    let unknown_method = session.request("resources/unheard_of", json!({})).await;
    assert_eq!((unknown_method.status, unknown_method.body["error"]["code"].as_i64()), (StatusCode::OK, Some(-32601)));
    let no_name = session.request("tools/call", json!({"arguments": {}})).await;
    assert_eq!(no_name.body["error"]["code"], -32602);
    let bad_cursor = session.request("tools/list", json!({"cursor": "made-up"})).await;
    assert_eq!(bad_cursor.body["error"]["code"], -32602);

    let notification =
        session.post(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":9}}"#).await;
    assert_eq!(notification.status, StatusCode::ACCEPTED);
    let ping = session.request("ping", json!({})).await;
    assert_eq!((ping.status, &ping.body["result"]), (StatusCode::OK, &json!({})));
    assert_eq!(ping.body["id"], 1, "the client's id comes back");

    let text = session.send(session.http().post(&session.url).header("content-type", "text/plain").body("{}")).await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"alpha_echo","arguments":{{"text":"{}"}}}}}}"#,
        "x".repeat(100_000)
    );
    assert_eq!(session.post(&huge).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    let put = session.send(session.http().put(&session.url)).await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    let json_only = reqwest::Client::new()
        .get(&session.url)
        .header("accept", "application/json")
        .header("mcp-session-id", session.session.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(json_only.status(), StatusCode::NOT_ACCEPTABLE, "GET opens an event stream");
    let bad_resume = session.send(session.http().get(&session.url).header("last-event-id", "0-99-99")).await;
    assert_eq!(bad_resume.status, StatusCode::BAD_REQUEST, "an event id this session never sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_are_required_scoped_and_deletable() {
    let (_alpha, stack) = stack().await;
    let url = stack.url("/acme/tools/mcp");

    let anonymous = RawSession::new(&url).request("tools/list", json!({})).await;
    assert_eq!((anonymous.status, anonymous.body["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(-32600)));
    let mut forged = RawSession::new(&url);
    forged.session = Some("0123456789abcdef".into());
    assert_eq!(forged.request("tools/list", json!({})).await.status, StatusCode::NOT_FOUND);

    // A session belongs to the route it was opened on.
    let session = RawSession::initialize(&url).await;
    let mut elsewhere = RawSession::new(&url);
    elsewhere.session = session.session.clone();
    let cross = elsewhere
        .send(
            elsewhere
                .http()
                .post(&url)
                .header("host", "other.example.com")
                .header("content-type", "application/json")
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
        )
        .await;
    assert_eq!(cross.status, StatusCode::NOT_FOUND, "a session of one route is unknown to another");

    assert_eq!(session.request("ping", json!({})).await.status, StatusCode::OK);
    let deleted = session.send(session.http().delete(&url)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(session.request("ping", json!({})).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_paths_and_versions_are_routed_and_negotiated() {
    let (_alpha, stack) = stack().await;
    let url = stack.url("/acme/tools/mcp");

    let by_host = RawSession::new(&url);
    let answer = by_host
        .send(by_host.http().post(&url).header("host", "OTHER.example.com:8443").header("content-type", "application/json").body(
            json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}).to_string(),
        ))
        .await;
    assert_eq!(answer.body["result"]["protocolVersion"], "2025-06-18", "a supported version is echoed");
    let mut other = RawSession::new(&url);
    other.session = Some(answer.headers["mcp-session-id"].to_str().unwrap().to_owned());
    let listed = other
        .send(
            other
                .http()
                .post(&url)
                .header("host", "other.example.com")
                .header("content-type", "application/json")
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
        )
        .await;
    let names = manifold_e2e::peers::tool_names(&listed.body["result"]);
    assert!(names.iter().all(|n| n.starts_with("other_")), "the host's own route serves it: {names:?}");

    let future = RawSession::new(&url)
        .request(
            "initialize",
            json!({"protocolVersion": "2099-01-01", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}),
        )
        .await;
    assert_eq!(future.body["result"]["protocolVersion"], "2025-11-25", "an unknown version gets our newest");
    // The stateless revision on the same route: its checks, in the spec's order.
    let stateless = |version: &str, method: &str, meta: serde_json::Value| {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": {"_meta": meta}});
        reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", version)
            .header("mcp-method", method)
            .body(body.to_string())
    };
    let meta = |version: &str| json!({"io.modelcontextprotocol/protocolVersion": version, "io.modelcontextprotocol/clientCapabilities": {}});
    let raw = RawSession::new(&url);
    let discovered = raw.send(stateless("2026-07-28", "server/discover", meta("2026-07-28"))).await;
    assert_eq!(discovered.status, StatusCode::OK, "{}", discovered.body);
    assert_eq!(discovered.body["result"]["supportedVersions"], json!(["2026-07-28"]));
    assert_eq!(discovered.body["result"]["resultType"], "complete");
    assert!(discovered.headers.get("mcp-session-id").is_none(), "no sessions in the stateless revision");
    let no_meta = raw.send(stateless("2026-07-28", "server/discover", json!(null))).await;
    assert_eq!((no_meta.status, no_meta.body["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(-32602)));
    assert_eq!(no_meta.body["id"], 7, "errors carry the request's id");
    let mismatch = raw.send(stateless("2026-07-28", "server/discover", meta("2099-01-01"))).await;
    assert_eq!((mismatch.status, mismatch.body["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(-32020)));
    let future = raw.send(stateless("2099-01-01", "server/discover", meta("2099-01-01"))).await;
    assert_eq!((future.status, future.body["error"]["code"].as_i64()), (StatusCode::BAD_REQUEST, Some(-32022)));
    assert_eq!(future.body["error"]["data"], json!({"supported": ["2026-07-28"], "requested": "2099-01-01"}));
    let removed = raw.send(stateless("2026-07-28", "ping", meta("2026-07-28"))).await;
    assert_eq!((removed.status, removed.body["error"]["code"].as_i64()), (StatusCode::NOT_FOUND, Some(-32601)));
    let listed = raw.send(stateless("2026-07-28", "tools/list", meta("2026-07-28"))).await;
    let names = manifold_e2e::peers::tool_names(&listed.body["result"]);
    assert!(names.contains(&"alpha_echo".to_owned()) && names.iter().all(|n| n.starts_with("alpha_")), "{names:?}");
    assert_eq!(
        (listed.body["result"]["ttlMs"].as_i64(), listed.body["result"]["cacheScope"].as_str()),
        (Some(0), Some("private"))
    );
    let wrong_method =
        raw.send(stateless("2026-07-28", "tools/list", meta("2026-07-28")).header("mcp-method", "prompts/list")).await;
    assert_eq!(wrong_method.body["error"]["code"], -32020, "two Mcp-Method headers: {}", wrong_method.body);

    // Browsers and DNS rebinding: Origin and Host are checked before anything else.
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let session = RawSession::initialize(&url).await;
    let from = |origin: &str| {
        session.http().post(&url).header("content-type", "application/json").header("origin", origin).body(ping)
    };
    assert_eq!(session.send(from("http://evil.example.com")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(session.send(from("https://app.example.com")).await.status, StatusCode::OK, "an allowed origin");
    let own = format!("http://{}", stack.gateway.mcp_addr);
    assert_eq!(session.send(from(&own)).await.status, StatusCode::OK, "the addressed host's own origin");
    let rebound = session
        .send(
            session
                .http()
                .post(&url)
                .header("host", "evil.example.com")
                .header("content-type", "application/json")
                .body(ping),
        )
        .await;
    assert_eq!(rebound.status, StatusCode::FORBIDDEN, "a loopback listener answers only loopback names");

    let nowhere = reqwest::get(stack.url("/no/such/route")).await.unwrap();
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_endpoints_report_health_readiness_and_metrics() {
    let (_alpha, stack) = stack().await;
    let session = RawSession::initialize(&stack.url("/acme/tools/mcp")).await;
    session.request("tools/call", json!({"name": "alpha_echo", "arguments": {"text": "m"}})).await;
    session.request("tools/call", json!({"name": "nope", "arguments": {}})).await;

    assert_eq!(reqwest::get(stack.admin_url("/healthz")).await.unwrap().status(), StatusCode::OK);
    assert_eq!(reqwest::get(stack.admin_url("/readyz")).await.unwrap().status(), StatusCode::OK);
    let metrics = reqwest::get(stack.admin_url("/metrics")).await.unwrap().text().await.unwrap();
    for expected in [
        r#"manifold_requests_total{method="tools/call",namespace="acme",outcome="ok",route="tools"} 1"#,
        r#"manifold_requests_total{method="tools/call",namespace="acme",outcome="error",route="tools"} 1"#,
        r#"manifold_requests_total{method="initialize",namespace="acme",outcome="ok",route="tools"} 1"#,
        r#"manifold_upstream_request_duration_seconds_count{method="tools/call",mount="alpha",namespace="acme",route="tools"} 1"#,
        "manifold_config_generation 1",
        "manifold_session_entries 1",
    ] {
        assert!(metrics.contains(expected), "missing `{expected}` in:\n{metrics}");
    }
    let status: serde_json::Value = reqwest::get(stack.admin_url("/status")).await.unwrap().json().await.unwrap();
    assert_eq!((status["ready"].as_bool(), status["generation"].as_u64()), (Some(true), Some(1)));
}

/// What Prometheus 2.42 sends on every scrape.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[tokio::test(flavor = "multi_thread")]
async fn a_scraper_asking_for_openmetrics_gets_the_conventions_histograms_with_exemplars() {
    let (_alpha, stack) = stack().await;
    let session = RawSession::initialize(&stack.url("/acme/tools/mcp")).await;
    session.request("tools/call", json!({"name": "alpha_echo", "arguments": {"text": "m"}})).await;
    session.request("tools/call", json!({"name": "nope", "arguments": {}})).await;
    let closed = session.send(session.http().delete(stack.url("/acme/tools/mcp"))).await;
    assert_eq!(closed.status, StatusCode::NO_CONTENT);
    // A request of a sampled trace leaves its trace id on its bucket, as this one would.
    let conventions = &stack.gateway.gateway.metrics.conventions;
    let traced =
        ServerLabels { namespace: "acme", route: "tools", mcp_method_name: Method::Ping, error_type: ErrorType::None };
    conventions.server.observe(&traced, 0.5, Some(TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736)));

    let client = reqwest::Client::new();
    let scraped = client.get(stack.admin_url("/metrics")).header("accept", PROMETHEUS_ACCEPT).send().await.unwrap();
    let content_type = scraped.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let text = scraped.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");

    let parsed = manifold_e2e::peers::parse_openmetrics(&text).await;
    assert_eq!(parsed.get("fatal"), None, "prometheus_client refuses it:\n{text}");
    let families = parsed["families"].as_array().unwrap();
    let family =
        |name: &str| families.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("{name} in\n{text}"));
    let count = |name: &str, sample: &str, labels: serde_json::Value| {
        let found =
            family(name)["samples"].as_array().unwrap().iter().find(|s| s["name"] == sample && s["labels"] == labels);
        found.map(|s| s["value"].as_f64().unwrap())
    };
    let server = "mcp_server_operation_duration_seconds";
    assert_eq!(family(server)["type"], "histogram");
    let labels = |method: &str, error_type: Option<&str>| {
        let mut labels = json!({"namespace": "acme", "route": "tools", "mcp_method_name": method});
        if let Some(error_type) = error_type {
            labels["error_type"] = json!(error_type);
        }
        labels
    };
    assert_eq!(count(server, &format!("{server}_count"), labels("tools/call", None)), Some(1.0), "{text}");
    assert_eq!(count(server, &format!("{server}_count"), labels("tools/call", Some("-32602"))), Some(1.0), "{text}");
    assert_eq!(count(server, &format!("{server}_count"), labels("initialize", None)), Some(1.0), "{text}");
    let client_op = "mcp_client_operation_duration_seconds";
    let attempt = json!({"namespace": "acme", "route": "tools", "mount": "alpha", "mcp_method_name": "tools/call"});
    assert_eq!(count(client_op, &format!("{client_op}_count"), attempt), Some(1.0), "{text}");
    let sessions = "mcp_server_session_duration_seconds";
    let ended = json!({"namespace": "acme", "route": "tools", "mcp_protocol_version": "2025-11-25"});
    assert_eq!(count(sessions, &format!("{sessions}_count"), ended), Some(1.0), "closed by its client: {text}");
    // Counters are named without `_total`, their samples with it.
    assert_eq!(family("manifold_requests")["type"], "counter");

    let exemplars: Vec<_> = family(server)["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| Some((s["labels"]["le"].as_str()?, s["exemplar"].as_object()?)))
        .map(|(le, e)| (le.to_owned(), e["labels"]["trace_id"].clone(), e["value"].clone()))
        .collect();
    assert_eq!(exemplars, [("0.5".to_owned(), json!("4bf92f3577b34da6a3ce929d0e0e4736"), json!(0.5))]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_with_no_valid_config_is_not_ready() {
    let stack = LocalStack::start("kind: [broken").await;
    assert_eq!(reqwest::get(stack.admin_url("/readyz")).await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reqwest::get(stack.admin_url("/healthz")).await.unwrap().status(), StatusCode::OK);
}
