//! Retiring a canary: after an abort, a rollback to the stable template, or a new template while
//! another canary served. Header routes go at once, the weight drops as fast as the stable side
//! can take it, the canary Service goes back once no traffic reaches it, then the pods go.

use jiff::Timestamp;

use super::super::model::{Params, PodView};
use super::super::split::{self, Want};
use super::capacity::{feasible_weight, serving_floor};
use super::{Applied, CONFIRM_AFTER, CanaryParams, CanaryPlan, TrafficPlan, traffic_changes};

/// One observation of a canary being retired: after an abort, a rollback to the stable
/// template, or a new template while another canary served. Header routes go at once; the
/// weight drops as fast as the stable side can take it (less maxUnavailable); the canary
/// Service goes back to stable once no traffic reaches it; canary pods go only down to what
/// the applied traffic needs, then all of them.
pub fn retire(
    p: &Params,
    applied: &Applied,
    routed: bool,
    pods: &[PodView],
    now: Timestamp,
) -> CanaryPlan {
    let stable = p.target_revision.as_str();
    let old = applied
        .canary_selects
        .clone()
        .filter(|r| r != stable)
        .unwrap_or_default();
    let sides = split::Sides::of(pods, &old, stable, p, now);
    let cp = CanaryParams {
        pods: p.clone(),
        steps: Vec::new(),
        routed,
    };
    let weight = if routed {
        feasible_weight(&cp, applied.weight, 0, &sides, (p.replicas, 0))
    } else {
        0
    };
    let drained = !applied.canary_in_traffic();
    let traffic = TrafficPlan {
        weight,
        routes: Vec::new(),
        stable_selects: stable.to_string(),
        canary_selects: if drained || old.is_empty() {
            stable.to_string()
        } else {
            old.clone()
        },
    };
    let mut wants = vec![Want::new(stable, p.replicas, 0)];
    if !old.is_empty() {
        let floor = if routed { serving_floor(p, applied) } else { 0 };
        wants.push(Want::new(&old, 0, floor));
    }
    let mut pods_plan = split::plan(p, pods, &wants, now);
    pods_plan.complete = pods_plan.complete && drained && traffic.canary_selects == stable;
    let wake = traffic_changes(&traffic, applied).then_some(CONFIRM_AFTER);
    CanaryPlan {
        wake,
        pods: pods_plan,
        step: 0,
        step_started: now,
        traffic,
        waiting: None,
        promoted: false,
    }
}
