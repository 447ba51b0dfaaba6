//! One client request being answered, as every layer below the endpoint sees it: the route,
//! the session, the caller and the era it speaks (`Call`); what a method produced (`Answer`);
//! and how a request reaches a mount in the revision both sides speak, relaying what the
//! upstream sends meanwhile (`Forward`). `guarded` wraps that in the mount's resilience.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::rewrite::{self, session_params, stateless_params};
use super::session::Session;
use crate::Gateway;
use crate::access::Principal;
use crate::jsonrpc::{self, Message, RpcError, raw};
use crate::metrics::conventions::ErrorType;
use crate::metrics::{Outcome, UpstreamLabels};
use crate::policy::resilience::cap::Place;
use crate::protocol::Method;
use crate::protocol::code::INTERNAL_ERROR;
use crate::snapshot::{Mount, Route};
use crate::upstream::{Observer, Reply, UpstreamError, identity};

/// How many times one request may come back asking for input before the gateway gives up.
const MAX_INPUT_ROUNDS: usize = 8;

/// What a method produced.
pub enum Answer {
    /// A result to send.
    Result(Box<RawValue>),
    /// A tool result reporting that the owning mount failed (`isError`).
    MountFailed(Box<RawValue>),
    /// An upstream's JSON-RPC error object, passed through, with the upstream's HTTP status
    /// when it answered in the stateless revision.
    UpstreamError(Box<RawValue>, Option<u16>),
    /// The gateway's own JSON-RPC error.
    Error(RpcError),
}

impl Answer {
    /// Records how the request ended on `context`'s span (if it is recorded).
    pub fn trace(&self, context: &opentelemetry::Context, method: Method) {
        use crate::traces::{Outcome, ended, is_tool_error, outcome_of_error};
        if !opentelemetry::trace::TraceContextExt::span(context).is_recording() {
            return;
        }
        match self {
            Answer::Result(result) if method == Method::ToolsCall && is_tool_error(result) => {
                ended(context, Outcome::ToolError)
            }
            Answer::Result(_) => ended(context, Outcome::Ok),
            Answer::MountFailed(_) => ended(context, Outcome::ToolError),
            Answer::UpstreamError(error, _) => {
                let (code, message) = outcome_of_error(error);
                ended(context, Outcome::Error(code, &message))
            }
            Answer::Error(error) => ended(context, Outcome::Error(error.code, &error.message)),
        }
    }

    /// What the client was answered, as the conventions' `error.type`: none for a result,
    /// `tool_error` for a tool result with `isError` (the gateway's own or the upstream's),
    /// the JSON-RPC error's code for an error.
    pub fn error_type(&self, method: Method) -> ErrorType {
        match self {
            Answer::Result(result) => ErrorType::of_result(method, result),
            Answer::MountFailed(_) => ErrorType::ToolError,
            Answer::UpstreamError(error, _) => ErrorType::of_error_object(error),
            Answer::Error(error) => ErrorType::code(error.code),
        }
    }

    /// The metrics outcome label.
    pub fn outcome(&self) -> Outcome {
        match self {
            Answer::Result(_) => Outcome::Ok,
            Answer::MountFailed(_) => Outcome::UpstreamError,
            Answer::UpstreamError(..) | Answer::Error(_) => Outcome::Error,
        }
    }
}

/// One client request being answered.
pub struct Call {
    pub gateway: Arc<Gateway>,
    pub route: Arc<Route>,
    pub session: Arc<Session>,
    /// Who asks.
    pub principal: Arc<Principal>,
    /// The client's request id, raw.
    pub id: Box<RawValue>,
    /// Messages upstreams send while answering (progress, logging, their own requests),
    /// rewritten for the client's response stream.
    pub relay: mpsc::UnboundedSender<Bytes>,
    /// The revision family the client speaks.
    pub era: Era,
    /// The client asked for a fresh answer (`Cache-Control: no-cache`): the route's cache is
    /// not consulted, and what is fetched is kept again.
    pub fresh: bool,
    /// How the request met the route's cache, once it did: the `Manifold-Cache` header of a
    /// plain JSON answer says it too.
    pub cached: std::sync::OnceLock<crate::policy::cache::Outcome>,
    /// The request's place under the route's cap on requests in flight, if it has one: held
    /// for as long as the call, also while its answer streams after the handler returned.
    /// Never read: dropping it gives the place back.
    #[allow(dead_code)]
    pub place: Option<Place>,
}

