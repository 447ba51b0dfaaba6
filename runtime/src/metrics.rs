//! Prometheus metrics with typed label sets. A labelled family takes its labels as one struct
//! (declared with [`label_set!`]) whose fields are bounded types: `&str` only where the value
//! comes from configuration (a namespace, a route), an enum where it comes from traffic. So an
//! unbounded value (a user, a session, an argument) cannot become a label by habit, and the
//! label names cannot drift from the values' order. Histograms whose buckets keep exemplars
//! (trace ids) are in [`exemplars`]; the registry in OpenMetrics text, in [`openmetrics`].

pub mod exemplars;
pub mod openmetrics;

use std::marker::PhantomData;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// A value a label can hold.
pub trait LabelValue {
    fn label(&self) -> &str;
}

impl LabelValue for &str {
    fn label(&self) -> &str {
        self
    }
}

/// The labels of one metric family, in a fixed order.
pub trait LabelSet {
    /// The label names, in the order [`with_values`](Self::with_values) gives the values.
    const NAMES: &'static [&'static str];
    /// Calls `f` with the values (no allocation: this runs on the hot path).
    fn with_values<R>(&self, f: impl FnOnce(&[&str]) -> R) -> R;
}

/// Declares a label set: a struct whose fields are the labels, named as the fields are.
/// Each field's type implements [`LabelValue`].
#[macro_export]
macro_rules! label_set {
    ($(#[$meta:meta])* $vis:vis struct $name:ident $(<$lt:lifetime>)? {
        $($(#[$field_meta:meta])* $field_vis:vis $field:ident : $ty:ty),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        $vis struct $name $(<$lt>)? { $($(#[$field_meta])* $field_vis $field: $ty),* }

        impl $(<$lt>)? $crate::metrics::LabelSet for $name $(<$lt>)? {
            const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];
            fn with_values<R>(&self, f: impl FnOnce(&[&str]) -> R) -> R {
                f(&[$($crate::metrics::LabelValue::label(&self.$field)),*])
            }
        }
    };
}

/// Counters labelled by `L`. A family declared for `L<'static>` takes labels borrowed for any
/// shorter time (it is covariant in `L`).
pub struct Counters<L> {
    vec: IntCounterVec,
    labels: PhantomData<L>,
}

impl<L: LabelSet> Counters<L> {
    pub fn register(registry: &Registry, name: &str, help: &str) -> Self {
        let vec = IntCounterVec::new(Opts::new(name, help), L::NAMES).expect("a valid metric name and labels");
        register(registry, vec.clone());
        Counters { vec, labels: PhantomData }
    }

    /// The counter for `labels`.
    pub fn with(&self, labels: &L) -> IntCounter {
        labels.with_values(|values| self.vec.with_label_values(values))
    }

    pub fn inc(&self, labels: &L) {
        self.with(labels).inc();
    }
}

/// Histograms labelled by `L`.
pub struct Histograms<L> {
    vec: HistogramVec,
    labels: PhantomData<L>,
}

impl<L: LabelSet> Histograms<L> {
    pub fn register(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Self {
        let vec = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), L::NAMES)
            .expect("a valid metric name, labels and buckets");
        register(registry, vec.clone());
        Histograms { vec, labels: PhantomData }
    }

    /// The histogram for `labels`.
    pub fn with(&self, labels: &L) -> Histogram {
        labels.with_values(|values| self.vec.with_label_values(values))
    }

    pub fn observe(&self, labels: &L, value: f64) {
        self.with(labels).observe(value);
    }
}

/// Gauges labelled by `L`.
pub struct Gauges<L> {
    vec: IntGaugeVec,
    labels: PhantomData<L>,
}

impl<L: LabelSet> Gauges<L> {
    pub fn register(registry: &Registry, name: &str, help: &str) -> Self {
        let vec = IntGaugeVec::new(Opts::new(name, help), L::NAMES).expect("a valid metric name and labels");
        register(registry, vec.clone());
        Gauges { vec, labels: PhantomData }
    }

    /// The gauge for `labels`.
    pub fn with(&self, labels: &L) -> IntGauge {
        labels.with_values(|values| self.vec.with_label_values(values))
    }

    pub fn set(&self, labels: &L, value: i64) {
        self.with(labels).set(value);
    }
}

/// An unlabelled gauge, registered.
pub fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::new(name, help).expect("a valid metric name");
    register(registry, gauge.clone());
    gauge
}

/// An unlabelled histogram with the default buckets, registered.
pub fn histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let histogram = Histogram::with_opts(HistogramOpts::new(name, help)).expect("a valid metric name");
    register(registry, histogram.clone());
    histogram
}

fn register(registry: &Registry, collector: impl Collector + 'static) {
    registry.register(Box::new(collector)).expect("each metric is registered once");
}

/// Which text `/metrics` answers in: what the scraper's `Accept` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The classic text format, 0.0.4 (no exemplars).
    Classic,
    /// OpenMetrics 1.0 text, with exemplars.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when `accept` names `application/openmetrics-text` with a nonzero quality,
    /// the classic format otherwise. (Prometheus 2.x asks for OpenMetrics first on every
    /// scrape, so that is what it reads.)
    pub fn accepted(accept: Option<&str>) -> Format {
        let asks = |range: &str| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0)));
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        };
        match accept.is_some_and(|accept| accept.split(',').any(asks)) {
            true => Format::OpenMetrics,
            false => Format::Classic,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => openmetrics::CONTENT_TYPE,
        }
    }
}

/// `registry` in `format`; `exemplars` are the families (registered in `registry`) whose
/// exemplars OpenMetrics carries.
pub fn render_as(format: Format, registry: &Registry, exemplars: &[&dyn openmetrics::ExemplarFamily]) -> String {
    match format {
        Format::Classic => render(registry),
        Format::OpenMetrics => openmetrics::render(registry, exemplars),
    }
}

/// The registry in the text exposition format.
pub fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    prometheus::TextEncoder::new().encode(&registry.gather(), &mut out).expect("metrics encode");
    String::from_utf8(out).expect("the text format is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug)]
    enum Outcome {
        Ok,
        Error,
    }

    impl LabelValue for Outcome {
        fn label(&self) -> &str {
            match self {
                Outcome::Ok => "ok",
                Outcome::Error => "error",
            }
        }
    }

    label_set! {
        /// Requests by route and outcome.
        struct Requests<'a> { namespace: &'a str, outcome: Outcome }
    }

    struct Metrics {
        registry: Registry,
        requests: Counters<Requests<'static>>,
    }

    #[test]
    fn labels_are_named_by_their_fields_and_take_borrowed_values() {
        let registry = Registry::new();
        let metrics = Metrics { requests: Counters::register(&registry, "requests_total", "Requests"), registry };
        let namespace = String::from("acme");
        metrics.requests.inc(&Requests { namespace: &namespace, outcome: Outcome::Ok });
        metrics.requests.inc(&Requests { namespace: &namespace, outcome: Outcome::Ok });
        metrics.requests.inc(&Requests { namespace: "globex", outcome: Outcome::Error });
        let text = render(&metrics.registry);
        assert!(text.contains(r#"requests_total{namespace="acme",outcome="ok"} 2"#), "{text}");
        assert!(text.contains(r#"requests_total{namespace="globex",outcome="error"} 1"#), "{text}");
    }
}
