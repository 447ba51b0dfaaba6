//! Judging: compile's outcomes, the probe results and the gateway replicas in; the
//! conditions compile cannot know (a server's `Ready`, a route's `Programmed`, a tenant too
//! large to publish) added to those outcomes out. Pure.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use manifold_api::config::{OutboundAuth, Upstream};
use manifold_api::outcome::condition::{ACCEPTED, PROGRAMMED, READY};
use manifold_api::outcome::reason::{self, PROBING, Probed};
use manifold_api::outcome::{Kind, Outcome, Verdict};
use manifold_api::publish::TooLarge;
use manifold_api::resources::McpServerStatus;
use manifold_api::{GatewayConfig, ObjectKey};

use crate::probe::{self, Probes};
use crate::programmed::{self, Replica};

/// When a route last changed, and whether the gateways have caught up.
#[derive(Clone, Debug)]
pub struct Change {
    pub generation: u64,
    pub at: Instant,
    pub programmed: bool,
}

/// What each usable server offers as (tools, resources, prompts).
pub type Offers = BTreeMap<ObjectKey, (u32, u32, u32)>;
/// Tool names per server, for the tools a route's clients see.
pub type ToolNames = BTreeMap<ObjectKey, Vec<String>>;

/// (tools, resources, prompts) of every usable server whose offer is known: OpenAPI ones
/// from their compiled components, remote ones from their last successful probe.
pub fn offers(servers: &BTreeMap<ObjectKey, Upstream>, probes: &Probes) -> BTreeMap<ObjectKey, (u32, u32, u32)> {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    servers
        .iter()
        .filter_map(|(key, upstream)| match upstream {
            Upstream::OpenApi(api) => {
                Some((key.clone(), (count(api.tools.len()), count(api.resources.len() + api.templates.len()), 0)))
            }
            Upstream::Remote(_) => match probes.get(key) {
                Some(Ok(o)) => Some((key.clone(), (count(o.tools.len()), o.resources, o.prompts))),
                _ => None,
            },
        })
        .collect()
}

fn verdict(status: bool, reason: &str, message: &str) -> Verdict {
    Verdict { type_: READY.into(), status, reason: reason.into(), message: message.into() }
}

/// Adds each McpServer's `Ready` condition; returns what the servers offer, and their tool
/// names.
pub fn judge_servers(
    outcomes: &mut [Outcome],
    servers: &BTreeMap<ObjectKey, Upstream>,
    probes: &Probes,
) -> (Offers, ToolNames) {
    let offered = offers(servers, probes);
    let tool_names = servers
        .iter()
        .filter_map(|(key, upstream)| match upstream {
            Upstream::OpenApi(api) => Some((key.clone(), api.tools.iter().map(|t| t.name.clone()).collect())),
            Upstream::Remote(_) => Some((key.clone(), probes.get(key)?.as_ref().ok()?.tools.clone())),
        })
        .collect();
    for outcome in outcomes.iter_mut().filter(|o| o.object.kind == Kind::McpServer) {
        let key = outcome.object.key();
        outcome.conditions.push(match (servers.get(&key), offered.get(&key)) {
            (Some(Upstream::Remote(remote)), _) if let Some(auth) = &remote.auth => unprobed(auth),
            (Some(Upstream::Remote(_)), _) => match probes.get(&key) {
                Some(result) => probe::ready(result),
                None => verdict(false, PROBING, "not asked yet"),
            },
            (Some(Upstream::OpenApi(_)), Some(counts)) => verdict(
                true,
                reason::READY,
                &format!("compiled from its OpenAPI document: {} tool(s), {} resource(s)", counts.0, counts.1),
            ),
            _ => verdict(false, reason::INVALID_SPEC, "the server is not usable: see Accepted and ResolvedRefs"),
        });
    }
    (offered, tool_names)
}

