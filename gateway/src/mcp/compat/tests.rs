use std::sync::{Arc, Mutex};

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use manifold_api::config::{RemoteUpstream, RouteConfig, Transport, Upstream};
use serde_json::json;

use super::*;
use crate::mcp::call::testing::{call, route};
use crate::mcp::call::{Answer, Era};
use crate::protocol::Method;

const ALL: &[Provider] = &[Provider::OpenAi, Provider::Anthropic, Provider::Gemini];

fn profile(report: bool) -> CompatibilityConfig {
    CompatibilityConfig { providers: ALL.to_vec(), report }
}

fn item(value: Value) -> Map<String, Value> {
    serde_json::from_value(value).expect("a tool object")
}

#[test]
fn a_valid_tool_is_left_as_it_is() {
    let original = json!({ "name": "a_search", "description": "Searches.", "inputSchema": { "type": "object", "properties": { "q": { "type": "string" } } } });
    let mut tool = item(original.clone());
    assert_eq!(client_tool(&profile(false), "a_search", &mut tool).as_deref(), Some("a_search"));
    assert_eq!(Value::Object(tool), original);
}

#[test]
fn a_name_a_provider_refuses_is_shortened_or_left_out() {
    let mut tool = item(json!({ "name": "repo.list", "inputSchema": { "type": "object", "properties": {} } }));
    let short = compat::short_name("a_repo.list");
    assert_eq!(client_tool(&profile(false), "a_repo.list", &mut tool), Some(short.clone()));
    assert_eq!(tool["name"], json!(short));
    let mut tool = item(json!({ "name": "repo.list", "inputSchema": { "type": "object", "properties": {} } }));
    assert_eq!(client_tool(&profile(true), "a_repo.list", &mut tool), None);
    // Gemini alone takes dots.
    let gemini = CompatibilityConfig { providers: vec![Provider::Gemini], report: true };
    let mut tool = item(json!({ "name": "repo.list", "inputSchema": { "type": "object", "properties": {} } }));
    assert_eq!(client_tool(&gemini, "a_repo.list", &mut tool).as_deref(), Some("a_repo.list"));
}

#[test]
fn a_schema_is_normalised_and_the_description_says_what_was_lost() {
    let mut tool = item(json!({
        "name": "t", "description": "Does it.",
        "inputSchema": { "type": "object", "properties": { "x": { "type": "string" } }, "additionalProperties": false },
    }));
    client_tool(&profile(false), "a_t", &mut tool);
    assert_eq!(tool["inputSchema"], json!({ "type": "object", "properties": { "x": { "type": "string" } } }));
    let description = tool["description"].as_str().expect("a description");
    assert!(description.starts_with("Does it.\n\n(Input schema simplified"), "{description}");
    assert!(description.contains("additionalProperties dropped (undeclared properties are removed"), "{description}");
    // Without Gemini, nothing there is refused.
    let openai = CompatibilityConfig { providers: vec![Provider::OpenAi], report: false };
    let mut tool = item(
        json!({ "name": "t", "inputSchema": { "type": "object", "properties": {}, "additionalProperties": false } }),
    );
    client_tool(&openai, "a_t", &mut tool);
    assert_eq!(tool["inputSchema"]["additionalProperties"], json!(false));
    assert!(tool.get("description").is_none());
}

#[test]
fn only_names_ending_in_an_underscore_and_8_hex_digits_look_short() {
    assert!(looks_short(&compat::short_name("a.b")) && looks_short(&compat::short_name("")));
    assert!(
        !looks_short("a_0123456g") && !looks_short("a_0123ABCD") && !looks_short("01234567") && !looks_short("search")
    );
}

