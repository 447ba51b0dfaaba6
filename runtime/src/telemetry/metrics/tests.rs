use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use tokio::sync::mpsc;

use super::*;

/// A collector's HTTP endpoint: what is POSTed to `/v1/metrics`, with its content type.
async fn collector() -> (String, mpsc::UnboundedReceiver<(String, Bytes)>) {
    let (sender, received) = mpsc::unbounded_channel();
    let sender = Arc::new(sender);
    let app = Router::new().route(
        "/v1/metrics",
        post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let tenant = headers.get("x-tenant").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let _ = sender.send((format!("{content_type} {tenant}"), body));
            async { "" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let address = listener.local_addr().expect("a bound listener has an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), received)
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(text)) => text.clone(),
        other => format!("{other:?}"),
    }
}

// The reader runs on the runtime: a flush waits for it from a thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_histogram_is_exported_over_http_with_its_name_unit_buckets_and_attributes() {
    let (endpoint, mut received) = collector().await;
    let headers = [("x-tenant".to_owned(), "acme".to_owned())];
    let resource = Resource::builder_empty().with_service_name("manifold-gateway").build();
    let export = MetricsExport {
        endpoint: &endpoint,
        protocol: Protocol::HttpBinary,
        headers: &headers,
        resource,
        interval: None,
    };
    let provider = meter_provider(export).expect("an HTTP exporter builds");
    let histogram = provider
        .meter("manifold-gateway")
        .f64_histogram("mcp.server.operation.duration")
        .with_unit("s")
        .with_boundaries(vec![0.01, 0.1, 1.0])
        .build();
    let attributes = [KeyValue::new("mcp.method.name", "tools/call"), KeyValue::new("error.type", "tool_error")];
    histogram.record(0.05, &attributes);
    histogram.record(0.5, &attributes);
    let flushed = tokio::task::spawn_blocking({
        let provider = provider.clone();
        move || provider.force_flush()
    });
    flushed.await.expect("the flush ran").expect("the export succeeds");

    let (headers, body) = received.recv().await.expect("the collector was sent the metrics");
    assert_eq!(headers, "application/x-protobuf acme");
    let request = ExportMetricsServiceRequest::decode(body).expect("an OTLP metrics request");
    let resource = request.resource_metrics[0].resource.as_ref().expect("a resource");
    let service: Vec<_> =
        resource.attributes.iter().filter(|a| a.key == "service.name").map(|a| text(&a.value)).collect();
    assert_eq!(service, ["manifold-gateway"]);
    let scope = &request.resource_metrics[0].scope_metrics[0];
    assert_eq!(scope.scope.as_ref().map(|s| s.name.as_str()), Some("manifold-gateway"));
    let metric = &scope.metrics[0];
    assert_eq!((metric.name.as_str(), metric.unit.as_str()), ("mcp.server.operation.duration", "s"));
    let Some(Data::Histogram(histogram)) = &metric.data else { panic!("a histogram: {metric:?}") };
    let point = &histogram.data_points[0];
    assert_eq!((point.count, point.sum), (2, Some(0.55)));
    assert_eq!(
        (point.explicit_bounds.as_slice(), point.bucket_counts.as_slice()),
        ([0.01, 0.1, 1.0].as_slice(), [0, 1, 1, 0].as_slice())
    );
    let mut attributes: Vec<_> = point.attributes.iter().map(|a| (a.key.as_str(), text(&a.value))).collect();
    attributes.sort();
    assert_eq!(attributes, [("error.type", "tool_error".to_owned()), ("mcp.method.name", "tools/call".to_owned())]);
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .expect("the shutdown ran")
        .expect("the provider shuts down");
}

#[tokio::test]
async fn a_header_that_cannot_be_sent_is_refused_by_name() {
    let headers = [("bad header".to_owned(), "x".to_owned())];
    let export = MetricsExport {
        endpoint: "http://127.0.0.1:4317",
        protocol: Protocol::Grpc,
        headers: &headers,
        resource: Resource::builder_empty().build(),
        interval: None,
    };
    let error = meter_provider(export).expect_err("refused");
    assert_eq!(error.to_string(), "OTLP header `bad header` is not a valid header");
}
