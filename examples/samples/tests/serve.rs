//! Starts the sample servers on ephemeral ports and talks MCP to them over HTTP.

use manifold_samples::{Sample, serve};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Starts `sample` on `127.0.0.1:0`; returns its MCP URL and the server task.
async fn start(sample: Sample) -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    (url, tokio::spawn(serve(sample, listener)))
}

/// POSTs one JSON-RPC message the way a streamable-HTTP client does (no
/// session, no prior `initialize`) and returns the JSON body.
async fn rpc(client: &reqwest::Client, url: &str, message: Value) -> Value {
    let response =
        client.post(url).header("Accept", "application/json, text/event-stream").json(&message).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json", "expected a plain JSON body, not SSE");
    assert!(response.headers().get("mcp-session-id").is_none());
    response.json().await.unwrap()
}

fn call(name: &str, arguments: Value) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    })
}

#[tokio::test]
async fn math_add_is_stateless_json() {
    let (url, server) = start(Sample::Math).await;
    let client = reqwest::Client::new();

    let reply = rpc(&client, &url, call("add", json!({"a": 2, "b": 3.5}))).await;
    assert_eq!(
        reply,
        json!({
            "jsonrpc": "2.0",
            "id": 7,
            "result": {
                "content": [{"type": "text", "text": "{\"result\":5.5}"}],
                "structuredContent": {"result": 5.5},
                "isError": false,
            },
        })
    );

    let reply = rpc(&client, &url, call("multiply", json!({"a": -4, "b": 2.5}))).await;
    assert_eq!(reply["result"]["structuredContent"], json!({"result": -10.0}));

    server.abort();
}

#[tokio::test]
async fn text_tools_and_listing() {
    let (url, server) = start(Sample::Text).await;
    let client = reqwest::Client::new();

    let reply = rpc(&client, &url, call("word_count", json!({"text": " a b\tc\n"}))).await;
    assert_eq!(reply["result"]["structuredContent"], json!({"count": 3}));
    let reply = rpc(&client, &url, call("upper", json!({"text": "abc"}))).await;
    assert_eq!(reply["result"]["content"][0]["text"], "ABC");
    let reply = rpc(&client, &url, call("reverse", json!({"text": "abc"}))).await;
    assert_eq!(reply["result"]["content"][0]["text"], "cba");
    let reply = rpc(&client, &url, call("about", json!({}))).await;
    assert_eq!(reply["result"]["content"][0]["text"], "text: string sample server");

    let list = rpc(&client, &url, json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    let tools = list["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["about", "reverse", "upper", "word_count"]);
    assert!(tools.iter().all(|t| t["description"].is_string()));

    server.abort();
}

#[tokio::test]
async fn initialize_names_the_server() {
    for sample in Sample::all() {
        let (url, server) = start(sample).await;
        let reply = rpc(
            &reqwest::Client::new(),
            &url,
            json!({
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "test", "version": "0"},
                },
            }),
        )
        .await;
        assert_eq!(reply["result"]["protocolVersion"], "2025-06-18");
        assert_eq!(reply["result"]["serverInfo"]["name"], sample.name());
        server.abort();
    }
}

#[tokio::test]
async fn invalid_arguments_are_tool_errors() {
    let (url, server) = start(Sample::Math).await;
    let client = reqwest::Client::new();

    let reply = rpc(&client, &url, call("add", json!({"a": "two", "b": 1}))).await;
    assert_eq!(reply["result"]["isError"], true);
    let reply = rpc(&client, &url, call("multiply", json!({"a": 1e308, "b": 10}))).await;
    assert_eq!(reply["result"]["isError"], true);
    let reply = rpc(&client, &url, call("nope", json!({}))).await;
    assert_eq!(reply["error"]["code"], -32602);

    // The server survived all of that.
    let reply = rpc(&client, &url, call("about", json!({}))).await;
    assert_eq!(reply["result"]["content"][0]["text"], "math: arithmetic sample server");

    server.abort();
}