/// Which family of revisions a request belongs to.
#[derive(Clone)]
pub enum Era {
    /// The session-based revisions: `initialize`, then requests in the session it opened.
    Session,
    /// The stateless revision (2026-07-28), with what the request carries for the upstreams
    /// (shared: the exchange keeps the era while the call moves into its task).
    Stateless(Arc<Stateless>),
}

impl Era {
    pub fn is_stateless(&self) -> bool {
        matches!(self, Era::Stateless(_))
    }

    pub fn stateless(&self) -> Option<&Stateless> {
        match self {
            Era::Stateless(stateless) => Some(stateless),
            Era::Session => None,
        }
    }

    /// A stateless era whose request carries no metadata and no headers.
    #[cfg(test)]
    pub fn stateless_for_tests() -> Era {
        let meta = raw(&json!({}));
        Era::Stateless(Arc::new(Stateless { meta, forwarded: http::HeaderMap::new(), wants_logs: false }))
    }
}

/// What a stateless request carries for the upstreams that serve it too.
pub struct Stateless {
    /// The request's `_meta` (protocol version, client capabilities, client info, log level).
    pub meta: Box<RawValue>,
    /// The client's `Mcp-Param-*` headers, forwarded unchanged.
    pub forwarded: http::HeaderMap,
    /// Whether the client asked for log messages (`io.modelcontextprotocol/logLevel`).
    pub wants_logs: bool,
}

impl Call {
    /// One attempt, carrying the caller's credential when the mount obtains one per call. A
    /// credential the upstream refuses (HTTP 401: it ran nothing) is forgotten, and the
    /// request is sent once more with a fresh one.
    pub(super) async fn attempt(
        &self,
        mount: &Mount,
        method: &str,
        params: Option<&RawValue>,
        name: Option<&str>,
        forward: &dyn Observer,
    ) -> Result<(Reply, Option<u16>), UpstreamError> {
        let Some(identity) = &mount.client.identity else {
            return self.deliver(mount, method, params, name, forward).await;
        };
        let stripped = params.and_then(super::elicit::without_consent_response);
        let params = stripped.as_deref().or(params);
        let credential = identity.credential(&self.principal).await.map_err(UpstreamError::Credential)?;
        let sent = credential.clone();
        match identity::carrying(credential, self.deliver(mount, method, params, name, forward)).await {
            Err(UpstreamError::Status { status: 401, .. }) if identity.rejected(&self.principal, &sent) => {
                let fresh = identity.credential(&self.principal).await.map_err(UpstreamError::Credential)?;
                identity::carrying(fresh, self.deliver(mount, method, params, name, forward)).await
            }
            other => other,
        }
    }

    /// One request in the revision both sides speak: a stateless client's request goes to a
    /// stateless upstream as it is; anything else goes through an upstream session, the
    /// client's own or, for a stateless client, the gateway's bridge session.
    async fn deliver(
        &self,
        mount: &Mount,
        method: &str,
        params: Option<&RawValue>,
        name: Option<&str>,
        forward: &dyn Observer,
    ) -> Result<(Reply, Option<u16>), UpstreamError> {
        if let Some(stateless) = self.era.stateless()
            && mount.client.speaks_stateless().await
        {
            let reply = mount.client.stateless_request(method, params, name, &stateless.forwarded, forward).await?;
            return Ok((reply.0, Some(reply.1)));
        }
        if !mount.client.refuses_sessions() {
            let bridged = self.era.stateless().and(params).map(session_params);
            let slot = self.session.slot(mount);
            let session_params = bridged.as_deref().or(params);
            match mount.client.request(&slot, &self.session.hello, method, session_params, forward).await {
                Err(_) if mount.client.refuses_sessions() => {}
                reply => return Ok((reply?, None)),
            }
        }
        // An upstream of the stateless revision only, asked for a session's client: the
        // request carries what the client declared in its session, and what the upstream asks
        // of the client (`InputRequiredResult`) is asked as the session era asks it.
        let mut params = stateless_params(params, &self.session.hello.capabilities);
        for _ in 0..MAX_INPUT_ROUNDS {
            let (reply, status) =
                mount.client.stateless_request(method, Some(&params), name, &http::HeaderMap::new(), forward).await?;
            match &reply {
                Reply::Result(result) if result.get().contains(r#""input_required""#) => {
                    params = match self.fulfil(&params, result).await {
                        Ok(params) => params,
                        Err(error) => return Ok((Reply::Error(raw(&error)), Some(status))),
                    };
                }
                _ => return Ok((reply, Some(status))),
            }
        }
        let error = json!({ "code": INTERNAL_ERROR, "message": format!("{method} still needed input after {MAX_INPUT_ROUNDS} rounds") });
        Ok((Reply::Error(raw(&error)), None))
    }

