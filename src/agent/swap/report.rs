//! What the driver shows and guards: the status document it publishes after every event, the
//! swap record and metrics made from the core's reports, and the watchdog that replaces a
//! shared listener an app shut down.

use std::os::fd::AsFd;
use std::sync::Arc;

use super::Machine;
use super::machine::{Outcome, SwapReport};
use crate::agent::sockets::{Held, ListenSpec, is_listening};
use crate::agent::status::{ResultLabel, slot_readiness};
use crate::contract::pod::Slot;
use crate::contract::status::{
    AppStatus, SlotStatus, SocketStatus, Status, SwapRecord, SwapResult,
};

fn ms(d: std::time::Duration) -> u64 {
    d.as_millis() as u64
}

/// The contract's result of a swap the core reports.
fn result(o: &Outcome) -> SwapResult {
    match o {
        Outcome::Running => SwapResult::Running,
        Outcome::Succeeded => SwapResult::Succeeded,
        Outcome::Failed(_) => SwapResult::Failed,
    }
}

/// The wire record of a swap (the one place the core's report becomes [`SwapRecord`]).
pub(super) fn record(r: &SwapReport) -> SwapRecord {
    let error = match &r.outcome {
        Outcome::Failed(e) => Some(e.to_string()),
        Outcome::Running | Outcome::Succeeded => None,
    };
    SwapRecord {
        id: r.id,
        from: r.from.clone(),
        to: r.to.clone(),
        to_version: r.to_version.clone(),
        result: result(&r.outcome),
        error,
        ready_ms: r.ready.map(ms),
        drain_ms: r.drain.map(ms),
        total_ms: r.total.map(ms),
    }
}

impl Machine {
    /// Metrics of a finished swap.
    pub(super) fn observe(&self, r: &SwapReport) {
        if let Some(d) = r.drain {
            self.metrics.drain_seconds.observe(d.as_secs_f64());
        }
        match r.outcome {
            Outcome::Running => return,
            Outcome::Succeeded => {
                if let Some(t) = r.total {
                    self.metrics.swap_seconds.observe(t.as_secs_f64());
                }
            }
            Outcome::Failed(_) => {}
        }
        self.metrics
            .swaps
            .get_or_create(&ResultLabel {
                result: result(&r.outcome),
            })
            .inc();
    }

    /// The watchdog. An app calling shutdown(2) on the shared listener stops it for every
    /// holder, and listen(2) on it again does not bring it back. So: bind a fresh socket on the
    /// same address (possible now that nothing listens there), hold it instead, and swap to
    /// the idle slot so that the new socket gets into service. Connections queued on the dead
    /// socket at that moment are lost: that damage is the app's, it can only be contained.
    /// Returns whether it replaced a listener (the core then swaps).
    pub(super) fn check_listeners(&mut self) -> bool {
        let Some(socks) = self.sockets.clone() else {
            return false;
        };
        if socks.iter().all(|h| is_listening(h.fd.as_fd())) {
            return false;
        }
        let mut fresh = Vec::with_capacity(socks.len());
        for h in socks.iter() {
            if is_listening(h.fd.as_fd()) {
                match h.fd.try_clone() {
                    Ok(fd) => fresh.push(Held {
                        name: h.name.clone(),
                        spec: h.spec.clone(),
                        bound: h.bound.clone(),
                        fd,
                        adopted: h.adopted,
                    }),
                    Err(e) => {
                        tracing::error!(error = %e, "dup of a held socket failed");
                        return false;
                    }
                }
                continue;
            }
            tracing::error!(name = %h.name, addr = %h.bound, "shared listener was shut down by a holder: binding a new one");
            let spec = format!("{}={}", h.name, h.bound).parse::<ListenSpec>();
            match spec
                .map_err(|e| e.to_string())
                .and_then(|s| Held::bind(&s, self.cfg.backlog).map_err(|e| e.to_string()))
            {
                Ok(n) => fresh.push(Held {
                    spec: h.spec.clone(),
                    ..n
                }),
                Err(e) => {
                    tracing::error!(name = %h.name, error = %e, "cannot bind a replacement yet; retrying");
                    return false;
                }
            }
        }
        self.sockets = Some(Arc::new(fresh));
        self.metrics.listener_repairs.inc();
        true
    }

    pub(super) fn publish(&self) {
        let sockets = match &self.sockets {
            Some(v) => v.iter().collect::<Vec<_>>(),
            None => self.adopting.iter().collect(),
        };
        self.metrics.sockets_held.set(sockets.len() as i64);
        let st = Status {
            sockets: sockets
                .iter()
                .map(|h| SocketStatus {
                    name: h.name.clone(),
                    addr: h.bound.clone(),
                    listening: is_listening(h.fd.as_fd()),
                    adopted: h.adopted,
                })
                .collect(),
            active_slot: self.core.active().map(str::to_owned),
            slots: self
                .core
                .slots()
                .iter()
                .map(|(n, s)| SlotStatus {
                    slot: n.clone(),
                    launcher_pid: s.pid,
                    version: s.version.clone(),
                    app: s.app.as_ref().map(|a| AppStatus {
                        pid: a.pid,
                        ready: a.ready,
                        draining: a.draining,
                    }),
                    starts: s.starts,
                })
                .collect(),
            swap_in_progress: self.core.swap_in_progress().map(|(r, _)| record(r)),
            last_swap: self.core.last_swap().map(record),
            swaps_succeeded: self.core.counts().0,
            swaps_failed: self.core.counts().1,
            recovering: self.core.recovering(),
            http_addr: self.http_addr.clone(),
            pid: std::process::id(),
        };
        let wanted = self.core.wanted();
        let readiness = Slot::ALL
            .into_iter()
            .map(|s| (s, slot_readiness(&st, wanted, s)))
            .collect();
        match self.readiness.lock() {
            Ok(mut g) => *g = readiness,
            Err(p) => *p.into_inner() = readiness,
        }
        match self.status.lock() {
            Ok(mut g) => *g = st,
            Err(p) => *p.into_inner() = st,
        }
    }
}
