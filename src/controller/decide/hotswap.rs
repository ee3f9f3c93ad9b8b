//! Hot swaps as a path through the rolling strategy: whether the update in progress is swapped
//! inside the running pods ([`path`]), and if so which pod takes which step now, the swaps
//! bounded by maxUnavailable, with the counts, the `status.hotSwap` and the Events.

use std::collections::HashSet;
use std::time::Duration;

use jiff::Timestamp;

use super::{Note, Severity, Snapshot};
use crate::crd::hot_swap::{self as words, HotSwapStatus, PodSwapState, PodSwapStatus, Reason};
use crate::hotswap::state::{self, PodSwap};
use crate::hotswap::step::{self, PodStep};
use crate::hotswap::{SwapPath, classify};
use crate::planner::PodView;

/// Most pods listed in `status.hotSwap.pods`.
const LISTED: usize = 20;

/// How the update in progress goes, when `spec.strategy.hotSwap` is set.
#[derive(Clone, Debug)]
pub(crate) enum Path {
    /// Every pod runs the target: image-only updates would be swapped in place.
    Idle,
    /// Swapped in place.
    InPlace(InPlace),
    /// Pods are replaced, for this reason.
    Replace(Reason, String),
}

/// An update swapped in place.
#[derive(Clone, Debug)]
pub(crate) struct InPlace {
    /// The target's image of the swapped container.
    pub image: String,
    /// Every live pod, observed, with its next step.
    pub pods: Vec<(PodSwap, PodStep)>,
}

/// A write the execute step makes on one pod.
#[derive(Clone, Debug, PartialEq)]
pub struct SwapCommand {
    /// The pod as observed.
    pub pod: PodSwap,
    /// The step to take.
    pub step: PodStep,
}

/// The in-place part of a decision.
#[derive(Clone, Debug, Default)]
pub(crate) struct Swaps {
    /// Writes to make now.
    pub commands: Vec<SwapCommand>,
    /// Views for the planner, every swappable pod counted as running the target (the planner
    /// then only scales).
    pub views: Vec<PodView>,
    /// Pods running the target, and of those the available ones.
    pub updated: i32,
    /// Of those, available.
    pub updated_available: i32,
    /// Every pod runs the target, settled.
    pub done: bool,
    /// `status.hotSwap`: Some exactly while swapping in place (the views and counts above
    /// apply only then).
    pub status: Option<HotSwapStatus>,
    /// Failed swaps: (pod, why), for the abort.
    pub failures: Vec<(String, String)>,
    /// Events.
    pub notes: Vec<Note>,
    /// The `HotSwap` condition's reason and message.
    pub condition: (Reason, String),
}

/// The hot-swap part of the decision towards `target`: with `hotSwap`, the `HotSwap`
/// condition and, when the update is swapped in place, the writes, views and counts; None
/// without `hotSwap`.
pub(crate) fn decide(s: &Snapshot, target: &str, paused: bool, now: Timestamp) -> Option<Swaps> {
    let container = &s.spec.strategy.hot_swap.as_ref()?.container;
    Some(match path(s, target, now)? {
        Path::InPlace(ip) => swaps(s, &ip, target, paused, now),
        Path::Replace(reason, why) => Swaps {
            condition: (reason, words::replace_message(container, &why)),
            ..Swaps::default()
        },
        Path::Idle => Swaps {
            condition: (Reason::Ready, words::ready_message(container)),
            ..Swaps::default()
        },
    })
}

