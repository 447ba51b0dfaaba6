//! `manifold-gateway`: parse arguments, set up logging, run.
#![forbid(unsafe_code)]

use clap::Parser;

// MCP is served by per-core worker threads (see `Settings::workers`); this runtime only
// runs the admin listener, the config watcher and session expiry.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = manifold_gateway::cli::Args::parse();
    manifold_runtime::logs::init(args.log_format);
    manifold_gateway::cli::run(args).await?;
    Ok(())
}
