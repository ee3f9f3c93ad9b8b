//! Launchers registering, and the sidecar's recovery after its own restart: adopting the
//! sockets launchers hand back, binding what nobody held, and resolving which app is active.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{App, Machine, MachineError, Outgoing, Slot};
use crate::agent::sockets::{Held, matches_spec};
use crate::contract::protocol::{AppState, FromSidecar};

/// What survives a sidecar restart (in the shared directory).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Persisted {
    /// Socket names held.
    pub sockets: Vec<String>,
    /// Slots seen.
    pub slots: Vec<String>,
}

impl Machine {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_hello(
        &mut self,
        conn: u64,
        slot: String,
        pid: u32,
        version: String,
        app: Option<AppState>,
        held: Vec<(String, OwnedFd)>,
        tx: mpsc::UnboundedSender<Outgoing>,
    ) {
        if let Some(s) = self.slots.get(&slot) {
            let _ = tx.send(Outgoing {
                msg: FromSidecar::Error {
                    message: format!("slot {slot:?} already has a launcher (pid {})", s.pid),
                },
                fds: None,
                close: true,
            });
            return;
        }
        if !held.is_empty() {
            self.adopt(held);
        }
        let has_app = app.is_some();
        let app = app.map(|a| App {
            pid: a.pid,
            ready: a.ready,
            draining: a.draining,
            started_unix_ms: a.started_unix_ms,
        });
        tracing::info!(%slot, pid, %version, has_app, "launcher registered");
        self.slots.insert(
            slot.clone(),
            Slot {
                conn,
                pid,
                version,
                tx,
                app,
                last_active: None,
                starts: 0,
            },
        );
        self.conns.insert(conn, slot.clone());
        if !self.expected_slots.contains(&slot) {
            self.expected_slots.push(slot.clone());
            self.save_state();
        }
        if has_app {
            self.send(&slot, FromSidecar::Keep, false);
            if self.recovering_until.is_none() {
                self.resolve_running();
            }
        } else if self.recovering_until.is_some() {
            self.deferred.push(conn);
        } else {
            self.send(&slot, FromSidecar::Standby, false);
            self.ensure_serving();
        }
    }

    pub(super) fn adopt(&mut self, held: Vec<(String, OwnedFd)>) {
        if self.sockets.is_some() {
            return; // Already holding them: the launcher's copies are simply dropped here.
        }
        for (name, fd) in held {
            let Some(spec) = self.cfg.specs.iter().find(|s| s.name == name) else {
                tracing::warn!(%name, "launcher handed back a socket that is not configured; closed");
                continue;
            };
            if self.adopting.iter().any(|h| h.name == name) {
                continue;
            }
            if !matches_spec(fd.as_fd(), &spec.addr) {
                tracing::warn!(%name, "handed-back socket does not match its spec; closed");
                continue;
            }
            let bound = crate::agent::sockets::local_addr(fd.as_fd()).unwrap_or_default();
            tracing::info!(%name, %bound, "adopted socket from launcher");
            self.adopting.push(Held {
                name,
                spec: spec.addr.clone(),
                bound,
                fd,
                adopted: true,
            });
        }
    }

    pub(super) fn recovery_complete(&self) -> bool {
        self.recovering_until.is_some()
            && self
                .cfg
                .specs
                .iter()
                .all(|s| self.adopting.iter().any(|h| h.name == s.name))
            && self
                .expected_slots
                .iter()
                .all(|s| self.slots.contains_key(s))
    }

    pub(super) fn finish_recovery(&mut self) -> Result<(), MachineError> {
        let mut held = Vec::new();
        for spec in &self.cfg.specs {
            if let Some(i) = self.adopting.iter().position(|h| h.name == spec.name) {
                held.push(self.adopting.swap_remove(i));
            } else {
                tracing::info!(name = %spec.name, "no launcher handed it back: binding");
                held.push(
                    Held::bind(spec, self.cfg.backlog)
                        .map_err(|e| MachineError::Bind(spec.addr.to_string(), e))?,
                );
            }
        }
        self.adopting.clear();
        self.sockets = Some(Arc::new(held));
        self.recovering_until = None;
        self.save_state();
        tracing::info!("sockets recovered");
        for conn in std::mem::take(&mut self.deferred) {
            if let Some(slot) = self.conns.get(&conn).cloned() {
                self.send(&slot, FromSidecar::Standby, false);
            }
        }
        self.resolve_running();
        self.ensure_serving();
        Ok(())
    }

    /// After a restart: the newest ready app is active, older ready apps are drained (an
    /// interrupted swap completes), apps that never became ready are stopped.
    pub(super) fn resolve_running(&mut self) {
        let newest = self
            .slots
            .iter()
            .filter_map(|(n, s)| {
                s.app
                    .as_ref()
                    .filter(|a| a.ready && !a.draining)
                    .map(|a| (a.started_unix_ms, n.clone()))
            })
            .max();
        let Some((_, newest)) = newest else { return };
        if self.active.is_none() || self.swap.is_none() {
            self.active = Some(newest.clone());
        }
        if self.swap.is_some() {
            return;
        }
        let others: Vec<String> = self
            .slots
            .iter()
            .filter(|(n, s)| **n != newest && s.app.as_ref().is_some_and(|a| !a.draining))
            .map(|(n, _)| n.clone())
            .collect();
        for n in others {
            self.drain(&n);
        }
    }

    pub(super) fn save_state(&self) {
        let p = Persisted {
            sockets: self.cfg.specs.iter().map(|s| s.name.clone()).collect(),
            slots: self.expected_slots.clone(),
        };
        let tmp = self.cfg.state_path.with_extension("tmp");
        let ok = serde_json::to_vec(&p)
            .ok()
            .and_then(|b| std::fs::write(&tmp, b).ok())
            .and_then(|_| std::fs::rename(&tmp, &self.cfg.state_path).ok());
        if ok.is_none() {
            tracing::warn!(path = %self.cfg.state_path.display(), "could not save sidecar state");
        }
    }
}
