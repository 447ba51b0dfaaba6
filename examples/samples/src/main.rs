//! `manifold-samples`: runs the `math` and `text` sample MCP servers until Ctrl-C.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use manifold_samples::{MCP_PATH, Sample, serve_with_shutdown};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Sample MCP servers (stateless streamable HTTP, JSON responses).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Listen address of the `math` server.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9301")]
    math: SocketAddr,
    /// Listen address of the `text` server.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9302")]
    text: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // rmcp logs every stateless request at info; keep the hot path quiet.
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn")),
        )
        .init();
    let args = Args::parse();

    let shutdown = CancellationToken::new();
    let mut servers = JoinSet::new();
    for (sample, addr) in [(Sample::Math, args.math), (Sample::Text, args.text)] {
        let listener =
            TcpListener::bind(addr).await.with_context(|| format!("binding the {sample} server to {addr}"))?;
        let url = format!("http://{}{MCP_PATH}", listener.local_addr()?);
        println!("{sample}: {url}");
        let shutdown = shutdown.clone();
        servers.spawn(async move {
            serve_with_shutdown(sample, listener, shutdown).await.with_context(|| format!("serving {sample}"))
        });
    }

    tokio::select! {
        _ = manifold_runtime::signal::shutdown() => {
            tracing::info!("shutting down");
            shutdown.cancel();
            while let Some(result) = servers.join_next().await {
                result??;
            }
            Ok(())
        }
        Some(result) = servers.join_next() => {
            // A server stopped on its own: that is always an error.
            shutdown.cancel();
            result??;
            anyhow::bail!("a sample server stopped unexpectedly")
        }
    }
}
