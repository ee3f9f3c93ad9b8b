//! One pod's hot swap as the controller sees it: what the pod's annotations asked (the active
//! slot, the generation, the operation in progress) and what its container statuses say
//! happened, reduced to a [`PodSwap`]. Pure; `docs/hotswap.md` describes the layout.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::contract::pod::{
    ACTIVE_SLOT_ANNOTATION, GENERATION_ANNOTATION, SWAP_FROM_ANNOTATION, SWAP_STARTED_ANNOTATION,
    Slot, UNREADY_MS_ANNOTATION,
};
use crate::crd::REVISION_LABEL;

/// Container states in which a restarted slot will not come up by itself.
const FAILED_WAITING: [&str; 7] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// A hot-swap pod as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct PodSwap {
    /// Pod name.
    pub name: String,
    /// The slot the controller wants serving.
    pub active: Slot,
    /// The pod's swap generation.
    pub generation: u64,
    /// The revision each slot runs (`[a, b]`); None: parked.
    pub revisions: [Option<String>; 2],
    /// The image each slot's container has in the spec (`[a, b]`).
    pub images: [String; 2],
    /// The `zdr.dev/revision` label.
    pub label: Option<String>,
    /// The container ID each slot runs now, from its status (`[a, b]`).
    pub container_ids: [Option<String>; 2],
    /// The operation in progress or last done, if any.
    pub op: Option<Op>,
    /// How long the last completed swap kept the pod out of endpoints, in milliseconds.
    pub unready_ms: Option<u64>,
}

impl PodSwap {
    /// The revision the active slot runs.
    pub fn active_revision(&self) -> Option<&str> {
        self.revision(self.active)
    }

    /// The revision `slot` runs.
    pub fn revision(&self, slot: Slot) -> Option<&str> {
        self.revisions[index(slot)].as_deref()
    }

    /// The image of `slot`'s container in the spec.
    pub fn image(&self, slot: Slot) -> &str {
        &self.images[index(slot)]
    }

    /// The container ID `slot` runs now.
    pub fn container_id(&self, slot: Slot) -> Option<&str> {
        self.container_ids[index(slot)].as_deref()
    }

    /// Whether an operation is still under way.
    pub fn busy(&self) -> bool {
        matches!(
            self.op,
            Some(Op {
                progress: Progress::Running,
                ..
            })
        )
    }
}

/// An operation the controller started on one slot: a swap into the active slot, or the
/// parking of the idle one.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// The slot whose container the operation restarts.
    pub slot: Slot,
    /// When it was started.
    pub since: Timestamp,
    /// How far it got.
    pub progress: Progress,
}

/// How far an operation got.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// The slot has not come up with its new container yet.
    Running,
    /// The slot runs its new container and is ready.
    Done {
        /// How long the pod was out of endpoints for it (from the operation's start to the
        /// pod's Ready again; zero when the pod never left).
        unready: Duration,
    },
    /// The slot's new container failed.
    Failed(Failure),
}

/// Why a slot's new container failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// It exited with this code; for the agent's [`crate::contract::pod::EXIT_SWAP_FAILED`],
    /// the message is the agent's reason.
    Exited {
        /// Exit code.
        code: i32,
        /// Termination message, reason or nothing.
        message: String,
    },
    /// It waits in a state it will not leave by itself (a crash loop, an image that cannot be
    /// pulled).
    Stuck {
        /// The kubelet's reason, e.g. `ImagePullBackOff`.
        reason: String,
        /// The kubelet's message.
        message: String,
    },
    /// It was not ready within the swap timeout.
    Timeout(Duration),
}

/// Why a pod cannot be swapped in place: it does not have the hot-swap layout.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotLaidOut {
    /// An annotation of the layout is missing or unreadable.
    #[error("annotation {0} is missing or unreadable")]
    Annotation(&'static str),
    /// A slot's container is missing.
    #[error("container {0} is missing")]
    Container(String),
}

/// `slot` as an index into the per-slot arrays.
pub fn index(slot: Slot) -> usize {
    match slot {
        Slot::A => 0,
        Slot::B => 1,
    }
}

