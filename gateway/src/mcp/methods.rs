//! The MCP methods a route answers. Lists are merged from every mount (`lists`); a request
//! about one component (`tools/call`, `prompts/get`, `resources/read`, subscriptions,
//! `completion/complete`) is routed to the mount that owns it, with the upstream's name or
//! URI restored; `logging/setLevel` goes to every mount; `ping` is answered here. A mount that
//! fails affects only its own components.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::cached;
use super::call::{Answer, Call, Forward};
use super::lists;
use super::rewrite::client_side_uris;
use crate::access;
use crate::jsonrpc::{RpcError, raw};
use crate::metrics::{LimitLabels, RefusalLabels, RefusalReason};
use crate::policy::limits::Limited;
use crate::protocol::code::{
    FORBIDDEN, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, RATE_LIMITED, RESOURCE_NOT_FOUND,
};
use crate::protocol::{Kind, Method, meta};
use crate::snapshot::{Mount, Route};
use crate::upstream::identity::Denied;
use crate::upstream::{Reply, UpstreamError};
use manifold_api::config::Action;

/// Answers one request; `method` is `name` parsed.
#[tracing::instrument(level = "debug", skip_all, fields(route = %call.route.id(), session = %call.session.log_id(), method = name))]
pub async fn dispatch(call: &Call, method: Method, name: &str, params: Option<&RawValue>) -> Answer {
    // Requests about one component meet the limits after authorization, in `routed`.
    let about_one = method.is_about_one();
    if !about_one
        && !call.route.limits.is_empty()
        && let Err(refused) = call.gateway.limiter.check(&call.route.limits, &call.principal.name, None).await
    {
        return limited(call, method, refused);
    }
    match method {
        Method::Ping => Answer::Result(raw(&json!({}))),
        Method::ToolsList => lists::page(call, Kind::Tool, params).await,
        Method::PromptsList => lists::page(call, Kind::Prompt, params).await,
        Method::ResourcesList => lists::page(call, Kind::Resource, params).await,
        Method::ResourcesTemplatesList => lists::page(call, Kind::Template, params).await,
        Method::ToolsCall => routed(call, Kind::Tool, method, params).await,
        Method::PromptsGet => routed(call, Kind::Prompt, method, params).await,
        Method::ResourcesRead | Method::ResourcesSubscribe | Method::ResourcesUnsubscribe => {
            routed(call, Kind::Resource, method, params).await
        }
        Method::CompletionComplete => complete(call, params).await,
        Method::LoggingSetLevel => set_level(call, params).await,
        _ => {
            Answer::Error(RpcError::new(METHOD_NOT_FOUND, format!("method `{name}` is not supported by this gateway")))
        }
    }
}

