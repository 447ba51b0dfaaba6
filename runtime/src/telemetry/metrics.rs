//! OTLP metrics export (`--otel-metrics`): a meter provider whose periodic reader, on the
//! tokio runtime, pushes what its meters record to the collector at `endpoint` over gRPC or
//! HTTP/protobuf. [`super::init`] builds it with `--otel-metrics`, and the binaries hand its
//! meter ([`super::Telemetry::meter`]) to what records the conventions' histograms; with export
//! off there is no provider at all.

use std::time::Duration;

use opentelemetry_otlp::{MetricExporter, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::runtime::Tokio;

/// Where metrics go and as whom.
pub struct MetricsExport<'a> {
    /// The collector's base URL (`http://collector:4317` for gRPC, `http://collector:4318` for
    /// HTTP, where `/v1/metrics` is appended).
    pub endpoint: &'a str,
    pub protocol: Protocol,
    /// Sent with every export (an API key, a tenant header).
    pub headers: &'a [(String, String)],
    pub resource: Resource,
    /// Between two exports; `None`: `OTEL_METRIC_EXPORT_INTERVAL`, else 60 s.
    pub interval: Option<Duration>,
}

/// Why the exporter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MetricsExportError {
    #[error("OTLP metrics exporter to {endpoint}: {reason}")]
    Build { endpoint: String, reason: String },
    #[error("OTLP header `{0}` is not a valid header")]
    Header(String),
}

/// The meter provider exporting to `export`. Must be called within a tokio runtime, which
/// runs its reader; call [`SdkMeterProvider::shutdown`] on exit so the last values go out.
pub fn meter_provider(export: MetricsExport<'_>) -> Result<SdkMeterProvider, MetricsExportError> {
    let failed = |reason: String| MetricsExportError::Build { endpoint: export.endpoint.to_owned(), reason };
    let exporter = match export.protocol {
        Protocol::Grpc => {
            let mut metadata = http::HeaderMap::new();
            for (name, value) in export.headers {
                let name = http::HeaderName::try_from(name).map_err(|_| MetricsExportError::Header(name.clone()))?;
                let value =
                    http::HeaderValue::try_from(value).map_err(|_| MetricsExportError::Header(name.to_string()))?;
                metadata.insert(name, value);
            }
            let metadata = opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(metadata);
            MetricExporter::builder().with_tonic().with_endpoint(export.endpoint).with_metadata(metadata).build()
        }
        protocol => MetricExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(format!("{}/v1/metrics", export.endpoint.trim_end_matches('/')))
            .with_headers(export.headers.iter().cloned().collect())
            .build(),
    }
    .map_err(|error| failed(error.to_string()))?;
    let reader = PeriodicReader::builder(exporter, Tokio);
    let reader = match export.interval {
        Some(interval) => reader.with_interval(interval),
        None => reader,
    };
    Ok(SdkMeterProvider::builder().with_resource(export.resource).with_reader(reader.build()).build())
}

#[cfg(test)]
mod tests;
