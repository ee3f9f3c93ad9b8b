//! Validation of a rollout's spec beyond what the CRD's CEL rules reject at admission: what the
//! controller needs to act on it, or the reason it cannot (reported as a status condition, and
//! by `kubectl zdr validate` and `plan` through [`crate::schema`]). Messages start with the
//! field path.

use kube::core::{Selector, SelectorExt};

use crate::crd::hot_swap;
use crate::crd::{CanaryStep, CanaryStrategy, ZeroDowntimeRolloutSpec};
use crate::planner::canary::{CanaryScale, Step};
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
    /// The canary's steps and router, when the strategy is a canary.
    pub canary: Option<Canary>,
    /// Parts of the spec that are accepted but only partly honoured, for a visible condition.
    pub notices: Vec<Notice>,
}

/// A canary the controller can act on.
#[derive(Clone, Debug, PartialEq)]
pub struct Canary {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Whether a router (Gateway API, Istio) carries the weights.
    pub routed: bool,
}

/// A visible note about a spec field the controller does not fully act on yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Condition type.
    pub type_: &'static str,
    /// Condition status.
    pub status: &'static str,
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
    if let Some(analysis) = &spec.analysis {
        // Fail closed: a condition that does not parse would never be evaluated to true, but
        // the rollout must not start with checks that cannot work.
        crate::analysis::validate(analysis)
            .map_err(|e| invalid("InvalidAnalysis", format!("spec.analysis: {e}")))?;
    }
    if let Some(hs) = &spec.strategy.hot_swap {
        // The agent image and revision do not change whether a template renders.
        let agent = crate::hotswap::AgentImage::new("zdr-agent");
        crate::hotswap::render(&spec.template, hs, &agent, "validate")
            .map_err(|e| invalid(hot_swap::INVALID_REASON, e.to_string()))?;
    }
    let canary = match &spec.strategy.canary {
        Some(c) => Some(canary(c, spec.analysis.is_some())?),
        None => None,
    };
    let rolling = spec.strategy.rolling.clone().unwrap_or_default();
    let (surge, unavailable, replacement) = match &spec.strategy.canary {
        Some(c) => (
            c.max_surge.clone(),
            c.max_unavailable.clone(),
            c.pod_replacement_policy,
        ),
        None => (
            rolling.max_surge,
            rolling.max_unavailable,
            rolling.pod_replacement_policy,
        ),
    };
    let (max_surge, max_unavailable) =
        resolve_surge_unavailable(&surge, &unavailable, spec.replicas)
            .map_err(|e| invalid("InvalidStrategy", format!("{}: {e}", strategy_path(spec))))?;
    let mut notices = Vec::new();
    if let Some(hs) = &spec.strategy.hot_swap {
        let (reason, message) = if spec.strategy.canary.is_some() {
            let why = hot_swap::replace_message(&hs.container, hot_swap::CANARY);
            (hot_swap::Reason::CanaryStrategy, why)
        } else {
            (
                hot_swap::Reason::Ready,
                hot_swap::ready_message(&hs.container),
            )
        };
        notices.push(Notice {
            type_: hot_swap::TYPE,
            status: reason.status(),
            reason: reason.as_str(),
            message,
        });
    }
    Ok(Valid {
        selector,
        max_surge,
        max_unavailable,
        replacement,
        canary,
        notices,
    })
}

/// Where the strategy's maxSurge and maxUnavailable are, for messages.
fn strategy_path(spec: &ZeroDowntimeRolloutSpec) -> &'static str {
    if spec.strategy.canary.is_some() {
        "spec.strategy.canary"
    } else {
        "spec.strategy.rolling"
    }
}

/// The canary's steps as the planner reads them.
fn canary(c: &CanaryStrategy, has_analysis: bool) -> Result<Canary, Invalid> {
    if c.steps.is_empty() {
        return Err(invalid(
            "InvalidStrategy",
            "spec.strategy.canary.steps: at least one step is needed",
        ));
    }
    if c.stable_service == c.canary_service {
        return Err(invalid(
            "InvalidStrategy",
            "spec.strategy.canary: stableService and canaryService must be two different Services",
        ));
    }
    let routed = c.traffic_routing.is_some();
    let steps = c
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| step(i, s, routed, has_analysis))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Canary { steps, routed })
}

fn step(i: usize, s: &CanaryStep, routed: bool, has_analysis: bool) -> Result<Step, Invalid> {
    let at = |what: &str| format!("spec.strategy.canary.steps[{i}]: {what}");
    let set = [
        s.set_weight.is_some(),
        s.set_header_route.is_some(),
        s.set_canary_scale.is_some(),
        s.analysis.is_some(),
        s.pause.is_some(),
    ];
    if set.iter().filter(|b| **b).count() != 1 {
        return Err(invalid(
            "InvalidStrategy",
            at("set exactly one of setWeight, setHeaderRoute, setCanaryScale, analysis, pause"),
        ));
    }
    if let Some(w) = s.set_weight {
        if !(0..=100).contains(&w) {
            return Err(invalid("InvalidStrategy", at("setWeight must be 0 to 100")));
        }
        return Ok(Step::Weight(w));
    }
    if let Some(route) = &s.set_header_route {
        if !routed {
            return Err(invalid(
                "HeaderRouteWithoutRouter",
                at(
                    "setHeaderRoute needs strategy.canary.trafficRouting: without a router, requests cannot be routed by header",
                ),
            ));
        }
        return Ok(Step::HeaderRoute(route.clone()));
    }
    if let Some(scale) = &s.set_canary_scale {
        return match (scale.replicas, scale.percent, scale.match_traffic_weight) {
            (Some(n), None, None | Some(false)) if n >= 0 => {
                Ok(Step::Scale(CanaryScale::Replicas(n)))
            }
            (None, Some(p), None | Some(false)) if (0..=100).contains(&p) => {
                Ok(Step::Scale(CanaryScale::Percent(p)))
            }
            (None, None, Some(true)) => Ok(Step::Scale(CanaryScale::FollowWeight)),
            _ => Err(invalid(
                "InvalidStrategy",
                at(
                    "setCanaryScale sets exactly one of replicas (>= 0), percent (0-100), matchTrafficWeight: true",
                ),
            )),
        };
    }
    if s.analysis.is_some() {
        if !has_analysis {
            return Err(invalid(
                "InvalidStrategy",
                at("an analysis step needs spec.analysis (the metrics it checks)"),
            ));
        }
        return Ok(Step::Analysis);
    }
    let pause = s.pause.as_ref().and_then(|p| p.duration);
    match pause {
        Some(d) if d.is_negative() => Err(invalid(
            "InvalidStrategy",
            at("pause.duration must not be negative"),
        )),
        Some(d) => Ok(Step::Pause(Some(std::time::Duration::from(d)))),
        None => Ok(Step::Pause(None)),
    }
}
