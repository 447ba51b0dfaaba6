//! Status: an object's compile outcome in, the status it should show out — or nothing when
//! what it shows already says the same. Conditions are compared without their timestamps, a
//! condition's `lastTransitionTime` moves only when its status flips, and an unchanged
//! status is never patched: a quiet world makes no writes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use manifold_api::outcome::{Outcome, Verdict};
use manifold_api::resources::{McpRoute, McpRouteStatus, McpServer, McpServerStatus};

use crate::publish::FIELD_MANAGER;

/// The conditions `verdicts` call for, given those the object shows now.
pub fn conditions(verdicts: &[Verdict], generation: Option<i64>, current: &[Condition], now: &Time) -> Vec<Condition> {
    verdicts
        .iter()
        .map(|verdict| {
            let status = if verdict.status { "True" } else { "False" };
            let before = current.iter().find(|c| c.type_ == verdict.type_);
            let same = before.is_some_and(|c| {
                c.status == status
                    && c.reason == verdict.reason
                    && c.message == verdict.message
                    && c.observed_generation == generation
            });
            match before {
                Some(before) if same => before.clone(),
                _ => Condition {
                    type_: verdict.type_.clone(),
                    status: status.to_owned(),
                    reason: verdict.reason.clone(),
                    message: verdict.message.clone(),
                    observed_generation: generation,
                    last_transition_time: match before {
                        Some(before) if before.status == status => before.last_transition_time.clone(),
                        _ => now.clone(),
                    },
                },
            }
        })
        .collect()
}

/// The status an McpServer should show, or None when it shows it already.
/// `offered` is (tools, resources, prompts) when known; the last known counts stay otherwise.
pub fn server_status(
    outcome: &Outcome,
    current: Option<&McpServerStatus>,
    offered: Option<(u32, u32, u32)>,
    now: &Time,
) -> Option<McpServerStatus> {
    let shown = current.cloned().unwrap_or_default();
    let (tools, resources, prompts) = match offered {
        Some((tools, resources, prompts)) => (Some(tools), Some(resources), Some(prompts)),
        None => (shown.tools, shown.resources, shown.prompts),
    };
    let wanted = McpServerStatus {
        observed_generation: outcome.generation,
        conditions: conditions(&outcome.conditions, outcome.generation, &shown.conditions, now),
        tools,
        resources,
        prompts,
    };
    (wanted != shown).then_some(wanted)
}

/// The status an McpRoute should show, or None when it shows it already.
/// `served` is the path the gateways serve it at (None: not served, as when refused for a
/// path another route holds); `tools` how many tools a client sees, when every mount's
/// tools are known; `gateway` the URL clients reach the gateways at.
pub fn route_status(
    outcome: &Outcome,
    current: Option<&McpRouteStatus>,
    served: Option<&str>,
    tools: Option<u32>,
    gateway: &str,
    now: &Time,
) -> Option<McpRouteStatus> {
    let shown = current.cloned().unwrap_or_default();
    let wanted = McpRouteStatus {
        observed_generation: outcome.generation,
        conditions: conditions(&outcome.conditions, outcome.generation, &shown.conditions, now),
        path: served.map(str::to_owned),
        url: served.map(|path| format!("{}{path}", gateway.trim_end_matches('/'))),
        // A route not served has no clients; one whose mounts' tools are not all known yet
        // keeps the last count.
        tools: served.and(tools.or(shown.tools)),
    };
    (wanted != shown).then_some(wanted)
}

/// Writes an McpServer's status (its `status` subresource).
pub async fn patch_server(api: &Api<McpServer>, name: &str, status: &McpServerStatus) -> kube::Result<()> {
    apply_status::<McpServer>(api, name, status).await
}

/// Writes an McpRoute's status (its `status` subresource).
pub async fn patch_route(api: &Api<McpRoute>, name: &str, status: &McpRouteStatus) -> kube::Result<()> {
    apply_status::<McpRoute>(api, name, status).await
}

