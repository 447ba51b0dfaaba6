//! Local stack, real peers: the gateway's spans by the MCP semantic conventions, exported to
//! memory. A SERVER span per request (named, attributed and parented as the conventions say,
//! `_meta` winning over headers), a CLIENT span per upstream attempt under it, whose context
//! reaches the FastMCP upstream in `traceparent`; nothing of the arguments or the caller's
//! name in any attribute; parent-based sampling that still propagates unsampled contexts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use manifold_e2e::peers::{Sdk, Upstream, run_client_with};
use manifold_e2e::stub::{Reply, Stub};
use manifold_e2e::tokens::{Signer, claims, jwks};
use manifold_e2e::{LocalStack, raw, yaml};
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider, SpanData};
use serde_json::{Value, json};

/// An argument value and a principal name that must never appear in a span.
const ARGUMENT: &str = "argument-sentinel-5c1e";
const PRINCIPAL: &str = "principal-sentinel-77ab";
const KEY: &str = "key-for-traces-0123456789abcdef";
/// A client's sampled and unsampled contexts (W3C examples' shape).
const TRACE_A: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACE_B: &str = "0af7651916cd43dd8448eb211c80319c";

struct Traced {
    stack: LocalStack,
    spans: InMemorySpanExporter,
    _upstreams: (Upstream, Upstream),
}

async fn traced(ratio: f64) -> Traced {
    let (alpha, flaky) = tokio::join!(Upstream::start("alpha"), Upstream::start("flaky"));
    let keys = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: keys, namespace: acme}}\nstringData: {{{PRINCIPAL}: {KEY}}}\n"
    );
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "")
        + &yaml::server("flaky", &flaky.mcp_url(), "")
        + &keys
        + &yaml::route(
            "traced",
            "mounts: [{server: alpha}, {server: flaky}], authentication: {apiKeys: {secretRef: {name: keys}}}, \
             rateLimits: [{name: roomy, scope: Principal, requests: 1000, per: 1h, tools: ['alpha_add']}], \
             caching: {results: [{tools: ['alpha_add'], ttl: 1h}]}",
        );
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))))
        .build();
    let tracer = provider.tracer("manifold");
    let stack = LocalStack::start_with(&manifests, |settings| settings.tracer = Some(tracer)).await;
    Traced { stack, spans, _upstreams: (alpha, flaky) }
}

/// POSTs one JSON-RPC message with the caller's key and `headers`; the status and JSON body,
/// and the session id the gateway answered with.
async fn post(url: &str, headers: &[(&str, &str)], body: Value) -> (u16, Value, Option<String>) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {KEY}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(body.to_string()).send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let session = response.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    // A streamed answer: its last `data:` line.
    let json = text.lines().filter_map(|l| l.strip_prefix("data: ")).next_back().map_or(text.as_str(), |l| l);
    (status, serde_json::from_str(json).unwrap_or(Value::String(text.clone())), session)
}

fn request(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": "req-7", "method": method, "params": params})
}

fn attributes(span: &SpanData) -> HashMap<String, String> {
    span.attributes.iter().map(|kv| (kv.key.to_string(), kv.value.to_string())).collect()
}

/// The finished spans named `name`.
fn named(spans: &[SpanData], name: &str) -> Vec<SpanData> {
    spans.iter().filter(|s| s.name == name).cloned().collect()
}

