//! The swap state machine without IO: it owns every decision about slots, swaps, timeouts and
//! recovery, is fed [`Event`]s with the time passed in, and answers with [`Command`]s that the
//! async driver (`super::Machine`) performs. No channels, clocks, files or sockets in here.
//!
//! A swap: Start the target slot on the shared sockets -> wait for its readiness (deadline
//! `ready_timeout`) -> only then Drain the old slot -> done when the old app exited. A target
//! that exits or misses the deadline is stopped and the swap fails; the old slot is untouched.
//!
//! In a hot-swap pod, launchers carry claims ([`Claim`]) and the claims decide which slot
//! serves (*pod mode*, `claims.rs`); elsewhere `ctl swap` does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::contract::pod::Claim;
/// An app running in a slot: what its launcher reports (the contract's type, also the
/// machine's view of it).
pub use crate::contract::protocol::AppState;
pub use outcome::{Exit, Failure, Outcome, Phase, Refusal, SwapReport};

mod claims;
mod outcome;
mod recovery;
mod swap;
#[cfg(test)]
mod tests;

/// Settings of the machine.
#[derive(Clone, Debug)]
pub struct Config {
    /// Names of the sockets to hold, in the order they are passed to apps.
    pub sockets: Vec<String>,
    /// Signal that tells an app to drain.
    pub drain_signal: i32,
    /// Grace before the launcher SIGKILLs a draining app.
    pub drain_timeout: Duration,
    /// Deadline for a new version's readiness.
    pub ready_timeout: Duration,
    /// How long to wait for launchers to hand sockets back after a sidecar restart.
    pub recover_timeout: Duration,
    /// Claim generations whose swap failed before this sidecar started (its markers in the
    /// run directory): a launcher claiming one of them stays standby.
    pub failed_generations: BTreeSet<u64>,
}

/// The time an event happens at: monotonic for deadlines, wall clock (Unix ms) for the start
/// times that launchers report back after a sidecar restart.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// Monotonic time.
    pub at: Instant,
    /// Wall clock, milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

/// A slot: one connected launcher, and its app if one runs.
#[derive(Clone, Debug)]
pub struct SlotInfo {
    /// Connection of its launcher.
    pub conn: u64,
    /// Launcher pid.
    pub pid: u32,
    /// Version label of the launcher's app.
    pub version: String,
    /// The running app.
    pub app: Option<AppState>,
    /// When its app last became ready.
    pub last_active: Option<Instant>,
    /// Apps started in it by this sidecar.
    pub starts: u64,
    /// Its launcher's claim, in a hot-swap pod.
    pub claim: Option<Claim>,
}

/// A launcher's hello on connection `conn`.
#[derive(Clone, Debug)]
pub struct Hello {
    /// Connection id.
    pub conn: u64,
    /// Slot name.
    pub slot: String,
    /// Launcher pid.
    pub pid: u32,
    /// Version label.
    pub version: String,
    /// Its running app, on reconnect.
    pub app: Option<AppState>,
    /// It handed sockets back (after a sidecar restart).
    pub hands_back: bool,
    /// Its claim, in a hot-swap pod.
    pub claim: Option<Claim>,
}

/// Input of the machine.
#[derive(Clone, Debug)]
pub enum Event {
    /// A launcher said hello.
    Hello(Hello),
    /// A launcher started its app.
    Started {
        /// Connection id.
        conn: u64,
        /// App pid.
        pid: u32,
    },
    /// A launcher's app said READY=1.
    Ready {
        /// Connection id.
        conn: u64,
        /// App pid.
        pid: u32,
    },
    /// A launcher's app exited.
    Exited {
        /// Connection id.
        conn: u64,
        /// App pid.
        pid: u32,
        /// Exit code.
        code: Option<i32>,
        /// Killing signal.
        signal: Option<i32>,
    },
    /// A launcher's connection closed.
    Gone {
        /// Connection id.
        conn: u64,
    },
    /// `ctl swap`; answered by a [`Command::Reply`] with the same `request`.
    SwapRequested {
        /// Id chosen by the driver.
        request: u64,
        /// Target slot.
        to: Option<String>,
    },
    /// The driver took these sockets over after a [`Command::Adopt`] (they passed its checks).
    Adopted {
        /// Socket names.
        names: Vec<String>,
    },
    /// The driver holds every socket now, after a [`Command::BindMissing`].
    SocketsReady,
    /// The driver replaced a listener that an app shut down: a swap puts it into service.
    ListenersReplaced,
    /// Time passed (a deadline from [`Core::next_deadline`] may be due).
    Tick,
}

