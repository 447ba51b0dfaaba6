//! An external policy decision point, asked per call: Permit.io's PDP `/allowed` contract
//! (`{user, action, resource: {type, key, tenant}, context}` → `{allow}`) or OPA's data API
//! (`{input: …}` → `{result}`). Fail-closed: no answer in time, or one that cannot be read,
//! is a denial. Answers are reused for a short while per caller, action and target.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http_body_util::{BodyExt, Full, Limited};
use manifold_api::config::{Action, DecisionApi, ExternalConfig};
use serde_json::{Value, json};

use super::{Decision, Principal, action_name};
use crate::protocol::Kind;
use crate::upstream::client::HttpClient;

/// Cached decisions beyond this are dropped wholesale (a burst of distinct targets must
/// not grow memory without bound).
const MAX_CACHED: usize = 10_000;
const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub struct Decider {
    config: ExternalConfig,
    tenant: String,
    /// Where the decision service may be reached.
    egress: manifold_runtime::egress::Egress,
    cache: Mutex<HashMap<Question, (bool, Instant)>>,
}

/// Who asks to do what to which component: (identity, action, resource type, target).
type Question = (String, Action, &'static str, String);

impl Decider {
    pub fn new(config: ExternalConfig, tenant: String, egress: manifold_runtime::egress::Egress) -> Self {
        Decider { config, tenant, egress, cache: Mutex::default() }
    }

    pub async fn decide(&self, principal: &Principal, action: Action, kind: Kind, target: &str) -> Decision {
        let key = (principal.identity.clone(), action, resource_type(kind), target.to_owned());
        let ttl = Duration::from_millis(self.config.cache_ttl_ms);
        if !ttl.is_zero()
            && let Some((allowed, at)) = self.cache.lock().expect("decision cache").get(&key)
            && at.elapsed() < ttl
        {
            return if *allowed { Decision::AllowedByDecider } else { Decision::DeniedByDecider };
        }
        let asked = crate::traces::traced("authorize.external", self.ask(principal, action, kind, target)).await;
        let allowed = match asked {
            Ok(allowed) => allowed,
            Err(error) => {
                tracing::warn!(tenant = %self.tenant, %error, "the policy decision point did not decide; denying");
                return Decision::DeniedByDecider;
            }
        };
        if !ttl.is_zero() {
            let mut cache = self.cache.lock().expect("decision cache");
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(key, (allowed, Instant::now()));
        }
        if allowed { Decision::AllowedByDecider } else { Decision::DeniedByDecider }
    }

    async fn ask(&self, principal: &Principal, action: Action, kind: Kind, target: &str) -> Result<bool, String> {
        let query = json!({
            "user": {
                "key": principal.name,
                "attributes": { "groups": principal.groups, "scopes": principal.scopes, "source": source(principal) },
            },
            "action": action_name(action),
            "resource": { "type": resource_type(kind), "key": target, "tenant": self.tenant },
            "context": {},
        });
        let body = match self.config.api {
            DecisionApi::Permit => query,
            DecisionApi::Opa => json!({ "input": query }),
        };
        let mut request = http::Request::post(&self.config.url).header(CONTENT_TYPE, "application/json");
        if let Some(token) = &self.config.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request =
            request.body(Full::new(Bytes::from(body.to_string()))).map_err(|e| format!("invalid request: {e}"))?;
        let exchange = async {
            let response = HttpClient::current(self.egress).send(request).await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status()));
            }
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            serde_json::from_slice::<Value>(&body).map_err(|e| format!("the answer is not JSON: {e}"))
        };
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let answer =
            tokio::time::timeout(timeout, exchange).await.map_err(|_| format!("no answer within {timeout:?}"))??;
        let decision = match self.config.api {
            DecisionApi::Permit => answer.get("allow"),
            // OPA: the rule's value itself, or an object with `allow`.
            DecisionApi::Opa => answer.get("result").map(|r| r.get("allow").unwrap_or(r)),
        };
        decision.and_then(Value::as_bool).ok_or_else(|| format!("the answer has no boolean decision: {answer}"))
    }
}

fn resource_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Tool => "tool",
        Kind::Prompt => "prompt",
        Kind::Resource | Kind::Template => "resource",
    }
}

fn source(principal: &Principal) -> &'static str {
    match principal.source {
        super::authn::Source::Anonymous => "anonymous",
        super::authn::Source::ApiKey => "apiKey",
        super::authn::Source::Jwt(_) => "jwt",
    }
}
