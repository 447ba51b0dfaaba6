//! Discovery for local mode: the tools offered by the servers of routes that mount without a
//! prefix, so compile can reject name collisions before a client sees them, and of routes
//! with a compatibility profile, so their status names the tools it shortens or leaves out
//! (in a cluster the operator's probe does this). Best effort, bounded in time: a server that does not answer
//! is simply not checked.

use std::collections::BTreeMap;
use std::time::Duration;

use manifold_api::{GatewayConfig, ObjectKey};
use serde_json::{Map, Value};

use crate::protocol::{Method, SUPPORTED_VERSIONS};
use crate::upstream::{Hello, Slot, UpstreamClient};
use manifold_runtime::egress::Egress;

/// How long discovery may hold up a reload.
const DEADLINE: Duration = Duration::from_secs(5);

/// Tool names by (namespace, server), for the servers of routes where names can collide
/// (routes with more than one mount, one of them unprefixed) and of routes with a
/// compatibility profile.
pub async fn discover(config: &GatewayConfig, egress: Egress) -> BTreeMap<ObjectKey, Vec<String>> {
    let mut servers = BTreeMap::new();
    for route in &config.routes {
        let collide = route.mounts.len() > 1 && route.mounts.iter().any(|m| m.prefix.is_empty());
        if collide || route.compatibility.is_some() {
            for mount in &route.mounts {
                servers.insert(ObjectKey::new(&route.namespace, &mount.server), mount.upstream.clone());
            }
        }
    }
    let probes = servers.into_iter().map(|(key, upstream)| async move {
        // A server that needs a caller's credential cannot be listed here: it is not checked.
        let client = UpstreamClient::new(&upstream, egress, None).ok()?;
        let hello =
            Hello { protocol_version: SUPPORTED_VERSIONS[0].into(), capabilities: crate::jsonrpc::raw(&Map::new()) };
        let slot = Slot::detached();
        let listed =
            tokio::time::timeout(DEADLINE, client.list_all(&slot, &hello, Method::ToolsList.name(), "tools")).await;
        client.close(&slot).await;
        match listed {
            Ok(Ok(tools)) => {
                let names = tools.iter().filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned));
                Some((key, names.collect()))
            }
            Ok(Err(error)) => {
                tracing::debug!(server = %key.name, %error, "discovery failed; collisions on this server are not checked");
                None
            }
            Err(_) => None,
        }
    });
    futures::future::join_all(probes).await.into_iter().flatten().collect()
}