/// A request about one component, named in `params` by `name` (tools, prompts) or `uri`:
/// authorized on the name the client knows, routed to its mount, and (for calls, gets and
/// reads) written to the audit log.
async fn routed(call: &Call, kind: Kind, method: Method, params: Option<&RawValue>) -> Answer {
    let name = method.name();
    let field = if kind == Kind::Resource { "uri" } else { "name" };
    let mut fields: BTreeMap<String, Box<RawValue>> = match params.map(|p| serde_json::from_str(p.get())) {
        Some(Ok(fields)) => fields,
        _ => return Answer::Error(RpcError::new(INVALID_PARAMS, format!("{name} needs params with `{field}`"))),
    };
    let visible: String = match fields.get(field).map(|n| serde_json::from_str(n.get())) {
        Some(Ok(name)) => name,
        _ => return Answer::Error(RpcError::new(INVALID_PARAMS, format!("{name} needs params.{field}, a string"))),
    };
    if kind == Kind::Resource
        && let Err(why) = super::names::check_uri(&visible)
    {
        return Answer::Error(RpcError::new(INVALID_PARAMS, format!("{why}: `{visible}`")));
    }
    if visible.len() > super::names::MAX_TARGET_BYTES {
        return Answer::Error(RpcError::new(INVALID_PARAMS, "a name must be at most 2048 bytes"));
    }
    // A route with a compatibility profile may be sent a tool's short form: from here on the
    // tool goes by its client-visible name (see `compat`).
    let profile = call.route.config.compatibility.as_ref().filter(|_| kind == Kind::Tool);
    let visible = match profile {
        Some(profile) => match super::compat::resolve(call, profile, visible).await {
            Some(visible) => visible,
            None => return unknown(kind, &sent_name(&fields, field)),
        },
        None => visible,
    };
    let started = Instant::now();
    let action = if kind == Kind::Resource { Action::Read } else { access::use_action(kind) };
    let decision = call.route.access.decide(&call.principal, action, kind, &visible).await;
    let limits = &call.route.limits;
    let refused = match decision.allowed() && !limits.is_empty() {
        true => call.gateway.limiter.check(limits, &call.principal.name, Some((kind, &visible))).await.err(),
        false => None,
    };
    let rate_limited = refused.is_some();
    let (answer, mount) = if !decision.allowed() {
        (denied(call, kind, action, &visible), None)
    } else if let Some(refused) = refused {
        (limited(call, method, refused), None)
    } else {
        match owner(call, kind, &visible).await {
            Owner::Found(mount, upstream) => {
                let rule = match method {
                    Method::ToolsCall => call.route.caching.result_rule(&visible),
                    _ => None,
                };
                if let Some(profile) = profile {
                    super::compat::fit_arguments(call, profile, mount, &upstream, &mut fields).await;
                }
                fields.insert(field.into(), raw(&upstream));
                let sent = raw(&fields);
                let ask = forward(call, kind, mount, method, &sent, &visible, Some(&upstream));
                let answer = match rule {
                    Some(rule) => cached::tool_call(call, mount, rule, &visible, params, &fields, ask).await,
                    None => ask.await,
                };
                (answer, Some(mount.config.server.as_str()))
            }
            Owner::Unknown => (unknown(kind, &visible), None),
            Owner::Unavailable(mount) => (unavailable(kind, &visible, mount, "could not be asked for it"), Some(mount)),
        }
    };
    if matches!(method, Method::ToolsCall | Method::ResourcesRead | Method::PromptsGet) {
        let config = &call.route.config;
        let arguments = fields.get("arguments").filter(|_| config.audit_arguments).map(|a| &**a);
        call.gateway.audit.record(&access::audit::Event {
            tenant: &config.namespace,
            route: &config.name,
            principal: &call.principal.name,
            method: name,
            target: &visible,
            mount,
            decision,
            outcome: match (decision.allowed(), rate_limited) {
                (false, _) => "denied",
                (true, true) => "rate_limited",
                (true, false) => answer.outcome().as_str(),
            },
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            arguments,
        });
    }
    answer
}

/// A request a rate limit refuses, answered so that an agent reads it: a tool call gets a
/// result with `isError` whose text says when to retry (and the delay in `_meta`), since
/// agent frameworks hand tool results to the model but often turn JSON-RPC errors into
/// exceptions; anything else gets a JSON-RPC error with `data.retryAfterSeconds`.
fn limited(call: &Call, method: Method, refused: Limited) -> Answer {
    let (namespace, route) = (&*call.route.config.namespace, &*call.route.config.name);
    call.gateway.metrics.rate_limited.inc(&LimitLabels { namespace, route, limit: &refused.name });
    let seconds = refused.retry_after_seconds();
    tracing::debug!(route = %call.route.id(), limit = %refused.name, seconds, "rate limited");
    if method == Method::ToolsCall {
        let text = format!("{}. Nothing was run.", refused.message());
        let result = json!({
            "content": [{ "type": "text", "text": text }],
            "isError": true,
            "_meta": { meta::RETRY_AFTER_SECONDS: seconds },
        });
        return Answer::Result(raw(&result));
    }
    let data = json!({ "retryAfterSeconds": seconds, "limit": refused.name });
    Answer::Error(RpcError { code: RATE_LIMITED, message: refused.message(), data: Some(data) })
}

/// A request the route's authorization refuses: a JSON-RPC error naming the component.
fn denied(call: &Call, kind: Kind, action: Action, visible: &str) -> Answer {
    let (namespace, route) = (&*call.route.config.namespace, &*call.route.config.name);
    call.gateway.metrics.refusals.inc(&RefusalLabels { namespace, route, reason: RefusalReason::Denied });
    let message =
        format!("{} `{visible}`: {} is not allowed for this caller", kind.noun(), access::action_name(action));
    Answer::Error(RpcError::new(FORBIDDEN, message))
}

