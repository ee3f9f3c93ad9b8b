//! How much traffic the pods of each side can carry: one rule for both sides (no pod gets more
//! than 1/(replicas − maxUnavailable) of the traffic), the floors that keep pods while their
//! traffic needs them, and the weight to write given what is available.

use super::super::model::Params;
use super::super::split;
use super::{Applied, CanaryParams, ceil_percent};

/// Available pods a side needs to carry `percent` of the traffic when no pod may carry more
/// than 1/(replicas − maxUnavailable) of it: the load a pod carries in a rolling update at its
/// largest allowed dip. At least one pod for any traffic at all.
pub fn pods_for(p: &Params, percent: i32) -> i32 {
    if percent <= 0 {
        return 0;
    }
    ceil_percent((p.replicas - p.max_unavailable).max(0), percent).max(1)
}

/// Available pods the stable side needs for `percent` of the traffic: as [`pods_for`], with one
/// point of the weight's rounding given to the stable side, so that a cluster without surge
/// room (maxSurge 0) can always take the next pod from stable to canary.
pub fn stable_need(p: &Params, percent: i32) -> i32 {
    if percent <= 0 || p.replicas <= p.max_unavailable {
        // maxUnavailable covers every replica: the user accepts no capacity at all.
        return 0;
    }
    pods_for(p, percent - 1).max(1)
}

/// Canary pods the applied traffic needs (at least one while a header route is applied).
pub fn serving_floor(p: &Params, applied: &Applied) -> i32 {
    let n = pods_for(p, applied.weight);
    if applied.routes.is_empty() {
        n
    } else {
        n.max(1)
    }
}

/// The weight to write: `want` when both sides can take it; else the feasible weight between
/// the applied one and `want` closest to `want`; else, when the canary can no longer carry the
/// applied weight (pods were lost), the largest feasible weight below it; else the applied one.
/// Traffic is never moved towards the canary to relieve the stable side: a stable side short of
/// pods (replicas were just raised, say) keeps its weight while its pods come up.
///
/// A weight is feasible when each side has the available pods its share needs ([`pods_for`]).
/// Up to `scale_weight` (the weight the steps ask for), the canary's need is capped at `cap`,
/// the pods `setCanaryScale` gives it; above that weight it is not.
pub(super) fn feasible_weight(
    p: &CanaryParams,
    applied: i32,
    want: i32,
    sides: &split::Sides,
    (cap, scale_weight): (i32, i32),
) -> i32 {
    let canary_ok = |w: i32| {
        let need = pods_for(&p.pods, w);
        let need = if w <= scale_weight {
            need.min(cap.max(1))
        } else {
            need
        };
        sides.canary.available >= need
    };
    let feasible = |w: i32| canary_ok(w) && sides.stable.available >= stable_need(&p.pods, 100 - w);
    let (lo, hi) = (applied.min(want), applied.max(want));
    let towards_want = (lo..=hi)
        .filter(|w| feasible(*w))
        .min_by_key(|w| (w - want).abs());
    if let Some(w) = towards_want {
        return w;
    }
    if canary_ok(applied) {
        return applied;
    }
    (0..applied).rev().find(|w| feasible(*w)).unwrap_or(applied)
}

/// Without a router: the canary's share of available pods, in percent.
pub(super) fn approximate_weight(sides: &split::Sides) -> i32 {
    let total = sides.canary.available + sides.stable.available;
    if total == 0 {
        0
    } else {
        100 * sides.canary.available / total
    }
}
