//! Pods of several revisions at once (a canary beside its stable side): each revision scaled to
//! a wanted count and never below a floor of available pods, within maxSurge (pods) and
//! maxUnavailable (availability), drained before deleted as in a rolling update.

use jiff::Timestamp;

use super::model::{Action, Params, Plan, PodView, RemoveReason};
use super::rolling::{count, next_availability, removal_key, remove_finished};

/// How many pods of one revision to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    /// Revision hash.
    pub revision: String,
    /// Pods to run.
    pub desired: i32,
    /// Available pods to keep while scaling down (the traffic this revision carries needs them).
    pub floor: i32,
}

impl Want {
    /// A want.
    pub fn new(revision: &str, desired: i32, floor: i32) -> Self {
        Self {
            revision: revision.to_string(),
            desired: desired.max(0),
            floor: floor.max(0),
        }
    }
}

/// Alive, ready and available pods of one revision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Side {
    /// Alive pods (not retiring, terminating or finished).
    pub alive: i32,
    /// Alive and Ready.
    pub ready: i32,
    /// Alive and available.
    pub available: i32,
}

impl Side {
    /// The pods of `revision`.
    pub fn of(pods: &[PodView], revision: &str, params: &Params, now: Timestamp) -> Self {
        let mut s = Side::default();
        for p in pods.iter().filter(|p| p.is_alive() && p.runs(revision)) {
            s.alive += 1;
            s.ready += i32::from(p.is_ready());
            s.available += i32::from(p.is_available(params.min_ready, now));
        }
        s
    }
}

/// The canary and stable sides of one observation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sides {
    /// Pods of the canary revision.
    pub canary: Side,
    /// Pods of the stable revision.
    pub stable: Side,
}

impl Sides {
    /// Both sides.
    pub fn of(
        pods: &[PodView],
        canary: &str,
        stable: &str,
        params: &Params,
        now: Timestamp,
    ) -> Self {
        Self {
            canary: Side::of(pods, canary, params, now),
            stable: Side::of(pods, stable, params, now),
        }
    }
}

/// Plans creations (in the order of `wants`, within maxSurge) and removals (pods of revisions
/// not wanted, and pods beyond a revision's count, within maxUnavailable and each revision's
/// floor). `complete` when every revision runs exactly its wanted count, all available, and no
/// other pod is alive or still in traffic.
pub fn plan(params: &Params, pods: &[PodView], wants: &[Want], now: Timestamp) -> Plan {
    let counts = count(params, pods, now);
    let mut actions = remove_finished(pods);
    let alive: Vec<&PodView> = pods.iter().filter(|p| p.is_alive()).collect();

    let mut room = (params.max_pods() - counts.total).max(0);
    let mut creates = Vec::new();
    for w in wants {
        let have = Side::of(pods, &w.revision, params, now).alive;
        let n = (w.desired - have).max(0).min(room);
        if n > 0 {
            room -= n;
            creates.push(Action::Create {
                revision: w.revision.clone(),
                count: n,
            });
        }
    }

    // Candidates, and how many available pods of each wanted revision may still go.
    let mut candidates: Vec<(&PodView, RemoveReason)> = Vec::new();
    let mut allowance: Vec<i32> = Vec::new();
    for w in wants {
        let mut of_rev: Vec<&PodView> = alive
            .iter()
            .copied()
            .filter(|p| p.runs(&w.revision))
            .collect();
        of_rev.sort_by_key(|p| removal_key(params, p, now));
        let excess = (of_rev.len() as i32 - w.desired).max(0) as usize;
        candidates.extend(
            of_rev
                .into_iter()
                .take(excess)
                .map(|p| (p, RemoveReason::Excess)),
        );
        allowance.push((Side::of(pods, &w.revision, params, now).available - w.floor).max(0));
    }
    candidates.extend(
        alive
            .iter()
            .copied()
            .filter(|p| !wants.iter().any(|w| p.runs(&w.revision)))
            .map(|p| (p, RemoveReason::Outdated)),
    );
    candidates.sort_by_key(|(p, _)| removal_key(params, p, now));

    let mut budget = (counts.available - params.min_available()).max(0);
    for (p, reason) in candidates {
        if p.is_available(params.min_ready, now) {
            let slot = wants.iter().position(|w| p.runs(&w.revision));
            let allowed = slot.is_none_or(|i| allowance[i] > 0);
            if budget == 0 || !allowed {
                continue;
            }
            budget -= 1;
            if let Some(i) = slot {
                allowance[i] -= 1;
            }
        }
        actions.push(Action::Remove {
            pod: p.name.clone(),
            reason,
        });
    }
    creates.extend(actions);

    let exact = wants.iter().all(|w| {
        let s = Side::of(pods, &w.revision, params, now);
        s.alive == w.desired && s.available == w.desired
    });
    let others = alive
        .iter()
        .any(|p| !wants.iter().any(|w| p.runs(&w.revision)));
    let in_traffic = pods.iter().any(PodView::draining_in_traffic);
    Plan {
        actions: creates,
        counts,
        complete: exact && !others && !in_traffic,
        requeue_after: next_availability(params, &alive, now),
    }
}
