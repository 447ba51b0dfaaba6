//! The admin endpoints: `/healthz` (the process answers), `/readyz` (the caches have listed
//! and no permission is missing; else 503 and one line per reason, [`readiness`]),
//! `/metrics` (Prometheus text of the registry [`crate::metrics::Metrics`] fills).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;
use prometheus::{Encoder, Registry, TextEncoder};

use crate::permissions::{Missing, Permission};
use crate::watches::Cache;

/// The answer of `/readyz`: ready once the caches have `listed` and the permissions have been
/// checked (`missing` is not None) with none missing; else 503, one line for what has not
/// listed (`unlisted`, "McpRoutes in acme"), and one per missing permission.
pub fn readiness(listed: bool, unlisted: &[String], missing: Option<&[Permission]>) -> (StatusCode, String) {
    let mut lines = Vec::new();
    if !listed {
        lines.push(match unlisted.is_empty() {
            true => "listed; not reconciled yet".to_owned(),
            false => format!("waiting for the first list of {}", unlisted.join(", ")),
        });
    }
    match missing {
        None => lines.push("permissions not checked yet".to_owned()),
        Some(missing) => lines.extend(missing.iter().map(|permission| format!("missing permission: {permission}"))),
    }
    match lines.is_empty() {
        true => (StatusCode::OK, "ready".to_owned()),
        false => (StatusCode::SERVICE_UNAVAILABLE, lines.join("\n")),
    }
}

/// Serves the admin endpoints on `listener`: `listed` once the `caches` have listed, `missing`
/// from the permission checks.
pub async fn serve(
    listener: tokio::net::TcpListener,
    listed: Arc<AtomicBool>,
    caches: [Cache; 2],
    missing: Missing,
    registry: Registry,
) {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let listed = listed.load(Ordering::Acquire);
                let unlisted: Vec<String> = match listed {
                    true => Vec::new(),
                    false => caches.iter().flat_map(Cache::unlisted).collect(),
                };
                let answer = readiness(listed, &unlisted, missing.borrow().as_deref());
                async move { answer }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let mut text = Vec::new();
                let _ = TextEncoder::new().encode(&registry.gather(), &mut text);
                async move { String::from_utf8(text).unwrap_or_default() }
            }),
        );
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the admin listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permission(verb: &'static str, group: &'static str, resource: &'static str, namespace: &str) -> Permission {
        Permission { verb, group, resource, namespace: namespace.into() }
    }

    #[test]
    fn readiness_names_what_has_not_listed_and_each_missing_permission() {
        let missing = [
            permission("patch", "manifold.dev", "mcproutes/status", "acme"),
            permission("create", "events.k8s.io", "events", ""),
            permission("list", "", "secrets", "manifold-system"),
        ];
        let unlisted = ["McpRoutes in acme".to_owned(), "McpServers in acme".to_owned()];
        assert_eq!(
            readiness(false, &unlisted, Some(&missing)),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "waiting for the first list of McpRoutes in acme, McpServers in acme\n\
                 missing permission: patch mcproutes.manifold.dev/status in namespace acme\n\
                 missing permission: create events.events.k8s.io in all namespaces\n\
                 missing permission: list secrets in namespace manifold-system"
                    .to_owned()
            )
        );
        assert_eq!(
            readiness(true, &[], Some(&missing[..1])),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "missing permission: patch mcproutes.manifold.dev/status in namespace acme".to_owned()
            ),
            "listed, but a permission is missing"
        );
        assert_eq!(
            readiness(true, &[], None),
            (StatusCode::SERVICE_UNAVAILABLE, "permissions not checked yet".to_owned())
        );
        assert_eq!(readiness(true, &[], Some(&[])), (StatusCode::OK, "ready".to_owned()));
    }
}
