//! What the sidecar shows: the Prometheus metrics, and the read-only HTTP endpoint serving
//! them, the `/status` document ([`crate::contract::status`]) and each slot's readiness
//! (`/slots/a/ready`, `/slots/b/ready`: a hot-swap pod's slot containers probe these), built
//! on [`crate::observe`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::contract::pod::Slot;
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

/// A slot's readiness, as its container's readiness probe sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotReadiness {
    /// Its launcher is connected and runs nothing (ready: the pod may serve from the other).
    Standby,
    /// Its app said READY=1 and serves.
    Serving,
    /// Its app was told to drain (ready: connections already open finish).
    Draining,
    /// Its app is starting to take over and has not said READY=1 yet.
    Starting,
    /// Its claim is the one wanted serving, but its app has not been started yet (a swap
    /// still draining, or sockets being recovered).
    Waiting,
    /// No launcher of this slot is connected (its container is starting or restarting).
    NoLauncher,
}

impl SlotReadiness {
    /// Whether the probe answers 200.
    pub fn is_ready(self) -> bool {
        matches!(self, Self::Standby | Self::Serving | Self::Draining)
    }

    /// The one-line answer of the probe.
    pub fn words(self) -> &'static str {
        match self {
            Self::Standby => "standby",
            Self::Serving => "serving",
            Self::Draining => "draining",
            Self::Starting => "not ready: its app is starting and has not said READY=1",
            Self::Waiting => "not ready: wanted to serve, its app is not started yet",
            Self::NoLauncher => "not ready: no launcher of this slot is connected",
        }
    }
}

/// Each slot's readiness, published by the swap driver after every event.
pub type SharedReadiness = Arc<Mutex<BTreeMap<Slot, SlotReadiness>>>;

/// The readiness of `slot` in a status document, given the slot the launchers' claims want
/// serving (pod mode).
pub fn slot_readiness(st: &Status, wanted: Option<&str>, slot: Slot) -> SlotReadiness {
    let Some(s) = st.slots.iter().find(|s| s.slot == slot.as_str()) else {
        return SlotReadiness::NoLauncher;
    };
    match &s.app {
        None if wanted == Some(slot.as_str()) => SlotReadiness::Waiting,
        None => SlotReadiness::Standby,
        Some(a) if a.draining => SlotReadiness::Draining,
        Some(a) if a.ready => SlotReadiness::Serving,
        Some(_) => SlotReadiness::Starting,
    }
}

/// Binds `addr` and serves `/status`, `/metrics`, `/livez`, `/readyz` and the slots'
/// readiness. Returns the bound address (port 0 resolved).
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    status: SharedStatus,
    readiness: SharedReadiness,
) -> std::io::Result<SocketAddr> {
    let mut routes = axum::Router::new();
    for slot in Slot::ALL {
        let readiness = readiness.clone();
        routes = routes.route(
            slot.ready_path(),
            get(move || async move {
                let r = match readiness.lock() {
                    Ok(g) => g.get(&slot).copied(),
                    Err(p) => p.into_inner().get(&slot).copied(),
                }
                .unwrap_or(SlotReadiness::NoLauncher);
                let code = if r.is_ready() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (code, format!("slot {slot}: {}\n", r.words()))
            }),
        );
    }
    let router = health.router().merge(routes.route(
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
    fn slot_readiness_follows_launcher_and_app() {
        use crate::contract::status::{AppStatus, SlotStatus};
        let slot = |name: &str, app: Option<(bool, bool)>| SlotStatus {
            slot: name.into(),
            launcher_pid: 1,
            version: "v".into(),
            app: app.map(|(ready, draining)| AppStatus {
                pid: 2,
                ready,
                draining,
            }),
            starts: 0,
        };
        let mut st = Status::default();
        assert_eq!(
            slot_readiness(&st, None, Slot::A),
            SlotReadiness::NoLauncher
        );
        let cases = [
            (None, SlotReadiness::Standby, true),
            (Some((false, false)), SlotReadiness::Starting, false),
            (Some((true, false)), SlotReadiness::Serving, true),
            (Some((true, true)), SlotReadiness::Draining, true),
            (Some((false, true)), SlotReadiness::Draining, true),
        ];
        for (app, want, ready) in cases {
            st.slots = vec![slot("a", None), slot("b", app)];
            let got = slot_readiness(&st, Some("a"), Slot::B);
            assert_eq!((got, got.is_ready()), (want, ready), "{app:?}");
            assert_eq!(slot_readiness(&st, None, Slot::A), SlotReadiness::Standby);
        }
        // The wanted slot, idle, is not ready until its app serves.
        let got = slot_readiness(&st, Some("a"), Slot::A);
        assert_eq!((got, got.is_ready()), (SlotReadiness::Waiting, false));
        st.slots = vec![slot("a", Some((true, false)))];
        assert_eq!(
            slot_readiness(&st, Some("a"), Slot::A),
            SlotReadiness::Serving
        );
        assert!(SlotReadiness::Starting.words().starts_with("not ready"));
    }

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
