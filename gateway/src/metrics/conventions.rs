//! The MCP semantic conventions' histograms: how long a client's request took to answer
//! (`mcp_server_operation_duration_seconds`), each attempt at a mount's upstream
//! (`mcp_client_operation_duration_seconds`), and a client session
//! (`mcp_server_session_duration_seconds`). The request path hands in a duration and what
//! became of the operation, classified into a bounded `error_type` (by `Answer::error_type`
//! and `UpstreamError::error_type`, with the helpers here); this takes the trace id
//! of the current sampled span as the bucket's exemplar, and records on /metrics and, when
//! OTLP metrics are on, into the OpenTelemetry histograms too.

use std::sync::{Arc, LazyLock, OnceLock};

use manifold_runtime::label_set;
use manifold_runtime::metrics::LabelValue;
use manifold_runtime::metrics::exemplars::ExemplarHistograms;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::trace::{TraceContextExt, TraceId};
use prometheus::Registry;
use serde_json::value::RawValue;

use crate::protocol::{Method, SUPPORTED_VERSIONS};

/// The conventions' bucket bounds, in seconds.
pub const BUCKETS: [f64; 14] = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

label_set! {
    /// A client's request, answered.
    pub struct ServerLabels<'a> {
        pub namespace: &'a str, pub route: &'a str, pub mcp_method_name: Method, pub error_type: ErrorType,
    }
}

label_set! {
    /// One attempt at a request to a mount.
    pub struct ClientLabels<'a> {
        pub namespace: &'a str,
        pub route: &'a str,
        pub mount: &'a str,
        pub mcp_method_name: Method,
        pub error_type: ErrorType,
    }
}

label_set! {
    /// A client session that ended.
    pub struct SessionLabels<'a> {
        pub namespace: &'a str, pub route: &'a str, pub mcp_protocol_version: Version, pub error_type: SessionEnd,
    }
}

/// What an operation ended with, as the conventions' `error.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// It succeeded: the label is empty (Prometheus then has no such label).
    None,
    /// A JSON-RPC error code of the reserved range, -32768 to -32000 (the standard ones,
    /// MCP's, the gateway's own): `"-32602"`. Codes outside it are [`ErrorType::Other`].
    Code(i16),
    /// A tool result with `isError: true`.
    ToolError,
    /// The upstream did not answer in time.
    Timeout,
    /// No connection to the upstream could be made.
    Connect,
    /// The upstream answered with this HTTP error status: `http_503`.
    Http(u16),
    /// Anything else: a lost connection, an answer that is not MCP, an expired upstream
    /// session, a code outside the reserved range.
    Other,
}

/// The JSON-RPC codes of the reserved range, and HTTP statuses 100 to 599, as label values
/// made once: a label value is borrowed, and the hot path allocates nothing.
static CODES: LazyLock<Box<[String]>> = LazyLock::new(|| (-32768..=-32000).map(|c: i32| c.to_string()).collect());
static STATUSES: LazyLock<Box<[String]>> = LazyLock::new(|| (100..600).map(|s: u16| format!("http_{s}")).collect());

impl ErrorType {
    /// A JSON-RPC error code, bounded.
    pub fn code(code: i64) -> ErrorType {
        match i16::try_from(code) {
            Ok(code) if code <= -32000 => ErrorType::Code(code),
            _ => ErrorType::Other,
        }
    }

    /// The error type of a JSON-RPC error object: its `code`.
    pub fn of_error_object(error: &RawValue) -> ErrorType {
        #[derive(serde::Deserialize)]
        struct Coded {
            code: i64,
        }
        serde_json::from_str::<Coded>(error.get()).map_or(ErrorType::Other, |coded| ErrorType::code(coded.code))
    }

    /// `tool_error` for a `tools/call` result with `isError: true`, else none.
    pub fn of_result(method: Method, result: &RawValue) -> ErrorType {
        #[derive(serde::Deserialize)]
        struct Flagged {
            #[serde(rename = "isError", default)]
            is_error: bool,
        }
        // Most results do not mention it: only those are read.
        let flagged = method == Method::ToolsCall
            && result.get().contains("\"isError\"")
            && serde_json::from_str::<Flagged>(result.get()).is_ok_and(|f| f.is_error);
        if flagged { ErrorType::ToolError } else { ErrorType::None }
    }
}

