//! The config the operator publishes, read through the Kubernetes API (`--kube`). A watcher
//! lists and watches the Secrets labelled `manifold.dev/gateway-config=<release>` in the
//! gateway's own namespace (nothing else: get/list/watch on Secrets there is all it needs)
//! and keeps the current set of shards. After every change the set is assembled
//! (`manifold_api::publish::assemble`); a complete, verified config goes to
//! [`crate::apply`], anything else leaves the last good config serving. Watch failures are
//! retried with backoff, and serving goes on meanwhile.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use manifold_api::publish::{self, AssembleError};
use tokio_util::sync::CancellationToken;

use crate::Gateway;
use crate::apply::apply;
use crate::metrics::{Load, LoadLabels};
use crate::snapshot::ClientPool;
use manifold_runtime::egress::Egress;

/// Where the operator publishes this gateway's config.
pub struct KubeSource {
    /// A client for the API server (in a pod: `kube::Client::try_default()`).
    pub client: kube::Client,
    /// The gateway's own namespace, where the Secrets are.
    pub namespace: String,
    /// The release whose config to serve: the value of the `manifold.dev/gateway-config`
    /// label, and the Secrets' name prefix.
    pub release: String,
}

impl KubeSource {
    /// The label selector naming this release's shards.
    pub fn label_selector(&self) -> String {
        format!("{}={}", publish::RELEASE_LABEL, self.release)
    }
}

/// Watches the published Secrets and serves what they carry, until `shutdown`.
pub(crate) async fn run(source: KubeSource, gateway: Arc<Gateway>, egress: Egress, shutdown: CancellationToken) {
    let selector = source.label_selector();
    let name = publish::shard_name(&source.release, 0);
    let api: Api<Secret> = Api::namespaced(source.client, &source.namespace);
    let events = watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
    let mut events = std::pin::pin!(events);
    let mut pool = ClientPool::new(egress, Arc::clone(&gateway.tokens));
    let mut shards = Shards::default();
    let mut failing = false;
    tracing::info!(namespace = %source.namespace, secret = %name, %selector, "watching the published config");
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = shutdown.cancelled() => return,
        };
        match event {
            Some(Ok(event)) => {
                if std::mem::take(&mut failing) {
                    tracing::info!(namespace = %source.namespace, "watching the published config again");
                }
                if shards.update(event) {
                    shards.load(&gateway, &mut pool);
                }
            }
            Some(Err(error)) => {
                // The watcher retries, with backoff; the first failure of a run is worth a
                // warning, the retries are not.
                let serving = gateway.ready.load(Ordering::Acquire).then(|| gateway.snapshot.load().config.generation);
                if std::mem::replace(&mut failing, true) {
                    tracing::debug!(%error, "watching the published config still fails; retrying");
                } else {
                    tracing::warn!(
                        %error,
                        namespace = %source.namespace,
                        serving_generation = serving,
                        "watching the published config failed; still serving, retrying with backoff"
                    );
                }
            }
            None => {
                tracing::error!("the config watch ended; no further config changes will be seen");
                return;
            }
        }
    }
}

/// The shard Secrets as the watcher reports them.
#[derive(Default)]
struct Shards {
    /// The Secrets now, by name.
    current: BTreeMap<String, Secret>,
    /// The Secrets listed so far while the watcher (re)lists; they replace `current` once the
    /// list is complete.
    listing: Option<BTreeMap<String, Secret>>,
    /// Names and resource versions of the set last assembled: an unchanged set (after a
    /// relist) is not assembled, nor its problem logged, again.
    tried: Option<Vec<(String, String)>>,
}

impl Shards {
    /// Takes in one watcher event; whether the current set may have changed.
    fn update(&mut self, event: watcher::Event<Secret>) -> bool {
        match event {
            watcher::Event::Init => {
                self.listing = Some(BTreeMap::new());
                false
            }
            watcher::Event::InitApply(secret) => {
                self.listing.get_or_insert_default().insert(secret.name_any(), secret);
                false
            }
            watcher::Event::InitDone => {
                self.current = self.listing.take().unwrap_or_default();
                true
            }
            watcher::Event::Apply(secret) => {
                self.current.insert(secret.name_any(), secret);
                true
            }
            watcher::Event::Delete(secret) => self.current.remove(&secret.name_any()).is_some(),
        }
    }

    /// Assembles the current set and serves it if it is a new, good config.
    fn load(&mut self, gateway: &Gateway, pool: &mut ClientPool) {
        let versions: Vec<(String, String)> =
            self.current.iter().map(|(name, s)| (name.clone(), s.resource_version().unwrap_or_default())).collect();
        if self.tried.as_ref() == Some(&versions) {
            return;
        }
        self.tried = Some(versions);
        let serving = gateway.ready.load(Ordering::Acquire).then(|| gateway.snapshot.load().config.generation);
        match publish::assemble(self.current.values()) {
            Ok(config) => apply(gateway, config, pool),
            Err(AssembleError::Incomplete(seen)) => {
                tracing::debug!(%seen, "the operator is still writing the config's shards; waiting for the rest");
            }
            Err(AssembleError::Missing) => match serving {
                Some(generation) => tracing::warn!(
                    serving_generation = generation,
                    "the published config Secrets are gone; still serving the last config"
                ),
                None => tracing::info!("no config published yet; not ready until the operator publishes one"),
            },
            Err(AssembleError::Corrupt { name, why }) => {
                gateway.metrics.config_loads.inc(&LoadLabels { outcome: Load::Rejected });
                tracing::error!(
                    secret = %name,
                    %why,
                    serving_generation = serving,
                    "published config rejected: a Secret cannot be read; still serving the last good config"
                );
            }
            Err(AssembleError::Config(error)) => {
                gateway.metrics.config_loads.inc(&LoadLabels { outcome: Load::Rejected });
                let secrets: Vec<&str> = self.current.keys().map(String::as_str).collect();
                tracing::error!(
                    secrets = ?secrets,
                    why = %error,
                    serving_generation = serving,
                    "published config rejected; still serving the last good config"
                );
            }
        }
    }
}
