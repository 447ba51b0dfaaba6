//! `make quickstart`: Manifold on its embedded default, with no cluster and nothing else to
//! run. Starts the `math` and `text` sample servers on loopback, serves the manifests of
//! `examples/quickstart/` (embedded in this binary) in front of them, prints the MCP URL,
//! and runs until Ctrl-C.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use manifold_api::manifests::Source;
use manifold_gateway::{ConfigSource, Settings};
use manifold_samples::{Sample, serve_with_shutdown};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const SERVERS: &str = include_str!("../../../quickstart/servers.yaml");
const ROUTE: &str = include_str!("../../../quickstart/route.yaml");
const ROUTE_PATH: &str = "/demo/quickstart/mcp";

/// Manifold's quickstart: two sample MCP servers mounted behind one route.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address of the gateway's MCP listener.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address of the gateway's admin listener (/healthz, /readyz, /metrics).
    #[arg(long, default_value = "127.0.0.1:9090")]
    admin_listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    manifold_runtime::logs::init(manifold_runtime::logs::LogFormat::Pretty);

    // The samples listen on ephemeral ports; the embedded manifests are pointed at them.
    let shutdown = CancellationToken::new();
    let mut servers = SERVERS.to_owned();
    for (sample, default_addr) in [(Sample::Math, "127.0.0.1:9301"), (Sample::Text, "127.0.0.1:9302")] {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding a sample server")?;
        servers = servers.replace(default_addr, &listener.local_addr()?.to_string());
        tokio::spawn(serve_with_shutdown(sample, listener, shutdown.clone()));
    }
    let sources = vec![
        Source { origin: "examples/quickstart/servers.yaml".into(), text: servers },
        Source { origin: "examples/quickstart/route.yaml".into(), text: ROUTE.into() },
    ];
    let settings = Settings { listen: args.listen, admin_listen: args.admin_listen, ..Settings::default() };
    let running = manifold_gateway::start(settings, ConfigSource::Embedded(sources))
        .await
        .with_context(|| format!("starting the gateway on {} (try --listen 127.0.0.1:0)", args.listen))?;

    let url = running.url(ROUTE_PATH);
    let admin = running.admin_addr;
    // Written without println!: a closed stdout must not take the gateway down.
    let _ = writeln!(
        std::io::stdout(),
        "\nManifold is serving MCP at {url}\n\n\
         Try it (the venv comes from `make test` or `scripts/install-peers.sh`):\n  \
         .venv/bin/fastmcp list {url}\n  \
         .venv/bin/fastmcp call {url} math_add a=2 b=40\n  \
         .venv/bin/fastmcp call {url} text_reverse text=manifold\n\n\
         Metrics: http://{admin}/metrics   Stop: Ctrl-C"
    );

    manifold_runtime::signal::shutdown().await;
    running.shutdown().await;
    shutdown.cancel();
    Ok(())
}
