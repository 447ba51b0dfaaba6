//! Command-line arguments of `manifold-gateway`, logging set-up, and the run loop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::{ConfigSource, Settings};

/// Manifold's MCP gateway: serves every tenant's MCP routes.
#[derive(Parser, Debug)]
#[command(version, about)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["manifests", "config"]))]
pub struct Args {
    /// Local mode: compile and serve every manifest (YAML) below DIR, reloading on change.
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// Serve a compiled GatewayConfig (from `manifold-operator render`), reloading on change.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the MCP listener.
    #[arg(long, env = "MANIFOLD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the admin listener (/healthz, /readyz, /metrics, /status).
    #[arg(long, env = "MANIFOLD_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// End the upstream sessions a replica opened for a session itself (not carried in the
    /// session's token: lazily opened mounts, upstream sessions opened again after a 404)
    /// after this many idle seconds, and drop the session's entry. Entries holding nothing
    /// but what the token says go after a minute.
    #[arg(long, default_value_t = 3600)]
    pub session_idle_secs: u64,
    /// Session keys: one base64-encoded 32-byte key per line, the current one first (every
    /// replica needs the same file). Without it, a key is made up at start-up and sessions
    /// do not survive a restart.
    #[arg(long, env = "MANIFOLD_SESSION_KEYS_FILE", value_name = "FILE")]
    pub session_keys: Option<PathBuf>,
    /// Refuse sessions older than this many seconds.
    #[arg(long, default_value_t = 24 * 3600)]
    pub session_max_age_secs: u64,
    /// Let OpenAPI sub-servers and spec URLs reach link-local and cloud-metadata addresses
    /// (169.254.0.0/16, fe80::/10, fd00:ec2::254), refused by default: that is where cloud
    /// instance credentials are served.
    #[arg(long)]
    pub allow_link_local_upstreams: bool,
    /// How often to check the config source for changes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub watch_interval_ms: u64,
    /// Most session entries this replica keeps in memory (sessions in use here); beyond it,
    /// sessions are served from their tokens alone, without cancellation or announcements.
    #[arg(long, default_value_t = 100_000)]
    pub max_sessions: usize,
    /// Most items on one page of a merged list (tools/list and the like); clients follow
    /// `nextCursor` for the rest.
    #[arg(long, default_value_t = 500)]
    pub list_page_size: usize,
    /// Threads serving MCP (default: one per CPU).
    #[arg(long, env = "MANIFOLD_WORKERS")]
    pub workers: Option<usize>,
    /// Shortest time, in seconds, between two fetches of a JWKS caused by tokens naming
    /// unknown key ids (a rotation is picked up at once; a flood of made-up ids is not).
    #[arg(long, default_value_t = 10)]
    pub jwks_refetch_secs: u64,
    /// Append the audit log (JSON lines) to this file instead of stdout.
    #[arg(long, env = "MANIFOLD_AUDIT_LOG", value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "MANIFOLD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Args {
    pub fn settings(&self) -> Settings {
        Settings {
            listen: self.listen,
            admin_listen: self.admin_listen,
            max_body_bytes: self.max_body_bytes,
            session_idle_timeout: Duration::from_secs(self.session_idle_secs),
            watch_interval: Duration::from_millis(self.watch_interval_ms.max(50)),
            workers: self.workers.unwrap_or(Settings::default().workers),
            max_sessions: self.max_sessions,
            list_page_size: self.list_page_size.max(1),
            jwks_refetch_cooldown: Duration::from_secs(self.jwks_refetch_secs),
            audit_log: self.audit_log.clone(),
            session_keys: self.session_keys.clone(),
            session_max_age: Duration::from_secs(self.session_max_age_secs),
            egress: crate::upstream::openapi::Egress { allow_link_local: self.allow_link_local_upstreams },
        }
    }

    pub fn source(&self) -> ConfigSource {
        match (&self.manifests, &self.config) {
            (Some(dir), _) => ConfigSource::Manifests(dir.clone()),
            (None, Some(file)) => ConfigSource::File(file.clone()),
            (None, None) => unreachable!("clap requires one source"),
        }
    }
}

/// Logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs until Ctrl-C or SIGTERM, then drains.
pub async fn run(args: Args) -> std::io::Result<()> {
    let mut running = crate::start(args.settings(), args.source()).await?;
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        _ = running.stopped() => {}
    }
    running.shutdown().await;
    Ok(())
}

/// Ctrl-C or SIGTERM.
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
