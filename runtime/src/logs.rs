//! Log set-up: to stderr, filtered by `RUST_LOG` (default `info`), as text for people or JSON
//! for collectors. A JSON line written while an OpenTelemetry span is current (a request's
//! future runs under its span's context) carries that span's `trace_id` and `span_id`.

use clap::ValueEnum;
use opentelemetry::trace::TraceContextExt;
use tracing::Subscriber;
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (`text` is taken too).
    #[default]
    #[value(alias = "text")]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Installs the process's log subscriber.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.fmt_fields(JsonFields::new()).event_format(TraceIds::default()).init(),
    }
}

/// The JSON format, with the current OpenTelemetry span's ids added to each line.
pub struct TraceIds(Format<Json>);

impl Default for TraceIds {
    fn default() -> Self {
        TraceIds(Format::default().json())
    }
}

impl<S, N> FormatEvent<S, N> for TraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let ids = opentelemetry::Context::map_current(|current| {
            let span = current.span();
            let ids = span.span_context();
            ids.is_valid().then(|| (ids.trace_id(), ids.span_id()))
        });
        let Some((trace_id, span_id)) = ids else {
            return self.0.format_event(context, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(context, Writer::new(&mut line), event)?;
        // The JSON object closes the line: the ids go in before its last brace.
        let Some(close) = line.rfind('}') else { return writer.write_str(&line) };
        let (object, rest) = line.split_at(close);
        write!(writer, r#"{object},"trace_id":"{trace_id}","span_id":"{span_id}"{rest}"#)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::{Span, Tracer, TracerProvider};
    use serde_json::Value;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_the_current_spans_ids_only_when_there_is_one() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .fmt_fields(JsonFields::new())
            .event_format(TraceIds::default())
            .finish();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let span = provider.tracer("test").start("request");
        let ids = span.span_context().clone();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(route = "acme/tools", "outside any span");
            let _attached = opentelemetry::Context::current_with_span(span).attach();
            tracing::info!(route = "acme/tools", "inside the request");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let parsed: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).expect(line)).collect();
        assert_eq!(parsed.len(), 2, "{text}");
        assert_eq!(parsed[0]["fields"]["message"], "outside any span");
        assert!(parsed[0].get("trace_id").is_none() && parsed[0].get("span_id").is_none(), "{text}");
        assert_eq!(parsed[1]["fields"]["route"], "acme/tools");
        assert_eq!(parsed[1]["trace_id"], ids.trace_id().to_string());
        assert_eq!(parsed[1]["span_id"], ids.span_id().to_string());
        assert_eq!(ids.trace_id().to_string().len(), 32, "hex, as OTLP and W3C write it");
    }
}