/// `completion/complete` goes where the prompt or resource template it completes lives.
async fn complete(call: &Call, params: Option<&RawValue>) -> Answer {
    let mut params: Map<String, Value> = match params.map(|p| serde_json::from_str(p.get())) {
        Some(Ok(params)) => params,
        _ => return Answer::Error(RpcError::new(INVALID_PARAMS, "completion/complete needs params with `ref`")),
    };
    let reference = params.get_mut("ref").and_then(Value::as_object_mut);
    let Some(reference) = reference else {
        return Answer::Error(RpcError::new(INVALID_PARAMS, "completion/complete needs params.ref, an object"));
    };
    let (kind, field) = match reference.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => (Kind::Prompt, "name"),
        Some("ref/resource") => (Kind::Template, "uri"),
        other => {
            let message = format!("params.ref.type must be `ref/prompt` or `ref/resource`, not {other:?}");
            return Answer::Error(RpcError::new(INVALID_PARAMS, message));
        }
    };
    let Some(visible) = reference.get(field).and_then(Value::as_str).map(str::to_owned) else {
        return Answer::Error(RpcError::new(INVALID_PARAMS, format!("params.ref.{field} must be a string")));
    };
    if kind == Kind::Template
        && let Err(why) = super::names::check_uri(&visible)
    {
        return Answer::Error(RpcError::new(INVALID_PARAMS, format!("{why}: `{visible}`")));
    }
    if visible.len() > super::names::MAX_TARGET_BYTES {
        return Answer::Error(RpcError::new(INVALID_PARAMS, "a name must be at most 2048 bytes"));
    }
    // Completing an argument reveals what the prompt or template offers: it needs get or read.
    let action = access::use_action(kind);
    if !call.route.access.decide(&call.principal, action, kind, &visible).await.allowed() {
        return denied(call, kind, action, &visible);
    }
    let (mount, upstream) = match owner(call, kind, &visible).await {
        Owner::Found(mount, upstream) => (mount, upstream),
        Owner::Unknown => return unknown(kind, &visible),
        Owner::Unavailable(mount) => return unavailable(kind, &visible, mount, "could not be asked for it"),
    };
    reference.insert(field.into(), Value::String(upstream.into_owned()));
    forward(call, kind, mount, Method::CompletionComplete, &raw(&params), &visible, None).await
}

/// Sends a routed request to its mount and maps the outcome.
async fn forward(
    call: &Call,
    kind: Kind,
    mount: &Mount,
    method: Method,
    params: &RawValue,
    visible: &str,
    name: Option<&str>,
) -> Answer {
    let started = Instant::now();
    let reply = call.request(mount, method.name(), Some(params), name).await;
    call.observe(mount, method, started);
    match reply {
        Ok((Reply::Result(result), _)) => Answer::Result(client_side_uris(&mount.config.prefix, method, result)),
        Ok((Reply::Error(error), status)) => Answer::UpstreamError(error, status),
        Err(UpstreamError::Credential(Denied::Consent { url, elicitation_id })) => {
            let stateless = call.era.is_stateless();
            match super::elicit::consent_required(stateless, &mount.config.server, &url, &elicitation_id) {
                Ok(input_required) => Answer::Result(input_required),
                Err(error) => Answer::Error(error),
            }
        }
        Err(error) => {
            tracing::warn!(route = %call.route.id(), mount = %mount.config.server, name = %visible, %error, "{} failed upstream", method.name());
            failed(kind, visible, &mount.config.server, &error)
        }
    }
}

