//! The controller loop: changes from the watches ([`crate::watches`]), the Lease's terms,
//! probe answers and document refreshes in; reconciles out. Changes mark the world dirty;
//! once a burst has been quiet for [`DEBOUNCE`](crate::debounce::DEBOUNCE), the replica
//! holding the Lease gathers the world (the cached objects, the Secrets and ConfigMaps they
//! reference, documents, probes, the gateway replicas) and reconciles it
//! ([`crate::reconcile`]). Followers keep their caches warm.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use manifold_api::documents::MIN_REFRESH;
use manifold_api::outcome::Kind;
use manifold_api::resources::{McpRoute, McpServer};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::debounce::{Debounce, sleep_until};
use crate::documents::Fetcher;
use crate::leader::Leadership;
use crate::metrics::{Metrics, Reconciled};
use crate::probe::{PROBE_TIMEOUT, Prober};
use crate::programmed::{self, Replica};
use crate::publish::PublishError;
use crate::reconcile::{Reconciler, References, World, references};
use crate::spans;
use crate::watches::{Cache, Changed, Referenced};
use manifold_runtime::backoff::Backoff;
use opentelemetry::context::FutureExt;

/// How soon routes not Programmed yet are looked at again; the wait doubles, up to
/// [`MAX_RETRY`], while nothing moves (gateways that never
/// answer cost little).
pub const PROGRAMMED_POLL: Duration = Duration::from_secs(2);
/// How soon a failed reconcile is tried again; the wait doubles, up to
/// [`MAX_RETRY`].
pub const RETRY: Duration = Duration::from_secs(5);
/// The longest the poll and retry waits grow to.
pub const MAX_RETRY: Duration = Duration::from_secs(60);
/// How long a reconcile waits for what it reads (referenced objects, the gateway replicas):
/// the client's own timeout is long, for watches.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The controller's state between events.
pub(crate) struct Controller {
    pub(crate) client: Client,
    /// The gateway Service, and its namespace (where the config is published).
    pub(crate) gateways: String,
    pub(crate) namespace: String,
    pub(crate) servers: Cache,
    pub(crate) routes: Cache,
    pub(crate) reconciler: Reconciler,
    pub(crate) leadership: Leadership,
    /// This replica's name in the Lease.
    pub(crate) identity: String,
    /// The term this replica leads in (None: following).
    pub(crate) term: Option<u64>,
    /// The Secrets and ConfigMaps referenced, worked out again after objects change.
    pub(crate) referenced: Option<References>,
    pub(crate) secrets: Referenced<Secret>,
    pub(crate) config_maps: Referenced<ConfigMap>,
    pub(crate) fetcher: Fetcher,
    /// Probes remote servers in the background; told what to probe by each reconcile.
    pub(crate) prober: Prober,
    /// The gateway replicas as last found (kept when they cannot be listed).
    pub(crate) replicas: Vec<Replica>,
    /// Answers each replica missed in a row, by admin address.
    pub(crate) misses: std::collections::BTreeMap<String, u32>,
    pub(crate) debounce: Debounce,
    pub(crate) poll: Backoff,
    pub(crate) retry: Backoff,
    pub(crate) metrics: Metrics,
}