    /// Asks the session's client what an `InputRequiredResult` requests (sampling,
    /// elicitation, roots), as requests on the call's stream, and returns the params of the
    /// retry: the original ones with `inputResponses` and the echoed `requestState`.
    async fn fulfil(&self, params: &RawValue, result: &RawValue) -> Result<Box<RawValue>, Value> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct InputRequired {
            #[serde(default)]
            input_requests: Map<String, Value>,
            request_state: Option<Value>,
        }
        let required: InputRequired = serde_json::from_str(result.get())
            .map_err(|e| json!({ "code": INTERNAL_ERROR, "message": format!("invalid InputRequiredResult: {e}") }))?;
        let mut responses = Map::new();
        for (key, request) in required.input_requests {
            let method = request.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
            let params = raw(&request.get("params").cloned().unwrap_or_else(|| json!({})));
            let mut ask = self.session.ask();
            // The span lasts until the client answers.
            let (_span, traced) = crate::traces::relay(&method, None, Some(&params));
            let _ = self.relay.send(jsonrpc::request(&ask.id, &method, traced.as_deref().unwrap_or(&params)));
            match ask.answer().await {
                Some((Some(result), _)) => {
                    responses.insert(key, serde_json::from_str(result.get()).unwrap_or_default())
                }
                Some((None, Some(error))) => return Err(serde_json::from_str(error.get()).unwrap_or_default()),
                _ => {
                    return Err(
                        json!({ "code": INTERNAL_ERROR, "message": format!("the client did not answer {method}") }),
                    );
                }
            };
        }
        let mut retry: Map<String, Value> = serde_json::from_str(params.get()).unwrap_or_default();
        retry.insert("inputResponses".into(), Value::Object(responses));
        match required.request_state {
            Some(state) => retry.insert("requestState".into(), state),
            None => retry.remove("requestState"),
        };
        Ok(raw(&retry))
    }

    /// Whether the client declared URL-mode elicitation (`capabilities.elicitation.url`), so
    /// it can show the user a link to open.
    pub fn offers_url_elicitation(&self) -> bool {
        let capabilities: Value = match &self.era {
            Era::Session => serde_json::from_str(self.session.hello.capabilities.get()).unwrap_or_default(),
            Era::Stateless(stateless) => serde_json::from_str::<Value>(stateless.meta.get())
                .ok()
                .and_then(|mut meta| meta.get_mut(crate::protocol::meta::CLIENT_CAPABILITIES).map(Value::take))
                .unwrap_or_default(),
        };
        capabilities.get("elicitation").and_then(|e| e.get("url")).is_some()
    }

    /// Times one upstream exchange into the latency histogram.
    pub fn observe(&self, mount: &Mount, method: Method, started: Instant) {
        let (namespace, route, mount) =
            (&*self.route.config.namespace, &*self.route.config.name, &*mount.config.server);
        let labels = UpstreamLabels { namespace, route, mount, method };
        self.gateway.metrics.upstream_seconds.observe(&labels, started.elapsed().as_secs_f64());
    }
}

