//! The operator's traces: a root span per reconcile pass, and under it `resolve` (reading what
//! the objects reference, documents, the gateway replicas), a `probe` per McpServer asked
//! because of it, `compile`, `publish` and a `status write` per object. Spans go to the global
//! tracer provider (`manifold-operator`), which the telemetry set-up installs when an OTLP
//! endpoint is configured; without one they are no-ops.

use std::borrow::Cow;

use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, global};

/// The instrumentation scope of every span here.
pub const TRACER: &str = "manifold-operator";

/// A span named `name`, a child of `parent`'s span (a root when it has none), as a context
/// to run the work in.
pub fn child(parent: &Context, name: &'static str, attributes: Vec<KeyValue>) -> Context {
    let tracer = global::tracer(TRACER);
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Internal)
        .with_attributes(attributes)
        .start_with_context(&tracer, parent);
    parent.with_span(span)
}

/// The root span of one reconcile pass.
pub fn reconcile() -> Context {
    child(&Context::new(), "reconcile", Vec::new())
}

/// A child of the current span, as a context to run the work in.
pub fn step(name: &'static str) -> Context {
    Context::map_current(|current| child(current, name, Vec::new()))
}

/// The attributes naming a Kubernetes object.
pub fn object(kind: &'static str, namespace: &str, name: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("k8s.namespace.name", namespace.to_owned()),
        KeyValue::new("manifold.kind", kind),
        KeyValue::new("manifold.name", name.to_owned()),
    ]
}

/// Marks `context`'s span failed, with `why` (which must carry no secret).
pub fn failed(context: &Context, why: impl Into<Cow<'static, str>>) {
    context.span().set_status(Status::error(why));
}

/// Sets an attribute of `context`'s span.
pub fn note(context: &Context, attribute: KeyValue) {
    context.span().set_attribute(attribute);
}

/// Ends `context`'s span now (else it ends when the last clone of the context is dropped).
pub fn end(context: &Context) {
    context.span().end();
}

#[cfg(test)]
pub mod testing {
    use std::sync::OnceLock;

    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

    /// The spans ended so far in this test process: the global provider exports them here
    /// (installed once; tests running meanwhile add theirs, so read by trace).
    pub fn exporter() -> &'static InMemorySpanExporter {
        static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
        EXPORTER.get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
            opentelemetry::global::set_tracer_provider(provider);
            exporter
        })
    }

    /// The ended spans of `trace`.
    pub fn of_trace(trace: TraceId) -> Vec<SpanData> {
        let spans = exporter().get_finished_spans().expect("the in-memory exporter answers");
        spans.into_iter().filter(|s| s.span_context.trace_id() == trace).collect()
    }

    /// `spans` as (name, parent's name) pairs, sorted; the root's parent is "".
    pub fn tree(spans: &[SpanData]) -> Vec<(String, String)> {
        let name_of = |id: SpanId| {
            spans.iter().find(|s| s.span_context.span_id() == id).map(|s| s.name.to_string()).unwrap_or_default()
        };
        let mut tree: Vec<_> = spans.iter().map(|s| (s.name.to_string(), name_of(s.parent_span_id))).collect();
        tree.sort();
        tree
    }
}
