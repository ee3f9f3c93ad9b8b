//! Hot swap as the controller sees it: which template changes an in-place swap can carry
//! ([`eligibility`]), the pod layout a hot-swap rollout's pods are rendered with ([`render`]),
//! one pod's swap as observed ([`state`]) and its next step and patch ([`step`]).

pub mod eligibility;
pub mod render;
pub mod state;
pub mod step;

pub use eligibility::{NotEligible, Side, SwapPath, classify};
pub use render::{AgentImage, ProbeKind, RenderError, render};

use crate::crd::ZeroDowntimeRolloutSpec;
use crate::crd::hot_swap::{self as words, Reason};

/// Why a rollout with `hotSwap` replaces pods whatever the change, from its spec alone: the
/// canary strategy, or no room to take a pod out of traffic (maxUnavailable 0, one replica);
/// the `HotSwap` condition's reason and the reason's words. None: image-only changes can be
/// swapped in place.
pub fn refusal(spec: &ZeroDowntimeRolloutSpec, max_unavailable: i32) -> Option<(Reason, String)> {
    if spec.strategy.canary.is_some() {
        return Some((Reason::CanaryStrategy, words::CANARY.into()));
    }
    if spec.replicas < 2 || max_unavailable < 1 {
        let why = words::no_budget(spec.replicas, max_unavailable);
        return Some((Reason::NoUnavailableBudget, why));
    }
    None
}

#[cfg(test)]
mod tests;
