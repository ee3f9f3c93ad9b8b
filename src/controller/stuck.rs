//! Why an update does not move, read from what the reconcile already fetched: the new pods'
//! conditions and container statuses, the EndpointSlices of a drain, the analysis. Pure: the
//! answer is an input to the decision, which turns it into the `Blocked` condition, the status
//! message and an Event. A condition counts only once it held for [`GRACE`], measured from the
//! times the pod itself records, so that normal progress never shows as blocked.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

use super::pods;
use crate::crd::{AnalysisPhase, AnalysisStatus, BlockReason, READINESS_GATE, REVISION_LABEL};

/// How long a condition must hold before it is reported.
pub const GRACE: Duration = Duration::from_secs(30);

/// Waiting reasons of a container whose image cannot be pulled.
const PULL_ERRORS: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
];

/// Waiting reasons of a container that cannot be created or run as configured.
const CONFIG_ERRORS: [&str; 5] = [
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "PreStartHookError",
    "PostStartHookError",
];

/// What the classifier looks at.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// Every pod the rollout owns.
    pub pods: &'a [Arc<Pod>],
    /// The EndpointSlices of the namespace.
    pub slices: &'a [Arc<EndpointSlice>],
    /// Hash of the update revision.
    pub update: &'a str,
    /// The analysis of the update revision, when one runs.
    pub analysis: Option<&'a AnalysisStatus>,
    /// Every pod is updated and available: only the analysis is waited for.
    pub awaiting_analysis: bool,
    /// Now.
    pub now: Timestamp,
}

/// What holds the update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Why, as an enum.
    pub reason: BlockReason,
    /// For people: names the pod (or metric) and what it says.
    pub message: String,
    /// Since when the condition holds.
    pub since: Timestamp,
}

/// The classifier's answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// The block to report: the first by reason, then the oldest, then the pod name.
    pub block: Option<Block>,
    /// When a condition seen now has held for [`GRACE`] and should be looked at again.
    pub recheck: Option<Duration>,
}

/// Classifies what holds the update, if anything held for [`GRACE`]. Deterministic: the order
/// of `pods` and `slices` does not matter.
pub fn classify(input: &Input) -> Found {
    let mut seen: Vec<Block> = Vec::new();
    for pod in input.pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if pods::serving(pod) == Some(false) {
            seen.extend(drain(pod, input.slices));
        } else if pod.labels().get(REVISION_LABEL).map(String::as_str) == Some(input.update) {
            seen.extend(new_pod(pod));
        }
    }
    if let Some(a) = input.analysis.filter(|a| a.revision == input.update) {
        seen.extend(analysis(a, input.awaiting_analysis));
    }
    let due = |b: &Block| held(b, input.now) >= grace(b.reason);
    let recheck = seen
        .iter()
        .filter(|b| !due(b))
        .map(|b| grace(b.reason).saturating_sub(held(b, input.now)))
        .min();
    let block = seen
        .into_iter()
        .filter(due)
        .min_by(|a, b| (a.reason, a.since, &a.message).cmp(&(b.reason, b.since, &b.message)));
    Found { block, recheck }
}

/// An inconclusive analysis is a verdict, reported at once; anything else waits for [`GRACE`].
fn grace(reason: BlockReason) -> Duration {
    match reason {
        BlockReason::AnalysisInconclusive => Duration::ZERO,
        _ => GRACE,
    }
}

fn held(b: &Block, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(b.since)).unwrap_or_default()
}

fn block(reason: BlockReason, message: String, since: Timestamp) -> Option<Block> {
    Some(Block {
        reason,
        message,
        since,
    })
}

/// `(status, reason, message, lastTransitionTime)` of a pod condition.
fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<(&'a str, &'a str, &'a str, Timestamp)> {
    let c = pods::pod_condition(pod, type_)?;
    Some((
        c.status.as_str(),
        c.reason.as_deref().unwrap_or_default(),
        c.message.as_deref().unwrap_or_default(),
        c.last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_else(|| created(pod)),
    ))
}

fn created(pod: &Pod) -> Timestamp {
    pod.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// What holds a pod of the update revision, if anything.
fn new_pod(pod: &Pod) -> Option<Block> {
    let name = pod.name_any();
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if matches!(phase, "Succeeded" | "Failed") {
        return None;
    }
    if let Some(("False", "Unschedulable", message, since)) = condition(pod, "PodScheduled") {
        return block(
            BlockReason::PodUnschedulable,
            format!("pod {name} cannot be scheduled: {message}"),
            since,
        );
    }
    let containers: Vec<&ContainerStatus> = status
        .into_iter()
        .flat_map(|s| {
            let init = s.init_container_statuses.iter().flatten();
            init.chain(s.container_statuses.iter().flatten())
        })
        .collect();
    if let Some(b) = waiting_error(pod, &name, &containers) {
        return Some(b);
    }
    if let Some(c) = pods::crashing_container(pod) {
        let last = match &c.last_exit {
            Some((reason, code)) => format!(", last exit: {reason} code {code}"),
            None => String::new(),
        };
        return block(
            BlockReason::ContainerCrashLooping,
            format!(
                "pod {name}: container {} is crash-looping ({} restarts{last})",
                c.container, c.restarts
            ),
            created(pod),
        );
    }
    if phase == "Pending" {
        let waiting = containers.iter().find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            Some(format!(
                ": container {} is {}",
                c.name,
                w.reason.as_deref().unwrap_or("waiting")
            ))
        });
        return block(
            BlockReason::PodNotStarted,
            format!("pod {name} has not started{}", waiting.unwrap_or_default()),
            created(pod),
        );
    }
    not_ready(pod, &name, &containers)
}