/// Output of the machine, performed by the driver in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Tell the launcher of `slot` to start its app on the sockets (attached).
    Start {
        /// Launcher connection.
        conn: u64,
        /// Its slot.
        slot: String,
        /// Socket names, in order.
        sockets: Vec<String>,
    },
    /// Tell the launcher of `slot` to drain its app (signal, then SIGKILL after `timeout`).
    Drain {
        /// Launcher connection.
        conn: u64,
        /// Its slot.
        slot: String,
        /// Drain signal.
        signal: i32,
        /// Grace before SIGKILL.
        timeout: Duration,
    },
    /// Tell a launcher to wait idle.
    Standby {
        /// Launcher connection.
        conn: u64,
    },
    /// Tell a reconnected launcher to keep its app running.
    Keep {
        /// Launcher connection.
        conn: u64,
    },
    /// Answer a launcher with an error and close its connection.
    Reject {
        /// Launcher connection.
        conn: u64,
        /// Why.
        message: String,
    },
    /// Take over the sockets this connection handed back; answer with [`Event::Adopted`].
    Adopt {
        /// Launcher connection.
        conn: u64,
    },
    /// Recovery ends: bind every socket nobody handed back; answer with [`Event::SocketsReady`].
    BindMissing,
    /// Write what must survive a sidecar restart.
    Persist(Persisted),
    /// Answer a swap request.
    Reply {
        /// The request's id.
        request: u64,
        /// The finished swap, or why it was refused.
        outcome: Result<SwapReport, Refusal>,
    },
    /// A swap ended (for metrics and logs).
    Finished(SwapReport),
    /// A swap to a claimed slot failed: remember `generation` in the run directory (so the
    /// restarted launcher stays standby), then tell the launcher, if still connected.
    SwapFailed {
        /// Launcher connection, if still open.
        conn: Option<u64>,
        /// The slot.
        slot: String,
        /// The claim's generation.
        generation: u64,
        /// Why (the failure in words).
        reason: String,
    },
}

/// What survives a sidecar restart (in the shared directory).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persisted {
    /// Socket names held.
    pub sockets: Vec<String>,
    /// Slots seen.
    pub slots: Vec<String>,
}

struct Swap {
    report: SwapReport,
    started: Instant,
    deadline: Instant,
    phase: Phase,
    requests: Vec<u64>,
    /// The generation of the target's claim, when it claimed to serve (pod mode).
    claim_generation: Option<u64>,
}

/// The machine. Create with [`Core::new`], feed with [`Core::handle`].
pub struct Core {
    cfg: Config,
    held: bool,
    recovering_until: Option<Instant>,
    adopted: Vec<String>,
    expected_slots: Vec<String>,
    deferred: Vec<u64>,
    slots: BTreeMap<String, SlotInfo>,
    conns: HashMap<u64, String>,
    active: Option<String>,
    swap: Option<Swap>,
    next_swap_id: u64,
    last_swap: Option<SwapReport>,
    succeeded: u64,
    failed: u64,
    ensure_at: Option<Instant>,
    /// Pod mode: a launcher with a claim was seen.
    pod: bool,
    /// Generations of the claims to serve seen, and those whose swap failed.
    wanting_seen: BTreeSet<u64>,
    failed_generations: BTreeSet<u64>,
    out: Vec<Command>,
}

impl Core {
    /// A machine whose driver holds the sockets (`recovering == false`), or recovers them
    /// from launchers (the sidecar restarted), expecting `expected_slots` back. Returns the
    /// first commands (the state to persist).
    pub fn new(
        cfg: Config,
        recovering: bool,
        expected_slots: Vec<String>,
        now: Now,
    ) -> (Self, Vec<Command>) {
        let recovering_until = recovering.then(|| now.at + cfg.recover_timeout);
        let failed_generations = cfg.failed_generations.clone();
        let mut core = Core {
            cfg,
            held: !recovering,
            recovering_until,
            adopted: Vec::new(),
            expected_slots,
            deferred: Vec::new(),
            slots: BTreeMap::new(),
            conns: HashMap::new(),
            active: None,
            swap: None,
            next_swap_id: 1,
            last_swap: None,
            succeeded: 0,
            failed: 0,
            ensure_at: None,
            pod: !failed_generations.is_empty(),
            wanting_seen: BTreeSet::new(),
            failed_generations,
            out: Vec::new(),
        };
        core.persist();
        let cmds = std::mem::take(&mut core.out);
        (core, cmds)
    }

