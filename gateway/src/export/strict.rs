//! A tool's input schema in, its OpenAI strict-mode form out, or why there is none; and, on
//! the way back, a strict call's arguments in, the ones its upstream accepts out. Strict mode
//! wants every property required, so an optional property becomes a required nullable one;
//! the model then sends `null` for it, which [`drop_nulls`] takes out again where the
//! original schema would refuse it. A schema converts only where the result means the same
//! thing: anything strict mode refuses leaves the tool non-strict, with its plain schema.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// Keywords strict mode refuses, wherever they appear.
const REFUSED: &[&str] = &[
    "oneOf",
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "default",
    "patternProperties",
    "uniqueItems",
    "contains",
    "minProperties",
    "maxProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
    "prefixItems",
    "unevaluatedItems",
    "minContains",
    "maxContains",
];

/// The string formats strict mode takes.
const FORMATS: &[&str] = &["date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"];

/// How deep strict mode lets schemas nest.
const MAX_DEPTH: usize = 10;

/// How deep [`drop_nulls`] follows arguments; deeper ones go as they came.
const MAX_ARGUMENT_DEPTH: usize = 64;

/// The strict form of a tool's input schema, or where and why there is none.
pub fn convert(schema: &Value) -> Result<Value, String> {
    let Value::Object(root) = schema else { return Err("`$`: the schema is not an object".into()) };
    if root.contains_key("anyOf") {
        return Err("`$`: the root is an anyOf".into());
    }
    if accepts_null(schema) && root.contains_key("type") {
        return Err("`$`: the root is nullable".into());
    }
    if root.get("type") != Some(&json!("object")) {
        return Err("`$`: the root is not `type: object`".into());
    }
    // Draft-07 `definitions` become `$defs`, the only place strict refs may point.
    let mut definitions = Map::new();
    for key in ["$defs", "definitions"] {
        for (name, definition) in root.get(key).and_then(Value::as_object).into_iter().flatten() {
            if definitions.insert(name.clone(), definition.clone()).is_some() {
                return Err(format!("`$`: `{name}` is defined both in $defs and in definitions"));
            }
        }
    }
    let mut body = root.clone();
    body.remove("$defs");
    body.remove("definitions");
    let mut converted = node(&Value::Object(body), "$", 0)?;
    if !definitions.is_empty() {
        let mut defs = Map::new();
        for (name, definition) in &definitions {
            defs.insert(name.clone(), node(definition, &format!("$.$defs.{name}"), 1)?);
        }
        converted["$defs"] = Value::Object(defs);
    }
    Ok(converted)
}

