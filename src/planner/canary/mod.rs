//! The canary strategy for one observation: which step the canary is on, what traffic the
//! router should carry (never more than the ready pods of a side can take), what the stable and
//! canary Services select, and which pods of each revision to create or remove. Pure.
//!
//! Order of safety, whatever happens: a weight rises only once the canary pods that serve it
//! are available; traffic leaves a revision before its pods are scaled away; a Service never
//! switches to a revision without ready pods.

use std::time::Duration;

use jiff::Timestamp;

mod capacity;
mod retire;

pub use capacity::{pods_for, serving_floor, stable_need};
pub use retire::retire;

use super::model::{Params, Plan, PodView};
use super::split::{self, Want};
use crate::crd::HeaderRoute;
use capacity::{approximate_weight, feasible_weight};

/// Whether writing `plan` changes what `applied` says (so the next observation confirms it).
pub fn traffic_changes(plan: &TrafficPlan, applied: &Applied) -> bool {
    plan.applied() != *applied
}

/// How soon a written weight, header route or Service selector is read back to confirm it.
pub const CONFIRM_AFTER: Duration = Duration::from_secs(1);

/// One validated canary step.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Send this percent of traffic to the canary.
    Weight(i32),
    /// Add (or, without matches, remove) a header route to the canary.
    HeaderRoute(HeaderRoute),
    /// Scale the canary independently of the weight.
    Scale(CanaryScale),
    /// Gate on the analysis.
    Analysis,
    /// Wait this long, or without a duration until promoted.
    Pause(Option<Duration>),
}

/// How many canary pods run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CanaryScale {
    /// As many as the weight asks for: ceil(replicas × weight / 100).
    #[default]
    FollowWeight,
    /// This many (at most replicas).
    Replicas(i32),
    /// This percent of replicas, rounded up.
    Percent(i32),
}

/// The weight, header routes and scale that the steps up to one index ask for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Setting {
    /// Percent of traffic to the canary.
    pub weight: i32,
    /// Active header routes, sorted by name.
    pub routes: Vec<HeaderRoute>,
    /// Canary pod count rule.
    pub scale: CanaryScale,
}

/// The setting in force while step `index` runs (steps `0..=index` applied in order).
pub fn setting_at(steps: &[Step], index: usize) -> Setting {
    let mut s = Setting::default();
    for step in steps.iter().take(index.saturating_add(1)) {
        match step {
            Step::Weight(w) => s.weight = (*w).clamp(0, 100),
            Step::Scale(scale) => s.scale = *scale,
            Step::HeaderRoute(route) => {
                s.routes.retain(|r| r.name != route.name);
                if !route.matches.is_empty() {
                    s.routes.push(route.clone());
                }
            }
            Step::Analysis | Step::Pause(_) => {}
        }
    }
    s.routes.sort_by(|a, b| a.name.cmp(&b.name));
    s
}

/// `percent` of `replicas`, rounded up.
pub fn ceil_percent(replicas: i32, percent: i32) -> i32 {
    let (r, p) = (i64::from(replicas.max(0)), i64::from(percent.clamp(0, 100)));
    ((r * p + 99) / 100) as i32
}

/// Canary pods the setting asks for: by the scale rule, at least one while the canary gets
/// traffic (a weight or a header route), at most replicas.
pub fn canary_pods(replicas: i32, s: &Setting) -> i32 {
    let n = match s.scale {
        CanaryScale::FollowWeight => ceil_percent(replicas, s.weight),
        CanaryScale::Replicas(n) => n,
        CanaryScale::Percent(p) => ceil_percent(replicas, p),
    };
    // Traffic never goes to a canary without pods.
    let n = if s.routes.is_empty() && s.weight == 0 {
        n
    } else {
        n.max(1)
    };
    n.clamp(0, replicas.max(0))
}

/// Canary pods to run for `s`: as the setting asks, but never more than fit within maxSurge
/// beside the stable pods the setting's traffic needs (at least one, for the stable Service).
pub fn canary_target(p: &CanaryParams, s: &Setting) -> i32 {
    let r = p.pods.replicas;
    let want = canary_pods(r, s);
    let mut stable_keep = if p.routed {
        stable_need(&p.pods, 100 - s.weight)
    } else {
        0
    };
    if r > p.pods.max_unavailable {
        // The stable Service keeps a ready pod until promotion.
        stable_keep = stable_keep.max(1);
    }
    want.min((p.pods.max_pods() - stable_keep).max(0))
        .max(want.min(1))
}

/// Stable pods the setting asks for: with a router, enough for the stable share of traffic;
/// without one, the rest of replicas (pod counts are the split).
pub fn stable_pods(replicas: i32, s: &Setting, routed: bool) -> i32 {
    if routed {
        ceil_percent(replicas, 100 - s.weight)
    } else {
        (replicas - canary_pods(replicas, s)).max(0)
    }
}

