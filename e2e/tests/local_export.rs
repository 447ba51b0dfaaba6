//! A route's tools exported for LLM APIs (`GET <route path>/tools?format=`, `POST <route
//! path>/tools/call`) with real peers: FastMCP upstreams behind the gateway, and the scripted
//! model (e2e/peers/scripted_model.py) judging what is exported as each provider would, then
//! playing an agent loop driven over plain HTTP, with no MCP SDK, through the export.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use manifold_e2e::peers::{Upstream, python};
use manifold_e2e::{LocalStack, eventually, repo_root, yaml};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

const KEY: &str = "alice-key-0123456789abcdef";
const ROUTE: &str = "/acme/agents/mcp";
const FORMATS: [&str; 5] = ["openai", "openai-strict", "openai-responses", "anthropic", "gemini"];

/// alpha and beta behind route `agents` for alice (an API key), who may call anything but
/// `beta_multiply`; arguments audited.
async fn stack() -> (LocalStack, Upstream, Upstream) {
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let keys = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: keys, namespace: acme}}\n\
         stringData: {{alice: '{{key: {KEY}, groups: [dev]}}'}}\n"
    );
    let rules = "{rules: [{effect: Deny, tools: [beta_multiply]}, {effect: Allow, groups: [dev], tools: ['*']}]}";
    let route = yaml::route(
        "agents",
        &format!(
            "audit: {{includeArguments: true}}, mounts: [{{server: alpha}}, {{server: beta}}], \
             authentication: {{apiKeys: {{secretRef: {{name: keys}}}}}}, authorization: {rules}"
        ),
    );
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "") + &yaml::server("beta", &beta.mcp_url(), "") + &keys;
    (LocalStack::start(&(manifests + &route)).await, alpha, beta)
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// `GET <route>/tools?format=F` as alice: the JSON it answers.
async fn exported(stack: &LocalStack, format: &str) -> Value {
    let response = http()
        .get(stack.url(&format!("{ROUTE}/tools?format={format}")))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("the export answers");
    assert_eq!(response.status(), 200, "format {format}");
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.expect("a JSON body")
}

/// `POST <route>/tools/call` as alice: the status and the JSON it answers.
async fn called(stack: &LocalStack, body: &Value) -> (u16, Value) {
    let response =
        http().post(stack.url(&format!("{ROUTE}/tools/call"))).bearer_auth(KEY).json(body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.expect("a JSON body"))
}

/// The scripted model's verdict on exported tools: why the provider would refuse them.
async fn validate(format: &str, tools: &Value) -> Vec<String> {
    let mut child = Command::new(python())
        .arg(repo_root().join("e2e/peers/scripted_model.py"))
        .args(["validate", format])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the validator starts");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(tools.to_string().as_bytes()).await.expect("the tools are written");
    drop(stdin);
    let output = child.wait_with_output().await.expect("the validator ends");
    let verdict: Value = serde_json::from_slice(&output.stdout).expect("the validator prints JSON");
    serde_json::from_value(verdict["errors"].clone()).expect("errors are strings")
}

