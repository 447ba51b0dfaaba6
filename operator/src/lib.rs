//! Manifold's operator: `render` compiles manifests offline into the GatewayConfig a gateway
//! serves (for GitOps review, CI checks, and `manifold-gateway --config`); `run` is the
//! controller: it watches the cluster (`watches`), elects a leader (`leader`), and
//! reconciles (`reconcile`): compile, publish the gateway-config Secrets (`publish`), and
//! write statuses (`status`) that say what clients see (`probe`, `programmed`).
#![forbid(unsafe_code)]

pub mod documents;
pub mod leader;
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

/// Manifold's operator.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compile manifests (files or directories of YAML) into a GatewayConfig on stdout.
    /// Each object's outcome goes to stderr; the exit code is 1 when any object is rejected.
    Render(render::RenderArgs),
    /// Run the controller: watch McpServers and McpRoutes, publish the gateways' config,
    /// write status (the replica holding the Lease).
    Run(run::RunArgs),
}
