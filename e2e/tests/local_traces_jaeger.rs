//! One trace from client to upstream, in a real trace backend (Jaeger, e2e/src/jaeger.rs).
//! Clients send their trace context: the Python `mcp` SDK in a session and FastMCP's client in
//! the 2026-07-28 revision (in `params._meta`), and a raw client (in the HTTP header, in
//! `_meta`, or both). The gateway runs as a process exporting over OTLP. The upstreams export
//! their own spans: FastMCP with its OpenTelemetry support on, and a FastAPI app under
//! OpenTelemetry's instrumentation.
//!
//! Each trace is checked link by link, by span ids, kinds, services and names: client span →
//! gateway SERVER → gateway CLIENT → upstream, and for an elicitation asked mid-call, on to the
//! client's span handling it. The gateway's SERVER span carries the MCP semantic conventions'
//! attributes, and no argument value or principal name reaches any gateway span. Sampling:
//! an unsampled parent at ratio 0 yields no gateway span, nor does a request refused before
//! authentication unless its parent is sampled.

use std::collections::BTreeSet;

use base64::Engine;
use manifold_e2e::jaeger::{Jaeger, Span, Trace};
use manifold_e2e::peers::{Sdk, Upstream, run_client_traced, text};
use manifold_e2e::process::{GatewayProcess, Options};
use manifold_e2e::{raw, yaml};
use serde_json::{Value, json};

const GATEWAY: &str = "manifold-gateway";
const CLIENT: &str = "e2e-client";
/// Values that must reach no gateway span: an argument, a principal's name and its key.
const ARGUMENT: &str = "argument-zebra-42d9";
const PRINCIPAL: &str = "principal-wren-7c1f";
const KEY: &str = "key-of-wren-0123456789abcdef";

/// How the gateway exports its spans to Jaeger.
#[derive(Clone, Copy)]
enum Otlp {
    Grpc,
    Http,
}

