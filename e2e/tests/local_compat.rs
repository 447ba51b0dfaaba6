//! Local stack, real peers: a FastMCP upstream of 300 tools (profile `agents`: `$ref`s, draft-07
//! `definitions`, a closed object, an open map, enums, nullable and nested objects, and a
//! 70-character dotted name) mounted on three routes. With `compatibility: [openai, anthropic,
//! gemini]` a plain `mcp` client lists them in one page although the gateway's page size is 50,
//! every name passes every provider's rule, the scripted model's validators (each provider's
//! rules) accept them all, schemas are normalised with what was lost noted,
//! and a shortened tool called by its short form reaches the upstream under its real name
//! with the arguments it declares. `incompatibleToolNames: Report` leaves the dotted tool out
//! and `/status` names it. A route without the profile serves the upstream's names, schemas
//! and pages unchanged.

use manifold_api::compat::{self, Provider};
use std::io::Write;
use std::process::{Command, Stdio};

use manifold_e2e::peers::{Sdk, Upstream, python, run_client};
use manifold_e2e::{LocalStack, repo_root, yaml};
use serde_json::{Value, json};

const ALL: &[Provider] = &[Provider::OpenAi, Provider::Anthropic, Provider::Gemini];
const DOTTED: &str = "agents_billing.invoices.reconcile_outstanding_balances_for_customer_id";

/// The route's tools as one `mcp` client session lists them, and how many pages that took.
async fn list(stack: &LocalStack, route: &str) -> (Vec<Value>, u64) {
    let out =
        run_client(&stack.url(&format!("/acme/{route}/mcp")), Sdk::Mcp, json!([{"op": "list", "kind": "tools"}])).await;
    let tools = out[0]["items"].as_array().unwrap_or_else(|| panic!("a list: {}", out[0])).clone();
    (tools, out[0]["pages"].as_u64().expect("a page count"))
}

fn tool<'a>(tools: &'a [Value], name: &str) -> &'a Value {
    tools.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("`{name}` is listed"))
}

/// What the scripted model's validator (the providers' rules) says of `tools` (MCP tools as a
/// route lists them) declared in `format` as an SDK built from `list_tools` declares them.
fn refusals(format: &str, tools: &[Value]) -> Vec<String> {
    let declared: Vec<Value> = tools
        .iter()
        .map(|t| {
            let (name, description, schema) = (&t["name"], &t["description"], &t["inputSchema"]);
            match format {
                "openai" => json!({"type": "function", "function": {"name": name, "description": description, "parameters": schema}}),
                "anthropic" => json!({"name": name, "description": description, "input_schema": schema}),
                _ => json!({"name": name, "description": description, "parameters": schema}),
            }
        })
        .collect();
    let tools = match format {
        "gemini" => json!([{"functionDeclarations": declared}]),
        _ => Value::Array(declared),
    };
    let mut child = Command::new(python())
        .arg(repo_root().join("e2e/peers/scripted_model.py"))
        .args(["validate", format])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the validator starts");
    child.stdin.take().expect("stdin").write_all(tools.to_string().as_bytes()).expect("tools written");
    let out = child.wait_with_output().expect("the validator ends");
    let answer: Value = serde_json::from_slice(&out.stdout).expect("the validator answers JSON");
    answer["errors"].as_array().expect("errors").iter().map(|e| e.as_str().unwrap_or_default().to_owned()).collect()
}

