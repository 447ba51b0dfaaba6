//! The scripted model server (e2e/peers/scripted_model.py, its rules in provider_rules.py) held
//! to what each provider's API accepts and refuses: its validators over tools as a request or an
//! export carries them, each API's refusal in that provider's error shape over HTTP, and a script
//! played through each API (a tool call, then a final text quoting the tool's result).

use manifold_e2e::peers::{ScriptedModel, validate_tools};
use serde_json::{Value, json};

fn string() -> Value {
    json!({"type": "string"})
}

/// An object schema as OpenAI's strict mode wants it: closed, every property required.
fn closed(properties: Value) -> Value {
    let required: Vec<&String> = properties.as_object().expect("properties is an object").keys().collect();
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

/// A Chat Completions tool.
fn function(name: &str, parameters: Value, strict: Option<bool>) -> Value {
    let mut function = json!({"name": name, "description": "d", "parameters": parameters});
    if let Some(strict) = strict {
        function["strict"] = json!(strict);
    }
    json!({"type": "function", "function": function})
}

/// The same tools in the Responses API's shape.
fn responses_tools(chat: &Value) -> Value {
    let tools = chat.as_array().expect("a tools array").iter().map(|tool| {
        let mut flat = tool["function"].clone();
        flat["type"] = json!("function");
        flat
    });
    Value::Array(tools.collect())
}

fn nested(levels: usize) -> Value {
    (0..levels).fold(closed(json!({"x": string()})), |inner, _| closed(json!({ "x": inner })))
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_validators_accept_what_openai_accepts_and_refuse_each_rule_it_breaks() {
    let strict_ready = json!({
        "type": "object",
        "properties": {
            "q": string(),
            "n": {"type": ["integer", "null"]},
            "when": {"type": "string", "format": "date-time"},
            "kind": {"anyOf": [string(), {"$ref": "#/$defs/k"}]},
        },
        "required": ["q", "n", "when", "kind"],
        "additionalProperties": false,
        "$defs": {"k": closed(json!({"a": string()}))},
    });
    let good = json!([
        function("alpha_echo", json!({"type": "object", "properties": {"text": string()}, "required": ["text"]}), None),
        function("no-args", json!({"type": "object", "properties": {}}), None),
        function("s", strict_ready, Some(true)),
        function(
            "open_map",
            json!({"type": "object", "properties": {"m": {"type": "object", "additionalProperties": string()}}}),
            Some(false)
        ),
        function("deep", nested(9), Some(true)),
    ]);
    assert_eq!(validate_tools("openai", &good).await, Vec::<String>::new());
    assert_eq!(validate_tools("openai-responses", &responses_tools(&good)).await, Vec::<String>::new());

    let strict = |name: &str, parameters: Value| function(name, parameters, Some(true));
    let bad = json!([
        function("alpha.echo", json!({"type": "object", "properties": {}}), None),
        function(&"x".repeat(65), json!({"type": "object", "properties": {}}), None),
        function("arr", json!({"type": "array"}), None),
        function("no_properties", json!({"type": "object"}), None),
        function("bad_required", json!({"type": "object", "properties": {"a": string()}, "required": "a"}), None),
        function("dangling", json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}), None),
        function("root_any_of", json!({"type": "object", "properties": {}, "anyOf": [{"required": ["a"]}]}), None),
        strict("s_open", json!({"type": "object", "properties": {"a": string()}, "required": ["a"]})),
        strict(
            "s_optional",
            json!({"type": "object", "properties": {"a": string(), "b": string()}, "required": ["a"], "additionalProperties": false})
        ),
        strict("s_one_of", closed(json!({"a": {"oneOf": [string(), {"type": "integer"}]}}))),
        strict("s_default", closed(json!({"a": {"type": "string", "default": "x"}}))),
        strict("s_format", closed(json!({"a": {"type": "string", "format": "uri"}}))),
        strict("s_definitions", {
            let mut schema = closed(json!({"a": {"$ref": "#/definitions/a"}}));
            schema["definitions"] = json!({"a": string()});
            schema
        }),
        strict(
            "s_nullable_root",
            json!({"type": ["object", "null"], "properties": {}, "required": [], "additionalProperties": false})
        ),
        strict("s_unique", closed(json!({"a": {"type": "array", "items": string(), "uniqueItems": true}}))),
        strict("s_untyped", closed(json!({"a": {"description": "anything"}}))),
        strict("s_deep", nested(10)),
    ]);
    let deep_context = ["'properties', 'x'"; 10].join(", ");
    let expected = [
        "Invalid 'tools[0].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.".to_owned(),
        "Invalid 'tools[1].function.name': string too long. Expected a string with maximum length 64, but got a string with length 65 instead.".to_owned(),
        "Invalid schema for function 'arr': schema must be a JSON Schema of 'type: \"object\"', got 'type: \"array\"'.".to_owned(),
        "Invalid schema for function 'no_properties': In context=(), object schema missing properties.".to_owned(),
        "Invalid schema for function 'bad_required': required: \"a\" is not an array of strings".to_owned(),
        "Invalid schema for function 'dangling': reference to component '#/$defs/missing' which was not found in the schema.".to_owned(),
        "Invalid schema for function 'root_any_of': schema must have type 'object' and not have 'oneOf'/'anyOf'/'allOf'/'enum'/'const'/'not' at the top level.".to_owned(),
        "Invalid schema for function 's_open': In context=(), 'additionalProperties' is required to be supplied and to be false.".to_owned(),
        "Invalid schema for function 's_optional': In context=(), 'required' is required to be supplied and to be an array including every key in properties. Missing 'b'.".to_owned(),
        "Invalid schema for function 's_one_of': In context=('properties', 'a'), 'oneOf' is not permitted.".to_owned(),
        "Invalid schema for function 's_default': In context=('properties', 'a'), 'default' is not permitted.".to_owned(),
        "Invalid schema for function 's_format': In context=('properties', 'a'), 'uri' is not a valid format.".to_owned(),
        "Invalid schema for function 's_definitions': In context=('properties', 'a'), '$ref' must be '#' or point into '#/$defs/', got '#/definitions/a'.".to_owned(),
        "Invalid schema for function 's_nullable_root': schema must be a JSON Schema of 'type: \"object\"', got 'type: [\"object\", \"null\"]'.".to_owned(),
        "Invalid schema for function 's_unique': In context=('properties', 'a'), 'uniqueItems' is not permitted.".to_owned(),
        "Invalid schema for function 's_untyped': In context=('properties', 'a'), schema must have a 'type' key.".to_owned(),
        format!("Invalid schema for function 's_deep': In context=({deep_context}), objects nest deeper than 10 levels."),
    ];
    assert_eq!(validate_tools("openai", &bad).await, expected);
    let responses: Vec<String> = expected.iter().map(|e| e.replace(".function.name'", ".name'")).collect();
    assert_eq!(validate_tools("openai-responses", &responses_tools(&bad)).await, responses);

    // The strict rules hold only where a tool says `strict: true`; openai-strict says it on every tool.
    let relaxed = json!([function("s_open", json!({"type": "object", "properties": {"a": string()}}), Some(false))]);
    assert_eq!(validate_tools("openai-strict", &relaxed).await, Vec::<String>::new());
    let unmarked = json!([function("plain", json!({"type": "object", "properties": {}}), None)]);
    assert_eq!(
        validate_tools("openai-strict", &unmarked).await,
        ["tools[0].function.strict: openai-strict marks each tool `strict: true` or `false`."]
    );
    assert_eq!(validate_tools("openai", &unmarked).await, Vec::<String>::new());

    // Chat Completions takes at most 128 tools; the Responses API states no bound.
    let many = |count: usize| {
        let tools = (0..count).map(|i| function(&format!("t{i}"), json!({"type": "object", "properties": {}}), None));
        Value::Array(tools.collect())
    };
    assert_eq!(validate_tools("openai", &many(128)).await, Vec::<String>::new());
    assert_eq!(
        validate_tools("openai", &many(129)).await,
        [
            "Invalid 'tools': array too long. Expected an array with maximum length 128, but got an array with length 129 instead."
        ]
    );
    assert_eq!(validate_tools("openai-responses", &responses_tools(&many(300))).await, Vec::<String>::new());
}

