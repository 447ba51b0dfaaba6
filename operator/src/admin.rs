//! The operator's admin endpoints, on the shared skeleton: `/healthz`, `/readyz` (the caches
//! have listed and no permission is missing; else 503 and one line per reason,
//! [`waiting_for`]) and `/metrics` (the registry [`crate::metrics::Metrics`] fills).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::Registry;

use crate::permissions::{Missing, Permission};
use crate::watches::Cache;

/// What `/readyz` waits for: nothing once the caches have `listed` and the permissions have
/// been checked (`missing` is not None) with none missing; else one line for what has not
/// listed (`unlisted`, "McpRoutes in acme"), and one per missing permission.
pub fn waiting_for(listed: bool, unlisted: &[String], missing: Option<&[Permission]>) -> Vec<String> {
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
    lines
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
    let waiting = move || {
        let listed = listed.load(Ordering::Acquire);
        let unlisted: Vec<String> = match listed {
            true => Vec::new(),
            false => caches.iter().flat_map(Cache::unlisted).collect(),
        };
        waiting_for(listed, &unlisted, missing.borrow().as_deref())
    };
    let metrics = move |format| manifold_runtime::metrics::render_as(format, &registry, &[]);
    manifold_runtime::admin::serve(listener, manifold_runtime::admin::router(waiting, metrics)).await;
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use manifold_runtime::admin::readiness;

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
            readiness(&waiting_for(false, &unlisted, Some(&missing))),
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
            readiness(&waiting_for(true, &[], Some(&missing[..1]))),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "missing permission: patch mcproutes.manifold.dev/status in namespace acme".to_owned()
            ),
            "listed, but a permission is missing"
        );
        assert_eq!(
            readiness(&waiting_for(true, &[], None)),
            (StatusCode::SERVICE_UNAVAILABLE, "permissions not checked yet".to_owned())
        );
        assert_eq!(readiness(&waiting_for(true, &[], Some(&[]))), (StatusCode::OK, "ready".to_owned()));
    }
}
