//! Manifold's data plane. A config source (`source`: local files, or `kube_source`: the
//! Secrets the operator publishes) compiles or loads a `GatewayConfig` into a `Snapshot`; the
//! MCP endpoint (`mcp`) serves every route of the snapshot, reaching mounted servers through
//! `upstream` clients; `export` serves each route's tools for LLM APIs beside it, through
//! the same endpoint; `admin` serves health, readiness and metrics.
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
mod apply;
pub mod cli;
mod discover;
mod export;
mod globs;
pub mod jsonrpc;
pub mod kube_source;
pub mod mcp;
pub mod metrics;
pub mod policy;
pub mod principal;
pub mod protocol;
pub mod snapshot;
pub mod source;
mod specs;
pub mod traces;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::kube_source::KubeSource;
use crate::mcp::seal::KeyRing;
use crate::mcp::session::Sessions;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::source::{Loader, Local};

/// State shared by every request.
pub struct Gateway {
    /// What is served now.
    pub snapshot: ArcSwap<Snapshot>,
    /// Client sessions of this replica.
    pub sessions: Sessions,
    pub metrics: Metrics,
    /// Set once a config has been loaded.
    pub ready: AtomicBool,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Most items on one page of a merged list.
    pub list_page_size: usize,
    /// Whether the MCP listener is on a loopback address (Host names are then checked).
    pub loopback: bool,
    /// Shortest time between two JWKS fetches caused by tokens with unknown key ids.
    pub jwks_refetch_cooldown: Duration,
    /// Where audit events go.
    pub audit: access::audit::Log,
    /// What the last load said about each object (local mode compiles) and what could not
    /// be built: `/status` shows it.
    pub report: std::sync::Mutex<apply::Report>,
    /// Where every route's rate limits are counted: this replica's buckets, or Redis.
    pub limiter: policy::Limiter,
    /// Tool results and merged lists kept for routes that declare caching (shared with
    /// `sessions`, whose upstreams' change notifications empty it).
    pub cache: Arc<policy::cache::Store>,
    /// Where spans go; none: tracing is off, and requests pay one branch for it.
    pub tracer: Option<opentelemetry_sdk::trace::SdkTracer>,
    /// Per-user upstream tokens and consent markers, sealed with the sessions' key ring.
    pub tokens: Arc<upstream::identity::Tokens>,
    /// Where upstreams and token endpoints may be called.
    pub egress: manifold_runtime::egress::Egress,
}

/// Where a gateway's config comes from.
pub enum ConfigSource {
    /// Every `*.yaml`, `*.yml` and `*.json` file below a directory: McpServers, McpRoutes,
    /// Secrets and ConfigMaps, compiled by the gateway.
    Manifests(std::path::PathBuf),
    /// A compiled GatewayConfig (YAML or JSON).
    File(std::path::PathBuf),
    /// Manifests held in memory (the quickstart).
    Embedded(Vec<manifold_api::manifests::Source>),
    /// The config the operator publishes as Secrets in the gateway's namespace, watched
    /// through the Kubernetes API (`--kube`).
    Kube(KubeSource),
}

