//! `manifold-operator render`: manifests in (files and directories), a compiled
//! GatewayConfig out on stdout, one line per rejected object on stderr.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use manifold_api::compile;
use manifold_api::manifests::{self, Source};

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// Manifest files or directories (read recursively: *.yaml, *.yml, *.json). Repeatable.
    #[arg(short = 'f', long = "filename", required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    Yaml,
    Json,
}

/// Why render could not produce a config at all.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(transparent)]
    Manifests(#[from] manifests::ManifestError),
}

/// What render produced: the serialized config and whether every object was accepted.
pub struct Rendered {
    pub output: String,
    pub failures: Vec<String>,
}

/// Compiles the manifests under `paths`.
pub fn render(args: &RenderArgs) -> Result<Rendered, RenderError> {
    let mut files = Vec::new();
    for path in &args.paths {
        let found = manifold_runtime::files::manifests(path)
            .map_err(|e| RenderError::Read { path: e.path.display().to_string(), source: e.source })?;
        files.extend(found);
    }
    let sources = files
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .map(|text| Source { origin: path.display().to_string(), text })
                .map_err(|source| RenderError::Read { path: path.display().to_string(), source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let read = manifests::read(&sources)?;
    let compiled = compile(&read.inputs, None);
    let output = match args.output {
        Format::Yaml => serde_yaml::to_string(&compiled.config).expect("config serializes"),
        Format::Json => serde_json::to_string_pretty(&compiled.config).expect("config serializes") + "\n",
    };
    let failures = compiled.outcomes.iter().flat_map(|o| o.failures()).collect();
    Ok(Rendered { output, failures })
}

/// Runs render as the CLI does; returns the process exit code.
pub fn run(args: &RenderArgs) -> i32 {
    match render(args) {
        Ok(rendered) => {
            let _ = std::io::stdout().write_all(rendered.output.as_bytes());
            for failure in &rendered.failures {
                eprintln!("rejected: {failure}");
            }
            i32::from(!rendered.failures.is_empty())
        }
        Err(error) => {
            eprintln!("error: {error}");
            2
        }
    }
}
