//! What a client sends that is not a request: its notifications (cancellation, progress on
//! an upstream's request, a change of roots) and its answers to upstreams' requests, each
//! routed back to the upstream it concerns, under the upstream's own ids (`rewrite`).

use std::sync::Arc;

use serde_json::value::RawValue;

use super::rewrite::{answer, cancelled, from_client_id, progress_to_upstream};
use super::session::Session;
use crate::jsonrpc;
use crate::protocol::Method;
use crate::snapshot::Route;

/// A notification from the client: cancellation goes to the upstream running the request,
/// progress on an upstream's request to that upstream, a change of roots to every upstream
/// the client uses; the rest concerns only the gateway.
pub fn notified(route: &Route, session: &Arc<Session>, method: &str, params: Option<&RawValue>) {
    let posts: Vec<_> = match (Method::parse(method), params) {
        (Method::Cancelled, Some(params)) => {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Cancelled {
                request_id: Box<RawValue>,
            }
            let Ok(Cancelled { request_id }) = serde_json::from_str(params.get()) else { return };
            let Some((key, upstream_id)) = session.cancel(request_id.get()) else { return };
            let Some((client, slot)) = session.used_slot(route, &key) else { return };
            vec![(client, slot, cancelled(upstream_id, params))]
        }
        (Method::Progress, Some(params)) => {
            let Some((key, body)) = progress_to_upstream(params) else { return };
            let Some((client, slot)) = session.used_slot(route, &key) else { return };
            vec![(client, slot, body)]
        }
        (Method::RootsListChanged, _) => {
            let body = jsonrpc::notification(method, None);
            session.used_slots(route).into_iter().map(|(client, slot)| (client, slot, body.clone())).collect()
        }
        _ => return,
    };
    let route = route.id();
    tokio::spawn(async move {
        for (client, slot, body) in posts {
            if let Err(error) = client.post(&slot, body).await {
                tracing::debug!(%route, %error, "a client notification did not reach its upstream");
            }
        }
    });
}

/// The client's answer to an upstream's request (sampling, elicitation, roots), sent to that
/// upstream under its own id.
pub fn answered(
    route: &Route,
    session: &Arc<Session>,
    id: &RawValue,
    result: Option<&RawValue>,
    error: Option<&RawValue>,
) {
    if let Ok(own) = serde_json::from_str::<String>(id.get())
        && session.answer(&own, (result.map(ToOwned::to_owned), error.map(ToOwned::to_owned)))
    {
        return;
    }
    let Some((key, upstream_id)) = from_client_id(id) else {
        tracing::debug!(route = %route.id(), id = %id.get(), "a response to no request of ours was dropped");
        return;
    };
    let Some((client, slot)) = session.used_slot(route, &key) else { return };
    let body = answer(&upstream_id, result, error);
    let route = route.id();
    tokio::spawn(async move {
        if let Err(error) = client.post(&slot, body).await {
            tracing::warn!(%route, %error, "a client's answer did not reach its upstream");
        }
    });
}
