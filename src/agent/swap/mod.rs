//! The sidecar's swap driver: one task that owns the sockets, the launchers' connections and
//! the pending `ctl swap` answers, feeds what happens to the sans-IO [`machine::Core`] (with
//! the time) and performs the commands it returns: messages to launchers, socket adoption and
//! binding, the state file, answers, metrics, and the status document.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;

pub mod machine;
mod recovery;
mod report;

pub use machine::Persisted;
use machine::{Command, Core, Now};
pub use recovery::{FAILED_PREFIX, read_failed};

use super::sockets::{Held, ListenSpec};
use super::status::{Metrics, SharedReadiness, SharedStatus};
use crate::contract::pod::Claim;
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

/// Input of the driver.
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
        /// Its claim, in a hot-swap pod.
        claim: Option<Claim>,
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
    /// Claim generations whose swap failed (the markers found in the run directory).
    pub failed_generations: BTreeSet<u64>,
}

/// The driver. Create with [`Machine::new`], run with [`Machine::run`].
pub struct Machine {
    core: Core,
    cfg: MachineConfig,
    sockets: Option<Arc<Vec<Held>>>,
    adopting: Vec<Held>,
    links: HashMap<u64, mpsc::UnboundedSender<Outgoing>>,
    handed_back: HashMap<u64, Vec<(String, OwnedFd)>>,
    waiters: HashMap<u64, oneshot::Sender<Result<SwapRecord, String>>>,
    next_request: u64,
    metrics: Metrics,
    status: SharedStatus,
    readiness: SharedReadiness,
    http_addr: Option<String>,
}

/// Fatal machine errors.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// A socket no launcher handed back could not be bound.
    #[error("binding {0} after recovery: {1}")]
    Bind(String, std::io::Error),
}

fn now() -> Now {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Now {
        at: Instant::now(),
        unix_ms,
    }
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
        readiness: SharedReadiness,
        http_addr: Option<String>,
    ) -> Self {
        let core_cfg = machine::Config {
            sockets: cfg.specs.iter().map(|s| s.name.clone()).collect(),
            drain_signal: cfg.drain_signal,
            drain_timeout: cfg.drain_timeout,
            ready_timeout: cfg.ready_timeout,
            recover_timeout: cfg.recover_timeout,
            failed_generations: cfg.failed_generations.clone(),
        };
        let (core, first) = Core::new(core_cfg, sockets.is_none(), expected_slots, now());
        let m = Machine {
            core,
            cfg,
            sockets: sockets.map(Arc::new),
            adopting: Vec::new(),
            links: HashMap::new(),
            handed_back: HashMap::new(),
            waiters: HashMap::new(),
            next_request: 1,
            metrics,
            status,
            readiness,
            http_addr,
        };
        for c in first {
            if let Command::Persist(p) = c {
                m.save_state(&p);
            }
        }
        m
    }

    /// Runs until the event channel closes, or a fatal error.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Event>) -> Result<(), MachineError> {
        let mut watchdog = tokio::time::interval(Duration::from_millis(250));
        loop {
            self.publish();
            let deadline = self.core.next_deadline();
            tokio::select! {
                ev = rx.recv() => match ev {
                    None => return Ok(()),
                    Some(ev) => self.on_event(ev)?,
                },
                _ = sleep_until(deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)).into()) => {
                    self.feed(machine::Event::Tick)?;
                }
                _ = watchdog.tick() => {
                    if self.check_listeners() {
                        self.feed(machine::Event::ListenersReplaced)?;
                    }
                }
            }
        }
    }

    fn on_event(&mut self, ev: Event) -> Result<(), MachineError> {
        let ev = match ev {
            Event::Hello {
                conn,
                slot,
                pid,
                version,
                app,
                held,
                claim,
                tx,
            } => {
                self.links.insert(conn, tx);
                let hands_back = !held.is_empty();
                if hands_back {
                    self.handed_back.insert(conn, held);
                }
                let r = self.feed(machine::Event::Hello(machine::Hello {
                    conn,
                    slot,
                    pid,
                    version,
                    app,
                    hands_back,
                    claim,
                }));
                // Sockets not adopted (a rejected launcher, or already holding) are closed.
                self.handed_back.remove(&conn);
                return r;
            }
            Event::Launcher { conn, msg } => match msg {
                ToSidecar::Started { pid } => machine::Event::Started { conn, pid },
                ToSidecar::Ready { pid } => machine::Event::Ready { conn, pid },
                ToSidecar::Exited { pid, code, signal } => machine::Event::Exited {
                    conn,
                    pid,
                    code,
                    signal,
                },
                _ => return Ok(()),
            },
            Event::Gone { conn } => {
                self.links.remove(&conn);
                machine::Event::Gone { conn }
            }
            Event::Swap { to, reply } => {
                let request = self.next_request;
                self.next_request += 1;
                self.waiters.insert(request, reply);
                machine::Event::SwapRequested { request, to }
            }
        };
        self.feed(ev)
    }

    /// Feeds an event to the core and performs its commands, and those of the events the
    /// commands produce.
    fn feed(&mut self, ev: machine::Event) -> Result<(), MachineError> {
        let mut queue = VecDeque::from([ev]);
        while let Some(ev) = queue.pop_front() {
            for cmd in self.core.handle(now(), ev) {
                if let Some(next) = self.perform(cmd)? {
                    queue.push_back(next);
                }
            }
        }
        Ok(())
    }

    fn send(&mut self, conn: u64, msg: FromSidecar, fds: bool, close: bool) {
        let fds = if fds { self.sockets.clone() } else { None };
        if let Some(tx) = self.links.get(&conn) {
            let _ = tx.send(Outgoing { msg, fds, close });
        }
    }

    fn perform(&mut self, cmd: Command) -> Result<Option<machine::Event>, MachineError> {
        match cmd {
            Command::Start { conn, sockets, .. } => {
                self.send(conn, FromSidecar::Start { names: sockets }, true, false)
            }
            Command::Drain {
                conn,
                signal,
                timeout,
                ..
            } => {
                let timeout_ms = timeout.as_millis() as u64;
                self.send(
                    conn,
                    FromSidecar::Drain { signal, timeout_ms },
                    false,
                    false,
                );
            }
            Command::Standby { conn } => self.send(conn, FromSidecar::Standby, false, false),
            Command::Keep { conn } => self.send(conn, FromSidecar::Keep, false, false),
            Command::Reject { conn, message } => {
                self.send(conn, FromSidecar::Error { message }, false, true);
                self.links.remove(&conn);
            }
            Command::Adopt { conn } => {
                let held = self.handed_back.remove(&conn).unwrap_or_default();
                let names = self.adopt(held);
                return Ok(Some(machine::Event::Adopted { names }));
            }
            Command::BindMissing => {
                self.bind_missing()?;
                return Ok(Some(machine::Event::SocketsReady));
            }
            Command::Persist(p) => self.save_state(&p),
            Command::Reply { request, outcome } => {
                if let Some(w) = self.waiters.remove(&request) {
                    let _ = w.send(
                        outcome
                            .map(|r| report::record(&r))
                            .map_err(|e| e.to_string()),
                    );
                }
            }
            Command::Finished(r) => self.observe(&r),
            Command::SwapFailed {
                conn,
                slot,
                generation,
                reason,
            } => {
                self.mark_failed(&slot, generation, &reason);
                if let Some(conn) = conn {
                    let msg = FromSidecar::SwapFailed { generation, reason };
                    self.send(conn, msg, false, false);
                }
            }
        }
        Ok(None)
    }
}
