//! Pods as the controller sees them: building a pod from the template, reducing a pod to the
//! planner's `PodView`, and the drain-before-delete steps of retiring one. All pure.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodReadinessGate, PodTemplateSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{Resource, ResourceExt};

use crate::crd::{READINESS_GATE, REVISION_LABEL, ZeroDowntimeRollout};
use crate::hotswap::{AgentImage, RenderError};
use crate::planner::{PodPhase, PodView};

/// Annotation set on a retiring pod once no EndpointSlice lists it as ready any more; the
/// propagation delay counts from it.
pub const DRAINED_AT_ANNOTATION: &str = "zdr.dev/drained-at";

/// A pod for `revision` of `zdr`, from `template`: with `spec.strategy.hotSwap`, rendered as a
/// hot-swap pod running `agent` ([`crate::hotswap::render`]); the revision label, a controller
/// owner reference and the `zdr.dev/serving` readiness gate are added.
pub fn build_pod(
    zdr: &ZeroDowntimeRollout,
    template: &PodTemplateSpec,
    revision: &str,
    name: String,
    agent: &AgentImage,
) -> Result<Pod, RenderError> {
    let rendered;
    let template = match &zdr.spec.strategy.hot_swap {
        Some(hs) => {
            rendered = crate::hotswap::render(template, hs, agent, revision)?;
            &rendered
        }
        None => template,
    };
    let mut meta = template.metadata.clone().unwrap_or_default();
    meta.name = Some(name);
    meta.namespace = zdr.namespace();
    meta.generate_name = None;
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_LABEL.to_string(), revision.to_string());
    meta.owner_references = zdr.controller_owner_ref(&()).map(|o| vec![o]);
    let mut spec = template.spec.clone().unwrap_or_default();
    let gates = spec.readiness_gates.get_or_insert_with(Vec::new);
    if !gates.iter().any(|g| g.condition_type == READINESS_GATE) {
        gates.push(PodReadinessGate {
            condition_type: READINESS_GATE.to_string(),
        });
    }
    Ok(Pod {
        metadata: meta,
        spec: Some(spec),
        status: None,
    })
}

/// A fresh pod name: `<rollout>-<revision>-<5 random chars>`, short enough for a hostname.
pub fn pod_name(zdr_name: &str, revision: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    let mut r = h.finish();
    let suffix: String = (0..5)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
            r /= ALPHABET.len() as u64;
            c
        })
        .collect();
    let prefix: String = zdr_name.chars().take(63 - revision.len() - 7).collect();
    format!("{}-{revision}-{suffix}", prefix.trim_end_matches('-'))
}

/// Whether the pod carries the controller's readiness gate (adopted pods may not).
pub fn has_gate(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .is_some_and(|g| g.iter().any(|g| g.condition_type == READINESS_GATE))
}

/// The pod's condition of this type, if its status has one.
pub fn pod_condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn condition(pod: &Pod, type_: &str) -> Option<(bool, Option<Timestamp>)> {
    pod_condition(pod, type_).map(|c| {
        (
            c.status == "True",
            c.last_transition_time.as_ref().map(|t| t.0),
        )
    })
}

/// The serving gate's state: `Some(true)` in traffic, `Some(false)` retiring, `None` not set yet.
pub fn serving(pod: &Pod) -> Option<bool> {
    condition(pod, READINESS_GATE).map(|(s, _)| s)
}

/// Whether the pod's own Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    condition(pod, "Ready").is_some_and(|(s, _)| s)
}

/// The planner's view of a pod; `slices` tell whether a retiring pod is still in traffic.
pub fn pod_view(pod: &Pod, slices: &[std::sync::Arc<EndpointSlice>]) -> PodView {
    let status = pod.status.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        Some("Unknown") => PodPhase::Unknown,
        _ => PodPhase::Pending,
    };
    let scheduled = condition(pod, "PodScheduled").is_some_and(|(s, _)| s)
        || pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some();
    let ready_since = match condition(pod, "Ready") {
        Some((true, since)) => Some(since.unwrap_or(Timestamp::UNIX_EPOCH)),
        _ => None,
    };
    let retiring = serving(pod) == Some(false);
    PodView {
        drained: retiring && !is_ready(pod) && !listed_ready(&pod.name_any(), slices),
        name: pod.name_any(),
        revision: pod.labels().get(REVISION_LABEL).cloned(),
        created: pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH),
        scheduled,
        phase,
        ready_since,
        retiring,
        terminating: pod.metadata.deletion_timestamp.is_some(),
    }
}

