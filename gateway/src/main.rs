//! `manifold-gateway`: parse arguments, set up logging, run.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = manifold_gateway::cli::Args::parse();
    manifold_gateway::cli::init_tracing(args.log_format);
    manifold_gateway::cli::run(args).await?;
    Ok(())
}
