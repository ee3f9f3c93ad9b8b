//! Prometheus metrics of the controller: reconciles by result, errors by category, duration;
//! analysis measurements by phase, aborted updates by reason, and in-place swaps by result with
//! the time each kept its pod out of endpoints.

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
    hot_swaps: Family<ResultLabel, Counter>,
    hot_swap_unready: Histogram,
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
            hot_swaps: Family::default(),
            hot_swap_unready: Histogram::new([0.0, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0]),
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
        r.register(
            "hot_swaps",
            "In-place swaps of a pod, by result (succeeded, failed)",
            m.hot_swaps.clone(),
        );
        r.register(
            "hot_swap_unready_seconds",
            "Time a swapped pod spent out of endpoints during its swap (the goal is 0)",
            m.hot_swap_unready.clone(),
        );
        m
    }

    /// Records one pod's in-place swap: succeeded with the time it kept the pod out of
    /// endpoints, or failed (None).
    pub fn hot_swap(&self, unready: Option<std::time::Duration>) {
        let result = if unready.is_some() {
            "succeeded"
        } else {
            "failed"
        };
        self.hot_swaps.get_or_create(&ResultLabel { result }).inc();
        if let Some(d) = unready {
            self.hot_swap_unready.observe(d.as_secs_f64());
        }
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
        m.hot_swap(Some(std::time::Duration::from_millis(1500)));
        m.hot_swap(None);
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
        for line in [
            "zdr_controller_hot_swaps_total{result=\"succeeded\"} 1",
            "zdr_controller_hot_swaps_total{result=\"failed\"} 1",
            "zdr_controller_hot_swap_unready_seconds_bucket{le=\"1.0\"} 0",
            "zdr_controller_hot_swap_unready_seconds_bucket{le=\"2.0\"} 1",
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
    }
}
