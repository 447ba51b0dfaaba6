//! One reconcile: the world as the watches see it (McpServers, McpRoutes, the Secrets and
//! ConfigMaps they reference, fetched documents) in; the published config and every
//! object's status out, through the API server. Deciding is pure ([`plan`]: compile, the
//! same pure function `render` runs, then judging and diffing); the [`Reconciler`] only
//! reads what is published and carries the plan out while leading. Nothing is written that
//! would not change anything: the config only when its hash moves, a status only when it
//! differs (timestamps aside).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::runtime::events::{Recorder, Reporter};
use manifold_api::publish::{GENERATION_ANNOTATION, HASH_ANNOTATION, RELEASE_LABEL};

use crate::leader::Leadership;
use crate::probe::Probes;
use crate::programmed::Replica;
use crate::publish::{PublishError, Published, fingerprint, publish, while_leading};
use crate::spans;
use crate::status::{patch_route, patch_server};
use opentelemetry::context::FutureExt;
use opentelemetry::{Context, KeyValue};

mod judge;
pub mod plan;
mod world;
pub mod writes;

use judge::Change;
pub use plan::{Memory, Plan, Target, plan};
pub use world::{References, World, references};
use writes::{Status, StatusWrite};

/// Reconciles worlds into the cluster, remembering what it last published.
pub struct Reconciler {
    client: Client,
    /// The Helm release: names the config Secrets.
    release: String,
    /// The gateway's namespace, where the config is published.
    namespace: String,
    /// Where clients reach the gateways (a route's `status.url` is this and its path).
    pub gateway_url: String,
    /// Asked before every write: only the leader writes.
    pub leadership: Leadership,
    /// What this replica published and wrote: what the next plan is measured against.
    memory: Memory,
    /// Whether what was already published has been read (see `load_published`).
    loaded: bool,
    /// Each shard there as far as this replica knows (name, [`fingerprint`]): what the
    /// watch of the config Secrets is compared with.
    shards: BTreeMap<String, String>,
    /// Whether the published Secrets must be checked against the config even though its
    /// hash did not move (one was changed or deleted behind this replica's back).
    verify: bool,
    /// Records Kubernetes Events on condition transitions.
    events: Recorder,
}

/// What one reconcile did.
#[derive(Debug, Default)]
pub struct Report {
    /// Config generation after it.
    pub generation: u64,
    /// None when the config's hash did not move (nothing was even read).
    pub published: Option<Published>,
    /// Status writes.
    pub statuses: usize,
    /// Status writes the API server refused (each logged): reconcile again soon.
    pub failed: usize,
    /// How long compile took.
    pub compile: std::time::Duration,
    /// Served routes not Programmed yet: reconcile again soon to see the replicas catch up.
    pub pending: usize,
    /// For each route that became Programmed now, how long after its change.
    pub programmed_after: Vec<std::time::Duration>,
}

impl Reconciler {
    pub fn new(client: Client, release: &str, namespace: &str) -> Self {
        let reporter = Reporter { controller: crate::publish::FIELD_MANAGER.into(), instance: None };
        let events = Recorder::new(client.clone(), reporter);
        Reconciler {
            client,
            release: release.into(),
            namespace: namespace.into(),
            gateway_url: format!("http://{release}-gateway.{namespace}.svc:8080"),
            leadership: Leadership::always(),
            memory: Memory::default(),
            loaded: false,
            shards: BTreeMap::new(),
            verify: false,
            events,
        }
    }

    /// Plans the reconcile of `world` ([`plan`]), publishes the config if it changed, and
    /// writes the statuses that changed. `replicas` are the ready gateway replicas and what
    /// they serve, `probes` what remote servers offer; `now` stamps conditions that flip.
    pub async fn reconcile(
        &mut self,
        world: &World,
        replicas: &[Replica],
        probes: &Probes,
        now: &Time,
    ) -> Result<Report, PublishError> {
        if !self.loaded {
            self.load_published().await?;
        }
        let target = Target { release: &self.release, namespace: &self.namespace, gateway_url: &self.gateway_url };
        let Plan {
            floor,
            config,
            shards,
            changed,
            changed_in,
            pending,
            programmed_after,
            compile,
            writes,
            confirmed,
            objects,
        } = {
            let _compiling = spans::step("compile").attach();
            plan(&self.memory, target, world, replicas, probes, now, std::time::Instant::now())
        };
        (self.memory.floor, self.memory.floor_hash) = floor;
        let published = if changed || self.verify {
            // Raised first: should this publish be cut short, the next one goes on above it.
            (self.memory.floor, self.memory.floor_hash) = (config.generation, Some(config.hash.clone()));
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
            let publishing = spans::step("publish");
            let published = publish(&api, &self.release, &shards, &self.leadership, &mut self.shards)
                .with_context(publishing.clone())
                .await
                .inspect_err(|error| spans::failed(&publishing, error.to_string()))?;
            spans::note(&publishing, KeyValue::new("manifold.config.generation", config.generation as i64));
            spans::note(&publishing, KeyValue::new("manifold.config.bytes", published.bytes as i64));
            self.verify = false;
            Some(published)
        } else {
            None
        };
        // Only now is this what the gateways are given.
        let generation = config.generation;
        self.memory.served = Some(config);
        self.memory.changed_in = changed_in;
        for object in &confirmed {
            self.memory.written.remove(object);
        }
        let (statuses, failed) = self.write_statuses(writes).await?;
        // Objects gone: nothing to remember for them.
        self.memory.written.retain(|object, _| objects.contains(object));

        Ok(Report { generation, published, statuses, failed, compile, pending, programmed_after })
    }