/// A request its mount failed, or that the mount's breaker or cap refused. When the failure
/// says when to try again (an open breaker, a full cap, an upstream's `Retry-After`), the
/// caller is told as a refused rate limit tells it: in the tool result's text and `_meta`, or
/// in the JSON-RPC error's `data.retryAfterSeconds`.
fn failed(kind: Kind, visible: &str, server: &str, error: &UpstreamError) -> Answer {
    let Some(wait) = error.retry_after() else { return unavailable(kind, visible, server, &error.summary()) };
    let seconds = crate::policy::resilience::retry::whole_seconds(wait);
    let never_sent = matches!(error, UpstreamError::CircuitOpen(_) | UpstreamError::Busy(..));
    let text = format!(
        "{} `{visible}` is unavailable: mounted server `{server}` {}; retry in {seconds} seconds.{}",
        kind.noun(),
        error.summary(),
        if never_sent { " Nothing was sent to it." } else { "" },
    );
    if kind == Kind::Tool {
        let result = json!({
            "content": [{ "type": "text", "text": text }],
            "isError": true,
            "_meta": { meta::RETRY_AFTER_SECONDS: seconds },
        });
        return Answer::MountFailed(raw(&result));
    }
    // Refused for load (a full cap, an upstream's 429) is a rate limit; the rest a failure.
    let shed = matches!(error, UpstreamError::Busy(..) | UpstreamError::Status { status: 429, .. });
    let code = if shed { RATE_LIMITED } else { INTERNAL_ERROR };
    let data = json!({ "retryAfterSeconds": seconds, "server": server });
    Answer::Error(RpcError { code, message: text, data: Some(data) })
}

/// `logging/setLevel` applies to every mount; servers without logging are left alone.
async fn set_level(call: &Call, params: Option<&RawValue>) -> Answer {
    let Some(params) = params else {
        return Answer::Error(RpcError::new(INVALID_PARAMS, "logging/setLevel needs params.level"));
    };
    let replies = futures::future::join_all(call.route.mounts.iter().map(|mount| async move {
        let slot = call.session.slot(mount);
        let forward = Forward::new(call, mount);
        let request =
            mount.client.request(&slot, &call.session.hello, Method::LoggingSetLevel.name(), Some(params), &forward);
        let reply = mount.client.as_caller(&call.principal, request).await;
        (mount, reply)
    }))
    .await;
    for (mount, reply) in replies {
        match reply {
            Ok(Reply::Result(_)) => {}
            Ok(Reply::Error(error)) => {
                tracing::debug!(mount = %mount.config.server, error = %error.get(), "logging/setLevel refused by a mount")
            }
            Err(error) => tracing::warn!(mount = %mount.config.server, %error, "logging/setLevel failed on a mount"),
        }
    }
    Answer::Result(raw(&json!({})))
}

/// The name a client sent in `params.<field>`, as it sent it.
fn sent_name(fields: &BTreeMap<String, Box<RawValue>>, field: &str) -> String {
    fields.get(field).and_then(|name| serde_json::from_str(name.get()).ok()).unwrap_or_default()
}

fn unknown(kind: Kind, visible: &str) -> Answer {
    Answer::Error(match kind {
        Kind::Tool => RpcError::new(INVALID_PARAMS, format!("Unknown tool: `{visible}`")),
        Kind::Prompt => RpcError::new(INVALID_PARAMS, format!("Unknown prompt: `{visible}`")),
        Kind::Resource | Kind::Template => {
            RpcError::new(RESOURCE_NOT_FOUND, format!("Resource not found: `{visible}`"))
        }
    })
}

/// The owning mount failed: a tool reports it in its result (`isError`), as tool failures
/// are reported to models; everything else gets a JSON-RPC error naming the mount.
fn unavailable(kind: Kind, visible: &str, server: &str, why: &str) -> Answer {
    let text = format!("{} `{visible}` is unavailable: mounted server `{server}` {why}", kind.noun());
    match kind {
        Kind::Tool => {
            Answer::MountFailed(raw(&json!({ "content": [{ "type": "text", "text": text }], "isError": true })))
        }
        _ => Answer::Error(RpcError::new(INTERNAL_ERROR, text)),
    }
}

/// Who serves a client-visible name.
enum Owner<'a> {
    /// This mount, under this upstream name.
    Found(&'a Mount, Cow<'a, str>),
    /// No mount can have it.
    Unknown,
    /// A mount that may own it, and takes precedence, did not answer.
    Unavailable(&'a str),
}