/// A container waiting on an image pull or a configuration error.
fn waiting_error(pod: &Pod, name: &str, containers: &[&ContainerStatus]) -> Option<Block> {
    containers.iter().find_map(|c| {
        let w = c.state.as_ref()?.waiting.as_ref()?;
        let reason = w.reason.as_deref()?;
        let message = w.message.as_deref().unwrap_or_default();
        if PULL_ERRORS.contains(&reason) {
            block(
                BlockReason::ImagePullFailed,
                format!(
                    "pod {name}: container {} cannot pull image {} ({reason}): {message}",
                    c.name, c.image
                ),
                created(pod),
            )
        } else if CONFIG_ERRORS.contains(&reason) {
            block(
                BlockReason::ContainerConfigError,
                format!(
                    "pod {name}: container {} cannot start ({reason}): {message}",
                    c.name
                ),
                created(pod),
            )
        } else {
            None
        }
    })
}

/// A running pod whose Ready condition stays False: a container's readiness probe, or a
/// readiness gate other than the controller's own.
fn not_ready(pod: &Pod, name: &str, containers: &[&ContainerStatus]) -> Option<Block> {
    let (status, _, _, since) = condition(pod, "Ready")?;
    if status == "True" {
        return None;
    }
    let unready = containers
        .iter()
        .find(|c| !c.ready && c.state.as_ref().is_some_and(|s| s.running.is_some()));
    if let Some(c) = unready {
        let started = c
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref())
            .map(|t| t.0)
            .unwrap_or(since);
        return block(
            BlockReason::ReadinessNotReached,
            format!(
                "pod {name}: container {} runs but is not ready (readiness probe)",
                c.name
            ),
            since.max(started),
        );
    }
    let gates = pod.spec.as_ref().and_then(|s| s.readiness_gates.as_ref());
    let gate = gates.into_iter().flatten().find(|g| {
        g.condition_type != READINESS_GATE
            && condition(pod, &g.condition_type).is_none_or(|(s, ..)| s != "True")
    })?;
    block(
        BlockReason::ReadinessNotReached,
        format!(
            "pod {name}: readiness gate {} is not True",
            gate.condition_type
        ),
        since,
    )
}

/// A pod out of traffic that an EndpointSlice still lists as ready.
fn drain(pod: &Pod, slices: &[Arc<EndpointSlice>]) -> Option<Block> {
    let name = pod.name_any();
    let slice = pods::ready_in(&name, slices)?;
    let (_, _, _, since) = condition(pod, READINESS_GATE)?;
    block(
        BlockReason::DrainWaitingOnEndpoints,
        format!(
            "pod {name} is out of traffic but EndpointSlice {} still lists it as ready",
            slice.name_any()
        ),
        since,
    )
}

/// An inconclusive analysis, or one that waits for data of a metric once nothing else is left.
fn analysis(a: &AnalysisStatus, awaiting: bool) -> Option<Block> {
    let last_time = |phase: AnalysisPhase| {
        a.metrics
            .iter()
            .flat_map(|m| m.measurements.iter())
            .filter(|m| m.phase == phase)
            .map(|m| m.finished_at.0)
            .max()
    };
    match a.phase {
        AnalysisPhase::Inconclusive => block(
            BlockReason::AnalysisInconclusive,
            format!(
                "analysis inconclusive: {}",
                a.message.as_deref().unwrap_or("no verdict")
            ),
            last_time(AnalysisPhase::Inconclusive).unwrap_or(a.started_at.0),
        ),
        AnalysisPhase::Running if awaiting => a.metrics.iter().find_map(|m| {
            let last = m.measurements.last()?;
            let no_data = m.successful == 0
                && matches!(
                    last.phase,
                    AnalysisPhase::Inconclusive | AnalysisPhase::Error
                );
            no_data.then(|| Block {
                reason: BlockReason::AnalysisWaitingForData,
                message: format!(
                    "analysis has no usable measurement of metric {} yet: {}",
                    m.name,
                    last.message.as_deref().unwrap_or(last.phase.as_str())
                ),
                since: a.started_at.0,
            })
        }),
        _ => None,
    }
}

#[cfg(test)]
#[path = "stuck_tests.rs"]
mod tests;
