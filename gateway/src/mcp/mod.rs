//! The MCP front end: `endpoint` speaks streamable HTTP to clients and `exchange` answers one
//! request (JSON or an event stream); `methods` answers each
//! JSON-RPC method by routing into the route's mounts, `lists` merges and pages their lists,
//! `names` maps names and URIs between clients and mounts, and `relay` carries what is not a
//! request and its reply; `session` keeps client sessions and `stream` their event streams;
//! `stateless` serves the stateless revision (2026-07-28) beside the session-based ones.

pub mod endpoint;
mod exchange;
mod lists;
mod methods;
pub mod names;
mod relay;
pub mod seal;
pub mod session;
mod stateless;
mod stream;

use crate::Gateway;
use crate::snapshot::Snapshot;

/// Protocol revisions served to clients, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// After a reload, tells every listening client whose route now exposes something else
/// (mounts added, removed or changed, or the route gone) that its lists changed: session
/// clients on their standalone stream, stateless clients on their `subscriptions/listen`.
pub fn announce_changes(gateway: &Gateway, old: &Snapshot, new: &Snapshot) {
    let routes: std::collections::BTreeSet<(String, String)> = old
        .routes()
        .chain(new.routes())
        .map(|route| (route.config.namespace.clone(), route.config.name.clone()))
        .collect();
    for (namespace, name) in &routes {
        let before = old.route_named(namespace, name).map(|r| &r.config.mounts);
        let after = new.route_named(namespace, name).map(|r| &r.config.mounts);
        if before != after {
            gateway.sessions.listeners.announce(&(namespace.clone(), name.clone()));
        }
    }
    for session in gateway.sessions.all() {
        let (namespace, name) = (&session.route.0, &session.route.1);
        let before = old.route_named(namespace, name).map(|r| &r.config.mounts);
        let after = new.route_named(namespace, name).map(|r| &r.config.mounts);
        if before == after {
            continue;
        }
        for method in [
            "notifications/tools/list_changed",
            "notifications/prompts/list_changed",
            "notifications/resources/list_changed",
        ] {
            session.streams.send(stream::STANDALONE, &crate::jsonrpc::notification(method, None));
        }
        tracing::debug!(session = %session.log_id(), route = %format!("{namespace}/{name}"), "told the client its lists changed");
    }
}
