//! Manifold's operator. Today: `render`, which compiles manifests offline into the
//! GatewayConfig a gateway serves (for GitOps review, CI checks, and `manifold-gateway
//! --config`). The controller that reconciles a cluster comes next.
#![forbid(unsafe_code)]

pub mod render;

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
}