/// The names a format declares, in order.
fn names(format: &str, tools: &Value) -> Vec<String> {
    let declared = match format {
        "gemini" => tools[0]["functionDeclarations"].as_array(),
        _ => tools.as_array(),
    };
    let name = |tool: &Value| match format {
        "openai" | "openai-strict" => tool["function"]["name"].clone(),
        _ => tool["name"].clone(),
    };
    declared.expect("a list of tools").iter().map(|t| name(t).as_str().expect("a name").to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_format_is_what_its_provider_accepts_and_strict_marks_the_exact_conversions() {
    let (stack, _alpha, _beta) = stack().await;
    let visible: BTreeSet<String> = [
        "alpha_add",
        "alpha_echo",
        "alpha_fail",
        "alpha_greet",
        "alpha_header",
        "alpha_slow",
        "alpha_whoami",
        "beta_echo",
        "beta_whoami",
    ]
    .map(String::from)
    .into();
    for format in FORMATS {
        let tools = exported(&stack, format).await;
        assert_eq!(validate(format, &tools).await, Vec::<String>::new(), "{format}: {tools}");
        let declared: BTreeSet<String> = names(format, &tools).into_iter().collect();
        assert_eq!(declared, visible, "{format}: the caller's tools, without the one it may not call");
    }

    // Strict exactly where every object can be closed with nothing refused: the tools without
    // arguments have an object without properties, which strict mode refuses.
    let strict = |tools: &Value, at: &str| -> BTreeSet<String> {
        let tools = tools.as_array().expect("a list");
        let flag = |t: &Value| if at.is_empty() { t["strict"].clone() } else { t[at]["strict"].clone() };
        assert!(tools.iter().all(|t| flag(t).is_boolean()), "every tool says whether it is strict");
        let name = |t: &Value| if at.is_empty() { t["name"].clone() } else { t[at]["name"].clone() };
        tools.iter().filter(|t| flag(t) == true).map(|t| name(t).as_str().unwrap_or_default().to_owned()).collect()
    };
    let exact: BTreeSet<String> =
        ["alpha_add", "alpha_echo", "alpha_header", "alpha_slow", "beta_echo"].map(String::from).into();
    assert_eq!(strict(&exported(&stack, "openai-strict").await, "function"), exact);
    assert_eq!(strict(&exported(&stack, "openai-responses").await, ""), exact);
    let chat = exported(&stack, "openai-strict").await;
    let echo = chat.as_array().unwrap().iter().find(|t| t["function"]["name"] == "alpha_echo").unwrap();
    assert_eq!(echo["function"]["parameters"]["additionalProperties"], false);
    assert_eq!(echo["function"]["parameters"]["required"], json!(["text"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_and_unauthenticated_callers_are_refused_saying_why() {
    let (stack, _alpha, _beta) = stack().await;
    for query in ["", "?format=claude"] {
        let response = http().get(stack.url(&format!("{ROUTE}/tools{query}"))).bearer_auth(KEY).send().await.unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("openai, openai-strict, openai-responses, anthropic, gemini"), "{message}");
    }
    let (status, body) = called(&stack, &json!({"name": "alpha_echo", "arguments": {"text": "hi"}})).await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(status, 400);
    assert!(message.contains("Chat Completions") && message.contains("functionCall"), "{message}");

    // As the MCP endpoint answers: 401 and the challenge that says where to get a token.
    let anonymous = [
        http().get(stack.url(&format!("{ROUTE}/tools?format=openai"))),
        http().post(stack.url(&format!("{ROUTE}/tools/call"))).json(&json!({})),
        http().post(stack.url(ROUTE)).json(&json!({})),
    ];
    for request in anonymous {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
    }
    // A browser page of another origin is refused as on the MCP endpoint.
    let foreign = http().get(stack.url(&format!("{ROUTE}/tools?format=openai"))).bearer_auth(KEY);
    let response = foreign.header("origin", "http://evil.example.com").send().await.unwrap();
    assert_eq!(response.status(), 403);
    let wrong_method = http().post(stack.url(&format!("{ROUTE}/tools?format=openai"))).bearer_auth(KEY);
    let response = wrong_method.send().await.unwrap();
    assert_eq!((response.status().as_u16(), response.headers()["allow"].to_str().unwrap()), (405, "GET"));
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_in_every_shape_come_back_in_it_refusals_as_readable_results_metered_and_audited() {
    let (stack, _alpha, _beta) = stack().await;
    let calls = json!([
        {"id": "c1", "type": "function", "function": {"name": "alpha_echo", "arguments": "{\"text\":\"chat\"}"}},
        {"type": "function_call", "call_id": "r1", "name": "alpha_echo", "arguments": "{\"text\":\"responses\"}"},
        {"type": "tool_use", "id": "u1", "name": "alpha_echo", "input": {"text": "anthropic"}},
        {"functionCall": {"name": "alpha_echo", "args": {"text": "gemini"}, "id": "g1"}},
    ]);
    let (status, answers) = called(&stack, &calls).await;
    assert_eq!(status, 200, "{answers}");
    assert_eq!(answers[0], json!({"role": "tool", "tool_call_id": "c1", "content": "{\"result\":\"alpha:chat\"}"}));
    assert_eq!(
        answers[1],
        json!({"type": "function_call_output", "call_id": "r1", "output": "{\"result\":\"alpha:responses\"}"})
    );
    assert_eq!(
        answers[2],
        json!({"type": "tool_result", "tool_use_id": "u1", "content": [{"type": "text", "text": "alpha:anthropic"}], "is_error": false})
    );
    assert_eq!(
        answers[3],
        json!({"functionResponse": {"name": "alpha_echo", "id": "g1", "response": {"output": {"result": "alpha:gemini"}}}})
    );

    // What the route refuses, and what the tool fails at, the model reads as a result.
    let denied = json!({"type": "tool_use", "id": "u2", "name": "beta_multiply", "input": {"a": 2, "b": 3}});
    let (status, answer) = called(&stack, &denied).await;
    assert_eq!(status, 200);
    assert_eq!(answer["is_error"], true);
    assert_eq!(answer["content"][0]["text"], "tool `beta_multiply`: call is not allowed for this caller");
    let failing = json!({"id": "c2", "type": "function", "function": {"name": "alpha_fail", "arguments": ""}});
    let (_, answer) = called(&stack, &failing).await;
    assert_eq!(answer["content"], "Error: alpha failed on purpose");
    let unknown = json!({"functionCall": {"name": "gamma_nothing", "args": {}}});
    let (status, answer) = called(&stack, &unknown).await;
    let error = answer["functionResponse"]["response"]["error"].as_str().unwrap_or_default().to_owned();
    assert!(status == 200 && error.contains("gamma_nothing"), "{answer}");

    // Metered and audited as MCP calls are: the route's counter, one audit line per call.
    let metrics = http().get(stack.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    let counted = r#"manifold_requests_total{method="tools/call",namespace="acme",outcome="ok",route="agents"} "#;
    let line = metrics.lines().find(|l| l.starts_with(counted)).unwrap_or_else(|| panic!("no {counted} in\n{metrics}"));
    let count: f64 = line[counted.len()..].trim().parse().expect("a count");
    assert_eq!(count, 5.0, "the four echoes and the failing tool (a result) are counted: {line}");
    let events = eventually("the audit lines of the calls", Duration::from_secs(5), || {
        let events = stack.audit();
        async move { (events.len() >= 7).then_some(events) }
    })
    .await;
    let echoed: Vec<&Value> = events.iter().filter(|e| e["target"] == "alpha_echo").collect();
    assert_eq!(echoed.len(), 4, "{events:?}");
    assert!(echoed.iter().all(|e| e["principal"] == "alice" && e["method"] == "tools/call" && e["outcome"] == "ok"));
    assert!(echoed.iter().any(|e| e["arguments"] == json!({"text": "gemini"})), "{echoed:?}");
    let refused = events.iter().find(|e| e["target"] == "beta_multiply").expect("the denied call is audited");
    assert!(refused["decision"].as_str().is_some_and(|d| d.starts_with("deny")), "{refused}");
}

/// A route whose own path is another's export path is served as the MCP endpoint it is: a
/// route's path always wins, so its tools are exported at `<its path>/tools`, and only paths
/// no route serves are read as exports.
#[tokio::test(flavor = "multi_thread")]
async fn a_route_whose_own_path_ends_in_tools_stays_an_mcp_endpoint() {
    let (alpha, beta) = tokio::join!(Upstream::start("alpha"), Upstream::start("beta"));
    let manifests = yaml::server("alpha", &alpha.mcp_url(), "")
        + &yaml::server("beta", &beta.mcp_url(), "")
        + &yaml::route("agents", "mounts: [{server: alpha}]")
        + &yaml::route("shelf", &format!("path: {ROUTE}/tools, mounts: [{{server: beta}}]"));
    let stack = LocalStack::start(&manifests).await;

    let listed = manifold_e2e::raw::stateless(&stack.url(&format!("{ROUTE}/tools")), json!(1), "tools/list", json!({}));
    let listed: Value = listed.send().await.unwrap().json().await.unwrap();
    let mcp_names: Vec<&str> =
        listed["result"]["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(mcp_names.contains(&"beta_echo") && !mcp_names.contains(&"alpha_echo"), "shelf's MCP endpoint: {listed}");

    let response = http().get(stack.url(&format!("{ROUTE}/tools/tools?format=anthropic"))).send().await.unwrap();
    let shelf: Value = response.json().await.unwrap();
    assert!(names("anthropic", &shelf).contains(&"beta_echo".to_owned()), "shelf's export: {shelf}");

    let call = json!({"type": "tool_use", "id": "u1", "name": "alpha_echo", "input": {"text": "still"}});
    let response = http().post(stack.url(&format!("{ROUTE}/tools/call"))).json(&call).send().await.unwrap();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["content"][0]["text"], "alpha:still", "agents' call export, which no route shadows");
}

/// The scripted model serving its turns (`scripted_model.py serve`) until dropped.
struct Model {
    _child: Child,
    /// Held open: the model serves until its stdin closes.
    _stdin: ChildStdin,
    base: String,
}

impl Model {
    async fn serve(turns: Value) -> Model {
        let mut child = Command::new(python())
            .arg(repo_root().join("e2e/peers/scripted_model.py"))
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the scripted model starts");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(json!({ "turns": turns }).to_string().as_bytes()).await.expect("the turns are written");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the scripted model says where it serves within 30s")
            .expect("its stdout reads")
            .expect("a line");
        let served: Value = serde_json::from_str(&line).expect("{\"url\"} on one line");
        Model { _child: child, _stdin: stdin, base: served["url"].as_str().expect("a URL").to_owned() }
    }

    /// The model's answer to `body` at `path`, which it must not refuse.
    async fn ask(&self, path: &str, body: &Value) -> Value {
        let response = http().post(format!("{}{path}", self.base)).json(body).send().await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.expect("the model answers JSON");
        assert_eq!(status, 200, "the model refused {path}: {answer}");
        answer
    }
}

/// One agent loop over plain HTTP: the tools exported in `format` offered to the model in
/// its provider's API, its tool calls run through `POST …/tools/call` and handed back as the
/// export answered them, and the model's final text returned.
async fn agent_loop(stack: &LocalStack, format: &str) -> String {
    let turns = json!([{"tool": "alpha_echo", "arguments": {"text": "loop"}}, {"text": "The tool said {result}"}]);
    let model = Model::serve(turns).await;
    let tools = exported(stack, format).await;
    let prompt = "Echo `loop`.";
    let of_kind = |items: &Value, kind: &str| -> Vec<Value> {
        items.as_array().expect("a list").iter().filter(|i| i["type"] == kind).cloned().collect()
    };
    match format {
        "openai" | "openai-strict" => {
            let path = "/v1/chat/completions";
            let mut messages = vec![json!({"role": "user", "content": prompt})];
            let first = model.ask(path, &json!({"model": "scripted", "messages": messages, "tools": tools})).await;
            let message = first["choices"][0]["message"].clone();
            let (_, results) = called(stack, &message["tool_calls"]).await;
            messages.push(message);
            messages.extend(results.as_array().expect("one answer per call").iter().cloned());
            let last = model.ask(path, &json!({"model": "scripted", "messages": messages, "tools": tools})).await;
            last["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned()
        }
        "openai-responses" => {
            let path = "/v1/responses";
            let mut input = vec![json!({"role": "user", "content": prompt})];
            let first = model.ask(path, &json!({"model": "scripted", "input": input, "tools": tools})).await;
            let calls = of_kind(&first["output"], "function_call");
            let (_, results) = called(stack, &Value::Array(calls.clone())).await;
            input.extend(calls);
            input.extend(results.as_array().expect("one answer per call").iter().cloned());
            let last = model.ask(path, &json!({"model": "scripted", "input": input, "tools": tools})).await;
            last["output"][0]["content"][0]["text"].as_str().unwrap_or_default().to_owned()
        }
        "anthropic" => {
            let path = "/v1/messages";
            let ask = |messages: &Vec<Value>| json!({"model": "scripted", "max_tokens": 256, "messages": messages, "tools": tools});
            let mut messages = vec![json!({"role": "user", "content": prompt})];
            let first = model.ask(path, &ask(&messages)).await;
            let (_, results) = called(stack, &Value::Array(of_kind(&first["content"], "tool_use"))).await;
            messages.push(json!({"role": "assistant", "content": first["content"]}));
            messages.push(json!({"role": "user", "content": results}));
            let last = model.ask(path, &ask(&messages)).await;
            last["content"][0]["text"].as_str().unwrap_or_default().to_owned()
        }
        "gemini" => {
            let path = "/v1beta/models/scripted:generateContent";
            let mut contents = vec![json!({"role": "user", "parts": [{"text": prompt}]})];
            let first = model.ask(path, &json!({"contents": contents, "tools": tools})).await;
            let content = first["candidates"][0]["content"].clone();
            let parts = content["parts"].as_array().expect("parts");
            let calls: Vec<Value> = parts.iter().filter(|p| p.get("functionCall").is_some()).cloned().collect();
            let (_, results) = called(stack, &Value::Array(calls)).await;
            contents.push(content);
            contents.push(json!({"role": "user", "parts": results}));
            let last = model.ask(path, &json!({"contents": contents, "tools": tools})).await;
            last["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap_or_default().to_owned()
        }
        other => panic!("no agent loop for format {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_loop_over_plain_http_runs_through_the_export_in_every_format() {
    let (stack, _alpha, _beta) = stack().await;
    for format in FORMATS {
        let said = agent_loop(&stack, format).await;
        assert!(said.starts_with("The tool said ") && said.contains("alpha:loop"), "{format}: {said}");
    }
}

/// The schema cases agent SDKs trip on (upstream profile `agents`, 300 tools whose results
/// echo the arguments they received): every page listed, each format accepted, strict only
/// where the conversion is exact, and the `null`s a strict call carries for left-out
/// properties taken out before the upstream sees them.
#[tokio::test(flavor = "multi_thread")]
async fn the_schema_cases_are_strict_where_exact_and_strict_nulls_never_reach_the_upstream() {
    let agents = Upstream::start("agents").await;
    // The long dotted name breaks OpenAI's and Anthropic's rules on a route without a
    // compatibility profile: denied here, so it is also the tool the export leaves out.
    let rules = "{rules: [{effect: Deny, tools: ['agents_billing*']}, {effect: Allow, tools: ['*']}]}";
    let route = yaml::route("wide", &format!("path: {ROUTE}, mounts: [{{server: agents}}], authorization: {rules}"));
    let stack = LocalStack::start(&(yaml::server("agents", &agents.mcp_url(), "") + &route)).await;
    let export = |format: &'static str| {
        let url = stack.url(&format!("{ROUTE}/tools?format={format}"));
        async move { http().get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };

    for format in FORMATS {
        let tools = export(format).await;
        assert_eq!(validate(format, &tools).await, Vec::<String>::new(), "{format}");
        let names = names(format, &tools);
        assert_eq!(names.len(), 299, "{format}: every page, less the denied tool");
        assert!(!names.iter().any(|n| n.starts_with("agents_billing")), "{format}");
    }
    let chat = export("openai-strict").await;
    let loose: BTreeSet<&str> = chat
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["function"]["strict"] == false)
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(
        loose,
        BTreeSet::from(["agents_tag_resource", "agents_update_note"]),
        "an open map and a `default` are not strict; draft-07 definitions, enums, nested objects and arrays are"
    );
    let lookup = chat.as_array().unwrap().iter().find(|t| t["function"]["name"] == "agents_legacy_lookup").unwrap();
    // FastMCP inlines `$ref`s as it lists (the unit tests hold the refs' conversion); the
    // draft-07 `definitions` it leaves are strict mode's `$defs`.
    let parameters = &lookup["function"]["parameters"];
    assert_eq!((&parameters["$defs"]["Key"]["type"], parameters.get("definitions")), (&json!("string"), None));

    let strict_call = |id: &str, name: &str, arguments: Value| json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments.to_string()}});
    let calls = json!([
        strict_call("c1", "agents_set_unit", json!({"unit": "celsius", "precision": null})),
        strict_call("c2", "agents_ship_order", json!({"address": {"city": "Oslo", "zip": null}})),
        strict_call("c3", "agents_update_note", json!({"title": null})),
    ]);
    let response = http().post(stack.url(&format!("{ROUTE}/tools/call"))).json(&calls).send().await.unwrap();
    let answers: Value = response.json().await.unwrap();
    let received: Vec<&str> = answers.as_array().unwrap().iter().filter_map(|a| a["content"].as_str()).collect();
    assert_eq!(
        received,
        [
            r#"set_unit:{"unit":"celsius"}"#,
            r#"ship_order:{"address":{"city":"Oslo"}}"#,
            r#"update_note:{"title":null}"#,
        ],
        "optional properties left out again; a nullable one keeps its meant null"
    );
}

/// A rate limit reached is a tool result the model reads, with the wait; nothing was run.
#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_call_is_a_result_that_says_when_to_retry() {
    let alpha = Upstream::start("alpha").await;
    let limits = "rateLimits: [{name: echoes, scope: Route, requests: 1, per: 1h, tools: ['*']}]";
    let route = yaml::route("agents", &format!("mounts: [{{server: alpha}}], {limits}"));
    let stack = LocalStack::start(&(yaml::server("alpha", &alpha.mcp_url(), "") + &route)).await;
    let echo =
        json!({"type": "function_call", "call_id": "r1", "name": "alpha_echo", "arguments": "{\"text\":\"hi\"}"});
    let url = stack.url(&format!("{ROUTE}/tools/call"));
    let first: Value = http().post(&url).json(&echo).send().await.unwrap().json().await.unwrap();
    assert_eq!(first["output"], "{\"result\":\"alpha:hi\"}");
    let response = http().post(&url).json(&echo).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let second: Value = response.json().await.unwrap();
    let output = second["output"].as_str().unwrap_or_default();
    assert!(output.starts_with("Error: rate limit `echoes` reached: retry in "), "{second}");
}

/// On a route with a compatibility profile the export declares what the route's clients
/// see: short forms of the names a provider refuses, which calls reach by that name.
#[tokio::test(flavor = "multi_thread")]
async fn a_profiled_route_exports_its_short_names_and_calls_reach_them() {
    let agents = Upstream::start("agents").await;
    let route = yaml::route(
        "profiled",
        &format!("path: {ROUTE}, compatibility: [openai, anthropic, gemini], mounts: [{{server: agents}}]"),
    );
    let stack = LocalStack::start(&(yaml::server("agents", &agents.mcp_url(), "") + &route)).await;
    let long = "agents_billing.invoices.reconcile_outstanding_balances_for_customer_id";
    let short = manifold_api::compat::short_name(long);
    for format in FORMATS {
        let url = stack.url(&format!("{ROUTE}/tools?format={format}"));
        let tools: Value = http().get(url).send().await.unwrap().json().await.unwrap();
        assert_eq!(validate(format, &tools).await, Vec::<String>::new(), "{format}");
        let names = names(format, &tools);
        assert_eq!(names.len(), 300, "{format}");
        assert!(names.contains(&short) && !names.iter().any(|n| n == long), "{format}: {short}");
    }
    let call = json!({"type": "tool_use", "id": "u1", "name": short, "input": {"customer": "c-1"}});
    let response = http().post(stack.url(&format!("{ROUTE}/tools/call"))).json(&call).send().await.unwrap();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["content"][0]["text"],
        r#"billing.invoices.reconcile_outstanding_balances_for_customer_id:{"customer":"c-1"}"#,
        "{answer}"
    );
}
