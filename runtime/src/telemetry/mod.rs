//! Traces set-up for both binaries: [`TelemetryArgs`] (flags and `OTEL_*` variables) in,
//! a [`Telemetry`] handle out, whose tracer provider batches spans on the tokio runtime and
//! exports them over OTLP (gRPC or HTTP). Tracing is off without an endpoint: no provider,
//! no tracer, nothing but a `None` for the request path to branch on.

mod args;

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

pub use self::args::{Pairs, Protocol, TelemetryArgs, signal_url};

/// The instrumentation scope of every span Manifold makes.
pub const SCOPE: &str = "manifold";

/// Telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A flag's (or variable's) value is unusable; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// The exporter refused its configuration.
    #[error("the OTLP trace exporter for {endpoint} could not be built: {error}")]
    Exporter {
        endpoint: String,
        #[source]
        error: opentelemetry_otlp::ExporterBuildError,
    },
}

/// The process's tracing: a provider when an endpoint is configured, and what to flush on stop.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    tracer: Option<SdkTracer>,
    resource: Option<Resource>,
}

impl Telemetry {
    /// Tracing off: no tracer.
    pub fn off() -> Self {
        Telemetry::default()
    }

    /// A handle over a provider built elsewhere (tests export to memory this way).
    pub fn from_provider(provider: SdkTracerProvider) -> Self {
        let tracer = provider.tracer(SCOPE);
        Telemetry { provider: Some(provider), tracer: Some(tracer), resource: None }
    }

    /// The tracer spans are made with; `None` when tracing is off.
    pub fn tracer(&self) -> Option<&SdkTracer> {
        self.tracer.as_ref()
    }

    /// The resource every span carries (service name, version, instance), for other signals
    /// to share; `None` when tracing is off.
    pub fn resource(&self) -> Option<&Resource> {
        self.resource.as_ref()
    }

    /// Exports the spans still queued and stops the exporter (graceful stop). Waits at most
    /// five seconds for the collector. The provider's shutdown blocks until the batch task,
    /// which runs on this runtime, has exported: it waits on a blocking thread, so that a
    /// single-threaded runtime goes on running that task meanwhile.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else { return };
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(Duration::from_secs(5)));
        match stopped.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "spans could not all be exported at shutdown"),
            Err(error) => tracing::warn!(%error, "the exporter's shutdown did not finish"),
        }
    }
}

/// Sets tracing up as `args` say, and installs the provider as the global one (for code that
/// reaches it through `opentelemetry::global`) along with the W3C trace-context and baggage
/// propagators. Must run inside a tokio runtime that outlives the handle: the batch processor
/// runs as a task there.
pub fn init(args: &TelemetryArgs, default_service_name: &str) -> Result<Telemetry, TelemetryError> {
    let headers = args.headers().map_err(TelemetryError::Invalid)?;
    let Some(endpoint) = args.traces_endpoint() else {
        return Ok(Telemetry::off());
    };
    let exporter = exporter(args.otel_protocol, &endpoint, &headers)?;
    let resource = resource(args, default_service_name);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(args.trace_sampling_ratio))))
        .with_resource(resource.clone())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(propagator());
    tracing::info!(%endpoint, protocol = ?args.otel_protocol, ratio = args.trace_sampling_ratio, "exporting traces over OTLP");
    let mut telemetry = Telemetry::from_provider(provider);
    telemetry.resource = Some(resource);
    Ok(telemetry)
}

/// W3C `traceparent`/`tracestate` and `baggage`, as one propagator.
pub fn propagator() -> opentelemetry::propagation::TextMapCompositePropagator {
    opentelemetry::propagation::TextMapCompositePropagator::new(vec![
        Box::new(opentelemetry_sdk::propagation::TraceContextPropagator::new()),
        Box::new(opentelemetry_sdk::propagation::BaggagePropagator::new()),
    ])
}

fn exporter(
    protocol: Protocol,
    endpoint: &str,
    headers: &Pairs,
) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let built = match protocol {
        Protocol::Grpc => {
            let mut metadata = http::HeaderMap::new();
            for (key, value) in &headers.0 {
                let name = http::HeaderName::from_bytes(key.as_bytes()).map_err(|_| {
                    TelemetryError::Invalid(format!("--otel-headers: `{key}` is not a valid header name"))
                })?;
                let value = http::HeaderValue::from_str(value).map_err(|_| {
                    TelemetryError::Invalid(format!("--otel-headers: the value of `{key}` is not a valid header value"))
                })?;
                metadata.insert(name, value);
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_metadata(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(metadata))
                .build()
        }
        Protocol::Http => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_headers(headers.0.iter().cloned().collect())
            .build(),
    };
    built.map_err(|error| TelemetryError::Exporter { endpoint: endpoint.to_owned(), error })
}

