//! Agents built with each major LLM SDK, run from examples/agents/ through a route, their model
//! scripted (e2e/peers/scripted_model.py, validating each request as its provider does): the
//! tools each SDK offers its model, the tool results it hands back, and what the model is told
//! when the route denies a call, the upstream fails or a rate limit is reached.

use std::collections::HashSet;
use std::sync::Mutex;

use futures::future::join_all;
use manifold_e2e::peers::{Sdk, Upstream, run_agent, run_client_with, tool_names};
use manifold_e2e::stub::{Reply, Stub};
use manifold_e2e::tokens::{Signer, claims, jwks};
use manifold_e2e::{LocalStack, yaml};
use serde_json::{Value, json};

/// The SDK paths on OpenAI's Chat Completions API, which takes at most 128 tools a request.
const CHAT_COMPLETIONS: [&str; 3] = ["openai_chat_agent.py", "openai_agents_agent.py", "pydantic_ai_agent.py"];

/// Every SDK path of examples/agents/.
const EXAMPLES: [&str; 7] = [
    "gemini_agent.py",
    "gemini_agent.mjs",
    "openai_chat_agent.py",
    "openai_responses_agent.py",
    "openai_agents_agent.py",
    "anthropic_agent.py",
    "pydantic_ai_agent.py",
];

const ISSUER: &str = "https://idp.acme.test";
const AUD: &str = "https://mcp.test/acme/agents/mcp";
const DENIED: &str = "tool `agents_f000`: call is not allowed for this caller";
const FAILED: &str = "the warehouse is unreachable";

/// The `agents` upstream behind a route taking API keys and JWTs, with a few of its tools
/// (plain schemas every SDK takes): `agents_echo`, `agents_fail` (fails upstream), and
/// `agents_f000`..`agents_f009`. Its decision point revokes `agents_f000` from a caller named
/// `revoked-…` once it was listed to them: the model is offered the tool, and its call is denied
/// (a permission withdrawn mid-run; a list never shows what the caller would be refused then).
struct Guarded {
    stack: LocalStack,
    signer: Signer,
    _upstream: Upstream,
    _jwks: Stub,
    _decisions: Stub,
}

impl Guarded {
    async fn start() -> Self {
        let signer = Signer::rsa("rsa-a", "2026-01");
        let published = jwks(&[&signer]);
        let endpoint = Stub::start(move |_| Reply::json(published.clone())).await;
        let listed_once = Mutex::new(HashSet::new());
        let decisions = Stub::start(move |request| {
            let input = &request.json()["input"];
            let user = input["user"]["key"].as_str().unwrap_or_default().to_owned();
            let revocable = input["resource"]["key"] == "agents_f000" && user.starts_with("revoked-");
            let allow = !revocable || listed_once.lock().expect("decision state").insert(user);
            Reply::json(json!({"result": allow}))
        })
        .await;
        let upstream = Upstream::start("agents").await;
        // An API key per caller: the lister, and each example's revoked user.
        let users = std::iter::once("lister".to_owned()).chain(EXAMPLES.map(revoked));
        let keys: Vec<String> = users.map(|user| format!("'{user}': '{{key: {}}}'", key_of(&user))).collect();
        let keys = format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: keys, namespace: acme}}\nstringData: {{{}}}\n",
            keys.join(", ")
        );
        let authentication = format!(
            "{{apiKeys: {{secretRef: {{name: keys}}}}, jwt: [{{issuer: '{ISSUER}', audiences: ['{AUD}'], jwks: {{uri: '{}'}}}}]}}",
            endpoint.url("/jwks")
        );
        let route = yaml::route(
            "agents",
            &format!(
                "mounts: [{{server: agents, tools: {{include: [echo, fail, 'f00?']}}}}], authentication: {authentication}, \
                 authorization: {{external: {{url: '{}', api: opa, cacheTtl: 0s}}}}",
                decisions.url("/v1/data/manifold/allow")
            ),
        );
        let stack = LocalStack::start(&(yaml::server("agents", &upstream.mcp_url(), "") + &keys + &route)).await;
        Self { stack, signer, _upstream: upstream, _jwks: endpoint, _decisions: decisions }
    }

    fn url(&self) -> String {
        self.stack.url("/acme/agents/mcp")
    }

    fn api_key(&self, user: &str) -> Vec<String> {
        vec![format!("Authorization: Bearer {}", key_of(user))]
    }

    fn jwt(&self, user: &str) -> Vec<String> {
        vec![format!("Authorization: Bearer {}", self.signer.token(&claims(ISSUER, AUD, user)))]
    }

    /// The route's tools as a plain MCP client lists them, every page.
    async fn tools(&self) -> Vec<String> {
        let listed =
            run_client_with(&self.url(), Sdk::Mcp, &self.api_key("lister"), json!([{"op": "list", "kind": "tools"}]))
                .await;
        tool_names(&json!({"tools": listed[0]["items"]}))
    }
}

