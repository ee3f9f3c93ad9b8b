//! Swap requests (`ctl swap`): validation (one swap at a time, an idle target), start of the
//! new version, and the final record with its metrics.

use std::time::Instant;

use tokio::sync::oneshot;

use super::{Machine, Phase, Swap, ms};
use crate::agent::status::ResultLabel;
use crate::contract::status::{SwapRecord, SwapResult};

impl Machine {
    pub(super) fn on_swap(
        &mut self,
        to: Option<String>,
        reply: oneshot::Sender<Result<SwapRecord, String>>,
    ) {
        match self.begin_swap(to) {
            Ok(()) => {
                if let Some(sw) = self.swap.as_mut() {
                    sw.waiters.push(reply);
                }
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    pub(super) fn begin_swap(&mut self, to: Option<String>) -> Result<(), String> {
        if let Some(sw) = &self.swap {
            let phase = match sw.phase {
                Phase::Starting => "starting the new version",
                Phase::Draining { .. } => "draining the old version",
            };
            return Err(format!(
                "swap #{} to slot {} is already in progress ({phase}); one swap at a time",
                sw.record.id, sw.record.to
            ));
        }
        if self.sockets.is_none() {
            return Err("the sidecar is still recovering its sockets".into());
        }
        let idle: Vec<String> = self
            .slots
            .iter()
            .filter(|(_, s)| s.app.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        let to = match to {
            Some(t) => {
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
                t
            }
            None => match idle.as_slice() {
                [one] => one.clone(),
                [] => return Err("no idle slot: connect a standby launcher first".into()),
                _ => return Err(format!("several idle slots {idle:?}: name one with --to")),
            },
        };
        let from = self
            .active
            .clone()
            .filter(|a| self.slots.get(a).is_some_and(|s| s.app.is_some()));
        let version = self
            .slots
            .get(&to)
            .map(|s| s.version.clone())
            .unwrap_or_default();
        let id = self.next_swap_id;
        self.next_swap_id += 1;
        tracing::info!(id, ?from, %to, %version, "swap started");
        self.swap = Some(Swap {
            record: SwapRecord {
                id,
                from,
                to: to.clone(),
                to_version: version,
                result: SwapResult::Running,
                ..SwapRecord::default()
            },
            started: Instant::now(),
            deadline: Instant::now() + self.cfg.ready_timeout,
            phase: Phase::Starting,
            waiters: Vec::new(),
        });
        self.start(&to);
        Ok(())
    }

    pub(super) fn finish(&mut self, error: Option<String>) {
        let Some(mut sw) = self.swap.take() else {
            return;
        };
        let total = sw.started.elapsed();
        sw.record.total_ms = Some(ms(total));
        let result = if error.is_some() {
            SwapResult::Failed
        } else {
            SwapResult::Succeeded
        };
        sw.record.result = result;
        sw.record.error = error;
        if sw.record.error.is_some() {
            self.failed += 1;
            tracing::warn!(id = sw.record.id, error = ?sw.record.error, "swap failed");
        } else {
            self.succeeded += 1;
            self.metrics.swap_seconds.observe(total.as_secs_f64());
            tracing::info!(id = sw.record.id, total_ms = ms(total), "swap succeeded");
        }
        self.metrics
            .swaps
            .get_or_create(&ResultLabel { result })
            .inc();
        for w in sw.waiters.drain(..) {
            let _ = w.send(Ok(sw.record.clone()));
        }
        self.last_swap = Some(sw.record);
        self.ensure_serving();
    }
}