/// How a gateway runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address of the MCP listener.
    pub listen: SocketAddr,
    /// Address of the admin listener.
    pub admin_listen: SocketAddr,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Upstream sessions a replica opened for a client session itself are ended after this
    /// long unused (see `--session-idle-secs`).
    pub session_idle_timeout: Duration,
    /// Most session entries one replica keeps in memory.
    pub max_sessions: usize,
    /// How often a local config source is checked for changes.
    pub watch_interval: Duration,
    /// Most items on one page of a merged list (`tools/list` and the like).
    pub list_page_size: usize,
    /// Bytes of cached results and lists this replica keeps at most.
    pub cache_bytes: usize,
    /// Threads serving MCP, each with its own single-threaded runtime and upstream
    /// connections, so a request is handled start to finish without crossing threads.
    pub workers: usize,
    /// Shortest time between two JWKS fetches caused by tokens with unknown key ids.
    pub jwks_refetch_cooldown: Duration,
    /// File the audit log is appended to; none: stdout.
    pub audit_log: Option<std::path::PathBuf>,
    /// File of session keys (base64, one per line, the current one first); none: a key made
    /// up at start-up, so sessions do not survive a restart.
    pub session_keys: Option<std::path::PathBuf>,
    /// Sessions older than this are refused, whichever replica sees them.
    pub session_max_age: Duration,
    /// Where OpenAPI sub-servers and spec URLs may be called.
    pub egress: manifold_runtime::egress::Egress,
    /// Redis for cluster-wide rate limits; none: each replica counts for itself.
    pub rate_limit_redis: Option<policy::cluster::RedisSettings>,
    /// Where per-user upstream tokens are kept (Redis or a file); none: the rate limits'
    /// Redis if there is one, else this process's memory.
    pub token_store: Option<upstream::identity::store::Setting>,
    /// Where spans go (`manifold_runtime::telemetry`); none: tracing is off.
    pub tracer: Option<opentelemetry_sdk::trace::SdkTracer>,
    /// With `--otel-metrics`, the meter of the OTLP meter provider: the conventions'
    /// histograms are recorded into it too. None: /metrics only.
    pub meter: Option<opentelemetry::metrics::Meter>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            max_body_bytes: 4 * 1024 * 1024,
            session_idle_timeout: Duration::from_secs(3600),
            max_sessions: 100_000,
            watch_interval: Duration::from_secs(1),
            list_page_size: 500,
            cache_bytes: 64 * 1024 * 1024,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            jwks_refetch_cooldown: Duration::from_secs(10),
            audit_log: None,
            session_keys: None,
            session_max_age: Duration::from_secs(24 * 3600),
            egress: Default::default(),
            rate_limit_redis: None,
            token_store: None,
            tracer: None,
            meter: None,
        }
    }
}

/// A started gateway.
pub struct Running {
    /// Where MCP clients connect.
    pub mcp_addr: SocketAddr,
    /// Where health and metrics are served.
    pub admin_addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    workers: Vec<tokio::sync::oneshot::Receiver<()>>,
}

impl Running {
    /// `http://<mcp addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.mcp_addr)
    }

    /// Stops accepting, lets in-flight requests finish, and stops background tasks.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        for worker in self.workers {
            let _ = worker.await;
        }
    }

    /// Resolves when the gateway has stopped on its own (a listener failed).
    pub async fn stopped(&mut self) {
        self.shutdown.cancelled().await;
    }
}

