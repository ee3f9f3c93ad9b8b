//! What the machine shows and guards: the status document it publishes after every event, and
//! the watchdog that replaces a shared listener an app shut down.

use std::os::fd::AsFd;
use std::sync::Arc;

use super::Machine;
use crate::agent::sockets::{Held, ListenSpec, is_listening};
use crate::contract::status::{AppStatus, SlotStatus, SocketStatus, Status};

impl Machine {
    /// An app calling shutdown(2) on the shared listener stops it for every holder; put it
    /// back with listen(2) on the same socket (queued connections at that moment are lost).
    /// The watchdog. An app calling shutdown(2) on the shared listener stops it for every
    /// holder, and listen(2) on it again does not bring it back. So: bind a fresh socket on the
    /// same address (possible now that nothing listens there), hold it instead, and swap to
    /// the idle slot so that the new socket gets into service. Connections queued on the dead
    /// socket at that moment are lost: that damage is the app's, it can only be contained.
    pub(super) fn check_listeners(&mut self) {
        let Some(socks) = self.sockets.clone() else {
            return;
        };
        if socks.iter().all(|h| is_listening(h.fd.as_fd())) {
            return;
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
                        return;
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
                    return;
                }
            }
        }
        self.sockets = Some(Arc::new(fresh));
        self.metrics.listener_repairs.inc();
        if self.swap.is_none() {
            match self.begin_swap(None) {
                Ok(()) => tracing::info!("swapping to the idle slot to serve the new socket"),
                Err(e) => {
                    tracing::error!(error = %e, "the new socket serves nobody until the next swap")
                }
            }
        }
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
            active_slot: self.active.clone(),
            slots: self
                .slots
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
            swap_in_progress: self.swap.as_ref().map(|s| s.record.clone()),
            last_swap: self.last_swap.clone(),
            swaps_succeeded: self.succeeded,
            swaps_failed: self.failed,
            recovering: self.recovering_until.is_some(),
            http_addr: self.http_addr.clone(),
            pid: std::process::id(),
        };
        match self.status.lock() {
            Ok(mut g) => *g = st,
            Err(p) => *p.into_inner() = st,
        }
    }
}