/// A canary rollout's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryParams {
    /// Pod parameters; `target_revision` is the canary (update) revision, `stable_revision`
    /// the revision serving before it.
    pub pods: Params,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// A router carries the weight (otherwise pod counts approximate it).
    pub routed: bool,
}

/// What the router and the Services carry now, as last written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Weight to the canary Service.
    pub weight: i32,
    /// Names of the header routes to the canary Service.
    pub routes: Vec<String>,
    /// Revision the stable Service selects.
    pub stable_selects: Option<String>,
    /// Revision the canary Service selects.
    pub canary_selects: Option<String>,
}

impl Applied {
    /// Whether the canary Service gets any traffic.
    pub fn canary_in_traffic(&self) -> bool {
        self.weight > 0 || !self.routes.is_empty()
    }
}

/// Where the canary stands, as recorded in status.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryState {
    /// Current step index; `steps.len()` while promoting.
    pub step: usize,
    /// When the current step started.
    pub step_started: Timestamp,
    /// Traffic as last written.
    pub applied: Applied,
}

/// A person's request to move on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Promote {
    /// Past this step (if it is the current one).
    Step(usize),
    /// Past every remaining step.
    Full,
}

/// Inputs from outside the pods for this observation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// A promotion asked for.
    pub promote: Option<Promote>,
    /// The analysis of the canary revision: the time from which every metric has a successful
    /// measurement (`Timestamp::MAX` once the run succeeded). An analysis step passes when this
    /// is at or after the step started.
    pub analysis_passed_since: Option<Timestamp>,
    /// Progress is held (spec.paused, an inconclusive analysis): no step advances.
    pub held: bool,
}

/// The traffic the router and Services should carry after this observation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrafficPlan {
    /// Weight to the canary Service.
    pub weight: i32,
    /// Header routes to the canary Service, sorted by name.
    pub routes: Vec<HeaderRoute>,
    /// Revision the stable Service should select.
    pub stable_selects: String,
    /// Revision the canary Service should select.
    pub canary_selects: String,
}

impl TrafficPlan {
    /// What status records once this plan is written.
    pub fn applied(&self) -> Applied {
        Applied {
            weight: self.weight,
            routes: self.routes.iter().map(|r| r.name.clone()).collect(),
            stable_selects: Some(self.stable_selects.clone()),
            canary_selects: Some(self.canary_selects.clone()),
        }
    }
}

/// Why the current step has not completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// Canary pods are not all available yet.
    CanaryPods {
        /// Available canary pods.
        available: i32,
        /// Canary pods the step needs.
        needed: i32,
    },
    /// The router does not carry the step's traffic yet (it is written this observation).
    Traffic,
    /// A timed pause; `remaining` until it ends.
    Pause {
        /// Time left.
        remaining: Duration,
    },
    /// A pause without a duration: `kubectl zdr promote`.
    Promotion,
    /// The analysis gate has not passed yet.
    Analysis,
    /// Progress is held (spec.paused or an inconclusive analysis).
    Held,
}

/// What the canary planner decided for one observation.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryPlan {
    /// Pod actions and counts (`updated` counts canary pods).
    pub pods: Plan,
    /// Step index after this observation; `steps.len()` once promoting.
    pub step: usize,
    /// When that step started.
    pub step_started: Timestamp,
    /// Traffic to write.
    pub traffic: TrafficPlan,
    /// Why the step does not complete yet.
    pub waiting: Option<Waiting>,
    /// The new revision serves all traffic through the stable Service; old pods retire.
    pub promoted: bool,
    /// When a timed change (a pause ending) happens next.
    pub wake: Option<Duration>,
}

