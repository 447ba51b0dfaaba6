//! `manifold-operator run`: the controller loop.
//!
//! Changes come from the watches ([`crate::watches`]) and mark the world dirty. Once a burst
//! has been quiet for [`DEBOUNCE`], the replica holding the Lease gathers the world and
//! reconciles it ([`crate::reconcile`]): it reads the Secrets and ConfigMaps the objects
//! reference, then publishes and writes statuses. Followers keep their caches warm, and
//! take over when the Lease expires or is released. Meanwhile the permissions the operator
//! needs are checked ([`crate::permissions`]), and `/healthz`, `/readyz` and `/metrics` are
//! served on the admin address ([`crate::admin`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client, Resource};
use manifold_api::documents::MIN_REFRESH;
use manifold_api::egress::Egress;
use manifold_api::outcome::Kind;
use manifold_api::resources::{McpRoute, McpServer};
use tokio::time::Instant;

use crate::admin::{self, Metrics};
use crate::backoff::Backoff;
use crate::debounce::{Debounce, sleep_until};
use crate::documents::Fetcher;
use crate::leader::{self, Elector, Leadership};
use crate::permissions::{self, Checker};
use crate::probe::{PROBE_TIMEOUT, Prober};
use crate::programmed::{self, Replica};
use crate::publish::PublishError;
use crate::reconcile::{Reconciler, References, World, references};
use crate::watches::{self, Cache, Changed, Referenced};

/// How soon routes not Programmed yet are looked at again; the wait doubles, up to
/// [`MAX_RETRY`](crate::backoff::MAX_RETRY), while nothing moves (gateways that never answer cost little).
pub const PROGRAMMED_POLL: Duration = Duration::from_secs(2);
/// How soon a failed reconcile is tried again; the wait doubles, up to [`MAX_RETRY`](crate::backoff::MAX_RETRY).
pub const RETRY: Duration = Duration::from_secs(5);
/// How long a reconcile waits for what it reads (referenced objects, the gateway replicas):
/// the client's own timeout is long, for watches.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The gateway's namespace, where the config is published and the Lease is held.
    /// Default: `POD_NAMESPACE`, else the service account's namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// The Helm release: names the config Secrets and the Lease.
    #[arg(long, env = "MANIFOLD_RELEASE", default_value = "manifold")]
    pub release: String,
    /// Watch only these namespaces (repeatable); default: all.
    #[arg(long = "watch-namespace", value_name = "NAMESPACE")]
    pub watch_namespaces: Vec<String>,
    /// This replica's name in the Lease. Default: `POD_NAME`, else the host name.
    #[arg(long)]
    pub identity: Option<String>,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, default_value = "0.0.0.0:9091")]
    pub admin_listen: SocketAddr,
    /// Where clients reach the gateways, for routes' `status.url`. Default: the gateway
    /// Service, `http://<release>-gateway.<namespace>.svc:8080`.
    #[arg(long)]
    pub gateway_url: Option<String>,
    /// Let spec URLs reach link-local and cloud-metadata addresses (refused by default).
    #[arg(long)]
    pub allow_link_local_upstreams: bool,
}

