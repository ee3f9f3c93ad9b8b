//! The IO side of recovery after a sidecar restart: checking and adopting the sockets that
//! launchers hand back, binding what nobody held, and the state file in the shared directory.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use super::{Machine, MachineError, Persisted};
use crate::agent::sockets::{Held, matches_spec};

impl Machine {
    /// Takes over the handed-back sockets that are configured and match their spec; returns
    /// their names. The others are closed.
    pub(super) fn adopt(&mut self, held: Vec<(String, OwnedFd)>) -> Vec<String> {
        let mut names = Vec::new();
        if self.sockets.is_some() {
            return names; // Already holding them: the launcher's copies are simply dropped here.
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
            names.push(name.clone());
            self.adopting.push(Held {
                name,
                spec: spec.addr.clone(),
                bound,
                fd,
                adopted: true,
            });
        }
        names
    }

    /// End of recovery: hold the adopted sockets, and bind those nobody handed back.
    pub(super) fn bind_missing(&mut self) -> Result<(), MachineError> {
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
        Ok(())
    }

    pub(super) fn save_state(&self, p: &Persisted) {
        let tmp = self.cfg.state_path.with_extension("tmp");
        let ok = serde_json::to_vec(p)
            .ok()
            .and_then(|b| std::fs::write(&tmp, b).ok())
            .and_then(|_| std::fs::rename(&tmp, &self.cfg.state_path).ok());
        if ok.is_none() {
            tracing::warn!(path = %self.cfg.state_path.display(), "could not save sidecar state");
        }
    }
}
