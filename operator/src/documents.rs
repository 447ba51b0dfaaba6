//! Fetching the OpenAPI documents McpServers name by `spec.openapi.url`, for compile, on the
//! schedule of `manifold_api::documents`, through the shared egress-guarded document fetch
//! (`manifold_runtime::egress`): the gateway's local mode fetches the same way.

use std::time::Instant;

use manifold_api::documents::{Documents, Refreshed};
use manifold_api::egress::Egress;
use manifold_api::resources::McpServer;
use manifold_runtime::egress::DocumentFetch;

/// Fetches documents for compile.
pub struct Fetcher {
    fetch: DocumentFetch,
    pub documents: Documents,
}

impl Fetcher {
    pub fn new(egress: Egress) -> Self {
        Fetcher { fetch: DocumentFetch::new(egress), documents: Documents::default() }
    }

    /// Fetches what `servers` name that is new or due.
    pub async fn refresh(&mut self, servers: &[McpServer]) -> Refreshed {
        let fetch = &self.fetch;
        self.documents.refresh(servers, Instant::now(), |url: String| async move { fetch.get(&url).await }).await
    }
}
