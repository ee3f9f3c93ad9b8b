//! The rolling-update decision: which pods to create and which to remove for one observation,
//! bounded by maxSurge (pods) and maxUnavailable (availability).

use std::cmp::Reverse;
use std::time::Duration;

use jiff::Timestamp;

use super::model::{Action, Counts, Params, Plan, PodPhase, PodView, RemoveReason, available_at};

/// Plans the next actions for `pods` (every pod the rollout owns, in any state) at `now`.
///
/// Guarantees, for any input:
/// - creations never bring the pods that count against maxSurge (every existing pod with
///   `TerminationComplete`; those not drained, terminating or finished with
///   `TerminationStarted`) above `replicas + maxSurge`;
/// - removals never bring available pods below `replicas - maxUnavailable`;
/// - removal order: unscheduled, then not available, then old revisions, then newest first.
pub fn plan(params: &Params, pods: &[PodView], now: Timestamp) -> Plan {
    let counts = count(params, pods, now);
    let mut actions = remove_finished(pods);

    let alive: Vec<&PodView> = pods.iter().filter(|p| p.is_alive()).collect();
    let room = (params.max_pods() - counts.total).max(0);

    // Creations.
    let (create_revision, want) = if params.paused {
        (
            paused_revision(params, &alive),
            params.replicas - counts.replicas,
        )
    } else {
        (
            params.target_revision.clone(),
            params.replicas - counts.updated,
        )
    };
    let create = want.min(room);
    if create > 0 {
        actions.insert(
            0,
            Action::Create {
                revision: create_revision,
                count: create,
            },
        );
    }

    // Removal candidates: old pods (unless paused) and pods in excess of `replicas`.
    let mut candidates: Vec<(&PodView, RemoveReason)> = Vec::new();
    if params.paused {
        let excess = (counts.replicas - params.replicas).max(0) as usize;
        let mut ordered = alive.clone();
        ordered.sort_by_key(|p| removal_key(params, p, now));
        candidates.extend(
            ordered
                .into_iter()
                .take(excess)
                .map(|p| (p, RemoveReason::Excess)),
        );
    } else {
        let (updated, old): (Vec<&PodView>, Vec<&PodView>) =
            alive.iter().partition(|p| p.runs(&params.target_revision));
        candidates.extend(old.into_iter().map(|p| (p, RemoveReason::Outdated)));
        let excess = (updated.len() as i32 - params.replicas).max(0) as usize;
        let mut updated = updated;
        updated.sort_by_key(|p| removal_key(params, p, now));
        candidates.extend(
            updated
                .into_iter()
                .take(excess)
                .map(|p| (p, RemoveReason::Excess)),
        );
    }
    candidates.sort_by_key(|(p, _)| removal_key(params, p, now));

    let mut budget = (counts.available - params.min_available()).max(0);
    for (p, reason) in candidates {
        if p.is_available(params.min_ready, now) {
            if budget == 0 {
                continue;
            }
            budget -= 1;
        }
        actions.push(Action::Remove {
            pod: p.name.clone(),
            reason,
        });
    }

    // Pods still draining do not hold completion once they are out of traffic.
    let in_traffic = pods.iter().any(PodView::draining_in_traffic);
    let complete = !params.paused
        && counts.replicas == params.replicas
        && counts.updated == params.replicas
        && counts.updated_available == params.replicas
        && !in_traffic;

    Plan {
        actions,
        counts,
        complete,
        requeue_after: next_availability(params, &alive, now),
    }
}

/// Pods that finished never serve again: remove them (they are not available, so this never
/// costs availability; they keep counting against maxSurge until they are gone).
pub(super) fn remove_finished(pods: &[PodView]) -> Vec<Action> {
    pods.iter()
        .filter(|p| {
            !p.terminating
                && !p.retiring
                && matches!(p.phase, PodPhase::Succeeded | PodPhase::Failed)
        })
        .map(|p| Action::Remove {
            pod: p.name.clone(),
            reason: RemoveReason::Finished,
        })
        .collect()
}

/// Counts of one observation.
pub(super) fn count(params: &Params, pods: &[PodView], now: Timestamp) -> Counts {
    let mut c = Counts {
        total: pods
            .iter()
            .filter(|p| p.counts_against_surge(params.replacement))
            .count() as i32,
        retiring: pods.iter().filter(|p| p.retiring || p.terminating).count() as i32,
        ..Counts::default()
    };
    for p in pods.iter().filter(|p| p.is_alive()) {
        let updated = p.runs(&params.target_revision);
        let available = p.is_available(params.min_ready, now);
        c.replicas += 1;
        c.updated += i32::from(updated);
        c.ready += i32::from(p.is_ready());
        c.available += i32::from(available);
        c.updated_available += i32::from(updated && available);
    }
    c
}

/// While paused, missing pods are recreated at the stable revision if some pods still run it,
/// so a pause freezes the mix of revisions; otherwise at the target revision.
fn paused_revision(params: &Params, alive: &[&PodView]) -> String {
    match &params.stable_revision {
        Some(stable) if alive.iter().any(|p| p.runs(stable)) => stable.clone(),
        _ => params.target_revision.clone(),
    }
}

/// Sort key for removal: unscheduled first, then not available, then old revisions, then
/// newest first (the name breaks ties so the order is total and stable).
pub(super) fn removal_key(
    params: &Params,
    p: &PodView,
    now: Timestamp,
) -> (bool, bool, bool, Reverse<Timestamp>, String) {
    (
        p.scheduled,
        p.is_available(params.min_ready, now),
        p.runs(&params.target_revision),
        Reverse(p.created),
        p.name.clone(),
    )
}

/// Time until the next Ready pod reaches minReadySeconds.
pub(super) fn next_availability(
    params: &Params,
    alive: &[&PodView],
    now: Timestamp,
) -> Option<Duration> {
    alive
        .iter()
        .filter_map(|p| p.ready_since)
        .map(|since| available_at(since, params.min_ready))
        .filter(|at| *at > now)
        .min()
        .map(|at| {
            let d = at.duration_since(now);
            Duration::try_from(d).unwrap_or_default()
        })
}
