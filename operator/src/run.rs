//! `manifold-operator run`: the controller loop.
//!
//! It watches McpServers and McpRoutes (in every namespace, or in those listed), the
//! metadata only of Secrets and ConfigMaps there, and the config Secrets it publishes. A
//! change marks the world dirty. Once a burst has been quiet for [`DEBOUNCE`], the replica
//! holding the Lease gathers the world and reconciles it: it reads by name the Secrets and
//! ConfigMaps the objects reference, then publishes and writes statuses. Followers keep
//! their caches warm, and take over when the Lease expires or is released. `/healthz`,
//! `/readyz` and `/metrics` are served on the admin address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use manifold_api::compile::Unreadable;
use manifold_api::documents::MIN_REFRESH;
use manifold_api::egress::Egress;
use manifold_api::outcome::{Kind, ObjectRef};
use manifold_api::publish::{RELEASE_LABEL, SHARD_HASH_ANNOTATION};
use manifold_api::resources::{McpRoute, McpServer};
use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use tokio::time::Instant;

use crate::documents::Fetcher;
use crate::leader::{self, Elector};
use crate::probe::Prober;
use crate::programmed;
use crate::publish::PublishError;
use crate::reconcile::{Reconciler, World, references};

/// How long a burst of changes must be quiet before a reconcile: 100 objects applied at
/// once make a handful of publishes, not 100.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// The longest a change waits while others keep coming: a steady stream of changes cannot
/// hold publishing off.
pub const MAX_DELAY: Duration = Duration::from_secs(2);

/// How soon routes not Programmed yet are looked at again; the wait doubles, up to
/// [`MAX_RETRY`], while nothing moves (gateways that never answer cost little).
pub const PROGRAMMED_POLL: Duration = Duration::from_secs(2);
/// How soon a failed reconcile is tried again; the wait doubles, up to [`MAX_RETRY`].
pub const RETRY: Duration = Duration::from_secs(5);
pub const MAX_RETRY: Duration = Duration::from_secs(60);
/// How many Secrets and ConfigMaps are read at once.
const READS_AT_ONCE: usize = 16;

/// A wait that doubles each time it is taken, up to [`MAX_RETRY`], until reset.
#[derive(Debug)]
struct Backoff {
    first: Duration,
    next: Duration,
}

impl Backoff {
    fn new(first: Duration) -> Self {
        Backoff { first, next: first }
    }

    fn take(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_RETRY);
        wait
    }

    fn reset(&mut self) {
        self.next = self.first;
    }
}

/// When to reconcile next.
#[derive(Debug, Default)]
struct Debounce {
    /// The first change not reconciled yet.
    pending_since: Option<Instant>,
    due: Option<Instant>,
}

impl Debounce {
    /// A change at `now`: reconcile once things are quiet for [`DEBOUNCE`], and at the
    /// latest [`MAX_DELAY`] after the first change not reconciled yet.
    fn changed(&mut self, now: Instant) {
        let first = *self.pending_since.get_or_insert(now);
        self.due = Some((now + DEBOUNCE).min(first + MAX_DELAY));
    }

    /// Reconcile at once (this replica just became leader).
    fn now(&mut self, now: Instant) {
        self.pending_since.get_or_insert(now);
        self.due = Some(now);
    }

