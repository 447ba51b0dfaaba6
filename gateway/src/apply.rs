//! A config, from whichever source, swapped in: its snapshot is built, served, announced to
//! sessions, and what could not be built goes to the [`Report`] `/status` shows. Both
//! sources (`source`, polled, and `kube_source`, watched) end here, so neither needs the other.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use manifold_api::GatewayConfig;

use crate::Gateway;
use crate::metrics::{BreakerLabels, Load, LoadLabels};
use crate::policy::cache::Store;
use crate::snapshot::{ClientPool, Snapshot};

/// What the last load reported, for `/status`.
#[derive(Default, serde::Serialize)]
pub struct Report {
    /// What compile said about each object (local mode only: in a cluster, status holds it).
    pub objects: Vec<manifold_api::outcome::Outcome>,
    /// Routes or mounts the gateway could not build from the config, and why.
    pub errors: Vec<String>,
}

/// Serves `config`, whichever source it came from, unless it is the config served already:
/// builds its snapshot (reusing the pool's upstream clients), swaps it in, tells sessions
/// what changed, and marks the gateway ready. The same content at another generation is
/// taken too: the operator republishes a config at a new generation and waits for every
/// replica to say it serves that one.
pub(crate) fn apply(gateway: &Gateway, config: GatewayConfig, pool: &mut ClientPool) {
    let served = gateway.ready.load(Ordering::Acquire).then(|| gateway.snapshot.load_full());
    if served.is_some_and(|s| s.config.hash == config.hash && s.config.generation == config.generation) {
        gateway.metrics.config_loads.inc(&LoadLabels { outcome: Load::Unchanged });
        return;
    }
    let (generation, routes) = (config.generation, config.routes.len());
    let (snapshot, errors) = Snapshot::build(config, pool);
    for error in &errors {
        tracing::error!(%error, "left out of the config");
    }
    gateway.report.lock().expect("report lock").errors = errors;
    let old = gateway.snapshot.swap(Arc::new(snapshot));
    let new = gateway.snapshot.load();
    forget_changed(&gateway.cache, &old, &new);
    crate::mcp::announce_changes(gateway, &old, &new);
    // Every served upstream's breaker as it stands: a client built anew starts closed.
    for route in new.routes() {
        for mount in &route.mounts {
            let labels = BreakerLabels { namespace: &route.config.namespace, mount: &mount.config.server };
            gateway.metrics.breaker_state.set(&labels, mount.client.guard.breaker.state() as i64);
        }
    }
    gateway.ready.store(true, Ordering::Release);
    gateway.metrics.config_generation.set(generation as i64);
    gateway.metrics.config_loads.inc(&LoadLabels { outcome: Load::Applied });
    tracing::info!(generation, routes, "serving new config");
}

/// Empties what a new config makes stale, and nothing else: everything of a route that is
/// gone or whose caching rules changed; the merged lists of a route whose config changed
/// otherwise (its mounts, or who may see what); the results of each mount whose config
/// changed or that is gone. Results of the mounts left as they were stay.
fn forget_changed(cache: &Store, old: &Snapshot, new: &Snapshot) {
    if cache.bytes() == 0 {
        return;
    }
    let now: std::collections::HashMap<_, _> = new.routes().map(|r| (r.config.key(), r)).collect();
    for before in old.routes() {
        let (namespace, name) = (&*before.config.namespace, &*before.config.name);
        let Some(after) = now.get(&before.config.key()) else {
            cache.forget_route(namespace, name);
            continue;
        };
        if after.config == before.config {
            continue;
        }
        if after.config.caching != before.config.caching {
            cache.forget_route(namespace, name);
            continue;
        }
        cache.forget_lists(namespace, name);
        for mount in &before.mounts {
            if !after.mounts.iter().any(|m| m.key == mount.key && m.config == mount.config) {
                cache.forget_mount(namespace, name, &mount.key);
            }
        }
    }
}