fn revoked(example: &str) -> String {
    format!("revoked-{example}")
}

fn key_of(user: &str) -> String {
    format!("{user}-key-0123456789abcdef")
}

/// A tool result the SDK wrote as JSON text, parsed.
fn parsed(result: &Value) -> Value {
    let text = result.as_str().unwrap_or_else(|| panic!("not a text result: {result}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn sorted(names: &Value) -> Vec<String> {
    let mut names: Vec<String> = names
        .as_array()
        .unwrap_or_else(|| panic!("not a list of names: {names}"))
        .iter()
        .map(|n| n.as_str().expect("a tool name").to_owned())
        .collect();
    names.sort();
    names
}

/// What `example` hands its model for the revoked call, the upstream failure and `agents_echo`:
/// text as the model read it, or JSON (an object) the text parses as.
fn told(example: &str) -> [Value; 3] {
    let echoed = r#"echo:{"text":"hi"}"#;
    let mcp_result = |text: &str, error: bool| json!({"content": [{"type": "text", "text": text}], "is_error": error, "result_type": "complete"});
    match example {
        // The session's error, and each result whole: a failed one as `error`.
        "gemini_agent.py" => [json!({"error": DENIED}), json!({"error": mcp_result(FAILED, true)}), json!(echoed)],
        // The examples' own loop: the refusal and the failure marked.
        "openai_chat_agent.py" | "openai_responses_agent.py" => {
            [json!(format!("error: {DENIED}")), json!(format!("error: {FAILED}")), json!(echoed)]
        }
        // The Agents SDK hides why a call raised; a failed result reaches the model unmarked.
        "openai_agents_agent.py" => {
            [json!("An error occurred while running the tool. Please try again."), json!(FAILED), json!(echoed)]
        }
        // The tool runner hands over the exception's repr (both failures as `is_error` results).
        "anthropic_agent.py" => [json!(format!("MCPError(-32003, '{DENIED}', None)")), json!(FAILED), json!(echoed)],
        "pydantic_ai_agent.py" => [json!({"error": DENIED}), json!({"error": FAILED}), json!(echoed)],
        other => panic!("no expectation for {other}"),
    }
}

fn assert_told(example: &str, run: &Value, expected: &[Value]) {
    let results = run["tool_results"].as_array().unwrap_or_else(|| panic!("{example}: {run}"));
    assert_eq!(results.len(), expected.len(), "{example}: {run}");
    for (result, expected) in results.iter().zip(expected) {
        let read = if expected.is_object() { parsed(result) } else { result.clone() };
        assert_eq!(&read, expected, "{example}: {run}");
    }
}

/// Each SDK lists the route's tools and offers exactly those to its model (API keys; JWTs for
/// the Gemini paths); the model calls a tool whose permission was withdrawn since, then one
/// the upstream fails, then `agents_echo`: each SDK goes on to a final answer carrying the echo,
/// and the model read each case as `told` says. The TypeScript Gemini SDK raises on the denial
/// instead, ending the run; a second run shows it the failure and the round trip.
#[tokio::test(flavor = "multi_thread")]
async fn every_sdk_round_trips_a_tool_and_tells_its_model_of_a_denied_call_and_an_upstream_failure() {
    let route = Guarded::start().await;
    let tools = route.tools().await;
    assert_eq!(tools.len(), 12, "{tools:?}");
    let echo = json!({"tool": "agents_echo", "arguments": {"text": "hi"}});
    let fail = json!({"tool": "agents_fail", "arguments": {"n": 1}});
    let answer = json!({"text": "The tool said: {result}"});
    let script = json!({
        "input": "Try f000, then fail, then echo hi.",
        "turns": [{"tool": "agents_f000", "arguments": {"n": 1}}, fail, echo, answer],
    });

    let url = route.url();
    let runs = join_all(EXAMPLES.map(|example| {
        let user = revoked(example);
        let headers = if example.starts_with("gemini") { route.jwt(&user) } else { route.api_key(&user) };
        let (url, script) = (url.clone(), script.clone());
        async move { (example, run_agent(example, &url, &headers, script).await) }
    }))
    .await;
    for (example, run) in runs {
        assert_eq!(sorted(&run["offered"][0]), tools, "{example} offers its model the route's tools: {run}");
        if example == "gemini_agent.mjs" {
            assert_eq!(run["raised"], format!("McpError: MCP error -32003: {DENIED}"), "{run}");
            assert_eq!(run["requests"], 1, "{run}");
            continue;
        }
        let expected = told(example);
        assert_told(example, &run, &expected);
        let echoed = run["tool_results"][2].as_str().expect("the echo as text");
        assert_eq!(run["final"], format!("The tool said: {echoed}"), "{example}: {run}");
        assert_eq!(run["requests"], 4, "{example}: {run}");
        // The Agents SDK lists the tools again for every request: the revoked one is gone then.
        let later: Vec<String> = if example == "openai_agents_agent.py" {
            tools.iter().filter(|t| *t != "agents_f000").cloned().collect()
        } else {
            tools.clone()
        };
        for offered in &run["offered"].as_array().expect("offered per request")[1..] {
            assert_eq!(sorted(offered), later, "{example}: {run}");
        }
    }

    // The TypeScript Gemini SDK, a caller whose permissions stay: the failure, then the echo.
    let script = json!({"input": "Try fail, then echo hi.", "turns": [fail, echo, answer]});
    let run = run_agent("gemini_agent.mjs", &url, &route.jwt("gemini_agent.mjs"), script).await;
    let echoed = r#"echo:{"text":"hi"}"#;
    assert_told(
        "gemini_agent.mjs",
        &run,
        &[json!({"error": {"content": [{"type": "text", "text": FAILED}], "isError": true}}), json!(echoed)],
    );
    let echoed = run["tool_results"][1].as_str().expect("the echo as text");
    assert_eq!(run["final"], format!("The tool said: {echoed}"), "{run}");
    for offered in run["offered"].as_array().expect("offered per request") {
        assert_eq!(sorted(offered), tools, "{run}");
    }
}

/// A route with 300 tools, among them the schema cases (`$ref`, draft-07 `definitions`,
/// `additionalProperties: false`, an open map, enums, nullable, nested objects) and a 70-character
/// dotted name (`agents_billing.invoices.…`), on one upstream and one gateway, with and without
/// `spec.compatibility: [openai, anthropic, gemini]`, the gateway listing in pages of 100.
/// Without it, each SDK fails its own way (or its provider refuses the request); with it, every
/// SDK offers the route's 300 tools, listed in one page (the long name in its short form), and
/// calls the schema cases through it, the upstream receiving the arguments as the model sent them.
/// Chat Completions takes at most 128 tools a request, profile or not: its three SDK paths run on
/// the same mount narrowed to 110 tools (and one shows the refusal of 300).
#[tokio::test(flavor = "multi_thread")]
async fn a_300_tool_route_works_in_every_sdk_with_compatibility_and_fails_each_its_own_way_without() {
    let upstream = Upstream::start("agents").await;
    let routes = yaml::route("bare", "mounts: [{server: agents}]")
        + &yaml::route("compatible", "mounts: [{server: agents}], compatibility: [openai, anthropic, gemini]")
        // The schema cases and 100 fillers: within Chat Completions' 128 tools per request.
        + &yaml::route("bare-110", "mounts: [{server: agents, tools: {exclude: ['f1*', 'f2*']}}]")
        + &yaml::route(
            "compatible-110",
            "mounts: [{server: agents, tools: {exclude: ['f1*', 'f2*']}}], compatibility: [openai, anthropic, gemini]",
        );
    // Lists in pages of 100 (a profiled route still lists its 300 tools in one page).
    let stack = LocalStack::start_with(&(yaml::server("agents", &upstream.mcp_url(), "") + &routes), |s| {
        s.list_page_size = 100
    })
    .await;
    let listed = |route: &str| {
        let url = stack.url(&format!("/acme/{route}/mcp"));
        async move {
            let listed = run_client_with(&url, Sdk::Mcp, &[], json!([{"op": "list", "kind": "tools"}])).await;
            listed.into_iter().next().expect("the list's answer")
        }
    };
    let (bare_list, compatible_list, narrow_list, bare_narrow_list) =
        tokio::join!(listed("bare"), listed("compatible"), listed("compatible-110"), listed("bare-110"));
    assert_eq!((&bare_list["pages"], &compatible_list["pages"]), (&json!(3), &json!(1)), "pages of 100, or one");
    let tools = tool_names(&json!({"tools": bare_list["items"]}));
    let compatible_tools = tool_names(&json!({"tools": compatible_list["items"]}));
    let narrow_tools = tool_names(&json!({"tools": narrow_list["items"]}));
    let bare_narrow_tools = tool_names(&json!({"tools": bare_narrow_list["items"]}));
    assert_eq!(
        (tools.len(), compatible_tools.len(), narrow_tools.len(), bare_narrow_tools.len()),
        (300, 300, 110, 110)
    );
    let first_page: Vec<Value> =
        bare_list["items"].as_array().expect("items")[..100].iter().map(|t| t["name"].clone()).collect();
    // Runs `script` through every example at once, each on the route `route(example)` names.
    let run_all = |route: fn(&str) -> &'static str, script: Value| {
        join_all(EXAMPLES.map(|example| {
            let (url, script) = (stack.url(&format!("/acme/{}/mcp", route(example))), script.clone());
            async move { (example, run_agent(example, &url, &[], script).await) }
        }))
    };

    // The profile changes one name: the dotted 70-character one, to its short form.
    const LONG: &str = "agents_billing.invoices.reconcile_outstanding_balances_for_customer_id";
    const SHORT: &str = "agents_billing_invoices_reconcile_outstanding_balances__25174f6b";
    let renamed: Vec<String> = tools.iter().map(|t| if t == LONG { SHORT.to_owned() } else { t.clone() }).collect();
    assert_eq!(sorted(&json!(renamed)), compatible_tools);

    // With the profile: each schema case called (by the name the model was offered), its
    // arguments as the upstream received them.
    let calls = [
        ("agents_ship_order", "ship_order", json!({"address": {"city": "Oslo", "zip": "0150"}})),
        ("agents_legacy_lookup", "legacy_lookup", json!({"key": "k1"})),
        ("agents_closed_note", "closed_note", json!({"text": "t"})),
        ("agents_tag_resource", "tag_resource", json!({"resource": "r1", "labels": {"team": "ops"}})),
        ("agents_set_unit", "set_unit", json!({"unit": "celsius"})),
        ("agents_update_note", "update_note", json!({"title": null, "body": "b"})),
        (
            "agents_create_shipment",
            "create_shipment",
            json!({"sender": {"name": "n", "address": {"city": "Oslo"}}, "parcels": [{"kg": 2.5}]}),
        ),
        (SHORT, "billing.invoices.reconcile_outstanding_balances_for_customer_id", json!({"customer": "c1"})),
    ];
    let mut turns: Vec<Value> =
        calls.iter().map(|(name, _, arguments)| json!({"tool": name, "arguments": arguments})).collect();
    turns.push(json!({"text": "done"}));
    // Chat Completions takes 128 tools a request: its SDK paths use the route of 110.
    let profiled = |example: &str| if CHAT_COMPLETIONS.contains(&example) { "compatible-110" } else { "compatible" };
    let script = json!({"input": "Use every case.", "turns": turns});
    for (example, run) in run_all(profiled, script.clone()).await {
        assert_eq!(run["final"], "done", "{example}: {run}");
        assert_eq!(run["requests"], calls.len() + 1, "{example}: {run}");
        let route_tools = if profiled(example) == "compatible" { &compatible_tools } else { &narrow_tools };
        for offered in run["offered"].as_array().expect("offered per request") {
            assert_eq!(&sorted(offered), route_tools, "{example} offers the route's tools: {run}");
        }
        let results = run["tool_results"].as_array().unwrap_or_else(|| panic!("{example}: {run}"));
        assert_eq!(results.len(), calls.len(), "{example}: {run}");
        for (result, (_, upstream_name, arguments)) in results.iter().zip(&calls) {
            assert_eq!(result.as_str().unwrap_or_default(), format!("{upstream_name}:{arguments}"), "{example}: {run}");
        }
    }

    // All 300 in one Chat Completions request: the provider's own bound, profile or not.
    let run = run_agent("openai_chat_agent.py", &stack.url("/acme/compatible/mcp"), &[], script).await;
    let refused = "Invalid 'tools': array too long. Expected an array with maximum length 128, but got an array with length 300 instead.";
    assert_eq!(run["raised"], format!("BadRequestError: Error code: 400 - {refused}"), "{run}");
    assert_eq!(run["refusals"][0]["error"]["error"]["message"], refused, "{run}");

    // Without it.
    let script = json!({
        "input": "Echo hi.",
        "turns": [{"tool": "agents_echo", "arguments": {"text": "hi"}}, {"text": "{result}"}],
    });
    let unprofiled = |example: &str| if CHAT_COMPLETIONS.contains(&example) { "bare-110" } else { "bare" };
    let bare = run_all(unprofiled, script).await;
    let too_long = |field: &str| {
        format!(
            "Invalid '{field}': string too long. Expected a string with maximum length 64, but got a string with length 70 instead."
        )
    };
    for (example, run) in bare {
        // What the SDK raised, and the provider's refusal (if the request got that far).
        let (raised, refused) = match example {
            // google-genai converts every schema before sending anything, and fails on a boolean
            // `additionalProperties` (`closed_note`; FastMCP and zod emit one on every tool).
            "gemini_agent.py" => ("AttributeError: 'bool' object has no attribute 'items'".to_owned(), None),
            // The TypeScript SDK sends each schema as is (`parametersJsonSchema`), which Gemini
            // takes, but it stops reading pages once it holds 100 tools (its model is offered the
            // first page only), and Gemini refuses the 70-character name (at most 64).
            "gemini_agent.mjs" => {
                let refused = "The GenerateContentRequest proto is invalid:\n  * tools[0].function_declarations[8].name: [FIELD_INVALID] Invalid function name. Must start with a letter or an underscore. Must be a-z, A-Z, 0-9, or contain underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64.";
                assert_eq!(run["offered"], json!([first_page]), "{run}");
                assert_eq!(run["refusals"][0]["error"]["error"]["message"], refused, "{run}");
                let raised = run["raised"].as_str().unwrap_or_default();
                assert!(raised.starts_with("ApiError: ") && raised.contains("maximum length of 64"), "{run}");
                continue;
            }
            // OpenAI and Anthropic refuse the whole request over `agents_billing.invoices.…` (the
            // Chat Completions paths on the route of 110).
            "openai_chat_agent.py" | "openai_agents_agent.py" => {
                let refused = too_long("tools[8].function.name");
                (format!("BadRequestError: Error code: 400 - {refused}"), Some(refused))
            }
            "openai_responses_agent.py" => {
                let refused = too_long("tools[8].name");
                (format!("BadRequestError: Error code: 400 - {refused}"), Some(refused))
            }
            "pydantic_ai_agent.py" => {
                let refused = too_long("tools[8].function.name");
                (
                    format!(
                        "ModelRequestRejectedError: status_code: 400, model_name: gpt-4.1-mini, body: {{'message': \"{refused}\", 'type': 'invalid_request_error', 'param': 'tools[8].function.name', 'code': 'string_above_max_length'}}"
                    ),
                    Some(refused),
                )
            }
            "anthropic_agent.py" => {
                let refused = "tools.8.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'".to_owned();
                (
                    format!(
                        "BadRequestError: Error code: 400 - {{'type': 'error', 'error': {{'type': 'invalid_request_error', 'message': \"{refused}\"}}}}"
                    ),
                    Some(refused),
                )
            }
            other => panic!("no expectation for {other}"),
        };
        assert_eq!(run["raised"], raised, "{example}: {run}");
        match refused {
            Some(refused) => {
                assert_eq!(run["refusals"][0]["error"]["error"]["message"], refused, "{example}: {run}");
                assert_eq!(run["requests"], 1, "{example}: {run}");
                let route_tools = if unprofiled(example) == "bare" { &tools } else { &bare_narrow_tools };
                assert_eq!(&sorted(&run["offered"][0]), route_tools, "{example} offered the route's tools: {run}");
            }
            None => assert_eq!(run["requests"], 0, "{example} sent nothing: {run}"),
        }
    }
}

/// A rate limit reached mid-run reaches the model as a tool result it can read, with the
/// wait, and the run goes on to a final answer: not an exception that ends the agent.
#[tokio::test(flavor = "multi_thread")]
async fn an_openai_agent_is_told_when_to_retry_a_limited_tool() {
    let alpha = Upstream::start("alpha").await;
    let route = yaml::route(
        "agent",
        "mounts: [{server: alpha}], rateLimits: [{name: echoes, scope: Route, requests: 1, per: 1h, tools: ['*']}]",
    );
    let stack = LocalStack::start(&(yaml::server("alpha", &alpha.mcp_url(), "") + &route)).await;

    let echo = json!({"tool": "alpha_echo", "arguments": {"text": "hi"}});
    let script = json!({"input": "Echo hi, twice.", "turns": [echo, echo, {"text": "done"}]});
    let run = run_agent("openai_agents_agent.py", &stack.url("/acme/agent/mcp"), &[], script).await;

    assert_eq!(run["final"], "done", "the run ends normally: {run}");
    let results = run["tool_results"].as_array().expect("the tool results the model saw");
    assert_eq!(results.len(), 2, "{run}");
    assert!(results[0].as_str().unwrap_or_default().contains("alpha:hi"), "{run}");
    let refused = results[1].as_str().unwrap_or_default();
    assert!(refused.contains("rate limit `echoes` reached: retry in "), "the model reads the limit: {refused}");
    assert!(refused.contains("Nothing was run."), "{refused}");
}
