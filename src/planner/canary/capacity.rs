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
/// the applied one and `want` closest to `want`; else (pods were lost) the feasible weight
/// closest to the applied one. A weight is feasible when each side has the available pods its
/// share needs ([`pods_for`]; the canary's need capped by its scale).
pub(super) fn feasible_weight(
    p: &CanaryParams,
    applied: i32,
    want: i32,
    sides: &split::Sides,
    cap: i32,
) -> i32 {
    let feasible = |w: i32| {
        let canary_need = pods_for(&p.pods, w).min(cap.max(1));
        let stable_need = stable_need(&p.pods, 100 - w);
        sides.canary.available >= canary_need && sides.stable.available >= stable_need
    };
    let (lo, hi) = (applied.min(want), applied.max(want));
    let towards_want = (lo..=hi)
        .filter(|w| feasible(*w))
        .min_by_key(|w| (w - want).abs());
    towards_want
        .or_else(|| {
            (0..=100)
                .filter(|w| feasible(*w))
                .min_by_key(|w| (w - applied).abs())
        })
        .unwrap_or(applied)
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