/// The path of the update towards `target`; None without `hotSwap`.
fn path(s: &Snapshot, target: &str, now: Timestamp) -> Option<Path> {
    let hs = s.spec.strategy.hot_swap.as_ref()?;
    if let Some((reason, why)) = crate::hotswap::refusal(s.spec, s.valid.max_unavailable) {
        return Some(Path::Replace(reason, why));
    }
    let timeout = super::deadline(s.spec);
    // Pods that count: not terminating, not retiring, not finished.
    let alive: HashSet<&str> = s
        .pods
        .iter()
        .filter(|v| v.is_alive())
        .map(|v| v.name.as_str())
        .collect();
    let mut pods = Vec::new();
    for pod in s
        .objects
        .iter()
        .filter(|p| alive.contains(p.metadata.name.as_deref().unwrap_or_default()))
    {
        match state::observe(pod, &hs.container, timeout, now) {
            Ok(p) => pods.push(p),
            Err(e) => {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let why = words::not_laid_out(&name, &e);
                return Some(Path::Replace(Reason::PodsNotLaidOut, why));
            }
        }
    }
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    let unknown = |rev: &str| Path::Replace(Reason::RevisionUnknown, words::revision_unknown(rev));
    let Some(to) = s.templates.get(target) else {
        return Some(unknown(target));
    };
    let Some(image) = image_of(to, &hs.container) else {
        return Some(unknown(target));
    };
    for p in &pods {
        let Some(from) = p.active_revision().filter(|r| *r != target) else {
            continue;
        };
        let Some(old) = s.templates.get(from) else {
            return Some(unknown(from));
        };
        if let SwapPath::Replace(why) = classify(old, to, &hs.container) {
            return Some(Path::Replace(
                Reason::NotEligible,
                words::not_eligible(&why),
            ));
        }
    }
    let pods: Vec<(PodSwap, PodStep)> = pods
        .into_iter()
        .map(|p| {
            let step = step::next(&p, target, &image);
            (p, step)
        })
        .collect();
    if pods.iter().all(|(_, st)| *st == PodStep::Current) {
        return Some(Path::Idle);
    }
    Some(Path::InPlace(InPlace { image, pods }))
}

/// The image of `container` in `template`.
fn image_of(
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    container: &str,
) -> Option<String> {
    template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == container)?
        .image
        .clone()
}

/// The writes of this observation: settling and reverting always, new swaps while the pods
/// out of traffic stay within maxUnavailable and nothing pauses the rollout.
fn swaps(s: &Snapshot, ip: &InPlace, target: &str, paused: bool, now: Timestamp) -> Swaps {
    let min_ready = Duration::from_secs(s.spec.min_ready_seconds.max(0) as u64);
    let available: HashSet<&str> = s
        .pods
        .iter()
        .filter(|v| v.is_available(min_ready, now))
        .map(|v| v.name.as_str())
        .collect();
    let available = |name: &str| available.contains(name);
    let busy: HashSet<&str> = ip
        .pods
        .iter()
        .filter(|(p, _)| p.busy())
        .map(|(p, _)| p.name.as_str())
        .collect();
    let out_of_traffic = s
        .pods
        .iter()
        .filter(|v| v.is_alive())
        .filter(|v| !available(&v.name) || busy.contains(v.name.as_str()))
        .count() as i32;
    let mut budget = s.valid.max_unavailable - out_of_traffic;
    let mut out = Swaps::default();
    let container = s
        .spec
        .strategy
        .hot_swap
        .as_ref()
        .map(|h| h.container.as_str())
        .unwrap_or_default();
    // Pods already out of traffic first: swapping them takes nothing more out.
    let mut order: Vec<&(PodSwap, PodStep)> = ip.pods.iter().collect();
    order.sort_by_key(|(p, _)| available(&p.name));
    for (pod, st) in order {
        let restarts = matches!(st, PodStep::Park(_) | PodStep::Swap { .. });
        let take = match st {
            PodStep::Settle { .. } | PodStep::Revert(_) => true,
            _ if restarts && !paused && !available(&pod.name) => true,
            _ if restarts && !paused && budget > 0 => {
                budget -= 1;
                true
            }
            _ => false,
        };
        if take {
            out.notes.extend(note(pod, st, container, target));
            out.commands.push(SwapCommand {
                pod: pod.clone(),
                step: st.clone(),
            });
        }
        if let PodStep::Revert(f) | PodStep::ParkFailed(f) = st {
            out.failures.push((pod.name.clone(), words::failure(f)));
        }
    }
    let swapped: HashSet<&str> = ip.pods.iter().map(|(p, _)| p.name.as_str()).collect();
    out.views = s
        .pods
        .iter()
        .map(|v| {
            let mut v = v.clone();
            if swapped.contains(v.name.as_str()) {
                v.revision = Some(target.to_string());
            }
            v
        })
        .collect();
    let status = status(ip, target);
    out.condition = (
        Reason::InPlace,
        words::in_place_message(container, &ip.image, &status),
    );
    out.status = Some(status);
    for (pod, _) in ip
        .pods
        .iter()
        .filter(|(p, st)| state_of(p, st, target) == PodSwapState::Swapped)
    {
        out.updated += 1;
        out.updated_available += i32::from(available(&pod.name));
    }
    out.done = ip.pods.iter().all(|(_, st)| *st == PodStep::Current);
    out
}

