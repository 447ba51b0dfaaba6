//! What compile says about each object: its conditions (types and reasons are constants here,
//! in one place) and the problems behind them. The operator turns outcomes into `status`;
//! local mode logs them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::key::ObjectKey;

/// Condition types.
pub mod condition {
    /// The spec is valid and (for routes) its path is not taken by an older route.
    pub const ACCEPTED: &str = "Accepted";
    /// Every referenced McpServer, Secret and ConfigMap exists and is usable.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// Every ready gateway replica serves the route (set by the operator).
    pub const PROGRAMMED: &str = "Programmed";
    /// Present, and true, when parts of an object are left out and the rest is served (an
    /// OpenAPI operation that cannot be translated), as Gateway API routes report it.
    pub const PARTIALLY_INVALID: &str = "PartiallyInvalid";
    /// Present on a route with a compatibility profile: what the profile does to its tools'
    /// names (always true: a name a provider refuses is shortened, or left out and reported).
    pub const COMPATIBLE: &str = "Compatible";
    /// An McpServer answers (remote: its last probe, or, for one whose credential the gateway
    /// makes per call, it compiled; OpenAPI: it compiled; set by the operator).
    pub const READY: &str = "Ready";
}

/// Condition reasons.
pub mod reason {
    /// Positive reason of `Accepted`.
    pub const ACCEPTED: &str = "Accepted";
    /// Positive reason of `ResolvedRefs`.
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    /// A field is invalid.
    pub const INVALID: &str = "Invalid";
    /// An older route serves the same host and path.
    pub const PATH_CONFLICT: &str = "PathConflict";
    /// Two mounts expose the same client-visible tool name.
    pub const NAME_COLLISION: &str = "NameCollision";
    /// A referenced object does not exist.
    pub const REF_NOT_FOUND: &str = "RefNotFound";
    /// A referenced McpServer exists but cannot be mounted: it is not usable itself, or not
    /// by this route (its credential needs the caller's JWT, and the route takes none).
    pub const REF_NOT_READY: &str = "RefNotReady";
    /// Operations of an OpenAPI document are left out.
    pub const OPERATIONS_SKIPPED: &str = "OperationsSkipped";
    /// `Compatible`: every known client-visible tool name meets the named providers' rules as
    /// it is (or the mounted servers' tools are not known yet, and the gateways apply the
    /// profile as they list).
    pub const COMPATIBLE: &str = "Compatible";
    /// `Compatible`: names a provider refuses are served in their short forms (listed).
    pub const NAMES_SHORTENED: &str = "NamesShortened";
    /// `Compatible` and `PartiallyInvalid`: tools whose names a provider refuses are left out
    /// for the route's clients (`incompatibleToolNames: Report`; each named, with why).
    pub const TOOLS_LEFT_OUT: &str = "ToolsLeftOut";
    /// A tenant's routes together are too large for a config Secret (set by the operator).
    pub const TOO_LARGE: &str = "TooLarge";

    /// Positive reason of `Ready`: the server answered its probe, or compiled from its
    /// OpenAPI document.
    pub const READY: &str = Probed::Ready.reason();
    /// `Ready` of a remote server not probed yet.
    pub const PROBING: &str = "Probing";
    /// `Ready` of a remote server whose credential is made per caller (token exchange,
    /// per-user tokens, the caller's own token, a JWT about the caller): the operator has no
    /// caller to probe it as; its tools are listed per caller, through a route.
    pub const TOOLS_PER_CALLER: &str = "ToolsPerCaller";
    /// `Ready` of a remote server whose credential the gateway obtains or mints per call for
    /// every caller alike (client credentials, a JWT with a fixed subject): not probed.
    pub const NOT_PROBED: &str = "NotProbed";
    /// `Ready` of a server that is not usable (see `Accepted` and `ResolvedRefs`).
    pub const INVALID_SPEC: &str = "InvalidSpec";

    /// Positive reason of `Programmed`: every ready gateway replica serves the route.
    pub const PROGRAMMED: &str = "Programmed";
    /// No gateway replica is ready.
    pub const NO_REPLICAS: &str = "NoReplicas";
    /// A ready gateway replica does not serve the route's generation yet.
    pub const PENDING: &str = "Pending";
    /// A gateway replica serves the route without some of its mounts.
    pub const MOUNTS_NOT_BUILT: &str = "MountsNotBuilt";
    /// The route is not part of the gateways' config.
    pub const NOT_SERVED: &str = "NotServed";

