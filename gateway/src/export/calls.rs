//! A provider's tool call in (Chat Completions, Responses, Anthropic or Gemini shape), the
//! MCP `tools/call` it stands for, and its MCP result (or the route's JSON-RPC error) out in
//! the shape that provider takes back. Whatever went wrong reaches the model as a tool
//! result it can read; content a provider has no block for is described in text.

use serde_json::{Map, Value, json};

use super::pipeline::Failure;

/// The shapes a call may have, as a refusal names them.
const SHAPES: &str = "Chat Completions {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}, \
    Responses {\"type\": \"function_call\", \"call_id\", \"name\", \"arguments\"}, \
    Anthropic {\"type\": \"tool_use\", \"id\", \"name\", \"input\"}, \
    Gemini {\"functionCall\": {\"name\", \"args\", \"id\"?}}";

/// Which provider's shape a call came in, with what its answer must carry back.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Chat { id: String },
    Responses { call_id: String },
    Anthropic { id: String },
    Gemini { id: Option<Value> },
}

/// One provider tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    shape: Shape,
    pub name: String,
    pub arguments: Map<String, Value>,
}

/// The call `item` is (`index`: where it is in an array of calls), or a refusal that says
/// where it is and which shapes are taken.
pub fn parse(item: &Value, index: Option<usize>) -> Result<ToolCall, String> {
    let at = index.map(|i| format!("call [{i}]")).unwrap_or_else(|| "the call".into());
    let text = |value: Option<&Value>, field: &str| -> Result<String, String> {
        match value {
            Some(Value::String(text)) => Ok(text.clone()),
            _ => Err(format!("{at}: `{field}` must be a string")),
        }
    };
    let shape = (item.get("type").and_then(Value::as_str), item.get("functionCall"));
    let (shape, name, arguments) = match shape {
        (Some("function"), _) if item.get("function").is_some() => {
            let function = &item["function"];
            let id = text(item.get("id"), "id")?;
            (Shape::Chat { id }, text(function.get("name"), "function.name")?, function.get("arguments"))
        }
        (Some("function_call"), _) => {
            let call_id = text(item.get("call_id"), "call_id")?;
            (Shape::Responses { call_id }, text(item.get("name"), "name")?, item.get("arguments"))
        }
        (Some("tool_use"), _) => {
            let id = text(item.get("id"), "id")?;
            (Shape::Anthropic { id }, text(item.get("name"), "name")?, item.get("input"))
        }
        (None, Some(call)) => {
            let id = call.get("id").cloned();
            (Shape::Gemini { id }, text(call.get("name"), "functionCall.name")?, call.get("args"))
        }
        _ => {
            return Err(format!(
                "{at} has no shape this endpoint takes; it takes one of: {SHAPES}, or an array of them"
            ));
        }
    };
    let arguments = match arguments {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(arguments)) => arguments.clone(),
        // OpenAI sends the arguments as JSON text (empty for a call without any).
        Some(Value::String(encoded)) if encoded.trim().is_empty() => Map::new(),
        Some(Value::String(encoded)) => match serde_json::from_str(encoded) {
            Ok(Value::Object(arguments)) => arguments,
            _ => return Err(format!("{at}: the arguments are not a JSON object")),
        },
        Some(_) => return Err(format!("{at}: the arguments are not a JSON object")),
    };
    Ok(ToolCall { shape, name, arguments })
}

impl ToolCall {
    /// Whether this call may carry `null`s a strict declaration made the model send: an
    /// OpenAI call with a `null` anywhere in its arguments.
    pub fn may_carry_strict_nulls(&self) -> bool {
        fn has_null(value: &Value) -> bool {
            match value {
                Value::Null => true,
                Value::Array(items) => items.iter().any(has_null),
                Value::Object(map) => map.values().any(has_null),
                _ => false,
            }
        }
        matches!(self.shape, Shape::Chat { .. } | Shape::Responses { .. }) && self.arguments.values().any(has_null)
    }

    /// Drops the strict-mode `null`s of a call that may carry them, by the schema of its
    /// tool in `tools` (the route's listed tools; a tool not there is called as it came).
    pub fn drop_strict_nulls(&mut self, tools: &[Value]) {
        if !self.may_carry_strict_nulls() {
            return;
        }
        let tool = tools.iter().find(|tool| tool.get("name").and_then(Value::as_str) == Some(self.name.as_str()));
        if let Some(schema) = tool.and_then(|tool| tool.get("inputSchema")) {
            super::strict::drop_nulls(&mut self.arguments, schema);
        }
    }