/// A gateway process on `manifests` exporting its spans to `jaeger` over `otlp`, with more
/// `args`; the folder holds its manifests and session keys.
async fn gateway(jaeger: &Jaeger, manifests: &str, otlp: Otlp, args: &[&str]) -> (GatewayProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifests_dir = dir.path().join("manifests");
    std::fs::create_dir(&manifests_dir).expect("create the manifests folder");
    std::fs::write(manifests_dir.join("manifests.yaml"), manifests).expect("write manifests");
    let keys = dir.path().join("session-keys");
    std::fs::write(&keys, base64::engine::general_purpose::STANDARD.encode([7u8; 32])).expect("write session keys");
    let (endpoint, protocol) = match otlp {
        Otlp::Grpc => (jaeger.otlp_grpc_url(), "grpc"),
        Otlp::Http => (jaeger.otlp_http_url(), "http"),
    };
    let mut all = vec!["--otel-endpoint".to_owned(), endpoint, "--otel-protocol".to_owned(), protocol.to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let gateway = GatewayProcess::start_with(&manifests_dir, &keys, Options { args: all, ..Options::default() }).await;
    (gateway, dir)
}

fn exporting(jaeger: &Jaeger) -> [String; 2] {
    ["--otlp-endpoint".to_owned(), jaeger.otlp_http_url()]
}

/// The gateway's and the upstream's spans of one call.
struct Hops {
    trace: Trace,
    server: Span,
    call: Span,
    upstream: Span,
}

/// Waits until trace `traced` (the `trace` a traced client op printed: the client's own span
/// around the call) holds the gateway's SERVER span `tools/call <tool>` and the upstream's
/// span `upstream`, then checks every link: client span (under the client's own) → gateway
/// SERVER → gateway CLIENT → upstream. Returns those, and the client span.
async fn hops(jaeger: &Jaeger, traced: &Value, tool: &str, upstream: (&str, &str)) -> (Hops, Span) {
    let trace_id = traced["trace_id"].as_str().unwrap_or_else(|| panic!("a traced op prints its ids: {traced}"));
    let root_id = traced["span_id"].as_str().expect("a traced op prints its span id");
    let hops = gateway_hops(jaeger, trace_id, tool, upstream).await;
    let (trace, tree) = (&hops.trace, hops.trace.tree());
    let root = trace.by_id(root_id).unwrap_or_else(|| panic!("the client's own span {root_id} is missing:\n{tree}"));
    assert_eq!(root.service, CLIENT, "{tree}");
    let client = hops
        .server
        .parent
        .as_deref()
        .and_then(|id| trace.by_id(id))
        .unwrap_or_else(|| panic!("the gateway's SERVER span has no parent in the trace:\n{tree}"))
        .clone();
    assert_eq!((client.service.as_str(), client.kind.as_str()), (CLIENT, "client"), "SERVER's parent:\n{tree}");
    assert!(client.id == root.id || trace.descends_from(&client, root), "the client's span is under its own:\n{tree}");
    (hops, client)
}

/// Waits until trace `trace_id` holds the gateway's SERVER span `tools/call <tool>` and the
/// upstream's span `upstream` (with its parent), then checks the links gateway SERVER →
/// gateway CLIENT → upstream.
async fn gateway_hops(jaeger: &Jaeger, trace_id: &str, tool: &str, upstream: (&str, &str)) -> Hops {
    let server_name = format!("tools/call {tool}");
    let what = format!("the gateway's `{server_name}` and {}'s `{}`", upstream.0, upstream.1);
    let trace = jaeger
        .wait_for(trace_id, &what, |t| {
            let up = t.spans.iter().find(|s| s.service == upstream.0 && s.name == upstream.1);
            t.spans.iter().any(|s| s.service == GATEWAY && s.name == server_name)
                && up.is_some_and(|u| u.parent.as_deref().is_none_or(|p| t.by_id(p).is_some()))
        })
        .await;
    let tree = trace.tree();
    let server = trace.span(GATEWAY, &server_name).clone();
    assert_eq!(server.kind, "server", "`{server_name}`:\n{tree}");
    let upstream_span = trace.span(upstream.0, upstream.1).clone();
    assert_eq!(upstream_span.kind, "server", "the upstream's span:\n{tree}");
    let call = upstream_span
        .parent
        .as_deref()
        .and_then(|id| trace.by_id(id))
        .unwrap_or_else(|| panic!("the upstream's span has no parent in the trace:\n{tree}"))
        .clone();
    assert_eq!((call.service.as_str(), call.kind.as_str()), (GATEWAY, "client"), "the upstream's parent:\n{tree}");
    assert_eq!(call.parent.as_deref(), Some(server.id.as_str()), "the gateway's CLIENT span under its SERVER:\n{tree}");
    Hops { trace, server, call, upstream: upstream_span }
}

/// Asserts each `(key, value)` is a tag of `span`.
fn assert_tags(trace: &Trace, span: &Span, tags: &[(&str, &str)]) {
    for (key, want) in tags {
        assert_eq!(
            span.tag(key).as_deref(),
            Some(*want),
            "`{key}` of {} `{}`:\n{}",
            span.service,
            span.name,
            trace.tree()
        );
    }
}

fn traceparent(trace_id: &str, span_id: &str, sampled: bool) -> String {
    format!("00-{trace_id}-{span_id}-{}", if sampled { "01" } else { "00" })
}

/// A 2026-07-28 `tools/call` with `header` as its `traceparent` header and `meta` as its
/// `_meta.traceparent`, each when given; returns the HTTP status and the body.
async fn call(url: &str, tool: &str, header: Option<&str>, meta: Option<&str>) -> (u16, Value) {
    let mut params = json!({"name": tool, "arguments": {"name": "traceparent"}});
    if let Some(meta) = meta {
        params["_meta"] = json!({"traceparent": meta});
    }
    let mut request = raw::stateless(url, json!(1), "tools/call", params);
    if let Some(header) = header {
        request = request.header("traceparent", header);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
}

/// The ids of the traces holding a SERVER span of the gateway, as Jaeger has them now.
async fn traces_with_gateway_server_spans(jaeger: &Jaeger) -> BTreeSet<String> {
    let traces = jaeger.traces_of(GATEWAY).await;
    traces.into_iter().filter(|t| t.of_service(GATEWAY).any(|s| s.kind == "server")).map(|t| t.id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_client_the_gateway_and_fastmcp_make_one_trace_by_the_conventions() {
    let jaeger = Jaeger::start().await;
    let export = exporting(&jaeger);
    let alpha = Upstream::start_with("alpha", &[&export[0], &export[1]]).await;
    let callers = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: callers, namespace: acme}}\nstringData: {{{PRINCIPAL}: {KEY}}}\n"
    );
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "")
        + &callers
        + &yaml::route("keyed", "mounts: [{server: alpha}], authentication: {apiKeys: {secretRef: {name: callers}}}");
    let (gateway, _dir) = gateway(&jaeger, &manifests, Otlp::Grpc, &[]).await;

    let ops = json!([
        {"op": "call", "name": "alpha_echo", "arguments": {"text": ARGUMENT}, "traced": true},
        {"op": "call", "name": "alpha_fail", "arguments": {}, "traced": true},
        {"op": "call", "name": "nowhere_missing", "arguments": {"text": ARGUMENT}, "traced": true},
        {"op": "call", "name": "alpha_add", "arguments": {"a": ARGUMENT, "b": 1}, "traced": true},
    ]);
    let bearer = format!("Authorization: Bearer {KEY}");
    let r = run_client_traced(&gateway.url("/acme/keyed/mcp"), Sdk::Mcp, &jaeger.otlp_http_url(), &[bearer], ops).await;
    assert_eq!(text(&r[0]), format!("alpha:{ARGUMENT}"), "{}", r[0]);
    let (Hops { trace, server, call, upstream }, client) =
        hops(&jaeger, &r[0]["trace"], "alpha_echo", ("e2e-upstream-alpha", "tools/call echo")).await;
    let tree = trace.tree();

    // The SERVER span, as the conventions say, and Manifold's own attributes.
    let request_id = client.tag("jsonrpc.request.id").unwrap_or_else(|| panic!("the SDK's span has the id:\n{tree}"));
    let port = gateway.mcp.port().to_string();
    assert_tags(
        &trace,
        &server,
        &[
            ("mcp.method.name", "tools/call"),
            ("gen_ai.tool.name", "alpha_echo"),
            ("gen_ai.operation.name", "execute_tool"),
            ("jsonrpc.request.id", &request_id),
            ("mcp.protocol.version", "2025-11-25"),
            ("network.transport", "tcp"),
            ("network.protocol.name", "http"),
            ("network.protocol.version", "1.1"),
            ("server.address", "127.0.0.1"),
            ("server.port", &port),
            ("client.address", "127.0.0.1"),
            ("manifold.tenant", "acme"),
            ("manifold.route", "keyed"),
            ("manifold.principal.kind", "api-key"),
        ],
    );
    let session = server.tag("mcp.session.id").unwrap_or_default();
    assert!(!session.is_empty(), "a session-era request has mcp.session.id:\n{tree}");
    let client_port: u16 = server.tag("client.port").and_then(|p| p.parse().ok()).unwrap_or(0);
    assert!(client_port > 0, "client.port is the caller's port:\n{tree}");
    for absent in ["error.type", "rpc.response.status_code", "gen_ai.prompt.name", "mcp.resource.uri"] {
        assert_eq!(server.tag(absent), None, "a successful tool call has no `{absent}`:\n{tree}");
    }

    // The CLIENT span: the call as the upstream saw it, and the mount it went to (the SERVER
    // span of a request over several mounts, a tools/list, has no one mount).
    let alpha_port = alpha.port.to_string();
    assert_tags(
        &trace,
        &call,
        &[
            ("mcp.method.name", "tools/call"),
            ("gen_ai.tool.name", "echo"),
            ("gen_ai.operation.name", "execute_tool"),
            ("server.address", "127.0.0.1"),
            ("server.port", &alpha_port),
            ("manifold.mount", "alpha"),
        ],
    );
    assert_eq!(call.name, "tools/call echo", "{tree}");
    assert_tags(&trace, &upstream, &[("gen_ai.tool.name", "echo")]);

    // A tool error (`isError`): `tool_error` on both gateway spans.
    assert_eq!(r[1]["isError"], true, "{}", r[1]);
    let (Hops { trace: failed, server, call, .. }, _) =
        hops(&jaeger, &r[1]["trace"], "alpha_fail", ("e2e-upstream-alpha", "tools/call fail")).await;
    assert_tags(&failed, &server, &[("error.type", "tool_error"), ("otel.status_code", "ERROR")]);
    assert_tags(&failed, &call, &[("error.type", "tool_error")]);

    // A JSON-RPC error: its code as `error.type` and `rpc.response.status_code`.
    let code = r[2]["error"]["code"].as_i64().unwrap_or_else(|| panic!("an unknown tool is an error: {}", r[2]));
    let missing = server_span_of(&jaeger, &r[2]["trace"], "tools/call nowhere_missing").await;
    let code = code.to_string();
    assert_tags(&missing.0, &missing.1, &[("error.type", &code), ("rpc.response.status_code", &code)]);

    // An argument the upstream refuses, naming it in its answer: the gateway's spans do not.
    assert!(r[3].to_string().contains(ARGUMENT), "the upstream's answer names the argument: {}", r[3]);
    let refused = server_span_of(&jaeger, &r[3]["trace"], "tools/call alpha_add").await.0;

    // Neither the argument nor the principal's name or key is in any gateway span.
    for trace in [&trace, &failed, &missing.0, &refused] {
        let tree = trace.tree();
        for span in trace.of_service(GATEWAY) {
            for secret in [ARGUMENT, PRINCIPAL, KEY] {
                assert!(!span.name.contains(secret), "`{secret}` in the name of `{}`:\n{tree}", span.name);
                for (key, value) in &span.tags {
                    assert!(!value.to_string().contains(secret), "`{secret}` in `{key}` of `{}`:\n{tree}", span.name);
                }
            }
        }
    }
}

