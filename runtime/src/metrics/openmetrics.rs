//! The registry in OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`): the
//! prometheus crate's gathered families converted as the format wants them (a counter's
//! family is named without `_total`, its sample with it; bucket bounds as canonical floats;
//! `# EOF` at the end), and the families with exemplars written by themselves, exemplars on
//! their bucket lines.

use std::fmt::{Display, Write};

use prometheus::Registry;
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A family that writes itself in OpenMetrics (with its exemplars).
pub trait ExemplarFamily {
    fn name(&self) -> &str;
    /// Appends the family's `# HELP`, `# TYPE` and sample lines.
    fn encode(&self, out: &mut String);
}

/// `registry` in OpenMetrics text; the families of `own` (registered in `registry` too) are
/// written by themselves, with their exemplars.
pub fn render(registry: &Registry, own: &[&dyn ExemplarFamily]) -> String {
    let mut out = String::new();
    for family in registry.gather() {
        match own.iter().find(|own| own.name() == family.name()) {
            Some(own) => own.encode(&mut out),
            None => encode(&family, &mut out),
        }
    }
    out.push_str("# EOF\n");
    out
}

fn encode(family: &MetricFamily, out: &mut String) {
    let (kind, name) = match family.get_field_type() {
        MetricType::COUNTER => ("counter", family.name().strip_suffix("_total").unwrap_or(family.name())),
        MetricType::GAUGE => ("gauge", family.name()),
        MetricType::HISTOGRAM => ("histogram", family.name()),
        MetricType::SUMMARY => ("summary", family.name()),
        MetricType::UNTYPED => ("unknown", family.name()),
    };
    let _ = writeln!(out, "# HELP {name} {}", escape(family.help()));
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for metric in family.get_metric() {
        let labels: Vec<(&str, &str)> = metric.get_label().iter().map(pair).collect();
        match family.get_field_type() {
            MetricType::COUNTER => {
                sample(out, &format!("{name}_total"), &labels, None, metric.get_counter().get_value())
            }
            MetricType::GAUGE => sample(out, name, &labels, None, metric.get_gauge().get_value()),
            // The prometheus crate makes no untyped metrics itself; a custom collector may.
            #[allow(deprecated)]
            MetricType::UNTYPED => sample(out, name, &labels, None, metric.get_untyped().get_value()),
            MetricType::HISTOGRAM => histogram(out, name, &labels, metric),
            MetricType::SUMMARY => {
                let summary = metric.get_summary();
                for quantile in summary.get_quantile() {
                    let q = float(quantile.quantile());
                    sample(out, name, &labels, Some(("quantile", &q)), quantile.value());
                }
                count(out, &format!("{name}_count"), &labels, None, summary.sample_count());
                sample(out, &format!("{name}_sum"), &labels, None, summary.sample_sum());
            }
        }
    }
}

fn histogram(out: &mut String, name: &str, labels: &[(&str, &str)], metric: &Metric) {
    let histogram = metric.get_histogram();
    let bucket = format!("{name}_bucket");
    for b in histogram.get_bucket() {
        let le = float(b.upper_bound());
        count(out, &bucket, labels, Some(("le", &le)), b.cumulative_count());
    }
    // The prometheus crate leaves the +Inf bucket to the encoder (its count is the count).
    let has_inf = histogram.get_bucket().last().is_some_and(|b| b.upper_bound() == f64::INFINITY);
    if !has_inf {
        count(out, &bucket, labels, Some(("le", "+Inf")), histogram.get_sample_count());
    }
    count(out, &format!("{name}_count"), labels, None, histogram.get_sample_count());
    sample(out, &format!("{name}_sum"), labels, None, histogram.get_sample_sum());
}

fn pair(label: &LabelPair) -> (&str, &str) {
    (label.name(), label.value())
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], extra: Option<(&str, &str)>, value: f64) {
    count(out, name, labels, extra, float(value));
}

/// A sample whose value is written as given (bucket counts and counts are integers).
fn count(out: &mut String, name: &str, labels: &[(&str, &str)], extra: Option<(&str, &str)>, value: impl Display) {
    out.push_str(name);
    write_labels(out, labels, extra);
    let _ = writeln!(out, " {value}");
}

/// `{a="x",b="y"}` with `extra` last; nothing when there are no labels. Prometheus drops a
/// label whose value is empty, and so does this: OpenMetrics parsers need not.
pub(super) fn write_labels(out: &mut String, labels: &[(&str, &str)], extra: Option<(&str, &str)>) {
    let mut all = labels.iter().copied().filter(|(_, value)| !value.is_empty()).chain(extra).peekable();
    if all.peek().is_none() {
        return;
    }
    out.push('{');
    for (i, (name, value)) in all.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"{}\"", escape(value));
    }
    out.push('}');
}