/// Whether any EndpointSlice lists the pod as a ready endpoint (an absent `ready` counts as
/// ready, as the EndpointSlice API defines).
pub fn listed_ready(pod_name: &str, slices: &[std::sync::Arc<EndpointSlice>]) -> bool {
    ready_in(pod_name, slices).is_some()
}

/// The first EndpointSlice that lists the pod as a ready endpoint.
pub fn ready_in<'a>(
    pod_name: &str,
    slices: &'a [std::sync::Arc<EndpointSlice>],
) -> Option<&'a EndpointSlice> {
    slices
        .iter()
        .find(|s| {
            s.endpoints.iter().any(|e| {
                e.target_ref.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some("Pod") && r.name.as_deref() == Some(pod_name)
                }) && e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
            })
        })
        .map(AsRef::as_ref)
}

/// Restarts of a container from which it counts as crash-looping.
pub const CRASH_RESTARTS: i32 = 3;

/// A container that keeps exiting, as its status tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crash {
    /// Container name.
    pub container: String,
    /// Its restart count.
    pub restarts: i32,
    /// The waiting reason, e.g. `CrashLoopBackOff`.
    pub waiting: Option<String>,
    /// The last termination: reason (e.g. `Error`, `OOMKilled`) and exit code.
    pub last_exit: Option<(String, i32)>,
}

/// The first container of `pod` in `CrashLoopBackOff` or restarted at least
/// [`CRASH_RESTARTS`] times.
pub fn crashing_container(pod: &Pod) -> Option<Crash> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|c| {
        let waiting = c
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone());
        let looping = waiting.as_deref() == Some("CrashLoopBackOff");
        (looping || c.restart_count >= CRASH_RESTARTS).then(|| Crash {
            container: c.name.clone(),
            restarts: c.restart_count,
            waiting,
            last_exit: c
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map(|t| (t.reason.clone().unwrap_or_default(), t.exit_code)),
        })
    })
}

/// Whether any EndpointSlice lists the pod at all.
pub fn listed(pod_name: &str, slices: &[std::sync::Arc<EndpointSlice>]) -> bool {
    slices.iter().any(|s| {
        s.endpoints.iter().any(|e| {
            e.target_ref
                .as_ref()
                .is_some_and(|r| r.name.as_deref() == Some(pod_name))
        })
    })
}

/// What to do next with a pod the planner removes or that is already retiring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetireStep {
    /// Delete now: it serves no traffic (not Ready, in no EndpointSlice, or the drain is done).
    Delete,
    /// Set the serving gate False to take it out of traffic.
    TakeOutOfTraffic,
    /// Record that no EndpointSlice lists it as ready any more.
    MarkDrained,
    /// Wait for the endpoints to catch up (a watch event wakes us) or until the delay ends.
    Wait(Option<Duration>),
}

/// The next retirement step for `pod`. `in_slices` / `ready_in_slices`: whether any
/// EndpointSlice lists the pod at all / as ready.
pub fn retire_step(
    pod: &Pod,
    in_slices: bool,
    ready_in_slices: bool,
    propagation: Duration,
    now: Timestamp,
) -> RetireStep {
    let retiring = serving(pod) == Some(false);
    if !retiring {
        // Not in traffic at all (not Ready, and no slice routes to it): it can go at once. A
        // pod without the gate cannot be taken out of traffic by us; it goes through its own
        // graceful termination. A Ready pod is always taken out first, Service or not: a
        // Ready pod may be in traffic through anything that watches readiness.
        if !has_gate(pod) || (!is_ready(pod) && !ready_in_slices) {
            return RetireStep::Delete;
        }
        return RetireStep::TakeOutOfTraffic;
    }
    // The kubelet must have flipped Ready to False and every slice must have caught up.
    if is_ready(pod) || ready_in_slices {
        return RetireStep::Wait(None);
    }
    if !in_slices {
        // No EndpointSlice lists it at all: nothing has to propagate.
        return RetireStep::Delete;
    }
    let drained_at = pod
        .annotations()
        .get(DRAINED_AT_ANNOTATION)
        .and_then(|v| v.parse::<Timestamp>().ok());
    match drained_at {
        None => RetireStep::MarkDrained,
        Some(at) => {
            let elapsed = now.duration_since(at);
            let elapsed = Duration::try_from(elapsed).unwrap_or_default();
            if elapsed >= propagation {
                RetireStep::Delete
            } else {
                RetireStep::Wait(Some(propagation - elapsed))
            }
        }
    }
}

#[cfg(test)]
mod tests;
