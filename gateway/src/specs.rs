//! OpenAPI documents named by `spec.openapi.url`, fetched for local mode (in a cluster the
//! operator fetches them) on the schedule of `manifold_api::documents`, through the
//! shared egress-guarded document fetch.

use std::collections::BTreeMap;
use std::time::Instant;

use manifold_api::documents::Documents;
use manifold_api::resources::McpServer;
use manifold_runtime::egress::{DocumentFetch, Egress};

pub struct Specs {
    fetch: DocumentFetch,
    documents: Documents,
}

impl Specs {
    pub fn new(egress: Egress) -> Self {
        Specs { fetch: DocumentFetch::new(egress), documents: Documents::default() }
    }

    /// Whether a document is due to be fetched again.
    pub fn due(&self) -> bool {
        self.documents.due(Instant::now())
    }

    /// Fetches the documents `servers` name that are new or due, and forgets the others.
    /// Returns whether any document's text (or error) changed.
    pub async fn refresh(&mut self, servers: &[McpServer]) -> bool {
        let fetch = &self.fetch;
        let refreshed =
            self.documents.refresh(servers, Instant::now(), |url: String| async move { fetch.get(&url).await }).await;
        for (url, error) in &refreshed.kept {
            tracing::warn!(%url, %error, "refetching an OpenAPI document failed; keeping the last one");
        }
        refreshed.changed
    }

    /// Every fetched document, by URL, for compile.
    pub fn documents(&self) -> BTreeMap<String, Result<String, String>> {
        self.documents.documents()
    }
}