/// One observation of a canary moving forward: `p.pods.target_revision` is the canary and
/// `p.pods.stable_revision` the stable revision (both set, and different). At most one step
/// completes per observation: its traffic is written before the next one is judged.
pub fn plan(
    p: &CanaryParams,
    st: &CanaryState,
    sig: Signals,
    pods: &[PodView],
    now: Timestamp,
) -> CanaryPlan {
    let n = p.steps.len();
    let canary = p.pods.target_revision.as_str();
    let stable = p.pods.stable_revision.clone().unwrap_or_default();
    let sides = split::Sides::of(pods, canary, &stable, &p.pods, now);
    let mut step = st.step.min(n);
    let mut started = st.step_started;
    match sig.promote {
        Some(Promote::Full) if step < n => (step, started) = (n, now),
        Some(Promote::Step(i)) if i == step && step < n => (step, started) = (step + 1, now),
        _ if step < n && step_waiting(p, st, sig, &sides, step, started, now).is_none() => {
            (step, started) = (step + 1, now)
        }
        _ => {}
    }
    if step >= n {
        return promote(p, st, &sides, pods, started, now);
    }
    let waiting = step_waiting(p, st, sig, &sides, step, started, now);
    let pause = match &waiting {
        Some(Waiting::Pause { remaining }) => Some(*remaining),
        _ => None,
    };
    let setting = setting_at(&p.steps, step);
    let traffic = forward_traffic(
        p,
        &st.applied,
        &setting,
        &sides,
        (pods, now),
        canary,
        &stable,
    );
    // Traffic written now is confirmed by reading it back: look again soon rather than rely
    // on a watch event (the router objects are not watched).
    let confirm = traffic_changes(&traffic, &st.applied).then_some(CONFIRM_AFTER);
    CanaryPlan {
        pods: forward_pods(p, &st.applied, &setting, pods, &stable, now),
        step,
        step_started: started,
        traffic,
        waiting,
        promoted: false,
        wake: [pause, confirm].into_iter().flatten().min(),
    }
}

/// Why step `i`, started at `started`, is not complete, or None when it is.
fn step_waiting(
    p: &CanaryParams,
    st: &CanaryState,
    sig: Signals,
    sides: &split::Sides,
    i: usize,
    started: Timestamp,
    now: Timestamp,
) -> Option<Waiting> {
    if sig.held {
        return Some(Waiting::Held);
    }
    let setting = setting_at(&p.steps, i);
    let needed = canary_target(p, &setting);
    let pods_ready = sides.canary.available >= needed && sides.canary.alive == needed;
    let names: Vec<String> = setting.routes.iter().map(|r| r.name.clone()).collect();
    let traffic_done = if p.routed {
        st.applied.weight == setting.weight
            && st.applied.routes == names
            && (needed == 0
                || st.applied.canary_selects.as_deref() == Some(p.pods.target_revision.as_str()))
    } else {
        let stable = p.pods.stable_revision.as_deref().unwrap_or_default();
        sides.stable.alive <= targets(p, &st.applied, &setting, stable).stable
    };
    match &p.steps[i] {
        Step::Weight(_) | Step::HeaderRoute(_) | Step::Scale(_) if !pods_ready => {
            Some(Waiting::CanaryPods {
                available: sides.canary.available,
                needed,
            })
        }
        Step::Weight(_) | Step::HeaderRoute(_) | Step::Scale(_) => {
            (!traffic_done).then_some(Waiting::Traffic)
        }
        Step::Analysis => {
            let passed = sig.analysis_passed_since.is_some_and(|t| t >= started);
            (!passed).then_some(Waiting::Analysis)
        }
        Step::Pause(None) => Some(Waiting::Promotion),
        Step::Pause(Some(d)) => {
            let ends = super::model::available_at(started, *d);
            (ends > now).then(|| Waiting::Pause {
                remaining: Duration::try_from(ends.duration_since(now)).unwrap_or_default(),
            })
        }
    }
}

/// Traffic while the canary moves forward: the step's weight and routes once the canary can
/// take them, and the canary Service on the canary revision once it has ready pods.
fn forward_traffic(
    p: &CanaryParams,
    applied: &Applied,
    setting: &Setting,
    sides: &split::Sides,
    (pods, now): (&[PodView], Timestamp),
    canary: &str,
    stable: &str,
) -> TrafficPlan {
    let replicas = p.pods.replicas;
    let selects_canary = applied.canary_selects.as_deref() == Some(canary);
    // The canary Service moves to the canary revision only when it has ready pods and,
    // if it selected another revision, once that revision no longer gets traffic.
    let canary_selects =
        if selects_canary || (sides.canary.ready > 0 && !applied.canary_in_traffic()) {
            canary
        } else {
            applied.canary_selects.as_deref().unwrap_or(stable)
        };
    let serving = canary_selects == canary && selects_canary;
    let (want, routes) = if serving {
        (setting.weight, setting.routes.clone())
    } else {
        (0, Vec::new())
    };
    let cap = canary_pods(replicas, setting);
    // The weight moves as the pods behind the canary Service now allow: another revision's,
    // while it is being retired.
    let behind = match applied.canary_selects.as_deref() {
        Some(x) if !serving && x != canary => split::Sides::of(pods, x, stable, &p.pods, now),
        _ => *sides,
    };
    let weight = if p.routed {
        feasible_weight(p, applied.weight, want, &behind, (cap, setting.weight))
    } else {
        approximate_weight(sides)
    };
    let routes = if serving && sides.canary.available > 0 {
        routes
    } else {
        Vec::new()
    };
    TrafficPlan {
        weight,
        routes,
        stable_selects: stable.to_string(),
        canary_selects: canary_selects.to_string(),
    }
}

