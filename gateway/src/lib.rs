//! Manifold's data plane. A config source (`source`) compiles or loads a `GatewayConfig` into
//! a `Snapshot`; the MCP endpoint (`mcp`) serves every route of the snapshot, reaching mounted
//! servers through `upstream` clients; `admin` serves health, readiness and metrics.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod jsonrpc;
pub mod mcp;
pub mod metrics;
pub mod snapshot;
pub mod source;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::mcp::session::Sessions;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
pub use crate::source::ConfigSource;
use crate::source::Loader;

/// State shared by every request.
pub struct Gateway {
    /// What is served now.
    pub snapshot: ArcSwap<Snapshot>,
    /// Client sessions of this replica.
    pub sessions: Sessions,
    pub metrics: Metrics,
    /// Set once a config has been loaded.
    pub ready: AtomicBool,
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
    /// Sessions idle for this long are closed.
    pub session_idle_timeout: Duration,
    /// Most sessions one replica holds.
    pub max_sessions: usize,
    /// How often a local config source is checked for changes.
    pub watch_interval: Duration,
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
    }

    /// Resolves when the gateway has stopped on its own (a listener failed).
    pub async fn stopped(&mut self) {
        self.shutdown.cancelled().await;
    }
}

/// Loads the config once, binds both listeners and starts serving.
pub async fn start(settings: Settings, source: ConfigSource) -> std::io::Result<Running> {
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(std::io::Error::other)?;
    let gateway = Arc::new(Gateway {
        snapshot: ArcSwap::from_pointee(Snapshot::empty()),
        sessions: Sessions::new(settings.session_idle_timeout, settings.max_sessions),
        metrics: Metrics::new(),
        ready: AtomicBool::new(false),
    });
    let mut loader = Loader::new(source, http);
    loader.poll(&gateway);

    let mcp_listener = TcpListener::bind(settings.listen).await?;
    let admin_listener = TcpListener::bind(settings.admin_listen).await?;
    let (mcp_addr, admin_addr) = (mcp_listener.local_addr()?, admin_listener.local_addr()?);
    let shutdown = CancellationToken::new();

    let app = axum::Router::new()
        .fallback(mcp::endpoint::handle)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .with_state(Arc::clone(&gateway));
    let mut tasks = vec![
        serve(mcp_listener, app, shutdown.clone()),
        serve(admin_listener, admin::router(Arc::clone(&gateway)), shutdown.clone()),
        tokio::spawn(expire_sessions(Arc::clone(&gateway), shutdown.clone())),
    ];
    if loader.watches() {
        tasks.push(tokio::spawn(watch(loader, Arc::clone(&gateway), settings.watch_interval, shutdown.clone())));
    }
    tracing::info!(%mcp_addr, %admin_addr, "gateway listening");
    Ok(Running { mcp_addr, admin_addr, gateway, shutdown, tasks })
}

fn serve(listener: TcpListener, app: axum::Router, shutdown: CancellationToken) -> JoinHandle<()> {
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
            _ = tokio::time::sleep(interval) => loader.poll(&gateway),
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
            tracing::info!(session = %session.id, "session expired after idling");
            session.close().await;
        }
        gateway.metrics.sessions.set(gateway.sessions.count() as i64);
    }
}
