//! Spans by the MCP semantic conventions. The endpoint notes an HTTP request's arrival
//! ([`Arrival`]: when, from where, the parent its headers name) and opens one SERVER span per
//! JSON-RPC message ([`server`]); the rest of the request runs under that span's `Context`
//! (`FutureExt::with_context`), so that the layers below find it as the current context: an
//! attempt to a mount opens its CLIENT span there ([`client`]), and the upstream clients inject
//! whatever context is current into their requests ([`inject_headers`], [`inject_meta`]).
//! Nothing here runs with tracing off but the checks of [`on`]; with tracing on and a request
//! not sampled, spans are made (the SDK's non-recording ones) but no attribute is computed.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use http::{HeaderMap, HeaderName};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use serde_json::value::RawValue;

pub use self::outbound::{inject_headers, inject_meta, write_params};
use crate::protocol::Method;

mod outbound;

/// Whether some gateway of this process traces: the upstream clients, which know no
/// gateway, read it before they look for a context to inject.
static ON: AtomicBool = AtomicBool::new(false);

/// Tracing is on for this process (a gateway with a tracer started).
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

/// Whether any gateway of this process traces.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The two ends of the client's TCP connection.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    pub local: SocketAddr,
    pub peer: SocketAddr,
}

/// What is known of an HTTP request before its body is read, when tracing is on.
pub struct Arrival {
    pub at: SystemTime,
    /// The parent the `traceparent`/`tracestate`/`baggage` headers name (empty if none).
    pub headers: Context,
    pub link: Link,
    pub version: http::Version,
    /// When authentication started and ended.
    pub authenticated: Option<(SystemTime, SystemTime)>,
    /// When the JWKS fetch authentication waited for started and ended, if it waited for one.
    pub jwks_fetched: Option<(SystemTime, SystemTime)>,
}

tokio::task_local! {
    /// The JWKS fetch an authentication waited for, if it did (see [`authenticating`]).
    static JWKS_FETCH: std::cell::Cell<Option<(SystemTime, SystemTime)>>;
}

/// Runs an authentication, noting when it started and ended and the JWKS fetch it waited
/// for, in `arrival` (tracing on only).
pub async fn authenticating<F: std::future::Future>(arrival: &mut Arrival, work: F) -> F::Output {
    let started = SystemTime::now();
    let (output, fetched) = JWKS_FETCH
        .scope(std::cell::Cell::new(None), async {
            let output = work.await;
            (output, JWKS_FETCH.with(std::cell::Cell::get))
        })
        .await;
    arrival.authenticated = Some((started, SystemTime::now()));
    arrival.jwks_fetched = fetched;
    output
}

/// A JWKS fetch ran from `started` to `ended`: noted for the authentication that waited for
/// it, if one traced did.
pub fn jwks_fetched(started: SystemTime, ended: SystemTime) {
    let _ = JWKS_FETCH.try_with(|fetch| fetch.set(Some((started, ended))));
}

impl Arrival {
    /// The conventions' `network.*`, `server.*` and `client.*` of the request's connection.
    fn transport(&self) -> impl Iterator<Item = KeyValue> {
        let Link { local, peer } = self.link;
        network(self.version).into_iter().chain([
            KeyValue::new("server.address", local.ip().to_string()),
            KeyValue::new("server.port", i64::from(local.port())),
            KeyValue::new("client.address", peer.ip().to_string()),
            KeyValue::new("client.port", i64::from(peer.port())),
        ])
    }

    pub fn new(headers: &HeaderMap, link: Link, version: http::Version) -> Self {
        let parent = propagator().extract(&HeaderExtractor(headers));
        Arrival { at: SystemTime::now(), headers: parent, link, version, authenticated: None, jwks_fetched: None }
    }
}

/// W3C trace context and baggage, built once.
fn propagator() -> &'static opentelemetry::propagation::TextMapCompositePropagator {
    static PROPAGATOR: std::sync::LazyLock<opentelemetry::propagation::TextMapCompositePropagator> =
        std::sync::LazyLock::new(manifold_runtime::telemetry::propagator);
    &PROPAGATOR
}

/// The tracer, in the context of a request whose span is recorded: the layers below make
/// their INTERNAL spans with it (an unsampled request's context carries nothing more).
#[derive(Clone)]
struct Recording(SdkTracer);

