//! A deterministic simulation of a whole rollout with the real planner, for `kubectl zdr plan`:
//! new pods become Ready one second after creation, removed pods leave at once.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::model::{Action, Params, PodPhase, PodView};
use super::rolling::{count, plan};

/// One batch of actions the rollout takes, and the state right after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wave {
    /// Pods of the target revision created in this wave.
    pub created: i32,
    /// Pods removed in this wave.
    pub removed: i32,
    /// Alive pods of the target revision after the wave.
    pub updated: i32,
    /// Alive pods of other revisions after the wave.
    pub old: i32,
    /// Every pod in existence right after the wave (bounded by replicas + maxSurge).
    pub total: i32,
    /// Available pods right after the wave (bounded below by replicas - maxUnavailable).
    pub available: i32,
}

/// Simulates a rollout to `params.target_revision` starting from `replicas` available pods of
/// `from` (or from no pods at all), and returns its waves. Fails if the rollout does not
/// complete within `max_steps` planner calls, which would be a planner bug.
pub fn simulate_rollout(
    params: &Params,
    from: Option<&str>,
    max_steps: usize,
) -> Result<Vec<Wave>, String> {
    let start = Timestamp::UNIX_EPOCH;
    let mut now = start + SignedDuration::from_hours(1);
    let mut pods: Vec<PodView> = match from {
        Some(rev) => (0..params.replicas)
            .map(|i| pod(format!("{rev}-{i}"), rev, start, Some(start)))
            .collect(),
        None => Vec::new(),
    };
    let mut serial = 0;
    let mut waves = Vec::new();
    let tick = SignedDuration::from_secs(1)
        + SignedDuration::try_from(params.min_ready).unwrap_or(SignedDuration::ZERO);
    for _ in 0..max_steps {
        let p = plan(params, &pods, now);
        if p.complete {
            return Ok(waves);
        }
        let (mut created, mut removed) = (0, 0);
        for action in &p.actions {
            match action {
                Action::Create { revision, count } => {
                    for _ in 0..*count {
                        serial += 1;
                        pods.push(pod(format!("{revision}-new{serial}"), revision, now, None));
                    }
                    created += count;
                }
                Action::Remove { pod, .. } => {
                    pods.retain(|p| &p.name != pod);
                    removed += 1;
                }
            }
        }
        if created + removed > 0 {
            let c = count(params, &pods, now);
            waves.push(Wave {
                created,
                removed,
                updated: c.updated,
                old: c.replicas - c.updated,
                total: c.total,
                available: c.available,
            });
        }
        // Time passes: every new pod turns Ready one second after it was created.
        now += tick;
        for p in pods.iter_mut().filter(|p| p.ready_since.is_none()) {
            p.ready_since = Some(p.created + SignedDuration::from_secs(1));
        }
    }
    Err(format!(
        "the rollout did not complete within {max_steps} steps"
    ))
}

fn pod(name: String, rev: &str, created: Timestamp, ready: Option<Timestamp>) -> PodView {
    PodView {
        name,
        revision: Some(rev.to_string()),
        created,
        scheduled: true,
        phase: PodPhase::Running,
        ready_since: ready,
        retiring: false,
        terminating: false,
    }
}

/// Convenience for callers that think in seconds.
pub fn seconds(s: i32) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}
