//! The operator's own metrics: what the controller loop measures in, the Prometheus registry
//! `/metrics` serves out. Labels are typed label sets ([`ReconcileLabels`]): a label value
//! outside the bounded set cannot be written.

use manifold_runtime::label_set;
use manifold_runtime::metrics::{Counters, LabelValue, gauge, histogram};
use prometheus::{Histogram, HistogramOpts, IntGauge, Registry};

label_set! {
    /// A reconcile that ended.
    pub struct ReconcileLabels { pub outcome: Reconciled }
}

/// How a reconcile ended: the `outcome` label of `manifold_operator_reconciles_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconciled {
    /// Published and every status written.
    Ok,
    /// It failed, or some status write was refused.
    Error,
}

impl LabelValue for Reconciled {
    fn label(&self) -> &str {
        match self {
            Reconciled::Ok => "ok",
            Reconciled::Error => "error",
        }
    }
}

/// The operator's own metrics.
pub struct Metrics {
    pub registry: Registry,
    reconciles: Counters<ReconcileLabels>,
    pub compile_seconds: Histogram,
    /// A whole reconcile pass: resolving, waiting for new servers' probes, compiling,
    /// publishing, writing statuses.
    pub reconcile_seconds: Histogram,
    pub programmed_lag_seconds: Histogram,
    pub publish_bytes: IntGauge,
    pub leader: IntGauge,
    pub missing_permissions: IntGauge,
}

impl Metrics {
    /// Counts a reconcile that ended so.
    pub fn reconciled(&self, outcome: Reconciled) {
        self.reconciles.inc(&ReconcileLabels { outcome });
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let reconciles =
            Counters::register(&registry, "manifold_operator_reconciles_total", "Reconciles by outcome (ok, error)");
        let compile_seconds =
            histogram(&registry, "manifold_operator_compile_seconds", "Time to compile the world into gateway config");
        let reconcile_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "manifold_operator_reconcile_duration_seconds",
                "Time of a whole reconcile pass: resolve, probes of new servers, compile, publish, status writes",
            )
            .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
        )
        .expect("a valid metric name and buckets");
        registry.register(Box::new(reconcile_seconds.clone())).expect("each metric is registered once");
        let programmed_lag_seconds = histogram(
            &registry,
            "manifold_operator_programmed_lag_seconds",
            "Time from a route's change to every gateway replica serving it",
        );
        let publish_bytes =
            gauge(&registry, "manifold_operator_publish_bytes", "Gzipped bytes of the config last published");
        let leader = gauge(&registry, "manifold_operator_leader", "1 while this replica holds the Lease");
        let missing_permissions = gauge(
            &registry,
            "manifold_operator_missing_permissions",
            "Permissions the operator needs that the API server last said it lacks (see /readyz)",
        );
        Metrics {
            registry,
            reconciles,
            compile_seconds,
            reconcile_seconds,
            programmed_lag_seconds,
            publish_bytes,
            leader,
            missing_permissions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_are_counted_by_a_bounded_outcome() {
        let metrics = Metrics::default();
        metrics.reconciled(Reconciled::Ok);
        metrics.reconciled(Reconciled::Error);
        metrics.reconciled(Reconciled::Error);
        let text = manifold_runtime::metrics::render(&metrics.registry);
        assert!(text.contains("manifold_operator_reconciles_total{outcome=\"ok\"} 1"), "{text}");
        assert!(text.contains("manifold_operator_reconciles_total{outcome=\"error\"} 2"), "{text}");
    }

    #[test]
    fn a_reconcile_pass_is_timed_in_buckets_up_to_a_minute() {
        let metrics = Metrics::default();
        metrics.reconcile_seconds.observe(12.0);
        let text = manifold_runtime::metrics::render(&metrics.registry);
        assert!(text.contains("manifold_operator_reconcile_duration_seconds_bucket{le=\"10\"} 0\n"), "{text}");
        assert!(text.contains("manifold_operator_reconcile_duration_seconds_bucket{le=\"30\"} 1\n"), "{text}");
    }
}
