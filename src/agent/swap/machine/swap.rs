//! The swap itself: requests (one at a time, an idle target), readiness of the new version,
//! exits of either version, the two deadlines, and the final report.

use std::time::Duration;

use super::{Command, Core, Exit, Failure, Now, Outcome, Phase, Refusal, Swap, SwapReport};

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
        let exit = match (code, signal) {
            (Some(c), _) => Exit::Code(c),
            (_, Some(sig)) => Exit::Signal(sig),
            _ => Exit::Unknown,
        };
        self.after_exit(now, &slot, was.is_some_and(|a| a.draining), exit);
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
            self.after_exit(now, &slot, drained, Exit::LauncherLost);
        }
    }

    fn after_exit(&mut self, now: Now, slot: &str, drained: bool, exit: Exit) {
        if let Some(sw) = &self.swap {
            match sw.phase {
                Phase::Starting if sw.report.to == slot => {
                    let err = Failure::ExitedBeforeReady {
                        slot: slot.to_owned(),
                        exit,
                    };
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
            tracing::warn!(%slot, %exit, "serving app exited unexpectedly");
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
                let err = Failure::NotReady {
                    slot: to.clone(),
                    timeout: self.cfg.ready_timeout,
                };
                if self.slots.get(&to).is_some_and(|s| s.app.is_some()) {
                    self.drain(&to);
                }
                self.finish(now, Some(err));
            }
            Phase::Draining { .. } => {
                self.finish(now, Some(Failure::DrainTimeout));
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

    pub(super) fn begin_swap(&mut self, now: Now, to: Option<String>) -> Result<(), Refusal> {
        if let Some(sw) = &self.swap {
            return Err(Refusal::InProgress {
                id: sw.report.id,
                to: sw.report.to.clone(),
                phase: sw.phase,
            });
        }
        if !self.held {
            return Err(Refusal::Recovering);
        }
        let to = self.pick_target(to)?;
        self.check_wanted(&to)?;
        let claim_generation = self.claim_generation(&to);
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
            claim_generation,
        });
        self.start(now, &to);
        Ok(())
    }

    fn pick_target(&self, to: Option<String>) -> Result<String, Refusal> {
        let to = to.or_else(|| self.wanted().map(str::to_owned));
        let Some(t) = to else {
            let mut idle: Vec<String> = self
                .slots
                .iter()
                .filter(|(_, s)| s.app.is_none())
                .map(|(n, _)| n.clone())
                .collect();
            return match idle.len() {
                1 => Ok(idle.remove(0)),
                0 => Err(Refusal::NoIdleSlot),
                _ => Err(Refusal::SeveralIdle(idle)),
            };
        };
        let Some(s) = self.slots.get(&t) else {
            return Err(Refusal::NoLauncher(t));
        };
        if let Some(app) = &s.app {
            return Err(Refusal::NotIdle {
                active: self.active.as_deref() == Some(t.as_str()),
                pid: app.pid,
                slot: t,
            });
        }
        Ok(t)
    }

    pub(super) fn finish(&mut self, now: Now, error: Option<Failure>) {
        let Some(mut sw) = self.swap.take() else {
            return;
        };
        let total = now.at.saturating_duration_since(sw.started);
        sw.report.total = Some(total);
        match &error {
            Some(e) => {
                self.failed += 1;
                tracing::warn!(id = sw.report.id, error = %e, "swap failed");
                self.claim_failed(&sw.report.to, sw.claim_generation, e);
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