/// One schema below the root (or the root's body): checked, and its objects closed.
fn node(schema: &Value, path: &str, depth: usize) -> Result<Value, String> {
    let Value::Object(map) = schema else { return Err(format!("`{path}`: a boolean schema")) };
    if depth > MAX_DEPTH {
        return Err(format!("`{path}`: nested deeper than {MAX_DEPTH} levels"));
    }
    if let Some(keyword) = REFUSED.iter().find(|keyword| map.contains_key(**keyword)) {
        return Err(format!("`{path}`: `{keyword}` is not allowed"));
    }
    if depth > 0 && (map.contains_key("$defs") || map.contains_key("definitions")) {
        return Err(format!("`{path}`: definitions below the root"));
    }
    if let Some(format) = map.get("format")
        && !format.as_str().is_some_and(|f| FORMATS.contains(&f))
    {
        return Err(format!("`{path}`: format {format} is not allowed"));
    }
    let mut out = map.clone();
    if let Some(reference) = map.get("$ref") {
        let reference = reference.as_str().unwrap_or_default();
        let name = reference.strip_prefix("#/$defs/").or_else(|| reference.strip_prefix("#/definitions/"));
        let Some(name) = name.filter(|name| !name.contains('/')) else {
            return Err(format!("`{path}`: $ref `{reference}` does not point into #/$defs"));
        };
        out.insert("$ref".into(), Value::String(format!("#/$defs/{name}")));
        return Ok(Value::Object(out));
    }
    if let Some(branches) = map.get("anyOf") {
        let Some(branches) = branches.as_array() else { return Err(format!("`{path}`: anyOf is not an array")) };
        let converted = branches
            .iter()
            .enumerate()
            .map(|(i, branch)| node(branch, &format!("{path}.anyOf[{i}]"), depth + 1))
            .collect::<Result<_, _>>()?;
        out.insert("anyOf".into(), Value::Array(converted));
    }
    let types = types(map);
    if types.is_empty() && !["anyOf", "enum", "const"].iter().any(|k| map.contains_key(*k)) {
        return Err(format!("`{path}`: no type"));
    }
    if types.contains("object") {
        if map.get("additionalProperties").is_some_and(|extra| extra != &json!(false)) {
            return Err(format!("`{path}`: an open map (additionalProperties)"));
        }
        let properties = map.get("properties").and_then(Value::as_object).filter(|p| !p.is_empty());
        let Some(properties) = properties else { return Err(format!("`{path}`: an object without properties")) };
        let required: BTreeSet<&str> =
            map.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let mut closed = Map::new();
        for (name, property) in properties {
            let converted = node(property, &format!("{path}.properties.{name}"), depth + 1)?;
            let converted = match required.contains(name.as_str()) {
                true => converted,
                false => nullable(converted),
            };
            closed.insert(name.clone(), converted);
        }
        out.insert("properties".into(), Value::Object(closed));
        out.insert("required".into(), properties.keys().map(|k| Value::String(k.clone())).collect());
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    if types.contains("array") {
        let Some(items) = map.get("items") else { return Err(format!("`{path}`: an array without items")) };
        out.insert("items".into(), node(items, &format!("{path}.items"), depth + 1)?);
    }
    Ok(Value::Object(out))
}

/// The types a schema names (`type` as a string or an array of them).
fn types(map: &Map<String, Value>) -> BTreeSet<&str> {
    match map.get("type") {
        Some(Value::String(one)) => BTreeSet::from([one.as_str()]),
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => BTreeSet::new(),
    }
}

/// A converted schema that also takes `null`: `null` added to its type (and enum), or to
/// its anyOf, or the schema wrapped in an anyOf with `null`.
fn nullable(schema: Value) -> Value {
    if accepts_null(&schema) {
        return schema;
    }
    let Value::Object(mut map) = schema else { return schema };
    let null = Value::String("null".into());
    match map.get_mut("type") {
        Some(Value::String(one)) => {
            let one = std::mem::take(one);
            map.insert("type".into(), json!([one, "null"]));
        }
        Some(Value::Array(many)) => many.push(null),
        _ => match map.get_mut("anyOf") {
            Some(Value::Array(branches)) => branches.push(json!({ "type": "null" })),
            _ => return json!({ "anyOf": [Value::Object(map), { "type": "null" }] }),
        },
    }
    if let Some(Value::Array(values)) = map.get_mut("enum") {
        values.push(Value::Null);
    }
    Value::Object(map)
}

/// Whether a schema takes `null` as it stands (a schema that constrains nothing does).
fn accepts_null(schema: &Value) -> bool {
    let Value::Object(map) = schema else { return schema == &Value::Bool(true) };
    if map.get("nullable") == Some(&Value::Bool(true)) {
        return true;
    }
    if let Some(values) = map.get("enum").and_then(Value::as_array) {
        return values.contains(&Value::Null);
    }
    if let Some(value) = map.get("const") {
        return value.is_null();
    }
    if let Some(branches) = map.get("anyOf").and_then(Value::as_array) {
        return branches.iter().any(accepts_null);
    }
    match map.get("type") {
        Some(_) => types(map).contains("null"),
        None => !map.contains_key("$ref"),
    }
}

/// Takes out of a call's arguments each `null` given for a property the tool's own schema
/// has optional and not nullable: what a strict declaration made the model send for a
/// property it left out. Every other value goes as it came.
pub fn drop_nulls(arguments: &mut Map<String, Value>, schema: &Value) {
    object(arguments, schema, schema, 0);
}

fn object(values: &mut Map<String, Value>, schema: &Value, root: &Value, depth: usize) {
    let schema = resolve(schema, root);
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return };
    let required: BTreeSet<&str> =
        schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    values.retain(|name, value| {
        let refuses_null = properties.get(name).is_some_and(|property| !accepts_null(resolve(property, root)));
        !(value.is_null() && refuses_null && !required.contains(name.as_str()))
    });
    for (name, value) in values.iter_mut() {
        if let Some(property) = properties.get(name) {
            nested(value, property, root, depth + 1);
        }
    }
}

fn nested(value: &mut Value, schema: &Value, root: &Value, depth: usize) {
    if depth > MAX_ARGUMENT_DEPTH {
        return;
    }
    let schema = resolve(schema, root);
    // Of a union, the first branch of the value's kind describes it.
    let kind = match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        _ => return,
    };
    let branch = schema
        .get("anyOf")
        .and_then(Value::as_array)
        .and_then(|branches| branches.iter().map(|b| resolve(b, root)).find(|b| types_of(b).contains(kind)))
        .unwrap_or(schema);
    match value {
        Value::Object(values) => object(values, branch, root, depth),
        Value::Array(items) => {
            if let Some(item) = branch.get("items") {
                items.iter_mut().for_each(|value| nested(value, item, root, depth + 1));
            }
        }
        _ => {}
    }
}

fn types_of(schema: &Value) -> BTreeSet<&str> {
    schema.as_object().map(types).unwrap_or_default()
}