    /// What a probe of a remote server says, as its `Ready` reason: only these speak of the
    /// server itself rather than of its spec (a new leader keeps them until it probes).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Probed {
        /// It answered: `Ready` is true.
        Ready,
        /// It could not be reached, or did not answer in time.
        Unreachable,
        /// It refused the credentials.
        Unauthorized,
        /// It answered, but not as an MCP server does.
        ProtocolError,
    }

    impl Probed {
        /// Every variant; [`Probed::reason`]'s exhaustive match is what a new one must pass.
        pub const ALL: [Probed; 4] = [Probed::Ready, Probed::Unreachable, Probed::Unauthorized, Probed::ProtocolError];

        /// The condition reason.
        pub const fn reason(self) -> &'static str {
            match self {
                Probed::Ready => "Ready",
                Probed::Unreachable => "Unreachable",
                Probed::Unauthorized => "Unauthorized",
                Probed::ProtocolError => "ProtocolError",
            }
        }

        /// The probe result a reason names, if it names one.
        pub fn from_reason(reason: &str) -> Option<Probed> {
            Probed::ALL.into_iter().find(|p| p.reason() == reason)
        }
    }

    /// Reasons that say "not yet", or follow from another condition's failure: no news when
    /// a condition first appears with one of them.
    pub const EXPECTED: [&str; 5] = [PENDING, NO_REPLICAS, NOT_SERVED, PROBING, INVALID_SPEC];
    /// Reasons that are progress, not a problem, though their condition is false.
    pub const PROGRESS: [&str; 2] = [PENDING, PROBING];
}

/// The kinds compile reports on.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// An McpServer.
    McpServer,
    /// An McpRoute.
    McpRoute,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::McpServer => "McpServer",
            Kind::McpRoute => "McpRoute",
        })
    }
}

/// Identity of a namespaced object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// Its kind.
    pub kind: Kind,
    /// Its namespace (the tenant).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ObjectRef {
    /// Its (namespace, name), without the kind.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(&self.namespace, &self.name)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One thing wrong with an object, and where.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Field path, for example `spec.mounts[1].server`.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// One condition as compile decides it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Condition type (see [`condition`]).
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether the condition holds.
    pub status: bool,
    /// CamelCase reason (see [`reason`]).
    pub reason: String,
    /// Human-readable explanation.
    pub message: String,
}

/// Everything compile has to say about one object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The object.
    pub object: ObjectRef,
    /// The `metadata.generation` compiled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Its conditions.
    pub conditions: Vec<Verdict>,
    /// For routes: the effective path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What the gateways serve for it.
    pub serving: Serving,
}

/// What the gateways serve for an object after this compile.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Serving {
    /// This version.
    Current,
    /// The object is invalid now; its last valid version is still served.
    LastValid,
    /// Nothing.
    Nothing,
}

impl Outcome {
    /// True when nothing is wrong: every condition holds, and none says a part is left out.
    pub fn is_ok(&self) -> bool {
        self.conditions.iter().all(Verdict::is_good)
    }

    /// One line per condition that says something is wrong, each naming the object, for logs
    /// and CLI output.
    pub fn failures(&self) -> impl Iterator<Item = String> + '_ {
        self.conditions
            .iter()
            .filter(|c| !c.is_good())
            .map(move |c| format!("{} {} ({}): {}", self.object, c.type_, c.reason, c.message))
    }
}

impl Verdict {
    /// Whether the condition reports nothing wrong (`PartiallyInvalid` is good when false).
    pub fn is_good(&self) -> bool {
        self.status != (self.type_ == condition::PARTIALLY_INVALID)
    }
}

/// Builds a verdict from the problems found for one condition.
pub(crate) fn verdict(type_: &str, ok_reason: &str, failed: Option<(&str, &[Problem])>, ok_message: &str) -> Verdict {
    match failed {
        Some((reason, problems)) if !problems.is_empty() => Verdict {
            type_: type_.into(),
            status: false,
            reason: reason.into(),
            message: problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("; "),
        },
        _ => Verdict { type_: type_.into(), status: true, reason: ok_reason.into(), message: ok_message.into() },
    }
}

#[cfg(test)]
mod tests {
    use super::reason::Probed;

    #[test]
    fn every_probe_result_has_a_reason_of_its_own_and_is_listed() {
        // A new variant fails to compile here until it has an index, and the test until it
        // is in ALL at that index.
        let index = |p: Probed| match p {
            Probed::Ready => 0,
            Probed::Unreachable => 1,
            Probed::Unauthorized => 2,
            Probed::ProtocolError => 3,
        };
        for (at, probed) in Probed::ALL.into_iter().enumerate() {
            assert_eq!(index(probed), at);
            assert_eq!(Probed::from_reason(probed.reason()), Some(probed));
        }
        assert_eq!(Probed::ALL.len(), 4);
        assert_eq!(Probed::from_reason("Probing"), None, "not a probe's answer");
    }
}
