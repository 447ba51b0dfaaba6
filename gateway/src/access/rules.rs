//! A route's authorization rules, compiled: the first rule that matches the caller, the
//! action and the target decides; with rules and no match, the answer is no.

use manifold_api::config::{Action, AuthorizationRule, Effect};
use serde_json::Value;

use super::{Decision, Principal, use_action};
use crate::globs::Globs;
use crate::protocol::Kind;

pub struct Rules(Vec<Rule>);

struct Rule {
    effect: Effect,
    principals: Option<Globs>,
    groups: Vec<String>,
    scopes: Vec<String>,
    claims: Vec<(String, String)>,
    actions: Vec<Action>,
    tools: Option<Globs>,
    prompts: Option<Globs>,
    resources: Option<Globs>,
}

impl Rules {
    pub fn build(rules: &[AuthorizationRule]) -> Result<Self, String> {
        let mut compiled = Vec::with_capacity(rules.len());
        for rule in rules {
            compiled.push(Rule {
                effect: rule.effect,
                principals: Globs::some(&rule.principals)?,
                groups: rule.groups.clone(),
                scopes: rule.scopes.clone(),
                claims: rule.claims.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                actions: rule.actions.clone(),
                tools: Globs::some(&rule.tools)?,
                prompts: Globs::some(&rule.prompts)?,
                resources: Globs::some(&rule.resources)?,
            });
        }
        Ok(Rules(compiled))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn decide(&self, principal: &Principal, action: Action, kind: Kind, target: &str) -> Decision {
        if self.0.is_empty() {
            return Decision::Open;
        }
        match self.0.iter().position(|rule| rule.matches(principal, action, kind, target)) {
            Some(i) if self.0[i].effect == Effect::Allow => Decision::AllowedByRule(i),
            Some(i) => Decision::DeniedByRule(i),
            None => Decision::NoRuleMatched,
        }
    }
}

impl Rule {
    fn matches(&self, principal: &Principal, action: Action, kind: Kind, target: &str) -> bool {
        self.covers_action(action, kind) && self.covers_target(kind, target) && self.covers_caller(principal)
    }

    /// Empty: every action. Using a component implies listing it.
    fn covers_action(&self, action: Action, kind: Kind) -> bool {
        self.actions.is_empty()
            || self.actions.contains(&action)
            || (action == Action::List && self.actions.contains(&use_action(kind)))
    }

    /// A rule naming no targets covers every component; one naming some covers only those.
    fn covers_target(&self, kind: Kind, target: &str) -> bool {
        if self.tools.is_none() && self.prompts.is_none() && self.resources.is_none() {
            return true;
        }
        let globs = match kind {
            Kind::Tool => &self.tools,
            Kind::Prompt => &self.prompts,
            Kind::Resource | Kind::Template => &self.resources,
        };
        globs.as_ref().is_some_and(|set| set.is_match(target))
    }

    fn covers_caller(&self, principal: &Principal) -> bool {
        self.principals.as_ref().is_none_or(|set| set.is_match(&principal.name))
            && (self.groups.is_empty() || self.groups.iter().any(|g| principal.groups.contains(g)))
            && self.scopes.iter().all(|s| principal.scopes.contains(s))
            && self.claims.iter().all(|(name, wanted)| match principal.claim(name) {
                Some(Value::String(value)) => value == wanted,
                Some(Value::Array(values)) => values.iter().any(|v| v.as_str() == Some(wanted)),
                Some(Value::Bool(b)) => b.to_string() == *wanted,
                Some(Value::Number(n)) => n.to_string() == *wanted,
                _ => false,
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::access::authn::Source;

    fn principal(name: &str, groups: &[&str], scopes: &[&str]) -> Principal {
        Principal::new(
            name.into(),
            groups.iter().map(|g| (*g).into()).collect(),
            scopes.iter().map(|s| (*s).into()).collect(),
            serde_json::from_str::<Map<String, Value>>(r#"{"tenant": "acme", "roles": ["x"]}"#).unwrap(),
            Source::ApiKey,
        )
    }

    fn rules(yaml: &str) -> Rules {
        Rules::build(&serde_yaml::from_str::<Vec<AuthorizationRule>>(yaml).unwrap()).unwrap()
    }

    #[test]
    fn first_match_decides_and_nothing_matched_is_denied() {
        let r = rules(
            "[{effect: Deny, groups: [contractors], tools: ['gh_delete_*']},
              {effect: Allow, groups: [dev, contractors], actions: [call], tools: ['gh_*']},
              {effect: Allow, principals: ['svc-*'], claims: {tenant: acme, roles: x}}]",
        );
        let contractor = principal("c", &["contractors"], &[]);
        let dev = principal("d", &["dev"], &[]);
        assert_eq!(r.decide(&contractor, Action::Call, Kind::Tool, "gh_delete_repo"), Decision::DeniedByRule(0));
        assert_eq!(r.decide(&contractor, Action::Call, Kind::Tool, "gh_list"), Decision::AllowedByRule(1));
        assert_eq!(
            r.decide(&dev, Action::List, Kind::Tool, "gh_list"),
            Decision::AllowedByRule(1),
            "call implies list"
        );
        assert_eq!(r.decide(&dev, Action::Get, Kind::Prompt, "gh_list"), Decision::NoRuleMatched);
        assert_eq!(r.decide(&dev, Action::Call, Kind::Tool, "jira_x"), Decision::NoRuleMatched);
        let svc = principal("svc-ci", &[], &[]);
        assert_eq!(r.decide(&svc, Action::Read, Kind::Resource, "file://a/b"), Decision::AllowedByRule(2));
    }

    #[test]
    fn scopes_are_all_required_and_resources_globs_cross_slashes() {
        let r = rules("[{effect: Allow, scopes: [read, write], resources: ['file://docs/*']}]");
        let both = principal("p", &[], &["read", "write"]);
        let one = principal("p", &[], &["read"]);
        assert!(r.decide(&both, Action::Read, Kind::Resource, "file://docs/a/b.md").allowed());
        assert!(!r.decide(&one, Action::Read, Kind::Resource, "file://docs/a.md").allowed());
        assert!(!r.decide(&both, Action::Call, Kind::Tool, "docs_x").allowed(), "a resource rule covers no tool");
    }
}