    /// The MCP result (or the route's error) as this call's provider takes it back.
    pub fn answer(self, outcome: Result<Value, Failure>) -> Value {
        let result = match outcome {
            Ok(result) => Outcome::of(&result),
            Err(failure) => Outcome::error(failure.message),
        };
        match self.shape {
            Shape::Chat { id } => json!({ "role": "tool", "tool_call_id": id, "content": result.text() }),
            Shape::Responses { call_id } => {
                json!({ "type": "function_call_output", "call_id": call_id, "output": result.text() })
            }
            Shape::Anthropic { id } => json!({
                "type": "tool_result", "tool_use_id": id, "content": result.blocks, "is_error": result.is_error,
            }),
            Shape::Gemini { id } => {
                let response = match (result.is_error, &result.structured) {
                    (true, _) => json!({ "error": result.plain_text() }),
                    (false, Some(structured)) => json!({ "output": structured }),
                    (false, None) => json!({ "output": result.plain_text() }),
                };
                let mut answer = json!({ "name": self.name, "response": response });
                if let Some(id) = id {
                    answer["id"] = id;
                }
                json!({ "functionResponse": answer })
            }
        }
    }
}

/// A tool's outcome, as the providers' answers are made of it.
struct Outcome {
    /// Anthropic content blocks: text, images, and text describing anything else.
    blocks: Vec<Value>,
    structured: Option<Value>,
    is_error: bool,
}

impl Outcome {
    fn of(result: &Value) -> Outcome {
        // A tool that asks for input (the stateless revision's `input_required`) cannot be
        // answered through an export: no client is there to answer.
        if result.get("resultType").and_then(Value::as_str) == Some("input_required") {
            return Outcome::error("the tool asks for input from the user, which a call through this endpoint cannot give; use an MCP client".into());
        }
        let content = result.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let structured = result.get("structuredContent").filter(|s| !s.is_null()).cloned();
        let mut blocks: Vec<Value> = content.iter().map(block).collect();
        // Content blocks are what Anthropic reads: a result with structured content only
        // gives it that, as JSON text.
        if let (true, Some(structured)) = (blocks.is_empty(), &structured) {
            blocks.push(json!({ "type": "text", "text": structured.to_string() }));
        }
        Outcome { blocks, structured, is_error: result.get("isError") == Some(&Value::Bool(true)) }
    }

    fn error(message: String) -> Outcome {
        Outcome { blocks: vec![json!({ "type": "text", "text": message })], structured: None, is_error: true }
    }

    /// The outcome as one text, `structuredContent` first (as JSON) when there is one.
    fn plain_text(&self) -> String {
        if let Some(structured) = &self.structured {
            return structured.to_string();
        }
        let texts = self.blocks.iter().map(|block| match block.get("text").and_then(Value::as_str) {
            Some(text) => text.to_owned(),
            None => image_note(block),
        });
        texts.collect::<Vec<_>>().join("\n")
    }

    /// The text for a provider that takes a string, an error marked as one.
    fn text(&self) -> String {
        match self.is_error {
            true => format!("Error: {}", self.plain_text()),
            false => self.plain_text(),
        }
    }
}

/// An MCP content block as an Anthropic one: text and images as they are, the rest described.
fn block(content: &Value) -> Value {
    let field = |name: &str| content.get(name).and_then(Value::as_str).unwrap_or_default();
    let text = match field("type") {
        "text" => field("text").to_owned(),
        "image" => {
            return json!({
                "type": "image",
                "source": { "type": "base64", "media_type": field("mimeType"), "data": field("data") },
            });
        }
        "audio" => format!("[audio ({}), {} bytes of base64 not shown]", field("mimeType"), field("data").len()),
        "resource_link" => {
            let name = content.get("name").and_then(Value::as_str).unwrap_or("a resource");
            let mime = content.get("mimeType").and_then(Value::as_str).map(|m| format!(", {m}")).unwrap_or_default();
            format!("[resource link: {name} <{}>{mime}]", field("uri"))
        }
        "resource" => {
            let resource = content.get("resource").cloned().unwrap_or_default();
            let uri = resource.get("uri").and_then(Value::as_str).unwrap_or_default();
            match resource.get("text").and_then(Value::as_str) {
                Some(text) => format!("[resource <{uri}>]\n{text}"),
                None => {
                    let mime = resource.get("mimeType").and_then(Value::as_str).unwrap_or("binary");
                    format!("[resource <{uri}> ({mime}), binary content not shown]")
                }
            }
        }
        other => format!("[{other} content not shown]"),
    };
    json!({ "type": "text", "text": text })
}

