//! Strict field validation as the API server does it (`kubectl apply`'s default since 1.27):
//! an McpServer or McpRoute in, every field its schema does not know out, each path written as
//! the server writes it (`spec.mounts[0].prefx`, `metadata.lables`). Local mode and `render`
//! refuse such objects instead of dropping the field without a word.
//!
//! The rules are the server's pruning rules: `properties`, `items` and `additionalProperties`
//! lead down; under `x-kubernetes-preserve-unknown-fields` unknown keys are kept (known ones are
//! still checked); `anyOf`/`oneOf`/`allOf` never declare fields (crdgen emits none anyway).
//! `metadata` is checked against k8s-openapi's ObjectMeta, the rest against the schema crdgen
//! writes. The order is the server's: metadata fields first, then the others sorted.

use std::sync::LazyLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResourceExt;
use serde_yaml::Value;

use crate::outcome::{Kind, Problem};
use crate::resources::{McpRoute, McpServer};

/// A field the schema does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownField {
    /// Its path as the API server writes it, for example `spec.mounts[0].prefx`.
    pub path: String,
    /// A known field beside it with a close name, for example `prefix`.
    pub suggestion: Option<String>,
}

/// Fields the server takes at the top of any object, whatever the schema says.
const TYPE_AND_OBJECT_META: [&str; 3] = ["apiVersion", "kind", "metadata"];

struct Schemas {
    server: JSONSchemaProps,
    route: JSONSchemaProps,
    metadata: JSONSchemaProps,
}

static SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| Schemas {
    server: crd_schema(McpServer::crd()),
    route: crd_schema(McpRoute::crd()),
    metadata: object_meta_schema(),
});

/// Every field of `object` (an McpServer or McpRoute) that its schema does not know, in the
/// order the API server lists them.
pub fn unknown_fields(kind: Kind, object: &Value) -> Vec<UnknownField> {
    let Value::Mapping(map) = untagged(object) else { return Vec::new() };
    let schema = match kind {
        Kind::McpServer => &SCHEMAS.server,
        Kind::McpRoute => &SCHEMAS.route,
    };
    let mut found = Vec::new();
    if let Some(metadata) = map.get("metadata") {
        walk(metadata, Some(&SCHEMAS.metadata), "metadata", &mut found);
    }
    let mut rest = Vec::new();
    for (key, value) in map {
        let key = key_text(key);
        if TYPE_AND_OBJECT_META.contains(&key.as_str()) {
            continue;
        }
        match schema.properties.as_ref().and_then(|p| p.get(&key)) {
            Some(property) => walk(value, Some(property), &key, &mut rest),
            None => {
                let known = schema.properties.iter().flat_map(|p| p.keys().map(String::as_str));
                let suggestion = closest(&key, known.chain(TYPE_AND_OBJECT_META));
                rest.push(UnknownField { path: key, suggestion });
            }
        }
    }
    rest.sort_by(|a, b| a.path.cmp(&b.path));
    found.extend(rest);
    found
}

/// The problem of an object with unknown fields: at the first one, naming them all.
pub fn problem(unknown: &[UnknownField]) -> Option<Problem> {
    let first = unknown.first()?;
    let named: Vec<String> = unknown
        .iter()
        .map(|field| match &field.suggestion {
            Some(close) => format!("{:?} (did you mean {close:?}?)", field.path),
            None => format!("{:?}", field.path),
        })
        .collect();
    let noun = if unknown.len() == 1 { "unknown field" } else { "unknown fields" };
    Some(Problem::new(first.path.clone(), format!("{noun} {}", named.join(", "))))
}

