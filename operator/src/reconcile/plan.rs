//! The plan of one reconcile: the world, what this replica published and wrote before
//! ([`Memory`]), the gateway replicas and the probe results in; the config, its shards, the
//! status writes and their Events out. Pure: nothing is read from or written to the API
//! server here (the clock is read only to time compile); [`super::Reconciler`] carries the
//! plan out while leading.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use manifold_api::compile::compile;
use manifold_api::outcome::{Kind, ObjectRef};
use manifold_api::publish::{TooLarge, secrets};
use manifold_api::{Compiled, GatewayConfig, ObjectKey};

use super::judge::{Change, judge_programmed, judge_servers, refuse_too_large};
use super::world::World;
use super::writes::{Served, StatusWrite, Written, status_writes};
use crate::probe::{self, Probes};
use crate::programmed::Replica;

/// What this replica published and wrote before: what a plan is measured against.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// The config the gateways serve (compile keeps invalid routes at their last valid version).
    pub served: Option<GatewayConfig>,
    /// The highest generation known to be published or served (and the hash of the config
    /// published at it, when known): generations only go up, even after a publish was cut
    /// short or the Secrets were deleted.
    pub floor: u64,
    pub floor_hash: Option<String>,
    /// The status last written to each object: until the watch shows it, the object's own
    /// copy is older, and writing the same again would be a write for nothing.
    pub written: BTreeMap<ObjectRef, Written>,
    /// Per served route, the generation that last changed it (`Programmed` waits for every
    /// replica to serve that one or later), when that was, and whether it is Programmed yet.
    pub changed_in: BTreeMap<ObjectKey, Change>,
}

/// Where the config goes.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The Helm release: names the config Secrets.
    pub release: &'a str,
    /// The gateway's namespace, where the config is published.
    pub namespace: &'a str,
    /// Where clients reach the gateways (a route's `status.url` is this and its path).
    pub gateway_url: &'a str,
}

/// What one reconcile is to do.
#[derive(Debug)]
pub struct Plan {
    /// The generation floor, raised to what the replicas serve: (generation, its hash when known).
    pub floor: (u64, Option<String>),
    /// The config, its generation above every one published before.
    pub config: GatewayConfig,
    /// The config as Secrets.
    pub shards: Vec<Secret>,
    /// Whether the config is not the one served (its hash or generation moved).
    pub changed: bool,
    /// The generation in which each route of `config` last changed.
    pub changed_in: BTreeMap<ObjectKey, Change>,
    /// Served routes not Programmed yet.
    pub pending: usize,
    /// For each route that became Programmed now, how long after its change.
    pub programmed_after: Vec<Duration>,
    /// How long compile took.
    pub compile: Duration,
    /// The statuses that would change something, in the order of compile's outcomes.
    pub writes: Vec<StatusWrite>,
    /// Objects whose status as written the watch shows now, or has moved past.
    pub confirmed: Vec<ObjectRef>,
    /// Every object compiled: what is remembered for any other is forgotten.
    pub objects: BTreeSet<ObjectRef>,
}

