//! `manifold-operator`: parse arguments, run the subcommand.
#![forbid(unsafe_code)]

use clap::Parser;
use manifold_operator::{Args, Command};

fn main() {
    let args = Args::parse();
    let code = match &args.command {
        Command::Render(render) => manifold_operator::render::run(render),
    };
    std::process::exit(code);
}
