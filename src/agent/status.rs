//! What the sidecar shows: the Prometheus metrics, and the read-only HTTP endpoint serving
//! them and the `/status` document ([`crate::contract::status`]), built on [`crate::observe`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::contract::status::{Status, SwapResult};
use crate::observe::Health;

/// Labels of `zdr_agent_swaps_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `succeeded` or `failed`.
    pub result: SwapResult,
}

impl EncodeLabelValue for SwapResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// The sidecar's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// Swaps by result.
    pub swaps: Family<ResultLabel, Counter>,
    /// Whole swap durations.
    pub swap_seconds: Histogram,
    /// Drain durations.
    pub drain_seconds: Histogram,
    /// Listeners held.
    pub sockets_held: Gauge,
    /// Listeners found shut down by an app and replaced.
    pub listener_repairs: Counter,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let buckets = [
            0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
        ];
        let m = Metrics {
            swaps: Family::default(),
            swap_seconds: Histogram::new(buckets),
            drain_seconds: Histogram::new(buckets),
            sockets_held: Gauge::default(),
            listener_repairs: Counter::default(),
        };
        registry.register("zdr_agent_swaps", "Hot swaps by result", m.swaps.clone());
        registry.register(
            "zdr_agent_swap_duration_seconds",
            "Whole swap: start of the new version to exit of the old",
            m.swap_seconds.clone(),
        );
        registry.register(
            "zdr_agent_drain_duration_seconds",
            "Drain signal to exit of the old version",
            m.drain_seconds.clone(),
        );
        registry.register(
            "zdr_agent_sockets_held",
            "Listening sockets held",
            m.sockets_held.clone(),
        );
        registry.register(
            "zdr_agent_listener_repairs",
            "Shared listeners found shut down by an app and replaced by a new bind",
            m.listener_repairs.clone(),
        );
        m
    }
}

/// The status document shared between the swap machine (writer) and readers.
pub type SharedStatus = Arc<Mutex<Status>>;

/// Reads the current status (a poisoned lock still yields the last document).
pub fn snapshot(s: &SharedStatus) -> Status {
    match s.lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

/// Binds `addr` and serves `/status`, `/metrics`, `/livez`, `/readyz`. Returns the bound
/// address (port 0 resolved).
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    status: SharedStatus,
) -> std::io::Result<SocketAddr> {
    let router = health.router().merge(axum::Router::new().route(
        "/status",
        get(move || async move { Json(snapshot(&status)) }),
    ));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "status http server stopped");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_are_counted_under_the_wire_words() {
        let mut registry = Registry::default();
        let m = Metrics::new(&mut registry);
        for result in [
            SwapResult::Succeeded,
            SwapResult::Failed,
            SwapResult::Failed,
        ] {
            m.swaps.get_or_create(&ResultLabel { result }).inc();
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("zdr_agent_swaps_total{result=\"succeeded\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("zdr_agent_swaps_total{result=\"failed\"} 2"),
            "{text}"
        );
    }
}
