//! Histograms that keep, per bucket, the latest exemplar: the trace id of a sampled request
//! that landed in it, its value and when. An observation finds its series by the hash of its
//! label values (no allocation once the series exists, a read lock as the prometheus crate
//! takes), adds to atomics, and touches a per-bucket lock only when it carries an exemplar.
//! The family is a prometheus [`Collector`] (the classic text format, without exemplars) and
//! writes itself in OpenMetrics with them ([`ExemplarFamily`]).

use std::collections::HashMap;
use std::fmt::Write;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::TraceId;
use prometheus::core::{Collector, Desc, Describer};
use prometheus::proto;
use prometheus::{HistogramOpts, Registry};

use super::LabelSet;
use super::openmetrics::{ExemplarFamily, escape, write_labels};

/// Histograms labelled by `L` whose buckets keep the latest exemplar.
pub struct ExemplarHistograms<L> {
    family: Arc<Family>,
    labels: PhantomData<L>,
}

impl<L> Clone for ExemplarHistograms<L> {
    /// Another handle on the same family.
    fn clone(&self) -> Self {
        ExemplarHistograms { family: Arc::clone(&self.family), labels: PhantomData }
    }
}

/// A sampled observation's exemplar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exemplar {
    pub trace_id: TraceId,
    pub value: f64,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
}

struct Family {
    desc: Desc,
    name: String,
    help: String,
    /// Upper bounds, ascending, without +Inf.
    bounds: Box<[f64]>,
    label_names: &'static [&'static str],
    /// Series by the hash of their label values; a hash shared by two label sets holds both.
    series: RwLock<HashMap<u64, Vec<Arc<Series>>>>,
}

struct Series {
    values: Box<[Box<str>]>,
    /// Observations per bucket (not cumulative); the last is +Inf.
    counts: Box<[AtomicU64]>,
    /// The sum's `f64` bits.
    sum: AtomicU64,
    exemplars: Box<[Mutex<Option<Exemplar>>]>,
}

impl<L: LabelSet> ExemplarHistograms<L> {
    /// Registers the family in `registry` (which then serves it in the classic text format).
    /// Write the OpenMetrics form with [`super::openmetrics::render`], passing [`Self::family`].
    pub fn register(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Self {
        assert!(buckets.windows(2).all(|pair| pair[0] < pair[1]), "buckets of {name} ascend");
        let opts = HistogramOpts::new(name, help).variable_labels(L::NAMES.iter().map(|n| (*n).to_owned()).collect());
        let desc = opts.describe().expect("a valid metric name and labels");
        let family = Arc::new(Family {
            desc,
            name: name.to_owned(),
            help: help.to_owned(),
            bounds: buckets.into_boxed_slice(),
            label_names: L::NAMES,
            series: RwLock::default(),
        });
        registry.register(Box::new(Collected(Arc::clone(&family)))).expect("each metric is registered once");
        ExemplarHistograms { family, labels: PhantomData }
    }

    /// Records `value` (seconds) for `labels`; `exemplar`, the trace id of a sampled span, is
    /// kept as its bucket's latest.
    pub fn observe(&self, labels: &L, value: f64, exemplar: Option<TraceId>) {
        labels.with_values(|values| self.family.series(values).observe(&self.family.bounds, value, exemplar));
    }

    /// The bucket counts (cumulative, the last is +Inf), the sum and each bucket's exemplar of
    /// `labels`'s series, if it has been observed.
    pub fn snapshot(&self, labels: &L) -> Option<(Vec<u64>, f64, Vec<Option<Exemplar>>)> {
        labels.with_values(|values| {
            let series = self.family.find(hash(values), values)?;
            let (counts, sum) = series.cumulative();
            Some((counts, sum, series.exemplars()))
        })
    }

    /// The family, for the OpenMetrics encoder.
    pub fn family(&self) -> &dyn ExemplarFamily {
        &*self.family
    }
}

fn hash(values: &[&str]) -> u64 {
    let mut hasher = DefaultHasher::new();
    values.hash(&mut hasher);
    hasher.finish()
}

impl Family {
    fn find(&self, hash: u64, values: &[&str]) -> Option<Arc<Series>> {
        let series = self.series.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        series.get(&hash)?.iter().find(|s| s.values.iter().map(|v| &**v).eq(values.iter().copied())).cloned()
    }

    fn series(&self, values: &[&str]) -> Arc<Series> {
        let hash = hash(values);
        if let Some(series) = self.find(hash, values) {
            return series;
        }
        let mut all = self.series.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let same_hash = all.entry(hash).or_default();
        if let Some(series) = same_hash.iter().find(|s| s.values.iter().map(|v| &**v).eq(values.iter().copied())) {
            return Arc::clone(series);
        }
        let buckets = self.bounds.len() + 1;
        let series = Arc::new(Series {
            values: values.iter().map(|v| Box::from(*v)).collect(),
            counts: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
            exemplars: (0..buckets).map(|_| Mutex::new(None)).collect(),
        });
        same_hash.push(Arc::clone(&series));
        series
    }

