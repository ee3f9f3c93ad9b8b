//! Domain types of the planner: a pod as the planner sees it, the parameters of a rollout and
//! the actions it can ask for. Free of Kubernetes types so the logic is testable on its own.

use std::time::Duration;

use jiff::Timestamp;

pub use crate::crd::PodReplacementPolicy;

/// Lifecycle phase of a pod, as reported by the kubelet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodPhase {
    /// Accepted, not all containers running yet (may not be scheduled).
    Pending,
    /// Bound to a node, containers running.
    Running,
    /// All containers exited successfully: the pod no longer serves.
    Succeeded,
    /// All containers exited, at least one failed: the pod no longer serves.
    Failed,
    /// The kubelet stopped reporting.
    Unknown,
}

/// One pod owned by a rollout, reduced to what the planner decides on.
#[derive(Clone, Debug, PartialEq)]
pub struct PodView {
    /// Pod name, unique in the namespace.
    pub name: String,
    /// Template revision hash (the `zdr.dev/revision` label); `None` for adopted pods without it.
    pub revision: Option<String>,
    /// Creation time.
    pub created: Timestamp,
    /// Whether the scheduler bound the pod to a node.
    pub scheduled: bool,
    /// Kubelet phase.
    pub phase: PodPhase,
    /// When the pod's Ready condition last turned True; `None` while it is not Ready.
    pub ready_since: Option<Timestamp>,
    /// The controller has started taking this pod out of traffic (its readiness gate is False).
    pub retiring: bool,
    /// A retiring pod that is out of traffic: not Ready, and no EndpointSlice lists it as ready.
    pub drained: bool,
    /// The pod has a deletion timestamp.
    pub terminating: bool,
}

impl PodView {
    /// Counts towards `replicas`: neither being deleted, nor being retired, nor finished.
    pub fn is_alive(&self) -> bool {
        !self.terminating
            && !self.retiring
            && !matches!(self.phase, PodPhase::Succeeded | PodPhase::Failed)
    }

    /// Ready and in traffic.
    pub fn is_ready(&self) -> bool {
        self.is_alive() && self.ready_since.is_some()
    }

    /// Ready for at least `min_ready` at `now`, and in traffic.
    pub fn is_available(&self, min_ready: Duration, now: Timestamp) -> bool {
        match self.ready_since {
            Some(since) if self.is_alive() => available_at(since, min_ready) <= now,
            _ => false,
        }
    }

    /// Whether this pod runs `revision`.
    pub fn runs(&self, revision: &str) -> bool {
        self.revision.as_deref() == Some(revision)
    }

    /// Retiring but still in traffic: the rollout is not done while such a pod exists.
    pub fn draining_in_traffic(&self) -> bool {
        self.retiring && !self.drained && !self.terminating
    }

    /// Whether the pod counts against maxSurge under `policy`.
    pub fn counts_against_surge(&self, policy: PodReplacementPolicy) -> bool {
        match policy {
            PodReplacementPolicy::TerminationComplete => true,
            PodReplacementPolicy::TerminationStarted => {
                let out_of_traffic = self.retiring && self.drained;
                let finished = matches!(self.phase, PodPhase::Succeeded | PodPhase::Failed);
                !(self.terminating || out_of_traffic || finished)
            }
        }
    }
}

/// When a pod Ready since `since` becomes available.
pub fn available_at(since: Timestamp, min_ready: Duration) -> Timestamp {
    since
        .checked_add(jiff::SignedDuration::try_from(min_ready).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// The validated parameters of one rollout, with surge and unavailability already resolved to
/// pod counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Desired number of pods.
    pub replicas: i32,
    /// Pods allowed above `replicas` (already rounded up from a percentage).
    pub max_surge: i32,
    /// Pods allowed to be unavailable (already rounded down from a percentage).
    pub max_unavailable: i32,
    /// How long a pod must be Ready to count as available.
    pub min_ready: Duration,
    /// Revision every pod should run: the update revision, or the stable one after an abort.
    pub target_revision: String,
    /// Revision that served before this update, if any; used while paused.
    pub stable_revision: Option<String>,
    /// No progress towards `target_revision` (scaling still happens).
    pub paused: bool,
    /// Which pods count against maxSurge.
    pub replacement: PodReplacementPolicy,
}

impl Params {
    /// The availability floor no removal may go under.
    pub fn min_available(&self) -> i32 {
        (self.replicas - self.max_unavailable).max(0)
    }

    /// The ceiling no creation may go over.
    pub fn max_pods(&self) -> i32 {
        self.replicas + self.max_surge
    }
}

/// Why the planner removes a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveReason {
    /// The pod finished or failed and will never serve again.
    Finished,
    /// The pod runs an old revision.
    Outdated,
    /// There are more pods than `replicas`.
    Excess,
}

/// What the planner asks the controller to do now.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create `count` pods of `revision`.
    Create { revision: String, count: i32 },
    /// Take `pod` out of traffic, then delete it (drain before delete).
    Remove { pod: String, reason: RemoveReason },
}

/// Pod counts of one observation, as status reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Alive pods of every revision.
    pub replicas: i32,
    /// Alive pods of the target revision.
    pub updated: i32,
    /// Alive Ready pods.
    pub ready: i32,
    /// Alive available pods.
    pub available: i32,
    /// Alive available pods of the target revision.
    pub updated_available: i32,
    /// Pods that count against maxSurge under the replacement policy: every pod that still
    /// exists with `TerminationComplete`; without the drained, terminating and finished ones with
    /// `TerminationStarted`.
    pub total: i32,
    /// Pods being retired or deleted that still exist (draining, terminating).
    pub retiring: i32,
}

/// The planner's answer for one observation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Actions to take now, creations first.
    pub actions: Vec<Action>,
    /// Counts before the actions.
    pub counts: Counts,
    /// Every pod runs the target revision, there are exactly `replicas` and all are available.
    pub complete: bool,
    /// When a time-based change happens next (a pod reaching minReadySeconds), if any.
    pub requeue_after: Option<Duration>,
}