impl LabelValue for ErrorType {
    fn label(&self) -> &str {
        match self {
            ErrorType::None => "",
            ErrorType::Code(code) => &CODES[(i32::from(*code) + 32768) as usize],
            ErrorType::ToolError => "tool_error",
            ErrorType::Timeout => "timeout",
            ErrorType::Connect => "connect",
            ErrorType::Http(status) => &STATUSES[usize::from(*status - 100)],
            ErrorType::Other => "_OTHER",
        }
    }
}

/// How a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// Its client ended it (DELETE): no error type.
    Closed,
    /// It was used past its maximum age (`--session-max-age`) and refused: `expired`.
    Expired,
}

impl LabelValue for SessionEnd {
    fn label(&self) -> &str {
        match self {
            SessionEnd::Closed => "",
            SessionEnd::Expired => "expired",
        }
    }
}

/// A session's negotiated protocol revision: one the gateway supports, else `other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version(&'static str);

impl Version {
    pub fn of(negotiated: &str) -> Version {
        Version(SUPPORTED_VERSIONS.iter().find(|v| **v == negotiated).copied().unwrap_or("other"))
    }
}

impl LabelValue for Version {
    fn label(&self) -> &str {
        self.0
    }
}

/// The trace id of the current span, if it is sampled: the exemplar of what is recorded now.
/// Request futures carry their span's context (`FutureExt::with_context`).
pub fn sampled_trace() -> Option<TraceId> {
    opentelemetry::Context::map_current(|context| {
        let span = context.span();
        let span = span.span_context();
        span.is_sampled().then(|| span.trace_id())
    })
}

/// The three histograms; cloning shares them (the session table records into the same).
#[derive(Clone)]
pub struct Conventions {
    pub server: ExemplarHistograms<ServerLabels<'static>>,
    pub client: ExemplarHistograms<ClientLabels<'static>>,
    pub session: ExemplarHistograms<SessionLabels<'static>>,
    /// The OpenTelemetry histograms, once OTLP metrics are on.
    otlp: Arc<OnceLock<Instruments>>,
}

/// The same histograms as OpenTelemetry instruments, exported over OTLP.
struct Instruments {
    server: Histogram<f64>,
    client: Histogram<f64>,
    session: Histogram<f64>,
}

impl Conventions {
    pub fn register(registry: &Registry) -> Self {
        Conventions {
            server: ExemplarHistograms::register(
                registry,
                "mcp_server_operation_duration_seconds",
                "MCP requests answered (mcp.server.operation.duration), by tenant namespace, route, method and error \
                 type",
                BUCKETS.to_vec(),
            ),
            client: ExemplarHistograms::register(
                registry,
                "mcp_client_operation_duration_seconds",
                "Attempts at requests to mounted servers (mcp.client.operation.duration), by namespace, route, mount, \
                 method and error type",
                BUCKETS.to_vec(),
            ),
            session: ExemplarHistograms::register(
                registry,
                "mcp_server_session_duration_seconds",
                "Client sessions that ended (mcp.server.session.duration), by namespace, route, protocol version and \
                 error type (empty: closed by the client; expired)",
                BUCKETS.to_vec(),
            ),
            otlp: Arc::default(),
        }
    }

    /// Records into `meter`'s histograms too (named and labelled as the conventions say), from
    /// now on. A second call changes nothing.
    pub fn export_to(&self, meter: &Meter) {
        let histogram = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(BUCKETS.to_vec())
                .build()
        };
        let _ = self.otlp.set(Instruments {
            server: histogram("mcp.server.operation.duration", "MCP request duration as observed by the gateway"),
            client: histogram("mcp.client.operation.duration", "MCP request duration to a mounted server, per attempt"),
            session: histogram("mcp.server.session.duration", "MCP client session duration"),
        });
    }

    pub fn server(&self, labels: &ServerLabels, seconds: f64) {
        self.server.observe(labels, seconds, sampled_trace());
        if let Some(otlp) = self.otlp.get() {
            let attributes = operation(labels.namespace, labels.route, labels.mcp_method_name, labels.error_type);
            otlp.server.record(seconds, &attributes);
        }
    }

    pub fn client(&self, labels: &ClientLabels, seconds: f64) {
        self.client.observe(labels, seconds, sampled_trace());
        if let Some(otlp) = self.otlp.get() {
            let mut attributes = operation(labels.namespace, labels.route, labels.mcp_method_name, labels.error_type);
            attributes.push(KeyValue::new("manifold.mount", labels.mount.to_owned()));
            otlp.client.record(seconds, &attributes);
        }
    }

    pub fn session(&self, labels: &SessionLabels, seconds: f64) {
        self.session.observe(labels, seconds, sampled_trace());
        if let Some(otlp) = self.otlp.get() {
            let mut attributes = vec![
                KeyValue::new("manifold.namespace", labels.namespace.to_owned()),
                KeyValue::new("manifold.route", labels.route.to_owned()),
                KeyValue::new("mcp.protocol.version", labels.mcp_protocol_version.0),
            ];
            if labels.error_type != SessionEnd::Closed {
                attributes.push(KeyValue::new("error.type", labels.error_type.label().to_owned()));
            }
            otlp.session.record(seconds, &attributes);
        }
    }
}