/// Where a pod's swap is.
fn state_of(p: &PodSwap, st: &PodStep, target: &str) -> PodSwapState {
    match (&p.op, st) {
        (_, PodStep::Revert(_) | PodStep::ParkFailed(_)) => PodSwapState::Failed,
        (Some(op), PodStep::Wait) if op.slot == p.active => PodSwapState::Swapping,
        (Some(_), PodStep::Wait) => PodSwapState::Parking,
        _ if p.active_revision() == Some(target) => PodSwapState::Swapped,
        _ => PodSwapState::Pending,
    }
}

/// `status.hotSwap` for the pods and their steps.
fn status(ip: &InPlace, target: &str) -> HotSwapStatus {
    let mut s = HotSwapStatus {
        revision: target.to_string(),
        ..HotSwapStatus::default()
    };
    let mut listed = Vec::new();
    for (p, st) in &ip.pods {
        let state = state_of(p, st, target);
        match state {
            PodSwapState::Pending => s.pending += 1,
            PodSwapState::Parking | PodSwapState::Swapping => s.swapping += 1,
            PodSwapState::Swapped => s.swapped += 1,
            PodSwapState::Failed => s.failed += 1,
        }
        if state == PodSwapState::Swapped {
            let unready = match st {
                PodStep::Settle {
                    swapped: Some(d), ..
                } => Some(d.as_millis() as i64),
                _ => p.unready_ms.map(|ms| ms as i64),
            };
            s.max_unready_milliseconds = s.max_unready_milliseconds.max(unready);
        }
        let message = match st {
            PodStep::Revert(f) | PodStep::ParkFailed(f) => Some(words::failure(f)),
            _ => {
                p.op.as_ref()
                    .map(|op| words::slot_message(op.slot, op.since))
            }
        };
        if matches!(
            state,
            PodSwapState::Failed | PodSwapState::Swapping | PodSwapState::Parking
        ) {
            listed.push(PodSwapStatus {
                name: p.name.clone(),
                state,
                message,
            });
        }
    }
    listed.sort_by_key(|p| (p.state != PodSwapState::Failed, p.name.clone()));
    listed.truncate(LISTED);
    s.pods = listed;
    s
}

/// The Event of a write, if it is one people care about.
fn note(p: &PodSwap, st: &PodStep, container: &str, target: &str) -> Option<Note> {
    let (severity, reason, message) = match st {
        PodStep::Swap { slot, image, .. } => (
            Severity::Normal,
            words::STARTED_EVENT,
            words::started_message(&p.name, container, image, target, *slot),
        ),
        PodStep::Settle {
            swapped: Some(d), ..
        } => (
            Severity::Normal,
            words::SUCCEEDED_EVENT,
            words::succeeded_message(&p.name, p.active_revision().unwrap_or_default(), *d),
        ),
        PodStep::Revert(f) => (
            Severity::Warning,
            words::FAILED_EVENT,
            words::failed_message(&p.name, p.active_revision().unwrap_or_default(), f),
        ),
        _ => return None,
    };
    Some(Note {
        severity,
        reason,
        message,
        pod: Some(p.name.clone()),
        action: "HotSwap",
    })
}
