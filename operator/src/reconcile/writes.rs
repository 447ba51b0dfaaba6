//! Status writes: compile's judged outcomes, what each object shows (or what this replica
//! wrote and the watch does not show yet) in; the statuses that would change something, each
//! with the Events its flipped conditions call for, out. Pure: the reconciler writes them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Resource;
use kube::runtime::events::{Event, EventType};
use manifold_api::outcome::condition::PARTIALLY_INVALID;
use manifold_api::outcome::reason::{EXPECTED, PROGRESS};
use manifold_api::outcome::{Kind, ObjectRef, Outcome};
use manifold_api::resources::{McpRoute, McpRouteStatus, McpServer, McpServerStatus};
use manifold_api::{GatewayConfig, ObjectKey};

use super::judge::{Offers, ToolNames, ready_until_probed};
use super::world::World;
use crate::status::{route_status, server_status};

/// A status this replica wrote, not shown by the watch yet.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// The object's uid: a new object of the same name owes nothing to the old one's status.
    pub uid: Option<String>,
    /// The `resourceVersion` the watch showed when it was written: once the watch shows
    /// another, it is past this write (or someone wrote after it), and is what the object shows.
    pub seen_at: Option<String>,
    pub status: serde_json::Value,
}

/// The status an object should show.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Server(McpServerStatus),
    Route(McpRouteStatus),
}

/// One status to write, and what follows once it is written.
#[derive(Clone, Debug)]
pub struct StatusWrite {
    pub object: ObjectRef,
    /// The object as Events name it.
    pub regarding: ObjectReference,
    pub status: Status,
    /// What to remember once it is written.
    pub written: Written,
    /// Recorded once it is written.
    pub events: Vec<Notice>,
}

/// An Event to record about an object (kube's `Event` has no `Debug` or `Clone`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// A Warning, else Normal.
    pub warning: bool,
    /// The condition's reason.
    pub reason: String,
    pub note: String,
}

impl Notice {
    pub fn event(&self) -> Event {
        Event {
            type_: if self.warning { EventType::Warning } else { EventType::Normal },
            reason: self.reason.clone(),
            note: Some(self.note.clone()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }
}

/// What the served config and the servers' offers say about routes and servers.
pub struct Served<'a> {
    pub config: &'a GatewayConfig,
    pub offered: &'a Offers,
    pub tool_names: &'a ToolNames,
    /// Where clients reach the gateways (a route's `status.url` is this and its path).
    pub gateway_url: &'a str,
}

/// The statuses that changed, in the order of `outcomes`; and the objects whose status as
/// this replica wrote it the watch shows now, or has moved past (nothing to remember).
pub fn status_writes(
    written: &BTreeMap<ObjectRef, Written>,
    world: &World,
    outcomes: &[Outcome],
    served: &Served,
    now: &Time,
) -> (Vec<StatusWrite>, Vec<ObjectRef>) {
    let key = |meta: &kube::core::ObjectMeta| (meta.namespace.clone().unwrap_or_default(), meta.name.clone());
    let servers: BTreeMap<_, &McpServer> = world.servers.iter().map(|s| (key(s.meta()), s)).collect();
    let routes: BTreeMap<_, &McpRoute> = world.routes.iter().map(|r| (key(r.meta()), r)).collect();
    let (mut writes, mut confirmed) = (Vec::new(), Vec::new());
    for outcome in outcomes {
        let object = &outcome.object;
        let (namespace, name) = (&object.namespace, &object.name);
        let at = (namespace.clone(), Some(name.clone()));
        // The uid and status the watch shows. An object whose fields do not parse is not
        // in the world, but its status can still say why.
        let (regarding, uid, seen_at, watched) = match (object.kind, servers.get(&at), routes.get(&at)) {
            (Kind::McpServer, Some(s), _) => {
                let meta = s.meta();
                (s.object_ref(&()), meta.uid.clone(), meta.resource_version.clone(), s.status.as_ref().map(to_json))
            }
            (Kind::McpRoute, _, Some(r)) => {
                let meta = r.meta();
                (r.object_ref(&()), meta.uid.clone(), meta.resource_version.clone(), r.status.as_ref().map(to_json))
            }
            _ => {
                let (uid, status) = world.unreadable_seen.get(object).cloned().unwrap_or_default();
                (reference(object), uid, None, status)
            }
        };
        // What this replica wrote, until the watch shows it or moves past it: what the
        // object shows then.
        let unconfirmed = written.get(object).filter(|w| w.uid == uid && w.seen_at == seen_at);
        let shown = match (unconfirmed, &watched) {
            (Some(written), Some(watched)) if untimed(&written.status) != untimed(watched) => written.status.clone(),
            (Some(written), None) => written.status.clone(),
            (_, watched) => {
                confirmed.push(object.clone());
                watched.clone().unwrap_or(serde_json::Value::Null)
            }
        };
        let (status, value, before, conditions) = match object.kind {
            Kind::McpServer => {
                let current: Option<McpServerStatus> = serde_json::from_value(shown).ok();
                let counts = served.offered.get(&ObjectKey::new(namespace, name)).copied();
                let outcome = ready_until_probed(outcome, current.as_ref());
                let Some(status) = server_status(&outcome, current.as_ref(), counts, now) else { continue };
                let before = current.map(|s| s.conditions).unwrap_or_default();
                let (value, conditions) = (to_json(&status), status.conditions.clone());
                (Status::Server(status), value, before, conditions)
            }
            Kind::McpRoute => {
                let current: Option<McpRouteStatus> = serde_json::from_value(shown).ok();
                let path = served_path(served.config, namespace, name);
                let tools = visible_tools(served, namespace, name);
                let Some(status) = route_status(outcome, current.as_ref(), path, tools, served.gateway_url, now) else {
                    continue;
                };
                let before = current.map(|s| s.conditions).unwrap_or_default();
                let (value, conditions) = (to_json(&status), status.conditions.clone());
                (Status::Route(status), value, before, conditions)
            }
        };
        writes.push(StatusWrite {
            object: object.clone(),
            regarding,
            status,
            written: Written { uid, seen_at, status: value },
            events: events(&before, &conditions),
        });
    }
    (writes, confirmed)
}

/// The path the gateways serve a route at, if they serve it.
fn served_path<'a>(config: &'a GatewayConfig, namespace: &str, name: &str) -> Option<&'a str> {
    config.routes.iter().find(|r| r.namespace == namespace && r.name == name).map(|r| r.path.as_str())
}

