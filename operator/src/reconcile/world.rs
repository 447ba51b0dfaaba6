//! The world a reconcile starts from: McpServers, McpRoutes, the Secrets and ConfigMaps
//! they reference, fetched documents, and the objects that do not parse; and, from the
//! specs, which Secrets and ConfigMaps are worth reading at all ([`references`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use manifold_api::ObjectKey;
use manifold_api::compile::{Inputs, Unreadable, compile};
use manifold_api::config::Upstream;
use manifold_api::outcome::ObjectRef;
use manifold_api::resources::{CONFIG_MAP_REFERENCES, McpRoute, McpServer, SECRET_REFERENCES};

/// What the watches hold.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub servers: Vec<McpServer>,
    pub routes: Vec<McpRoute>,
    /// Only Secrets an McpServer or McpRoute references.
    pub secrets: Vec<Secret>,
    /// Only ConfigMaps an McpServer references.
    pub config_maps: Vec<ConfigMap>,
    /// OpenAPI documents fetched from `spec.openapi.url`, by URL.
    pub documents: BTreeMap<String, Result<String, String>>,
    /// McpServers and McpRoutes whose fields do not parse: reported in their own status,
    /// never served anew, and no one else's concern.
    pub unreadable: Vec<Unreadable>,
    /// Their uids and statuses, as far as those can be read.
    pub unreadable_seen: BTreeMap<ObjectRef, (Option<String>, Option<serde_json::Value>)>,
}

impl World {
    pub(super) fn inputs(&self, discovered: BTreeMap<ObjectKey, Vec<String>>) -> Inputs {
        Inputs {
            servers: self.servers.clone(),
            routes: self.routes.clone(),
            secrets: self.secrets.clone(),
            config_maps: self.config_maps.clone(),
            documents: self.documents.clone(),
            discovered,
            unreadable: self.unreadable.clone(),
        }
    }

    /// Every usable McpServer's compiled upstream (credentials read): what to probe.
    pub fn servers_to_probe(&self) -> BTreeMap<ObjectKey, Upstream> {
        compile(&self.inputs(BTreeMap::new()), None).servers
    }
}

/// The Secrets and ConfigMaps McpServers and McpRoutes reference, as (namespace, name).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct References {
    pub secrets: BTreeSet<ObjectKey>,
    pub config_maps: BTreeSet<ObjectKey>,
}

/// Every Secret and ConfigMap reference in the objects' specs (the fields
/// `manifold_api::resources::SECRET_REFERENCES` and `CONFIG_MAP_REFERENCES` name; a reference
/// names an object of the referrer's own namespace). Found by walking the specs, so a field
/// added to the API is covered without a change here (a test in manifold-api fails on a
/// `...Ref` field in neither list).
pub fn references(servers: &[McpServer], routes: &[McpRoute]) -> References {
    fn walk(value: &serde_json::Value, namespace: &str, found: &mut References) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    let name = inner.get("name").and_then(serde_json::Value::as_str);
                    match (key.as_str(), name) {
                        (key, Some(name)) if SECRET_REFERENCES.contains(&key) => {
                            found.secrets.insert(ObjectKey::new(namespace, name));
                        }
                        (key, Some(name)) if CONFIG_MAP_REFERENCES.contains(&key) => {
                            found.config_maps.insert(ObjectKey::new(namespace, name));
                        }
                        _ => walk(inner, namespace, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, namespace, found)),
            _ => {}
        }
    }
    let mut found = References::default();
    let specs = servers
        .iter()
        .map(|s| (s.namespace(), serde_json::to_value(&s.spec)))
        .chain(routes.iter().map(|r| (r.namespace(), serde_json::to_value(&r.spec))));
    for (namespace, spec) in specs {
        if let Ok(spec) = spec {
            walk(&spec, namespace.as_deref().unwrap_or("default"), &mut found);
        }
    }
    found
}
