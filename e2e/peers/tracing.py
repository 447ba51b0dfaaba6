"""OpenTelemetry for the peers: the spans a peer makes (its own, and those FastMCP and the `mcp`
SDK make through the OpenTelemetry API) flow to a trace backend over OTLP/HTTP, under a
service name of the peer's own. Without an endpoint nothing is set up, and the API's no-op
tracer makes no spans.

Each span is exported as it ends (SimpleSpanProcessor): the servers are killed, not shut
down, so nothing may wait in a batch, and the tests poll the backend until every span is
there."""

from __future__ import annotations

from typing import Any


def export_spans(endpoint: str | None, service: str) -> Any:
    """Installs the global tracer provider exporting to `endpoint` (OTLP/HTTP base URL, as
    `http://127.0.0.1:4318`) and returns it, or None when `endpoint` is None."""
    if not endpoint:
        return None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=10)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def parent_from_meta(meta: dict[str, Any] | None) -> Any:
    """The OpenTelemetry context a message's `_meta` (a dict) carries (`traceparent`,
    `tracestate`), or None when it carries none."""
    from opentelemetry.propagate import extract

    carrier = {k: v for k, v in (meta or {}).items() if k in ("traceparent", "tracestate") and isinstance(v, str)}
    return extract(carrier) if carrier else None


def ids(span: Any) -> dict[str, str]:
    """A span's trace and span ids, in hex as W3C trace context and Jaeger write them."""
    context = span.get_span_context()
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}
