//! The one document fetch, for compile (an OpenAPI spec named by URL), in the operator and in
//! the gateway's local mode: a GET through the guarded client, bounded in time and size, its
//! text or why there is none.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http::header::ACCEPT;
use http_body_util::Full;

use manifold_api::documents::{FETCH_TIMEOUT, MAX_DOCUMENT_BYTES};

use super::{Egress, GuardedHttp, exchange, failure, guarded_client, literal_ip};

/// Fetches documents within `egress`, each within `FETCH_TIMEOUT` and `MAX_DOCUMENT_BYTES`.
#[derive(Clone)]
pub struct DocumentFetch {
    http: GuardedHttp,
    egress: Egress,
}

impl DocumentFetch {
    pub fn new(egress: Egress) -> Self {
        DocumentFetch { http: guarded_client(egress), egress }
    }

    /// The text at `url`, or why it could not be had.
    pub async fn get(&self, url: &str) -> Result<String, String> {
        fetch(&self.http, self.egress, url, FETCH_TIMEOUT, MAX_DOCUMENT_BYTES).await
    }
}

/// Fetches a document from `url` (GET, within `timeout`, at most `limit` bytes, honouring
/// `egress`, which `http` was built with).
pub async fn fetch(
    http: &GuardedHttp,
    egress: Egress,
    url: &str,
    timeout: Duration,
    limit: usize,
) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    if let Some(why) = literal_ip(&parsed).and_then(|ip| egress.refuses(ip)) {
        return Err(format!("`{url}` is {why}"));
    }
    let request = Request::get(parsed.as_str())
        .header(ACCEPT, "application/json, application/yaml, */*;q=0.5")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let (status, _, body) = tokio::time::timeout(timeout, exchange(http, &parsed, request, limit))
        .await
        .map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
        .map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(failure(status, &body));
    }
    String::from_utf8(body.to_vec()).map_err(|_| "the document is not UTF-8 text".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_document_at_a_metadata_address_is_refused_before_any_connection() {
        let strict = Egress::default();
        let http = guarded_client(strict);
        let refused = fetch(&http, strict, "http://169.254.169.254/openapi.json", Duration::from_secs(1), 1024).await;
        let error = refused.expect_err("refused");
        assert!(error.starts_with("`http://169.254.169.254/openapi.json` is a link-local"), "{error}");
        let invalid = fetch(&http, strict, "not a url", Duration::from_secs(1), 1024).await;
        assert!(invalid.expect_err("refused").starts_with("invalid URL"));
    }

    #[tokio::test]
    async fn documents_are_fetched_within_their_origin_and_size() {
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/openapi.json", get(|| async { r#"{"openapi": "3.1.0"}"# }))
            .route("/moved", get(|| async { axum::response::Redirect::temporary("/openapi.json") }))
            .route("/away", get(|| async { axum::response::Redirect::temporary("http://example.invalid/x") }))
            .route("/huge", get(|| async { "x".repeat(MAX_DOCUMENT_BYTES + 1) }))
            .route("/gone", get(|| async { (http::StatusCode::NOT_FOUND, "no") }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let documents = DocumentFetch::new(Egress::default());
        let get = |path: &str| {
            let (documents, url) = (documents.clone(), format!("http://{address}{path}"));
            async move { documents.get(&url).await }
        };
        let document = Ok(r#"{"openapi": "3.1.0"}"#.to_owned());
        assert_eq!(get("/openapi.json").await, document);
        assert_eq!(get("/moved").await, document, "a redirect within the origin");
        let away = get("/away").await.unwrap_err();
        assert!(away.contains("redirected to another origin (http://example.invalid)"), "{away}");
        let huge = get("/huge").await.unwrap_err();
        assert!(huge.ends_with(&format!("the response exceeded {MAX_DOCUMENT_BYTES} bytes")), "{huge}");
        assert_eq!(get("/gone").await.unwrap_err(), "HTTP 404 Not Found: no");
    }
}
