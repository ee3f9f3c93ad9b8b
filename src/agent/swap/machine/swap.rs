//! The swap itself: requests (one at a time, an idle target), readiness of the new version,
//! exits of either version, the two deadlines, and the final report.

use std::time::Duration;

use super::{Command, Core, Now, Outcome, Phase, Swap, SwapReport};

impl Core {
    pub(super) fn on_ready(&mut self, now: Now, conn: u64, pid: u32) {
        let Some(slot) = self.conns.get(&conn).cloned() else {
            return;
        };
        let Some(s) = self.slots.get_mut(&slot) else {
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
        s.last_active = Some(now.at);
        tracing::info!(%slot, pid, "app ready");
        let swap_target = self
            .swap
            .as_ref()
            .is_some_and(|sw| sw.report.to == slot && sw.phase == Phase::Starting);
        if !swap_target {
            if self
                .active
                .as_ref()
                .is_none_or(|a| self.slots.get(a).is_none_or(|s| s.app.is_none()))
            {
                self.active = Some(slot);
            }
            return;
        }
        self.active = Some(slot);
        let Some(sw) = self.swap.as_mut() else { return };
        sw.report.ready = Some(now.at.saturating_duration_since(sw.started));
        let from = sw.report.from.clone();
        let old_running = from
            .as_ref()
            .and_then(|f| self.slots.get(f))
            .is_some_and(|s| s.app.is_some());
        match from {
            Some(from) if old_running => {
                sw.phase = Phase::Draining { since: now.at };
                // The launcher SIGKILLs at drain_timeout; this is only a backstop.
                sw.deadline = now.at + self.cfg.drain_timeout + Duration::from_secs(5);
                self.drain(&from);
            }
            _ => self.finish(now, None),
        }
    }

    pub(super) fn on_exited(
        &mut self,
        now: Now,
        conn: u64,
        pid: u32,
        code: Option<i32>,
        signal: Option<i32>,
    ) {
        let Some(slot) = self.conns.get(&conn).cloned() else {
            return;
        };
        let Some(s) = self.slots.get_mut(&slot) else {
            return;
        };
        let was = s.app.take();
        tracing::info!(%slot, pid, ?code, ?signal, "app exited");
        let how = match (code, signal) {
            (Some(c), _) => format!("exit code {c}"),
            (_, Some(sig)) => format!("signal {sig}"),
            _ => "unknown status".into(),
        };
        self.after_exit(now, &slot, was.is_some_and(|a| a.draining), &how);
    }

    pub(super) fn on_gone(&mut self, now: Now, conn: u64) {
        let Some(slot) = self.conns.remove(&conn) else {
            return;
        };
        self.deferred.retain(|c| *c != conn);
        if self.slots.get(&slot).is_some_and(|s| s.conn == conn) {
            let s = self.slots.remove(&slot);
            tracing::warn!(%slot, "launcher disconnected");
            let drained = s.and_then(|s| s.app).is_some_and(|a| a.draining);
            self.after_exit(now, &slot, drained, "launcher disconnected");
        }
    }

    fn after_exit(&mut self, now: Now, slot: &str, drained: bool, how: &str) {
        if let Some(sw) = &self.swap {
            match sw.phase {
                Phase::Starting if sw.report.to == slot => {
                    let err = format!(
                        "new version in slot {slot} exited before it was ready ({how}); old version kept serving"
                    );
                    if self.active.as_deref() == Some(slot) {
                        self.active = sw.report.from.clone();
                    }
                    self.finish(now, Some(err));
                    return;
                }
                Phase::Draining { since } if sw.report.from.as_deref() == Some(slot) => {
                    let d = now.at.saturating_duration_since(since);
                    if let Some(sw) = self.swap.as_mut() {
                        sw.report.drain = Some(d);
                    }
                    self.finish(now, None);
                    return;
                }
                _ => {}
            }
        }
        if self.active.as_deref() == Some(slot) && !drained {
            tracing::warn!(%slot, how, "serving app exited unexpectedly");
            self.active = None;
            self.ensure_at = Some(now.at + Duration::from_millis(500));
        }
    }

    pub(super) fn on_swap_deadline(&mut self, now: Now) {
        let Some(sw) = &self.swap else { return };
        if sw.deadline > now.at {
            return;
        }
        match sw.phase {
            Phase::Starting => {
                let to = sw.report.to.clone();
                let err = format!(
                    "new version in slot {to} was not ready within {}s; stopped it, old version kept serving",
                    self.cfg.ready_timeout.as_secs_f64()
                );
                if self.slots.get(&to).is_some_and(|s| s.app.is_some()) {
                    self.drain(&to);
                }
                self.finish(now, Some(err));
            }
            Phase::Draining { .. } => {
                self.finish(
                    now,
                    Some("old version did not exit after its drain timeout".into()),
                );
            }
        }
    }

    pub(super) fn on_swap(&mut self, now: Now, request: u64, to: Option<String>) {
        match self.begin_swap(now, to) {
            Ok(()) => {
                if let Some(sw) = self.swap.as_mut() {
                    sw.requests.push(request);
                }
            }
            Err(e) => self.out.push(Command::Reply {
                request,
                outcome: Err(e),
            }),
        }
    }

    pub(super) fn on_listeners_replaced(&mut self, now: Now) {
        if self.swap.is_some() {
            return;
        }
        match self.begin_swap(now, None) {
            Ok(()) => tracing::info!("swapping to the idle slot to serve the new socket"),
            Err(e) => {
                tracing::error!(error = %e, "the new socket serves nobody until the next swap")
            }
        }
    }

    fn begin_swap(&mut self, now: Now, to: Option<String>) -> Result<(), String> {
        if let Some(sw) = &self.swap {
            let phase = match sw.phase {
                Phase::Starting => "starting the new version",
                Phase::Draining { .. } => "draining the old version",
            };
            return Err(format!(
                "swap #{} to slot {} is already in progress ({phase}); one swap at a time",
                sw.report.id, sw.report.to
            ));
        }
        if !self.held {
            return Err("the sidecar is still recovering its sockets".into());
        }
        let to = self.pick_target(to)?;
        // The old version: the active one, or else an app that was started but is not ready
        // yet (a swap right after the first start), so that it is drained too.
        let from = self
            .active
            .clone()
            .filter(|a| self.slots.get(a).is_some_and(|s| s.app.is_some()))
            .or_else(|| {
                self.slots
                    .iter()
                    .find(|(n, s)| **n != to && s.app.as_ref().is_some_and(|a| !a.draining))
                    .map(|(n, _)| n.clone())
            });
        let version = self
            .slots
            .get(&to)
            .map(|s| s.version.clone())
            .unwrap_or_default();
        let id = self.next_swap_id;
        self.next_swap_id += 1;
        tracing::info!(id, ?from, %to, %version, "swap started");
        self.swap = Some(Swap {
            report: SwapReport {
                id,
                from,
                to: to.clone(),
                to_version: version,
                outcome: Outcome::Running,
                ready: None,
                drain: None,
                total: None,
            },
            started: now.at,
            deadline: now.at + self.cfg.ready_timeout,
            phase: Phase::Starting,
            requests: Vec::new(),
        });
        self.start(now, &to);
        Ok(())
    }

    fn pick_target(&self, to: Option<String>) -> Result<String, String> {
        let Some(t) = to else {
            let idle: Vec<&String> = self
                .slots
                .iter()
                .filter(|(_, s)| s.app.is_none())
                .map(|(n, _)| n)
                .collect();
            return match idle.as_slice() {
                [one] => Ok((*one).clone()),
                [] => Err("no idle slot: connect a standby launcher first".into()),
                _ => Err(format!("several idle slots {idle:?}: name one with --to")),
            };
        };
        let Some(s) = self.slots.get(&t) else {
            return Err(format!("no launcher is connected for slot {t:?}"));
        };
        if let Some(app) = &s.app {
            return Err(format!(
                "slot {t:?} is not idle: it runs pid {} ({})",
                app.pid,
                if self.active.as_deref() == Some(t.as_str()) {
                    "active"
                } else {
                    "stopping"
                }
            ));
        }
        Ok(t)
    }

    pub(super) fn finish(&mut self, now: Now, error: Option<String>) {
        let Some(mut sw) = self.swap.take() else {
            return;
        };
        let total = now.at.saturating_duration_since(sw.started);
        sw.report.total = Some(total);
        match &error {
            Some(e) => {
                self.failed += 1;
                tracing::warn!(id = sw.report.id, error = %e, "swap failed");
            }
            None => {
                self.succeeded += 1;
                tracing::info!(
                    id = sw.report.id,
                    total_ms = total.as_millis() as u64,
                    "swap succeeded"
                );
            }
        }
        sw.report.outcome = error.map_or(Outcome::Succeeded, Outcome::Failed);
        self.out.push(Command::Finished(sw.report.clone()));
        for request in sw.requests.drain(..) {
            self.out.push(Command::Reply {
                request,
                outcome: Ok(sw.report.clone()),
            });
        }
        self.last_swap = Some(sw.report);
        self.ensure_serving(now);
    }
}
