//! The one egress-guarded document fetch (OpenAPI documents named by URL), for the operator's
//! compile and the gateway's local mode alike. A name that resolves only to addresses egress
//! refuses (link-local, cloud metadata) is not connected to, redirects stay within the
//! document's origin, no proxy resolves names past the guard, and bodies are read up to
//! `MAX_DOCUMENT_BYTES`.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use manifold_api::documents::{FETCH_TIMEOUT, MAX_DOCUMENT_BYTES};
use manifold_api::egress::Egress;

use crate::errors::chain;

/// Fetches documents within the egress rules.
#[derive(Clone)]
pub struct DocumentFetch {
    http: reqwest::Client,
    egress: Egress,
}

impl DocumentFetch {
    pub fn new(egress: Egress) -> Self {
        let same_origin = reqwest::redirect::Policy::custom(|attempt| {
            let from = attempt.previous().first().map(|u| u.origin());
            if attempt.previous().len() > 5 || from != Some(attempt.url().origin()) {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(Guarded(egress)))
            // A proxy would resolve names itself, past the guard.
            .no_proxy()
            .redirect(same_origin)
            .timeout(FETCH_TIMEOUT)
            .build()
            .expect("a TLS backend is built in");
        DocumentFetch { http, egress }
    }

    /// The text at `url`, or why it could not be had.
    pub async fn get(&self, url: &str) -> Result<String, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
        if let Some(why) = refused_literal(self.egress, &parsed) {
            return Err(format!("`{url}` is {why}"));
        }
        let request = self.http.get(parsed).header("accept", "application/json, application/yaml, */*;q=0.5");
        let response = request.send().await.map_err(|e| chain(&e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(format!("HTTP {status}: a redirect to another origin is not followed"));
        }
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            body.extend_from_slice(&chunk.map_err(|e| chain(&e))?);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("the document is larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
        }
        String::from_utf8(body).map_err(|_| "the document is not UTF-8 text".into())
    }
}

/// Why egress refuses `url`'s host, when it is an IP address (names are checked when
/// resolved, by [`Guarded`]).
fn refused_literal(egress: Egress, url: &url::Url) -> Option<String> {
    let ip = match url.host()? {
        url::Host::Ipv4(ip) => std::net::IpAddr::V4(ip),
        url::Host::Ipv6(ip) => std::net::IpAddr::V6(ip),
        url::Host::Domain(_) => return None,
    };
    egress.refuses(ip).map(str::to_owned)
}

/// The system resolver without the addresses egress refuses.
struct Guarded(Egress);

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all.iter().copied().filter(|a| egress.refuses(a.ip()).is_none()).collect();
            if allowed.is_empty() && !all.is_empty() {
                let why = egress.refuses(all[0].ip()).unwrap_or_default();
                return Err(format!("`{host}` resolves to {why}").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn serve(app: axum::Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        address
    }

    #[tokio::test]
    async fn documents_are_fetched_within_the_egress_rules() {
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/openapi.json", get(|| async { r#"{"openapi": "3.1.0"}"# }))
            .route("/moved", get(|| async { axum::response::Redirect::temporary("/openapi.json") }))
            .route("/away", get(|| async { axum::response::Redirect::temporary("http://example.invalid/x") }))
            .route("/huge", get(|| async { "x".repeat(MAX_DOCUMENT_BYTES + 1) }))
            .route("/gone", get(|| async { (axum::http::StatusCode::NOT_FOUND, "no") }));
        let address = serve(app).await;
        let fetch = DocumentFetch::new(Egress::default());
        let get = |path: &str| {
            let url = format!("http://{address}{path}");
            let fetch = fetch.clone();
            async move { fetch.get(&url).await }
        };
        assert_eq!(get("/openapi.json").await, Ok(r#"{"openapi": "3.1.0"}"#.to_owned()));
        assert_eq!(get("/moved").await, Ok(r#"{"openapi": "3.1.0"}"#.to_owned()), "a redirect within the origin");
        assert_eq!(
            get("/away").await.unwrap_err(),
            "HTTP 307 Temporary Redirect: a redirect to another origin is not followed"
        );
        assert_eq!(get("/huge").await.unwrap_err(), format!("the document is larger than {MAX_DOCUMENT_BYTES} bytes"));
        assert_eq!(get("/gone").await.unwrap_err(), "HTTP 404 Not Found");
        let metadata = fetch.get("http://169.254.169.254/latest").await;
        assert!(metadata.unwrap_err().starts_with("`http://169.254.169.254/latest` is a link-local"));
        let allowed = DocumentFetch::new(Egress { allow_link_local: true });
        let refused = allowed.get("http://169.254.169.254/latest").await.unwrap_err();
        assert!(!refused.contains("link-local"), "allowed: the fetch is tried ({refused})");
    }
}
