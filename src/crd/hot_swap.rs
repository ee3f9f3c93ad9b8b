//! Hot swaps in the rollout's status: `status.hotSwap` (per-pod states of the swap in
//! progress) and the words of the `HotSwap` condition, its reasons and messages.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::contract::pod::{MOUNT_PATH, STATUS_PORT, Slot, VOLUME};
use crate::hotswap::state::Failure;
use crate::hotswap::{NotEligible, RenderError, Side};

/// The condition type.
pub const TYPE: &str = "HotSwap";
/// Reason of the `Ready` condition when the template cannot be rendered as a hot-swap pod.
pub const INVALID_REASON: &str = "HotSwapInvalid";

/// `status.hotSwap`: the in-place swaps towards one revision.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HotSwapStatus {
    /// The revision the pods are swapped to.
    pub revision: String,
    /// Pods that still run another revision and wait for their turn.
    pub pending: i32,
    /// Pods whose swap (or the parking of their idle slot) is under way.
    pub swapping: i32,
    /// Pods that run the revision.
    pub swapped: i32,
    /// Pods whose swap failed.
    pub failed: i32,
    /// The longest time a pod swapped to this revision spent out of endpoints, in
    /// milliseconds (the goal is zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unready_milliseconds: Option<i64>,
    /// The pods swapping or failed now (at most 20), failed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub pods: Vec<PodSwapStatus>,
}

/// One pod's swap.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodSwapStatus {
    /// Pod name.
    pub name: String,
    /// Where its swap is.
    pub state: PodSwapState,
    /// For people: the slot, and why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where one pod's swap is.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodSwapState {
    /// Runs another revision; waits for its turn in a wave.
    Pending,
    /// Its idle slot is being parked before the swap (the slot held the target image).
    Parking,
    /// The new version is starting in the idle slot; the old one serves.
    Swapping,
    /// Runs the revision.
    Swapped,
    /// The swap failed; the old version still serves.
    Failed,
}

/// The condition's reasons.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reason {
    /// Image-only updates will be swapped in place; none is in progress.
    #[default]
    Ready,
    /// The update in progress is swapped in place.
    InPlace,
    /// The update in progress changes more than the image.
    NotEligible,
    /// The canary strategy replaces pods.
    CanaryStrategy,
    /// maxUnavailable 0, or a single replica: a swap would take capacity out of traffic.
    NoUnavailableBudget,
    /// A pod lacks the hot-swap layout (created before hotSwap was set, or adopted).
    PodsNotLaidOut,
    /// A revision's template is gone from the ControllerRevisions.
    RevisionUnknown,
}

impl Reason {
    /// The condition reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ready => "Ready",
            Reason::InPlace => "InPlace",
            Reason::NotEligible => "NotEligible",
            Reason::CanaryStrategy => "CanaryStrategy",
            Reason::NoUnavailableBudget => "NoUnavailableBudget",
            Reason::PodsNotLaidOut => "PodsNotLaidOut",
            Reason::RevisionUnknown => "RevisionUnknown",
        }
    }

    /// The condition status: True while in-place swaps are used or ready to be.
    pub fn status(self) -> &'static str {
        match self {
            Reason::Ready | Reason::InPlace => "True",
            _ => "False",
        }
    }
}

/// The message when no update is in progress.
pub fn ready_message(container: &str) -> String {
    format!(
        "updates that change only the image of container {container} are swapped inside the running pods (rolling strategy, maxUnavailable of at least 1, 2 replicas or more); other changes replace pods"
    )
}

/// The message while an update is swapped in place.
pub fn in_place_message(container: &str, image: &str, s: &HotSwapStatus) -> String {
    format!(
        "swapping container {container} in place to {image}: {} swapped, {} swapping, {} pending, {} failed",
        s.swapped, s.swapping, s.pending, s.failed
    )
}

/// The message when an update replaces pods instead; `why` from the other functions here.
pub fn replace_message(container: &str, why: &str) -> String {
    format!(
        "this update is not swapped in place in container {container}: {why}: pods are replaced, drained first"
    )
}

/// Why the canary strategy replaces pods.
pub const CANARY: &str = "the canary strategy routes traffic by pod revision, so it replaces pods";

/// Why no budget allows a swap.
pub fn no_budget(replicas: i32, max_unavailable: i32) -> String {
    if replicas < 2 {
        format!(
            "with {replicas} replica, its swap would leave no pod in traffic while the slot restarts"
        )
    } else {
        format!(
            "maxUnavailable is {max_unavailable}, and a swap takes each pod out of traffic while its slot restarts"
        )
    }
}

/// Why a pod cannot be swapped.
pub fn not_laid_out(pod: &str, why: &impl std::fmt::Display) -> String {
    format!("pod {pod} has no hot-swap layout ({why})")
}