/// An INTERNAL span under the current one, if that one is recorded; as the context to run
/// the work in.
pub fn internal(name: &'static str) -> Option<Context> {
    if !on() {
        return None;
    }
    Context::map_current(|current| {
        let Recording(tracer) = current.get::<Recording>()?;
        let span = tracer.span_builder(name).with_kind(SpanKind::Internal).start_with_context(tracer, current);
        Some(current.with_span(span))
    })
}

/// A request an upstream asks the client mid-call (sampling, elicitation, roots), relayed
/// by `mount` (where one is known), when the current request is recorded: a CLIENT span
/// `{method}` toward the client; and, whenever tracing is on, `params` with the context in
/// `_meta`, so that the client's handler joins the trace. The conventions make the gateway
/// the upstream's server here: when `params._meta` names the upstream's context, the CLIENT
/// span is under a SERVER span `{method}` whose parent is that context and which links the
/// current span (the attempt); otherwise it is under the current span. The spans last as
/// long as the returned guard.
pub fn relay(method: &str, mount: Option<&str>, params: Option<&RawValue>) -> (Option<Relayed>, Option<Box<RawValue>>) {
    if !on() {
        return (None, None);
    }
    let relayed = Context::map_current(|current| {
        let Recording(tracer) = current.get::<Recording>()?;
        let mut attributes = vec![KeyValue::new("mcp.method.name", method.to_owned())];
        if let Some(mount) = mount {
            attributes.push(KeyValue::new("manifold.mount", mount.to_owned()));
        }
        let handling = meta_parent(params).map(|asker| {
            let attempt = current.span().span_context().clone();
            let mut builder =
                tracer.span_builder(method.to_owned()).with_kind(SpanKind::Server).with_attributes(attributes.clone());
            if attempt.is_valid() {
                builder = builder.with_links(vec![opentelemetry::trace::Link::with_context(attempt)]);
            }
            let span = builder.start_with_context(tracer, &asker);
            asker.with_span(span)
        });
        let parent = handling.as_ref().unwrap_or(current);
        let span = tracer
            .span_builder(method.to_owned())
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(tracer, parent);
        Some(Relayed { client: parent.with_span(span), _handling: handling })
    });
    let params = match &relayed {
        Some(relayed) => {
            let _relaying = relayed.client.clone().attach();
            inject_meta(params)
        }
        None => inject_meta(params),
    };
    (relayed, params)
}

/// The spans of a relayed request; they end when it drops, the CLIENT span first.
pub struct Relayed {
    client: Context,
    /// The SERVER span handling the upstream's request, when its `_meta` named a context.
    _handling: Option<Context>,
}

/// `work` in an INTERNAL span of its own when the request is recorded.
pub async fn traced<F: std::future::Future>(name: &'static str, work: F) -> F::Output {
    traced_with(name, work, |_| Vec::new()).await
}

/// `work` in an INTERNAL span of its own when the request is recorded; `note` gives the span
/// attributes from the outcome.
pub async fn traced_with<F: std::future::Future>(
    name: &'static str,
    work: F,
    note: impl FnOnce(&F::Output) -> Vec<KeyValue>,
) -> F::Output {
    use opentelemetry::context::FutureExt as _;
    match internal(name) {
        Some(context) => {
            let outcome = work.with_context(context.clone()).await;
            context.span().set_attributes(note(&outcome));
            outcome
        }
        None => work.await,
    }
}

/// `work`, done now, in an INTERNAL span of its own when the request is recorded; `note`
/// gives the span attributes from the outcome.
pub fn instant<T>(name: &'static str, work: impl FnOnce() -> T, note: impl FnOnce(&T) -> Vec<KeyValue>) -> T {
    let Some(context) = internal(name) else { return work() };
    let outcome = work();
    context.span().set_attributes(note(&outcome));
    outcome
}

/// What a SERVER span is about: one JSON-RPC message as the endpoint parsed it.
pub struct Message<'a> {
    pub method: &'a str,
    pub params: Option<&'a RawValue>,
    /// None for notifications.
    pub id: Option<&'a RawValue>,
    /// The session's id as logs show it (session era only).
    pub session: Option<&'a str>,
    /// The protocol revision, where the request says it.
    pub protocol_version: Option<&'a str>,
    /// The tenant (namespace) and route serving it.
    pub tenant: &'a str,
    pub route: &'a str,
    /// How the caller authenticated (`anonymous`, `api-key`, `jwt`); never who it is.
    pub principal_kind: &'static str,
}

