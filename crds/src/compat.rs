//! The compatibility profile's pure rules: a client-visible tool name and an input schema in,
//! what each named LLM provider would refuse out, with a deterministic short form for names and
//! a normalised schema (plus a note of what was lost) for schemas. The gateway applies these to
//! the lists a route with `compatibility` serves; the export endpoint applies them per format.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// An LLM provider whose function-calling rules a route promises to meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// OpenAI Chat Completions, Responses and the Agents SDK.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini (`google-genai`, `@google/genai`).
    Gemini,
}

impl Provider {
    /// The provider's tool-name rule, as the provider documents it.
    pub fn name_rule(self) -> &'static str {
        match self {
            Provider::OpenAi | Provider::Anthropic => r"^[a-zA-Z0-9_-]{1,64}$",
            Provider::Gemini => r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$",
        }
    }

    /// The serde name, as written in `spec.compatibility`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

static OPENAI_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(Provider::OpenAi.name_rule()).expect("the OpenAI name rule is a valid regex"));
static GEMINI_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(Provider::Gemini.name_rule()).expect("the Gemini name rule is a valid regex"));

/// Characters a short form keeps before the `_` and the hash: 55 + 1 + 8 = 64, OpenAI's limit.
const SHORT_STEM: usize = 55;
/// Hex digits of SHA-256 a short form ends with.
const SHORT_HASH: usize = 8;
/// How deep `$ref`s are inlined before a recursive schema is cut.
pub const MAX_REF_DEPTH: usize = 8;
/// Losses `describe_losses` spells out before it only counts the rest.
const LOSSES_SHOWN: usize = 8;

/// Why `name` breaks the tool-name rule of one of `providers` (each provider that refuses it
/// is named), or `None` when every named provider accepts it.
pub fn name_problem(name: &str, providers: &[Provider]) -> Option<String> {
    let mut seen = BTreeSet::new();
    let broken: Vec<String> = providers
        .iter()
        .filter(|provider| seen.insert(**provider))
        .filter(|provider| {
            let rule = match provider {
                Provider::OpenAi | Provider::Anthropic => &OPENAI_NAME,
                Provider::Gemini => &GEMINI_NAME,
            };
            !rule.is_match(name)
        })
        .map(|provider| format!("{provider} requires {}", provider.name_rule()))
        .collect();
    if broken.is_empty() {
        return None;
    }
    Some(format!(
        "tool name `{name}` ({} characters) breaks a provider's rule: {}",
        name.chars().count(),
        broken.join("; ")
    ))
}

/// The short form of a client-visible tool name: every character outside `[A-Za-z0-9_-]`
/// becomes `_`; a leading digit or `-` gets a `_` before it (Gemini wants a letter or `_`
/// first); the result is cut to 55 characters; then `_` and the first 8 lowercase hex digits
/// of SHA-256 of the original name are appended. At most 64 characters, valid for every
/// provider, the same on every gateway, and distinct names get distinct forms (up to the
/// hash); it is reversed by looking it up among the route's names, never by parsing.
pub fn short_name(name: &str) -> String {
    let mut stem: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    if stem.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        stem.insert(0, '_');
    }
    // Every character is ASCII now, so a byte cut is a character cut.
    stem.truncate(SHORT_STEM);
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    format!("{stem}_{}", &digest[..SHORT_HASH])
}

/// An input schema rewritten for the named providers, and what the rewrite lost.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalized {
    /// The schema the route's clients see.
    pub schema: Value,
    /// One entry per loss, for example "`$.properties.x`: additionalProperties dropped".
    pub lost: Vec<String>,
}

