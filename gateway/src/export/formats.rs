//! MCP tools (as the route lists them) in, each provider's function declarations out: the
//! name the client sees, the description, and the input schema as that API takes it.

use manifold_api::compat::{self, Provider};
use serde_json::{Value, json};

use super::strict;

/// The formats of `GET …/tools?format=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Chat Completions `tools`.
    OpenAi,
    /// Chat Completions `tools`, strict where the conversion is exact.
    OpenAiStrict,
    /// Responses API `tools` (strict where the conversion is exact: that API's default is strict).
    OpenAiResponses,
    /// Messages API `tools`.
    Anthropic,
    /// `generateContent`'s `tools`: one entry holding every function declaration.
    Gemini,
}

impl Format {
    /// What a refusal says about the formats.
    pub const NAMED: &str = "format is one of openai, openai-strict, openai-responses, anthropic, gemini";

    pub fn parse(name: &str) -> Result<Format, String> {
        Ok(match name {
            "openai" => Format::OpenAi,
            "openai-strict" => Format::OpenAiStrict,
            "openai-responses" => Format::OpenAiResponses,
            "anthropic" => Format::Anthropic,
            "gemini" => Format::Gemini,
            _ => return Err(format!("unknown format `{name}`: {}", Format::NAMED)),
        })
    }
}

/// The tools as `format` declares them, in the route's order: a JSON array ready to be a
/// request's `tools`.
pub fn declare(format: Format, tools: &[Value]) -> Value {
    let parts = tools.iter().map(|tool| {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
        let description = tool.get("description").and_then(Value::as_str).unwrap_or_default();
        let schema = tool.get("inputSchema").cloned().unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
        (name, description, schema)
    });
    match format {
        Format::OpenAi => parts
            .map(|(name, description, parameters)| {
                json!({ "type": "function", "function": { "name": name, "description": description, "parameters": parameters } })
            })
            .collect(),
        Format::OpenAiStrict => parts
            .map(|(name, description, schema)| {
                let (parameters, strict) = strict_or_plain(schema);
                json!({ "type": "function", "function": {
                    "name": name, "description": description, "parameters": parameters, "strict": strict,
                } })
            })
            .collect(),
        Format::OpenAiResponses => parts
            .map(|(name, description, schema)| {
                let (parameters, strict) = strict_or_plain(schema);
                json!({ "type": "function", "name": name, "description": description, "parameters": parameters, "strict": strict })
            })
            .collect(),
        Format::Anthropic => parts
            .map(|(name, description, input_schema)| {
                json!({ "name": name, "description": description, "input_schema": input_schema })
            })
            .collect(),
        Format::Gemini => {
            let declarations: Vec<Value> = parts
                .map(|(name, description, schema)| {
                    let (parameters, description) = match compat::normalize(&schema, &[Provider::Gemini]) {
                        Some(normalized) => {
                            (normalized.schema, compat::describe_losses(description, &normalized.lost))
                        }
                        None => (schema, description.to_owned()),
                    };
                    json!({ "name": name, "description": description, "parameters": parameters })
                })
                .collect();
            json!([{ "functionDeclarations": declarations }])
        }
    }
}

/// The strict form of a schema and `true` where the conversion is exact, else the schema
/// as it is and `false`.
fn strict_or_plain(schema: Value) -> (Value, bool) {
    match strict::convert(&schema) {
        Ok(converted) => (converted, true),
        Err(_) => (schema, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<Value> {
        vec![
            json!({
                "name": "alpha_echo",
                "description": "Echo the text.",
                "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
            }),
            json!({
                "name": "alpha_open",
                "inputSchema": {"type": "object", "properties": {"tags": {"type": "object", "additionalProperties": {"type": "string"}}}},
            }),
        ]
    }

    #[test]
    fn formats_are_named_in_refusals() {
        assert_eq!(Format::parse("openai-strict"), Ok(Format::OpenAiStrict));
        let refused = Format::parse("claude").expect_err("not a format");
        assert!(refused.contains("`claude`") && refused.contains("openai-responses, anthropic, gemini"), "{refused}");
    }

    #[test]
    fn chat_completions_tools_carry_the_schema_as_it_is() {
        let declared = declare(Format::OpenAi, &tools());
        assert_eq!(declared[0]["function"]["name"], "alpha_echo");
        assert_eq!(declared[0]["function"]["parameters"], tools()[0]["inputSchema"]);
        assert_eq!(declared[1]["function"]["description"], "", "a tool without a description gets an empty one");
        assert!(declared[0]["function"].get("strict").is_none());
    }

    #[test]
    fn strict_formats_mark_only_the_exact_conversions() {
        let chat = declare(Format::OpenAiStrict, &tools());
        assert_eq!(chat[0]["function"]["strict"], true);
        assert_eq!(chat[0]["function"]["parameters"]["additionalProperties"], false);
        assert_eq!(chat[1]["function"]["strict"], false, "an open map cannot be strict");
        assert_eq!(chat[1]["function"]["parameters"], tools()[1]["inputSchema"], "and keeps its plain schema");
        let responses = declare(Format::OpenAiResponses, &tools());
        assert_eq!(
            (responses[0]["type"].as_str(), responses[0]["name"].as_str()),
            (Some("function"), Some("alpha_echo"))
        );
        assert_eq!((&responses[0]["strict"], &responses[1]["strict"]), (&json!(true), &json!(false)));
    }

    #[test]
    fn anthropic_tools_have_an_input_schema() {
        let declared = declare(Format::Anthropic, &tools());
        assert_eq!(
            declared[0],
            json!({"name": "alpha_echo", "description": "Echo the text.", "input_schema": tools()[0]["inputSchema"]})
        );
    }

    #[test]
    fn gemini_declarations_are_normalised_and_say_what_was_lost() {
        let declared = declare(Format::Gemini, &tools());
        let declarations = declared[0]["functionDeclarations"].as_array().expect("one tool holds the declarations");
        assert_eq!(declared.as_array().map(Vec::len), Some(1));
        assert_eq!(declarations[0]["parameters"], tools()[0]["inputSchema"], "nothing to change, nothing changed");
        let tags = &declarations[1]["parameters"]["properties"]["tags"];
        assert!(tags.get("additionalProperties").is_none(), "Gemini takes no additionalProperties: {tags}");
        assert!(declarations[1]["description"].as_str().is_some_and(|d| d.contains("additionalProperties")));
    }
}