/// The parent W3C context a message's `params._meta` carries, if it carries one.
fn meta_parent(params: Option<&RawValue>) -> Option<Context> {
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(rename = "_meta", borrow)]
        meta: Option<Meta<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Meta<'a> {
        #[serde(borrow)]
        traceparent: Option<Cow<'a, str>>,
        #[serde(borrow)]
        tracestate: Option<Cow<'a, str>>,
        #[serde(borrow)]
        baggage: Option<Cow<'a, str>>,
    }
    let text = params?.get();
    if !text.contains("traceparent") {
        return None;
    }
    let meta = serde_json::from_str::<Params>(text).ok()?.meta?;
    struct Fields<'a>(&'a Meta<'a>);
    impl Extractor for Fields<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                "traceparent" => self.0.traceparent.as_deref(),
                "tracestate" => self.0.tracestate.as_deref(),
                "baggage" => self.0.baggage.as_deref(),
                _ => None,
            }
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate", "baggage"]
        }
    }
    let parent = propagator().extract(&Fields(&meta));
    parent.span().span_context().is_valid().then_some(parent)
}

/// The SERVER span of one message, started when its HTTP request arrived, under the context
/// `_meta` names, else the one the headers name; returned as the context to run the message in.
pub fn server(tracer: &SdkTracer, arrival: &Arrival, message: &Message) -> Context {
    let (parent, from_meta) = match meta_parent(message.params) {
        Some(parent) => (parent, true),
        None => (arrival.headers.clone(), false),
    };
    let known = Method::parse(message.method);
    let name: Cow<'static, str> = match known {
        Method::Other => Cow::Owned(message.method.to_owned()),
        known => Cow::Borrowed(known.name()),
    };
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_start_time(arrival.at)
        .start_with_context(tracer, &parent);
    if span.is_recording() {
        let target = Target::of(known, message.params);
        if let Some(name) = target.name() {
            span.update_name(format!("{} {name}", message.method));
        }
        let mut attributes = Vec::with_capacity(20);
        attributes.push(KeyValue::new("mcp.method.name", message.method.to_owned()));
        target.attributes(known, &mut attributes);
        if let Some(id) = message.id.and_then(request_id) {
            attributes.push(KeyValue::new("jsonrpc.request.id", id));
        }
        if let Some(version) = message.protocol_version {
            attributes.push(KeyValue::new("mcp.protocol.version", version.to_owned()));
        }
        if let Some(session) = message.session {
            attributes.push(KeyValue::new("mcp.session.id", session.to_owned()));
        }
        attributes.extend(arrival.transport());
        attributes.push(KeyValue::new("manifold.tenant", message.tenant.to_owned()));
        attributes.push(KeyValue::new("manifold.route", message.route.to_owned()));
        attributes.push(KeyValue::new("manifold.principal.kind", message.principal_kind));
        span.set_attributes(attributes);
        // The conventions: the message's own context is the parent; the transport's is linked.
        let transport = arrival.headers.span().span_context().clone();
        if from_meta && transport.is_valid() {
            span.add_link(transport, Vec::new());
        }
    }
    let context = parent.with_span(span);
    if !context.span().is_recording() {
        return context;
    }
    if let Some((started, ended)) = arrival.authenticated {
        let authenticate = between(tracer, &context, "authenticate", started);
        if let Some((started, ended)) = arrival.jwks_fetched {
            between(tracer, &authenticate, "jwks.fetch", started).span().end_with_timestamp(ended);
        }
        authenticate.span().end_with_timestamp(ended);
    }
    context.with_value(Recording(tracer.clone()))
}