/// Pods while the canary moves forward: the canary scaled to the setting, the stable side down
/// Pods wanted of each revision while the canary moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Targets {
    canary: i32,
    canary_floor: i32,
    stable: i32,
    stable_floor: i32,
}

/// The canary scaled to the setting; the stable side down to what its share of traffic needs,
/// never below what the applied weight needs, keeping a ready pod while the stable Service
/// selects it, and together with the canary keeping `replicas` pods within maxSurge.
fn targets(p: &CanaryParams, applied: &Applied, setting: &Setting, stable: &str) -> Targets {
    let replicas = p.pods.replicas;
    let canary = p.pods.target_revision.as_str();
    let desired_canary = canary_target(p, setting);
    let mut stable_floor = if p.routed {
        stable_need(&p.pods, 100 - applied.weight)
    } else {
        0
    };
    if applied.stable_selects.as_deref() == Some(stable) && replicas > p.pods.max_unavailable {
        stable_floor = stable_floor.max(1);
    }
    let canary_floor = if p.routed && applied.canary_selects.as_deref() == Some(canary) {
        serving_floor(&p.pods, applied).min(canary_pods(replicas, setting).max(1))
    } else {
        0
    };
    let desired_stable = stable_pods(replicas, setting, p.routed)
        .max(replicas - desired_canary)
        .min(p.pods.max_pods() - desired_canary)
        .max(stable_floor);
    Targets {
        canary: desired_canary,
        canary_floor,
        stable: desired_stable,
        stable_floor,
    }
}

/// Pods while the canary moves forward, to the [`targets`].
fn forward_pods(
    p: &CanaryParams,
    applied: &Applied,
    setting: &Setting,
    pods: &[PodView],
    stable: &str,
    now: Timestamp,
) -> Plan {
    let canary = p.pods.target_revision.as_str();
    let t = targets(p, applied, setting, stable);
    let mut wants = vec![
        Want::new(canary, t.canary, t.canary_floor),
        Want::new(stable, t.stable, t.stable_floor),
    ];
    // A revision the canary Service still selects keeps what its traffic needs.
    if let Some(old) = applied
        .canary_selects
        .as_deref()
        .filter(|r| *r != canary && *r != stable && applied.canary_in_traffic())
    {
        wants.push(Want::new(old, 0, serving_floor(&p.pods, applied)));
    }
    split::plan(&p.pods, pods, &wants, now)
}

/// After the last step (or a full promotion): the canary takes all the weight as its pods
/// become available (the stable side shrinking as the weight allows), then the stable Service
/// selects it with the weight back to 0 and no header routes, then the rolling planner retires
/// the old pods.
fn promote(
    p: &CanaryParams,
    st: &CanaryState,
    sides: &split::Sides,
    pods: &[PodView],
    started: Timestamp,
    now: Timestamp,
) -> CanaryPlan {
    let replicas = p.pods.replicas;
    let canary = p.pods.target_revision.as_str();
    let stable = p.pods.stable_revision.clone().unwrap_or_default();
    let a = &st.applied;
    let all_on_canary = TrafficPlan {
        weight: 0,
        routes: Vec::new(),
        stable_selects: canary.to_string(),
        canary_selects: canary.to_string(),
    };
    let switched = a.stable_selects.as_deref() == Some(canary);
    let (traffic, pods_plan, promoted) = if switched && !a.canary_in_traffic() {
        let plan = super::rolling::plan(&p.pods, pods, now);
        (all_on_canary, plan, true)
    } else if switched {
        let keep = Want::new(&stable, 0, sides.stable.available);
        let plan = split::plan(&p.pods, pods, &[Want::new(canary, replicas, 0), keep], now);
        (all_on_canary, plan, false)
    } else {
        let last = setting_at(&p.steps, p.steps.len().saturating_sub(1));
        let full = Setting {
            weight: 100,
            routes: last.routes,
            scale: CanaryScale::FollowWeight,
        };
        let ready = sides.canary.available >= pods_for(&p.pods, 100).max(replicas.min(1))
            && a.canary_selects.as_deref() == Some(canary)
            && (!p.routed || a.weight == 100);
        let traffic = if ready {
            all_on_canary
        } else {
            forward_traffic(p, a, &full, sides, (pods, now), canary, &stable)
        };
        (
            traffic,
            forward_pods(p, a, &full, pods, &stable, now),
            false,
        )
    };
    CanaryPlan {
        waiting: (!promoted).then_some(Waiting::CanaryPods {
            available: sides.canary.available,
            needed: replicas,
        }),
        pods: pods_plan,
        step: p.steps.len(),
        step_started: started,
        wake: (traffic_changes(&traffic, a)).then_some(CONFIRM_AFTER),
        traffic,
        promoted,
    }
}
