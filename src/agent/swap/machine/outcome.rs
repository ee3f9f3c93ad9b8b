//! What the machine reports: how a swap ended or why it failed, why a request was refused,
//! the report of one swap and the phase of the one under way. Their `Display` is the text
//! `ctl swap` prints and the swap record's `error`.

use std::time::{Duration, Instant};

/// How a swap ended, or that it has not yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Under way.
    Running,
    /// The new version serves, the old one exited.
    Succeeded,
    /// It failed.
    Failed(Failure),
}

/// Why a swap failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The new version exited (or its launcher was lost) before READY=1.
    #[error(
        "new version in slot {slot} exited before it was ready ({exit}); old version kept serving"
    )]
    ExitedBeforeReady {
        /// The new slot.
        slot: String,
        /// How it ended.
        exit: Exit,
    },
    /// The new version missed the readiness deadline and was stopped.
    #[error(
        "new version in slot {slot} was not ready within {}s; stopped it, old version kept serving",
        .timeout.as_secs_f64()
    )]
    NotReady {
        /// The new slot.
        slot: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The old version outlived its drain timeout (and the backstop after it).
    #[error("old version did not exit after its drain timeout")]
    DrainTimeout,
}

/// How an app ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Exit {
    /// It exited with this code.
    #[error("exit code {0}")]
    Code(i32),
    /// A signal killed it.
    #[error("signal {0}")]
    Signal(i32),
    /// The launcher reported neither.
    #[error("unknown status")]
    Unknown,
    /// Its launcher's connection closed.
    #[error("launcher disconnected")]
    LauncherLost,
}

/// Why a swap request was refused (nothing was changed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// One swap at a time.
    #[error(
        "swap #{id} to slot {to} is already in progress ({}); one swap at a time",
        phase_words(.phase)
    )]
    InProgress {
        /// The running swap.
        id: u64,
        /// Its target.
        to: String,
        /// Its phase.
        phase: Phase,
    },
    /// The sockets are not held yet.
    #[error("the sidecar is still recovering its sockets")]
    Recovering,
    /// The named slot has no launcher.
    #[error("no launcher is connected for slot {0:?}")]
    NoLauncher(String),
    /// The named slot runs an app.
    #[error("slot {slot:?} is not idle: it runs pid {pid} ({})", activity(.active))]
    NotIdle {
        /// The slot.
        slot: String,
        /// Its app's pid.
        pid: u32,
        /// Whether it is the active slot (else it is stopping or starting).
        active: bool,
    },
    /// Every slot runs an app.
    #[error("no idle slot: connect a standby launcher first")]
    NoIdleSlot,
    /// No target named, and more than one is idle.
    #[error("several idle slots {0:?}: name one with --to")]
    SeveralIdle(Vec<String>),
    /// In a hot-swap pod, the launchers' claims choose the slot that serves.
    #[error(
        "slot {slot:?} is not the slot the launchers' claims want serving ({}); in a hot-swap pod the controller chooses it",
        .wanted.as_deref().unwrap_or("none")
    )]
    NotWanted {
        /// The slot asked for.
        slot: String,
        /// The wanted slot, if any.
        wanted: Option<String>,
    },
}

fn phase_words(p: &Phase) -> &'static str {
    match p {
        Phase::Starting => "starting the new version",
        Phase::Draining { .. } => "draining the old version",
    }
}

fn activity(active: &bool) -> &'static str {
    if *active { "active" } else { "stopping" }
}

/// One swap, as the machine reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwapReport {
    /// Sequence number, from 1.
    pub id: u64,
    /// Old slot (none if nothing was serving).
    pub from: Option<String>,
    /// New slot.
    pub to: String,
    /// Version label of the new slot.
    pub to_version: String,
    /// Where it stands.
    pub outcome: Outcome,
    /// Start of the new version to its readiness.
    pub ready: Option<Duration>,
    /// Drain signal to the old version's exit.
    pub drain: Option<Duration>,
    /// Whole swap.
    pub total: Option<Duration>,
}

/// The phase of a swap under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The new version was started; waiting for READY=1.
    Starting,
    /// The new version is active; the old one was told to drain at `since`.
    Draining {
        /// When the drain began.
        since: Instant,
    },
}
