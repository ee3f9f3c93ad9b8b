//! A deterministic simulation of a whole rollout with the real planner, for `kubectl zdr plan`:
//! a timeline of waves under stated assumptions (how long a new pod takes to turn Ready, the
//! endpoint propagation delay before a drained pod is deleted).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::model::{Action, Params, PodPhase, PodView};
use super::rolling::{count, plan};

/// What the timeline assumes about the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// A new pod turns Ready this long after it is created (image pull, start, probes).
    pub ready_after: Duration,
    /// A removed pod is out of traffic at once (endpoints update) and deleted after this delay
    /// (the controller's `--endpoint-propagation-seconds`); deletion itself takes no time.
    pub propagation: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            ready_after: Duration::from_secs(1),
            propagation: Duration::from_secs(5),
        }
    }
}

/// One batch of actions the rollout takes, and the state right after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wave {
    /// Earliest time of the wave, from the start of the rollout.
    pub at: Duration,
    /// Pods of the target revision created in this wave.
    pub created: i32,
    /// Pods removed in this wave.
    pub removed: i32,
    /// Alive pods of the target revision after the wave.
    pub updated: i32,
    /// Alive pods of other revisions after the wave.
    pub old: i32,
    /// Pods counting against maxSurge right after the wave (at most replicas + maxSurge).
    pub total: i32,
    /// Pods still draining or terminating right after the wave (not counted in `total` with
    /// `TerminationStarted`).
    pub draining: i32,
    /// Available pods right after the wave (at least replicas - maxUnavailable).
    pub available: i32,
}

/// The whole rollout: its waves and when every pod runs the new revision and is available.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// The waves, in order.
    pub waves: Vec<Wave>,
    /// When the rollout completes, from its start.
    pub done_at: Duration,
}

struct SimPod {
    view: PodView,
    /// When a retiring pod is deleted.
    gone_at: Option<Timestamp>,
}

/// Simulates a rollout to `params.target_revision` starting from `replicas` available pods of
/// `from` (or from no pods at all). Fails if the rollout does not complete within `max_steps`
/// planner calls, which would be a planner bug.
pub fn simulate_rollout(
    params: &Params,
    from: Option<&str>,
    timing: Timing,
    max_steps: usize,
) -> Result<Timeline, String> {
    let start = Timestamp::UNIX_EPOCH + SignedDuration::from_hours(1);
    let since_start =
        |t: Timestamp| Duration::try_from(t.duration_since(start)).unwrap_or_default();
    let mut now = start;
    let long_ago = Timestamp::UNIX_EPOCH;
    let mut pods: Vec<SimPod> = match from {
        Some(rev) => (0..params.replicas)
            .map(|i| sim_pod(format!("{rev}-{i}"), rev, long_ago, Some(long_ago)))
            .collect(),
        None => Vec::new(),
    };
    let ready_after = signed(timing.ready_after);
    let mut serial = 0;
    let mut waves = Vec::new();
    for _ in 0..max_steps {
        // Plan until nothing more happens at this instant: a removed pod is out of traffic at
        // once, which the controller sees (a watch event) and answers with the next creations.
        let (mut created, mut removed) = (0, 0);
        let mut p = plan(params, &views_of(&pods), now);
        for _ in 0..max_steps {
            if p.complete || p.actions.is_empty() {
                break;
            }
            for action in &p.actions {
                match action {
                    Action::Create { revision, count } => {
                        for _ in 0..*count {
                            serial += 1;
                            let name = format!("{revision}-new{serial}");
                            pods.push(sim_pod(name, revision, now, None));
                        }
                        created += count;
                    }
                    Action::Remove { pod, .. } => {
                        if let Some(sp) = pods.iter_mut().find(|p| &p.view.name == pod) {
                            sp.view.retiring = true;
                            sp.view.drained = true;
                            sp.view.ready_since = None;
                            sp.gone_at = Some(now + signed(timing.propagation));
                        }
                        removed += 1;
                    }
                }
            }
            p = plan(params, &views_of(&pods), now);
        }
        if created + removed > 0 {
            let c = count(params, &views_of(&pods), now);
            waves.push(Wave {
                at: since_start(now),
                created,
                removed,
                updated: c.updated,
                old: c.replicas - c.updated,
                total: c.total,
                draining: c.retiring,
                available: c.available,
            });
        }
        if p.complete {
            return Ok(Timeline {
                waves,
                done_at: since_start(now),
            });
        }
        // Time passes to the next event: a pod turning Ready, reaching minReadySeconds, or a
        // drained pod being deleted.
        let ready_next = pods
            .iter()
            .filter(|p| p.view.ready_since.is_none() && !p.view.retiring)
            .map(|p| p.view.created + ready_after);
        let gone_next = pods.iter().filter_map(|p| p.gone_at);
        let available_next = p.requeue_after.map(|d| now + signed(d));
        let Some(next) = ready_next
            .chain(gone_next)
            .chain(available_next)
            .filter(|t| *t > now)
            .min()
        else {
            break;
        };
        now = next;
        for sp in pods.iter_mut() {
            let v = &mut sp.view;
            if v.ready_since.is_none() && !v.retiring && v.created + ready_after <= now {
                v.ready_since = Some(v.created + ready_after);
            }
        }
        pods.retain(|p| p.gone_at.is_none_or(|t| t > now));
    }
    Err(format!(
        "the rollout did not complete within {max_steps} steps"
    ))
}

fn views_of(pods: &[SimPod]) -> Vec<PodView> {
    pods.iter().map(|p| p.view.clone()).collect()
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

fn sim_pod(name: String, rev: &str, created: Timestamp, ready: Option<Timestamp>) -> SimPod {
    SimPod {
        view: PodView {
            name,
            revision: Some(rev.to_string()),
            created,
            scheduled: true,
            phase: PodPhase::Running,
            ready_since: ready,
            retiring: false,
            drained: false,
            terminating: false,
        },
        gone_at: None,
    }
}

/// Convenience for callers that think in seconds.
pub fn seconds(s: i32) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}