    fn reconciled(&mut self) {
        *self = Debounce::default();
    }
}

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
    let client = Client::try_default().await.context("cannot configure a Kubernetes client")?;
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

    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let admin = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.admin_listen))?;
    tokio::spawn(serve_admin(admin, Arc::clone(&ready), metrics.registry.clone()));

    let scope = &args.watch_namespaces;
    let (servers, server_events) = watch::<McpServer>(&client, scope);
    let (routes, route_events) = watch::<McpRoute>(&client, scope);
    // Metadata only: no Secret's data is cached, only that it changed.
    let secret_events = changed_names::<Secret>(&client, scope, Changed::Secret);
    let config_map_events = changed_names::<ConfigMap>(&client, scope, Changed::ConfigMap);
    let shard_events = own_shards(&client, &namespace, &args.release);
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
    let mut events = stream::select_all([server_events, route_events, secret_events, config_map_events, shard_events]);

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
    let mut leading = false;
    let mut referenced: Option<crate::reconcile::References> = None;
    let mut debounce = Debounce::default();
    debounce.changed(Instant::now());
    let (mut poll, mut retry) = (Backoff::new(PROGRAMMED_POLL), Backoff::new(RETRY));
    let mut fetcher = Fetcher::new(Egress { allow_link_local: args.allow_link_local_upstreams });
    let mut prober = Prober::new(Egress { allow_link_local: args.allow_link_local_upstreams });
    let mut refetch = tokio::time::interval(MIN_REFRESH);
    tokio::pin!(shutdown);
    tracing::info!(%namespace, release = %args.release, %identity, "operator started");
    loop {
        tokio::select! {
            Some(changed) = events.next() => {
                // A Secret or ConfigMap matters only if something references it (the
                // references are worked out again only after McpServers or McpRoutes change).
                let current = || references(&typed::<McpServer>(&servers, Kind::McpServer).0, &typed::<McpRoute>(&routes, Kind::McpRoute).0);
                let relevant = match &changed {
                    Changed::Object => {
                        referenced = None;
                        true
                    }
                    Changed::Secret(key) => referenced.get_or_insert_with(current).secrets.contains(key),
                    Changed::ConfigMap(key) => referenced.get_or_insert_with(current).config_maps.contains(key),
                    Changed::Shard(name, hash) => reconciler.shard_changed(name, hash.as_deref()),
                };
                if relevant {
                    debounce.changed(Instant::now());
                }
            }
            () = listed.notified() => {}
            () = leadership.changed() => {
                let was = leading;
                leading = leadership.leads();
                metrics.leader.set(i64::from(leading));
                if leading && !was {
                    tracing::info!(%identity, "leading: publishing and writing status from now on");
                    // Another replica may have led meanwhile: start again from what is published.
                    reconciler.forget();
                    debounce.now(Instant::now());
                } else if was && !leading {
                    tracing::info!(%identity, "no longer leading: following");
                }
            }
            _ = refetch.tick() => {
                let now = std::time::Instant::now();
                if fetcher.documents.due(now) || prober.due(now) {
                    debounce.changed(Instant::now());
                }
            }
            // Never before the caches have listed: an empty cache would publish an empty config.
            _ = sleep_until(debounce.due), if leading && debounce.due.is_some() && ready.load(Ordering::Acquire) => {
                debounce.reconciled();
                let mut world = match gather(&client, &servers, &routes).await {
                    Ok(world) => world,
                    Err(error) => {
                        // Not knowing a Secret is not its absence: compile would call it missing.
                        metrics.reconciles.with_label_values(&["error"]).inc();
                        let wait = retry.take();
                        tracing::error!(%error, retry_in = ?wait, "cannot read what the objects reference");
                        debounce.due = Some(Instant::now() + wait);
                        continue;
                    }
                };
                for (url, error) in fetcher.refresh(&world.servers).await.kept {
                    tracing::warn!(%url, %error, "refetching an OpenAPI document failed; keeping the last one");
                }
                world.documents = fetcher.documents.documents();
                let gateways = format!("{}-gateway", args.release);
                let replicas = programmed::replicas(&client, &namespace, &gateways, "admin").await.unwrap_or_else(|error| {
                    tracing::warn!(%error, "cannot list the gateway's EndpointSlices; routes stay not Programmed");
                    Vec::new()
                });
                prober.refresh(&world.servers_to_probe(), std::time::Instant::now()).await;
                let now = Time(Timestamp::now());
                match reconciler.reconcile(&world, &replicas, &prober, &now).await {
                    Ok(report) => {
                        retry.reset();
                        metrics.reconciles.with_label_values(&["ok"]).inc();
                        metrics.compile_seconds.observe(report.compile.as_secs_f64());
                        for lag in &report.programmed_after {
                            metrics.programmed_lag_seconds.observe(lag.as_secs_f64());
                        }
                        if let Some(published) = &report.published {
                            metrics.publish_bytes.set(published.bytes as i64);
                        }
                        // Look again while replicas catch up: soon after a change, then less
                        // and less often while nothing moves.
                        if report.published.is_some() || !report.programmed_after.is_empty() {
                            poll.reset();
                        }
                        if report.pending > 0 {
                            debounce.due = Some(Instant::now() + poll.take());
                        }
                        if report.failed > 0 {
                            debounce.due = Some(debounce.due.unwrap_or(Instant::now() + RETRY).min(Instant::now() + RETRY));
                        }
                        tracing::info!(generation = report.generation, published = ?report.published, statuses = report.statuses, failed = report.failed, "reconciled");
                    }
                    Err(PublishError::NotLeading) => tracing::warn!("the Lease lapsed during a reconcile; its writes stopped"),
                    Err(error) => {
                        metrics.reconciles.with_label_values(&["error"]).inc();
                        let wait = retry.take();
                        tracing::error!(%error, retry_in = ?wait, "reconcile failed");
                        debounce.due = Some(Instant::now() + wait);
                    }
                }
            }
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                // Give the Lease up, so another replica takes over at once.
                stop.notify_one();
                let _ = tokio::time::timeout(Duration::from_secs(5), keeper).await;
                return Ok(());
            }
        }
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