/// Loads the config once, binds both listeners and starts serving.
pub async fn start(settings: Settings, source: ConfigSource) -> std::io::Result<Running> {
    let ring = match &settings.session_keys {
        Some(path) => KeyRing::from_file(path).map_err(std::io::Error::other)?,
        None => {
            tracing::warn!(
                "no --session-keys: sessions are sealed with a key made up now, and will not survive a restart"
            );
            KeyRing::generate()
        }
    };
    let metrics = Metrics::new();
    if let Some(meter) = &settings.meter {
        metrics.conventions.export_to(meter);
    }
    let limiter = policy::Limiter::new(settings.rate_limit_redis.as_ref(), &metrics).map_err(std::io::Error::other)?;
    if let Some(redis) = &settings.rate_limit_redis {
        tracing::info!(url = %redis.url, unavailable = %redis.unavailable, "rate limits are counted in Redis, across replicas");
    }
    let cache = Arc::new(policy::cache::Store::new(settings.cache_bytes));
    let sessions = Sessions::new(settings.session_idle_timeout, settings.max_sessions, ring, settings.session_max_age);
    let tokens = Arc::new(token_store(&settings, sessions.ring()).map_err(std::io::Error::other)?);
    let gateway = Arc::new(Gateway {
        snapshot: ArcSwap::from_pointee(Snapshot::empty()),
        sessions: sessions.with_cache(Arc::clone(&cache)).with_durations(metrics.conventions.clone()),
        metrics,
        ready: AtomicBool::new(false),
        max_body_bytes: settings.max_body_bytes,
        list_page_size: settings.list_page_size,
        loopback: settings.listen.ip().is_loopback(),
        jwks_refetch_cooldown: settings.jwks_refetch_cooldown,
        audit: access::audit::Log::open(settings.audit_log.as_ref())?,
        report: Default::default(),
        limiter,
        cache,
        tracer: settings.tracer.clone(),
        tokens,
        egress: settings.egress,
    });
    if gateway.tracer.is_some() {
        traces::enable();
    }
    // A local source is loaded before listening; the operator's Secrets are watched from
    // now on, and the gateway is ready once they hold a config.
    let local = match source {
        ConfigSource::Manifests(dir) => Ok(Local::Manifests(dir)),
        ConfigSource::File(file) => Ok(Local::File(file)),
        ConfigSource::Embedded(sources) => Ok(Local::Embedded(sources)),
        ConfigSource::Kube(kube) => Err(kube),
    };
    let (kube, loader) = match local {
        Err(kube) => (Some(kube), None),
        Ok(local) => {
            let mut loader = Loader::new(local, settings.egress, Arc::clone(&gateway.tokens));
            loader.poll(&gateway).await;
            (None, loader.watches().then_some(loader))
        }
    };

    let mcp_listener = std::net::TcpListener::bind(settings.listen)?;
    mcp_listener.set_nonblocking(true)?;
    let admin_listener = TcpListener::bind(settings.admin_listen).await?;
    let (mcp_addr, admin_addr) = (mcp_listener.local_addr()?, admin_listener.local_addr()?);
    let shutdown = CancellationToken::new();

    let mut workers = Vec::new();
    for index in 0..settings.workers.max(1) {
        workers.push(spawn_worker(index, mcp_listener.try_clone()?, Arc::clone(&gateway), shutdown.clone())?);
    }
    let mut tasks = vec![
        serve_admin(admin_listener, admin::router(Arc::clone(&gateway)), shutdown.clone()),
        tokio::spawn(expire_sessions(Arc::clone(&gateway), shutdown.clone())),
    ];
    if let Some(loader) = loader {
        tasks.push(tokio::spawn(watch(loader, Arc::clone(&gateway), settings.watch_interval, shutdown.clone())));
    }
    tasks.push(tokio::spawn({
        let gateway = Arc::clone(&gateway);
        async move { gateway.limiter.warm_up().await }
    }));
    if let Some(kube) = kube {
        tasks.push(tokio::spawn(kube_source::run(kube, Arc::clone(&gateway), settings.egress, shutdown.clone())));
    }
    tracing::info!(%mcp_addr, %admin_addr, workers = workers.len(), "gateway listening");
    Ok(Running { mcp_addr, admin_addr, gateway, shutdown, tasks, workers })
}

/// Where per-user upstream tokens are kept: `--token-store`, else the rate limits' Redis,
/// else memory (consents then last as long as this process).
fn token_store(settings: &Settings, ring: &Arc<KeyRing>) -> Result<upstream::identity::Tokens, String> {
    use upstream::identity::store::{Seal, Setting};
    let ring: Arc<dyn Seal> = Arc::clone(ring) as Arc<dyn Seal>;
    let tokens = match (&settings.token_store, &settings.rate_limit_redis) {
        (Some(Setting::Redis(url)), _) => upstream::identity::Tokens::redis(url, ring)?,
        (Some(Setting::File(path)), _) => upstream::identity::Tokens::file(path, ring)?,
        (None, Some(redis)) => upstream::identity::Tokens::redis(&redis.url, ring)?,
        (None, None) => {
            tracing::warn!(
                "no --token-store: per-user upstream tokens are kept in memory, and callers consent again after a restart"
            );
            return Ok(upstream::identity::Tokens::memory(ring));
        }
    };
    tracing::info!(store = %tokens.place(), "per-user upstream tokens are kept sealed in this store");
    Ok(tokens)
}