/// The `Ready` of a remote server the operator does not probe (see `probe::remotes`): its
/// credential is made by the gateway per call, and who it is made for decides what the
/// server lists.
fn unprobed(auth: &OutboundAuth) -> Verdict {
    let mode = auth.mode();
    match auth.speaks_for_caller() {
        true => verdict(
            true,
            reason::TOOLS_PER_CALLER,
            &format!(
                "not probed: with {mode} the server answers each caller as that caller, so its tools are listed \
                 per caller, through a route"
            ),
        ),
        false => {
            verdict(true, reason::NOT_PROBED, &format!("not probed: credentials obtained by the gateway ({mode})"))
        }
    }
}

/// Adds each McpRoute's `Programmed` condition; returns how many served routes are not
/// Programmed yet, and how long those that just became Programmed took (by `at`).
pub fn judge_programmed(
    config: &GatewayConfig,
    changed_in: &mut BTreeMap<ObjectKey, Change>,
    outcomes: &mut [Outcome],
    replicas: &[Replica],
    at: Instant,
) -> (usize, Vec<Duration>) {
    let mounts: BTreeMap<(&str, &str), usize> =
        config.routes.iter().map(|r| ((r.namespace.as_str(), r.name.as_str()), r.mounts.len())).collect();
    let (mut pending, mut programmed_after) = (0, Vec::new());
    for outcome in outcomes.iter_mut().filter(|o| o.object.kind == Kind::McpRoute) {
        let key = outcome.object.key();
        let mounts = mounts.get(&(key.namespace.as_str(), key.name.as_str())).copied().unwrap_or(0);
        outcome.conditions.push(match changed_in.get_mut(&key) {
            Some(change) => {
                let verdict = programmed::verdict(&key, change.generation, &config.hash, mounts, replicas);
                if verdict.status && !change.programmed {
                    programmed_after.push(at.saturating_duration_since(change.at));
                }
                change.programmed = verdict.status;
                pending += usize::from(!verdict.status);
                verdict
            }
            None => Verdict {
                type_: PROGRAMMED.into(),
                status: false,
                reason: reason::NOT_SERVED.into(),
                message: "the route is not part of the gateways' config".into(),
            },
        });
    }
    (pending, programmed_after)
}

/// A remote server not asked yet (this replica just began leading, or the server is new)
/// keeps the `Ready` its status gives for the same generation: a new leader must not flip
/// every server to "not asked yet" and back.
pub fn ready_until_probed<'a>(outcome: &'a Outcome, current: Option<&McpServerStatus>) -> Cow<'a, Outcome> {
    let unknown = |v: &Verdict| v.type_ == READY && v.reason == PROBING;
    // Only what a probe said: another reason spoke of a config that may have changed since.
    let probed = |reason: &str| Probed::from_reason(reason).is_some();
    let shown = current
        .into_iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c.type_ == READY && c.observed_generation == outcome.generation && probed(&c.reason));
    match (outcome.conditions.iter().position(unknown), shown) {
        (Some(at), Some(shown)) => {
            let mut kept = outcome.clone();
            kept.conditions[at] = Verdict {
                type_: shown.type_.clone(),
                status: shown.status == "True",
                reason: shown.reason.clone(),
                message: shown.message.clone(),
            };
            Cow::Owned(kept)
        }
        _ => Cow::Borrowed(outcome),
    }
}

/// A route of a tenant too large to publish: not Accepted.
pub fn refuse_too_large(outcome: &mut Outcome, error: &TooLarge, kept: bool) {
    let kept = if kept { " (the version the gateways served before stays)" } else { "" };
    let refused = Verdict {
        type_: ACCEPTED.into(),
        status: false,
        reason: reason::TOO_LARGE.into(),
        message: format!("{error}: split this namespace's routes, or make them smaller{kept}"),
    };
    match outcome.conditions.iter_mut().find(|c| c.type_ == ACCEPTED) {
        // Refused for a reason of its own already: that one says more.
        Some(accepted) if !accepted.status => {}
        Some(accepted) => *accepted = refused,
        None => outcome.conditions.insert(0, refused),
    }
}
