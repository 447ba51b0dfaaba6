//! Plans without an API server: a world and a memory in, the plan out, and nothing else.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use manifold_api::resources::{McpRoute, McpServer};
use serde_json::json;

use super::*;
use crate::probe::{Failure, Offered};
use crate::programmed::Serving;
use crate::reconcile::writes::{Notice, Status, events};

fn now() -> Time {
    Time(Timestamp::from_second(1_800_000_000).expect("a valid time"))
}

const TARGET: Target = Target { release: "manifold", namespace: "manifold-system", gateway_url: "http://gw" };

fn world() -> World {
    let server: McpServer = serde_json::from_value(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpServer",
        "metadata": {"name": "weather", "namespace": "acme", "generation": 1, "uid": "u1", "resourceVersion": "5"},
        "spec": {"remote": {"url": "http://weather.acme.svc:8080/mcp"}}}))
    .unwrap();
    let route: McpRoute = serde_json::from_value(json!({"apiVersion": "manifold.dev/v1alpha1", "kind": "McpRoute",
        "metadata": {"name": "store", "namespace": "acme", "generation": 1, "uid": "u2", "resourceVersion": "6",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"authentication": {"allowAnonymous": true}, "mounts": [{"server": "weather"}]}}))
    .unwrap();
    World { servers: vec![server], routes: vec![route], ..World::default() }
}

/// What the reconciler remembers once it has carried `plan` out (every write taken).
fn carried_out(memory: &Memory, plan: Plan) -> Memory {
    let mut written = memory.written.clone();
    for object in &plan.confirmed {
        written.remove(object);
    }
    written.extend(plan.writes.into_iter().map(|w| (w.object, w.written)));
    written.retain(|object, _| plan.objects.contains(object));
    Memory {
        served: Some(plan.config),
        floor: plan.floor.0,
        floor_hash: plan.floor.1,
        written,
        changed_in: plan.changed_in,
    }
}

fn condition<'a>(status: &'a Status, type_: &str) -> (&'a str, &'a str) {
    let conditions = match status {
        Status::Server(s) => &s.conditions,
        Status::Route(r) => &r.conditions,
    };
    let found = conditions.iter().find(|c| c.type_ == type_).expect("the condition is there");
    (found.status.as_str(), found.reason.as_str())
}

#[test]
fn a_new_world_is_planned_as_a_publish_and_two_statuses_without_news() {
    let plan = plan(&Memory::default(), TARGET, &world(), &[], &Probes::default(), &now(), Instant::now());
    assert!(plan.changed);
    assert_eq!(plan.config.generation, 1);
    assert_eq!(plan.config.routes.len(), 1);
    assert!(!plan.shards.is_empty());
    assert_eq!(plan.writes.len(), 2, "the server's status and the route's");
    let [server, route] = &plan.writes[..] else { unreachable!("two writes") };
    assert_eq!(condition(&server.status, "Ready"), ("False", "Probing"));
    assert_eq!(condition(&route.status, "Accepted"), ("True", "Accepted"));
    assert_eq!(condition(&route.status, "Programmed"), ("False", "NoReplicas"));
    let Status::Route(status) = &route.status else { unreachable!("the second write is the route's") };
    assert_eq!(status.url.as_deref(), Some("http://gw/acme/store/mcp"));
    assert!(plan.writes.iter().all(|w| w.events.is_empty()), "not probed yet, no replicas: progress, no news");
    assert_eq!((plan.pending, plan.objects.len()), (1, 2));
}

#[test]
fn the_same_world_planned_again_after_its_writes_writes_nothing() {
    let first = plan(&Memory::default(), TARGET, &world(), &[], &Probes::default(), &now(), Instant::now());
    let memory = carried_out(&Memory::default(), first);
    let again = plan(&memory, TARGET, &world(), &[], &Probes::default(), &now(), Instant::now());
    assert!(!again.changed, "the config did not move");
    assert!(again.writes.is_empty(), "what was written stands until the watch shows it");
    assert_eq!(again.config.generation, 1);
}