/// An operation's OpenTelemetry attributes; `error.type` only when it failed.
fn operation(namespace: &str, route: &str, method: Method, error_type: ErrorType) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("manifold.namespace", namespace.to_owned()),
        KeyValue::new("manifold.route", route.to_owned()),
        KeyValue::new("mcp.method.name", crate::metrics::method_label(method)),
    ];
    if error_type != ErrorType::None {
        attributes.push(KeyValue::new("error.type", error_type.label().to_owned()));
    }
    attributes
}

#[cfg(test)]
mod tests {
    use opentelemetry::Context;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};

    use super::*;
    use crate::jsonrpc::raw;

    /// A context whose current span is a remote one with `flags`.
    pub fn traced(trace: u128, flags: TraceFlags) -> Context {
        let span = SpanContext::new(TraceId::from(trace), SpanId::from(7u64), flags, true, TraceState::default());
        Context::new().with_remote_span_context(span)
    }

    #[test]
    fn error_types_are_bounded_label_values() {
        let labels = |types: &[ErrorType]| types.iter().map(|t| t.label().to_owned()).collect::<Vec<_>>();
        assert_eq!(
            labels(&[
                ErrorType::code(-32602),
                ErrorType::code(-32768),
                ErrorType::code(-32000),
                ErrorType::code(-31999)
            ]),
            ["-32602", "-32768", "-32000", "_OTHER"],
        );
        assert_eq!(labels(&[ErrorType::code(-32769), ErrorType::code(1), ErrorType::code(i64::MIN)]), ["_OTHER"; 3]);
        assert_eq!(
            labels(&[ErrorType::Http(100), ErrorType::Http(503), ErrorType::Http(599)]),
            ["http_100", "http_503", "http_599"]
        );
        assert_eq!(
            labels(&[ErrorType::None, ErrorType::ToolError, ErrorType::Timeout, ErrorType::Connect]),
            ["", "tool_error", "timeout", "connect"]
        );
    }

    #[test]
    fn a_tool_result_is_an_error_only_when_it_says_so() {
        let result = |json: serde_json::Value| raw(&json);
        let failed = result(serde_json::json!({ "content": [], "isError": true }));
        assert_eq!(ErrorType::of_result(Method::ToolsCall, &failed), ErrorType::ToolError);
        let fine = result(serde_json::json!({ "content": [], "isError": false }));
        assert_eq!(ErrorType::of_result(Method::ToolsCall, &fine), ErrorType::None);
        let quoting = result(serde_json::json!({ "content": [{ "type": "text", "text": "\"isError\": true" }] }));
        assert_eq!(ErrorType::of_result(Method::ToolsCall, &quoting), ErrorType::None, "only the field counts");
        assert_eq!(ErrorType::of_result(Method::PromptsGet, &failed), ErrorType::None, "only tool results");
        let error = result(serde_json::json!({ "code": -32601, "message": "no" }));
        assert_eq!(ErrorType::of_error_object(&error), ErrorType::Code(-32601));
        assert_eq!(ErrorType::of_error_object(&result(serde_json::json!({ "message": "no code" }))), ErrorType::Other);
    }

    #[test]
    fn the_exemplar_is_the_current_span_when_it_is_sampled() {
        assert_eq!(sampled_trace(), None, "no span");
        let _sampled = traced(0xabc, TraceFlags::SAMPLED).attach();
        assert_eq!(sampled_trace(), Some(TraceId::from(0xabc)));
        let _unsampled = traced(0xdef, TraceFlags::default()).attach();
        assert_eq!(sampled_trace(), None, "a span not sampled leaves no trace to point to");
    }

    #[test]
    fn recording_keeps_the_labels_the_bucket_and_the_exemplar() {
        let registry = Registry::new();
        let conventions = Conventions::register(&registry);
        let labels = |error_type| ServerLabels {
            namespace: "acme",
            route: "tools",
            mcp_method_name: Method::ToolsCall,
            error_type,
        };
        {
            let _sampled = traced(0x4bf92f3577b34da6a3ce929d0e0e4736, TraceFlags::SAMPLED).attach();
            conventions.server(&labels(ErrorType::None), 0.03);
        }
        conventions.server(&labels(ErrorType::None), 0.25);
        conventions.server(&labels(ErrorType::ToolError), 0.3);
        let (counts, sum, exemplars) = conventions.server.snapshot(&labels(ErrorType::None)).expect("observed");
        // Buckets 0.01, 0.02, 0.05 (first observation), 0.1, 0.2, 0.5 (second), ...
        assert_eq!(&counts[..6], [0, 0, 1, 1, 1, 2]);
        assert_eq!((counts[14], sum), (2, 0.03 + 0.25));
        let kept: Vec<_> =
            exemplars.iter().enumerate().filter_map(|(i, e)| e.map(|e| (i, e.trace_id, e.value))).collect();
        assert_eq!(kept, [(2, TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736), 0.03)], "only the sampled one");

        let text = manifold_runtime::metrics::openmetrics::render(&registry, &[conventions.server.family()]);
        let line = r#"mcp_server_operation_duration_seconds_bucket{namespace="acme",route="tools",mcp_method_name="tools/call",le="0.05"} 1 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.03 "#;
        assert!(text.contains(line), "{text}");
        let failed = r#"mcp_server_operation_duration_seconds_count{namespace="acme",route="tools",mcp_method_name="tools/call",error_type="tool_error"} 1"#;
        assert!(text.contains(failed), "{text}");
    }
}

