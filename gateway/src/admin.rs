//! The admin listener: `/healthz` (the process is up), `/readyz` (a config is loaded),
//! `/metrics` (Prometheus text, or OpenMetrics with exemplars) and `/status` (the config generation being served, and
//! what the last load said about each object).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::Gateway;

pub fn router(gateway: Arc<Gateway>) -> Router {
    let waiting_for = {
        let gateway = gateway.clone();
        move || match gateway.ready.load(Ordering::Acquire) {
            true => Vec::new(),
            false => vec!["no config loaded yet".to_owned()],
        }
    };
    let metrics = {
        let gateway = gateway.clone();
        move |format| {
            gateway.metrics.session_entries.set(gateway.sessions.count() as i64);
            gateway.metrics.render_as(format)
        }
    };
    manifold_runtime::admin::router(waiting_for, metrics)
        .merge(Router::new().route("/status", get(status)).with_state(gateway))
}

async fn status(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    let snapshot = gateway.snapshot.load();
    // The routes actually built, not every route of the config: the operator's `Programmed`
    // reads this, and a route left out of the snapshot is served to nobody.
    let mut routes: Vec<_> = snapshot
        .routes()
        .map(|r| {
            serde_json::json!({
                "namespace": r.config.namespace, "name": r.config.name, "path": r.config.path, "mounts": r.mounts.len(),
            })
        })
        .collect();
    routes.sort_by(|a, b| {
        (a["namespace"].as_str(), a["name"].as_str()).cmp(&(b["namespace"].as_str(), b["name"].as_str()))
    });
    axum::Json(serde_json::json!({
        "ready": gateway.ready.load(Ordering::Acquire),
        "generation": snapshot.config.generation,
        "hash": snapshot.config.hash,
        "routes": routes,
        "report": &*gateway.report.lock().expect("report lock"),
    }))
}
