//! `manifold-operator`: parse arguments, run the subcommand.
#![forbid(unsafe_code)]

use clap::Parser;
use manifold_operator::{Args, Command};

fn main() {
    let args = Args::parse();
    let code = match &args.command {
        Command::Render(render) => manifold_operator::render::run(render),
        Command::Run(run) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
                )
                .init();
            let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
            match runtime.block_on(manifold_operator::run::run(run, manifold_operator::run::shutdown_signal())) {
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
