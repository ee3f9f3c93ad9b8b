//! The agent's `/status` document (also `zdr-agent ctl status` and the swap records `ctl swap`
//! prints): what the agent reports about its sockets, slots and swaps. The JSON field names
//! and values are the wire format; phases not on the wire are derived here, in one place.

use serde::{Deserialize, Serialize};

/// One held listener.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    /// App pid.
    pub pid: u32,
    /// Signalled readiness.
    pub ready: bool,
    /// Told to drain.
    pub draining: bool,
}

/// What a slot is doing, derived from its [`SlotStatus`] and the active slot (not a wire
/// field: the document carries the facts, this is their one reading).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotPhase {
    /// No app runs: a standby launcher, ready to be swapped to.
    Idle,
    /// The app runs but has not said `READY=1` yet.
    Starting,
    /// The app is ready and is the active slot: it takes new connections.
    Serving,
    /// The app is ready but another slot is active (transient, e.g. after a sidecar restart).
    Ready,
    /// The app was told to drain: it finishes its connections, then exits.
    Draining,
}

/// One slot (launcher).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

impl SlotStatus {
    /// The slot's phase, given the document's `active_slot`.
    pub fn phase(&self, active_slot: Option<&str>) -> SlotPhase {
        match &self.app {
            None => SlotPhase::Idle,
            Some(a) if a.draining => SlotPhase::Draining,
            Some(a) if !a.ready => SlotPhase::Starting,
            Some(_) if active_slot == Some(self.slot.as_str()) => SlotPhase::Serving,
            Some(_) => SlotPhase::Ready,
        }
    }
}

/// The result of a swap, as the record's `result` field carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwapResult {
    /// Under way.
    #[default]
    Running,
    /// The new version is ready and serves; the old one drained and exited.
    Succeeded,
    /// The new version exited or was not ready in time; the old one still serves.
    Failed,
}

impl SwapResult {
    /// The word on the wire and in the `result` label of `zdr_agent_swaps_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            SwapResult::Running => "running",
            SwapResult::Succeeded => "succeeded",
            SwapResult::Failed => "failed",
        }
    }
}

impl std::fmt::Display for SwapResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a swap is, derived from its [`SwapRecord`] (a running swap has `ready_ms` once the
/// new version is ready, which is when the old one is told to drain).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwapPhase {
    /// The new version is starting; the old one serves.
    Starting,
    /// The new version serves; the old one drains.
    Draining,
    /// Finished: the new version serves.
    Succeeded,
    /// Finished: the old version serves.
    Failed,
}

/// A finished (or running) swap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapRecord {
    /// Sequence number, from 1.
    pub id: u64,
    /// Old slot (none if nothing was serving).
    pub from: Option<String>,
    /// New slot.
    pub to: String,
    /// Version label of the new slot.
    pub to_version: String,
    /// Running, succeeded or failed.
    pub result: SwapResult,
    /// Why it failed.
    pub error: Option<String>,
    /// Start of the new version to its readiness.
    pub ready_ms: Option<u64>,
    /// Drain signal to the old version's exit.
    pub drain_ms: Option<u64>,
    /// Whole swap.
    pub total_ms: Option<u64>,
}

impl SwapRecord {
    /// The swap's phase.
    pub fn phase(&self) -> SwapPhase {
        match self.result {
            SwapResult::Running if self.ready_ms.is_some() => SwapPhase::Draining,
            SwapResult::Running => SwapPhase::Starting,
            SwapResult::Succeeded => SwapPhase::Succeeded,
            SwapResult::Failed => SwapPhase::Failed,
        }
    }
}

/// The `/status` document (also `zdr-agent ctl status`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

impl Status {
    /// The active slot's entry, if that slot is connected.
    pub fn active(&self) -> Option<&SlotStatus> {
        let active = self.active_slot.as_deref()?;
        self.slots.iter().find(|s| s.slot == active)
    }

    /// Each slot with its phase.
    pub fn slot_phases(&self) -> impl Iterator<Item = (&SlotStatus, SlotPhase)> {
        let active = self.active_slot.as_deref();
        self.slots.iter().map(move |s| (s, s.phase(active)))
    }
}
