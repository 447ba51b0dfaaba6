//! A config, from whichever source, swapped in: its snapshot is built, served, announced to
//! sessions, and what could not be built goes to the [`Report`] `/status` shows. Both
//! sources (`source`, polled, and `kube_source`, watched) end here, so neither needs the other.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use manifold_api::GatewayConfig;

use crate::Gateway;
use crate::metrics::{BreakerLabels, Load, LoadLabels};
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
    crate::mcp::announce_changes(gateway, &old, &gateway.snapshot.load());
    // Every served upstream's breaker as it stands: a client built anew starts closed.
    for route in gateway.snapshot.load().routes() {
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
