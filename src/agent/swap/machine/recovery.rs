//! Launchers registering, and the recovery after a sidecar restart: which sockets came back,
//! when recovery ends, and which of the apps found running is active.

use super::{Command, Core, Hello, Now, SlotInfo};

impl Core {
    pub(super) fn on_hello(&mut self, now: Now, hello: Hello) {
        let Hello {
            conn,
            slot,
            pid,
            version,
            app,
            hands_back,
            claim,
        } = hello;
        if let Some(s) = self.slots.get(&slot) {
            self.out.push(Command::Reject {
                conn,
                message: format!("slot {slot:?} already has a launcher (pid {})", s.pid),
            });
            return;
        }
        if let Some(Err(message)) = claim.as_ref().map(|c| self.register_claim(&slot, c)) {
            self.out.push(Command::Reject { conn, message });
            return;
        }
        if hands_back && !self.held {
            self.out.push(Command::Adopt { conn });
        }
        let has_app = app.is_some();
        tracing::info!(%slot, pid, %version, has_app, "launcher registered");
        self.slots.insert(
            slot.clone(),
            SlotInfo {
                conn,
                pid,
                version,
                app,
                last_active: None,
                starts: 0,
                claim,
            },
        );
        self.conns.insert(conn, slot.clone());
        if !self.expected_slots.contains(&slot) {
            self.expected_slots.push(slot);
            self.persist();
        }
        if has_app {
            self.out.push(Command::Keep { conn });
            if self.recovering_until.is_none() {
                self.resolve_running();
            }
        } else if self.recovering_until.is_some() {
            self.deferred.push(conn);
        } else {
            self.out.push(Command::Standby { conn });
            self.ensure_serving(now);
        }
    }

    pub(super) fn on_adopted(&mut self, names: Vec<String>) {
        for n in names {
            if !self.adopted.contains(&n) {
                self.adopted.push(n);
            }
        }
    }

    pub(super) fn recovery_complete(&self) -> bool {
        self.recovering_until.is_some()
            && self.cfg.sockets.iter().all(|s| self.adopted.contains(s))
            && self
                .expected_slots
                .iter()
                .all(|s| self.slots.contains_key(s))
    }

    /// Recovery ends (everything came back, or its deadline passed): the driver binds what
    /// nobody handed back and answers with `SocketsReady`.
    pub(super) fn finish_recovery(&mut self) {
        if self.recovering_until.take().is_some() {
            self.out.push(Command::BindMissing);
        }
    }

    pub(super) fn on_sockets_ready(&mut self, now: Now) {
        if self.held {
            return;
        }
        self.held = true;
        self.recovering_until = None;
        self.adopted.clear();
        self.persist();
        tracing::info!("sockets recovered");
        for conn in std::mem::take(&mut self.deferred) {
            if self.conns.contains_key(&conn) {
                self.out.push(Command::Standby { conn });
            }
        }
        self.resolve_running();
        self.ensure_serving(now);
    }

    /// After a restart: the newest ready app is active, older ready apps are drained (an
    /// interrupted swap completes), apps that never became ready are stopped. When none is
    /// ready, the newest app is kept (it may still become ready) and the others are stopped.
    fn resolve_running(&mut self) {
        let newest = |ready: bool| {
            self.slots
                .iter()
                .filter_map(|(n, s)| {
                    s.app
                        .as_ref()
                        .filter(|a| (a.ready || !ready) && !a.draining)
                        .map(|a| (a.started_unix_ms, n.clone()))
                })
                .max()
                .map(|(_, n)| n)
        };
        let newest_ready = newest(true);
        let Some(keep) = newest_ready.clone().or_else(|| newest(false)) else {
            return;
        };
        if let Some(n) = newest_ready
            && (self.active.is_none() || self.swap.is_none())
        {
            self.active = Some(n);
        }
        if self.swap.is_some() {
            return;
        }
        let others: Vec<String> = self
            .slots
            .iter()
            .filter(|(n, s)| **n != keep && s.app.as_ref().is_some_and(|a| !a.draining))
            .map(|(n, _)| n.clone())
            .collect();
        for n in others {
            self.drain(&n);
        }
    }
}
