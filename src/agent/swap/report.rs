//! What the machine shows and guards: the status document it publishes after every event, and
//! the watchdog that re-listens a shared listener an app shut down.

use std::os::fd::AsFd;

use super::Machine;
use crate::agent::sockets::is_listening;
use crate::agent::status::{AppStatus, SlotStatus, SocketStatus, Status};

impl Machine {
    /// An app calling shutdown(2) on the shared listener stops it for every holder; put it
    /// back with listen(2) on the same socket (queued connections at that moment are lost).
    pub(super) fn check_listeners(&mut self) {
        let Some(socks) = &self.sockets else { return };
        for h in socks.iter() {
            if !is_listening(h.fd.as_fd()) {
                tracing::error!(name = %h.name, "shared listener was shut down by a holder: re-listening");
                if let Ok(b) = nix::sys::socket::Backlog::new(self.cfg.backlog)
                    && nix::sys::socket::listen(&h.fd, b).is_ok()
                {
                    self.metrics.listener_repairs.inc();
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