/// Runs the controller until `shutdown` resolves (SIGTERM or Ctrl-C, in the binary); the
/// Lease is then given up, so another replica takes over at once.
pub async fn run(args: &RunArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let config = kube::Config::infer().await.context("cannot configure a Kubernetes client")?;
    // Every 403 the API server answers the operator brings a permission check.
    let forbidden = Arc::new(tokio::sync::Notify::new());
    let client =
        permissions::noticing_forbidden(config.clone(), &forbidden).context("cannot configure a Kubernetes client")?;
    ensure_api(&client).await?;
    let namespace = match &args.namespace {
        Some(namespace) => namespace.clone(),
        None => std::env::var("POD_NAMESPACE")
            .ok()
            .or_else(|| std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok())
            .map(|n| n.trim().to_owned())
            .context("no --namespace, POD_NAMESPACE or service account namespace: say where the gateways run")?,
    };
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("manifold-operator-{}", std::process::id()));

    let metrics = Metrics::default();
    let scope = watches::scope(&args.watch_namespaces);
    // The reviews' own client: a review refused must not bring another.
    let reviews = Client::try_from(config).context("cannot configure a Kubernetes client")?;
    let needed = permissions::needed(&scope, &namespace);
    let checker = Checker::spawn(reviews, needed, forbidden, metrics.missing_permissions.clone());
    let ready = Arc::new(AtomicBool::new(false));
    let admin = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.admin_listen))?;
    let (servers, server_events) = watches::objects::<McpServer>(&client, &scope);
    let (routes, route_events) = watches::objects::<McpRoute>(&client, &scope);
    let caches = [servers.clone(), routes.clone()];
    tokio::spawn(admin::serve(admin, Arc::clone(&ready), caches, checker.missing(), metrics.registry.clone()));
    let mut events = stream::select_all([
        server_events,
        route_events,
        watches::names::<Secret>(&client, &scope, Changed::Secret, Changed::SecretsListed),
        watches::names::<ConfigMap>(&client, &scope, Changed::ConfigMap, Changed::ConfigMapsListed),
        watches::shards(&client, &namespace, &args.release),
    ]);
    let listed = Arc::new(tokio::sync::Notify::new());
    {
        // Ready once the caches hold what the API server has (and the loop is told).
        let (servers, routes, ready, listed) =
            (servers.clone(), routes.clone(), Arc::clone(&ready), Arc::clone(&listed));
        tokio::spawn(async move {
            if servers.wait_until_ready().await.is_ok() && routes.wait_until_ready().await.is_ok() {
                ready.store(true, Ordering::Release);
                listed.notify_one();
            }
        });
    }

    let elector =
        Elector::new(Api::namespaced(client.clone(), &namespace), &format!("{}-operator", args.release), &identity);
    let stop = Arc::new(tokio::sync::Notify::new());
    let (mut leadership, keeper) = leader::keep(elector, {
        let stop = Arc::clone(&stop);
        async move { stop.notified().await }
    });
    let mut reconciler = Reconciler::new(client.clone(), &args.release, &namespace);
    reconciler.leadership = leadership.clone();
    if let Some(url) = &args.gateway_url {
        reconciler.gateway_url.clone_from(url);
    }
    let egress = Egress { allow_link_local: args.allow_link_local_upstreams };
    let mut controller = Controller {
        client,
        gateways: format!("{}-gateway", args.release),
        namespace,
        servers,
        routes,
        reconciler,
        leadership: leadership.clone(),
        identity: identity.clone(),
        term: None,
        referenced: None,
        secrets: Referenced::default(),
        config_maps: Referenced::default(),
        fetcher: Fetcher::new(egress),
        prober: Prober::spawn(egress),
        replicas: Vec::new(),
        misses: Default::default(),
        debounce: Debounce::default(),
        poll: Backoff::new(PROGRAMMED_POLL),
        retry: Backoff::new(RETRY),
        metrics,
    };
    controller.debounce.changed(Instant::now());
    let mut refetch = tokio::time::interval(MIN_REFRESH);
    tokio::pin!(shutdown);
    tracing::info!(namespace = %controller.namespace, release = %args.release, %identity, "operator started");
    loop {
        tokio::select! {
            Some(changed) = events.next() => controller.changed(changed),
            () = listed.notified() => {}
            () = leadership.changed() => controller.leadership_changed(),
            () = controller.prober.changed() => controller.debounce.changed(Instant::now()),
            _ = refetch.tick() => {
                let now = std::time::Instant::now();
                if controller.fetcher.documents.due(now) {
                    controller.debounce.changed(Instant::now());
                }
            }
            // Never before the caches have listed: an empty cache would publish an empty config.
            _ = sleep_until(controller.debounce.due), if controller.term.is_some() && ready.load(Ordering::Acquire) => {
                // A long reconcile (probes, many statuses) must not outlast the pod's grace period.
                tokio::select! {
                    () = controller.reconcile() => {}
                    () = &mut shutdown => break,
                }
            }
            () = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down");
    // Give the Lease up, so another replica takes over at once.
    stop.notify_one();
    let _ = tokio::time::timeout(Duration::from_secs(5), keeper).await;
    Ok(())
}

/// The controller's state between events.
struct Controller {
    client: Client,
    /// The gateway Service, and its namespace (where the config is published).
    gateways: String,
    namespace: String,
    servers: Cache,
    routes: Cache,
    reconciler: Reconciler,
    leadership: Leadership,
    /// This replica's name in the Lease.
    identity: String,
    /// The term this replica leads in (None: following).
    term: Option<u64>,
    /// The Secrets and ConfigMaps referenced, worked out again after objects change.
    referenced: Option<References>,
    secrets: Referenced<Secret>,
    config_maps: Referenced<ConfigMap>,
    fetcher: Fetcher,
    /// Probes remote servers in the background; told what to probe by each reconcile.
    prober: Prober,
    /// The gateway replicas as last found (kept when they cannot be listed).
    replicas: Vec<Replica>,
    /// Answers each replica missed in a row, by admin address.
    misses: std::collections::BTreeMap<String, u32>,
    debounce: Debounce,
    poll: Backoff,
    retry: Backoff,
    metrics: Metrics,
}

impl Controller {
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

    /// Gathers the world and reconciles it, and says when to look again.
    async fn reconcile(&mut self) {
        self.debounce.started();
        // Its writes stop with the term it begins in.
        self.reconciler.leadership = self.leadership.pinned();
        let mut world = match self.gather().await {
            Ok(world) => world,
            Err(error) => {
                // Not knowing a Secret is not its absence: compile would call it missing.
                self.failed(&format!("cannot read what the objects reference: {error}"));
                return;
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
                metrics.reconciles.with_label_values(&["ok"]).inc();
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
                    self.metrics.reconciles.with_label_values(&["error"]).inc();
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

    fn failed(&mut self, why: &str) {
        self.metrics.reconciles.with_label_values(&["error"]).inc();
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

/// Fails with what to do when the cluster does not serve Manifold's API.
pub async fn ensure_api(client: &Client) -> anyhow::Result<()> {
    let group = McpServer::group(&());
    let version = McpServer::version(&());
    match client.list_api_group_resources(&format!("{group}/{version}")).await {
        Ok(resources) => {
            for kind in ["mcpservers", "mcproutes"] {
                if !resources.resources.iter().any(|r| r.name == kind) {
                    bail!(
                        "the cluster serves {group}/{version} without `{kind}`: install the current manifold-crds chart"
                    );
                }
            }
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {
            bail!(
                "the cluster does not serve {group}/{version}: install the manifold-crds chart (or `kubectl apply -f crds/manifests/`) first"
            )
        }
        Err(error) => Err(error).context("cannot ask the API server which resources it serves"),
    }
}

/// SIGTERM (what Kubernetes sends a pod it stops) or Ctrl-C.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::json;

    use super::*;
    use crate::testing::api_server_with_status;

    async fn check(status: u16, answer: serde_json::Value) -> anyhow::Result<()> {
        let (client, server) =
            api_server_with_status(vec![(Method::GET, "/apis/manifold.dev/v1alpha1".into(), status, answer)]);
        let checked = ensure_api(&client).await;
        server.await.unwrap();
        checked
    }

    fn resources(names: &[&str]) -> serde_json::Value {
        let resources: Vec<_> = names
            .iter()
            .map(|n| json!({"name": n, "singularName": "", "namespaced": true, "kind": "K", "verbs": ["get"]}))
            .collect();
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "manifold.dev/v1alpha1", "resources": resources})
    }

    #[tokio::test]
    async fn missing_crds_are_a_clear_startup_error() {
        let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "the server could not find the requested resource"});
        let error = check(404, not_found).await.unwrap_err().to_string();
        assert_eq!(
            error,
            "the cluster does not serve manifold.dev/v1alpha1: install the manifold-crds chart (or `kubectl apply -f crds/manifests/`) first"
        );
        let error = check(200, resources(&["mcpservers"])).await.unwrap_err().to_string();
        assert_eq!(
            error,
            "the cluster serves manifold.dev/v1alpha1 without `mcproutes`: install the current manifold-crds chart"
        );
        check(200, resources(&["mcpservers", "mcpservers/status", "mcproutes", "mcproutes/status"])).await.unwrap();
    }
}