/// The prefix decides directly; only when several mounts could hold the name are their
/// lists consulted, in mount order (the order lists give them precedence in).
async fn owner<'a>(call: &'a Call, kind: Kind, visible: &'a str) -> Owner<'a> {
    let route: &'a Route = &call.route;
    let candidates = route.candidates(kind, visible);
    if candidates.len() <= 1 {
        return match candidates.into_iter().next() {
            Some((i, upstream)) => Owner::Found(&route.mounts[i], upstream),
            None => Owner::Unknown,
        };
    }
    for (i, upstream) in candidates {
        let mount = &route.mounts[i];
        match holds(call, mount, kind, &upstream).await {
            Ok(true) => return Owner::Found(mount, upstream),
            Ok(false) => {}
            // The mount that takes precedence did not answer: a later one must not get the
            // request in its place.
            Err(_) => return Owner::Unavailable(&mount.config.server),
        }
    }
    Owner::Unknown
}

/// Whether a mount's upstream lists `upstream` (for resources, also as a template match).
async fn holds(call: &Call, mount: &Mount, kind: Kind, upstream: &str) -> Result<bool, UpstreamError> {
    let slot = call.session.slot(mount);
    let hello = &call.session.hello;
    let list = |kind: Kind| {
        let listing = mount.client.within(mount.client.list_all(&slot, hello, kind.list_method(), kind.items()));
        mount.client.as_caller(&call.principal, listing)
    };
    let named = |items: &[Map<String, Value>], kind: Kind, matches: &dyn Fn(&str) -> bool| {
        items.iter().any(|item| item.get(kind.key()).and_then(Value::as_str).is_some_and(matches))
    };
    match kind {
        Kind::Tool | Kind::Prompt | Kind::Template => Ok(named(&list(kind).await?, kind, &|n| n == upstream)),
        Kind::Resource => {
            if named(&list(Kind::Resource).await?, kind, &|n| n == upstream) {
                return Ok(true);
            }
            let templates = list(Kind::Template).await?;
            Ok(named(&templates, Kind::Template, &|template| template_matches(template, upstream)))
        }
    }
}

