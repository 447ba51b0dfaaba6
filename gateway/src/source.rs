//! Where config comes from. Without a cluster: a directory of manifests compiled here, a
//! precompiled GatewayConfig file (`manifold-operator render`), or manifests held in memory;
//! such a source is polled by the `Loader`. In a cluster: the Secrets the operator publishes,
//! watched by `kube_source`. Both hand a config to [`crate::apply`], which swaps it in
//! atomically; a change that cannot be read keeps the last good config serving, with the
//! reason logged.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use manifold_api::manifests::{self, Source};
use manifold_api::outcome::Serving;
use manifold_api::{GatewayConfig, compile};

use crate::Gateway;
use crate::apply::apply;
use crate::metrics::{Load, LoadLabels};
use crate::snapshot::ClientPool;
use crate::specs::Specs;
use manifold_runtime::egress::Egress;

/// A source the gateway reads itself, polled by the [`Loader`].
pub enum Local {
    /// Every `*.yaml`, `*.yml` and `*.json` file below a directory: McpServers, McpRoutes,
    /// Secrets and ConfigMaps, compiled by the gateway.
    Manifests(PathBuf),
    /// A compiled GatewayConfig (YAML or JSON).
    File(PathBuf),
    /// Manifests held in memory (the quickstart).
    Embedded(Vec<Source>),
}

/// Loads config from a local source into a gateway, remembering what it last applied.
pub struct Loader {
    source: Local,
    pool: ClientPool,
    /// OpenAPI documents the manifests name by URL.
    specs: Specs,
    /// Where upstreams, documents and discovery may connect.
    egress: Egress,
    last_read: Option<u64>,
    /// The fingerprint of sources that did not parse.
    rejected: Option<u64>,
}

impl Loader {
    /// A loader for `source`, whose upstreams, spec URLs and discovery connect only where
    /// `egress` allows.
    pub fn new(source: Local, egress: Egress, tokens: std::sync::Arc<crate::upstream::identity::Tokens>) -> Self {
        let pool = ClientPool::new(egress, tokens);
        Loader { source, pool, specs: Specs::new(egress), egress, last_read: None, rejected: None }
    }

    /// Whether the source can change, and is polled.
    pub fn watches(&self) -> bool {
        matches!(self.source, Local::Manifests(_) | Local::File(_))
    }

    /// Reads the source and applies what changed.
    pub async fn poll(&mut self, gateway: &Gateway) {
        let texts = match self.read() {
            Ok(texts) => texts,
            Err(error) => return self.reject(gateway, &error),
        };
        let read = fingerprint(&texts);
        // Unchanged sources are read again only to refetch a due document, and not at all
        // after they were rejected (they would be rejected, and logged, every poll).
        if self.last_read == Some(read) && (!self.specs.due() || self.rejected == Some(read)) {
            return;
        }
        self.rejected = None;
        let unchanged = self.last_read == Some(read);
        self.last_read = Some(read);
        let current = gateway.snapshot.load_full();
        let previous = gateway.ready.load(Ordering::Acquire).then_some(current.config.as_ref());
        let config = match &self.source {
            Local::File(path) => match GatewayConfig::from_text(&texts[0].text) {
                Ok(config) => config,
                Err(error) => return self.reject(gateway, &format!("{}: {error}", path.display())),
            },
            Local::Manifests(_) | Local::Embedded(_) => {
                let mut read = match manifests::read(&texts) {
                    Ok(read) => read,
                    Err(error) => {
                        self.rejected = self.last_read;
                        return self.reject(gateway, &error.to_string());
                    }
                };
                let fetched = self.specs.refresh(&read.inputs.servers).await;
                if unchanged && !fetched {
                    return;
                }
                read.inputs.documents = self.specs.documents();
                let (config, outcomes) = compile_manifests(read, previous, self.egress).await;
                gateway.report.lock().expect("report lock").objects = outcomes;
                config
            }
        };
        apply(gateway, config, &mut self.pool);
    }

    fn reject(&self, gateway: &Gateway, error: &str) {
        gateway.metrics.config_loads.inc(&LoadLabels { outcome: Load::Rejected });
        let generation = gateway.snapshot.load().config.generation;
        tracing::error!(%error, serving_generation = generation, "config change rejected; still serving the last good config");
    }

    fn read(&self) -> Result<Vec<Source>, String> {
        match &self.source {
            Local::Embedded(sources) => {
                Ok(sources.iter().map(|s| Source { origin: s.origin.clone(), text: s.text.clone() }).collect())
            }
            Local::File(path) => Ok(vec![read_file(path)?]),
            Local::Manifests(dir) => {
                let files = manifold_runtime::files::manifests(dir).map_err(|e| e.to_string())?;
                files.iter().map(|path| read_file(path)).collect()
            }
        }
    }
}

fn read_file(path: &Path) -> Result<Source, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Source { origin: path.display().to_string(), text })
}

/// Compiles manifests, logging every object's outcome. Routes where tool names can collide
/// are compiled again with what their servers offer (see `discover`).
async fn compile_manifests(
    mut read: manifests::Manifests,
    previous: Option<&GatewayConfig>,
    egress: Egress,
) -> (GatewayConfig, Vec<manifold_api::outcome::Outcome>) {
    for ignored in &read.ignored {
        tracing::debug!(object = %ignored, "ignored: not a kind the gateway reads");
    }
    let mut compiled = compile(&read.inputs, previous);
    read.inputs.discovered = crate::discover::discover(&compiled.config, egress).await;
    if !read.inputs.discovered.is_empty() {
        compiled = compile(&read.inputs, previous);
    }
    for outcome in &compiled.outcomes {
        if outcome.is_ok() {
            tracing::info!(object = %outcome.object, path = outcome.path.as_deref(), "accepted");
        } else {
            for failure in outcome.failures() {
                match outcome.serving {
                    Serving::LastValid => {
                        tracing::warn!(object = %outcome.object, "{failure}; still serving its last valid version")
                    }
                    _ => tracing::warn!(object = %outcome.object, "{failure}"),
                }
            }
        }
    }
    (compiled.config, compiled.outcomes)
}

/// A cheap fingerprint of what was read, to skip recompiling an unchanged source.
fn fingerprint(sources: &[Source]) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    for source in sources {
        source.origin.hash(&mut hasher);
        source.text.hash(&mut hasher);
    }
    hasher.finish()
}