    /// Feeds one event that happened at `now`; returns what to do, in order.
    pub fn handle(&mut self, now: Now, ev: Event) -> Vec<Command> {
        match ev {
            Event::Hello(hello) => self.on_hello(now, hello),
            Event::Started { conn, pid } => {
                if let Some(app) = self.app_of_conn(conn) {
                    app.pid = pid;
                }
            }
            Event::Ready { conn, pid } => self.on_ready(now, conn, pid),
            Event::Exited {
                conn,
                pid,
                code,
                signal,
            } => self.on_exited(now, conn, pid, code, signal),
            Event::Gone { conn } => self.on_gone(now, conn),
            Event::SwapRequested { request, to } => self.on_swap(now, request, to),
            Event::Adopted { names } => self.on_adopted(names),
            Event::SocketsReady => self.on_sockets_ready(now),
            Event::ListenersReplaced => self.on_listeners_replaced(now),
            Event::Tick => self.on_tick(now),
        }
        if self.recovery_complete() {
            self.finish_recovery();
        }
        self.follow_claims(now);
        std::mem::take(&mut self.out)
    }

    /// The earliest time at which a [`Event::Tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.swap.as_ref().map(|s| s.deadline),
            self.recovering_until,
            self.ensure_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The slots by name.
    pub fn slots(&self) -> &BTreeMap<String, SlotInfo> {
        &self.slots
    }

    /// The slot serving now (the last one to become ready).
    pub fn active(&self) -> Option<&str> {
        self.active.as_deref()
    }

    /// The swap under way, and its phase.
    pub fn swap_in_progress(&self) -> Option<(&SwapReport, Phase)> {
        self.swap.as_ref().map(|s| (&s.report, s.phase))
    }

    /// The last finished swap.
    pub fn last_swap(&self) -> Option<&SwapReport> {
        self.last_swap.as_ref()
    }

    /// Swaps that succeeded and that failed.
    pub fn counts(&self) -> (u64, u64) {
        (self.succeeded, self.failed)
    }

    /// Still waiting for launchers to hand sockets back.
    pub fn recovering(&self) -> bool {
        self.recovering_until.is_some()
    }

    fn app_of_conn(&mut self, conn: u64) -> Option<&mut AppState> {
        let slot = self.conns.get(&conn)?;
        self.slots.get_mut(slot)?.app.as_mut()
    }

    fn persist(&mut self) {
        self.out.push(Command::Persist(Persisted {
            sockets: self.cfg.sockets.clone(),
            slots: self.expected_slots.clone(),
        }));
    }

    fn drain(&mut self, slot: &str) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        self.out.push(Command::Drain {
            conn: s.conn,
            slot: slot.to_owned(),
            signal: self.cfg.drain_signal,
            timeout: self.cfg.drain_timeout,
        });
        if let Some(app) = s.app.as_mut() {
            app.draining = true;
        }
    }

    fn start(&mut self, now: Now, slot: &str) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        self.out.push(Command::Start {
            conn: s.conn,
            slot: slot.to_owned(),
            sockets: self.cfg.sockets.clone(),
        });
        s.starts += 1;
        s.app = Some(AppState {
            pid: 0,
            ready: false,
            draining: false,
            started_unix_ms: now.unix_ms,
        });
    }

    /// When nothing runs (first start, or the serving app died), start an idle slot: the one
    /// active most recently, else the first by name; in pod mode only the wanted slot.
    fn ensure_serving(&mut self, now: Now) {
        self.ensure_at = None;
        if !self.held || self.swap.is_some() {
            return;
        }
        if self.slots.values().any(|s| s.app.is_some()) {
            return;
        }
        if self.pod {
            if let Some(slot) = self.wanted().map(str::to_owned) {
                tracing::info!(%slot, "nothing serving: starting the wanted slot");
                self.start(now, &slot);
            }
            return;
        }
        let pick = self
            .slots
            .iter()
            .max_by(|a, b| a.1.last_active.cmp(&b.1.last_active).then(b.0.cmp(a.0)))
            .map(|(n, _)| n.clone());
        if let Some(slot) = pick {
            tracing::info!(%slot, "nothing serving: starting slot");
            self.start(now, &slot);
        }
    }

    fn on_tick(&mut self, now: Now) {
        if self.recovering_until.is_some_and(|t| t <= now.at) {
            tracing::warn!("recovery timeout: not every launcher came back");
            self.finish_recovery();
        }
        if self.ensure_at.is_some_and(|t| t <= now.at) {
            self.ensure_serving(now);
        }
        self.on_swap_deadline(now);
    }
}