/// Relays what an upstream sends during a request to the client's stream, and records the
/// upstream id so the client can cancel it.
pub struct Forward<'a> {
    call: &'a Call,
    mount: &'a Mount,
}

impl<'a> Forward<'a> {
    pub fn new(call: &'a Call, mount: &'a Mount) -> Self {
        Forward { call, mount }
    }
}

impl Observer for Forward<'_> {
    fn sent(&self, id: u64) {
        // A stateless request shares the route's bridge session with other clients (and
        // their ids): it is cancelled by closing its connection instead.
        if !self.call.era.is_stateless() {
            self.call.session.started(self.call.id.get(), &self.mount.key, id);
        }
    }

    fn message(&self, message: Message) {
        if let Some(method) = message.method.as_deref() {
            let route = &self.call.route.config;
            self.call.gateway.cache.upstream_changed(&route.namespace, &route.name, &self.mount.key, method);
        }
        if let Some(stateless) = self.call.era.stateless() {
            // The stateless revision has no server-to-client requests, and log messages only
            // for clients that asked for them.
            let is_log = message.method.as_deref() == Some(Method::LogMessage.name());
            if message.id.is_some() || (is_log && !stateless.wants_logs) {
                return;
            }
        }
        let mut message = message;
        if let (Some(_), Some(method)) = (&message.id, &message.method) {
            // The relay is the span: the answer comes back in another HTTP request.
            let (_span, traced) =
                crate::traces::relay(method, Some(&self.mount.config.server), message.params.as_deref());
            message.params = traced.or(message.params);
        }
        if let Some(message) = rewrite::to_client(&self.mount.key, &self.mount.config.prefix, message) {
            let _ = self.call.relay.send(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::testing::{call, route};
    use super::*;

    fn message(text: &str) -> Message {
        serde_json::from_str(text).expect("test messages parse")
    }

    /// What the client of a call in `era` receives of each of `messages` from its mount `a`.
    async fn relayed(era: Era, messages: &[&str]) -> Vec<Value> {
        let (call, mut relayed) = call(route(&["a"], None), era).await;
        for text in messages {
            Forward::new(&call, &call.route.mounts[0]).message(message(text));
        }
        // The call holds the only sender: once it is gone, everything relayed has been read.
        drop(call);
        let mut out = Vec::new();
        while let Some(bytes) = relayed.recv().await {
            out.push(serde_json::from_slice(&bytes).expect("relayed messages are JSON"));
        }
        out
    }

    const PROGRESS: &str =
        r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#;
    const LOG: &str = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#;
    const ASK: &str = r#"{"jsonrpc":"2.0","id":4,"method":"roots/list"}"#;

    #[tokio::test]
    async fn a_session_client_hears_everything_its_upstream_sends_meanwhile() {
        let got = relayed(Era::Session, &[PROGRESS, LOG, ASK]).await;
        let methods: Vec<&str> = got.iter().map(|m| m["method"].as_str().unwrap()).collect();
        assert_eq!(methods, ["notifications/progress", "notifications/message", "roots/list"]);
        assert_eq!(got[2]["id"], "a~server-a~4", "an upstream request's id routes back to its mount");
    }

    #[tokio::test]
    async fn a_stateless_client_hears_no_requests_and_logs_only_when_it_asked() {
        let got = relayed(Era::stateless_for_tests(), &[PROGRESS, LOG, ASK]).await;
        let methods: Vec<&str> = got.iter().map(|m| m["method"].as_str().unwrap()).collect();
        assert_eq!(methods, ["notifications/progress"]);

        let meta = raw(&json!({}));
        let wants_logs = Stateless { meta, forwarded: http::HeaderMap::new(), wants_logs: true };
        let got = relayed(Era::Stateless(Arc::new(wants_logs)), &[LOG, ASK]).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["method"], "notifications/message");
    }
}

/// Calls over a route built from config, with no upstream ever reached: for testing what the
/// layers above decide on their own.
#[cfg(test)]
pub mod testing {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use arc_swap::ArcSwap;
    use bytes::Bytes;
    use manifold_api::GatewayConfig;
    use manifold_api::config::{
        AuthnConfig, MountConfig, RemoteUpstream, RouteConfig, ToolPolicy, Transport, Upstream,
    };
    use serde_json::{Value, json};
    use tokio::sync::mpsc;

    use super::{Call, Era};
    use crate::Gateway;
    use crate::jsonrpc::raw;
    use crate::mcp::seal::KeyRing;
    use crate::mcp::session::Sessions;
    use crate::metrics::Metrics;
    use crate::snapshot::{ClientPool, Snapshot};
    use crate::upstream::Hello;

    /// A route at `/mcp` of namespace `acme`, open to anonymous callers, mounting `prefixes`
    /// (each on a server nobody listens on), with `authorization` (a JSON `AuthzConfig`) if any.
    pub fn route(prefixes: &[&str], authorization: Option<Value>) -> RouteConfig {
        let upstream = Upstream::Remote(RemoteUpstream {
            url: "http://127.0.0.1:1/mcp".into(),
            transport: Transport::StreamableHttp,
            headers: vec![],
            auth: None,
            timeout_ms: 1000,
            resilience: Default::default(),
        });
        let mount = |prefix: &&str| MountConfig {
            server: format!("server-{prefix}"),
            prefix: (*prefix).into(),
            tools: ToolPolicy::default(),
            upstream: upstream.clone(),
        };
        RouteConfig {
            namespace: "acme".into(),
            name: "tools".into(),
            path: "/mcp".into(),
            hostnames: vec![],
            allowed_origins: vec![],
            mounts: prefixes.iter().map(mount).collect(),
            authentication: AuthnConfig { allow_anonymous: true, ..Default::default() },
            authorization: authorization.map(|a| serde_json::from_value(a).expect("test authorizations are valid")),
            audit_arguments: false,
            rate_limits: vec![],
            caching: Default::default(),
            resilience: Default::default(),
            compatibility: None,
        }
    }

    /// A call on `route` by an anonymous caller, in `era`, on a session of its own; and what
    /// it relays to its client.
    pub async fn call(route: RouteConfig, era: Era) -> (Call, mpsc::UnboundedReceiver<Bytes>) {
        let (snapshot, errors) = Snapshot::build(GatewayConfig::new(vec![route], None), &mut ClientPool::default());
        assert!(errors.is_empty(), "{errors:?}");
        let route = Arc::clone(snapshot.route(None, "/mcp").expect("the test route is served"));
        let gateway = Arc::new(Gateway {
            snapshot: ArcSwap::from_pointee(snapshot),
            sessions: Sessions::new(Duration::from_secs(60), 10, KeyRing::generate(), Duration::from_secs(3600)),
            metrics: Metrics::new(),
            ready: AtomicBool::new(true),
            max_body_bytes: 1024,
            list_page_size: 10,
            loopback: true,
            jwks_refetch_cooldown: Duration::from_secs(10),
            // Audit events of these calls would only crowd the test output.
            audit: crate::access::audit::Log::open(Some(&"/dev/null".into())).expect("/dev/null opens"),
            report: Default::default(),
            limiter: Default::default(),
            cache: Arc::new(crate::policy::cache::Store::new(1 << 20)),
            tracer: None,
            tokens: Arc::new(crate::upstream::identity::Tokens::memory(Arc::new(KeyRing::generate()))),
            egress: Default::default(),
        });
        let principal = route.access.authn.authenticate(&http::HeaderMap::new(), Duration::ZERO).await;
        let principal = principal.unwrap_or_else(|_| panic!("anonymous callers are let in"));
        let hello = Hello { protocol_version: "2025-11-25".into(), capabilities: raw(&json!({})) };
        let session = gateway.sessions.provisional(manifold_api::ObjectKey::new("acme", "tools"), hello);
        let (relay, relayed) = mpsc::unbounded_channel();
        let call = Call {
            gateway,
            route,
            session,
            principal,
            id: raw(&json!(7)),
            relay,
            era,
            fresh: false,
            cached: Default::default(),
            place: None,
        };
        (call, relayed)
    }
}