impl Controller {
    /// Runs the loop until `shutdown` resolves: `events` from the watches, `leadership`
    /// telling of terms, `listed` once the caches hold what the API server has (`ready`).
    pub(crate) async fn run(
        mut self,
        mut events: impl Stream<Item = Changed> + Unpin,
        mut leadership: Leadership,
        listed: &Notify,
        ready: &AtomicBool,
        shutdown: impl Future<Output = ()>,
    ) {
        self.debounce.changed(Instant::now());
        let mut refetch = tokio::time::interval(MIN_REFRESH);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                Some(changed) = events.next() => self.changed(changed),
                () = listed.notified() => {}
                () = leadership.changed() => self.leadership_changed(),
                () = self.prober.changed() => self.debounce.changed(Instant::now()),
                _ = refetch.tick() => {
                    let now = std::time::Instant::now();
                    if self.fetcher.documents.due(now) {
                        self.debounce.changed(Instant::now());
                    }
                }
                // Never before the caches have listed: an empty cache would publish an empty config.
                _ = sleep_until(self.debounce.due), if self.term.is_some() && ready.load(Ordering::Acquire) => {
                    // A long reconcile (probes, many statuses) must not outlast the pod's grace period.
                    tokio::select! {
                        () = self.reconcile() => {}
                        () = &mut shutdown => break,
                    }
                }
                () = &mut shutdown => break,
            }
        }
    }

    fn changed(&mut self, changed: Changed) {
        let (servers, routes) = (&self.servers, &self.routes);
        let current =
            || references(&servers.typed::<McpServer>(Kind::McpServer).0, &routes.typed::<McpRoute>(Kind::McpRoute).0);
        // A Secret or ConfigMap matters only if something references it.
        let relevant = match &changed {
            Changed::Object => {
                self.referenced = None;
                true
            }
            Changed::Secret(key) => {
                self.secrets.changed(key);
                self.referenced.get_or_insert_with(current).secrets.contains(key)
            }
            Changed::ConfigMap(key) => {
                self.config_maps.changed(key);
                self.referenced.get_or_insert_with(current).config_maps.contains(key)
            }
            // Deletions during a relist gap showed no event: read everything again.
            Changed::SecretsListed => {
                self.secrets.clear();
                true
            }
            Changed::ConfigMapsListed => {
                self.config_maps.clear();
                true
            }
            Changed::Shard(name, fingerprint) => self.reconciler.shard_changed(name, fingerprint.as_deref()),
            Changed::ShardsListed => {
                self.reconciler.check_published();
                true
            }
        };
        if relevant {
            self.debounce.changed(Instant::now());
        }
    }

    fn leadership_changed(&mut self) {
        let identity = &self.identity;
        let term = self.leadership.term();
        self.metrics.leader.set(i64::from(term.is_some()));
        if term.is_some() && term != self.term {
            tracing::info!(%identity, "leading: publishing and writing status from now on");
            // Another replica may have led meanwhile: start again from what is published.
            self.reconciler.forget();
            self.secrets.clear();
            self.config_maps.clear();
            self.debounce.now(Instant::now());
        } else if term.is_none() && self.term.is_some() {
            tracing::info!(%identity, "no longer leading: following");
        }
        self.term = term;
    }

    /// Gathers the world and reconciles it, and says when to look again: in a trace of its
    /// own ([`spans`]).
    async fn reconcile(&mut self) {
        let started = std::time::Instant::now();
        let pass = spans::reconcile();
        self.reconcile_pass().with_context(pass.clone()).await;
        self.metrics.reconcile_seconds.observe(started.elapsed().as_secs_f64());
    }

    async fn reconcile_pass(&mut self) {
        self.debounce.started();
        // Its writes stop with the term it begins in.
        self.reconciler.leadership = self.leadership.pinned();
        let resolving = spans::step("resolve");
        let world = self.resolve().with_context(resolving.clone()).await;
        let Some(world) = world else {
            spans::failed(&resolving, "cannot read what the objects reference");
            return;
        };
        drop(resolving);
        // Servers new or changed since the last reconcile (all of them, the first time) are
        // worth a wait: compile checks tool names for collisions before a route is served,
        // and a status says what they answered. A silent one holds up this reconcile only.
        let servers = world.servers_to_probe();
        let fresh = self.prober.want(&servers);
        if !fresh.is_empty() {
            self.prober.settled(&fresh, PROBE_TIMEOUT + Duration::from_secs(1)).await;
        }
        let probes = self.prober.probes(&servers);
        let now = Time(Timestamp::now());
        match self.reconciler.reconcile(&world, &self.replicas, &probes, &now).await {
            Ok(report) => {
                let metrics = &self.metrics;
                metrics.reconciled(Reconciled::Ok);
                metrics.compile_seconds.observe(report.compile.as_secs_f64());
                for lag in &report.programmed_after {
                    metrics.programmed_lag_seconds.observe(lag.as_secs_f64());
                }
                if let Some(published) = &report.published {
                    metrics.publish_bytes.set(published.bytes as i64);
                }
                tracing::info!(generation = report.generation, published = ?report.published, statuses = report.statuses, failed = report.failed, "reconciled");
                self.debounce.succeeded();
                if report.failed > 0 {
                    // Tried again with a backoff, but not holding other changes back: one
                    // object always refused must not slow everyone down.
                    self.metrics.reconciled(Reconciled::Error);
                    self.debounce.poll(Instant::now(), self.retry.take());
                    return;
                }
                self.retry.reset();
                // Look again while replicas catch up: soon after a change, then less and
                // less often while nothing moves.
                if report.published.is_some() || !report.programmed_after.is_empty() {
                    self.poll.reset();
                }
                if report.pending > 0 {
                    self.debounce.poll(Instant::now(), self.poll.take());
                }
            }
            // Whoever leads next starts afresh; should it be this replica again, at once.
            Err(PublishError::NotLeading) => {
                tracing::warn!("the term this reconcile began in ended; its writes stopped");
                // Follow, or lead afresh in the new term (a lapse sends no change at once).
                self.leadership_changed();
            }
            Err(error) => self.failed(&error.to_string()),
        }
    }

    /// The world to reconcile: the objects and what they reference, the documents, the
    /// gateway replicas. None when what is referenced cannot be read (the failure is counted).
    async fn resolve(&mut self) -> Option<World> {
        let mut world = match self.gather().await {
            Ok(world) => world,
            Err(error) => {
                // Not knowing a Secret is not its absence: compile would call it missing.
                self.failed(&format!("cannot read what the objects reference: {error}"));
                return None;
            }
        };
        for (url, error) in self.fetcher.refresh(&world.servers).await.kept {
            tracing::warn!(%url, %error, "refetching an OpenAPI document failed; keeping the last one");
        }
        world.documents = self.fetcher.documents.documents();
        let found = programmed::replicas(&self.client, &self.namespace, &self.gateways, "admin");
        match crate::in_time(READ_TIMEOUT, found).await {
            Ok(found) => self.replicas = programmed::forgive_silence(&self.replicas, found, &mut self.misses),
            Err(error) => tracing::warn!(%error, "cannot list the gateway's EndpointSlices; going by the last list"),
        }
        Some(world)
    }

    fn failed(&mut self, why: &str) {
        spans::failed(&opentelemetry::Context::current(), why.to_owned());
        self.metrics.reconciled(Reconciled::Error);
        let wait = self.retry.take();
        tracing::error!(retry_in = ?wait, "reconcile failed: {why}");
        self.debounce.retry(Instant::now(), wait);
    }

    /// The world: the cached objects, and the Secrets and ConfigMaps they reference.
    async fn gather(&mut self) -> kube::Result<World> {
        let (servers, mut unreadable) = self.servers.typed::<McpServer>(Kind::McpServer);
        let (routes, unreadable_routes) = self.routes.typed::<McpRoute>(Kind::McpRoute);
        let of = |kind: Kind| {
            unreadable
                .iter()
                .chain(&unreadable_routes)
                .map(|u| &u.object)
                .filter(|o| o.kind == kind)
                .collect::<Vec<_>>()
        };
        let mut unreadable_seen = self.servers.seen(&of(Kind::McpServer));
        unreadable_seen.extend(self.routes.seen(&of(Kind::McpRoute)));
        unreadable.extend(unreadable_routes);
        let wanted = references(&servers, &routes);
        let read = async {
            let secrets = self.secrets.read(&self.client, &wanted.secrets).await?;
            let config_maps = self.config_maps.read(&self.client, &wanted.config_maps).await?;
            Ok::<_, kube::Error>((secrets, config_maps))
        };
        let (secrets, config_maps) = crate::in_time(READ_TIMEOUT, read).await?;
        Ok(World { servers, routes, secrets, config_maps, unreadable, unreadable_seen, ..World::default() })
    }
}