    /// Writes the planned statuses, each followed by its Events; returns how many were
    /// written and how many the API server refused (logged; one object's refusal stops no
    /// one else's status).
    async fn write_statuses(&mut self, writes: Vec<StatusWrite>) -> Result<(usize, usize), PublishError> {
        let (mut written, mut failed) = (0, 0);
        for write in writes {
            let StatusWrite { object, regarding, status, written: remembered, events } = write;
            let name = &object.name;
            let kind = match &status {
                Status::Server(_) => "McpServer",
                Status::Route(_) => "McpRoute",
            };
            let writing = Context::map_current(|current| {
                spans::child(current, "status write", spans::object(kind, &object.namespace, &object.name))
            });
            let patched = match &status {
                Status::Server(status) => {
                    let api = Api::namespaced(self.client.clone(), &object.namespace);
                    while_leading(&self.leadership, patch_server(&api, name, status))
                        .with_context(writing.clone())
                        .await
                }
                Status::Route(status) => {
                    let api = Api::namespaced(self.client.clone(), &object.namespace);
                    while_leading(&self.leadership, patch_route(&api, name, status)).with_context(writing.clone()).await
                }
            };
            if let Err(error) = &patched {
                spans::failed(&writing, error.to_string());
            }
            spans::end(&writing);
            match patched {
                Ok(()) => {
                    self.memory.written.insert(object, remembered);
                    // Best effort: a lost Event loses nothing. Only the leader speaks; and not
                    // past its time.
                    for event in &events {
                        let published =
                            while_leading(&self.leadership, self.events.publish(&event.event(), &regarding)).await;
                        if let Err(error) = published {
                            tracing::debug!(%error, "an Event could not be recorded");
                        }
                    }
                    written += 1;
                }
                Err(PublishError::NotLeading) => return Err(PublishError::NotLeading),
                // Deleted meanwhile: its watch event follows.
                Err(PublishError::Api(kube::Error::Api(status))) if status.code == 404 => {}
                Err(error) => {
                    tracing::warn!(%object, %error, "cannot write the status; retrying soon");
                    failed += 1;
                }
            }
        }
        Ok((written, failed))
    }

    /// Forgets what this replica published and wrote, for when it leads again after another
    /// replica did: the next reconcile starts from what is published.
    pub fn forget(&mut self) {
        self.loaded = false;
        self.memory.served = None;
        self.shards.clear();
        self.memory.written.clear();
        self.memory.changed_in.clear();
    }

    /// A config Secret changed (`fingerprint` is its [`fingerprint`], None when it was
    /// deleted): whether that is not what this replica published, in which case the next
    /// reconcile checks the Secrets and writes what is missing or wrong.
    pub fn shard_changed(&mut self, name: &str, fingerprint: Option<&str>) -> bool {
        let differs = self.shards.get(name).map(String::as_str) != fingerprint;
        self.verify |= differs;
        differs
    }

    /// The config Secrets were listed anew (deletions during a gap show no event): the next
    /// reconcile checks them.
    pub fn check_published(&mut self) {
        self.verify = true;
    }

    /// Reads what is published already (by another replica, or by this operator before a
    /// restart), so that generations go on from it and routes that are invalid now keep
    /// their last valid versions instead of vanishing from the gateways.
    async fn load_published(&mut self) -> Result<(), PublishError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let selector = format!("{RELEASE_LABEL}={}", self.release);
        let listed = secrets.list(&ListParams::default().labels(&selector)).await?;
        let annotation = |secret: &Secret, key: &str| secret.metadata.annotations.as_ref()?.get(key).cloned();
        // Even shards of a publish cut short count: generations go on above them.
        let highest = listed
            .items
            .iter()
            .filter_map(|s| {
                Some((annotation(s, GENERATION_ANNOTATION)?.parse::<u64>().ok()?, annotation(s, HASH_ANNOTATION)))
            })
            .max();
        if let Some((generation, hash)) = highest
            && generation >= self.memory.floor
        {
            (self.memory.floor, self.memory.floor_hash) = (generation, hash);
        }
        self.shards = listed
            .items
            .iter()
            .filter_map(|s| Some((s.metadata.name.clone()?, fingerprint(s.metadata.annotations.as_ref()?)?)))
            .collect();
        match manifold_api::publish::assemble(&listed.items) {
            Ok(config) => {
                let now = std::time::Instant::now();
                for route in &config.routes {
                    let change = Change { generation: config.generation, at: now, programmed: false };
                    self.memory.changed_in.insert(route.key(), change);
                }
                tracing::info!(generation = config.generation, "going on from the published config");
                self.memory.served = Some(config);
            }
            Err(manifold_api::publish::AssembleError::Missing) => {}
            Err(error) => tracing::warn!(%error, "the published config cannot be read; publishing it anew"),
        }
        self.loaded = true;
        Ok(())
    }
}

#[cfg(test)]
mod same_compile;
#[cfg(test)]
mod tests;