/// Checks `value` at `path` against `schema` (none: no field is known below).
fn walk(value: &Value, schema: Option<&JSONSchemaProps>, path: &str, found: &mut Vec<UnknownField>) {
    match untagged(value) {
        Value::Mapping(map) => {
            let properties = schema.and_then(|s| s.properties.as_ref());
            let preserve = schema.is_some_and(|s| s.x_kubernetes_preserve_unknown_fields == Some(true));
            let embedded = schema.is_some_and(|s| s.x_kubernetes_embedded_resource == Some(true));
            let mut entries: Vec<(String, &Value)> = map.iter().map(|(k, v)| (key_text(k), v)).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, value) in entries {
                if embedded && TYPE_AND_OBJECT_META.contains(&key.as_str()) {
                    continue;
                }
                let child = format!("{path}.{key}");
                match (properties.and_then(|p| p.get(&key)), schema.and_then(|s| s.additional_properties.as_ref())) {
                    (Some(property), _) => walk(value, Some(property), &child, found),
                    (None, Some(JSONSchemaPropsOrBool::Schema(values))) => walk(value, Some(values), &child, found),
                    (None, Some(JSONSchemaPropsOrBool::Bool(true))) => walk(value, None, &child, found),
                    _ if preserve => {}
                    _ => {
                        let suggestion = closest(&key, properties.iter().flat_map(|p| p.keys().map(String::as_str)));
                        found.push(UnknownField { path: child, suggestion });
                    }
                }
            }
        }
        Value::Sequence(items) => {
            let items_schema = match schema.and_then(|s| s.items.as_ref()) {
                Some(JSONSchemaPropsOrArray::Schema(items)) => Some(items.as_ref()),
                _ => None,
            };
            for (index, item) in items.iter().enumerate() {
                walk(item, items_schema, &format!("{path}[{index}]"), found);
            }
        }
        _ => {}
    }
}

fn untagged(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untagged(&tagged.value),
        other => other,
    }
}

/// A mapping key as text, as kubectl turns YAML into JSON (`1: x` is the key `"1"`).
fn key_text(key: &Value) -> String {
    match untagged(key) {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "null".into(),
        other => serde_yaml::to_string(other).unwrap_or_default().trim_end().to_owned(),
    }
}

/// The known name closest to `key`, when it is close enough to be a slip of the keyboard.
fn closest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    known
        .map(|name| (distance(key, name), name))
        .filter(|&(d, name)| d > 0 && d * 3 <= key.chars().count().max(name.chars().count()))
        .min()
        .map(|(_, name)| name.to_owned())
}

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![(0..=b.len()).collect::<Vec<_>>()];
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (rows[i - 1][j] + 1).min(row[j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(rows[i - 2][j - 2] + 1);
            }
        }
        rows.push(row);
    }
    rows[a.len()][b.len()]
}

/// The `openAPIV3Schema` of a CRD's only version. A CRD without one would let any field
/// through, as the server does for a schemaless CRD; tests make sure ours have one.
fn crd_schema(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> JSONSchemaProps {
    crd.spec
        .versions
        .into_iter()
        .next()
        .and_then(|version| version.schema)
        .and_then(|schema| schema.open_api_v3_schema)
        .unwrap_or_else(preserve_unknown)
}

/// ObjectMeta's schema as k8s-openapi describes it, inlined as kube-derive inlines a CRD's.
/// `managedFields[*].fieldsV1` is free-form (the server decodes it as raw JSON).
fn object_meta_schema() -> JSONSchemaProps {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let schema = serde_json::to_value(generator.into_root_schema_for::<ObjectMeta>())
        .and_then(serde_json::from_value::<JSONSchemaProps>);
    let Ok(mut schema) = schema else { return preserve_unknown() };
    let fields_v1 = schema
        .properties
        .as_mut()
        .and_then(|p| p.get_mut("managedFields"))
        .and_then(|managed| match managed.items.as_mut() {
            Some(JSONSchemaPropsOrArray::Schema(entry)) => entry.properties.as_mut(),
            _ => None,
        })
        .and_then(|p| p.get_mut("fieldsV1"));
    if let Some(fields_v1) = fields_v1 {
        fields_v1.x_kubernetes_preserve_unknown_fields = Some(true);
    }
    schema
}

fn preserve_unknown() -> JSONSchemaProps {
    JSONSchemaProps { x_kubernetes_preserve_unknown_fields: Some(true), ..JSONSchemaProps::default() }
}

#[cfg(test)]
mod tests;