/// Rewrites `schema` only where one of `providers` would refuse it; `None` when it is accepted
/// as it is. For every provider the root becomes `type: object` (with `properties: {}` when
/// missing). For Gemini also: `$ref`s inlined (`#/$defs/…` and `#/definitions/…`, cut at
/// depth 8), `additionalProperties` removed, `const` made a one-value `enum`, `oneOf` made
/// `anyOf`, `allOf` merged, type arrays made one type plus `nullable: true` (or an `anyOf`),
/// non-string enums made strings, and every keyword outside Gemini's subset removed.
pub fn normalize(schema: &Value, providers: &[Provider]) -> Option<Normalized> {
    let mut lost = Vec::new();
    let mut root = match schema {
        Value::Object(map) => map.clone(),
        other => {
            lost.push(format!("`$`: schema {} replaced by an object", short_json(other)));
            Map::new()
        }
    };
    match root.get("type") {
        Some(Value::String(kind)) if kind == "object" => {}
        None => {}
        Some(other) => lost.push(format!("`$`: type {} replaced by object", short_json(other))),
    }
    root.insert("type".into(), Value::String("object".into()));
    root.entry("properties").or_insert_with(|| Value::Object(Map::new()));
    if providers.iter().any(|provider| matches!(provider, Provider::OpenAi | Provider::Anthropic)) {
        flatten_root(&mut root, &Definitions::of(schema), &mut lost);
    }
    let mut normalized = Value::Object(root);
    if providers.contains(&Provider::Gemini) {
        let definitions = Definitions::of(&normalized);
        normalized = Gemini { definitions, lost: &mut lost }.node(&normalized, "$", 0);
    }
    if normalized == *schema && lost.is_empty() {
        return None;
    }
    Some(Normalized { schema: normalized, lost })
}

/// Combinators OpenAI and Anthropic refuse at the root of a tool's parameters, even outside
/// strict mode; OpenAI refuses [`ROOT_REFUSED`] there too.
const ROOT_COMBINATORS: &[&str] = &["oneOf", "anyOf", "allOf"];
const ROOT_REFUSED: &[&str] = &["enum", "const", "not"];

/// The root's `oneOf`/`anyOf`/`allOf` folded into the one object OpenAI and Anthropic take:
/// every option's properties are offered, and a property is required when every option of a
/// `oneOf`/`anyOf` (or any part of an `allOf`) requires it. The root's own `enum`, `const`
/// and `not` are dropped. Each is noted.
fn flatten_root(root: &mut Map<String, Value>, definitions: &Definitions, lost: &mut Vec<String>) {
    for keyword in ROOT_COMBINATORS {
        let Some(removed) = root.remove(*keyword) else { continue };
        let Value::Array(options) = removed else {
            lost.push(format!("`$`: {keyword} that is not a list dropped"));
            continue;
        };
        let every_part = *keyword == "allOf";
        let mut required: Option<BTreeSet<String>> = None;
        let mut offered = Map::new();
        for option in &options {
            let option = match option.get("$ref").and_then(Value::as_str).and_then(|r| definitions.resolve(r)) {
                Some(target) => target,
                None => option,
            };
            for (name, property) in option.get("properties").and_then(Value::as_object).into_iter().flatten() {
                offered.entry(name.clone()).or_insert_with(|| property.clone());
            }
            let names: BTreeSet<String> = option
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect();
            required = Some(match required {
                None => names,
                Some(so_far) if every_part => so_far.union(&names).cloned().collect(),
                Some(so_far) => so_far.intersection(&names).cloned().collect(),
            });
        }
        if let Some(Value::Object(properties)) = root.get_mut("properties") {
            for (name, property) in offered {
                properties.entry(name).or_insert(property);
            }
        }
        let mut all_required: Vec<Value> = root.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
        for name in required.unwrap_or_default() {
            if !all_required.iter().any(|n| n == name.as_str()) {
                all_required.push(Value::String(name));
            }
        }
        if !all_required.is_empty() {
            root.insert("required".into(), Value::Array(all_required));
        }
        let note = match every_part {
            true => format!("`$`: allOf of {} schemas merged into one object", options.len()),
            false => format!(
                "`$`: {keyword} of {} schemas made one object offering every property (send one shape's)",
                options.len()
            ),
        };
        lost.push(note);
    }
    for keyword in ROOT_REFUSED {
        if root.remove(*keyword).is_some() {
            lost.push(format!("`$`: {keyword} dropped from the root"));
        }
    }
}