fn only(spans: &[SpanData], name: &str) -> SpanData {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one `{name}` span among {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    found.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_traced_by_the_mcp_conventions_and_join_the_clients_and_the_upstreams_traces() {
    let traced = traced(1.0).await;
    let url = traced.stack.url("/acme/traced/mcp");
    let header_parent = format!("00-{TRACE_A}-00f067aa0ba902b7-01");
    let meta_parent = format!("00-{TRACE_B}-b7ad6b7169203331-01");

    let init =
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}});
    let (status, _, session) = post(&url, &[], request("initialize", init)).await;
    assert_eq!(status, 200);
    let session = session.expect("a session");
    let in_session = [("mcp-session-id", session.as_str()), ("mcp-protocol-version", "2025-11-25")];
    post(&url, &in_session, json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    let spans = traced.spans.get_finished_spans().unwrap();
    let initialize = only(&spans, "initialize");
    assert_eq!(attributes(&initialize).get("mcp.session.id").map(String::as_str), Some(&session[session.len() - 8..]));
    let seal = only(&spans, "session.seal");
    assert_eq!((seal.span_kind.clone(), seal.parent_span_id), (SpanKind::Internal, initialize.span_context.span_id()));
    let initialized = only(&spans, "notifications/initialized");
    assert_eq!(initialized.span_kind, SpanKind::Server, "a client's notification has its SERVER span");
    assert!(!attributes(&initialized).contains_key("jsonrpc.request.id"), "notifications have no id");
    traced.spans.reset();

    // A tools/call whose parent is in the headers only.
    let with_header = [in_session[0], in_session[1], ("traceparent", header_parent.as_str())];
    let call = request("tools/call", json!({"name": "alpha_echo", "arguments": {"text": ARGUMENT}}));
    let (status, body, _) = post(&url, &with_header, call).await;
    assert_eq!((status, body["result"]["content"][0]["text"].as_str()), (200, Some(&*format!("alpha:{ARGUMENT}"))));
    let spans = traced.spans.get_finished_spans().unwrap();
    let server = only(&spans, "tools/call alpha_echo");
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(server.span_context.trace_id().to_string(), TRACE_A);
    assert_eq!(server.parent_span_id.to_string(), "00f067aa0ba902b7", "the header's span is the parent");
    assert!(server.parent_span_is_remote);
    let attrs = attributes(&server);
    let expect = |attrs: &HashMap<String, String>, key: &str, value: &str| {
        assert_eq!(attrs.get(key).map(String::as_str), Some(value), "{key} in {attrs:?}")
    };
    for (key, value) in [
        ("mcp.method.name", "tools/call"),
        ("gen_ai.tool.name", "alpha_echo"),
        ("gen_ai.operation.name", "execute_tool"),
        ("jsonrpc.request.id", "req-7"),
        ("mcp.protocol.version", "2025-11-25"),
        ("mcp.session.id", &session[session.len() - 8..]),
        ("network.protocol.name", "http"),
        ("network.protocol.version", "1.1"),
        ("network.transport", "tcp"),
        ("server.address", "127.0.0.1"),
        ("server.port", &traced.stack.gateway.mcp_addr.port().to_string()),
        ("client.address", "127.0.0.1"),
        ("manifold.tenant", "acme"),
        ("manifold.route", "traced"),
        ("manifold.principal.kind", "api-key"),
    ] {
        expect(&attrs, key, value);
    }
    assert!(attrs["client.port"].parse::<u16>().is_ok_and(|port| port > 0));
    assert!(!attrs.contains_key("error.type") && server.status == Status::Unset, "{attrs:?}");
    let client = only(&spans, "tools/call echo");
    assert_eq!(client.span_kind, SpanKind::Client);
    assert_eq!(client.parent_span_id, server.span_context.span_id(), "the CLIENT span is under the SERVER span");
    let attrs = attributes(&client);
    for (key, value) in [
        ("mcp.method.name", "tools/call"),
        ("gen_ai.tool.name", "echo"),
        ("gen_ai.operation.name", "execute_tool"),
        ("server.address", "127.0.0.1"),
        ("manifold.mount", "alpha"),
    ] {
        expect(&attrs, key, value);
    }
    let authn = only(&spans, "authenticate");
    assert_eq!((authn.span_kind.clone(), authn.parent_span_id), (SpanKind::Internal, server.span_context.span_id()));
    assert!(authn.start_time >= server.start_time && authn.end_time <= server.end_time);

    // `_meta` wins over the headers, and the upstream receives the CLIENT span's context.
    traced.spans.reset();
    let call = request(
        "tools/call",
        json!({"name": "alpha_header", "arguments": {"name": "traceparent"}, "_meta": {"traceparent": meta_parent}}),
    );
    let (_, body, _) = post(&url, &with_header, call).await;
    let received = body["result"]["content"][0]["text"].as_str().expect("the upstream's traceparent").to_owned();
    let spans = traced.spans.get_finished_spans().unwrap();
    let server = only(&spans, "tools/call alpha_header");
    assert_eq!(server.span_context.trace_id().to_string(), TRACE_B, "_meta's context is the parent");
    assert_eq!(server.parent_span_id.to_string(), "b7ad6b7169203331");
    assert_eq!(server.links.len(), 1, "the transport's context is linked");
    assert_eq!(server.links.links[0].span_context.trace_id().to_string(), TRACE_A);
    let client = only(&spans, "tools/call header");
    assert_eq!(received, format!("00-{TRACE_B}-{}-01", client.span_context.span_id()), "injected in the headers");

    // prompts/get and resources/read.
    traced.spans.reset();
    post(&url, &in_session, request("prompts/get", json!({"name": "flaky_hello", "arguments": {"name": ARGUMENT}})))
        .await;
    let (_, listed, _) = post(&url, &in_session, request("resources/list", json!({}))).await;
    let uri = listed["result"]["resources"][0]["uri"].as_str().expect("flaky's resource").to_owned();
    post(&url, &in_session, request("resources/read", json!({"uri": uri}))).await;
    let spans = traced.spans.get_finished_spans().unwrap();
    let prompt = attributes(&only(&spans, "prompts/get flaky_hello"));
    assert_eq!(prompt.get("gen_ai.prompt.name").map(String::as_str), Some("flaky_hello"));
    assert!(!prompt.contains_key("gen_ai.operation.name"), "execute_tool is for tool calls only");
    let read = named(&spans, "resources/read");
    let server = read.iter().find(|s| s.span_kind == SpanKind::Server).expect("a SERVER span for the read");
    assert_eq!(attributes(server).get("mcp.resource.uri"), Some(&uri), "named without its URI, which is an attribute");
    let client = read.iter().find(|s| s.span_kind == SpanKind::Client).expect("a CLIENT span for the read");
    assert_eq!(attributes(client).get("mcp.resource.uri").map(String::as_str), Some("flaky://status"));

    // A JSON-RPC error and a tool error.
    traced.spans.reset();
    post(&url, &in_session, request("tools/call", json!({"name": "nobody_here", "arguments": {}}))).await;
    post(&url, &in_session, request("tools/call", json!({"name": "alpha_fail", "arguments": {}}))).await;
    let spans = traced.spans.get_finished_spans().unwrap();
    let unknown = only(&spans, "tools/call nobody_here");
    let attrs = attributes(&unknown);
    assert_eq!((attrs["error.type"].as_str(), attrs["rpc.response.status_code"].as_str()), ("-32602", "-32602"));
    assert!(matches!(&unknown.status, Status::Error { description } if description.contains("Unknown tool")));
    let failing = only(&spans, "tools/call alpha_fail");
    assert_eq!(attributes(&failing)["error.type"], "tool_error");
    assert!(!attributes(&failing).contains_key("rpc.response.status_code"));
    assert!(matches!(failing.status, Status::Error { .. }));
    assert_eq!(attributes(&only(&spans, "tools/call fail"))["error.type"], "tool_error", "the CLIENT span too");

    // The stateless revision: no session.
    traced.spans.reset();
    let stateless =
        raw::stateless(&url, json!(9), "tools/call", json!({"name": "alpha_add", "arguments": {"a": 1, "b": 2}}))
            .header("authorization", format!("Bearer {KEY}"));
    assert_eq!(stateless.send().await.unwrap().status(), 200);
    let spans = traced.spans.get_finished_spans().unwrap();
    let attrs = attributes(&only(&spans, "tools/call alpha_add"));
    assert_eq!(attrs.get("mcp.protocol.version").map(String::as_str), Some("2026-07-28"));
    assert_eq!(attrs.get("jsonrpc.request.id").map(String::as_str), Some("9"));
    assert!(!attrs.contains_key("mcp.session.id"), "2026-07-28 has no sessions: {attrs:?}");
    let server = only(&spans, "tools/call alpha_add");
    let limit = only(&spans, "rate_limit");
    assert_eq!(limit.parent_span_id, server.span_context.span_id());
    assert_eq!(attributes(&limit).get("manifold.limit").map(String::as_str), Some("allowed"));
    let lookup = only(&spans, "cache.lookup");
    assert_eq!(lookup.parent_span_id, server.span_context.span_id());
    assert_eq!(attributes(&lookup).get("manifold.cache").map(String::as_str), Some("miss"));
    traced.spans.reset();
    let again =
        raw::stateless(&url, json!(10), "tools/call", json!({"name": "alpha_add", "arguments": {"a": 1, "b": 2}}))
            .header("authorization", format!("Bearer {KEY}"));
    assert_eq!(again.send().await.unwrap().status(), 200);
    let spans = traced.spans.get_finished_spans().unwrap();
    assert_eq!(attributes(&only(&spans, "cache.lookup")).get("manifold.cache").map(String::as_str), Some("hit"));
    assert!(named(&spans, "tools/call add").is_empty(), "a hit asks no upstream");

    drop(traced.stack);
    let everything = traced.spans.get_finished_spans().unwrap();
    for span in &everything {
        for kv in &span.attributes {
            let value = kv.value.to_string();
            assert!(
                !value.contains(ARGUMENT) && !value.contains(PRINCIPAL),
                "{} leaks in {}: {value}",
                kv.key,
                span.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn at_ratio_zero_an_unsampled_parent_records_nothing_but_propagates_and_a_sampled_one_is_recorded() {
    let traced = traced(0.0).await;
    let url = traced.stack.url("/acme/traced/mcp");
    let call = |parent: String| async {
        let request = raw::stateless(
            &url,
            json!(1),
            "tools/call",
            json!({"name": "alpha_header", "arguments": {"name": "traceparent"}}),
        )
        .header("authorization", format!("Bearer {KEY}"))
        .header("traceparent", parent);
        let text = request.send().await.unwrap().text().await.unwrap();
        let body: Value = serde_json::from_str(&text).expect("a JSON answer");
        body["result"]["content"][0]["text"].as_str().expect("the upstream's traceparent").to_owned()
    };
    let received = call(format!("00-{TRACE_A}-00f067aa0ba902b7-00")).await;
    assert!(received.starts_with(&format!("00-{TRACE_A}-")) && received.ends_with("-00"), "{received}");
    assert!(!received.contains("00f067aa0ba902b7"), "the gateway's own (unrecorded) span is the upstream's parent");
    assert!(traced.spans.get_finished_spans().unwrap().is_empty(), "nothing recorded");

    let received = call(format!("00-{TRACE_B}-b7ad6b7169203331-01")).await;
    let spans = traced.spans.get_finished_spans().unwrap();
    let client = only(&spans, "tools/call header");
    assert_eq!(received, format!("00-{TRACE_B}-{}-01", client.span_context.span_id()));
    assert_eq!(only(&spans, "tools/call alpha_header").span_context.trace_id().to_string(), TRACE_B);

    // Refused before authentication: a span only for a sampled parent, named by Mcp-Method.
    traced.spans.reset();
    let refused = |parent: String| {
        raw::stateless(&url, json!(2), "tools/call", json!({"name": "alpha_echo", "arguments": {"text": ARGUMENT}}))
            .header("traceparent", parent)
            .send()
    };
    assert_eq!(refused(format!("00-{TRACE_A}-00f067aa0ba902b7-00")).await.unwrap().status(), 401);
    assert!(traced.spans.get_finished_spans().unwrap().is_empty(), "an unsampled refusal leaves no span");
    assert_eq!(refused(format!("00-{TRACE_B}-b7ad6b7169203331-01")).await.unwrap().status(), 401);
    let spans = traced.spans.get_finished_spans().unwrap();
    let span = only(&spans, "tools/call");
    assert_eq!(
        (span.span_kind.clone(), span.parent_span_id.to_string()),
        (SpanKind::Server, "b7ad6b7169203331".into())
    );
    let attrs = attributes(&span);
    assert_eq!((attrs["error.type"].as_str(), attrs["mcp.method.name"].as_str()), ("-32001", "tools/call"));
    assert!(matches!(&span.status, Status::Error { description } if description.contains("authentication required")));
    assert_eq!(only(&spans, "authenticate").parent_span_id, span.span_context.span_id());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_the_upstream_asks_mid_call_is_a_client_span_under_the_call() {
    // An upstream of the stateless revision asks with an InputRequiredResult; the gateway asks
    // its session client (elicitation/create) and calls again with the answer.
    let asking = Upstream::start_with("alpha", &["--only-stateless"]).await;
    let keys = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: keys, namespace: acme}}\nstringData: {{{PRINCIPAL}: {KEY}}}\n"
    );
    let manifests = yaml::server("asking", &asking.mcp_url(), "")
        + &keys
        + &yaml::route("asking", "mounts: [{server: asking}], authentication: {apiKeys: {secretRef: {name: keys}}}");
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(spans.clone()).build();
    let tracer = provider.tracer("manifold");
    let stack = LocalStack::start_with(&manifests, |settings| settings.tracer = Some(tracer)).await;
    let url = stack.url("/acme/asking/mcp");
    let headers = [format!("Authorization: Bearer {KEY}")];
    let ops = json!([{"op": "call", "name": "asking_greet", "arguments": {}}, {"op": "seen"}]);
    let results = run_client_with(&url, Sdk::Mcp, &headers, ops).await;
    assert_eq!(results[1]["requests"], json!(["elicitation/create"]), "{results:?}");

    let spans = spans.get_finished_spans().unwrap();
    let call = only(&spans, "tools/call asking_greet");
    let asked = only(&spans, "elicitation/create");
    // Asked within the attempt to the mount: under its CLIENT span, itself under the call's (an
    // InputRequiredResult is a result, with no context of the upstream's own to handle it under).
    let attempt = only(&spans, "tools/call greet");
    assert_eq!(attempt.parent_span_id, call.span_context.span_id());
    assert_eq!((asked.span_kind.clone(), asked.parent_span_id), (SpanKind::Client, attempt.span_context.span_id()));
    let attrs = attributes(&asked);
    assert_eq!(attrs.get("mcp.method.name").map(String::as_str), Some("elicitation/create"));
    assert!(asked.start_time >= attempt.start_time && asked.end_time <= attempt.end_time, "until the client answered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_to_an_openapi_sub_server_is_a_client_span_whose_context_reaches_the_api_in_its_headers() {
    let api = Upstream::rest_api("kitchen").await;
    let manifests = yaml::openapi_server("kitchen", &format!("url: {}", api.url("/openapi.json")))
        + &yaml::route("kitchen", "mounts: [{server: kitchen}]");
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(spans.clone()).build();
    let tracer = provider.tracer("manifold");
    let stack = LocalStack::start_with(&manifests, |settings| settings.tracer = Some(tracer)).await;
    let call = raw::stateless(
        &stack.url("/acme/kitchen/mcp"),
        json!(1),
        "tools/call",
        json!({"name": "kitchen_trace", "arguments": {}}),
    )
    .header("traceparent", format!("00-{TRACE_A}-00f067aa0ba902b7-01"));
    let body: Value = serde_json::from_str(&call.send().await.unwrap().text().await.unwrap()).unwrap();
    let received = body["result"]["structuredContent"]["traceparent"].as_str().expect("a traceparent").to_owned();

    let spans = spans.get_finished_spans().unwrap();
    let server = only(&spans, "tools/call kitchen_trace");
    let client = only(&spans, "tools/call trace");
    assert_eq!((client.span_kind.clone(), client.parent_span_id), (SpanKind::Client, server.span_context.span_id()));
    assert_eq!(received, format!("00-{TRACE_A}-{}-01", client.span_context.span_id()));
    let attrs = attributes(&client);
    assert_eq!(attrs.get("manifold.mount").map(String::as_str), Some("kitchen"));
    assert_eq!(attrs.get("server.address").map(String::as_str), Some("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jwks_fetch_authentication_waits_for_is_a_span_under_authenticate() {
    const ISSUER: &str = "https://issuer.test";
    let (old, new) = (Signer::rsa("rsa-a", "2026-01"), Signer::rsa("rsa-b", "2026-02"));
    let published = Arc::new(Mutex::new(jwks(&[&old])));
    let serving = Arc::clone(&published);
    let endpoint = Stub::start(move |_| Reply::json(serving.lock().unwrap().clone())).await;
    let alpha = Upstream::start("alpha").await;
    let authentication = format!(
        "authentication: {{jwt: [{{issuer: '{ISSUER}', audiences: [mcp], jwks: {{uri: '{}'}}}}]}}",
        endpoint.url("/jwks")
    );
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "")
        + &yaml::route("jwt", &format!("mounts: [{{server: alpha}}], {authentication}"));
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(spans.clone()).build();
    let tracer = provider.tracer("manifold");
    let stack = LocalStack::start_with(&manifests, |settings| {
        settings.tracer = Some(tracer);
        settings.jwks_refetch_cooldown = std::time::Duration::ZERO;
    })
    .await;
    let url = stack.url("/acme/jwt/mcp");
    let call = |token: String| {
        raw::stateless(&url, json!(1), "tools/call", json!({"name": "alpha_echo", "arguments": {"text": "t"}}))
            .header("authorization", format!("Bearer {token}"))
    };
    assert_eq!(call(old.token(&claims(ISSUER, "mcp", PRINCIPAL))).send().await.unwrap().status(), 200);
    // A key the gateway has not seen: authentication fetches the JWKS again, and waits for it.
    *published.lock().unwrap() = jwks(&[&old, &new]);
    spans.reset();
    assert_eq!(call(new.token(&claims(ISSUER, "mcp", PRINCIPAL))).send().await.unwrap().status(), 200);

    let spans = spans.get_finished_spans().unwrap();
    let server = only(&spans, "tools/call alpha_echo");
    assert_eq!(attributes(&server).get("manifold.principal.kind").map(String::as_str), Some("jwt"));
    let authenticate = only(&spans, "authenticate");
    assert_eq!(authenticate.parent_span_id, server.span_context.span_id());
    let fetch = only(&spans, "jwks.fetch");
    assert_eq!(
        (fetch.span_kind.clone(), fetch.parent_span_id),
        (SpanKind::Internal, authenticate.span_context.span_id())
    );
    assert!(fetch.start_time >= authenticate.start_time && fetch.end_time <= authenticate.end_time);
    for span in &spans {
        assert!(span.attributes.iter().all(|kv| !kv.value.to_string().contains(PRINCIPAL)), "{}", span.name);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_external_decision_is_a_span_under_the_request() {
    let opa = Stub::start(|_| Reply::json(json!({"result": true}))).await;
    let alpha = Upstream::start("alpha").await;
    let keys = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: keys, namespace: acme}}\nstringData: {{{PRINCIPAL}: {KEY}}}\n"
    );
    let external = format!("{{url: '{}', api: opa, cacheTtl: 0s}}", opa.url("/v1/data/manifold/allow"));
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "")
        + &keys
        + &yaml::route(
            "decided",
            &format!(
                "mounts: [{{server: alpha}}], authentication: {{apiKeys: {{secretRef: {{name: keys}}}}}}, \
                 authorization: {{external: {external}}}"
            ),
        );
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(spans.clone()).build();
    let tracer = provider.tracer("manifold");
    let stack = LocalStack::start_with(&manifests, |settings| settings.tracer = Some(tracer)).await;
    let call = raw::stateless(
        &stack.url("/acme/decided/mcp"),
        json!(1),
        "tools/call",
        json!({"name": "alpha_echo", "arguments": {"text": ARGUMENT}}),
    )
    .header("authorization", format!("Bearer {KEY}"));
    assert_eq!(call.send().await.unwrap().status(), 200);
    assert_eq!(opa.requests().len(), 1, "the decision point was asked");

    let spans = spans.get_finished_spans().unwrap();
    let server = only(&spans, "tools/call alpha_echo");
    let decided = only(&spans, "authorize.external");
    assert_eq!(
        (decided.span_kind.clone(), decided.parent_span_id),
        (SpanKind::Internal, server.span_context.span_id())
    );
    assert!(decided.end_time <= only(&spans, "tools/call echo").start_time, "decided before the upstream is asked");
}
