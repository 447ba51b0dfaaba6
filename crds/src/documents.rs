//! When the OpenAPI documents that McpServers name by `spec.openapi.url` are fetched:
//! - each once, then again after its refresh interval (at least [`MIN_REFRESH`],
//!   whatever a manifest says);
//! - a failed refetch keeps the last good text, so a flaky spec host never takes an API away.
//!
//! The fetching itself is the caller's: the gateway in local mode, the operator in a cluster,
//! each through its own egress-guarded client.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use crate::resources::{McpServer, OpenApiSource};

/// How often a document is fetched again, unless its server says otherwise.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// The shortest interval between two fetches of one document.
pub const MIN_REFRESH: Duration = Duration::from_secs(10);
/// How long one fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest document read (the GitHub REST API description is about 13 MB).
pub const MAX_DOCUMENT_BYTES: usize = 32 * 1024 * 1024;
/// How many document URLs one namespace may name: what one tenant can make this process
/// hold is bounded (with [`MAX_DOCUMENT_BYTES`], to 512 MiB).
pub const MAX_URLS_PER_NAMESPACE: usize = 16;

/// The documents fetched so far, by URL.
#[derive(Default)]
pub struct Documents {
    fetched: HashMap<String, Fetched>,
}

struct Fetched {
    at: Instant,
    every: Duration,
    result: Result<String, String>,
    /// Not fetched: past its namespaces' share (fetched as soon as one has room).
    refused: bool,
}

/// What a refresh did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Whether any document's text (or error) changed, or one was forgotten.
    pub changed: bool,
    /// Refetches that failed while an earlier text is kept: (URL, why).
    pub kept: Vec<(String, String)>,
}