/// What changed.
enum Changed {
    Object,
    Secret((String, String)),
    ConfigMap((String, String)),
    /// One of the config Secrets this operator publishes: its name, and its shard hash
    /// (None once deleted).
    Shard(String, Option<String>),
}

type Changes = std::pin::Pin<Box<dyn Stream<Item = Changed> + Send>>;

/// The objects of one kind in the watched namespaces: one reflector per namespace (a
/// reflector's store is replaced by what its own watch lists, so namespaces cannot share one).
#[derive(Clone)]
pub struct Cache(Vec<Store<DynamicObject>>);

impl Cache {
    fn state(&self) -> impl Iterator<Item = Arc<DynamicObject>> + '_ {
        self.0.iter().flat_map(Store::state)
    }

    async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        for store in &self.0 {
            store.wait_until_ready().await?;
        }
        Ok(())
    }
}

/// An Api for each watched namespace (`one`), or for all of them (`all`) when none are listed.
fn scoped<A>(namespaces: &[String], all: impl Fn() -> A, one: impl Fn(&str) -> A) -> Vec<A> {
    if namespaces.is_empty() { vec![all()] } else { namespaces.iter().map(|n| one(n)).collect() }
}

/// A cache of `K` objects in the watched namespaces, and its changes. Objects are kept
/// untyped: one whose fields do not parse must not stop the watch for everyone (it is
/// reported in its own status, see [`typed`]).
fn watch<K>(client: &Client, namespaces: &[String]) -> (Cache, Changes)
where
    K: Resource<DynamicType = ()>,
{
    let resource = ApiResource::erase::<K>(&());
    let (mut stores, mut changes) = (Vec::new(), Vec::new());
    let apis = scoped(
        namespaces,
        || Api::<DynamicObject>::all_with(client.clone(), &resource),
        |n| Api::namespaced_with(client.clone(), n, &resource),
    );
    for api in apis {
        let writer = reflector::store::Writer::new(resource.clone());
        stores.push(writer.as_reader());
        let kind = resource.kind.clone();
        changes.push(
            reflector::reflector(writer, watcher(api, watcher::Config::default()))
                .default_backoff()
                .filter_map(move |event| {
                    let kind = kind.clone();
                    async move {
                        match event {
                            Ok(_) => Some(Changed::Object),
                            Err(error) => {
                                tracing::warn!(%kind, %error, "a watch failed; retrying");
                                None
                            }
                        }
                    }
                })
                .boxed(),
        );
    }
    (Cache(stores), stream::select_all(changes).boxed())
}

/// The (namespace, name) of every `K` that changes in the watched namespaces, as `changed`
/// says it. Metadata only, and nothing kept.
fn changed_names<K>(client: &Client, namespaces: &[String], changed: fn((String, String)) -> Changed) -> Changes
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let apis =
        scoped(namespaces, || Api::<PartialObjectMeta<K>>::all(client.clone()), |n| Api::namespaced(client.clone(), n));
    let watches = apis.into_iter().map(|api| {
        watcher(api, watcher::Config::default())
            .default_backoff()
            .filter_map(move |event| async move {
                let event = event
                    .inspect_err(
                        |error| tracing::warn!(kind = K::kind(&()).as_ref(), %error, "a watch failed; retrying"),
                    )
                    .ok()?;
                match event {
                    watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o) => {
                        Some(changed((o.namespace().unwrap_or_default(), o.name_any())))
                    }
                    watcher::Event::Init | watcher::Event::InitDone => None,
                }
            })
            .boxed()
    });
    stream::select_all(watches).boxed()
}

/// Changes to the config Secrets of `release` in `namespace`: one deleted or edited behind
/// the operator's back is written again.
fn own_shards(client: &Client, namespace: &str, release: &str) -> Changes {
    let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), namespace);
    let config = watcher::Config::default().labels(&format!("{RELEASE_LABEL}={release}"));
    watcher(api, config)
        .default_backoff()
        .filter_map(|event| async move {
            let event = event
                .inspect_err(|error| tracing::warn!(%error, "the watch of the config Secrets failed; retrying"))
                .ok()?;
            let hash = |o: &PartialObjectMeta<Secret>| o.annotations().get(SHARD_HASH_ANNOTATION).cloned();
            match event {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => Some(Changed::Shard(o.name_any(), hash(&o))),
                watcher::Event::Delete(o) => Some(Changed::Shard(o.name_any(), None)),
                watcher::Event::Init | watcher::Event::InitDone => None,
            }
        })
        .boxed()
}

