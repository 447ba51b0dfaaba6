//! Manifold's operator: `render` compiles manifests offline into the GatewayConfig a gateway
//! serves (for GitOps review, CI checks, and `manifold-gateway --config`); `run` is the
//! controller, wired up there: it watches the cluster (`watches`), elects a leader
//! (`leader`), and its loop (`controller`, timed by `debounce` and the shared backoff) reconciles
//! (`reconcile`): a pure plan (compile, judging, diffing), then publishing the gateway-config
//! Secrets (`publish`) and writing statuses (`status`) that say what clients see (`probe`,
//! `programmed`). It checks the permissions it needs (`permissions`) and serves `/readyz`
//! and `/metrics` (`admin`, `metrics`).
#![forbid(unsafe_code)]

pub mod admin;
pub mod controller;
pub mod debounce;
pub mod documents;
pub mod leader;
pub mod metrics;
pub mod permissions;
pub mod probe;
pub mod programmed;
pub mod publish;
pub mod reconcile;
pub mod render;
pub mod run;
pub mod status;
#[cfg(test)]
mod testing;
pub mod watches;

use clap::{Parser, Subcommand};

/// `call`, or an error once `limit` has passed: an API call the client's own (long, for
/// watches) timeout would let hang.
pub(crate) async fn in_time<T>(
    limit: std::time::Duration,
    call: impl Future<Output = kube::Result<T>>,
) -> kube::Result<T> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| Err(kube::Error::Service("no answer in time".into())))
}

/// Manifold's operator.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
// Parsed once at start-up: the size of `run`'s arguments costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Compile manifests (files or directories of YAML) into a GatewayConfig on stdout.
    /// Each object's outcome goes to stderr; the exit code is 1 when any object is rejected.
    Render(render::RenderArgs),
    /// Run the controller: watch McpServers and McpRoutes, publish the gateways' config,
    /// write status (the replica holding the Lease).
    Run(run::RunArgs),
}
