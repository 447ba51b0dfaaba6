//! `compile`: resolved objects in, a [`GatewayConfig`] and one [`Outcome`] per object out.
//! Pure and synchronous: no clock, no IO. Everything that can be decided from the resources
//! is decided here, so errors surface in status instead of at request time, and one bad
//! object never takes another tenant's route down.

mod access;
mod openapi;
mod resilience;
mod route;
mod secrets;
mod server;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use crate::config::{GatewayConfig, Upstream};
use crate::key::ObjectKey;
use crate::outcome::{Kind, ObjectRef, Outcome, Problem};
use crate::resources::{McpRoute, McpServer};

/// Everything compile reads, already fetched by the caller (the operator's resolver or the
/// local manifests loader).
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// McpServers of every watched namespace.
    pub servers: Vec<McpServer>,
    /// McpRoutes of every watched namespace.
    pub routes: Vec<McpRoute>,
    /// Secrets the servers and routes reference.
    pub secrets: Vec<Secret>,
    /// ConfigMaps they reference.
    pub config_maps: Vec<ConfigMap>,
    /// Objects whose spec could not even be parsed: reported, never served anew.
    pub unreadable: Vec<Unreadable>,
    /// Tool names discovered on servers, by (namespace, server name), where known: lets
    /// compile reject name collisions between mounts before a client sees them.
    pub discovered: BTreeMap<ObjectKey, Vec<String>>,
    /// OpenAPI documents fetched from `spec.openapi.url`, by URL: the text, or why it could
    /// not be fetched. A URL missing here has not been fetched yet.
    pub documents: BTreeMap<String, Result<String, String>>,
}

/// An object of ours whose fields do not parse.
#[derive(Clone, Debug, PartialEq)]
pub struct Unreadable {
    /// Which object.
    pub object: ObjectRef,
    /// Its `metadata.generation`, when readable.
    pub generation: Option<i64>,
    /// Where and why it does not parse.
    pub problem: Problem,
}

/// What compile produces.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    /// The config every gateway serves.
    pub config: GatewayConfig,
    /// One outcome per McpServer and McpRoute, ordered by kind, namespace and name.
    pub outcomes: Vec<Outcome>,
    /// Every usable McpServer's upstream, by (namespace, name), mounted or not: what the
    /// operator probes.
    pub servers: BTreeMap<ObjectKey, Upstream>,
}

/// Compiles `inputs`. `previous` is the config served until now: a route that has become
/// invalid keeps its last valid version there, and generations continue from it.
pub fn compile(inputs: &Inputs, previous: Option<&GatewayConfig>) -> Compiled {
    let secrets = secrets::Index::new(&inputs.secrets);
    let mut outcomes = Vec::new();
    let mut servers = BTreeMap::new();

    for server in &inputs.servers {
        let (usable, outcome) = server::compile(server, inputs, &secrets);
        servers.insert(outcome.object.key(), usable);
        outcomes.push(outcome);
    }
    for bad in inputs.unreadable.iter().filter(|u| u.object.kind == Kind::McpServer) {
        servers.insert(bad.object.key(), Err(format!("{} is not usable: {}", bad.object, bad.problem)));
        outcomes.push(server::unreadable(bad));
    }

    // An OpenAPI server's tools are known here: no need to discover them.
    let mut discovered = inputs.discovered.clone();
    for (key, state) in &servers {
        if let Ok(Upstream::OpenApi(api)) = state {
            discovered.insert(key.clone(), api.tools.iter().map(|t| t.name.clone()).collect());
        }
    }
    let (routes, route_outcomes) = route::compile_all(inputs, &servers, &discovered, previous);
    outcomes.extend(route_outcomes);
    outcomes.sort_by(|a, b| a.object.cmp(&b.object));

    let servers = servers.into_iter().filter_map(|(key, state)| state.ok().map(|upstream| (key, upstream))).collect();
    Compiled { config: GatewayConfig::new(routes, previous), outcomes, servers }
}

/// A server as routes see it: its upstream, or a one-line reason it cannot be mounted.
type ServerState = Result<Upstream, String>;

/// `metadata.namespace`, defaulting as kubectl does.
fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests;
