//! The sidecar's brain: the registry of slots (launchers) and the swap state machine, run as
//! one task that owns all state and reacts to events from connections, `ctl` and timers.
//!
//! A swap: Start the target slot on the shared sockets -> wait for its readiness (deadline
//! `ready_timeout`) -> only then Drain the old slot -> done when the old app exited. A target
//! that exits or misses the deadline is stopped and the swap fails; the old slot is untouched.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;

mod recovery;
mod report;
mod request;

pub use recovery::Persisted;

use super::sockets::{Held, ListenSpec};
use super::status::{Metrics, SharedStatus};
use crate::contract::protocol::{AppState, FromSidecar, ToSidecar};
use crate::contract::status::SwapRecord;

/// A message for one launcher's connection task.
pub struct Outgoing {
    /// The message.
    pub msg: FromSidecar,
    /// Sockets to attach (for `start`).
    pub fds: Option<Arc<Vec<Held>>>,
    /// Close the connection after sending.
    pub close: bool,
}

/// Input of the machine.
pub enum Event {
    /// A launcher said hello on connection `conn`.
    Hello {
        /// Connection id.
        conn: u64,
        /// Slot name.
        slot: String,
        /// Launcher pid (from SO_PEERCRED).
        pid: u32,
        /// Version label.
        version: String,
        /// Running app, on reconnect.
        app: Option<AppState>,
        /// Sockets handed back, on reconnect.
        held: Vec<(String, OwnedFd)>,
        /// Channel to the connection.
        tx: mpsc::UnboundedSender<Outgoing>,
    },
    /// A launcher reported something.
    Launcher {
        /// Connection id.
        conn: u64,
        /// The report.
        msg: ToSidecar,
    },
    /// A launcher's connection closed.
    Gone {
        /// Connection id.
        conn: u64,
    },
    /// `ctl swap`.
    Swap {
        /// Target slot.
        to: Option<String>,
        /// Answer when the swap finished (or was refused).
        reply: oneshot::Sender<Result<SwapRecord, String>>,
    },
}

/// Settings of the machine.
#[derive(Clone, Debug)]
pub struct MachineConfig {
    /// Sockets to hold.
    pub specs: Vec<ListenSpec>,
    /// listen(2) backlog.
    pub backlog: i32,
    /// Signal that tells an app to drain.
    pub drain_signal: i32,
    /// Grace before SIGKILL.
    pub drain_timeout: Duration,
    /// Deadline for a new version's readiness.
    pub ready_timeout: Duration,
    /// How long to wait for launchers to hand sockets back after a restart.
    pub recover_timeout: Duration,
    /// Where to remember socket and slot names across sidecar restarts.
    pub state_path: PathBuf,
}

struct App {
    pid: u32,
    ready: bool,
    draining: bool,
    started_unix_ms: u64,
}

struct Slot {
    conn: u64,
    pid: u32,
    version: String,
    tx: mpsc::UnboundedSender<Outgoing>,
    app: Option<App>,
    last_active: Option<Instant>,
    starts: u64,
}

enum Phase {
    Starting,
    Draining { since: Instant },
}

struct Swap {
    record: SwapRecord,
    started: Instant,
    deadline: Instant,
    phase: Phase,
    waiters: Vec<oneshot::Sender<Result<SwapRecord, String>>>,
}

/// The machine. Create with [`Machine::new`], drive with [`Machine::run`].
pub struct Machine {
    cfg: MachineConfig,
    sockets: Option<Arc<Vec<Held>>>,
    adopting: Vec<Held>,
    recovering_until: Option<Instant>,
    expected_slots: Vec<String>,
    deferred: Vec<u64>,
    slots: BTreeMap<String, Slot>,
    conns: HashMap<u64, String>,
    active: Option<String>,
    swap: Option<Swap>,
    next_swap_id: u64,
    last_swap: Option<SwapRecord>,
    succeeded: u64,
    failed: u64,
    ensure_at: Option<Instant>,
    metrics: Metrics,
    status: SharedStatus,
    http_addr: Option<String>,
}