impl Documents {
    /// Whether a document is due to be fetched again at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.fetched.values().any(|f| now.duration_since(f.at) >= f.every)
    }

    /// Fetches, with `fetch`, the documents `servers` name that are new or due at `now`, and
    /// forgets the others.
    pub async fn refresh<F, Fut>(&mut self, servers: &[McpServer], now: Instant, fetch: F) -> Refreshed
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<String, String>>,
    {
        let interval = |o: &OpenApiSource| {
            o.refresh_interval.filter(|i| !i.is_negative()).map_or(DEFAULT_REFRESH, Duration::from).max(MIN_REFRESH)
        };
        // Each namespace's URLs up to its share, oldest servers first (a new server cannot
        // push out a document others use); a URL past the share of every namespace naming it
        // is not fetched, and says why.
        let mut oldest_first: Vec<&McpServer> = servers.iter().collect();
        oldest_first.sort_by_key(|s| (s.metadata.creation_timestamp.as_ref().map(|t| t.0), s.metadata.name.as_deref()));
        let mut by_namespace: BTreeMap<&str, Vec<(&str, Duration)>> = BTreeMap::new();
        for server in oldest_first {
            let namespace = server.metadata.namespace.as_deref().unwrap_or("default");
            if let Some(openapi) = &server.spec.openapi
                && let Some(url) = openapi.url.as_deref()
            {
                let urls = by_namespace.entry(namespace).or_default();
                if !urls.iter().any(|(named, _)| *named == url) {
                    urls.push((url, interval(openapi)));
                }
            }
        }
        let mut wanted: HashMap<&str, Duration> = HashMap::new();
        let mut refused: BTreeSet<&str> = BTreeSet::new();
        for urls in by_namespace.values() {
            for (index, (url, every)) in urls.iter().enumerate() {
                if index < MAX_URLS_PER_NAMESPACE {
                    // Named twice with different intervals: the shorter one.
                    let shortest = wanted.get(url).map_or(*every, |other| (*other).min(*every));
                    wanted.insert(url, shortest);
                } else {
                    refused.insert(url);
                }
            }
        }
        refused.retain(|url| !wanted.contains_key(url));
        let mut refreshed = Refreshed::default();
        let before = self.fetched.len();
        self.fetched.retain(|url, _| wanted.contains_key(url.as_str()) || refused.contains(url.as_str()));
        refreshed.changed = self.fetched.len() != before;
        for (url, fetched) in &mut self.fetched {
            if let Some(every) = wanted.get(url.as_str()) {
                fetched.every = *every;
            }
        }
        let stale: Vec<(&str, Duration)> = wanted
            .iter()
            .filter(|(url, every)| {
                self.fetched.get(**url).is_none_or(|f| f.refused || now.duration_since(f.at) >= **every)
            })
            .map(|(url, every)| (*url, *every))
            .collect();
        // All at once: a refresh takes as long as the slowest fetch (10 s at most).
        let results = futures::future::join_all(stale.iter().map(|(url, _)| fetch((*url).to_owned()))).await;
        for ((url, every), result) in stale.into_iter().zip(results) {
            let previous = self.fetched.get(url).map(|f| &f.result);
            let result = match (result, previous) {
                (Err(error), Some(Ok(good))) => {
                    refreshed.kept.push((url.to_owned(), error));
                    Ok(good.clone())
                }
                (result, _) => result,
            };
            refreshed.changed |= previous != Some(&result);
            self.fetched.insert(url.to_owned(), Fetched { at: now, every, result, refused: false });
        }
        for url in refused {
            // No namespace named: the same URL may be named in another tenant's.
            let why = format!(
                "the namespace names more than {MAX_URLS_PER_NAMESPACE} OpenAPI document URLs; this one is not fetched"
            );
            let result = Err(why);
            refreshed.changed |= self.fetched.get(url).map(|f| &f.result) != Some(&result);
            self.fetched.insert(url.to_owned(), Fetched { at: now, every: DEFAULT_REFRESH, result, refused: true });
        }
        refreshed
    }

    /// Every fetched document, by URL, for compile.
    pub fn documents(&self) -> BTreeMap<String, Result<String, String>> {
        self.fetched.iter().map(|(url, f)| (url.clone(), f.result.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn server(name: &str, openapi: serde_json::Value) -> McpServer {
        serde_json::from_value(serde_json::json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer",
            "metadata": {"name": name, "namespace": "acme"}, "spec": {"openapi": openapi}}))
        .unwrap()
    }

    #[tokio::test]
    async fn documents_are_fetched_when_new_or_due_and_a_failure_keeps_the_last_text() {
        let servers = [
            server("a", serde_json::json!({"url": "http://a/doc", "refreshInterval": "1m"})),
            server("b", serde_json::json!({"url": "http://b/doc", "refreshInterval": "1s"})),
        ];
        let asked = Mutex::new(Vec::new());
        let answer = Mutex::new(Ok::<_, String>("v1".to_owned()));
        let fetch = |url: String| {
            asked.lock().unwrap().push(url);
            let answer = answer.lock().unwrap().clone();
            async move { answer }
        };
        let start = Instant::now();
        let mut documents = Documents::default();
        assert!(documents.refresh(&servers, start, &fetch).await.changed);
        assert_eq!(documents.documents()["http://a/doc"], Ok("v1".into()));
        assert!(!documents.due(start + Duration::from_secs(9)), "1s is raised to the 10 s minimum");
        assert!(documents.due(start + Duration::from_secs(10)));

        *answer.lock().unwrap() = Err("HTTP 503".into());
        let later = start + Duration::from_secs(10);
        let refreshed = documents.refresh(&servers, later, &fetch).await;
        assert_eq!(refreshed, Refreshed { changed: false, kept: vec![("http://b/doc".into(), "HTTP 503".into())] });
        assert_eq!(documents.documents()["http://b/doc"], Ok("v1".into()), "the last good text stays");
        let mut asked = asked.lock().unwrap().clone();
        asked.sort();
        assert_eq!(asked, ["http://a/doc", "http://b/doc", "http://b/doc"], "a is not due yet");

        assert!(documents.refresh(&servers[..1], later, &fetch).await.changed, "b is forgotten");
        assert_eq!(documents.documents().len(), 1);
    }

    #[tokio::test]
    async fn a_namespace_names_a_bounded_number_of_documents() {
        let in_namespace = |namespace: &str, i: usize| {
            let mut server = server(&format!("s{i:02}"), serde_json::json!({"url": format!("http://docs/{i:02}")}));
            server.metadata.namespace = Some(namespace.into());
            server
        };
        let mut servers: Vec<_> = (0..=MAX_URLS_PER_NAMESPACE).map(|i| in_namespace("acme", i)).collect();
        let last = format!("http://docs/{MAX_URLS_PER_NAMESPACE:02}");
        let asked = Mutex::new(Vec::new());
        let fetch = |url: String| {
            asked.lock().unwrap().push(url);
            async { Ok::<_, String>("{}".to_owned()) }
        };
        let mut documents = Documents::default();
        let start = Instant::now();
        documents.refresh(&servers, start, &fetch).await;
        assert_eq!(asked.lock().unwrap().len(), MAX_URLS_PER_NAMESPACE, "one past the share is not fetched");
        assert_eq!(
            documents.documents()[&last],
            Err(format!(
                "the namespace names more than {MAX_URLS_PER_NAMESPACE} OpenAPI document URLs; this one is not fetched"
            ))
        );
        assert!(!documents.refresh(&servers, start, &fetch).await.changed, "refused once, not anew every time");

        // Another tenant naming the same document within its share gets it.
        servers.push(in_namespace("globex", MAX_URLS_PER_NAMESPACE));
        documents.refresh(&servers, start, &fetch).await;
        assert_eq!(documents.documents()[&last], Ok("{}".into()));
    }
}