/// The trace of a traced op once it holds the gateway's SERVER span `name`, and that span.
async fn server_span_of(jaeger: &Jaeger, traced: &Value, name: &str) -> (Trace, Span) {
    let trace_id = traced["trace_id"].as_str().unwrap_or_else(|| panic!("a traced op prints its ids: {traced}"));
    let trace = jaeger
        .wait_for(trace_id, &format!("the gateway's `{name}`"), |t| {
            t.of_service(GATEWAY).any(|s| s.kind == "server" && s.name == name)
        })
        .await;
    let span = trace.span(GATEWAY, name).clone();
    (trace, span)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2026_client_the_gateway_and_fastmcp_make_one_trace_without_a_session() {
    let jaeger = Jaeger::start().await;
    let export = exporting(&jaeger);
    let alpha = Upstream::start_with("alpha", &[&export[0], &export[1]]).await;
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "") + &yaml::route("open", "mounts: [{server: alpha}]");
    let (gateway, _dir) = gateway(&jaeger, &manifests, Otlp::Http, &[]).await;

    let ops = json!([{"op": "call", "name": "alpha_add", "arguments": {"a": 2, "b": 3}, "traced": true}]);
    let r = run_client_traced(&gateway.url("/acme/open/mcp"), Sdk::FastMcp, &export[1], &[], ops).await;
    assert_eq!(r[0]["structuredContent"], json!({"result": 5}), "{}", r[0]);
    let (Hops { trace, server, .. }, _) =
        hops(&jaeger, &r[0]["trace"], "alpha_add", ("e2e-upstream-alpha", "tools/call add")).await;
    assert_tags(&trace, &server, &[("mcp.protocol.version", "2026-07-28"), ("manifold.principal.kind", "anonymous")]);
    assert_eq!(server.tag("mcp.session.id"), None, "no session in 2026-07-28:\n{}", trace.tree());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openapi_call_is_an_http_server_span_under_the_gateways_client_span() {
    let jaeger = Jaeger::start().await;
    let export = exporting(&jaeger);
    let api = Upstream::rest_api_with("items", &[&export[0], &export[1]]).await;
    let server = yaml::openapi_server(
        "items",
        &format!("url: {}\nrouteMaps: [{{methods: [POST], type: Tool}}, {{type: Exclude}}]", api.url("/openapi.json")),
    );
    let (gateway, _dir) =
        gateway(&jaeger, &(server + &yaml::route("shop", "mounts: [{server: items}]")), Otlp::Grpc, &[]).await;

    let ops = json!([{"op": "call", "name": "items_create_item_items_post", "arguments": {"name": "Widget", "price": 2.5}, "traced": true}]);
    let r = run_client_traced(&gateway.url("/acme/shop/mcp"), Sdk::Mcp, &export[1], &[], ops).await;
    assert_eq!(r[0]["structuredContent"]["status"], "created", "{}", r[0]);
    let (Hops { trace, call, upstream, .. }, _) =
        hops(&jaeger, &r[0]["trace"], "items_create_item_items_post", ("e2e-rest-items", "POST /items")).await;
    assert_tags(&trace, &upstream, &[("http.route", "/items")]);
    assert_tags(&trace, &call, &[("manifold.mount", "items")]);
}

/// The spans of a `tools/call` whose upstream (FastMCP) asks the client for input mid-call
/// (elicitation), which the client answers.
struct Elicited {
    trace: Trace,
    /// The gateway's SERVER span of the call.
    server: Span,
    /// The gateway's CLIENT span of its attempt to the upstream.
    attempt: Span,
    /// The upstream's request to the gateway (FastMCP's CLIENT span under its tool call).
    asked: Span,
    /// The client's span handling the relayed request.
    handler: Span,
}

async fn elicited() -> Elicited {
    let jaeger = Jaeger::start().await;
    let export = exporting(&jaeger);
    let legacy = Upstream::start_with("legacy", &["--transport", "http", &export[0], &export[1]]).await;
    let manifests = yaml::server("legacy", &legacy.mcp_url(), "") + &yaml::route("asks", "mounts: [{server: legacy}]");
    let (gateway, _dir) = gateway(&jaeger, &manifests, Otlp::Grpc, &[]).await;

    let ops = json!([{"op": "call", "name": "legacy_ask", "arguments": {}, "traced": true}, {"op": "seen"}]);
    let r = run_client_traced(&gateway.url("/acme/asks/mcp"), Sdk::Mcp, &export[1], &[], ops).await;
    assert_eq!(text(&r[0]), "Hello, e2e!", "{}", r[0]);
    let handled = &r[1]["spans"][0];
    assert_eq!(handled["method"], "elicitation/create", "{}", r[1]);
    let (Hops { server, call: attempt, upstream, .. }, _) =
        hops(&jaeger, &r[0]["trace"], "legacy_ask", ("e2e-upstream-legacy", "tools/call ask")).await;

    // The client's span for answering the relayed request is in the call's trace.
    let trace_id = r[0]["trace"]["trace_id"].as_str().expect("a trace id");
    if handled["trace_id"] != trace_id {
        let elsewhere = jaeger.trace(handled["trace_id"].as_str().unwrap_or_default()).await;
        panic!(
            "the client handled elicitation/create in trace {}, not the call's {trace_id}; that trace:\n{}",
            handled["trace_id"],
            elsewhere.map(|t| t.tree()).unwrap_or_else(|| "nothing".into())
        );
    }
    let handler_id = handled["span_id"].as_str().expect("a span id");
    let trace =
        jaeger.wait_for(trace_id, "the client's elicitation/create span", |t| t.by_id(handler_id).is_some()).await;
    let handler = trace.by_id(handler_id).expect("waited for it").clone();
    assert_eq!((handler.service.as_str(), handler.kind.as_str()), (CLIENT, "server"), "{}", trace.tree());
    let asked = trace
        .of_service(&upstream.service)
        .find(|s| s.kind == "client" && s.tag("mcp.method.name").as_deref() == Some("elicitation/create"))
        .unwrap_or_else(|| panic!("the upstream's elicitation/create span:\n{}", trace.tree()))
        .clone();
    assert!(trace.descends_from(&asked, &upstream), "{}", trace.tree());
    Elicited { trace, server, attempt, asked, handler }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_elicitation_relayed_mid_call_is_handled_in_the_calls_trace_through_the_gateway() {
    let Elicited { trace, server, handler, .. } = elicited().await;
    let relay = handler.parent.as_deref().and_then(|id| trace.by_id(id));
    let relay = relay.unwrap_or_else(|| panic!("the handler's parent is in the trace:\n{}", trace.tree()));
    assert_eq!(
        (relay.service.as_str(), relay.kind.as_str(), relay.name.as_str()),
        (GATEWAY, "client", "elicitation/create"),
        "the gateway's relay is the handler's parent:\n{}",
        trace.tree()
    );
    assert!(trace.descends_from(&handler, &server), "under the call's SERVER span:\n{}", trace.tree());
}

/// The conventions: the gateway, the upstream's client, handles a request the upstream asks
/// as a server does: a SERVER span whose parent is the context in that request's `_meta` and
/// which links the attempt's CLIENT span (the transport it came back on); it then asks the
/// client under that, and the client's handler is under the gateway's CLIENT span.
#[tokio::test(flavor = "multi_thread")]
async fn an_elicitation_relayed_mid_call_is_handled_under_the_upstreams_request() {
    let Elicited { trace, attempt, asked, handler, .. } = elicited().await;
    let handling = trace
        .of_service(GATEWAY)
        .find(|s| s.kind == "server" && s.name == "elicitation/create")
        .unwrap_or_else(|| panic!("the gateway's SERVER span elicitation/create:\n{}", trace.tree()));
    assert_eq!(handling.parent.as_deref(), Some(asked.id.as_str()), "under the upstream's request:\n{}", trace.tree());
    let attempt_span = (trace.id.clone(), attempt.id.clone());
    assert!(handling.links.contains(&attempt_span), "the attempt is linked: {:?}\n{}", handling.links, trace.tree());
    let relay = handler.parent.as_deref().and_then(|id| trace.by_id(id));
    let relay = relay.unwrap_or_else(|| panic!("the handler's parent is in the trace:\n{}", trace.tree()));
    assert_eq!(
        (relay.kind.as_str(), relay.parent.as_deref()),
        ("client", Some(handling.id.as_str())),
        "the gateway asks the client under its SERVER span:\n{}",
        trace.tree()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn context_comes_from_the_header_or_from_meta_which_wins() {
    let jaeger = Jaeger::start().await;
    let export = exporting(&jaeger);
    let alpha = Upstream::start_with("alpha", &[&export[0], &export[1]]).await;
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "") + &yaml::route("open", "mounts: [{server: alpha}]");
    let (gateway, _dir) = gateway(&jaeger, &manifests, Otlp::Grpc, &[]).await;
    let open = gateway.url("/acme/open/mcp");
    let upstream = ("e2e-upstream-alpha", "tools/call header");

    // Only the header: it is the parent. The upstream receives the gateway's CLIENT span as
    // its parent in the header too (alpha_header returns the header it received).
    let (from_header, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let (status, body) = call(&open, "alpha_header", Some(&traceparent(from_header, parent, true)), None).await;
    assert_eq!(status, 200, "{body}");
    let Hops { trace, server, call: client_call, .. } =
        gateway_hops(&jaeger, from_header, "alpha_header", upstream).await;
    assert_eq!(server.parent.as_deref(), Some(parent), "{}", trace.tree());
    assert_eq!(text(&body["result"]), traceparent(from_header, &client_call.id, true), "{}", trace.tree());

    // Both: `_meta` wins for that message, and nothing of the gateway is in the header's trace.
    let (header_trace, meta_trace, meta_parent) =
        ("11111111111111111111111111111111", "22222222222222222222222222222222", "2222222222222222");
    let (status, body) = call(
        &open,
        "alpha_header",
        Some(&traceparent(header_trace, "1111111111111111", true)),
        Some(&traceparent(meta_trace, meta_parent, true)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let Hops { trace, server, .. } = gateway_hops(&jaeger, meta_trace, "alpha_header", upstream).await;
    assert_eq!(server.parent.as_deref(), Some(meta_parent), "{}", trace.tree());
    // The conventions: the transport's context is linked.
    let header_span = (header_trace.to_owned(), "1111111111111111".to_owned());
    assert!(server.links.contains(&header_span), "the header's span is linked: {:?}", server.links);
    assert!(jaeger.trace(header_trace).await.is_none(), "the header's trace has spans");
}

/// Jaeger, alpha exporting to it, and a gateway serving it on route `open` (anyone) and
/// `keyed` (API keys).
async fn refusing() -> (Jaeger, Upstream, GatewayProcess, tempfile::TempDir) {
    let jaeger = Jaeger::start().await;
    let export = exporting(&jaeger);
    let alpha = Upstream::start_with("alpha", &[&export[0], &export[1]]).await;
    let callers = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: callers, namespace: acme}\n\
                   stringData: {someone: some-key-0123456789abcdef}\n";
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "")
        + &yaml::route("open", "mounts: [{server: alpha}]")
        + callers
        + &yaml::route("keyed", "mounts: [{server: alpha}], authentication: {apiKeys: {secretRef: {name: callers}}}");
    let (gateway, dir) = gateway(&jaeger, &manifests, Otlp::Grpc, &[]).await;
    (jaeger, alpha, gateway, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_refused_before_authentication_makes_no_span() {
    let (jaeger, _alpha, gateway, _dir) = refusing().await;
    let (status, _) = call(&gateway.url("/acme/keyed/mcp"), "alpha_echo", None, None).await;
    assert_eq!(status, 401);
    // A sampled call after it: once its spans are in, the refusal's would be too.
    let after = "66666666666666666666666666666666";
    let (status, body) =
        call(&gateway.url("/acme/open/mcp"), "alpha_header", Some(&traceparent(after, "6666666666666666", true)), None)
            .await;
    assert_eq!(status, 200, "{body}");
    gateway_hops(&jaeger, after, "alpha_header", ("e2e-upstream-alpha", "tools/call header")).await;
    assert_eq!(traces_with_gateway_server_spans(&jaeger).await, BTreeSet::from([after.to_owned()]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_refused_before_authentication_is_traced_when_its_parent_is_sampled() {
    let (jaeger, _alpha, gateway, _dir) = refusing().await;
    let (refused, parent) = ("33333333333333333333333333333333", "3333333333333333");
    let (status, _) =
        call(&gateway.url("/acme/keyed/mcp"), "alpha_echo", Some(&traceparent(refused, parent, true)), None).await;
    assert_eq!(status, 401);
    let trace =
        jaeger.wait_for(refused, "a gateway SERVER span", |t| t.of_service(GATEWAY).any(|s| s.kind == "server")).await;
    let server = trace.of_service(GATEWAY).find(|s| s.kind == "server").expect("waited for it");
    assert_eq!(server.parent.as_deref(), Some(parent), "{}", trace.tree());
}

#[tokio::test(flavor = "multi_thread")]
async fn at_ratio_zero_only_a_sampled_parent_makes_gateway_spans() {
    let jaeger = Jaeger::start().await;
    let export = exporting(&jaeger);
    let alpha = Upstream::start_with("alpha", &[&export[0], &export[1]]).await;
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "") + &yaml::route("open", "mounts: [{server: alpha}]");
    let (gateway, _dir) = gateway(&jaeger, &manifests, Otlp::Grpc, &["--trace-sampling-ratio", "0"]).await;
    let open = gateway.url("/acme/open/mcp");

    let unsampled = "44444444444444444444444444444444";
    for header in [None, Some(traceparent(unsampled, "4444444444444444", false))] {
        let (status, body) = call(&open, "alpha_header", header.as_deref(), None).await;
        assert_eq!(status, 200, "{body}");
    }
    // A sampled parent is followed at any ratio; once its spans are in, the others would be.
    let sampled = "55555555555555555555555555555555";
    let (status, body) = call(&open, "alpha_header", Some(&traceparent(sampled, "5555555555555555", true)), None).await;
    assert_eq!(status, 200, "{body}");
    gateway_hops(&jaeger, sampled, "alpha_header", ("e2e-upstream-alpha", "tools/call header")).await;
    assert!(jaeger.trace(unsampled).await.is_none(), "the unsampled trace has spans");
    assert_eq!(traces_with_gateway_server_spans(&jaeger).await, BTreeSet::from([sampled.to_owned()]));
}