/// Reads `pod`, whose user container is `container`. `timeout` bounds how long a slot may take
/// to come up after an operation started.
pub fn observe(
    pod: &Pod,
    container: &str,
    timeout: Duration,
    now: Timestamp,
) -> Result<PodSwap, NotLaidOut> {
    let ann = pod.metadata.annotations.clone().unwrap_or_default();
    let get = |k: &'static str| ann.get(k).ok_or(NotLaidOut::Annotation(k));
    let active = Slot::parse(get(ACTIVE_SLOT_ANNOTATION)?)
        .ok_or(NotLaidOut::Annotation(ACTIVE_SLOT_ANNOTATION))?;
    let generation = get(GENERATION_ANNOTATION)?
        .parse()
        .map_err(|_| NotLaidOut::Annotation(GENERATION_ANNOTATION))?;
    let mut revisions: [Option<String>; 2] = [None, None];
    let mut images = [String::new(), String::new()];
    let mut container_ids: [Option<String>; 2] = [None, None];
    let spec = pod.spec.clone().unwrap_or_default();
    for slot in Slot::ALL {
        let name = slot.container(container);
        let rev = get(slot.revision_annotation())?;
        revisions[index(slot)] = (!rev.is_empty()).then(|| rev.clone());
        images[index(slot)] = spec
            .containers
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| NotLaidOut::Container(name.to_string()))?
            .image
            .clone()
            .unwrap_or_default();
        container_ids[index(slot)] = status_of(pod, name).and_then(|s| s.container_id.clone());
    }
    let op = operation(pod, container, &ann, timeout, now);
    Ok(PodSwap {
        name: pod.metadata.name.clone().unwrap_or_default(),
        active,
        generation,
        revisions,
        images,
        label: pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_LABEL))
            .cloned(),
        container_ids,
        op,
        unready_ms: ann.get(UNREADY_MS_ANNOTATION).and_then(|v| v.parse().ok()),
    })
}

/// The operation the annotations record, and how far it got.
fn operation(
    pod: &Pod,
    container: &str,
    ann: &std::collections::BTreeMap<String, String>,
    timeout: Duration,
    now: Timestamp,
) -> Option<Op> {
    let (slot, from) = ann.get(SWAP_FROM_ANNOTATION)?.split_once('/')?;
    let slot = Slot::parse(slot)?;
    let since: Timestamp = ann.get(SWAP_STARTED_ANNOTATION)?.parse().ok()?;
    let status = status_of(pod, slot.container(container));
    let mut progress = status
        .map(|s| progress(pod, s, from, since))
        .unwrap_or(Progress::Running);
    if progress == Progress::Running && elapsed(since, now) > timeout {
        progress = Progress::Failed(Failure::Timeout(timeout));
    }
    Some(Op {
        slot,
        since,
        progress,
    })
}

/// How far a slot that ran container `from` before the operation got.
fn progress(pod: &Pod, s: &ContainerStatus, from: &str, since: Timestamp) -> Progress {
    let restarted = s.container_id.as_deref().unwrap_or_default() != from;
    if !restarted {
        return Progress::Running;
    }
    // An exit of a container started by this operation (not the one it replaced).
    if let Some(t) = s.last_state.as_ref().and_then(|l| l.terminated.as_ref())
        && t.container_id.as_deref().unwrap_or_default() != from
        && t.exit_code != 0
    {
        let message = t
            .message
            .clone()
            .or_else(|| t.reason.clone())
            .unwrap_or_default();
        return Progress::Failed(Failure::Exited {
            code: t.exit_code,
            message: message.trim().to_string(),
        });
    }
    if let Some(w) = s.state.as_ref().and_then(|st| st.waiting.as_ref())
        && let Some(reason) = w.reason.as_deref().filter(|r| FAILED_WAITING.contains(r))
    {
        return Progress::Failed(Failure::Stuck {
            reason: reason.to_string(),
            message: w.message.clone().unwrap_or_default(),
        });
    }
    let running = s.state.as_ref().is_some_and(|st| st.running.is_some());
    if !(running && s.ready) {
        return Progress::Running;
    }
    Progress::Done {
        unready: unready_since(pod, since),
    }
}

/// Time from `since` to the pod's Ready turning True, when it turned True after `since`.
fn unready_since(pod: &Pod, since: Timestamp) -> Duration {
    let ready_at = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    match ready_at {
        Some(t) if t > since => elapsed(since, t),
        _ => Duration::ZERO,
    }
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or_default()
}

/// The status of the regular container `name`.
fn status_of<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == name)
}