    /// Every series, ordered by label values so that the output is stable.
    fn all_series(&self) -> Vec<Arc<Series>> {
        let series = self.series.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut all: Vec<Arc<Series>> = series.values().flatten().cloned().collect();
        all.sort_by(|a, b| a.values.cmp(&b.values));
        all
    }
}

impl Series {
    fn observe(&self, bounds: &[f64], value: f64, exemplar: Option<TraceId>) {
        let bucket = bounds.partition_point(|bound| *bound < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| Some((f64::from_bits(bits) + value).to_bits()));
        if let Some(trace_id) = exemplar {
            let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default();
            let kept = Exemplar { trace_id, value, timestamp };
            *self.exemplars[bucket].lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(kept);
        }
    }

    /// Cumulative bucket counts (the last is the count) and the sum. The count is the +Inf
    /// bucket's, so the two always agree.
    fn cumulative(&self) -> (Vec<u64>, f64) {
        let mut total = 0;
        let counts = self
            .counts
            .iter()
            .map(|count| {
                total += count.load(Ordering::Relaxed);
                total
            })
            .collect();
        (counts, f64::from_bits(self.sum.load(Ordering::Relaxed)))
    }

    fn exemplars(&self) -> Vec<Option<Exemplar>> {
        self.exemplars.iter().map(|e| *e.lock().unwrap_or_else(|poisoned| poisoned.into_inner())).collect()
    }
}

impl ExemplarFamily for Family {
    fn name(&self) -> &str {
        &self.name
    }

    fn encode(&self, out: &mut String) {
        let name = &self.name;
        let _ = writeln!(out, "# HELP {name} {}", escape(&self.help));
        let _ = writeln!(out, "# TYPE {name} histogram");
        for series in self.all_series() {
            let labels: Vec<(&str, &str)> =
                self.label_names.iter().copied().zip(series.values.iter().map(|v| &**v)).collect();
            let (counts, sum) = series.cumulative();
            let exemplars = series.exemplars();
            let les = self.bounds.iter().map(|b| super::openmetrics::float(*b)).chain(["+Inf".to_owned()]);
            for ((le, count), exemplar) in les.zip(&counts).zip(&exemplars) {
                let _ = write!(out, "{name}_bucket");
                write_labels(out, &labels, Some(("le", &le)));
                let _ = write!(out, " {count}");
                if let Some(e) = exemplar {
                    let _ = write!(
                        out,
                        " # {{trace_id=\"{}\"}} {} {:.3}",
                        e.trace_id,
                        super::openmetrics::float(e.value),
                        e.timestamp
                    );
                }
                out.push('\n');
            }
            let _ = write!(out, "{name}_count");
            write_labels(out, &labels, None);
            let _ = writeln!(out, " {}", counts.last().copied().unwrap_or_default());
            let _ = write!(out, "{name}_sum");
            write_labels(out, &labels, None);
            let _ = writeln!(out, " {}", super::openmetrics::float(sum));
        }
    }
}

/// The family as the prometheus registry gathers it (the classic text format has no exemplars).
struct Collected(Arc<Family>);

impl Collector for Collected {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0.desc]
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let family = &self.0;
        let metrics = family
            .all_series()
            .iter()
            .map(|series| {
                let (counts, sum) = series.cumulative();
                let mut histogram = proto::Histogram::default();
                histogram.set_sample_count(counts.last().copied().unwrap_or_default());
                histogram.set_sample_sum(sum);
                let buckets = family.bounds.iter().zip(&counts).map(|(bound, count)| {
                    let mut bucket = proto::Bucket::default();
                    bucket.set_upper_bound(*bound);
                    bucket.set_cumulative_count(*count);
                    bucket
                });
                histogram.set_bucket(buckets.collect());
                let mut labels: Vec<proto::LabelPair> = family
                    .label_names
                    .iter()
                    .zip(series.values.iter())
                    .map(|(name, value)| {
                        let mut pair = proto::LabelPair::default();
                        pair.set_name((*name).to_owned());
                        pair.set_value(value.to_string());
                        pair
                    })
                    .collect();
                labels.sort_by(|a, b| a.name().cmp(b.name()));
                let mut metric = proto::Metric::from_label(labels);
                metric.set_histogram(histogram);
                metric
            })
            .collect();
        let mut out = proto::MetricFamily::default();
        out.set_name(family.name.clone());
        out.set_help(family.help.clone());
        out.set_field_type(proto::MetricType::HISTOGRAM);
        out.set_metric(metrics);
        vec![out]
    }
}