/// The objects a cache holds, as `K`, and those whose fields do not parse.
fn typed<K: serde::de::DeserializeOwned>(cache: &Cache, kind: Kind) -> (Vec<K>, Vec<Unreadable>) {
    let (mut objects, mut unreadable) = (Vec::new(), Vec::new());
    for object in cache.state() {
        let value = serde_yaml::to_value(&*object).expect("objects serialize");
        match manifold_api::manifests::typed::<K>(value) {
            Ok(typed) => objects.push(typed),
            Err(problem) => unreadable.push(Unreadable {
                object: ObjectRef { kind, namespace: object.namespace().unwrap_or_default(), name: object.name_any() },
                generation: object.metadata.generation,
                problem,
            }),
        }
    }
    (objects, unreadable)
}

/// The world: the cached objects, and the Secrets and ConfigMaps they reference, read now
/// ([`READS_AT_ONCE`] at a time). Only "not found" means missing: any other failure fails
/// the whole, as a reference reported missing would make routes lose their credentials.
async fn gather(client: &Client, servers: &Cache, routes: &Cache) -> kube::Result<World> {
    let (servers, mut unreadable) = typed::<McpServer>(servers, Kind::McpServer);
    let (routes, unreadable_routes) = typed::<McpRoute>(routes, Kind::McpRoute);
    unreadable.extend(unreadable_routes);
    let wanted = references(&servers, &routes);
    let secrets = read_all::<Secret>(client, &wanted.secrets);
    let config_maps = read_all::<ConfigMap>(client, &wanted.config_maps);
    let (secrets, config_maps) = futures::try_join!(secrets, config_maps)?;
    Ok(World { servers, routes, secrets, config_maps, unreadable, ..World::default() })
}

/// The objects named (namespace, name) that exist.
async fn read_all<K>(client: &Client, names: &std::collections::BTreeSet<(String, String)>) -> kube::Result<Vec<K>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    // Owned futures: a stream of borrowing closures is not `Send` for the controller's task.
    let reads: Vec<_> = names
        .iter()
        .map(|(namespace, name)| {
            let (api, name) = (Api::<K>::namespaced(client.clone(), namespace), name.clone());
            async move { api.get_opt(&name).await }
        })
        .collect();
    let found: Vec<Option<K>> = stream::iter(reads).buffered(READS_AT_ONCE).try_collect().await?;
    Ok(found.into_iter().flatten().collect())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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

/// The operator's own metrics.
struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    compile_seconds: prometheus::Histogram,
    programmed_lag_seconds: prometheus::Histogram,
    publish_bytes: IntGauge,
    leader: IntGauge,
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("manifold_operator_reconciles_total", "Reconciles by outcome (ok, error)"),
            &["outcome"],
        )
        .expect("valid metric");
        let leader =
            IntGauge::new("manifold_operator_leader", "1 while this replica holds the Lease").expect("valid metric");
        let compile_seconds = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(
            "manifold_operator_compile_seconds",
            "Time to compile the world into gateway config",
        ))
        .expect("valid metric");
        let programmed_lag_seconds = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(
            "manifold_operator_programmed_lag_seconds",
            "Time from a route's change to every gateway replica serving it",
        ))
        .expect("valid metric");
        let publish_bytes =
            IntGauge::new("manifold_operator_publish_bytes", "Gzipped bytes of the config last published")
                .expect("valid metric");
        registry.register(Box::new(reconciles.clone())).expect("registers once");
        registry.register(Box::new(compile_seconds.clone())).expect("registers once");
        registry.register(Box::new(publish_bytes.clone())).expect("registers once");
        registry.register(Box::new(programmed_lag_seconds.clone())).expect("registers once");
        registry.register(Box::new(leader.clone())).expect("registers once");
        Metrics { registry, reconciles, compile_seconds, programmed_lag_seconds, publish_bytes, leader }
    }
}

