//! Reads Kubernetes manifests (multi-document YAML, `kind: List` too) into compile [`Inputs`]:
//! what `kubectl apply -f` would send, read without a cluster. Used by local mode and by
//! `manifold-operator render`.
//!
//! A document that is not an object at all, or an object defined twice, fails the whole read
//! (callers keep what they had). An McpServer or McpRoute with a field its CRD does not know
//! (refused as `kubectl apply` refuses it, see [`strict`](crate::strict)) or whose fields do not
//! parse becomes [`Unreadable`]: compile reports it in its outcome and the other objects still
//! compile. Unknown fields are looked for first, so a misspelt field is named as such rather
//! than as the required field it was meant to be.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde::de::DeserializeOwned;
use serde_yaml::Value;

use crate::compile::{Inputs, Unreadable};
use crate::outcome::{Kind, ObjectRef, Problem};
use crate::resources::{API_VERSION, McpRoute, McpServer};
use crate::strict;

/// A manifest file's name (for messages) and its text.
pub struct Source {
    /// Where the text came from, for example a file path.
    pub origin: String,
    /// YAML text, possibly several documents.
    pub text: String,
}

/// Why a set of manifests could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ManifestError {
    /// File (and document) at fault.
    pub origin: String,
    /// What is wrong.
    pub message: String,
}

/// What was read.
#[derive(Debug, Default)]
pub struct Manifests {
    /// Objects compile reads.
    pub inputs: Inputs,
    /// Objects of other kinds, ignored (`Kind namespace/name`).
    pub ignored: Vec<String>,
}

/// Reads every document of every source.
pub fn read(sources: &[Source]) -> Result<Manifests, ManifestError> {
    let mut manifests = Manifests::default();
    let mut seen: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for source in sources {
        for (index, document) in serde_yaml::Deserializer::from_str(&source.text).enumerate() {
            let origin = format!("{} (document {})", source.origin, index + 1);
            let value: Value = serde::Deserialize::deserialize(document)
                .map_err(|e| ManifestError { origin: origin.clone(), message: format!("not valid YAML: {e}") })?;
            let objects = match value {
                Value::Null => continue,
                Value::Mapping(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                    map.get("items").and_then(Value::as_sequence).cloned().unwrap_or_default()
                }
                other => vec![other],
            };
            for object in objects {
                add(&mut manifests, &mut seen, object, &origin)?;
            }
        }
    }
    Ok(manifests)
}

fn add(
    manifests: &mut Manifests,
    seen: &mut BTreeMap<(String, String, String), String>,
    object: Value,
    origin: &str,
) -> Result<(), ManifestError> {
    let fail = |message: String| ManifestError { origin: origin.into(), message };
    let field = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_owned);
    let kind = field("kind").ok_or_else(|| fail("not a Kubernetes object: `kind` is missing".into()))?;
    let api_version = field("apiVersion").ok_or_else(|| fail(format!("{kind} has no `apiVersion`")))?;
    let meta = object.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| fail(format!("{kind} has no `metadata.name`")))?
        .to_owned();
    let namespace = meta.and_then(|m| m.get("namespace")).and_then(Value::as_str).unwrap_or("default").to_owned();
    let generation = meta.and_then(|m| m.get("generation")).and_then(Value::as_i64);

    if let Some(first) = seen.insert((kind.clone(), namespace.clone(), name.clone()), origin.into()) {
        return Err(fail(format!("{kind} {namespace}/{name} is defined twice (also in {first})")));
    }

    let inputs = &mut manifests.inputs;
    let ours = match kind.as_str() {
        "McpServer" => Some(Kind::McpServer),
        "McpRoute" => Some(Kind::McpRoute),
        _ => None,
    };
    if let Some(ours) = ours {
        let object_ref = ObjectRef { kind: ours, namespace, name };
        if api_version != API_VERSION {
            let problem = Problem::new("apiVersion", format!("`{api_version}` is not served; use {API_VERSION}"));
            inputs.unreadable.push(Unreadable { object: object_ref, generation, problem });
            return Ok(());
        }
        if let Some(problem) = strict::problem(&strict::unknown_fields(ours, &object)) {
            inputs.unreadable.push(Unreadable { object: object_ref, generation, problem });
            return Ok(());
        }
        match ours {
            Kind::McpServer => match typed::<McpServer>(object) {
                Ok(server) => inputs.servers.push(server),
                Err(problem) => inputs.unreadable.push(Unreadable { object: object_ref, generation, problem }),
            },
            Kind::McpRoute => match typed::<McpRoute>(object) {
                Ok(route) => inputs.routes.push(route),
                Err(problem) => inputs.unreadable.push(Unreadable { object: object_ref, generation, problem }),
            },
        }
        return Ok(());
    }
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => inputs.secrets.push(typed::<Secret>(object).map_err(|p| fail(format!("Secret {p}")))?),
        ("v1", "ConfigMap") => {
            inputs.config_maps.push(typed::<ConfigMap>(object).map_err(|p| fail(format!("ConfigMap {p}")))?)
        }
        _ => manifests.ignored.push(format!("{kind} {namespace}/{name}")),
    }
    Ok(())
}

/// Deserializes an object, naming the field at fault.
/// `object` as a `T`, or the first field that does not fit and why.
pub fn typed<T: DeserializeOwned>(object: Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize(object).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "spec".to_owned() } else { path };
        Problem::new(field, e.into_inner().to_string())
    })
}
