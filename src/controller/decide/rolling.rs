//! The rolling strategy's decision: waves towards the update revision (back to the stable one
//! after an abort), the progress deadline that may abort, and completion gated on the analysis.

use jiff::Timestamp;

use super::hotswap::{self, Swaps};
use super::{
    Basis, Decision, Outcome, Snapshot, abort_now, analysis_waiting, deadline, params, progress,
};
use crate::crd::hot_swap as words;
use crate::crd::{AbortReason, Phase};
use crate::planner::{self, Summary};

/// Decides a rolling update (and a canary's first rollout, which has nothing to compare with).
pub(super) fn decide(s: &Snapshot, b: &mut Basis, now: Timestamp) -> Decision {
    let (mut prm, mut plan, mut summary, mut swaps) = waves(s, b, now);
    if let Some((pod, why)) = swaps.as_ref().and_then(|w| w.failures.first())
        && b.abortable
        && b.aborted.is_none()
    {
        abort_now(b, AbortReason::HotSwapFailed, words::abort_note(pod, why));
        (prm, plan, summary, swaps) = waves(s, b, now);
    }
    if summary.deadline_exceeded
        && s.spec.progress_deadline_abort
        && b.abortable
        && b.aborted.is_none()
    {
        let why = format!("no progress for {}s", deadline(s.spec).as_secs());
        abort_now(b, AbortReason::ProgressDeadline, why);
        (prm, plan, summary, swaps) = waves(s, b, now);
    }
    if let (Some((_, message)), None) = (&b.held, &b.aborted) {
        summary.message = format!("{}; {message}", summary.message);
    }
    let mut complete = plan.complete && b.aborted.is_none();
    if complete && let Some(waiting) = analysis_waiting(s, b) {
        complete = false;
        if b.held.is_none() {
            summary.phase = Phase::Progressing;
        }
        summary.message = format!(
            "{}/{} updated, {} available; revision {} becomes stable once {waiting}",
            plan.counts.updated, s.spec.replicas, plan.counts.available, s.update
        );
    }
    let stable_after = if complete {
        Some(s.update.to_string())
    } else {
        b.stable.clone()
    };
    let wake = [plan.requeue_after, summary.deadline_in]
        .into_iter()
        .flatten()
        .min();
    let mut status = super::status(
        s,
        b,
        Outcome {
            plan: &plan,
            summary: &summary,
            complete,
            min_available: prm.min_available(),
            stable_after: stable_after.clone(),
            held: None,
            canary: None,
            hot_swap: swaps.as_ref().map(|w| w.condition.clone()),
        },
        now,
    );
    let (commands, events) = match swaps {
        Some(w) => {
            status.hot_swap = w.status;
            (w.commands, w.notes)
        }
        None => Default::default(),
    };
    Decision {
        target: prm.target_revision.clone(),
        plan,
        traffic: None,
        abort: None,
        events,
        wake,
        stable_after,
        status,
        swaps: commands,
    }
}

/// The waves towards the target (the stable revision after an abort), their summary, and with
/// `hotSwap` the path the update takes and its swaps.
fn waves(
    s: &Snapshot,
    b: &Basis,
    now: Timestamp,
) -> (planner::Params, planner::Plan, Summary, Option<Swaps>) {
    let target = match (&b.aborted, &b.stable) {
        (Some(_), Some(stable)) => stable.clone(),
        _ => s.update.to_string(),
    };
    let prm = params(s, b, &target);
    let swaps = hotswap::decide(s, &target, prm.paused, now);
    let plan = match swaps.as_ref().filter(|w| w.status.is_some()) {
        // Swapped in place: the planner only scales; the counts are the swaps'.
        Some(w) => {
            let mut plan = planner::plan(&prm, &w.views, now);
            plan.counts.updated = w.updated;
            plan.counts.updated_available = w.updated_available;
            plan.complete &= w.done;
            plan
        }
        None => planner::plan(&prm, s.pods, now),
    };
    let summary = planner::summarize(
        &prm,
        &plan,
        &progress(s.status),
        deadline(s.spec),
        b.aborted.as_ref().map(|(r, _)| r.as_str()),
        now,
    );
    (prm, plan, summary, swaps)
}