/// A request refused before authentication: a SERVER span only when the parent its headers
/// name is sampled (no one else asked for one), named after its `Mcp-Method` header when it
/// has one (its body is never read), else after the HTTP method, with the refusal's code.
#[allow(clippy::too_many_arguments)] // what is known of a request refused unread
pub fn refused(
    tracer: &SdkTracer,
    arrival: &Arrival,
    method: Option<&str>,
    http_method: &http::Method,
    tenant: &str,
    route: &str,
    code: i64,
    message: &str,
) {
    if !arrival.headers.span().span_context().is_sampled() {
        return;
    }
    let name = method.map_or_else(|| http_method.as_str().to_owned(), str::to_owned);
    let mut span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_start_time(arrival.at)
        .start_with_context(tracer, &arrival.headers);
    let mut attributes = Vec::with_capacity(16);
    if let Some(method) = method {
        attributes.push(KeyValue::new("mcp.method.name", method.to_owned()));
    }
    attributes.extend(arrival.transport());
    attributes.push(KeyValue::new("manifold.tenant", tenant.to_owned()));
    attributes.push(KeyValue::new("manifold.route", route.to_owned()));
    attributes.push(KeyValue::new("error.type", code.to_string()));
    attributes.push(KeyValue::new("rpc.response.status_code", code.to_string()));
    span.set_attributes(attributes);
    span.set_status(Status::error(message.to_owned()));
    if let Some((started, ended)) = arrival.authenticated {
        let context = Context::new().with_remote_span_context(span.span_context().clone());
        between(tracer, &context, "authenticate", started).span().end_with_timestamp(ended);
    }
    span.end();
}

/// An INTERNAL span of work that started at `started`, under `parent`'s span.
fn between(tracer: &SdkTracer, parent: &Context, name: &'static str, started: SystemTime) -> Context {
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Internal)
        .with_start_time(started)
        .start_with_context(tracer, parent);
    parent.with_span(span)
}

/// `network.protocol.*` and `network.transport` of an HTTP request.
fn network(version: http::Version) -> [KeyValue; 3] {
    let version = match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    };
    [
        KeyValue::new("network.protocol.name", "http"),
        KeyValue::new("network.protocol.version", version),
        KeyValue::new("network.transport", "tcp"),
    ]
}