/// `description` with a short note of what the schema lost; `description` itself when nothing was.
pub fn describe_losses(description: &str, lost: &[String]) -> String {
    if lost.is_empty() {
        return description.to_owned();
    }
    let mut shown = lost.iter().take(LOSSES_SHOWN).cloned().collect::<Vec<_>>().join("; ");
    if lost.len() > LOSSES_SHOWN {
        shown.push_str(&format!("; and {} more", lost.len() - LOSSES_SHOWN));
    }
    let note = format!("(Input schema simplified for this client: {shown}.)");
    if description.trim().is_empty() { note } else { format!("{}\n\n{note}", description.trim_end()) }
}

/// Makes a call's `arguments`, written against a Gemini-normalised schema, fit `schema` (the
/// upstream's original input schema) again, at the root and in nested declared objects and
/// array items, following local `$ref`s:
/// - properties it does not declare are removed where it says `additionalProperties: false`
///   (the normalised schema no longer forbids them, so a model may send them);
/// - a string standing for a non-string `enum` value (Gemini takes string enums only) becomes
///   that value again.
///
/// Returns the paths changed, each with what was done.
pub fn fit_arguments(schema: &Value, arguments: &mut Value) -> Vec<String> {
    let definitions = Definitions::of(schema);
    let mut changed = Vec::new();
    fit_node(schema, arguments, &definitions, "$", 0, &mut changed);
    changed
}

fn fit_node(
    schema: &Value,
    arguments: &mut Value,
    defs: &Definitions,
    path: &str,
    depth: usize,
    changed: &mut Vec<String>,
) {
    if depth > MAX_REF_DEPTH {
        return;
    }
    let Some(schema) = schema.as_object() else { return };
    if let Some(target) = schema.get("$ref").and_then(Value::as_str).and_then(|r| defs.resolve(r)) {
        fit_node(target, arguments, defs, path, depth + 1, changed);
    }
    if let (Value::String(sent), Some(Value::Array(values))) = (&*arguments, schema.get("enum"))
        && let Some(value) = values.iter().find(|value| !value.is_string() && enum_text(value) == *sent)
    {
        *arguments = value.clone();
        changed.push(format!("{path}: enum value restored"));
        return;
    }
    if let (Value::Array(items), Some(item_schema)) = (&mut *arguments, schema.get("items")) {
        for (index, item) in items.iter_mut().enumerate() {
            fit_node(item_schema, item, defs, &format!("{path}[{index}]"), depth, changed);
        }
        return;
    }
    let Value::Object(values) = arguments else { return };
    let declared = schema.get("properties").and_then(Value::as_object);
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) && schema.get("$ref").is_none() {
        let keep = |key: &String| declared.is_some_and(|properties| properties.contains_key(key));
        let extra: Vec<String> = values.keys().filter(|key| !keep(key)).cloned().collect();
        for key in extra {
            values.remove(&key);
            changed.push(format!("{path}.{key}: undeclared, removed"));
        }
    }
    for (key, property) in declared.into_iter().flatten() {
        if let Some(value) = values.get_mut(key) {
            fit_node(property, value, defs, &format!("{path}.{key}"), depth, changed);
        }
    }
}

/// The root's `$defs` and draft-07 `definitions`, which local `$ref`s point into.
struct Definitions {
    defs: Map<String, Value>,
    definitions: Map<String, Value>,
}

impl Definitions {
    fn of(root: &Value) -> Definitions {
        let take = |key: &str| root.get(key).and_then(Value::as_object).cloned().unwrap_or_default();
        Definitions { defs: take("$defs"), definitions: take("definitions") }
    }

    fn resolve(&self, reference: &str) -> Option<&Value> {
        if let Some(name) = reference.strip_prefix("#/$defs/") {
            return self.defs.get(&unescape_pointer(name));
        }
        if let Some(name) = reference.strip_prefix("#/definitions/") {
            return self.definitions.get(&unescape_pointer(name));
        }
        None
    }
}

fn unescape_pointer(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Keywords Gemini's `Schema` accepts; anything else is refused or silently dropped by its SDKs.
const GEMINI_KEYWORDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// Keywords that only annotate or organise a schema: removing them loses nothing worth a note.
const QUIET_KEYWORDS: &[&str] = &["$schema", "$id", "$comment", "$defs", "definitions", "$anchor"];

/// The Gemini rewrite of one schema node, noting every loss.
struct Gemini<'a> {
    definitions: Definitions,
    lost: &'a mut Vec<String>,
}