/// service.name (OTEL_SERVICE_NAME, else `service.name` among the resource attributes, else
/// the binary's name), service.version, service.instance.id (the pod's name, else the host's)
/// and the configured attributes.
fn resource(args: &TelemetryArgs, default_service_name: &str) -> Resource {
    let configured = args.otel_resource_attributes.clone().unwrap_or_default().0;
    let named = configured.iter().find(|(key, _)| key == "service.name").map(|(_, value)| value.clone());
    let service_name = args.otel_service_name.clone().or(named).unwrap_or_else(|| default_service_name.to_owned());
    let mut attributes: Vec<KeyValue> = configured.into_iter().map(|(key, value)| KeyValue::new(key, value)).collect();
    attributes.push(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if let Some(instance) = instance_id() {
        attributes.push(KeyValue::new("service.instance.id", instance));
    }
    Resource::builder_empty().with_attributes(attributes).with_service_name(service_name).build()
}

/// The pod's name (downward API `POD_NAME`), else the host's name.
fn instance_id() -> Option<String> {
    let pod = std::env::var("POD_NAME").ok();
    let host = || std::fs::read_to_string("/proc/sys/kernel/hostname").ok().or_else(|| std::env::var("HOSTNAME").ok());
    pod.or_else(host).map(|name| name.trim().to_owned()).filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use opentelemetry::Key;

    use super::*;

    fn args(extra: impl FnOnce(&mut TelemetryArgs)) -> TelemetryArgs {
        let mut args = TelemetryArgs { trace_sampling_ratio: 1.0, ..Default::default() };
        extra(&mut args);
        args
    }

    #[test]
    fn the_resource_names_the_service_its_version_and_instance_then_the_configured_attributes() {
        let configured = Pairs(vec![("deployment.environment".into(), "prod".into())]);
        let plain = resource(&args(|a| a.otel_resource_attributes = Some(configured.clone())), "manifold-gateway");
        let get =
            |resource: &Resource, key: &'static str| resource.get(&Key::from_static_str(key)).map(|v| v.to_string());
        assert_eq!(get(&plain, "service.name").as_deref(), Some("manifold-gateway"));
        assert_eq!(get(&plain, "service.version").as_deref(), Some(env!("CARGO_PKG_VERSION")));
        assert_eq!(get(&plain, "deployment.environment").as_deref(), Some("prod"));
        assert_eq!(get(&plain, "service.instance.id"), instance_id());
        assert!(instance_id().is_some(), "a pod name or a host name");

        let from_attributes = Pairs(vec![("service.name".into(), "edge".into())]);
        let renamed =
            resource(&args(|a| a.otel_resource_attributes = Some(from_attributes.clone())), "manifold-gateway");
        assert_eq!(get(&renamed, "service.name").as_deref(), Some("edge"));
        let variable = args(|a| {
            a.otel_resource_attributes = Some(from_attributes);
            a.otel_service_name = Some("gw-eu".into());
        });
        assert_eq!(get(&resource(&variable, "manifold-gateway"), "service.name").as_deref(), Some("gw-eu"));
    }

    #[tokio::test]
    async fn without_an_endpoint_there_is_no_tracer_and_with_one_there_is() {
        assert!(init(&args(|_| {}), "manifold-gateway").unwrap().tracer().is_none());
        for protocol in [Protocol::Grpc, Protocol::Http] {
            let on = args(|a| {
                a.otel_endpoint = Some(url::Url::parse("http://127.0.0.1:1").unwrap());
                a.otel_protocol = protocol;
                a.otel_headers = Some("x-scope=acme".into());
            });
            let telemetry = init(&on, "manifold-gateway").unwrap();
            assert!(telemetry.tracer().is_some(), "{protocol:?}");
            assert!(telemetry.resource().is_some());
            // Nothing was recorded, so shutting down has nothing to send to the closed port.
            telemetry.shutdown().await;
        }
    }

    #[tokio::test]
    async fn a_bad_grpc_header_name_is_named() {
        let bad = args(|a| {
            a.otel_endpoint = Some(url::Url::parse("http://127.0.0.1:1").unwrap());
            a.otel_protocol = Protocol::Grpc;
            a.otel_headers = Some("bad header=1".into());
        });
        let error = init(&bad, "manifold-gateway").unwrap_err().to_string();
        assert_eq!(error, "--otel-headers: `bad header` is not a valid header name");
    }
}