/// The stack of each MCP worker thread: Linux's default for a main thread.
const WORKER_STACK_BYTES: usize = 8 * 1024 * 1024;

/// A thread with its own single-threaded runtime, accepting MCP connections on a shared
/// listener; the receiver resolves once it has drained and stopped.
fn spawn_worker(
    index: usize,
    listener: std::net::TcpListener,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (done, stopped) = tokio::sync::oneshot::channel();
    // A request's whole path (endpoint, exchange, policy, upstream) is polled on this stack.
    // Unoptimised builds keep every await point's locals apart and overflowed the default
    // 2 MiB; the stack is reserved, not touched, so a larger one costs no memory unless used.
    std::thread::Builder::new().name(format!("mcp-worker-{index}")).stack_size(WORKER_STACK_BYTES).spawn(
        move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => serve_mcp(listener, gateway, shutdown).await,
                    Err(error) => {
                        tracing::error!(%error, "worker could not listen");
                        shutdown.cancel();
                    }
                }
            });
            let _ = done.send(());
        },
    )?;
    Ok(stopped)
}

/// The MCP listener: plain hyper HTTP/1.1, one task per connection, drained on shutdown.
async fn serve_mcp(listener: TcpListener, gateway: Arc<Gateway>, shutdown: CancellationToken) {
    let connections = GracefulShutdown::new();
    let local = match listener.local_addr() {
        Ok(local) => local,
        Err(error) => {
            tracing::error!(%error, "the MCP listener has no address");
            shutdown.cancel();
            return;
        }
    };
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let gateway = Arc::clone(&gateway);
        let link = traces::Link { local, peer };
        let service = service_fn(move |request| export::serve(Arc::clone(&gateway), request, link));
        // A client has 30 s to send its headers: slow clients cannot hold connections forever.
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service);
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "client connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(Duration::from_secs(30), connections.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within 30s of shutdown");
    }
}

fn serve_admin(listener: TcpListener, app: axum::Router, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let stop = shutdown.clone();
        if let Err(error) =
            axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await
        {
            tracing::error!(%error, "listener failed");
            shutdown.cancel();
        }
    })
}

async fn watch(mut loader: Loader, gateway: Arc<Gateway>, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => loader.poll(&gateway).await,
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn expire_sessions(gateway: Arc<Gateway>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = shutdown.cancelled() => return,
        }
        for session in gateway.sessions.expire() {
            tracing::debug!(session = %session.log_id(), "session entry dropped after idling");
            session.release().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn per_user_tokens_go_to_the_token_store_else_the_rate_limits_redis_else_memory() {
        let ring = Arc::new(KeyRing::generate());
        let redis = |url: &str| policy::cluster::RedisSettings {
            url: url.parse().unwrap(),
            unavailable: policy::cluster::Unavailable::Open,
            timeout: Duration::from_millis(50),
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.json");
        let place = |token_store: Option<&str>, rate_limit_redis: Option<&str>| {
            let settings = Settings {
                token_store: token_store.map(|s| s.parse().unwrap()),
                rate_limit_redis: rate_limit_redis.map(redis),
                ..Settings::default()
            };
            token_store_place(&settings, &ring)
        };
        assert_eq!(place(None, None), "memory");
        assert_eq!(place(None, Some("redis://:pw@limits:6379/0")), "redis://:redacted@limits:6379/0");
        assert_eq!(place(Some("redis://tokens:6379/3"), Some("redis://limits:6379/0")), "redis://tokens:6379/3");
        assert_eq!(place(Some(file.to_str().unwrap()), Some("redis://limits:6379/0")), file.display().to_string());
    }

    fn token_store_place(settings: &Settings, ring: &Arc<KeyRing>) -> String {
        token_store(settings, ring).expect("the store opens").place()
    }
}
