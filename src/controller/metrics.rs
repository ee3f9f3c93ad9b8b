//! Prometheus metrics of the controller: reconciles by result, errors by category, duration;
//! analysis measurements by phase and aborted updates by reason.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabel {
    category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// Controller metrics, registered under the `zdr_controller` prefix.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<ResultLabel, Counter>,
    errors: Family<CategoryLabel, Counter>,
    duration: Histogram,
    measurements: Family<PhaseLabel, Counter>,
    aborts: Family<ReasonLabel, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            measurements: Family::default(),
            aborts: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("zdr_controller");
        r.register("reconciles", "Reconciles by result", m.reconciles.clone());
        r.register(
            "reconcile_errors",
            "Reconcile errors by category",
            m.errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            m.duration.clone(),
        );
        r.register(
            "analysis_measurements",
            "Analysis measurements by phase (Successful, Failed, Inconclusive, Error)",
            m.measurements.clone(),
        );
        r.register(
            "aborts",
            "Updates aborted, by reason (AnalysisFailed, CanaryCrashLooping, ProgressDeadlineExceeded, AbortedByUser)",
            m.aborts.clone(),
        );
        m
    }

    /// Records one analysis measurement.
    pub fn measurement(&self, phase: &'static str) {
        self.measurements.get_or_create(&PhaseLabel { phase }).inc();
    }

    /// Records one aborted update.
    pub fn abort(&self, reason: &str) {
        self.aborts
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Records one reconcile.
    pub fn observe(&self, error_category: Option<&'static str>, seconds: f64) {
        self.duration.observe(seconds);
        let result = if error_category.is_some() {
            "error"
        } else {
            "ok"
        };
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
        if let Some(category) = error_category {
            self.errors.get_or_create(&CategoryLabel { category }).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysis_and_abort_counters_are_exported() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.measurement("Failed");
        m.abort("AnalysisFailed");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("zdr_controller_analysis_measurements_total{phase=\"Failed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("zdr_controller_aborts_total{reason=\"AnalysisFailed\"} 1"),
            "{text}"
        );
    }
}