fn anthropic_tool(name: &str, input_schema: Value) -> Value {
    json!({"name": name, "description": "d", "input_schema": input_schema})
}

#[tokio::test(flavor = "multi_thread")]
async fn the_anthropic_validator_accepts_what_anthropic_accepts_and_refuses_each_rule_it_breaks() {
    let good = json!([
        anthropic_tool("alpha_echo", closed(json!({"text": string()}))),
        anthropic_tool("refs", json!({
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/a"}, "b": {"oneOf": [string(), {"type": "null"}]}},
            "$defs": {"a": string()},
        })),
        {"type": "web_search_20250305", "name": "web_search"},
    ]);
    assert_eq!(validate_tools("anthropic", &good).await, Vec::<String>::new());

    let object = json!({"type": "object"});
    let bad = json!([
        anthropic_tool("alpha.echo", object.clone()),
        anthropic_tool(&"x".repeat(65), object.clone()),
        {"name": "no_schema"},
        anthropic_tool("arr", json!({"type": "array"})),
        anthropic_tool("bad_type", json!({"type": "object", "properties": {"a": {"type": "str"}}})),
        anthropic_tool("dangling", json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/none"}}})),
        anthropic_tool("root_one_of", json!({"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]})),
        anthropic_tool("twice", object.clone()),
        anthropic_tool("twice", object.clone()),
    ]);
    let invalid =
        "JSON schema is invalid. It must match JSON Schema draft 2020-12 (https://json-schema.org/draft/2020-12).";
    assert_eq!(
        validate_tools("anthropic", &bad).await,
        [
            "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'".to_owned(),
            "tools.1.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'".to_owned(),
            "tools.2.custom.input_schema: Field required".to_owned(),
            "tools.3.custom.input_schema.type: Input should be 'object'".to_owned(),
            format!("tools.4.custom.input_schema: {invalid}"),
            format!("tools.5.custom.input_schema: {invalid}"),
            "tools.6.custom.input_schema: input_schema does not support oneOf, allOf, or anyOf at the top level"
                .to_owned(),
            "tools: Tool names must be unique. Repeated: ['twice']".to_owned(),
        ]
    );

    let strict_tools = |count: usize| {
        let tools = (0..count).map(|i| {
            let mut tool = anthropic_tool(&format!("t{i}"), closed(json!({})));
            tool["strict"] = json!(true);
            tool
        });
        Value::Array(tools.collect())
    };
    assert_eq!(validate_tools("anthropic", &strict_tools(20)).await, Vec::<String>::new());
    assert_eq!(
        validate_tools("anthropic", &strict_tools(21)).await,
        ["tools: at most 20 tools may set `strict: true` in a request, got 21"]
    );
}

fn declarations(declarations: Value) -> Value {
    json!([{ "functionDeclarations": declarations }])
}

fn declaration(name: &str, parameters: Value) -> Value {
    json!({"name": name, "description": "d", "parameters": parameters})
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gemini_validator_accepts_what_gemini_accepts_and_refuses_each_rule_it_breaks() {
    let good = declarations(json!([
        declaration("alpha_echo", json!({"type": "OBJECT", "properties": {"text": {"type": "STRING"}}, "required": ["text"]})),
        declaration("lower_case", json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer", "format": "int64", "nullable": true},
                "e": {"type": "string", "enum": ["a", "b"]},
                "l": {"type": "array", "items": {"type": "object", "properties": {}}},
                "u": {"anyOf": [string(), {"type": "number"}]},
            },
            "propertyOrdering": ["n"],
        })),
        {"name": "no_args"},
        declaration("empty", json!({"type": "object", "properties": {}})),
        {"name": "json_schema", "parametersJsonSchema": {
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/a"}},
            "additionalProperties": false,
            "$defs": {"a": {"type": "string", "format": "uri"}},
        }},
        {"name": "ns.tool:v1-x"},
    ]));
    assert_eq!(validate_tools("gemini", &good).await, Vec::<String>::new());

    // What its JSON parser refuses: fields the Schema proto does not have, values of the wrong kind.
    let unparsable = declarations(json!([
        declaration("a", json!({"type": "object", "properties": {"x": string()}, "additionalProperties": false})),
        declaration(
            "b",
            json!({"type": "object", "properties": {"x": string(), "y": {
                "type": "array", "items": {"type": "object", "properties": {}, "additionalProperties": false},
            }}})
        ),
        declaration("c", json!({"type": "object", "properties": {"x": {"type": ["string", "null"]}}})),
        declaration("d", json!({"type": "object", "properties": {"x": {"type": "string", "enum": ["a", 1]}}})),
        declaration("e", json!({"type": "object", "properties": {"x": {"oneOf": [string()]}}})),
    ]));
    let at = "tools[0].function_declarations";
    assert_eq!(
        validate_tools("gemini", &unparsable).await,
        [
            format!(
                "Invalid JSON payload received. Unknown name \"additionalProperties\" at '{at}[0].parameters': Cannot find field."
            ),
            format!(
                "Invalid JSON payload received. Unknown name \"additionalProperties\" at '{at}[1].parameters.properties[1].value.items': Cannot find field."
            ),
            format!(
                "Invalid JSON payload received. Invalid value at '{at}[2].parameters.properties[0].value.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), [\"string\", \"null\"]"
            ),
            format!(
                "Invalid JSON payload received. Invalid value at '{at}[3].parameters.properties[0].value.enum[1]' (TYPE_STRING), 1"
            ),
            format!(
                "Invalid JSON payload received. Unknown name \"oneOf\" at '{at}[4].parameters.properties[0].value': Cannot find field."
            ),
        ]
    );

    // What the proto's field rules refuse: names, and how many declarations one tool holds.
    let misnamed = declarations(json!([
        declaration("1abc", json!({"type": "object", "properties": {}})),
        {"name": "a".repeat(129)},
        {"name": "twice"},
        {"name": "twice"},
    ]));
    let name_rule = "Invalid function name. Must start with a letter or an underscore. Must be a-z, A-Z, 0-9, or contain underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 128.";
    let invalid = "The GenerateContentRequest proto is invalid:\n  * tools";
    assert_eq!(
        validate_tools("gemini", &misnamed).await,
        [
            format!("{invalid}[0].function_declarations[0].name: [FIELD_INVALID] {name_rule}"),
            format!("{invalid}[0].function_declarations[1].name: [FIELD_INVALID] {name_rule}"),
            format!("{invalid}: [FIELD_INVALID] Duplicate function declaration names: ['twice']"),
        ]
    );
    let many = |count: usize| declarations((0..count).map(|i| json!({"name": format!("t{i}")})).collect());
    assert_eq!(validate_tools("gemini", &many(512)).await, Vec::<String>::new());
    assert_eq!(
        validate_tools("gemini", &many(513)).await,
        [format!(
            "{invalid}[0].function_declarations: [FIELD_INVALID] At most 512 function declarations can be specified."
        )]
    );

    // What its checks of each schema refuse.
    let refused = declarations(json!([
        declaration("dotted_property", json!({"type": "object", "properties": {"a.b": string()}})),
        declaration("uri", json!({"type": "object", "properties": {"u": {"type": "string", "format": "uri"}}})),
        declaration("int_enum", json!({"type": "object", "properties": {"u": {"type": "integer", "enum": ["1"]}}})),
        declaration("undefined_required", json!({"type": "object", "properties": {"a": string()}, "required": ["b"]})),
        declaration("array_without_items", json!({"type": "object", "properties": {"a": {"type": "array"}}})),
        declaration("properties_on_a_string", json!({"type": "object", "properties": {"a": {"type": "string", "properties": {"b": string()}}}})),
        declaration("string_root", string()),
        {"name": "both", "parameters": {"type": "object", "properties": {}}, "parametersJsonSchema": {"type": "object"}},
        {"name": "outside_ref", "parametersJsonSchema": {"type": "object", "properties": {"a": {"$ref": "other.json#/a"}}}},
    ]));
    let at = "* GenerateContentRequest.tools[0].function_declarations";
    assert_eq!(
        validate_tools("gemini", &refused).await,
        [
            format!("{at}[0].parameters.properties[a.b]: property name must match ^[a-zA-Z0-9_]+$"),
            format!(
                "{at}[1].parameters.properties[u].format: only 'enum' and 'date-time' are supported for STRING type"
            ),
            format!("{at}[2].parameters.properties[u].enum: only allowed for STRING type"),
            format!("{at}[3].parameters.required[0]: property is not defined"),
            format!("{at}[4].parameters.properties[a].items: missing field."),
            format!("{at}[5].parameters.properties[a].properties: only allowed for OBJECT type"),
            format!("{at}[6].parameters.type: function parameters schema must be of type OBJECT"),
            format!("{at}[7]: parameters and parameters_json_schema cannot both be set"),
            format!("{at}[8].parameters_json_schema: $ref 'other.json#/a' does not resolve within this schema"),
        ]
    );
}

/// One request to the scripted model: its status and JSON answer.
async fn post(url: &str, body: Value) -> (u16, Value) {
    let response =
        reqwest::Client::new().post(url).json(&body).send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_else(|e| panic!("POST {url} answered no JSON: {e}")))
}

fn echo_schema() -> Value {
    json!({"type": "object", "properties": {"text": string()}, "required": ["text"]})
}

#[tokio::test(flavor = "multi_thread")]
async fn each_api_plays_a_tool_call_then_a_final_text_quoting_its_result() {
    let call = json!({"tool": "alpha_echo", "arguments": {"text": "hi"}});
    let like = json!({"tool_like": "echo", "arguments": {"text": "hi"}});
    let last = json!({"text": "it said {result}"});
    let model = ScriptedModel::start(json!([call, last, like, last, call, last, like, last])).await;
    let openai = model.base_url("openai");
    let root = model.base_url("gemini");

    // Chat Completions.
    let tools = json!([function("alpha_echo", echo_schema(), None)]);
    let user = json!({"role": "user", "content": "echo hi"});
    let (status, first) =
        post(&format!("{openai}/chat/completions"), json!({"model": "m", "messages": [user], "tools": tools})).await;
    assert_eq!(status, 200, "{first}");
    let message = &first["choices"][0]["message"];
    assert_eq!(first["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(message["tool_calls"][0]["function"], json!({"name": "alpha_echo", "arguments": "{\"text\": \"hi\"}"}));
    let id = message["tool_calls"][0]["id"].clone();
    let result = json!({"role": "tool", "tool_call_id": id, "content": "alpha:hi"});
    let body = json!({"model": "m", "messages": [user, message, result], "tools": tools});
    let (status, second) = post(&format!("{openai}/chat/completions"), body).await;
    assert_eq!((status, &second["choices"][0]["message"]["content"]), (200, &json!("it said alpha:hi")), "{second}");
    assert_eq!(second["choices"][0]["finish_reason"], "stop");

    // Responses: the result handed back as content parts.
    let tools = responses_tools(&tools);
    let (status, first) =
        post(&format!("{openai}/responses"), json!({"model": "m", "input": "echo hi", "tools": tools})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!((&first["object"], &first["status"]), (&json!("response"), &json!("completed")), "{first}");
    let item = &first["output"][0];
    assert_eq!(
        (&item["type"], &item["name"], &item["arguments"]),
        (&json!("function_call"), &json!("alpha_echo"), &json!("{\"text\": \"hi\"}"))
    );
    let text = json!([{"type": "input_text", "text": "alpha:hi"}]);
    let output = json!({"type": "function_call_output", "call_id": item["call_id"], "output": text});
    let body = json!({"model": "m", "input": [{"role": "user", "content": "echo hi"}, item, output], "tools": tools});
    let (status, second) = post(&format!("{openai}/responses"), body).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["output"][0]["content"][0],
        json!({"type": "output_text", "text": "it said alpha:hi", "annotations": [], "logprobs": []})
    );
    assert_eq!(second["usage"]["output_tokens_details"], json!({"reasoning_tokens": 0}));

    // Anthropic Messages: the result as a list of blocks.
    let tools = json!([anthropic_tool("alpha_echo", echo_schema())]);
    let user = json!({"role": "user", "content": "echo hi"});
    let body = json!({"model": "claude", "max_tokens": 100, "messages": [user], "tools": tools});
    let (status, first) = post(&format!("{root}/v1/messages?beta=true"), body).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!((&first["type"], &first["stop_reason"]), (&json!("message"), &json!("tool_use")), "{first}");
    let tool_use = &first["content"][0];
    assert_eq!((&tool_use["name"], &tool_use["input"]), (&json!("alpha_echo"), &json!({"text": "hi"})));
    let text = json!([{"type": "text", "text": "alpha:hi"}]);
    let result =
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use["id"], "content": text}]});
    let assistant = json!({"role": "assistant", "content": first["content"]});
    let body = json!({"model": "claude", "max_tokens": 100, "messages": [user, assistant, result], "tools": tools});
    let (status, second) = post(&format!("{root}/v1/messages"), body).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        (&second["content"], &second["stop_reason"]),
        (&json!([{"type": "text", "text": "it said alpha:hi"}]), &json!("end_turn"))
    );

    // Gemini generateContent: the result as google-genai hands back an MCP session's answer.
    let tools = declarations(json!([declaration("alpha_echo", echo_schema())]));
    let user = json!({"role": "user", "parts": [{"text": "echo hi"}]});
    let url = format!("{root}/v1beta/models/gemini-3-flash:generateContent");
    let (status, first) = post(&url, json!({"contents": [user], "tools": tools})).await;
    assert_eq!(status, 200, "{first}");
    let call = &first["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!((&call["name"], &call["args"]), (&json!("alpha_echo"), &json!({"text": "hi"})), "{first}");
    assert!(call["id"].is_string(), "Gemini 3 sends an id with each call: {first}");
    let model_turn = &first["candidates"][0]["content"];
    let mcp_result = json!({"content": [{"type": "text", "text": "alpha:hi"}], "isError": false});
    let answered = json!({"id": call["id"], "name": "alpha_echo", "response": {"result": mcp_result}});
    let response = json!({"role": "user", "parts": [{"functionResponse": answered}]});
    let url = format!("{root}/v1/models/gemini-3-flash:generateContent");
    let (status, second) = post(&url, json!({"contents": [user, model_turn, response], "tools": tools})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["candidates"][0]["content"]["parts"][0]["text"], "it said alpha:hi");

    let seen = model.seen().await;
    let apis: Vec<&Value> = seen["requests"].as_array().expect("requests").iter().map(|r| &r["api"]).collect();
    assert_eq!(apis, ["chat", "chat", "responses", "responses", "anthropic", "anthropic", "gemini", "gemini"]);
    assert_eq!(seen["refusals"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn each_api_refuses_in_its_providers_error_shape_and_keeps_the_turn() {
    let call = json!({"tool": "alpha_echo", "arguments": {"text": "hi"}});
    let model = ScriptedModel::start(json!([call, call, call, call])).await;
    let openai = model.base_url("openai");
    let root = model.base_url("gemini");
    let user = json!({"role": "user", "content": "echo hi"});

    let dotted = json!([function("alpha.echo", echo_schema(), None)]);
    let (status, answer) =
        post(&format!("{openai}/chat/completions"), json!({"model": "m", "messages": [user], "tools": dotted})).await;
    let message = "Invalid 'tools[0].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.";
    let refusal = json!({"error": {"message": message, "type": "invalid_request_error", "param": "tools[0].function.name", "code": "invalid_value"}});
    assert_eq!((status, &answer), (400, &refusal));

    let open = json!([{"type": "function", "name": "alpha_echo", "parameters": echo_schema(), "strict": true}]);
    let (status, answer) =
        post(&format!("{openai}/responses"), json!({"model": "m", "input": "hi", "tools": open})).await;
    let message = "Invalid schema for function 'alpha_echo': In context=(), 'additionalProperties' is required to be supplied and to be false.";
    let refusal = json!({"error": {"message": message, "type": "invalid_request_error", "param": "tools[0].parameters", "code": "invalid_function_parameters"}});
    assert_eq!((status, &answer), (400, &refusal));

    let array = json!([anthropic_tool("alpha_echo", json!({"type": "array"}))]);
    let body = json!({"model": "claude", "max_tokens": 100, "messages": [user], "tools": array});
    let (status, answer) = post(&format!("{root}/v1/messages"), body).await;
    let refusal = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "tools.0.custom.input_schema.type: Input should be 'object'"}});
    assert_eq!((status, &answer), (400, &refusal));

    let closed_map =
        json!({"type": "object", "properties": {"text": string()}, "additionalProperties": false, "x-extra": 1});
    let tools = declarations(json!([declaration("alpha_echo", closed_map)]));
    let url = format!("{root}/v1beta/models/gemini-3-flash:generateContent");
    let contents = json!([{"role": "user", "parts": [{"text": "echo hi"}]}]);
    let (status, answer) = post(&url, json!({"contents": contents, "tools": tools})).await;
    let at = "tools[0].function_declarations[0].parameters";
    let message = format!(
        "Invalid JSON payload received. Unknown name \"additionalProperties\" at '{at}': Cannot find field.\nUnknown name \"x-extra\" at '{at}': Cannot find field."
    );
    assert_eq!(
        (status, &answer),
        (400, &json!({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}))
    );

    // The script that does not fit the request: a tool not offered (the model could not call
    // it), and a call missing a required argument (a bug in the test).
    let other = json!([function("alpha_other", echo_schema(), None)]);
    let (status, answer) =
        post(&format!("{openai}/chat/completions"), json!({"model": "m", "messages": [user], "tools": other})).await;
    let message = "turn 1 calls `alpha_echo`, which this request does not offer (offered: ['alpha_other'])";
    assert_eq!((status, &answer["error"]["message"]), (400, &json!(message)));
    let needs_more = json!([function(
        "alpha_echo",
        json!({"type": "object", "properties": {"text": string(), "n": {"type": "integer"}}, "required": ["text", "n"]}),
        None
    )]);
    let (status, answer) =
        post(&format!("{openai}/chat/completions"), json!({"model": "m", "messages": [user], "tools": needs_more}))
            .await;
    let message = "test bug: turn 1 calls `alpha_echo` without its required arguments ['n']";
    assert_eq!(
        (status, &answer["error"]),
        (500, &json!({"message": message, "type": "server_error", "param": null, "code": null}))
    );

    // None of that consumed a turn: the fixed request plays turn 1.
    let fixed = json!([function("alpha_echo", echo_schema(), None)]);
    let (status, answer) =
        post(&format!("{openai}/chat/completions"), json!({"model": "m", "messages": [user], "tools": fixed})).await;
    assert_eq!((status, &answer["choices"][0]["message"]["tool_calls"][0]["id"]), (200, &json!("call_1")), "{answer}");

    let seen = model.seen().await;
    let refused: Vec<(&str, u64)> = seen["refusals"]
        .as_array()
        .expect("refusals")
        .iter()
        .map(|r| (r["api"].as_str().expect("api"), r["status"].as_u64().expect("status")))
        .collect();
    assert_eq!(
        refused,
        [("chat", 400), ("responses", 400), ("anthropic", 400), ("gemini", 400), ("chat", 400), ("chat", 500)]
    );
    assert_eq!(seen["requests"].as_array().map(Vec::len), Some(7));
}

