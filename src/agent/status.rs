//! What the sidecar shows: the `/status` JSON document, the Prometheus metrics, and the
//! read-only HTTP endpoint serving both (built on [`crate::observe`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::observe::Health;

/// One held listener.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SocketStatus {
    /// LISTEN_FDNAMES name.
    pub name: String,
    /// Bound address.
    pub addr: String,
    /// SO_ACCEPTCONN at the last check.
    pub listening: bool,
    /// Recovered from a launcher after a sidecar restart.
    pub adopted: bool,
}

/// A slot's running app.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AppStatus {
    /// App pid.
    pub pid: u32,
    /// Signalled readiness.
    pub ready: bool,
    /// Told to drain.
    pub draining: bool,
}

/// One slot (launcher).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SlotStatus {
    /// Slot name.
    pub slot: String,
    /// Launcher pid.
    pub launcher_pid: u32,
    /// Version label.
    pub version: String,
    /// Running app, if any.
    pub app: Option<AppStatus>,
    /// How many times this slot started an app.
    pub starts: u64,
}

/// A finished (or running) swap.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SwapRecord {
    /// Sequence number, from 1.
    pub id: u64,
    /// Old slot (none if nothing was serving).
    pub from: Option<String>,
    /// New slot.
    pub to: String,
    /// Version label of the new slot.
    pub to_version: String,
    /// `running`, `succeeded` or `failed`.
    pub result: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Start of the new version to its readiness.
    pub ready_ms: Option<u64>,
    /// Drain signal to the old version's exit.
    pub drain_ms: Option<u64>,
    /// Whole swap.
    pub total_ms: Option<u64>,
}

/// The `/status` document (also `zdr-agent ctl status`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    /// Held listeners.
    pub sockets: Vec<SocketStatus>,
    /// Slot serving now (the last one to become ready).
    pub active_slot: Option<String>,
    /// Registered slots.
    pub slots: Vec<SlotStatus>,
    /// Swap under way.
    pub swap_in_progress: Option<SwapRecord>,
    /// Last finished swap.
    pub last_swap: Option<SwapRecord>,
    /// Swaps that succeeded.
    pub swaps_succeeded: u64,
    /// Swaps that failed.
    pub swaps_failed: u64,
    /// Still waiting for launchers to hand back sockets after a restart.
    pub recovering: bool,
    /// HTTP endpoint address.
    pub http_addr: Option<String>,
    /// Sidecar pid.
    pub pid: u32,
}

/// Labels of `zdr_agent_swaps_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `succeeded` or `failed`.
    pub result: String,
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
