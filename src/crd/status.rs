//! `status` of a `ZeroDowntimeRollout`: what the controller observed and decided. Only the
//! controller writes it (server-side apply, one field manager); it never writes `spec`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a rollout stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Pods or traffic are moving towards the update revision.
    Progressing,
    /// Progress is held: `spec.paused`, a pause step, or an inconclusive analysis.
    Paused,
    /// Every pod runs the update revision and is available.
    Healthy,
    /// No progress within `progressDeadlineSeconds`, or the spec cannot be acted on.
    Degraded,
    /// The update was abandoned: traffic and pods went back to the stable revision.
    Aborted,
}

impl Phase {
    /// The name as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::Healthy => "Healthy",
            Phase::Degraded => "Degraded",
            Phase::Aborted => "Aborted",
        }
    }
}

/// Observed state of a rollout.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZeroDowntimeRolloutStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Progressing, Paused, Healthy, Degraded or Aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// One line for people, e.g. "wave 2/4: 6/10 updated, 9 available".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Pods that exist, of every revision, not counting pods being deleted.
    #[serde(default)]
    pub replicas: i32,

    /// Pods of the update revision.
    #[serde(default)]
    pub updated_replicas: i32,

    /// Pods whose Ready condition is True.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Pods Ready for at least minReadySeconds and still in traffic.
    #[serde(default)]
    pub available_replicas: i32,

    /// Pods being retired: taken out of traffic, draining, or terminating. They no longer count
    /// in `replicas`, and once out of traffic they do not hold the phase.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub terminating_replicas: i32,

    /// Revision hash every pod ran when the last update completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,

    /// Revision hash of the current template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,

    /// Index of the canary step being executed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,

    /// Percent of traffic sent to the canary, as last applied to the router (or, without a
    /// router, approximated by the canary's share of available pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<i32>,

    /// When the current canary step started: pause durations and analysis gates count from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,

    /// Header routes to the canary that are applied to the router now, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 48)))]
    pub header_routes: Vec<String>,

    /// Revision each of the canary's Services selects now: `stable` and `canary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<ServiceSelection>,

    /// Last value of the `zdr.dev/retry` annotation acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_token: Option<String>,

    /// Label selector of the pods, as a string, for the scale subresource and HPA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Last time the rollout made progress (a pod became available, a step completed);
    /// the progress deadline counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress_time: Option<Time>,

    /// Revision hash whose update was aborted. Re-applying a new template clears the abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_revision: Option<String>,

    /// In-place swaps towards the update (or, after an abort, back to the stable revision),
    /// with `spec.strategy.hotSwap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_swap: Option<super::HotSwapStatus>,

    /// The SLO analysis of the update revision: its phase and the last measurements of each
    /// metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<super::AnalysisStatus>,

    /// Available, Progressing, Paused, Aborted, Blocked: each with a reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The revisions the stable and canary Services select, as last written by the controller.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSelection {
    /// Revision hash in the stable Service's selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<String>,
    /// Revision hash in the canary Service's selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
}

/// Condition types the controller sets.
pub mod condition {
    /// At least `replicas - maxUnavailable` pods are available.
    pub const AVAILABLE: &str = "Available";
    /// The rollout is moving, or finished; False with reason ProgressDeadlineExceeded when stuck.
    pub const PROGRESSING: &str = "Progressing";
    /// Progress is held.
    pub const PAUSED: &str = "Paused";
    /// The update was aborted.
    pub const ABORTED: &str = "Aborted";
    /// The spec cannot be acted on (reason says why).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The canary's router or Services cannot be read or written (reason says why).
    pub const TRAFFIC_ROUTING: &str = "TrafficRouting";
    /// Something named holds the update (a `BlockReason`); absent when nothing does.
    pub const BLOCKED: &str = "Blocked";
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// Why an update was aborted: the `Aborted` condition's reason and the Event's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortReason {
    /// `kubectl zdr abort` (the `zdr.dev/abort` annotation).
    User,
    /// A metric of the analysis failed.
    AnalysisFailed,
    /// A container of the new revision is crash-looping.
    CrashLooping,
    /// No progress within progressDeadlineSeconds, with progressDeadlineAbort.
    ProgressDeadline,
    /// A pod's in-place swap failed.
    HotSwapFailed,
}

impl AbortReason {
    /// Every reason, for parsing.
    pub const ALL: [AbortReason; 5] = [
        AbortReason::User,
        AbortReason::AnalysisFailed,
        AbortReason::CrashLooping,
        AbortReason::ProgressDeadline,
        AbortReason::HotSwapFailed,
    ];