/// The JSON-RPC id as the conventions want it: a string's text, a number's digits, nothing
/// for null.
fn request_id(id: &RawValue) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(id.get()).ok()? {
        serde_json::Value::String(text) => Some(text),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// What a message is about: a tool, a prompt or a resource, named as its sender names it.
#[derive(Default)]
struct Target {
    name: Option<String>,
    uri: Option<String>,
}

impl Target {
    fn of(method: Method, params: Option<&RawValue>) -> Target {
        #[derive(serde::Deserialize, Default)]
        struct Fields {
            name: Option<String>,
            uri: Option<String>,
        }
        let about_one = method.is_about_one();
        if !about_one {
            return Target::default();
        }
        let fields: Fields = params.and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or_default();
        Target { name: fields.name.filter(|_| method != Method::ResourcesRead), uri: fields.uri }
    }

    /// The span name's target: a tool's or a prompt's name (never a URI: too many).
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn attributes(self, method: Method, attributes: &mut Vec<KeyValue>) {
        match (method, self.name, self.uri) {
            (Method::ToolsCall, Some(name), _) => {
                attributes.push(KeyValue::new("gen_ai.tool.name", name));
                attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
            }
            (Method::ToolsCall, None, _) => attributes.push(KeyValue::new("gen_ai.operation.name", "execute_tool")),
            (Method::PromptsGet, Some(name), _) => attributes.push(KeyValue::new("gen_ai.prompt.name", name)),
            (_, _, Some(uri)) => attributes.push(KeyValue::new("mcp.resource.uri", uri)),
            _ => {}
        }
    }
}

/// How a message ended, as the conventions record it.
pub enum Outcome<'a> {
    Ok,
    /// A JSON-RPC error: its code and message.
    Error(i64, &'a str),
    /// A tool result with `isError`.
    ToolError,
}

/// Records `outcome` on `context`'s span, if it is recorded.
pub fn ended(context: &Context, outcome: Outcome) {
    let span = context.span();
    if !span.is_recording() {
        return;
    }
    match outcome {
        Outcome::Ok => {}
        Outcome::Error(code, message) => {
            span.set_attributes([
                KeyValue::new("error.type", code.to_string()),
                KeyValue::new("rpc.response.status_code", code.to_string()),
            ]);
            span.set_status(Status::error(message.to_owned()));
        }
        Outcome::ToolError => {
            span.set_attribute(KeyValue::new("error.type", "tool_error"));
            span.set_status(Status::error("tool_error"));
        }
    }
}

/// The outcome a raw JSON-RPC error object or a tools/call result says.
pub fn outcome_of_error(error: &RawValue) -> (i64, String) {
    #[derive(serde::Deserialize)]
    struct Error {
        code: i64,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_str::<Error>(error.get()) {
        Ok(error) => (error.code, error.message),
        Err(_) => (crate::protocol::code::INTERNAL_ERROR, "an error that is not a JSON-RPC error".into()),
    }
}

/// Whether a tools/call result reports a tool error (`isError: true`).
pub fn is_tool_error(result: &RawValue) -> bool {
    #[derive(serde::Deserialize)]
    struct Result {
        #[serde(rename = "isError", default)]
        is_error: bool,
    }
    result.get().contains("isError") && serde_json::from_str::<Result>(result.get()).is_ok_and(|r| r.is_error)
}

/// The CLIENT span of one attempt to a mount, under the current context; as the context to
/// run the attempt in. `name` is the upstream's own name for the tool or prompt, or its URI.
/// `mount` is the mounted server's name, `address` gives the host and port its requests go
/// to (asked only when the span is recorded).
pub fn client(
    tracer: &SdkTracer,
    method: &str,
    name: Option<&str>,
    mount: &str,
    address: impl FnOnce() -> Option<(String, u16)>,
) -> Context {
    let parent = Context::current();
    let known = Method::parse(method);
    let span_name: Cow<'static, str> = match known {
        Method::Other => Cow::Owned(method.to_owned()),
        known => Cow::Borrowed(known.name()),
    };
    let mut span = tracer.span_builder(span_name).with_kind(SpanKind::Client).start_with_context(tracer, &parent);
    if span.is_recording() {
        let named = matches!(known, Method::ToolsCall | Method::PromptsGet);
        let target = Target {
            name: name.filter(|_| named).map(str::to_owned),
            uri: name.filter(|_| !named && method.starts_with("resources/")).map(str::to_owned),
        };
        if let Some(target) = target.name() {
            span.update_name(format!("{method} {target}"));
        }
        let mut attributes = Vec::with_capacity(10);
        attributes.push(KeyValue::new("mcp.method.name", method.to_owned()));
        target.attributes(known, &mut attributes);
        if let Some((host, port)) = address() {
            attributes.push(KeyValue::new("server.address", host));
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        attributes.extend(network(http::Version::HTTP_11));
        attributes.push(KeyValue::new("manifold.mount", mount.to_owned()));
        span.set_attributes(attributes);
    }
    parent.with_span(span)
}

/// Adds attributes to the current span, if it is recorded (what is known only later, such as
/// the session `initialize` opens).
pub fn annotate(attributes: &[(&'static str, &str)]) {
    Context::map_current(|context| {
        let span = context.span();
        if span.is_recording() {
            span.set_attributes(attributes.iter().map(|(key, value)| KeyValue::new(*key, (*value).to_owned())));
        }
    });
}

/// Records a failure on `context`'s span: its class (`error.type`) and what it was.
pub fn failed(context: &Context, error_type: &str, description: String) {
    let span = context.span();
    if span.is_recording() {
        span.set_attribute(KeyValue::new("error.type", error_type.to_owned()));
        span.set_status(Status::error(description));
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use serde_json::{Value, json};

    use super::*;
    use crate::jsonrpc::raw;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn ours(flags: TraceFlags) -> Context {
        let trace = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
        let span = SpanId::from_hex("b7ad6b7169203331").unwrap();
        Context::new().with_remote_span_context(SpanContext::new(trace, span, flags, true, TraceState::default()))
    }

    #[test]
    fn meta_names_a_parent_only_when_it_carries_a_valid_traceparent() {
        let params = raw(&json!({"name": "t", "_meta": {"traceparent": TRACEPARENT, "baggage": "tenant=acme"}}));
        let parent = meta_parent(Some(&params)).expect("a parent");
        assert_eq!(parent.span().span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(parent.span().span_context().is_remote() && parent.span().span_context().is_sampled());
        let invalid = raw(&json!({"_meta": {"traceparent": "00-garbage-01"}}));
        assert!(meta_parent(Some(&invalid)).is_none());
        assert!(meta_parent(Some(&raw(&json!({"arguments": {"traceparent": TRACEPARENT}})))).is_none(), "not _meta");
        assert!(meta_parent(None).is_none());
    }

    #[test]
    fn the_current_context_replaces_the_clients_in_meta_and_keeps_the_rest() {
        enable();
        let _current = ours(TraceFlags::NOT_SAMPLED).attach();
        let params = raw(&json!({
            "name": "echo",
            "arguments": {"text": "x"},
            "_meta": {"traceparent": TRACEPARENT, "tracestate": "client=1", "progressToken": 5},
        }));
        let sent: Value = serde_json::from_str(inject_meta(Some(&params)).expect("injected").get()).unwrap();
        assert_eq!(
            sent,
            json!({
                "name": "echo",
                "arguments": {"text": "x"},
                "_meta": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", "progressToken": 5},
            }),
            "an unsampled context is propagated too, with flags 00; an empty tracestate is dropped"
        );
        let bare: Value = serde_json::from_str(inject_meta(None).expect("injected").get()).unwrap();
        assert_eq!(bare["_meta"]["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");

        let mut headers = HeaderMap::new();
        inject_headers(&mut headers);
        assert_eq!(headers["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");
        assert!(!headers.contains_key("tracestate"));
    }

    #[test]
    fn without_a_current_context_nothing_is_injected() {
        enable();
        let params = raw(&json!({"name": "echo"}));
        assert!(inject_meta(Some(&params)).is_none());
        let mut headers = HeaderMap::new();
        inject_headers(&mut headers);
        assert!(headers.is_empty());
    }

    #[test]
    fn a_relayed_request_is_handled_under_the_upstreams_meta_and_asked_under_that() {
        use opentelemetry::trace::TracerProvider as _;
        use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
        enable();
        let spans = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(spans.clone()).build();
        let tracer = provider.tracer("manifold");
        let attempt = tracer.span_builder("tools/call ask").with_kind(SpanKind::Client).start(&tracer);
        let attempt_context = attempt.span_context().clone();
        let _attempt = Context::new().with_span(attempt).with_value(Recording(tracer)).attach();

        let asked = raw(&json!({"message": "name?", "_meta": {"traceparent": TRACEPARENT}}));
        let (relayed, sent) = relay("elicitation/create", Some("alpha"), Some(&asked));
        drop(relayed);
        let (_, bare) = relay("roots/list", None, None);

        let finished = spans.get_finished_spans().unwrap();
        // In the order they ended: the CLIENT span before the SERVER span it is under.
        let [client, server, roots] = &finished[..] else { panic!("three spans: {finished:?}") };
        assert_eq!((server.name.as_ref(), server.span_kind.clone()), ("elicitation/create", SpanKind::Server));
        assert_eq!(server.span_context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(server.parent_span_id.to_string(), "00f067aa0ba902b7", "under the upstream's request");
        let links: Vec<_> = server.links.iter().map(|link| link.span_context.clone()).collect();
        assert_eq!(links, std::slice::from_ref(&attempt_context), "the attempt is linked");
        assert_eq!(
            (client.span_kind.clone(), client.parent_span_id),
            (SpanKind::Client, server.span_context.span_id())
        );
        let sent: Value = serde_json::from_str(sent.expect("injected").get()).unwrap();
        let client_id = client.span_context.span_id();
        assert_eq!(sent["_meta"]["traceparent"], format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{client_id}-01"));
        // Without the upstream's context, asked under the attempt.
        assert_eq!((roots.span_kind.clone(), roots.parent_span_id), (SpanKind::Client, attempt_context.span_id()));
        let bare: Value = serde_json::from_str(bare.expect("injected").get()).unwrap();
        let roots_id = roots.span_context.span_id();
        let trace = attempt_context.trace_id();
        assert_eq!(bare["_meta"]["traceparent"], format!("00-{trace}-{roots_id}-01"));
    }

    #[test]
    fn ids_are_strings_and_null_is_none() {
        assert_eq!(request_id(&raw(&json!("req-1"))).as_deref(), Some("req-1"));
        assert_eq!(request_id(&raw(&json!(42))).as_deref(), Some("42"));
        assert_eq!(request_id(&raw(&Value::Null)), None);
    }
}