/// Plans a reconcile of `world`. `replicas` are the ready gateway replicas and what they
/// serve (for `Programmed`), `probes` what remote servers offer (for `Ready`, the counts,
/// and name collisions); `now` stamps conditions that flip, and `at` is the same instant
/// for measuring how long routes took to be Programmed.
pub fn plan(
    memory: &Memory,
    target: Target,
    world: &World,
    replicas: &[Replica],
    probes: &Probes,
    now: &Time,
    at: Instant,
) -> Plan {
    // A gateway may serve a generation whose Secrets are gone: never publish below it.
    let mut floor = (memory.floor, memory.floor_hash.clone());
    if let Some(served) = replicas.iter().filter_map(|r| r.serving.as_ref()).map(|s| s.generation).max()
        && served > floor.0
    {
        floor = (served, None);
    }
    let started = Instant::now();
    let Compiled { config, mut outcomes, servers } =
        compile(&world.inputs(probe::discovered(probes)), memory.served.as_ref());
    let compile_time = started.elapsed();
    let (config, shards, too_large) = fit(memory.served.as_ref(), &floor, target, config);
    for outcome in outcomes.iter_mut().filter(|o| o.object.kind == Kind::McpRoute) {
        if let Some(error) = too_large.get(&outcome.object.namespace) {
            let (namespace, name) = (&outcome.object.namespace, &outcome.object.name);
            let kept = config.routes.iter().any(|r| r.namespace == *namespace && r.name == *name);
            refuse_too_large(outcome, error, kept);
        }
    }
    let (offered, tool_names) = judge_servers(&mut outcomes, &servers, probes);
    let mut changed_in = changes(memory, &config, at);
    let (pending, programmed_after) = judge_programmed(&config, &mut changed_in, &mut outcomes, replicas, at);
    let changed = memory.served.as_ref().map(|c| (&c.hash, c.generation)) != Some((&config.hash, config.generation));
    let served =
        Served { config: &config, offered: &offered, tool_names: &tool_names, gateway_url: target.gateway_url };
    let (writes, confirmed) = status_writes(&memory.written, world, &outcomes, &served, now);
    let objects = outcomes.into_iter().map(|o| o.object).collect();
    Plan {
        floor,
        config,
        shards,
        changed,
        changed_in,
        pending,
        programmed_after,
        compile: compile_time,
        writes,
        confirmed,
        objects,
    }
}

/// `config` as shards, with its generation above every one published before (`floor`). A
/// tenant whose routes alone are too large for a Secret keeps what the gateways serve for
/// it now (else nothing), and is returned: its routes say so, and everyone else's are
/// published.
fn fit(
    served: Option<&GatewayConfig>,
    floor: &(u64, Option<String>),
    target: Target,
    mut config: GatewayConfig,
) -> (GatewayConfig, Vec<Secret>, BTreeMap<String, TooLarge>) {
    let mut too_large: BTreeMap<String, TooLarge> = BTreeMap::new();
    loop {
        // Below the floor, or at it with other content (a publish cut short, then the
        // world changed back): a generation of its own.
        let same_as_served = served.is_some_and(|c| c.hash == config.hash);
        let other_at_floor = match &floor.1 {
            Some(hash) => *hash != config.hash,
            None => !same_as_served,
        };
        if config.generation < floor.0 || (config.generation == floor.0 && other_at_floor) {
            config.generation = floor.0 + 1;
        }
        let error = match secrets(&config, target.release, target.namespace) {
            Ok(shards) => return (config, shards, too_large),
            Err(error) => error,
        };
        let tenant = error.namespace.clone();
        // Once only: should even what is served not fit any more, the tenant gets nothing.
        let kept: Vec<_> = match too_large.contains_key(&tenant) {
            false => served.iter().flat_map(|c| &c.routes).filter(|r| r.namespace == tenant).cloned().collect(),
            true => Vec::new(),
        };
        let mut routes: Vec<_> = config.routes.into_iter().filter(|r| r.namespace != tenant).chain(kept).collect();
        routes.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        config = GatewayConfig::new(routes, served);
        too_large.insert(tenant, error);
    }
}

/// The generation in which each route of `config` last changed (a route changed now, at `at`).
fn changes(memory: &Memory, config: &GatewayConfig, at: Instant) -> BTreeMap<ObjectKey, Change> {
    let before: BTreeMap<(&str, &str), &manifold_api::config::RouteConfig> =
        memory.served.iter().flat_map(|c| &c.routes).map(|r| ((r.namespace.as_str(), r.name.as_str()), r)).collect();
    let mut changed_in = BTreeMap::new();
    for route in &config.routes {
        let key = route.key();
        let same = before.get(&(route.namespace.as_str(), route.name.as_str())) == Some(&route);
        let change = match memory.changed_in.get(&key) {
            Some(change) if same => change.clone(),
            _ => Change { generation: config.generation, at, programmed: false },
        };
        changed_in.insert(key, change);
    }
    changed_in
}

#[cfg(test)]
mod tests;