    /// The condition reason.
    pub fn as_str(self) -> &'static str {
        match self {
            AbortReason::User => "AbortedByUser",
            AbortReason::AnalysisFailed => "AnalysisFailed",
            AbortReason::CrashLooping => "CanaryCrashLooping",
            AbortReason::ProgressDeadline => "ProgressDeadlineExceeded",
            AbortReason::HotSwapFailed => "HotSwapFailed",
        }
    }

    /// The Event reason (a deadline's abort is announced as `RolloutAborted`, since the
    /// `ProgressDeadlineExceeded` Event already tells of the deadline).
    pub fn event_reason(self) -> &'static str {
        match self {
            AbortReason::ProgressDeadline => "RolloutAborted",
            r => r.as_str(),
        }
    }

    /// The reason a condition names, if it is one of these.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Why progress is held: the `Paused` condition's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldReason {
    /// An analysis measurement was inconclusive: a person resumes.
    AnalysisInconclusive,
    /// A canary pause step with a duration.
    CanaryPauseStep,
    /// A canary pause step without a duration: `kubectl zdr promote`.
    AwaitingPromotion,
}

impl HoldReason {
    /// The condition reason.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::AnalysisInconclusive => "AnalysisInconclusive",
            HoldReason::CanaryPauseStep => "CanaryPauseStep",
            HoldReason::AwaitingPromotion => "AwaitingPromotion",
        }
    }
}

/// What pauses a rollout, when something does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PausedBy {
    /// `spec.paused` is true.
    Spec,
    /// The `zdr.dev/paused` annotation is present.
    Annotation,
}

impl PausedBy {
    /// The Paused condition's reason.
    pub fn as_str(self) -> &'static str {
        match self {
            PausedBy::Spec => "SpecPaused",
            PausedBy::Annotation => "PausedByAnnotation",
        }
    }

    /// The Paused condition's message.
    pub fn message(self) -> String {
        match self {
            PausedBy::Spec => "spec.paused is true".to_string(),
            PausedBy::Annotation => format!("annotation {} is set", super::PAUSED_ANNOTATION),
        }
    }
}

/// The Paused condition's reason when nothing holds progress.
pub const NOT_PAUSED_REASON: &str = "Resumed";

/// What holds an update, read from what the pods, the EndpointSlices and the analysis say: the
/// `Blocked` condition's reason and the Event's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlockReason {
    /// The scheduler finds no node for a new pod (its PodScheduled=False message says why).
    PodUnschedulable,
    /// The kubelet cannot pull a container image of a new pod.
    ImagePullFailed,
    /// A container of a new pod cannot be created (a missing ConfigMap or Secret, a bad command).
    ContainerConfigError,
    /// A container of a new pod keeps exiting.
    ContainerCrashLooping,
    /// A new pod is on a node but its containers have not started.
    PodNotStarted,
    /// A new pod runs but does not turn Ready (a readiness probe or gate fails).
    ReadinessNotReached,
    /// A pod taken out of traffic is still listed as ready by an EndpointSlice.
    DrainWaitingOnEndpoints,
    /// The analysis was inconclusive: a person resumes it.
    AnalysisInconclusive,
    /// The analysis has no usable measurement of a metric yet (no data, or errors).
    AnalysisWaitingForData,
}

impl BlockReason {
    /// Every reason, for parsing and the docs.
    pub const ALL: [BlockReason; 9] = [
        BlockReason::PodUnschedulable,
        BlockReason::ImagePullFailed,
        BlockReason::ContainerConfigError,
        BlockReason::ContainerCrashLooping,
        BlockReason::PodNotStarted,
        BlockReason::ReadinessNotReached,
        BlockReason::DrainWaitingOnEndpoints,
        BlockReason::AnalysisInconclusive,
        BlockReason::AnalysisWaitingForData,
    ];

    /// The condition reason.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::PodUnschedulable => "PodUnschedulable",
            BlockReason::ImagePullFailed => "ImagePullFailed",
            BlockReason::ContainerConfigError => "ContainerConfigError",
            BlockReason::ContainerCrashLooping => "ContainerCrashLooping",
            BlockReason::PodNotStarted => "PodNotStarted",
            BlockReason::ReadinessNotReached => "ReadinessNotReached",
            BlockReason::DrainWaitingOnEndpoints => "DrainWaitingOnEndpoints",
            BlockReason::AnalysisInconclusive => "AnalysisInconclusive",
            BlockReason::AnalysisWaitingForData => "AnalysisWaitingForData",
        }
    }

    /// The reason a condition names, if it is one of these.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}