/// Fatal machine errors.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// A socket no launcher handed back could not be bound.
    #[error("binding {0} after recovery: {1}")]
    Bind(String, std::io::Error),
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Machine {
    /// A machine holding `sockets`, or, when `None`, recovering them from launchers (the
    /// sidecar restarted) for at most `recover_timeout`, expecting `expected_slots` back.
    pub fn new(
        cfg: MachineConfig,
        sockets: Option<Vec<Held>>,
        expected_slots: Vec<String>,
        metrics: Metrics,
        status: SharedStatus,
        http_addr: Option<String>,
    ) -> Self {
        let recovering_until = sockets
            .is_none()
            .then(|| Instant::now() + cfg.recover_timeout);
        let m = Machine {
            cfg,
            sockets: sockets.map(Arc::new),
            adopting: Vec::new(),
            recovering_until,
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
            metrics,
            status,
            http_addr,
        };
        m.save_state();
        m
    }

    /// Runs until the event channel closes, or a fatal error.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Event>) -> Result<(), MachineError> {
        let mut watchdog = tokio::time::interval(Duration::from_millis(250));
        loop {
            self.publish();
            let deadline = self.next_deadline();
            tokio::select! {
                ev = rx.recv() => match ev {
                    None => return Ok(()),
                    Some(ev) => self.handle(ev),
                },
                _ = sleep_until(deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)).into()) => {
                    self.on_timer()?;
                }
                _ = watchdog.tick() => self.check_listeners(),
            }
            if self.recovery_complete() {
                self.finish_recovery()?;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.swap.as_ref().map(|s| s.deadline),
            self.recovering_until,
            self.ensure_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Hello {
                conn,
                slot,
                pid,
                version,
                app,
                held,
                tx,
            } => self.on_hello(conn, slot, pid, version, app, held, tx),
            Event::Launcher { conn, msg } => self.on_report(conn, msg),
            Event::Gone { conn } => self.on_gone(conn),
            Event::Swap { to, reply } => self.on_swap(to, reply),
        }
    }

    fn send(&self, slot: &str, msg: FromSidecar, fds: bool) {
        if let Some(s) = self.slots.get(slot) {
            let fds = if fds { self.sockets.clone() } else { None };
            let _ = s.tx.send(Outgoing {
                msg,
                fds,
                close: false,
            });
        }
    }

    fn drain(&mut self, slot: &str) {
        let msg = FromSidecar::Drain {
            signal: self.cfg.drain_signal,
            timeout_ms: ms(self.cfg.drain_timeout),
        };
        self.send(slot, msg, false);
        if let Some(app) = self.slots.get_mut(slot).and_then(|s| s.app.as_mut()) {
            app.draining = true;
        }
    }

    fn start(&mut self, slot: &str) {
        self.send(
            slot,
            FromSidecar::Start {
                names: self.socket_names(),
            },
            true,
        );
        if let Some(s) = self.slots.get_mut(slot) {
            s.starts += 1;
            s.app = Some(App {
                pid: 0,
                ready: false,
                draining: false,
                started_unix_ms: unix_ms(),
            });
        }
    }

    fn socket_names(&self) -> Vec<String> {
        self.sockets
            .as_ref()
            .map(|v| v.iter().map(|h| h.name.clone()).collect())
            .unwrap_or_default()
    }

    /// When nothing runs (first start, or the serving app died), start an idle slot: the one
    /// active most recently, else the first by name.
    fn ensure_serving(&mut self) {
        self.ensure_at = None;
        if self.sockets.is_none() || self.swap.is_some() {
            return;
        }
        if self.slots.values().any(|s| s.app.is_some()) {
            return;
        }
        let pick = self
            .slots
            .iter()
            .max_by(|a, b| a.1.last_active.cmp(&b.1.last_active).then(b.0.cmp(a.0)))
            .map(|(n, _)| n.clone());
        if let Some(slot) = pick {
            tracing::info!(%slot, "nothing serving: starting slot");
            self.start(&slot);
        }
    }

    fn on_report(&mut self, conn: u64, msg: ToSidecar) {
        let Some(slot) = self.conns.get(&conn).cloned() else {
            return;
        };
        match msg {
            ToSidecar::Started { pid } => {
                if let Some(app) = self.slots.get_mut(&slot).and_then(|s| s.app.as_mut()) {
                    app.pid = pid;
                }
            }
            ToSidecar::Ready { pid } => self.on_ready(&slot, pid),
            ToSidecar::Exited { pid, code, signal } => self.on_exited(&slot, pid, code, signal),
            _ => {}
        }
    }

    fn on_ready(&mut self, slot: &str, pid: u32) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        let Some(app) = s.app.as_mut() else { return };
        if app.draining {
            return; // A stopped version does not get traffic back by becoming ready late.
        }
        app.ready = true;
        if app.pid == 0 {
            app.pid = pid;
        }
        s.last_active = Some(Instant::now());
        tracing::info!(%slot, pid, "app ready");
        let swap_target = self
            .swap
            .as_ref()
            .is_some_and(|sw| sw.record.to == slot && matches!(sw.phase, Phase::Starting));
        if !swap_target {
            if self
                .active
                .as_ref()
                .is_none_or(|a| self.slots.get(a).is_none_or(|s| s.app.is_none()))
            {
                self.active = Some(slot.to_owned());
            }
            return;
        }
        self.active = Some(slot.to_owned());
        let Some(sw) = self.swap.as_mut() else { return };
        sw.record.ready_ms = Some(ms(sw.started.elapsed()));
        let from = sw.record.from.clone();
        let old_running = from
            .as_ref()
            .and_then(|f| self.slots.get(f))
            .is_some_and(|s| s.app.is_some());
        if let (Some(from), true) = (from, old_running) {
            let now = Instant::now();
            if let Some(sw) = self.swap.as_mut() {
                sw.phase = Phase::Draining { since: now };
                // The launcher SIGKILLs at drain_timeout; this is only a backstop.
                sw.deadline = now + self.cfg.drain_timeout + Duration::from_secs(5);
            }
            self.drain(&from);
        } else {
            self.finish(None);
        }
    }

    fn on_exited(&mut self, slot: &str, pid: u32, code: Option<i32>, signal: Option<i32>) {
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        let was = s.app.take();
        tracing::info!(%slot, pid, ?code, ?signal, "app exited");
        let how = match (code, signal) {
            (Some(c), _) => format!("exit code {c}"),
            (_, Some(sig)) => format!("signal {sig}"),
            _ => "unknown status".into(),
        };
        self.after_exit(slot, was.is_some_and(|a| a.draining), &how);
    }

    fn after_exit(&mut self, slot: &str, drained: bool, how: &str) {
        if let Some(sw) = &self.swap {
            match sw.phase {
                Phase::Starting if sw.record.to == slot => {
                    let err = format!(
                        "new version in slot {slot} exited before it was ready ({how}); old version kept serving"
                    );
                    if self.active.as_deref() == Some(slot) {
                        self.active = sw.record.from.clone();
                    }
                    self.finish(Some(err));
                    return;
                }
                Phase::Draining { since } if sw.record.from.as_deref() == Some(slot) => {
                    let d = since.elapsed();
                    self.metrics.drain_seconds.observe(d.as_secs_f64());
                    if let Some(sw) = self.swap.as_mut() {
                        sw.record.drain_ms = Some(ms(d));
                    }
                    self.finish(None);
                    return;
                }
                _ => {}
            }
        }
        if self.active.as_deref() == Some(slot) && !drained {
            tracing::warn!(%slot, how, "serving app exited unexpectedly");
            self.active = None;
            self.ensure_at = Some(Instant::now() + Duration::from_millis(500));
        }
    }

    fn on_gone(&mut self, conn: u64) {
        let Some(slot) = self.conns.remove(&conn) else {
            return;
        };
        self.deferred.retain(|c| *c != conn);
        if self.slots.get(&slot).is_some_and(|s| s.conn == conn) {
            let s = self.slots.remove(&slot);
            tracing::warn!(%slot, "launcher disconnected");
            let drained = s.and_then(|s| s.app).is_some_and(|a| a.draining);
            self.after_exit(&slot, drained, "launcher disconnected");
        }
    }

    fn on_timer(&mut self) -> Result<(), MachineError> {
        let now = Instant::now();
        if self.recovering_until.is_some_and(|t| t <= now) {
            tracing::warn!("recovery timeout: not every launcher came back");
            self.finish_recovery()?;
        }
        if self.ensure_at.is_some_and(|t| t <= now) {
            self.ensure_serving();
        }
        let Some(sw) = &self.swap else { return Ok(()) };
        if sw.deadline > now {
            return Ok(());
        }
        match sw.phase {
            Phase::Starting => {
                let to = sw.record.to.clone();
                let err = format!(
                    "new version in slot {to} was not ready within {}s; stopped it, old version kept serving",
                    self.cfg.ready_timeout.as_secs_f64()
                );
                if self.slots.get(&to).is_some_and(|s| s.app.is_some()) {
                    self.drain(&to);
                }
                self.finish(Some(err));
            }
            Phase::Draining { .. } => {
                self.finish(Some(
                    "old version did not exit after its drain timeout".into(),
                ));
            }
        }
        Ok(())
    }
}