/// The short note a text-only provider gets for an Anthropic image block.
fn image_note(block: &Value) -> String {
    let source = &block["source"];
    let media = source["media_type"].as_str().unwrap_or("image");
    let size = source["data"].as_str().map(str::len).unwrap_or_default();
    format!("[image ({media}), {size} bytes of base64 not shown]")
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    fn parsed(item: Value) -> ToolCall {
        parse(&item, None).expect("a known shape")
    }

    #[test]
    fn each_provider_shape_is_recognised() {
        let chat = parsed(
            json!({"id": "c1", "type": "function", "function": {"name": "alpha_echo", "arguments": "{\"text\":\"hi\"}"}}),
        );
        assert_eq!((chat.shape, chat.name.as_str()), (Shape::Chat { id: "c1".into() }, "alpha_echo"));
        assert_eq!(chat.arguments["text"], "hi");
        let empty =
            parsed(json!({"id": "c2", "type": "function", "function": {"name": "alpha_whoami", "arguments": ""}}));
        assert!(empty.arguments.is_empty());
        let responses = parsed(json!({"type": "function_call", "call_id": "r1", "name": "n", "arguments": "{}"}));
        assert_eq!(responses.shape, Shape::Responses { call_id: "r1".into() });
        let anthropic = parsed(json!({"type": "tool_use", "id": "t1", "name": "n", "input": {"a": 1}}));
        assert_eq!(
            (anthropic.shape, anthropic.arguments["a"].clone()),
            (Shape::Anthropic { id: "t1".into() }, json!(1))
        );
        let gemini = parsed(json!({"functionCall": {"name": "n", "args": {"a": 2}}}));
        assert_eq!((gemini.shape, gemini.arguments["a"].clone()), (Shape::Gemini { id: None }, json!(2)));
    }

    #[test]
    fn an_unknown_or_broken_call_is_refused_saying_where_and_what_is_taken() {
        let unknown = parse(&json!({"name": "n", "arguments": {}}), Some(2)).expect_err("no shape");
        assert!(
            unknown.starts_with("call [2] has no shape") && unknown.contains("Gemini {\"functionCall\""),
            "{unknown}"
        );
        let no_id = parse(&json!({"type": "tool_use", "name": "n", "input": {}}), None).expect_err("no id");
        assert_eq!(no_id, "the call: `id` must be a string");
        let not_json =
            parse(&json!({"id": "c", "type": "function", "function": {"name": "n", "arguments": "[1]"}}), None);
        assert_eq!(not_json, Err("the call: the arguments are not a JSON object".into()));
    }

    fn answered(call: Value, outcome: Result<Value, Failure>) -> Value {
        parsed(call).answer(outcome)
    }

    fn chat() -> Value {
        json!({"id": "c1", "type": "function", "function": {"name": "t", "arguments": "{}"}})
    }

    fn anthropic() -> Value {
        json!({"type": "tool_use", "id": "u1", "name": "t", "input": {}})
    }

    fn gemini() -> Value {
        json!({"functionCall": {"name": "t", "args": {}, "id": "g1"}})
    }

    fn responses() -> Value {
        json!({"type": "function_call", "call_id": "r1", "name": "t", "arguments": "{}"})
    }

    #[test]
    fn results_go_back_in_each_providers_shape_structured_content_first() {
        let result =
            json!({"content": [{"type": "text", "text": "alpha:hi"}], "structuredContent": {"result": "alpha:hi"}});
        assert_eq!(
            answered(chat(), Ok(result.clone())),
            json!({"role": "tool", "tool_call_id": "c1", "content": "{\"result\":\"alpha:hi\"}"})
        );
        assert_eq!(
            answered(responses(), Ok(result.clone())),
            json!({"type": "function_call_output", "call_id": "r1", "output": "{\"result\":\"alpha:hi\"}"})
        );
        assert_eq!(
            answered(anthropic(), Ok(result.clone())),
            json!({"type": "tool_result", "tool_use_id": "u1", "content": [{"type": "text", "text": "alpha:hi"}], "is_error": false})
        );
        assert_eq!(
            answered(gemini(), Ok(result)),
            json!({"functionResponse": {"name": "t", "id": "g1", "response": {"output": {"result": "alpha:hi"}}}})
        );
        let structured_only = json!({"content": [], "structuredContent": {"n": 1}});
        assert_eq!(
            answered(anthropic(), Ok(structured_only))["content"],
            json!([{"type": "text", "text": "{\"n\":1}"}])
        );
        let text_only = json!({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]});
        assert_eq!(answered(chat(), Ok(text_only.clone()))["content"], "a\nb");
        assert_eq!(answered(gemini(), Ok(text_only))["functionResponse"]["response"], json!({"output": "a\nb"}));
    }

    #[test]
    fn tool_errors_are_marked_as_each_provider_marks_them() {
        let failed = json!({"content": [{"type": "text", "text": "alpha failed on purpose"}], "isError": true});
        assert_eq!(answered(chat(), Ok(failed.clone()))["content"], "Error: alpha failed on purpose");
        assert_eq!(answered(responses(), Ok(failed.clone()))["output"], "Error: alpha failed on purpose");
        assert_eq!(answered(anthropic(), Ok(failed.clone()))["is_error"], true);
        assert_eq!(
            answered(gemini(), Ok(failed))["functionResponse"]["response"],
            json!({"error": "alpha failed on purpose"})
        );
    }

    #[test]
    fn a_route_error_becomes_a_result_the_model_reads() {
        let denied =
            || Failure { status: StatusCode::OK, code: -32003, message: "tool `t`: call is not allowed".into() };
        assert_eq!(answered(chat(), Err(denied()))["content"], "Error: tool `t`: call is not allowed");
        let anthropic = answered(anthropic(), Err(denied()));
        assert_eq!(
            (&anthropic["is_error"], &anthropic["content"][0]["text"]),
            (&json!(true), &json!("tool `t`: call is not allowed"))
        );
        assert_eq!(
            answered(gemini(), Err(denied()))["functionResponse"]["response"]["error"],
            "tool `t`: call is not allowed"
        );
        let asks = json!({"resultType": "input_required", "inputRequests": {}});
        assert!(
            answered(chat(), Ok(asks))["content"]
                .as_str()
                .is_some_and(|t| t.starts_with("Error: the tool asks for input"))
        );
    }

    #[test]
    fn content_without_a_block_of_its_own_is_described_never_an_error() {
        let result = json!({"content": [
            {"type": "image", "data": "aGVsbG8=", "mimeType": "image/png"},
            {"type": "audio", "data": "AAAA", "mimeType": "audio/wav"},
            {"type": "resource_link", "uri": "file:///a.txt", "name": "a.txt", "mimeType": "text/plain"},
            {"type": "resource", "resource": {"uri": "file:///b.txt", "text": "bee"}},
            {"type": "resource", "resource": {"uri": "file:///c.bin", "blob": "AA==", "mimeType": "application/octet-stream"}},
        ]});
        let anthropic = answered(anthropic(), Ok(result.clone()));
        assert_eq!(anthropic["is_error"], false);
        assert_eq!(
            anthropic["content"],
            json!([
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGVsbG8="}},
                {"type": "text", "text": "[audio (audio/wav), 4 bytes of base64 not shown]"},
                {"type": "text", "text": "[resource link: a.txt <file:///a.txt>, text/plain]"},
                {"type": "text", "text": "[resource <file:///b.txt>]\nbee"},
                {"type": "text", "text": "[resource <file:///c.bin> (application/octet-stream), binary content not shown]"},
            ])
        );
        let chat = answered(chat(), Ok(result));
        let text = chat["content"].as_str().expect("Chat Completions takes text");
        assert!(text.starts_with("[image (image/png), 8 bytes of base64 not shown]\n[audio"), "{text}");
    }
}