/// A schema with its `$ref` (into `$defs` or `definitions`) followed, a few times at most.
fn resolve<'a>(mut schema: &'a Value, root: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else { break };
        let target = reference
            .strip_prefix("#/$defs/")
            .map(|name| &root["$defs"][name])
            .or_else(|| reference.strip_prefix("#/definitions/").map(|name| &root["definitions"][name]));
        match target {
            Some(target) if !target.is_null() => schema = target,
            _ => break,
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(schema: Value) -> String {
        convert(&schema).expect_err("not strict")
    }

    #[test]
    fn an_exact_conversion_closes_objects_requires_all_and_makes_the_optional_nullable() {
        let schema = json!({
            "type": "object",
            "properties": {
                "text": {"type": "string", "format": "email"},
                "count": {"type": "integer"},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "tag": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                "place": {"$ref": "#/definitions/Place"},
                "maybe": {"type": ["string", "null"]},
                "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "number"}}}},
            },
            "required": ["text"],
            "definitions": {"Place": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        });
        let converted = convert(&schema).expect("exact");
        assert_eq!(
            converted,
            json!({
                "type": "object",
                "properties": {
                    "text": {"type": "string", "format": "email"},
                    "count": {"type": ["integer", "null"]},
                    "mode": {"type": ["string", "null"], "enum": ["a", "b", null]},
                    "tag": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
                    "place": {"anyOf": [{"$ref": "#/$defs/Place"}, {"type": "null"}]},
                    "maybe": {"type": ["string", "null"]},
                    "list": {"type": ["array", "null"], "items": {
                        "type": "object", "properties": {"x": {"type": ["number", "null"]}},
                        "required": ["x"], "additionalProperties": false,
                    }},
                },
                "required": ["count", "list", "maybe", "mode", "place", "tag", "text"],
                "additionalProperties": false,
                "$defs": {"Place": {
                    "type": "object", "properties": {"city": {"type": "string"}},
                    "required": ["city"], "additionalProperties": false,
                }},
            })
        );
        let closed = json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false});
        assert!(convert(&closed).is_ok(), "an object closed already stays closed");
    }

    #[test]
    fn each_thing_strict_mode_refuses_leaves_the_tool_non_strict() {
        let with = |property: Value| json!({"type": "object", "properties": {"p": property}});
        let cases = [
            (with(json!({"oneOf": [{"type": "string"}]})), "`$.properties.p`: `oneOf` is not allowed"),
            (with(json!({"type": "string", "default": "x"})), "`default` is not allowed"),
            (with(json!({"type": "string", "format": "uri"})), "format \"uri\" is not allowed"),
            (with(json!({"type": "object", "additionalProperties": {"type": "string"}})), "an open map"),
            (
                with(json!({"type": "object", "additionalProperties": true, "properties": {"a": {"type": "string"}}})),
                "an open map",
            ),
            (with(json!({"type": "object", "patternProperties": {"^x": {}}})), "`patternProperties` is not allowed"),
            (with(json!({"type": "object"})), "`$.properties.p`: an object without properties"),
            (with(json!({"type": "array", "items": {"type": "string"}, "uniqueItems": true})), "`uniqueItems`"),
            (with(json!({"type": "array"})), "an array without items"),
            (with(json!({"$ref": "https://example.com/schema"})), "does not point into #/$defs"),
            (with(json!({"$ref": "#/properties/q"})), "does not point into #/$defs"),
            (with(json!({})), "`$.properties.p`: no type"),
            (with(json!(true)), "a boolean schema"),
            (json!({"type": ["object", "null"], "properties": {"a": {"type": "string"}}}), "`$`: the root is nullable"),
            (json!({"anyOf": [{"type": "object"}]}), "`$`: the root is an anyOf"),
            (json!({"$ref": "#/$defs/A", "$defs": {"A": {"type": "object"}}}), "`$`: the root is not `type: object`"),
            (json!({"type": "object", "properties": {}}), "`$`: an object without properties"),
        ];
        for (schema, why) in cases {
            let refused = refusal(schema.clone());
            assert!(refused.contains(why), "{schema}: {refused} (expected {why})");
        }
        let mut deep = json!({"type": "string"});
        for _ in 0..=MAX_DEPTH {
            deep = json!({"type": "object", "properties": {"d": deep}, "required": ["d"]});
        }
        assert!(refusal(deep).contains("nested deeper than"));
    }

    #[test]
    fn the_nulls_a_strict_call_sends_for_left_out_properties_are_dropped() {
        let schema = json!({
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "count": {"type": "integer"},
                "maybe": {"type": ["string", "null"]},
                "place": {"$ref": "#/$defs/Place"},
                "list": {"type": "array", "items": {"$ref": "#/$defs/Place"}},
            },
            "required": ["text"],
            "$defs": {"Place": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}}},
        });
        let mut arguments = json!({
            "text": "hi", "count": null, "maybe": null, "place": {"city": "Oslo", "zip": null},
            "list": [{"city": null}], "extra": null,
        });
        let Value::Object(arguments_map) = &mut arguments else { unreachable!() };
        drop_nulls(arguments_map, &schema);
        assert_eq!(
            arguments,
            json!({"text": "hi", "maybe": null, "place": {"city": "Oslo"}, "list": [{}], "extra": null}),
            "a meant null (nullable) and unknown keys stay; optional non-nullable nulls go, nested too"
        );
    }
}
