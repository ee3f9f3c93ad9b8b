//! Validation of a rollout's spec beyond what the CRD's CEL rules reject at admission: what the
//! controller needs to act on it, or the reason it cannot (reported as a status condition).

use kube::core::{Selector, SelectorExt};

use crate::crd::ZeroDowntimeRolloutSpec;
use crate::planner::resolve_surge_unavailable;

/// A spec the controller can act on.
#[derive(Clone, Debug)]
pub struct Valid {
    /// The label selector.
    pub selector: Selector,
    /// maxSurge resolved against replicas.
    pub max_surge: i32,
    /// maxUnavailable resolved against replicas.
    pub max_unavailable: i32,
    /// Which pods count against maxSurge.
    pub replacement: crate::crd::PodReplacementPolicy,
    /// Parts of the spec that are accepted but only partly honoured, for a visible condition.
    pub notices: Vec<Notice>,
}

/// A visible note about a spec field the controller does not fully act on yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Condition type.
    pub type_: &'static str,
    /// CamelCase reason.
    pub reason: &'static str,
    /// For people.
    pub message: String,
}

/// Why a spec cannot be acted on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Invalid {
    /// CamelCase reason for the condition and event.
    pub reason: &'static str,
    /// For people.
    pub message: String,
}

fn invalid(reason: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        reason,
        message: message.into(),
    }
}

/// Checks `spec` and resolves what the planner needs.
pub fn validate(spec: &ZeroDowntimeRolloutSpec) -> Result<Valid, Invalid> {
    if spec.replicas < 0 {
        return Err(invalid(
            "InvalidReplicas",
            "spec.replicas must not be negative",
        ));
    }
    let selector = Selector::try_from(spec.selector.clone())
        .map_err(|e| invalid("InvalidSelector", format!("spec.selector: {e}")))?;
    if selector.selects_all() {
        return Err(invalid(
            "InvalidSelector",
            "spec.selector is empty: it would select every pod in the namespace",
        ));
    }
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if !selector.matches(&labels) {
        return Err(invalid(
            "SelectorMismatch",
            "spec.selector does not match spec.template.metadata.labels",
        ));
    }
    if spec.strategy.canary.is_some() {
        // Fail closed: a canary promoted without its traffic steps would not be a canary.
        return Err(invalid(
            "CanaryNotSupported",
            "strategy.canary is not implemented by this controller version; nothing is rolled out",
        ));
    }
    if let Some(analysis) = &spec.analysis {
        // Fail closed: a condition that does not parse would never be evaluated to true, but
        // the rollout must not start with checks that cannot work.
        crate::analysis::validate(analysis)
            .map_err(|e| invalid("InvalidAnalysis", format!("spec.analysis: {e}")))?;
    }
    let rolling = spec.strategy.rolling.clone().unwrap_or_default();
    let (max_surge, max_unavailable) =
        resolve_surge_unavailable(&rolling.max_surge, &rolling.max_unavailable, spec.replicas)
            .map_err(|e| invalid("InvalidStrategy", e.to_string()))?;
    let mut notices = Vec::new();
    if let Some(hs) = &spec.strategy.hot_swap {
        notices.push(Notice {
            type_: "HotSwap",
            reason: "NotDrivenByController",
            message: format!(
                "in-pod hot swap of container {:?} is not driven by this controller version: template changes replace pods (drained before deletion)",
                hs.container
            ),
        });
    }
    Ok(Valid {
        selector,
        max_surge,
        max_unavailable,
        replacement: rolling.pod_replacement_policy,
        notices,
    })
}
