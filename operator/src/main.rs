//! `manifold-operator`: parse arguments, run the subcommand.
#![forbid(unsafe_code)]

use clap::Parser;
use manifold_operator::{Args, Command};

fn main() {
    let args = Args::parse();
    let code = match &args.command {
        Command::Render(render) => manifold_operator::render::run(render),
        Command::Run(run) => {
            manifold_runtime::logs::init(run.log_format);
            let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
            let result = runtime.block_on(async {
                // Spans reach the collector through `opentelemetry::global`'s provider.
                let telemetry = manifold_runtime::telemetry::init(&run.telemetry, "manifold-operator")?;
                let result = manifold_operator::run::run(run, manifold_runtime::signal::shutdown()).await;
                telemetry.shutdown().await;
                result
            });
            match result {
                Ok(()) => 0,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    1
                }
            }
        }
    };
    std::process::exit(code);
}