/// Whether `uri` is an expansion of an RFC 6570 template: its literal parts in order, each
/// expression standing for at least one character.
fn template_matches(template: &str, uri: &str) -> bool {
    let mut rest = uri;
    let mut parts = template.split('{');
    let Some(head) = parts.next() else { return false };
    let Some(after) = rest.strip_prefix(head) else { return false };
    rest = after;
    for part in parts {
        let Some((_, literal)) = part.split_once('}') else { return false };
        if literal.is_empty() {
            rest = "";
            continue;
        }
        // The expression takes at least one character, up to the next occurrence of the literal.
        match rest.get(1..).and_then(|tail| tail.find(literal)) {
            Some(at) => rest = &rest[1 + at + literal.len()..],
            None => return false,
        }
    }
    rest.is_empty() || template.ends_with('}')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mcp::call::Era;
    use crate::mcp::call::testing::{call, route};

    #[test]
    fn uris_match_templates() {
        assert!(template_matches("test://template/{id}/data", "test://template/42/data"));
        assert!(template_matches("file:///{path}", "file:///etc/hosts"));
        assert!(template_matches("demo://static", "demo://static"));
        assert!(!template_matches("test://template/{id}/data", "test://template//data"));
        assert!(!template_matches("test://template/{id}/data", "test://other/42/data"));
        assert!(!template_matches("test://template/{id}/data", "test://template/42/data/more"));
    }

    /// What `dispatch` answers to `name` with `params`, on a route mounting `prefixes` (whose
    /// upstreams are never reached), as JSON: `{"result": …}` or `{"error": [code, message]}`.
    async fn answer(prefixes: &[&str], authorization: Option<Value>, name: &str, params: Value) -> Value {
        let (call, _) = call(route(prefixes, authorization), Era::Session).await;
        let params = (!params.is_null()).then(|| raw(&params));
        match dispatch(&call, Method::parse(name), name, params.as_deref()).await {
            Answer::Result(result) => json!({ "result": serde_json::from_str::<Value>(result.get()).unwrap() }),
            Answer::Error(error) => json!({ "error": [error.code, error.message] }),
            Answer::MountFailed(_) | Answer::UpstreamError(..) => panic!("no upstream is reached"),
        }
    }

    fn error(code: i64, message: &str) -> Value {
        json!({ "error": [code, message] })
    }

    #[tokio::test]
    async fn a_rate_limited_call_is_a_tool_error_with_the_wait_and_other_methods_a_json_rpc_error() {
        let mut config = route(&["a"], None);
        config.rate_limits = vec![
            serde_json::from_value(json!({
                "name": "calls", "scope": "Principal", "requests": 1, "perMs": 60_000, "burst": 1,
            }))
            .expect("a limit"),
        ];
        let (call, _) = call(config, Era::Session).await;
        let first = dispatch(&call, Method::Ping, "ping", None).await;
        assert!(matches!(first, Answer::Result(_)), "the first request has its token");
        let Answer::Error(error) = dispatch(&call, Method::Ping, "ping", None).await else {
            panic!("the second is refused")
        };
        assert_eq!(
            (error.code, error.message.as_str()),
            (RATE_LIMITED, "rate limit `calls` reached: retry in 60 seconds")
        );
        assert_eq!(error.data, Some(json!({ "retryAfterSeconds": 60, "limit": "calls" })));
        let params = raw(&json!({ "name": "a_echo", "arguments": {} }));
        let Answer::Result(result) = dispatch(&call, Method::ToolsCall, "tools/call", Some(&params)).await else {
            panic!("a tool call is answered with a result")
        };
        let result: Value = serde_json::from_str(result.get()).unwrap();
        assert_eq!(result["isError"], true);
        assert_eq!(result["content"][0]["text"], "rate limit `calls` reached: retry in 60 seconds. Nothing was run.");
        assert_eq!(result["_meta"]["dev.manifold/retryAfterSeconds"], 60);
        let labels = LimitLabels { namespace: "acme", route: "tools", limit: "calls" };
        assert_eq!(call.gateway.metrics.rate_limited.with(&labels).get(), 2);
    }

    #[test]
    fn failures_with_a_wait_tell_it_as_rate_limits_do() {
        use std::time::Duration;
        let busy = UpstreamError::Busy(64, Duration::from_millis(500));
        let Answer::Error(error) = failed(Kind::Prompt, "inv_hello", "inventory", &busy) else {
            panic!("a prompt gets a JSON-RPC error")
        };
        assert_eq!(error.code, RATE_LIMITED, "refused for load");
        let why = "prompt `inv_hello` is unavailable: mounted server `inventory` is busy: 64 requests to it are \
                   in flight already; retry in 1 seconds. Nothing was sent to it.";
        assert_eq!(error.message, why);
        assert_eq!(error.data, Some(json!({ "retryAfterSeconds": 1, "server": "inventory" })));

        let open = UpstreamError::CircuitOpen(Duration::from_millis(11_200));
        let Answer::Error(error) = failed(Kind::Resource, "inv://x", "inventory", &open) else {
            panic!("a read gets a JSON-RPC error")
        };
        assert_eq!(
            (error.code, error.data.as_ref().map(|d| d["retryAfterSeconds"].clone())),
            (INTERNAL_ERROR, Some(json!(12)))
        );

        let Answer::MountFailed(result) = failed(Kind::Tool, "inv_lookup", "inventory", &open) else {
            panic!("a tool call gets a result")
        };
        let result: Value = serde_json::from_str(result.get()).unwrap();
        assert_eq!(result["isError"], true);
        assert_eq!(result["_meta"]["dev.manifold/retryAfterSeconds"], 12);

        let plain = UpstreamError::Timeout(3000);
        let Answer::Error(error) = failed(Kind::Prompt, "inv_hello", "inventory", &plain) else { panic!() };
        let why = "prompt `inv_hello` is unavailable: mounted server `inventory` no answer within 3000 ms";
        assert_eq!((error.message.as_str(), error.data), (why, None), "no wait, no data");
    }

    #[tokio::test]
    async fn dispatch_answers_ping_and_refuses_unknown_methods() {
        assert_eq!(answer(&[], None, "ping", Value::Null).await, json!({ "result": {} }));
        let unknown = answer(&[], None, "tools/unknown", Value::Null).await;
        assert_eq!(unknown, error(METHOD_NOT_FOUND, "method `tools/unknown` is not supported by this gateway"));
        let session_only = answer(&[], None, "initialize", Value::Null).await;
        assert_eq!(session_only["error"][0], METHOD_NOT_FOUND, "initialize is the endpoint's, not a method of a call");
    }

    #[tokio::test]
    async fn routed_requests_check_their_params_before_anything_else() {
        let no_params = answer(&["a"], None, "tools/call", Value::Null).await;
        assert_eq!(no_params, error(INVALID_PARAMS, "tools/call needs params with `name`"));
        let not_a_string = answer(&["a"], None, "prompts/get", json!({ "name": 5 })).await;
        assert_eq!(not_a_string, error(INVALID_PARAMS, "prompts/get needs params.name, a string"));
        let escaping = answer(&["a"], None, "resources/read", json!({ "uri": "file://a/x/../secret" })).await;
        let why = "a resource URI must not contain `.` or `..` segments: `file://a/x/../secret`";
        assert_eq!(escaping, error(INVALID_PARAMS, why));
        let long = answer(&["a"], None, "tools/call", json!({ "name": "a_".repeat(1025) })).await;
        assert_eq!(long, error(INVALID_PARAMS, "a name must be at most 2048 bytes"));
        let bad_ref = answer(&["a"], None, "completion/complete", json!({ "ref": { "type": "ref/tool" } })).await;
        let why = r#"params.ref.type must be `ref/prompt` or `ref/resource`, not Some("ref/tool")"#;
        assert_eq!(bad_ref, error(INVALID_PARAMS, why));
        let no_level = answer(&["a"], None, "logging/setLevel", Value::Null).await;
        assert_eq!(no_level, error(INVALID_PARAMS, "logging/setLevel needs params.level"));
    }

    #[tokio::test]
    async fn names_no_mount_can_own_are_unknown_without_asking_upstreams() {
        let tool = answer(&["a", "b"], None, "tools/call", json!({ "name": "zz_search" })).await;
        assert_eq!(tool, error(INVALID_PARAMS, "Unknown tool: `zz_search`"));
        let prompt = answer(&["a"], None, "prompts/get", json!({ "name": "b_greet" })).await;
        assert_eq!(prompt, error(INVALID_PARAMS, "Unknown prompt: `b_greet`"));
        let resource = answer(&["a"], None, "resources/read", json!({ "uri": "file://b/x" })).await;
        assert_eq!(resource, error(RESOURCE_NOT_FOUND, "Resource not found: `file://b/x`"));
    }

    #[tokio::test]
    async fn what_authorization_refuses_is_denied_before_routing() {
        let rules = json!({ "rules": [{ "effect": "Allow", "tools": ["a_public"] }] });
        let denied = answer(&["a"], Some(rules.clone()), "tools/call", json!({ "name": "a_secret" })).await;
        assert_eq!(denied, error(FORBIDDEN, "tool `a_secret`: call is not allowed for this caller"));
        let complete = json!({ "ref": { "type": "ref/prompt", "name": "a_greet" } });
        let denied = answer(&["a"], Some(rules), "completion/complete", complete).await;
        assert_eq!(denied, error(FORBIDDEN, "prompt `a_greet`: get is not allowed for this caller"));
    }

    #[tokio::test]
    async fn a_route_without_mounts_lists_nothing_and_pages_end() {
        let empty = answer(&[], None, "tools/list", Value::Null).await;
        assert_eq!(empty, json!({ "result": { "tools": [] } }));
        let templates = answer(&[], None, "resources/templates/list", json!({ "cursor": "bm90LWEtY3Vyc29y" })).await;
        assert_eq!(templates, error(INVALID_PARAMS, "invalid cursor `bm90LWEtY3Vyc29y`"));

        let (call, _) = call(route(&[], None), Era::stateless_for_tests()).await;
        let Answer::Result(page) = dispatch(&call, Method::PromptsList, "prompts/list", None).await else {
            panic!("an empty list is a result")
        };
        let page: Value = serde_json::from_str(page.get()).unwrap();
        assert_eq!(page, json!({ "prompts": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private" }));
    }
}
