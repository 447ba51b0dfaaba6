//! The admin endpoints every binary serves: `/healthz` (the process answers), `/readyz` (200
//! `ready`, else 503 and one line per thing it waits for) and `/metrics` (Prometheus text, or
//! OpenMetrics with exemplars when the scraper's `Accept` asks for it).
//! A binary merges its own endpoints (the gateway's `/status`) into [`router`]'s.

use axum::Router;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::routing::get;

use crate::metrics::Format;

/// The answer of `/readyz` when the process waits for each of `waiting_for`.
pub fn readiness(waiting_for: &[String]) -> (StatusCode, String) {
    match waiting_for.is_empty() {
        true => (StatusCode::OK, "ready".to_owned()),
        false => (StatusCode::SERVICE_UNAVAILABLE, waiting_for.join("\n")),
    }
}

/// `/healthz`, `/readyz` answered from `waiting_for` (what readiness still waits for, one
/// line each; nothing when ready) and `/metrics` from `metrics` (the registry in the format the
/// scraper accepts).
pub fn router(
    waiting_for: impl Fn() -> Vec<String> + Clone + Send + Sync + 'static,
    metrics: impl Fn(Format) -> String + Clone + Send + Sync + 'static,
) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let answer = readiness(&waiting_for());
                async move { answer }
            }),
        )
        .route(
            "/metrics",
            get(move |headers: HeaderMap| {
                let format = Format::accepted(headers.get(ACCEPT).and_then(|accept| accept.to_str().ok()));
                let text = metrics(format);
                async move { ([(CONTENT_TYPE, format.content_type())], text) }
            }),
        )
}

/// Serves `app` on `listener` until the process stops; a listener that fails is logged.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) {
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the admin listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_every_wait_or_says_ready() {
        assert_eq!(readiness(&[]), (StatusCode::OK, "ready".to_owned()));
        let waits = ["no config loaded yet".to_owned(), "permissions not checked yet".to_owned()];
        assert_eq!(
            readiness(&waits),
            (StatusCode::SERVICE_UNAVAILABLE, "no config loaded yet\npermissions not checked yet".to_owned())
        );
    }
}
