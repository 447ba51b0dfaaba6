//! OpenAPI documents named by `spec.openapi.url`, fetched for local mode (in a cluster the
//! operator's resolver fetches them): each once, then again after its refresh interval. A
//! failed refetch keeps the last good text, so a flaky spec host never takes an API away.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use manifold_api::resources::McpServer;

use crate::upstream::openapi::{Egress, GuardedHttp, fetch, guarded_client};

/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest document read (the GitHub REST API description is about 12 MB).
const MAX_DOCUMENT_BYTES: usize = 32 * 1024 * 1024;
/// How often a document is fetched again, unless its server says otherwise.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// The shortest interval between two fetches of one document.
const MIN_REFRESH: Duration = manifold_api::compile::MIN_REFRESH;

pub struct Specs {
    http: GuardedHttp,
    egress: Egress,
    fetched: HashMap<String, Fetched>,
}

struct Fetched {
    at: Instant,
    every: Duration,
    result: Result<String, String>,
}

impl Specs {
    pub fn new(egress: Egress) -> Self {
        Specs { http: guarded_client(egress), egress, fetched: HashMap::new() }
    }

    /// Whether a document is due to be fetched again.
    pub fn due(&self) -> bool {
        self.fetched.values().any(|f| f.at.elapsed() >= f.every)
    }

    /// Fetches the documents `servers` name that are new or due, and forgets the others.
    /// Returns whether any document's text (or error) changed.
    pub async fn refresh(&mut self, servers: &[McpServer]) -> bool {
        // At least every 10 s, whatever a manifest says (CEL refuses less in a cluster; local
        // manifests are not checked by an API server).
        let interval = |o: &manifold_api::resources::OpenApiSource| {
            o.refresh_interval.filter(|i| !i.is_negative()).map_or(DEFAULT_REFRESH, Duration::from).max(MIN_REFRESH)
        };
        let wanted: HashMap<&str, Duration> = servers
            .iter()
            .filter_map(|s| s.spec.openapi.as_ref())
            .filter_map(|o| Some((o.url.as_deref()?, interval(o))))
            .collect();
        let before = self.fetched.len();
        self.fetched.retain(|url, _| wanted.contains_key(url.as_str()));
        for (url, fetched) in &mut self.fetched {
            fetched.every = wanted[url.as_str()];
        }
        let mut changed = self.fetched.len() != before;
        let stale: Vec<(&str, Duration)> = wanted
            .iter()
            .filter(|(url, every)| self.fetched.get(**url).is_none_or(|f| f.at.elapsed() >= **every))
            .map(|(url, every)| (*url, *every))
            .collect();
        let (http, egress) = (&self.http, self.egress);
        let results = futures::future::join_all(
            stale
                .iter()
                .map(|(url, _)| async move { fetch(http, egress, url, FETCH_TIMEOUT, MAX_DOCUMENT_BYTES).await }),
        )
        .await;
        for ((url, every), result) in stale.into_iter().zip(results) {
            let previous = self.fetched.get(url).map(|f| &f.result);
            let result = match (result, previous) {
                (Err(error), Some(Ok(good))) => {
                    tracing::warn!(%url, %error, "refetching an OpenAPI document failed; keeping the last one");
                    Ok(good.clone())
                }
                (result, _) => result,
            };
            changed |= previous != Some(&result);
            self.fetched.insert(url.to_owned(), Fetched { at: Instant::now(), every, result });
        }
        changed
    }

    /// Every fetched document, by URL, for compile.
    pub fn documents(&self) -> BTreeMap<String, Result<String, String>> {
        self.fetched.iter().map(|(url, f)| (url.clone(), f.result.clone())).collect()
    }
}
