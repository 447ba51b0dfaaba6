//! The operator's own metrics: what the controller loop measures in, the Prometheus registry
//! `/metrics` serves out. Labels are types ([`Reconciled`]): a label value outside the
//! bounded set cannot be written.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

/// How a reconcile ended: the `outcome` label of `manifold_operator_reconciles_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconciled {
    /// Published and every status written.
    Ok,
    /// It failed, or some status write was refused.
    Error,
}

impl Reconciled {
    fn label(self) -> &'static str {
        match self {
            Reconciled::Ok => "ok",
            Reconciled::Error => "error",
        }
    }
}

/// The operator's own metrics.
pub struct Metrics {
    pub registry: Registry,
    reconciles: IntCounterVec,
    pub compile_seconds: Histogram,
    pub programmed_lag_seconds: Histogram,
    pub publish_bytes: IntGauge,
    pub leader: IntGauge,
    pub missing_permissions: IntGauge,
}

impl Metrics {
    /// Counts a reconcile that ended so.
    pub fn reconciled(&self, outcome: Reconciled) {
        self.reconciles.with_label_values(&[outcome.label()]).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("manifold_operator_reconciles_total", "Reconciles by outcome (ok, error)"),
            &["outcome"],
        )
        .expect("valid metric");
        let leader =
            IntGauge::new("manifold_operator_leader", "1 while this replica holds the Lease").expect("valid metric");
        let compile_seconds = Histogram::with_opts(HistogramOpts::new(
            "manifold_operator_compile_seconds",
            "Time to compile the world into gateway config",
        ))
        .expect("valid metric");
        let programmed_lag_seconds = Histogram::with_opts(HistogramOpts::new(
            "manifold_operator_programmed_lag_seconds",
            "Time from a route's change to every gateway replica serving it",
        ))
        .expect("valid metric");
        let publish_bytes =
            IntGauge::new("manifold_operator_publish_bytes", "Gzipped bytes of the config last published")
                .expect("valid metric");
        let missing_permissions = IntGauge::new(
            "manifold_operator_missing_permissions",
            "Permissions the operator needs that the API server last said it lacks (see /readyz)",
        )
        .expect("valid metric");
        registry.register(Box::new(reconciles.clone())).expect("registers once");
        registry.register(Box::new(compile_seconds.clone())).expect("registers once");
        registry.register(Box::new(publish_bytes.clone())).expect("registers once");
        registry.register(Box::new(programmed_lag_seconds.clone())).expect("registers once");
        registry.register(Box::new(leader.clone())).expect("registers once");
        registry.register(Box::new(missing_permissions.clone())).expect("registers once");
        Metrics {
            registry,
            reconciles,
            compile_seconds,
            programmed_lag_seconds,
            publish_bytes,
            leader,
            missing_permissions,
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{Encoder, TextEncoder};

    use super::*;

    #[test]
    fn reconciles_are_counted_by_a_bounded_outcome() {
        let metrics = Metrics::default();
        metrics.reconciled(Reconciled::Ok);
        metrics.reconciled(Reconciled::Error);
        metrics.reconciled(Reconciled::Error);
        let mut text = Vec::new();
        TextEncoder::new().encode(&metrics.registry.gather(), &mut text).expect("encodes");
        let text = String::from_utf8(text).expect("UTF-8");
        assert!(text.contains("manifold_operator_reconciles_total{outcome=\"ok\"} 1"), "{text}");
        assert!(text.contains("manifold_operator_reconciles_total{outcome=\"error\"} 2"), "{text}");
    }
}