/// An MCP server offering `repo.list` (whose schema forbids undeclared properties) and
/// `search`; a call answers with the name and arguments it received, and `calls` keeps them.
async fn recording_server(calls: Arc<Mutex<Vec<Value>>>) -> String {
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |Json(message): Json<Value>| {
            let calls = calls.clone();
            async move {
                let id = message.get("id").cloned();
                let result = match message["method"].as_str().unwrap_or_default() {
                    "initialize" => json!({
                        "protocolVersion": "2025-11-25", "capabilities": { "tools": {} },
                        "serverInfo": { "name": "recording", "version": "1" },
                    }),
                    "tools/list" => json!({ "tools": [
                        { "name": "repo.list", "inputSchema": { "type": "object", "properties": { "owner": { "type": "string" } }, "additionalProperties": false } },
                        { "name": "search", "inputSchema": { "type": "object", "properties": { "q": { "type": "string" } } } },
                    ] }),
                    "tools/call" => {
                        calls.lock().expect("calls lock").push(message["params"].clone());
                        json!({ "content": [{ "type": "text", "text": "ok" }] })
                    }
                    _ if id.is_none() => return StatusCode::ACCEPTED.into_response(),
                    _ => {
                        let error = json!({ "code": -32601, "message": "no such method" });
                        return Json(json!({ "jsonrpc": "2.0", "id": id, "error": error })).into_response();
                    }
                };
                let mut headers = HeaderMap::new();
                headers.insert("mcp-session-id", "s".parse().expect("a header value"));
                (headers, Json(json!({ "jsonrpc": "2.0", "id": id, "result": result }))).into_response()
            }
        })
        .get(|| async { Response::builder().status(405).body(axum::body::Body::empty()).expect("a response") })
        .delete(|| async { StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/mcp")
}

async fn profiled_route(calls: Arc<Mutex<Vec<Value>>>, report: bool) -> RouteConfig {
    let mut config = route(&["a"], None);
    config.mounts[0].upstream = Upstream::Remote(RemoteUpstream {
        url: recording_server(calls).await,
        transport: Transport::StreamableHttp,
        headers: vec![],
        auth: None,
        timeout_ms: 30_000,
        resilience: Default::default(),
    });
    config.compatibility = Some(profile(report));
    config
}

fn result(answer: Answer) -> Value {
    let Answer::Result(result) = answer else { panic!("a result") };
    serde_json::from_str(result.get()).expect("JSON")
}

#[tokio::test]
async fn a_profiled_route_lists_short_names_in_one_page_and_calls_reach_the_real_tool() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let config = profiled_route(calls.clone(), false).await;
    let short = compat::short_name("a_repo.list");

    let (lister, _) = call(config.clone(), Era::Session).await;
    let listed = result(crate::mcp::lists::page(&lister, Kind::Tool, None).await);
    let names: Vec<&str> =
        listed["tools"].as_array().expect("tools").iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, [short.as_str(), "a_search"]);
    assert!(listed.get("nextCursor").is_none());

    // A gateway that never listed (a fresh pool, nothing known) still resolves the short form,
    // and the upstream gets its real name and only the arguments its schema declares.
    let (caller, _) = call(config, Era::Session).await;
    let params = raw(&json!({ "name": short, "arguments": { "owner": "acme", "extra": 1 } }));
    let answer = crate::mcp::methods::dispatch(&caller, Method::ToolsCall, "tools/call", Some(&params)).await;
    assert_eq!(result(answer)["content"][0]["text"], "ok");
    let seen = calls.lock().expect("calls lock").clone();
    assert_eq!(seen, [json!({ "name": "repo.list", "arguments": { "owner": "acme" } })]);
}

#[tokio::test]
async fn a_name_the_route_does_not_show_is_unknown() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (caller, _) = call(profiled_route(calls.clone(), true).await, Era::Session).await;
    let listed = result(crate::mcp::lists::page(&caller, Kind::Tool, None).await);
    assert_eq!(listed["tools"].as_array().expect("tools").len(), 1, "Report leaves repo.list out: {listed}");
    // Its own name breaks a provider's rule: no client of this route is shown it.
    let params = raw(&json!({ "name": "a_repo.list", "arguments": {} }));
    match crate::mcp::methods::dispatch(&caller, Method::ToolsCall, "tools/call", Some(&params)).await {
        Answer::Error(error) => assert_eq!(error.message, "Unknown tool: `a_repo.list`"),
        _ => panic!("a_repo.list is not a tool of this route"),
    }
    let params = raw(&json!({ "name": "a_search", "arguments": { "q": "x", "more": true } }));
    crate::mcp::methods::dispatch(&caller, Method::ToolsCall, "tools/call", Some(&params)).await;
    let seen = calls.lock().expect("calls lock").clone();
    assert_eq!(seen, [json!({ "name": "search", "arguments": { "q": "x", "more": true } })], "nothing else changes");
}
