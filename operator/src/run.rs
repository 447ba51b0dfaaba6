//! `manifold-operator run`: the wiring. Arguments and a client configuration in; a running
//! controller ([`crate::controller`]) out, with what it needs: the watches
//! ([`crate::watches`]), the Lease ([`crate::leader`]), the permission checks
//! ([`crate::permissions`]), and `/healthz`, `/readyz` and `/metrics` on the admin address
//! ([`crate::admin`], [`crate::metrics`]). Followers keep their caches warm, and take over
//! when the Lease expires or is released.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::stream;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client, Resource};
use manifold_api::egress::Egress;
use manifold_api::resources::{McpRoute, McpServer};
use manifold_runtime::backoff::Backoff;
pub use manifold_runtime::logs::LogFormat;
use manifold_runtime::pod;

use crate::admin;
use crate::controller::{Controller, MAX_RETRY, PROGRAMMED_POLL, RETRY};
use crate::debounce::Debounce;
use crate::documents::Fetcher;
use crate::leader::{self, Elector};
use crate::metrics::Metrics;
use crate::permissions::{self, Checker};
use crate::probe::Prober;
use crate::reconcile::Reconciler;
use crate::watches::{self, Changed, Referenced};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The gateway's namespace, where the config is published and the Lease is held.
    /// Default: the service account's namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// The Helm release: names the config Secrets and the Lease.
    #[arg(long, env = "MANIFOLD_RELEASE", default_value = "manifold")]
    pub release: String,
    /// Watch only these namespaces (repeatable); default: all.
    #[arg(long = "watch-namespace", value_name = "NAMESPACE")]
    pub watch_namespaces: Vec<String>,
    /// This replica's name in the Lease. Default: the host name.
    #[arg(long, env = "POD_NAME")]
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
    /// Log format.
    #[arg(long, env = "MANIFOLD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub telemetry: manifold_runtime::telemetry::TelemetryArgs,
}

/// Runs the controller until `shutdown` resolves (SIGTERM or Ctrl-C, in the binary), with
/// the client configuration the environment gives (in-cluster, or `KUBECONFIG`).
pub async fn run(args: &RunArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let config = kube::Config::infer().await.context("cannot configure a Kubernetes client")?;
    run_with(config, args, shutdown).await
}

/// Runs the controller against the API server `config` reaches until `shutdown` resolves;
/// the Lease is then given up, so another replica takes over at once. (A `Config` rather
/// than a `Client`: the operator makes two clients of it, one that tells the permission
/// checker of every 403, and the reviews' own.)
pub async fn run_with(config: kube::Config, args: &RunArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    // Every 403 the API server answers the operator brings a permission check.
    let forbidden = Arc::new(tokio::sync::Notify::new());
    let client =
        permissions::noticing_forbidden(config.clone(), &forbidden).context("cannot configure a Kubernetes client")?;
    ensure_api(&client).await?;
    let namespace = pod::namespace(args.namespace.as_deref(), Path::new(pod::SERVICE_ACCOUNT_NAMESPACE))
        .context("no --namespace or POD_NAMESPACE, and no service account namespace: say where the gateways run")?;
    let identity = args
        .identity
        .clone()
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
    let events = stream::select_all([
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
    let (leadership, keeper) = leader::keep(elector, {
        let stop = Arc::clone(&stop);
        async move { stop.notified().await }
    });
    let mut reconciler = Reconciler::new(client.clone(), &args.release, &namespace);
    reconciler.leadership = leadership.clone();
    if let Some(url) = &args.gateway_url {
        reconciler.gateway_url.clone_from(url);
    }
    let egress = Egress { allow_link_local: args.allow_link_local_upstreams };
    let controller = Controller {
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
        poll: Backoff::new(PROGRAMMED_POLL, MAX_RETRY),
        retry: Backoff::new(RETRY, MAX_RETRY),
        metrics,
    };
    tracing::info!(namespace = %controller.namespace, release = %args.release, %identity, "operator started");
    controller.run(events, leadership, &listed, &ready, shutdown).await;
    tracing::info!("shutting down");
    // Give the Lease up, so another replica takes over at once.
    stop.notify_one();
    let _ = tokio::time::timeout(Duration::from_secs(5), keeper).await;
    Ok(())
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

    #[test]
    fn the_log_format_is_text_json_or_the_gateways_pretty() {
        use clap::Parser;
        let format = |extra: &[&str]| {
            let parsed = crate::Args::try_parse_from([&["manifold-operator", "run"], extra].concat()).expect("parses");
            let crate::Command::Run(run) = parsed.command else { unreachable!("the run subcommand") };
            run.log_format
        };
        assert_eq!(format(&["--log-format", "json"]), LogFormat::Json);
        assert_eq!(format(&["--log-format", "text"]), LogFormat::Pretty, "the operator's first name for it");
        assert_eq!(format(&["--log-format", "pretty"]), LogFormat::Pretty);
        assert!(crate::Args::try_parse_from(["manifold-operator", "run", "--log-format", "yaml"]).is_err());
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
