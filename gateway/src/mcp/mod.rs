//! The MCP front end, in layers that each use only those below them. `endpoint` speaks
//! streamable HTTP to clients: requests of the stateless revision go to `stateless`, the others
//! to `exchange`, which answers one request (JSON or an event stream) through `methods`;
//! `methods` routes each JSON-RPC method into the route's mounts, and `lists` merges their
//! lists, paged by the sans-IO `pager`. What a client sends that is not a request goes to
//! `inbound`. Below them: `guarded` (a request to a mount through its breaker, cap and
//! retries) over `call` (the request context, its era and its answer, and how a request
//! reaches a mount), `session` (client sessions) with `listeners` (stateless clients
//! waiting for changes), and the leaves `response` (HTTP responses and every status), `rewrite`
//! (pure message rewriting), `names` (client-visible names and URIs), `stream` and `seal`. Beside them, `consent` serves the
//! pages where callers consent to per-user upstream tokens.

mod cached;
mod call;
pub mod compat;
pub mod consent;
mod elicit;
pub mod endpoint;
mod exchange;
mod guarded;
mod inbound;
mod listeners;
mod lists;
mod methods;
pub mod names;
mod pager;
mod response;
mod rewrite;
pub mod seal;
pub mod session;
mod stateless;
mod stream;

use manifold_api::ObjectKey;

use crate::Gateway;
use crate::protocol::Method;
use crate::snapshot::Snapshot;

/// After a reload, tells every listening client whose route now exposes something else
/// (mounts added, removed or changed, or the route gone) that its lists changed: session
/// clients on their standalone stream, stateless clients on their `subscriptions/listen`.
pub fn announce_changes(gateway: &Gateway, old: &Snapshot, new: &Snapshot) {
    let routes: std::collections::BTreeSet<ObjectKey> =
        old.routes().chain(new.routes()).map(|route| route.config.key()).collect();
    for route in &routes {
        let before = old.route_named(&route.namespace, &route.name).map(|r| &r.config.mounts);
        let after = new.route_named(&route.namespace, &route.name).map(|r| &r.config.mounts);
        if before != after {
            gateway.sessions.listeners.announce(route);
        }
    }
    for session in gateway.sessions.all() {
        let (namespace, name) = (&session.route.namespace, &session.route.name);
        let before = old.route_named(namespace, name).map(|r| &r.config.mounts);
        let after = new.route_named(namespace, name).map(|r| &r.config.mounts);
        if before == after {
            continue;
        }
        for method in Method::LIST_CHANGES {
            session.streams.send(stream::STANDALONE, &crate::jsonrpc::notification(method.name(), None));
        }
        tracing::debug!(session = %session.log_id(), route = %session.route, "told the client its lists changed");
    }
}