impl Gemini<'_> {
    fn node(&mut self, node: &Value, path: &str, depth: usize) -> Value {
        let Value::Object(input) = node else {
            // `true`/`false` subschemas: Gemini has neither; an unconstrained object stands in.
            self.lost.push(format!("`{path}`: boolean schema {node} replaced by an empty schema"));
            return Value::Object(Map::new());
        };
        let mut map = input.clone();
        if let Some(reference) = map.remove("$ref") {
            let reference_text = reference.as_str().unwrap_or_default().to_owned();
            match self.definitions.resolve(&reference_text).cloned() {
                Some(_) if depth >= MAX_REF_DEPTH => {
                    self.lost.push(format!("`{path}`: recursive $ref `{reference_text}` cut at depth {MAX_REF_DEPTH}"));
                }
                Some(Value::Object(target)) => {
                    // The reference's siblings (a description, say) win over the target's.
                    let mut merged = target;
                    merged.extend(map);
                    return self.node(&Value::Object(merged), path, depth + 1);
                }
                _ => self.lost.push(format!("`{path}`: $ref `{reference_text}` could not be inlined, dropped")),
            }
        }
        if let Some(constant) = map.remove("const") {
            map.insert("enum".into(), Value::Array(vec![constant]));
        }
        if let Some(one_of) = map.remove("oneOf") {
            self.lost.push(format!("`{path}`: oneOf made anyOf (more than one may match)"));
            map.insert("anyOf".into(), one_of);
        }
        if let Some(Value::Array(parts)) = map.remove("allOf") {
            self.merge_all_of(&mut map, parts, path, depth);
        }
        self.flatten_type_array(&mut map, path);
        if let Some(Value::Array(values)) = map.get("enum")
            && values.iter().any(|value| !value.is_string())
        {
            let strings = values.iter().map(|value| Value::String(enum_text(value))).collect();
            self.lost.push(format!("`{path}`: enum values made strings"));
            map.insert("enum".into(), Value::Array(strings));
            map.insert("type".into(), Value::String("string".into()));
        }
        if let Some(additional) = map.remove("additionalProperties") {
            let note = if additional == Value::Bool(false) {
                "additionalProperties dropped (undeclared properties are removed before the call)"
            } else {
                "additionalProperties dropped"
            };
            self.lost.push(format!("`{path}`: {note}"));
        }
        let mut out = Map::new();
        for (key, value) in map {
            match key.as_str() {
                "properties" => {
                    let Value::Object(properties) = value else {
                        self.lost.push(format!("`{path}`: properties that are not an object dropped"));
                        continue;
                    };
                    let rewritten = properties
                        .into_iter()
                        .map(|(name, schema)| {
                            let child = self.node(&schema, &format!("{path}.properties.{name}"), depth);
                            (name, child)
                        })
                        .collect();
                    out.insert(key, Value::Object(rewritten));
                }
                "items" => {
                    let items = match value {
                        // Tuple `items`: Gemini takes one item schema; the first stands for all.
                        Value::Array(mut tuple) if !tuple.is_empty() => {
                            self.lost.push(format!("`{path}`: tuple items reduced to the first"));
                            tuple.swap_remove(0)
                        }
                        other => other,
                    };
                    out.insert(key, self.node(&items, &format!("{path}.items"), depth));
                }
                "anyOf" => {
                    let Value::Array(options) = value else { continue };
                    let rewritten = options
                        .iter()
                        .enumerate()
                        .map(|(index, option)| self.node(option, &format!("{path}.anyOf[{index}]"), depth))
                        .collect();
                    out.insert(key, Value::Array(rewritten));
                }
                known if GEMINI_KEYWORDS.contains(&known) => {
                    out.insert(key, value);
                }
                quiet if QUIET_KEYWORDS.contains(&quiet) => {}
                other => self.lost.push(format!("`{path}`: {other} dropped")),
            }
        }
        self.fit_to_type(&mut out, path);
        Value::Object(out)
    }

    /// What Gemini refuses about a node's type: `properties`/`required` off objects, `items`
    /// off arrays, an array without `items`, a `format` it does not know for the type, and a
    /// `required` name that is not a property.
    fn fit_to_type(&mut self, out: &mut Map<String, Value>, path: &str) {
        if let Some(kind) = out.get("type").and_then(Value::as_str).map(str::to_ascii_lowercase) {
            let misplaced: &[&str] = match kind.as_str() {
                "object" => &["items"],
                "array" => &["properties", "required"],
                _ => &["properties", "required", "items"],
            };
            for key in misplaced {
                if out.remove(*key).is_some() {
                    self.lost.push(format!("`{path}`: {key} dropped (not allowed for type {kind})"));
                }
            }
            if kind == "array" {
                // Gemini wants an item schema; an empty one says what the original did.
                out.entry("items").or_insert_with(|| Value::Object(Map::new()));
            }
            let formats: &[&str] = match kind.as_str() {
                "string" => &["enum", "date-time"],
                "number" => &["float", "double"],
                "integer" => &["int32", "int64"],
                _ => &[],
            };
            if let Some(format) = out.get("format").and_then(Value::as_str).map(str::to_owned)
                && !formats.contains(&format.as_str())
            {
                out.remove("format");
                self.lost.push(format!("`{path}`: format {format} dropped"));
            }
        }
        let declared: BTreeSet<String> =
            out.get("properties").and_then(Value::as_object).map(|p| p.keys().cloned().collect()).unwrap_or_default();
        if let Some(Value::Array(required)) = out.get_mut("required") {
            let before = required.len();
            required.retain(|name| name.as_str().is_some_and(|name| declared.contains(name)));
            if required.len() < before {
                self.lost.push(format!("`{path}`: required names of undeclared properties dropped"));
            }
        }
    }

    /// `allOf` folded into its parent: properties and `required` united, other keywords taken
    /// where the parent has none. Gemini has no `allOf`; its SDKs would drop it whole.
    fn merge_all_of(&mut self, map: &mut Map<String, Value>, parts: Vec<Value>, path: &str, depth: usize) {
        for (index, part) in parts.iter().enumerate() {
            let Value::Object(part) = self.node(part, &format!("{path}.allOf[{index}]"), depth) else { continue };
            for (key, value) in part {
                match (key.as_str(), map.get_mut(&key)) {
                    ("properties", Some(Value::Object(existing))) => {
                        if let Value::Object(more) = value {
                            existing.extend(more);
                        }
                    }
                    ("required", Some(Value::Array(existing))) => {
                        for name in value.as_array().into_iter().flatten() {
                            if !existing.contains(name) {
                                existing.push(name.clone());
                            }
                        }
                    }
                    (_, Some(_)) => {}
                    (_, None) => {
                        map.insert(key, value);
                    }
                }
            }
        }
        self.lost.push(format!("`{path}`: allOf merged into one schema"));
    }

    /// `type: ["string", "null"]` becomes `type: string, nullable: true`; several non-null
    /// types become an `anyOf` of one type each.
    fn flatten_type_array(&mut self, map: &mut Map<String, Value>, path: &str) {
        let Some(Value::Array(types)) = map.get("type") else { return };
        let nullable = types.iter().any(|kind| kind == "null");
        let kinds: Vec<Value> = types.iter().filter(|kind| *kind != "null").cloned().collect();
        map.remove("type");
        if nullable {
            map.insert("nullable".into(), Value::Bool(true));
        }
        match kinds.as_slice() {
            [] => {}
            [one] => {
                map.insert("type".into(), one.clone());
            }
            several => {
                let options = several.iter().map(|kind| serde_json::json!({ "type": kind })).collect();
                map.insert("anyOf".into(), Value::Array(options));
                self.lost.push(format!("`{path}`: type list made anyOf"));
            }
        }
    }
}

fn enum_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn short_json(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 40 { text } else { format!("{}…", text.chars().take(40).collect::<String>()) }
}

#[cfg(test)]
mod tests;