/// A label value or help text with `\`, `"` and newlines escaped.
pub(super) fn escape(text: &str) -> String {
    text.replace('\\', r"\\").replace('"', r#"\""#).replace('\n', r"\n")
}

/// A number as OpenMetrics writes it: canonical (`1.0`, `0.25`), `+Inf`, `-Inf`, `NaN`.
pub(super) fn float(value: f64) -> String {
    match value {
        f64::INFINITY => "+Inf".to_owned(),
        f64::NEG_INFINITY => "-Inf".to_owned(),
        v if v.is_nan() => "NaN".to_owned(),
        v => format!("{v:?}"),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceId;
    use prometheus::{IntCounterVec, Opts};

    use super::*;
    use crate::label_set;
    use crate::metrics::exemplars::ExemplarHistograms;
    use crate::metrics::{Counters, Format, LabelValue, gauge, render};

    #[derive(Clone, Copy, Debug)]
    enum Failure {
        None,
        Timeout,
    }

    impl LabelValue for Failure {
        fn label(&self) -> &str {
            match self {
                Failure::None => "",
                Failure::Timeout => "timeout",
            }
        }
    }

    label_set! {
        struct Calls<'a> { route: &'a str, error_type: Failure }
    }

    label_set! {
        struct Routes<'a> { route: &'a str }
    }

    const TRACE: TraceId = TraceId::from_bytes([
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
    ]);

    #[test]
    fn every_family_is_written_as_openmetrics_with_exemplars_on_buckets() {
        let registry = Registry::new();
        let calls = ExemplarHistograms::<Calls<'static>>::register(
            &registry,
            "calls_seconds",
            "Calls \"timed\"",
            vec![0.1, 1.0],
        );
        let requests: Counters<Routes<'static>> = Counters::register(&registry, "requests_total", "Requests\nby route");
        let up = gauge(&registry, "up_replicas", "Replicas up");
        requests.inc(&Routes { route: r#"a"b\c"# });
        up.set(3);
        calls.observe(&Calls { route: "tools", error_type: Failure::None }, 0.05, Some(TRACE));
        calls.observe(&Calls { route: "tools", error_type: Failure::None }, 0.5, None);
        calls.observe(&Calls { route: "tools", error_type: Failure::Timeout }, 30.0, None);

        let text = super::render(&registry, &[calls.family()]);
        // The exemplar's timestamp is the clock's: compare the rest.
        let (before, after) = text.split_once(" # {").expect("one exemplar");
        let (exemplar, after) = after.split_once('\n').expect("the exemplar ends its line");
        let (exemplar, timestamp) = exemplar.rsplit_once(' ').expect("the exemplar has a timestamp");
        assert_eq!(exemplar, r#"trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.05"#);
        assert!(timestamp.parse::<f64>().is_ok_and(|t| t > 1.7e9), "{timestamp}");
        let expected = r#"# HELP calls_seconds Calls \"timed\"
# TYPE calls_seconds histogram
calls_seconds_bucket{route="tools",le="0.1"} 1
calls_seconds_bucket{route="tools",le="1.0"} 2
calls_seconds_bucket{route="tools",le="+Inf"} 2
calls_seconds_count{route="tools"} 2
calls_seconds_sum{route="tools"} 0.55
calls_seconds_bucket{route="tools",error_type="timeout",le="0.1"} 0
calls_seconds_bucket{route="tools",error_type="timeout",le="1.0"} 0
calls_seconds_bucket{route="tools",error_type="timeout",le="+Inf"} 1
calls_seconds_count{route="tools",error_type="timeout"} 1
calls_seconds_sum{route="tools",error_type="timeout"} 30.0
# HELP requests Requests\nby route
# TYPE requests counter
requests_total{route="a\"b\\c"} 1.0
# HELP up_replicas Replicas up
# TYPE up_replicas gauge
up_replicas 3.0
# EOF
"#;
        assert_eq!(format!("{before}\n{after}"), expected);
    }

    #[test]
    fn the_classic_format_carries_the_same_histograms_without_exemplars() {
        let registry = Registry::new();
        let calls = ExemplarHistograms::<Calls<'static>>::register(&registry, "calls_seconds", "Calls", vec![0.1, 1.0]);
        calls.observe(&Calls { route: "tools", error_type: Failure::Timeout }, 0.5, Some(TRACE));
        let text = render(&registry);
        for line in [
            r#"calls_seconds_bucket{error_type="timeout",route="tools",le="0.1"} 0"#,
            r#"calls_seconds_bucket{error_type="timeout",route="tools",le="1"} 1"#,
            r#"calls_seconds_bucket{error_type="timeout",route="tools",le="+Inf"} 1"#,
            r#"calls_seconds_count{error_type="timeout",route="tools"} 1"#,
            r#"calls_seconds_sum{error_type="timeout",route="tools"} 0.5"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains("trace_id"), "{text}");
    }

    #[test]
    fn prometheus_histograms_get_their_inf_bucket_and_canonical_bounds() {
        let registry = Registry::new();
        let seconds = crate::metrics::histogram(&registry, "compile_seconds", "Compiles");
        seconds.observe(0.003);
        let vec = IntCounterVec::new(Opts::new("loads", "Loads without the suffix"), &["outcome"]).expect("valid");
        registry.register(Box::new(vec.clone())).expect("registered once");
        vec.with_label_values(&["applied"]).inc();
        let text = super::render(&registry, &[]);
        assert!(text.contains("compile_seconds_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(
            text.contains("compile_seconds_bucket{le=\"10.0\"} 1\ncompile_seconds_bucket{le=\"+Inf\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("compile_seconds_count 1\ncompile_seconds_sum 0.003\n"), "{text}");
        assert!(text.contains("# TYPE loads counter\nloads_total{outcome=\"applied\"} 1.0\n"), "{text}");
    }

    #[test]
    fn openmetrics_is_answered_only_to_a_scraper_that_asks_for_it() {
        // What Prometheus 2.42 sends on every scrape.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::accepted(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::accepted(Some("text/plain;version=0.0.4")), Format::Classic);
        assert_eq!(Format::accepted(Some("*/*")), Format::Classic);
        assert_eq!(Format::accepted(Some("application/openmetrics-text; q=0")), Format::Classic);
        assert_eq!(Format::accepted(None), Format::Classic);
        assert_eq!(Format::OpenMetrics.content_type(), "application/openmetrics-text; version=1.0.0; charset=utf-8");
    }
}