async fn serve_admin(listener: tokio::net::TcpListener, ready: Arc<AtomicBool>, registry: Registry) {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.load(Ordering::Acquire);
                async move {
                    if ready {
                        (axum::http::StatusCode::OK, "ready")
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not reconciled yet")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let mut text = Vec::new();
                let _ = TextEncoder::new().encode(&registry.gather(), &mut text);
                async move { String::from_utf8(text).unwrap_or_default() }
            }),
        );
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the admin listener stopped");
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

    /// How many reconciles `changes` (offsets from a start) lead to, the loop taking each due
    /// reconcile as soon as it is due.
    fn reconciles(changes: &[Duration]) -> usize {
        let start = Instant::now();
        let mut debounce = Debounce::default();
        let mut count = 0;
        for at in changes.iter().map(|offset| start + *offset) {
            if debounce.due.is_some_and(|due| due <= at) {
                debounce.reconciled();
                count += 1;
            }
            debounce.changed(at);
        }
        count + usize::from(debounce.due.is_some())
    }

    #[test]
    fn an_object_whose_fields_do_not_parse_is_reported_not_fatal() {
        let mut writer = reflector::store::Writer::new(ApiResource::erase::<McpServer>(&()));
        for (name, remote) in [
            ("good", json!({"url": "http://weather:8080/mcp"})),
            ("bad", json!({"url": "http://weather:8080/mcp", "transport": "websocket"})),
        ] {
            let object: DynamicObject =
                serde_json::from_value(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer",
                "metadata": {"name": name, "namespace": "acme", "generation": 2}, "spec": {"remote": remote}}))
                .unwrap();
            writer.apply_watcher_event(&watcher::Event::Apply(object));
        }
        let (servers, unreadable) = typed::<McpServer>(&Cache(vec![writer.as_reader()]), Kind::McpServer);
        assert_eq!(servers.iter().map(|s| s.name_any()).collect::<Vec<_>>(), ["good"]);
        assert_eq!(unreadable.len(), 1);
        assert_eq!((unreadable[0].object.name.as_str(), unreadable[0].generation), ("bad", Some(2)));
        assert_eq!(unreadable[0].problem.field, "spec.remote.transport");
    }

    #[test]
    fn bursts_of_changes_make_a_handful_of_reconciles() {
        let burst: Vec<Duration> = (0..100).map(|i| Duration::from_millis(i * 2)).collect();
        assert_eq!(reconciles(&burst), 1, "100 objects applied at once");
        let steady: Vec<Duration> = (0..100).map(|i| Duration::from_millis(i * 100)).collect();
        assert_eq!(reconciles(&steady), 5, "a change every 100 ms for 10 s: every MAX_DELAY");
        let apart: Vec<Duration> = (0..3).map(|i| Duration::from_secs(i * 10)).collect();
        assert_eq!(reconciles(&apart), 3, "changes far apart each get theirs");
    }

    #[test]
    fn waits_double_while_nothing_moves() {
        let mut poll = Backoff::new(PROGRAMMED_POLL);
        let waits: Vec<u64> = (0..7).map(|_| poll.take().as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60]);
        poll.reset();
        assert_eq!(poll.take(), PROGRAMMED_POLL);
    }

    #[tokio::test]
    async fn a_reference_that_cannot_be_read_fails_the_gather_not_the_reference() {
        let mut writer = reflector::store::Writer::new(ApiResource::erase::<McpServer>(&()));
        let keyed: DynamicObject = serde_json::from_value(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer",
            "metadata": {"name": "weather", "namespace": "acme"},
            "spec": {"remote": {"url": "http://weather:8080/mcp", "headers": [{"name": "X-Key", "valueFrom": {"secretKeyRef": {"name": "key", "key": "k"}}}]}}}))
        .unwrap();
        writer.apply_watcher_event(&watcher::Event::Apply(keyed));
        let servers = Cache(vec![writer.as_reader()]);
        let routes = Cache(vec![reflector::store::Writer::new(ApiResource::erase::<McpRoute>(&())).as_reader()]);
        let throttled = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "TooManyRequests", "code": 429, "message": "slow down"});
        let (client, server) =
            api_server_with_status(vec![(Method::GET, "/api/v1/namespaces/acme/secrets/key".into(), 429, throttled)]);
        let gathered = gather(&client, &servers, &routes).await;
        server.await.unwrap();
        assert!(matches!(gathered, Err(kube::Error::Api(ref status)) if status.code == 429), "{gathered:?}");

        let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "no"});
        let (client, server) =
            api_server_with_status(vec![(Method::GET, "/api/v1/namespaces/acme/secrets/key".into(), 404, not_found)]);
        let world = gather(&client, &servers, &routes).await.unwrap();
        server.await.unwrap();
        assert!(world.secrets.is_empty(), "missing is missing");
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