#[cfg(test)]
mod otlp_tests {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    use super::*;

    #[test]
    fn with_otlp_on_the_same_operations_are_recorded_under_the_conventions_names() {
        let exporter = InMemoryMetricExporter::default();
        let provider =
            SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
        let conventions = Conventions::register(&Registry::new());
        conventions.export_to(&provider.meter("manifold-gateway"));
        let labels = ClientLabels {
            namespace: "acme",
            route: "tools",
            mount: "weather",
            mcp_method_name: Method::ToolsCall,
            error_type: ErrorType::Http(503),
        };
        conventions.client(&labels, 0.2);
        let session = SessionLabels {
            namespace: "acme",
            route: "tools",
            mcp_protocol_version: Version::of("2025-06-18"),
            error_type: SessionEnd::Closed,
        };
        conventions.session(&session, 60.0);
        provider.force_flush().expect("flushed");

        let exported = exporter.get_finished_metrics().expect("exported");
        let metrics: Vec<_> = exported.iter().flat_map(|r| r.scope_metrics()).flat_map(|s| s.metrics()).collect();
        let found =
            |name: &str| *metrics.iter().find(|m| m.name() == name).unwrap_or_else(|| panic!("{name} exported"));
        for (name, attributes) in [
            (
                "mcp.client.operation.duration",
                vec![
                    ("error.type", "http_503"),
                    ("manifold.mount", "weather"),
                    ("manifold.namespace", "acme"),
                    ("manifold.route", "tools"),
                    ("mcp.method.name", "tools/call"),
                ],
            ),
            (
                "mcp.server.session.duration",
                vec![
                    ("manifold.namespace", "acme"),
                    ("manifold.route", "tools"),
                    ("mcp.protocol.version", "2025-06-18"),
                ],
            ),
        ] {
            let metric = found(name);
            assert_eq!(metric.unit(), "s", "{name}");
            let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = metric.data() else {
                panic!("{name} is a histogram of seconds")
            };
            let point = histogram.data_points().next().expect("one point");
            assert_eq!(point.bounds().collect::<Vec<_>>(), BUCKETS, "{name}");
            let mut got: Vec<(String, String)> =
                point.attributes().map(|kv| (kv.key.to_string(), kv.value.to_string())).collect();
            got.sort();
            let want: Vec<(String, String)> = attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            assert_eq!(got, want, "{name}");
        }
        assert!(metrics.iter().all(|m| m.name() != "mcp.server.operation.duration"), "nothing recorded, nothing sent");
    }
}