#[test]
fn a_probe_answer_plans_ready_with_counts_and_a_failure_plans_a_warning() {
    let key = ObjectKey::new("acme", "weather");
    let answered =
        Probes::from([(key.clone(), Ok(Offered { tools: vec!["a".into(), "b".into()], resources: 1, prompts: 0 }))]);
    let first = plan(&Memory::default(), TARGET, &world(), &[], &answered, &now(), Instant::now());
    let Status::Server(status) = &first.writes[0].status else { unreachable!("the server's write comes first") };
    assert_eq!(condition(&first.writes[0].status, "Ready"), ("True", "Ready"));
    assert_eq!((status.tools, status.resources, status.prompts), (Some(2), Some(1), Some(0)));
    let Status::Route(route) = &first.writes[1].status else { unreachable!("then the route's") };
    assert_eq!(route.tools, Some(2), "every tool of the one mount is visible");

    let memory = carried_out(&Memory::default(), first);
    let refused = Probes::from([(key, Err(Failure::Unauthorized("401".into())))]);
    let second = plan(&memory, TARGET, &world(), &[], &refused, &now(), Instant::now());
    assert_eq!(second.writes.len(), 1, "only the server's status changes");
    assert_eq!(condition(&second.writes[0].status, "Ready"), ("False", "Unauthorized"));
    assert_eq!(second.writes[0].events.len(), 1);
    assert!(second.writes[0].events[0].warning, "Ready flipped to False: a Warning");
}

#[test]
fn what_a_replica_serves_raises_the_generation_and_programs_the_route() {
    let first = plan(&Memory::default(), TARGET, &world(), &[], &Probes::default(), &now(), Instant::now());
    let hash = first.config.hash.clone();
    let memory = carried_out(&Memory::default(), first);
    let route = ObjectKey::new("acme", "store");
    let serving = |generation| Serving { generation, hash: hash.clone(), routes: BTreeMap::from([(route.clone(), 1)]) };
    let replicas = [Replica { admin: "10.0.0.1:9090".into(), serving: Some(serving(1)) }];
    let programmed = plan(&memory, TARGET, &world(), &replicas, &Probes::default(), &now(), Instant::now());
    assert_eq!(programmed.pending, 0);
    assert_eq!(programmed.programmed_after.len(), 1);
    assert_eq!(programmed.writes.len(), 1, "the route's Programmed");
    assert_eq!(condition(&programmed.writes[0].status, "Programmed"), ("True", "Programmed"));

    // A replica serving a generation above anything remembered: never publish below it.
    let ahead =
        [Replica { admin: "10.0.0.1:9090".into(), serving: Some(Serving { hash: "other".into(), ..serving(7) }) }];
    let raised = plan(&memory, TARGET, &world(), &ahead, &Probes::default(), &now(), Instant::now());
    assert_eq!(raised.floor, (7, None));
    assert_eq!(raised.config.generation, 8);
    assert!(raised.changed);
}

#[test]
fn events_are_planned_for_flips_and_for_new_conditions_that_say_something_is_wrong() {
    let condition = |type_: &str, status: &str, reason: &str| Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: "why".into(),
        observed_generation: Some(1),
        last_transition_time: now(),
    };
    assert_eq!(events(&[], &[condition("Accepted", "True", "Accepted")]), [], "a new object that is fine");
    assert_eq!(events(&[], &[condition("Programmed", "False", "Pending")]), [], "waiting is no news");
    let invalid = Notice { warning: true, reason: "Invalid".into(), note: "Accepted=False: why".into() };
    assert_eq!(events(&[], &[condition("Accepted", "False", "Invalid")]), [invalid]);
    let before = [condition("Accepted", "False", "Invalid")];
    assert_eq!(events(&before, &[condition("Accepted", "False", "Invalid")]), [], "no flip");
    let fixed = Notice { warning: false, reason: "Accepted".into(), note: "Accepted=True: why".into() };
    assert_eq!(events(&before, &[condition("Accepted", "True", "Accepted")]), [fixed]);
    let programmed = [condition("Programmed", "True", "Programmed")];
    let waiting = events(&programmed, &[condition("Programmed", "False", "Pending")]);
    assert_eq!(waiting.iter().map(|n| n.warning).collect::<Vec<_>>(), [false], "Pending is progress");
}
