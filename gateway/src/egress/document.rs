//! One document fetched for compile (an OpenAPI spec named by URL): a GET through the
//! guarded client, bounded in time and size, its text or why there is none. Kept apart so
//! the operator's fetch can become this one.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http::header::ACCEPT;
use http_body_util::Full;

use super::{Egress, GuardedHttp, exchange, failure, literal_ip};

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
        let http = crate::egress::guarded_client(strict);
        let refused = fetch(&http, strict, "http://169.254.169.254/openapi.json", Duration::from_secs(1), 1024).await;
        let error = refused.expect_err("refused");
        assert!(error.starts_with("`http://169.254.169.254/openapi.json` is a link-local"), "{error}");
        let invalid = fetch(&http, strict, "not a url", Duration::from_secs(1), 1024).await;
        assert!(invalid.expect_err("refused").starts_with("invalid URL"));
    }
}
