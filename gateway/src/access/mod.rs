//! Access control, per route: `authn` turns a request's credential into a [`Principal`] (or
//! a refusal: 401 with a challenge naming the route's `metadata`, or 403 for a missing
//! scope), `keys` keeps the JWT verification keys, `rules` and `decider` decide what the
//! principal may do (the route's rules first, then its external decision point), and
//! `audit` records each use of a component.

pub mod audit;
pub mod authn;
mod decider;
pub mod keys;
pub mod metadata;
mod rules;

use manifold_api::config::{Action, RouteConfig};

pub use authn::{CallerToken, Principal, Refusal, binding};

use crate::protocol::Kind;

/// Everything a route needs to check callers, built once per snapshot.
pub struct Access {
    pub authn: authn::Authenticator,
    rules: rules::Rules,
    decider: Option<decider::Decider>,
}

/// How a decision was reached, for the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No rules and no decision point: every authenticated caller may.
    Open,
    /// The rule at this index allowed.
    AllowedByRule(usize),
    /// The rule at this index denied.
    DeniedByRule(usize),
    /// Rules exist and none matched.
    NoRuleMatched,
    /// The decision point allowed.
    AllowedByDecider,
    /// The decision point denied, or could not be asked in time (fail-closed).
    DeniedByDecider,
}

impl Decision {
    pub fn allowed(self) -> bool {
        matches!(self, Decision::Open | Decision::AllowedByRule(_) | Decision::AllowedByDecider)
    }
}

/// The audit log's words for a decision.
impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Open => f.write_str("allow (no rules)"),
            Decision::AllowedByRule(i) => write!(f, "allow (rules[{i}])"),
            Decision::DeniedByRule(i) => write!(f, "deny (rules[{i}])"),
            Decision::NoRuleMatched => f.write_str("deny (no rule matched)"),
            Decision::AllowedByDecider => f.write_str("allow (external)"),
            Decision::DeniedByDecider => f.write_str("deny (external)"),
        }
    }
}

impl serde::Serialize for Decision {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Access {
    pub fn build(route: &RouteConfig, key_sets: &mut keys::Pool) -> Result<Self, String> {
        let authz = route.authorization.clone().unwrap_or_default();
        Ok(Access {
            authn: authn::Authenticator::build(route, key_sets)?,
            rules: rules::Rules::build(&authz.rules)?,
            decider: authz
                .external
                .map(|config| decider::Decider::new(config, route.namespace.clone(), key_sets.egress)),
        })
    }

    /// May `principal` do `action` to the component the client knows as `target`?
    pub async fn decide(&self, principal: &Principal, action: Action, kind: Kind, target: &str) -> Decision {
        let local = self.rules.decide(principal, action, kind, target);
        if !local.allowed() {
            return local;
        }
        match &self.decider {
            Some(decider) => decider.decide(principal, action, kind, target).await,
            None => local,
        }
    }

    /// Whether a list shows the component: the caller may list it and use it, so that a
    /// list never shows what the caller would be refused.
    pub async fn lists(&self, principal: &Principal, kind: Kind, target: &str) -> bool {
        if self.rules.is_empty() && self.decider.is_none() {
            return true;
        }
        let listing = self.rules.decide(principal, Action::List, kind, target);
        listing.allowed() && self.decide(principal, use_action(kind), kind, target).await.allowed()
    }

    /// Whether anything can be denied here (else lists need no filtering at all).
    pub fn is_open(&self) -> bool {
        self.rules.is_empty() && self.decider.is_none()
    }
}

/// The action that uses a component of this kind.
pub fn use_action(kind: Kind) -> Action {
    match kind {
        Kind::Tool => Action::Call,
        Kind::Prompt => Action::Get,
        Kind::Resource | Kind::Template => Action::Read,
    }
}

/// The action's name in errors and the audit log.
pub fn action_name(action: Action) -> &'static str {
    match action {
        Action::Call => "call",
        Action::Get => "get",
        Action::Read => "read",
        Action::List => "list",
    }
}