/// Why a revision cannot be compared.
pub fn revision_unknown(revision: &str) -> String {
    format!("the template of revision {revision} is no longer known")
}

/// Why a swap failed, for people.
pub fn failure(f: &Failure) -> String {
    let (what, message) = match f {
        Failure::Exited { code, message } => (format!("exited with code {code}"), message),
        Failure::Stuck { reason, message } => (format!("is in {reason}"), message),
        Failure::Timeout(d) => {
            return format!("the new container was not ready within {}s", d.as_secs());
        }
    };
    if message.is_empty() {
        format!("the new container {what}")
    } else {
        format!("the new container {what}: {message}")
    }
}

/// Why a template cannot be rendered as a hot-swap pod, for people (after the field path).
pub fn render_error(e: &RenderError) -> String {
    match e {
        RenderError::ContainerMissing { container } => {
            format!("the template has no container {container}")
        }
        RenderError::NoCommand { .. } => "a hot-swap container needs an explicit command: zdr-agent exec wraps it, and the controller cannot read image entrypoints".into(),
        RenderError::ExecProbe { .. } => "an exec probe would run in one slot's image only: use httpGet, tcpSocket or grpc".into(),
        RenderError::UnknownProbePort { port, .. } => {
            format!("the probe's port {port:?} is not a named port of the container")
        }
        RenderError::NoTcpPort { .. } => "a hot-swap container needs at least one TCP containerPort: the zdr-agent sidecar holds its sockets".into(),
        RenderError::NotTcp { protocol, .. } => {
            format!("{protocol} ports cannot be held by the zdr-agent sidecar: only TCP")
        }
        RenderError::StatusPort { .. } => {
            format!("port {STATUS_PORT} is the zdr-agent sidecar's status port in a hot-swap pod")
        }
        RenderError::ContainerName { name, .. } => {
            format!("{name:?} is the name of a container zdr adds to hot-swap pods")
        }
        RenderError::VolumeName { .. } => {
            format!("{VOLUME:?} is the name of the volume zdr adds to hot-swap pods")
        }
        RenderError::MountPath { path, .. } => format!(
            "{path:?} is at or under {MOUNT_PATH}, where zdr mounts its volume in hot-swap pods"
        ),
        RenderError::EnvName { name, .. } => {
            format!("{name} is set by zdr in hot-swap pods (the slot's claim)")
        }
    }
}

/// Why a change cannot be swapped in place, for people.
pub fn not_eligible(why: &NotEligible) -> String {
    match why {
        NotEligible::ContainerMissing { container, side } => {
            let which = match side {
                Side::Old => "running",
                Side::New => "new",
            };
            format!("the {which} template has no container {container}")
        }
        NotEligible::ImageUnchanged { container } => {
            format!("the image of container {container} does not change")
        }
        NotEligible::OtherContainerChanged { container } => {
            format!("container {container} changed too")
        }
        NotEligible::ContainerFieldChanged { container, field } => {
            format!("container {container}'s {field} changed")
        }
        NotEligible::PodFieldChanged { field } => format!("the pod's {field} changed"),
    }
}

/// Event reason: a pod's swap started.
pub const STARTED_EVENT: &str = "HotSwapStarted";
/// Event reason: a pod runs the new revision after its swap.
pub const SUCCEEDED_EVENT: &str = "HotSwapSucceeded";
/// Event reason: a pod's swap failed.
pub const FAILED_EVENT: &str = "HotSwapFailed";

/// The Event when a pod's swap starts.
pub fn started_message(
    pod: &str,
    container: &str,
    image: &str,
    revision: &str,
    slot: Slot,
) -> String {
    format!(
        "pod {pod}: swapping container {container} to {image} (revision {revision}) in slot {slot}"
    )
}

/// The Event when a pod's swap succeeded.
pub fn succeeded_message(pod: &str, revision: &str, unready: std::time::Duration) -> String {
    format!(
        "pod {pod} runs revision {revision} after an in-place swap; out of endpoints for {:.1}s",
        unready.as_secs_f64()
    )
}

/// The Event when a pod's swap failed.
pub fn failed_message(pod: &str, revision: &str, f: &Failure) -> String {
    format!(
        "pod {pod}: the swap to revision {revision} failed: {}; the old version still serves",
        failure(f)
    )
}

/// A pod's operation in progress, for `status.hotSwap.pods`.
pub fn slot_message(slot: Slot, since: jiff::Timestamp) -> String {
    format!("slot {slot} restarting since {since}")
}

/// The abort's note when a pod's swap failed.
pub fn abort_note(pod: &str, why: &str) -> String {
    format!("pod {pod}: hot swap failed: {why}")
}