/// Anthropic's threads (the SDK's default in 2.10: a `continue` carries only the new messages,
/// not the tools) and Responses' `previous_response_id` continue a conversation the provider
/// holds: the model still sees the tools and every result.
#[tokio::test(flavor = "multi_thread")]
async fn conversations_the_provider_holds_are_continued_with_their_tools() {
    let call = json!({"tool": "alpha_echo", "arguments": {"text": "hi"}});
    let last = json!({"text": "it said {result}"});
    let model = ScriptedModel::start(json!([call, call, last, call, last])).await;
    let root = model.base_url("anthropic");

    let tools = json!([anthropic_tool("alpha_echo", echo_schema())]);
    let user = json!({"role": "user", "content": "echo hi"});
    let body =
        json!({"model": "claude", "max_tokens": 100, "messages": [user], "tools": tools, "thread": {"type": "create"}});
    let (status, first) = post(&format!("{root}/v1/messages"), body).await;
    assert_eq!(status, 200, "{first}");
    let result = |id: &Value, text: &str| json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": text}]});
    let continued = |previous: &Value, message: Value| json!({"model": "claude", "max_tokens": 100, "messages": [message], "thread": {"type": "continue", "previous_message_id": previous}});
    let body = continued(&first["id"], result(&first["content"][0]["id"], "alpha:one"));
    let (status, second) = post(&format!("{root}/v1/messages"), body).await;
    assert_eq!(
        (status, &second["content"][0]["name"]),
        (200, &json!("alpha_echo")),
        "the thread kept its tools: {second}"
    );
    let body = continued(&second["id"], result(&second["content"][0]["id"], "alpha:two"));
    let (status, third) = post(&format!("{root}/v1/messages"), body).await;
    assert_eq!((status, &third["content"][0]["text"]), (200, &json!("it said alpha:two")), "{third}");
    let seen = model.seen().await;
    let last_body = &seen["requests"][2]["body"];
    assert!(last_body.get("tools").is_none(), "the SDK's continue sends no tools: {last_body}");

    let (status, lost) = post(&format!("{root}/v1/messages"), continued(&json!("msg_lost"), user.clone())).await;
    let refusal = json!({"type": "error", "error": {
        "type": "not_found_error",
        "message": "thread: no message `msg_lost` to continue",
        "details": {"error_code": "thread_not_found"},
    }});
    assert_eq!((status, &lost), (404, &refusal));

    let openai = model.base_url("openai");
    let tools = json!([{"type": "function", "name": "alpha_echo", "parameters": echo_schema()}]);
    let (status, first) =
        post(&format!("{openai}/responses"), json!({"model": "m", "input": "echo hi", "tools": tools})).await;
    assert_eq!(status, 200, "{first}");
    let output =
        json!({"type": "function_call_output", "call_id": first["output"][0]["call_id"], "output": "alpha:three"});
    let body = json!({"model": "m", "previous_response_id": first["id"], "input": [output], "tools": tools});
    let (status, second) = post(&format!("{openai}/responses"), body).await;
    assert_eq!((status, &second["output"][0]["content"][0]["text"]), (200, &json!("it said alpha:three")), "{second}");
    let body = json!({"model": "m", "previous_response_id": "resp_lost", "input": "hi", "tools": tools});
    let (status, lost) = post(&format!("{openai}/responses"), body).await;
    let refusal = json!({"error": {
        "message": "Previous response with id 'resp_lost' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }});
    assert_eq!((status, &lost), (400, &refusal));
}

/// A request's tool choice narrows what the model may call, as the provider's would: a turn
/// calling a tool the choice rules out is refused, one it allows is played.
#[tokio::test(flavor = "multi_thread")]
async fn a_tool_choice_narrows_what_the_script_may_call() {
    let call = json!({"tool": "alpha_echo", "arguments": {"text": "hi"}});
    let model = ScriptedModel::start(json!([call])).await;
    let openai = model.base_url("openai");
    let user = json!({"role": "user", "content": "echo hi"});
    let tools = json!([function("alpha_echo", echo_schema(), None), function("alpha_other", echo_schema(), None)]);

    let only_other = json!({"type": "function", "function": {"name": "alpha_other"}});
    let body = json!({"model": "m", "messages": [user], "tools": tools, "tool_choice": only_other});
    let (status, answer) = post(&format!("{openai}/chat/completions"), body).await;
    let message = "turn 1 calls `alpha_echo`, which this request does not offer (offered: ['alpha_echo', 'alpha_other']) (its tool choice allows ['alpha_other'])";
    assert_eq!((status, &answer["error"]["message"]), (400, &json!(message)));

    let body = json!({"model": "m", "messages": [user], "tools": tools, "tool_choice": "auto"});
    let (status, answer) = post(&format!("{openai}/chat/completions"), body).await;
    assert_eq!(
        (status, &answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"]),
        (200, &json!("alpha_echo"))
    );
}