/// How many tools a client of the route sees, when every mount's tools are known.
fn visible_tools(served: &Served, namespace: &str, name: &str) -> Option<u32> {
    let route = served.config.routes.iter().find(|r| r.namespace == namespace && r.name == name)?;
    let mut count = 0usize;
    for mount in &route.mounts {
        let names = served.tool_names.get(&ObjectKey::new(namespace, &mount.server))?;
        let matcher = mount.tools.matcher().ok()?;
        // A route that reports names its providers refuse leaves those tools out.
        let left_out = |visible: &str| {
            let prefixed = manifold_api::config::prefixed(&mount.prefix, visible);
            route.compatibility.as_ref().is_some_and(|profile| {
                profile.report && manifold_api::compat::name_problem(&prefixed, &profile.providers).is_some()
            })
        };
        count += names.iter().filter(|n| matcher.visible(n).is_some_and(|visible| !left_out(visible))).count();
    }
    u32::try_from(count).ok()
}

/// An Event for each condition that flipped, or that appears saying something is wrong (a
/// new object that is fine makes no noise). What was shown before is what this replica
/// last wrote, else what the object shows.
pub fn events(shown: &[Condition], now: &[Condition]) -> Vec<Notice> {
    let mut events = Vec::new();
    for condition in now {
        let before = shown.iter().find(|c| c.type_ == condition.type_);
        let good = (condition.status == "True") != (condition.type_ == PARTIALLY_INVALID);
        // A route not Programmed yet, a server not probed yet: no news; nor is what
        // follows from another condition's failure (that one has its Event).
        let expected = good || EXPECTED.contains(&condition.reason.as_str());
        if before.is_some_and(|b| b.status == condition.status) || (before.is_none() && expected) {
            continue;
        }
        let mut note = format!("{}={}: {}", condition.type_, condition.status, condition.message);
        note.truncate(note.floor_char_boundary(1024));
        // Waiting for replicas or for a probe is progress, not a problem.
        let progress = PROGRESS.contains(&condition.reason.as_str());
        events.push(Notice { warning: !(good || progress), reason: condition.reason.clone(), note });
    }
    events
}

/// A reference to an object known only by kind, namespace and name (one that does not parse).
fn reference(object: &ObjectRef) -> ObjectReference {
    ObjectReference {
        api_version: Some(manifold_api::resources::API_VERSION.into()),
        kind: Some(object.kind.to_string()),
        namespace: Some(object.namespace.clone()),
        name: Some(object.name.clone()),
        ..ObjectReference::default()
    }
}

fn to_json(status: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(status).expect("statuses serialize")
}

/// A status without its conditions' `lastTransitionTime`s.
fn untimed(status: &serde_json::Value) -> serde_json::Value {
    let mut status = status.clone();
    for condition in status["conditions"].as_array_mut().into_iter().flatten() {
        condition.as_object_mut().map(|c| c.remove("lastTransitionTime"));
    }
    status
}
