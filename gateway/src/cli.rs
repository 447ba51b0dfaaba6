//! Command-line arguments of `manifold-gateway`, and the run loop (logging, the pod namespace and
//! the shutdown signal come from `manifold_runtime`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
pub use manifold_runtime::logs::LogFormat;
use manifold_runtime::pod::{self, SERVICE_ACCOUNT_NAMESPACE};
use manifold_runtime::telemetry::{self, TelemetryArgs};

use crate::policy::cluster::{RedisSettings, RedisUrl, Unavailable};
use crate::{ConfigSource, KubeSource, Settings};

/// Manifold's MCP gateway: serves every tenant's MCP routes.
#[derive(Parser, Debug)]
#[command(version, about)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["manifests", "config", "kube"]))]
pub struct Args {
    /// Local mode: compile and serve every manifest (YAML) below DIR, reloading on change.
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// Serve a compiled GatewayConfig (from `manifold-operator render`), reloading on change.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Cluster mode: serve the config the operator publishes as Secrets in the gateway's own
    /// namespace, watched through the Kubernetes API (needs get/list/watch on Secrets there).
    #[arg(long)]
    pub kube: bool,
    /// With --kube: the gateway's namespace, where the operator publishes its config. Default:
    /// the pod's service account namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// With --kube: the release whose config to serve (Secrets `<release>-gateway-config`,
    /// `-1`…, labelled `manifold.dev/gateway-config=<release>`).
    #[arg(long, env = "MANIFOLD_RELEASE", default_value = "manifold")]
    pub release: String,
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
    /// Let upstreams (remote MCP servers, OpenAPI sub-servers) and spec URLs reach link-local
    /// and cloud-metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254), refused by
    /// default: that is where cloud instance credentials are served.
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
    /// Bytes of tool results and merged lists kept for routes that declare `caching`, on
    /// this replica; past it, the least recently used go.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub cache_bytes: usize,
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
    /// Count rate limits in this Redis, shared by every replica:
    /// redis://[user:password@]host:port[/db]. Without it, each replica counts for itself.
    #[arg(long, env = "MANIFOLD_RATE_LIMIT_REDIS", value_name = "URL", hide_env_values = true)]
    pub rate_limit_redis: Option<RedisUrl>,
    /// While Redis does not answer, requests that a rate limit counts are counted by this
    /// replica's own buckets (`open`: limits hold per replica) or refused with a retry hint
    /// (`closed`).
    #[arg(long, env = "MANIFOLD_RATE_LIMIT_REDIS_UNAVAILABLE", value_enum, default_value_t = Unavailable::Open)]
    pub rate_limit_redis_unavailable: Unavailable,
    /// The longest a request waits for Redis, in milliseconds, before it is decided as Redis
    /// being unavailable.
    #[arg(long, env = "MANIFOLD_RATE_LIMIT_REDIS_TIMEOUT_MS", default_value_t = 50)]
    pub rate_limit_redis_timeout_ms: u64,
    /// Keep per-user upstream tokens (oauth2AuthorizationCode consents), sealed with the
    /// session keys, in this Redis (redis://[user:password@]host:port[/db], shared by every
    /// replica) or this file (local mode, mode 0600). Default: the --rate-limit-redis Redis,
    /// else memory (callers consent again after a restart).
    #[arg(long, env = "MANIFOLD_TOKEN_STORE", value_name = "URL|PATH", hide_env_values = true)]
    pub token_store: Option<crate::upstream::identity::store::Setting>,
    /// Log format.
    #[arg(long, env = "MANIFOLD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
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
            cache_bytes: self.cache_bytes,
            jwks_refetch_cooldown: Duration::from_secs(self.jwks_refetch_secs),
            audit_log: self.audit_log.clone(),
            session_keys: self.session_keys.clone(),
            session_max_age: Duration::from_secs(self.session_max_age_secs),
            egress: manifold_runtime::egress::Egress { allow_link_local: self.allow_link_local_upstreams },
            rate_limit_redis: self.rate_limit_redis.clone().map(|url| RedisSettings {
                url,
                unavailable: self.rate_limit_redis_unavailable,
                timeout: Duration::from_millis(self.rate_limit_redis_timeout_ms.max(1)),
            }),
            token_store: self.token_store.clone(),
            tracer: None,
            meter: None,
        }
    }

    /// The config source the arguments name; `--kube` makes a client from the pod's service
    /// account or the kubeconfig (no request is made yet).
    pub async fn source(&self) -> Result<ConfigSource, StartError> {
        match (&self.manifests, &self.config) {
            (Some(dir), _) => Ok(ConfigSource::Manifests(dir.clone())),
            (None, Some(file)) => Ok(ConfigSource::File(file.clone())),
            (None, None) => {
                let namespace = namespace(self.namespace.as_deref(), Path::new(SERVICE_ACCOUNT_NAMESPACE))?;
                let client = kube::Client::try_default().await.map_err(StartError::KubeClient)?;
                Ok(ConfigSource::Kube(KubeSource { client, namespace, release: self.release.clone() }))
            }
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `--kube` without a namespace to watch.
    #[error(
        "--kube needs the gateway's namespace: pass --namespace, set POD_NAMESPACE (downward API: \
         fieldRef metadata.namespace), or run in a pod with its service account mounted ({path} could not be read: {error})"
    )]
    NoNamespace { path: String, error: std::io::Error },
    /// Which one is in the error's source.
    #[error(
        "--kube: no Kubernetes client configuration: run in a pod with its service account token mounted, or set \
         KUBECONFIG"
    )]
    KubeClient(#[source] kube::Error),
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The namespace `--kube` watches: the flag (or `POD_NAMESPACE`), else the service account's.
pub fn namespace(flag: Option<&str>, service_account: &Path) -> Result<String, StartError> {
    pod::namespace(flag, service_account)
        .map_err(|missing| StartError::NoNamespace { path: missing.path, error: missing.error })
}

/// Runs until Ctrl-C or SIGTERM, then drains, and exports the spans still queued.
pub async fn run(args: Args) -> Result<(), StartError> {
    let telemetry = telemetry::init(&args.telemetry, "manifold-gateway")?;
    let settings = crate::Settings {
        tracer: telemetry.tracer().cloned(),
        meter: telemetry.meter("manifold-gateway"),
        ..args.settings()
    };
    let mut running = crate::start(settings, args.source().await?).await?;
    tokio::select! {
        _ = manifold_runtime::signal::shutdown() => tracing::info!("shutting down"),
        _ = running.stopped() => {}
    }
    running.shutdown().await;
    telemetry.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_comes_from_the_flag_then_the_service_account() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("namespace");
        assert_eq!(namespace(Some("gateways"), &file).unwrap(), "gateways");
        let error = namespace(None, &file).unwrap_err().to_string();
        assert!(
            error.starts_with("--kube needs the gateway's namespace: pass --namespace, set POD_NAMESPACE"),
            "{error}"
        );
        assert!(error.contains(&file.display().to_string()), "{error}");
        std::fs::write(&file, "manifold-system\n").unwrap();
        assert_eq!(namespace(None, &file).unwrap(), "manifold-system");
        assert_eq!(namespace(Some(""), &file).unwrap(), "manifold-system");
    }

    #[test]
    fn kube_is_a_source_and_names_a_release() {
        let args = Args::try_parse_from(["manifold-gateway", "--kube", "--namespace", "gw"]).unwrap();
        assert!(args.kube);
        assert_eq!((args.namespace.as_deref(), args.release.as_str()), (Some("gw"), "manifold"));
        let both = Args::try_parse_from(["manifold-gateway", "--kube", "--config", "c.yaml"]).unwrap_err();
        assert_eq!(both.kind(), clap::error::ErrorKind::ArgumentConflict);
        let none = Args::try_parse_from(["manifold-gateway"]).unwrap_err();
        assert_eq!(none.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn the_token_store_is_a_redis_url_or_a_file() {
        use crate::upstream::identity::store::Setting;
        let parse = |value: &str| Args::try_parse_from(["manifold-gateway", "--kube", "--token-store", value]);
        let Some(Setting::Redis(url)) = parse("redis://:pw@redis:6379/2").unwrap().settings().token_store else {
            panic!("a Redis store")
        };
        assert_eq!(url.to_string(), "redis://:redacted@redis:6379/2");
        let Some(Setting::File(path)) = parse("/var/lib/manifold/tokens.json").unwrap().settings().token_store else {
            panic!("a file store")
        };
        assert_eq!(path, PathBuf::from("/var/lib/manifold/tokens.json"));
        let message = parse("http://redis:6379").unwrap_err().to_string();
        assert!(message.contains("scheme `http` is not supported"), "{message}");
        assert!(Args::try_parse_from(["manifold-gateway", "--kube"]).unwrap().settings().token_store.is_none());
    }

    #[test]
    fn redis_for_rate_limits_is_optional_fails_open_by_default_and_a_bad_url_is_named() {
        let local = Args::try_parse_from(["manifold-gateway", "--kube"]).unwrap().settings();
        assert!(local.rate_limit_redis.is_none());
        let args = ["manifold-gateway", "--kube", "--rate-limit-redis", "redis://:pw@redis:6379/1"];
        let redis = Args::try_parse_from(args).unwrap().settings().rate_limit_redis.expect("Redis settings");
        assert_eq!(redis.url.to_string(), "redis://:redacted@redis:6379/1");
        assert_eq!((redis.unavailable, redis.timeout), (Unavailable::Open, Duration::from_millis(50)));
        let closed = [&args[..], &["--rate-limit-redis-unavailable", "closed", "--rate-limit-redis-timeout-ms", "20"]];
        let redis = Args::try_parse_from(closed.concat()).unwrap().settings().rate_limit_redis.expect("Redis settings");
        assert_eq!((redis.unavailable, redis.timeout), (Unavailable::Closed, Duration::from_millis(20)));
        let bad =
            Args::try_parse_from(["manifold-gateway", "--kube", "--rate-limit-redis", "redis.svc:6379"]).unwrap_err();
        let message = bad.to_string();
        assert!(
            message.contains("--rate-limit-redis <URL>") && message.contains("scheme `redis.svc` is not supported"),
            "{message}"
        );
    }
}