/// Server-side apply of the whole status: a field this operator wrote before and leaves out
/// now (a route's `url` once it is refused) is removed, which a merge patch cannot do.
async fn apply_status<K>(api: &Api<K>, name: &str, status: &impl serde::Serialize) -> kube::Result<()>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": { "name": name },
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use http::{Method, Request, Response};
    use k8s_openapi::jiff::Timestamp;
    use kube::Client;
    use kube::client::Body;
    use manifold_api::outcome::{Kind, ObjectRef, Serving};
    use serde_json::json;
    use tower_test::mock;

    use super::*;

    fn time(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn outcome(accepted: bool, message: &str) -> Outcome {
        Outcome {
            object: ObjectRef { kind: Kind::McpRoute, namespace: "acme".into(), name: "store".into() },
            generation: Some(3),
            conditions: vec![
                Verdict {
                    type_: "Accepted".into(),
                    status: accepted,
                    reason: if accepted { "Accepted" } else { "Invalid" }.into(),
                    message: message.into(),
                },
                Verdict {
                    type_: "ResolvedRefs".into(),
                    status: true,
                    reason: "ResolvedRefs".into(),
                    message: "all mounted McpServers are usable".into(),
                },
            ],
            path: Some("/acme/store/mcp".into()),
            serving: Serving::Current,
        }
    }

    /// A first status of a valid route served at its default path.
    fn valid(now: i64) -> McpRouteStatus {
        let outcome = outcome(true, "route is valid");
        route_status(&outcome, None, Some("/acme/store/mcp"), None, "http://gw", &time(now)).expect("a first status")
    }

    #[test]
    fn an_unchanged_outcome_needs_no_status_write() {
        let first = valid(100);
        assert_eq!(first.observed_generation, Some(3));
        assert_eq!(first.path.as_deref(), Some("/acme/store/mcp"));
        assert_eq!(first.url.as_deref(), Some("http://gw/acme/store/mcp"));
        assert_eq!(first.conditions[0].last_transition_time, time(100));
        assert_eq!(
            route_status(
                &outcome(true, "route is valid"),
                Some(&first),
                Some("/acme/store/mcp"),
                None,
                "http://gw",
                &time(200)
            ),
            None,
            "timestamps aside, equal"
        );
    }

    #[test]
    fn transition_times_move_only_when_a_status_flips() {
        let first = valid(100);
        let reworded = route_status(
            &outcome(true, "route is valid, really"),
            Some(&first),
            Some("/acme/store/mcp"),
            Some(4),
            "http://gw",
            &time(200),
        )
        .unwrap();
        assert_eq!(reworded.conditions[0].message, "route is valid, really");
        assert_eq!(reworded.conditions[0].last_transition_time, time(100), "still True since 100");
        let failed =
            route_status(&outcome(false, "spec.path: bad"), Some(&reworded), None, None, "http://gw", &time(300))
                .unwrap();
        assert_eq!((failed.conditions[0].status.as_str(), failed.conditions[0].reason.as_str()), ("False", "Invalid"));
        assert_eq!(failed.conditions[0].last_transition_time, time(300));
        assert_eq!(failed.conditions[1], reworded.conditions[1], "ResolvedRefs did not change");
        assert_eq!(reworded.tools, Some(4));
        assert_eq!((failed.path, failed.url, failed.tools), (None, None, None), "no longer served: reached nowhere");
    }

    #[tokio::test]
    async fn a_status_is_written_to_the_status_subresource() {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let status = valid(100);
        let expected = serde_json::to_value(&status).unwrap();
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.unwrap();
            assert_eq!(request.method(), Method::PATCH);
            assert_eq!(
                request.uri().to_string(),
                "/apis/manifold.dev/v1alpha1/namespaces/acme/mcproutes/store/status?&force=true&fieldManager=manifold-operator"
            );
            assert_eq!(request.headers()["content-type"], "application/apply-patch+yaml");
            let body: serde_json::Value =
                serde_json::from_slice(&request.into_body().collect_bytes().await.unwrap()).unwrap();
            assert_eq!(
                body,
                json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpRoute", "metadata": {"name": "store"}, "status": expected})
            );
            let route = json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpRoute",
                "metadata": {"name": "store", "namespace": "acme"}, "spec": {"mounts": [], "authentication": {}}});
            send.send_response(Response::builder().body(Body::from(serde_json::to_vec(&route).unwrap())).unwrap());
        });
        let api: Api<McpRoute> = Api::namespaced(Client::new(service, "acme"), "acme");
        patch_route(&api, "store", &status).await.unwrap();
        server.await.unwrap();
    }
}
