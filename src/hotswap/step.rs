//! The next step of one pod's hot swap towards a target revision ([`next`]), and the JSON patch
//! that takes it ([`patch`]). Every patch first tests the pod's swap generation, so a step
//! written twice (a controller restarted mid-write, two leaders for a moment) fails instead of
//! starting a second operation. Pure.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::state::{Failure, PodSwap, Progress};
use crate::contract::pod::{
    ACTIVE_SLOT_ANNOTATION, GENERATION_ANNOTATION, SWAP_FROM_ANNOTATION, SWAP_STARTED_ANNOTATION,
    Slot, UNREADY_MS_ANNOTATION,
};
use crate::crd::REVISION_LABEL;

/// What one pod needs next.
#[derive(Clone, Debug, PartialEq)]
pub enum PodStep {
    /// It runs the target revision; nothing to do.
    Current,
    /// An operation is under way.
    Wait,
    /// The operation finished (or the label lags): clear the operation and label the pod with
    /// its active revision.
    Settle {
        /// The label to write, when it differs.
        relabel: Option<String>,
        /// A swap finished: how long it kept the pod out of endpoints.
        swapped: Option<Duration>,
    },
    /// The swap into the active slot failed: name the other slot active again (its version
    /// never stopped serving) and park the failed one.
    Revert(Failure),
    /// Parking the idle slot failed (its container does not come up with the agent image).
    ParkFailed(Failure),
    /// Park the idle slot: its image already equals the target's, and the kubelet only
    /// restarts a container whose image changes.
    Park(Slot),
    /// Swap the target into the idle slot.
    Swap {
        /// The idle slot.
        slot: Slot,
        /// The target's image.
        image: String,
        /// The target revision.
        revision: String,
    },
}

impl PodStep {
    /// Whether taking this step restarts a container, taking the pod out of endpoints.
    pub fn restarts(&self) -> bool {
        matches!(self, PodStep::Park(_) | PodStep::Swap { .. })
    }
}

/// The next step for `pod` towards `revision`, whose image of the swapped container is `image`.
pub fn next(pod: &PodSwap, revision: &str, image: &str) -> PodStep {
    let active = pod.active_revision().map(str::to_string);
    if let Some(op) = &pod.op {
        match &op.progress {
            Progress::Running => return PodStep::Wait,
            Progress::Failed(f) if op.slot == pod.active => return PodStep::Revert(f.clone()),
            Progress::Failed(f) => return PodStep::ParkFailed(f.clone()),
            Progress::Done { unready } => {
                return PodStep::Settle {
                    relabel: active.filter(|a| pod.label.as_ref() != Some(a)),
                    swapped: (op.slot == pod.active).then_some(*unready),
                };
            }
        }
    }
    if let Some(a) = active.as_ref().filter(|a| pod.label.as_ref() != Some(*a)) {
        return PodStep::Settle {
            relabel: Some(a.clone()),
            swapped: None,
        };
    }
    if active.as_deref() == Some(revision) {
        return PodStep::Current;
    }
    let idle = pod.active.other();
    if pod.image(idle) == image {
        PodStep::Park(idle)
    } else {
        PodStep::Swap {
            slot: idle,
            image: image.to_string(),
            revision: revision.to_string(),
        }
    }
}

/// The JSON patch of `step` on `pod`, whose user container is `container`; `index` gives the
/// position of a container in `spec.containers`. None for steps that write nothing.
pub fn patch(
    pod: &PodSwap,
    step: &PodStep,
    container: &str,
    index: impl Fn(&str) -> Option<usize>,
    agent_image: &str,
    now: Timestamp,
) -> Option<Value> {
    let mut ops = vec![test(
        &annotation(GENERATION_ANNOTATION),
        &pod.generation.to_string(),
    )];
    let mut restart = |slot: Slot, image: &str, revision: &str, active: Slot| {
        let name = slot.container(container);
        let i = index(name)?;
        ops.extend([
            test(&format!("/spec/containers/{i}/name"), name),
            add(&format!("/spec/containers/{i}/image"), image),
            add(&annotation(slot.revision_annotation()), revision),
            add(&annotation(ACTIVE_SLOT_ANNOTATION), active.as_str()),
            add(
                &annotation(GENERATION_ANNOTATION),
                &(pod.generation + 1).to_string(),
            ),
            add(
                &annotation(SWAP_FROM_ANNOTATION),
                &format!("{slot}/{}", pod.container_id(slot).unwrap_or_default()),
            ),
            add(&annotation(SWAP_STARTED_ANNOTATION), &now.to_string()),
        ]);
        Some(())
    };
    match step {
        PodStep::Current | PodStep::Wait | PodStep::ParkFailed(_) => return None,
        PodStep::Swap {
            slot,
            image,
            revision,
        } => restart(*slot, image, revision, *slot)?,
        PodStep::Park(slot) => restart(*slot, agent_image, "", pod.active)?,
        PodStep::Revert(_) => {
            let failed = pod.active;
            restart(failed, agent_image, "", failed.other())?
        }
        PodStep::Settle { relabel, swapped } => {
            if pod.op.is_some() {
                ops.push(remove(&annotation(SWAP_FROM_ANNOTATION)));
                ops.push(remove(&annotation(SWAP_STARTED_ANNOTATION)));
            }
            if let Some(label) = relabel {
                ops.push(add(
                    &format!("/metadata/labels/{}", escape(REVISION_LABEL)),
                    label,
                ));
            }
            if let Some(d) = swapped {
                ops.push(add(
                    &annotation(UNREADY_MS_ANNOTATION),
                    &d.as_millis().to_string(),
                ));
            }
        }
    }
    Some(Value::Array(ops))
}

fn annotation(key: &str) -> String {
    format!("/metadata/annotations/{}", escape(key))
}

/// A JSON pointer token (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn test(path: &str, value: &str) -> Value {
    json!({"op": "test", "path": path, "value": value})
}

fn add(path: &str, value: &str) -> Value {
    json!({"op": "add", "path": path, "value": value})
}

fn remove(path: &str) -> Value {
    json!({"op": "remove", "path": path})
}