/// Every JSON object key anywhere in `value`.
fn keys(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(key, v)| {
            out.push(key.clone());
            keys(v, out);
        }),
        Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_with_a_compatibility_profile_serves_every_provider_and_one_without_is_unchanged() {
    let upstream = Upstream::start("agents").await;
    let manifests = yaml::server("agents", &upstream.mcp_url(), "")
        + &yaml::route("compatible", "mounts: [{server: agents}], compatibility: [openai, anthropic, gemini]")
        + &yaml::route(
            "reported",
            "mounts: [{server: agents}], compatibility: [openai, anthropic, gemini], incompatibleToolNames: Report",
        )
        + &yaml::route("plain", "mounts: [{server: agents}]");
    let stack = LocalStack::start_with(&manifests, |s| s.list_page_size = 50).await;

    // One page of 300, whatever the page size; every name valid for every provider.
    let (tools, pages) = list(&stack, "compatible").await;
    assert_eq!((tools.len(), pages), (300, 1));
    for tool in &tools {
        let name = tool["name"].as_str().expect("a name");
        assert_eq!(compat::name_problem(name, ALL), None);
        let mut found = Vec::new();
        keys(&tool["inputSchema"], &mut found);
        for refused in ["$ref", "$defs", "definitions", "additionalProperties", "const", "oneOf", "allOf"] {
            assert!(!found.iter().any(|k| k == refused), "`{refused}` in {name}'s schema: {}", tool["inputSchema"]);
        }
    }
    // In requests of 100 tools: OpenAI takes at most 128 in one request, whatever the route.
    for format in ["openai", "anthropic", "gemini"] {
        for chunk in tools.chunks(100) {
            assert_eq!(refusals(format, chunk), Vec::<String>::new(), "{format} accepts every tool");
        }
    }
    let short = compat::short_name(DOTTED);
    assert!(tools.iter().any(|t| t["name"] == short.as_str()), "{DOTTED} is listed as {short}");
    let ship = tool(&tools, "agents_ship_order");
    assert_eq!(ship["inputSchema"]["properties"]["address"]["properties"]["city"], json!({"type": "string"}));
    assert_eq!(
        tool(&tools, "agents_legacy_lookup")["inputSchema"]["properties"]["key"],
        json!({"type": "string", "minLength": 1})
    );
    assert_eq!(
        tool(&tools, "agents_update_note")["inputSchema"]["properties"]["title"],
        json!({"type": "string", "nullable": true})
    );
    assert_eq!(
        tool(&tools, "agents_set_unit")["inputSchema"]["properties"]["precision"]["enum"],
        json!(["0", "1", "2"])
    );
    let closed = tool(&tools, "agents_closed_note")["description"].as_str().expect("a description").to_owned();
    assert!(closed.starts_with("The closed_note case.\n\n(Input schema simplified for this client:"), "{closed}");
    assert!(
        closed.contains("`$`: additionalProperties dropped (undeclared properties are removed before the call)"),
        "{closed}"
    );
    assert_eq!(tool(&tools, "agents_echo")["description"], "The echo case.", "nothing lost, nothing noted");

    // The short form reaches the upstream tool under its real name; a closed tool gets only
    // what it declares, an open one everything.
    let out = run_client(
        &stack.url("/acme/compatible/mcp"),
        Sdk::Mcp,
        json!([
            {"op": "call", "name": short, "arguments": {"customer": "c-42"}},
            {"op": "call", "name": "agents_closed_note", "arguments": {"text": "hi", "mood": "odd"}},
            {"op": "call", "name": "agents_tag_resource", "arguments": {"resource": "r", "labels": {"a": "b"}}},
        ]),
    )
    .await;
    let texts: Vec<&str> =
        out.iter().map(|o| o["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{o}"))).collect();
    assert_eq!(
        texts,
        [
            "billing.invoices.reconcile_outstanding_balances_for_customer_id:{\"customer\":\"c-42\"}",
            "closed_note:{\"text\":\"hi\"}",
            "tag_resource:{\"labels\":{\"a\":\"b\"},\"resource\":\"r\"}",
        ]
    );

    // Report: the tool is left out, the route's other tools go on, and the status says why.
    let (reported, _) = list(&stack, "reported").await;
    assert_eq!(reported.len(), 299);
    assert!(!reported.iter().any(|t| t["name"] == DOTTED || t["name"] == short.as_str()));
    let status: Value = reqwest::get(stack.admin_url("/status")).await.unwrap().json().await.unwrap();
    let outcome = status["report"]["objects"]
        .as_array()
        .expect("outcomes")
        .iter()
        .find(|o| o["object"]["name"] == "reported")
        .unwrap_or_else(|| panic!("the reported route's outcome: {status}"));
    let partial =
        outcome["conditions"].as_array().expect("conditions").iter().find(|c| c["type"] == "PartiallyInvalid");
    let partial = partial.unwrap_or_else(|| panic!("PartiallyInvalid: {outcome}"));
    assert_eq!((partial["status"].as_bool(), partial["reason"].as_str()), (Some(true), Some("ToolsLeftOut")));
    let message = partial["message"].as_str().expect("a message");
    assert!(
        message.contains(&format!("tool name `{DOTTED}` (70 characters)")) && message.contains("openai requires"),
        "{message}"
    );
    let compatible =
        status["report"]["objects"].as_array().expect("outcomes").iter().find(|o| o["object"]["name"] == "compatible");
    let compatible = compatible.expect("the compatible route's outcome").to_string();
    assert!(compatible.contains("NamesShortened") && compatible.contains(&short), "{compatible}");

    // Without the profile: the upstream's names and schemas (under the prefix), in pages of 50.
    let (plain, pages) = list(&stack, "plain").await;
    assert_eq!((plain.len(), pages), (300, 6));
    let direct = run_client(&upstream.mcp_url(), Sdk::Mcp, json!([{"op": "list", "kind": "tools"}])).await;
    let direct = direct[0]["items"].as_array().expect("the upstream's tools");
    assert_eq!(direct.len(), 300);
    for original in direct {
        let served = tool(&plain, &format!("agents_{}", original["name"].as_str().expect("a name")));
        assert_eq!(
            (&served["inputSchema"], &served["description"]),
            (&original["inputSchema"], &original["description"])
        );
    }
    assert_eq!(tool(&plain, "agents_closed_note")["inputSchema"]["additionalProperties"], json!(false));
    tool(&plain, DOTTED);
    // Without the profile, OpenAI and Anthropic refuse the 70-character dotted name, and
    // Gemini the schemas (`additionalProperties`, `$ref`s into draft-07 `definitions`).
    for format in ["openai", "anthropic", "gemini"] {
        let refused: Vec<String> = plain.chunks(100).flat_map(|chunk| refusals(format, chunk)).collect();
        let expected = if format == "gemini" { "definitions" } else { "64" };
        assert!(refused.iter().any(|r| r.contains(expected)), "{format} refuses the plain route: {refused:?}");
    }
}
