//! Pod mode: in a hot-swap pod every launcher carries a [`Claim`] read from its container's
//! environment, and the claims, not `ctl swap`, decide which slot serves (`docs/hotswap.md`).
//! The wanted slot is the one claiming to serve with the highest generation seen whose swap did
//! not fail; it alone may be started. When it is idle while another slot serves, it is swapped
//! to. A swap to it that fails marks its generation failed, so its restarted launcher stays
//! standby and the old version keeps serving.

use std::time::Duration;

use super::{Claim, Command, Core, Failure, Now, Refusal};

impl Core {
    /// Whether launchers carry claims (a hot-swap pod).
    pub fn pod_mode(&self) -> bool {
        self.pod
    }

    /// The generation a slot must claim to serve: the highest claim to serve seen whose swap
    /// did not fail.
    fn wanted_generation(&self) -> Option<u64> {
        self.wanting_seen
            .iter()
            .rev()
            .find(|g| !self.failed_generations.contains(g))
            .copied()
    }

    /// In pod mode, the connected slot that should serve; None when its launcher is not
    /// connected (then nothing else may start either) or outside pod mode.
    pub fn wanted(&self) -> Option<&str> {
        let generation = self.wanted_generation()?;
        self.slots
            .iter()
            .find(|(_, s)| {
                s.claim
                    .as_ref()
                    .is_some_and(|c| c.wants_to_serve() && c.generation == generation)
            })
            .map(|(n, _)| n.as_str())
    }

    /// Generations whose swap failed.
    pub fn failed_generations(&self) -> impl Iterator<Item = u64> + '_ {
        self.failed_generations.iter().copied()
    }

    /// Checks a launcher's claim against its slot name and records it; the error rejects the
    /// launcher.
    pub(super) fn register_claim(&mut self, slot: &str, claim: &Claim) -> Result<(), String> {
        if claim.slot.as_str() != slot {
            return Err(format!(
                "launcher of slot {slot:?} claims slot {:?} (ZDR_SLOT): they must agree",
                claim.slot.as_str()
            ));
        }
        self.pod = true;
        if claim.wants_to_serve() {
            self.wanting_seen.insert(claim.generation);
            if self.failed_generations.contains(&claim.generation) {
                tracing::warn!(%slot, generation = claim.generation, "the swap of this claim failed before: standby");
            }
        }
        Ok(())
    }

    /// In pod mode, a swap to `to` is allowed only to the wanted slot.
    pub(super) fn check_wanted(&self, to: &str) -> Result<(), Refusal> {
        if !self.pod || self.wanted() == Some(to) {
            return Ok(());
        }
        Err(Refusal::NotWanted {
            slot: to.to_owned(),
            wanted: self.wanted().map(str::to_owned),
        })
    }

    /// The generation a swap to `to` is for (pod mode: the target's claim to serve).
    pub(super) fn claim_generation(&self, to: &str) -> Option<u64> {
        let c = self.slots.get(to)?.claim.as_ref()?;
        c.wants_to_serve().then_some(c.generation)
    }

    /// After every event: when the wanted slot is idle while another slot runs an app, swap to
    /// it; when nothing runs, start it shortly (as after a crash).
    pub(super) fn follow_claims(&mut self, now: Now) {
        if !self.pod || !self.held || self.swap.is_some() || self.recovering_until.is_some() {
            return;
        }
        let Some(wanted) = self.wanted().map(str::to_owned) else {
            return;
        };
        if self.slots.get(&wanted).is_some_and(|s| s.app.is_some()) {
            return;
        }
        let others_run = self
            .slots
            .iter()
            .any(|(n, s)| *n != wanted && s.app.as_ref().is_some_and(|a| !a.draining));
        if others_run {
            match self.begin_swap(now, Some(wanted.clone())) {
                Ok(()) => tracing::info!(slot = %wanted, "claim to serve: swapping to it"),
                Err(e) => {
                    tracing::warn!(slot = %wanted, error = %e, "claim to serve: cannot swap yet")
                }
            }
        } else if self.slots.values().all(|s| s.app.is_none()) && self.ensure_at.is_none() {
            self.ensure_at = Some(now.at + Duration::from_millis(500));
        }
    }

    /// A swap to a claimed slot failed before its version served: remember the generation and
    /// tell its launcher.
    pub(super) fn claim_failed(&mut self, to: &str, generation: Option<u64>, err: &Failure) {
        let Some(generation) = generation else { return };
        if matches!(err, Failure::DrainTimeout) {
            return; // The new version serves; only the old one was slow.
        }
        self.failed_generations.insert(generation);
        self.out.push(Command::SwapFailed {
            conn: self.slots.get(to).map(|s| s.conn),
            slot: to.to_owned(),
            generation,
            reason: err.to_string(),
        });
    }
}
