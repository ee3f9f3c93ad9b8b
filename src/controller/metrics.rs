//! Prometheus metrics of the controller: reconciles by result, errors by category, duration.

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

/// Controller metrics, registered under the `zdr_controller` prefix.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<ResultLabel, Counter>,
    errors: Family<CategoryLabel, Counter>,
    duration: Histogram,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
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
        m
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
