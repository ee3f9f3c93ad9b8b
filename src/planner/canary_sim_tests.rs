//! Property tests of the canary planner through a simulated cluster: pods turn Ready after
//! random delays, removals drain before they go, indefinite pauses are promoted and an abort
//! comes at a random moment; every observation is checked against the traffic and pod rules
//! (weights within what is available, traffic out before pods out, Services never on a revision
//! without ready pods, the pod ceiling) and every run must finish.

use std::time::Duration;

use proptest::prelude::*;

use super::canary::*;
use super::canary_tests::{applied_stable, pod_params, ready, route, t};
use super::model::*;

/// A pod in the simulation, with when it turns Ready.
#[derive(Clone, Debug)]
struct SimPod {
    view: PodView,
    ready_at: i64,
}

#[derive(Clone, Debug)]
struct World {
    now: i64,
    pods: Vec<SimPod>,
    next: usize,
    ready_delay: i64,
}

impl World {
    fn views(&self) -> Vec<PodView> {
        self.pods.iter().map(|p| p.view.clone()).collect()
    }

    /// Time passes by one second: pods turn Ready, drains progress, terminating pods go.
    fn tick(&mut self) {
        self.now += 1;
        let now = self.now;
        self.pods.retain(|p| !p.view.terminating);
        for p in &mut self.pods {
            if p.view.retiring && p.view.drained {
                p.view.terminating = true;
            } else if p.view.retiring {
                p.view.drained = true;
                p.view.ready_since = None;
            } else if p.view.ready_since.is_none() && p.ready_at <= now {
                p.view.ready_since = Some(t(now));
            }
        }
    }

    fn act(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::Create { revision, count } => {
                    for _ in 0..*count {
                        self.next += 1;
                        let mut view =
                            ready(&format!("{revision}-{}", self.next), revision, self.now);
                        view.ready_since = None;
                        self.pods.push(SimPod {
                            view,
                            ready_at: self.now + self.ready_delay,
                        });
                    }
                }
                Action::Remove { pod, .. } => {
                    if let Some(p) = self.pods.iter_mut().find(|p| &p.view.name == pod) {
                        p.view.retiring = true;
                    }
                }
            }
        }
    }

    fn available(&self, rev: &str) -> i32 {
        self.pods
            .iter()
            .filter(|p| p.view.is_alive() && p.view.runs(rev) && p.view.ready_since.is_some())
            .count() as i32
    }
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0i32..=100).prop_map(Step::Weight),
        (0i32..=100).prop_map(Step::Weight),
        prop_oneof![Just(Some("a")), Just(None)].prop_map(|v| Step::HeaderRoute(route("beta", v))),
        (0i32..4).prop_map(|n| Step::Scale(CanaryScale::Replicas(n))),
        Just(Step::Scale(CanaryScale::FollowWeight)),
        Just(Step::Analysis),
        Just(Step::Pause(None)),
        (0u64..5).prop_map(|s| Step::Pause(Some(Duration::from_secs(s)))),
    ]
}

#[derive(Clone, Debug)]
struct Scenario {
    replicas: i32,
    surge: i32,
    unavailable: i32,
    steps: Vec<Step>,
    routed: bool,
    ready_delay: i64,
    abort_at: Option<i64>,
    /// At this observation, `spec.replicas` becomes this (a scale mid-canary).
    scale: Option<(i64, i32)>,
}

fn arb_scenario() -> impl Strategy<Value = Scenario> {
    (
        1i32..12,
        0i32..4,
        0i32..3,
        prop::collection::vec(arb_step(), 1..8),
        any::<bool>(),
        0i64..4,
        prop::option::of(0i64..60),
        prop::option::of((0i64..40, 1i32..12)),
    )
        .prop_filter("surge and unavailable not both 0", |(_, s, u, ..)| {
            s + u > 0
        })
        .prop_map(
            |(replicas, surge, unavailable, steps, routed, ready_delay, abort_at, scale)| {
                Scenario {
                    replicas,
                    surge,
                    unavailable: unavailable.min(replicas),
                    steps: if routed {
                        steps
                    } else {
                        steps
                            .into_iter()
                            .filter(|s| !matches!(s, Step::HeaderRoute(_)))
                            .collect()
                    },
                    routed,
                    ready_delay,
                    abort_at,
                    scale,
                }
            },
        )
}

/// Checks one observation's decision against the rules; returns the traffic now applied.
fn check(
    sc: &Scenario,
    w: &World,
    applied: &Applied,
    out: &CanaryPlan,
    canary: &str,
) -> Result<(), TestCaseError> {
    let r = sc.replicas;
    let t = &out.traffic;
    let prm = pod_params(r, sc.surge, sc.unavailable);
    if sc.routed && t.weight > applied.weight {
        // setCanaryScale caps the canary's need, but only up to the weight the steps ask for.
        let asked = setting_at(&sc.steps, out.step.min(sc.steps.len().saturating_sub(1))).weight;
        let asked = if out.step >= sc.steps.len() {
            100
        } else {
            asked
        };
        let need = if t.weight <= asked {
            pods_for(&prm, t.weight).min(out_cap(sc, out))
        } else {
            pods_for(&prm, t.weight)
        };
        prop_assert!(
            w.available(canary) >= need,
            "weight {} raised with {} canary pods available",
            t.weight,
            w.available(canary)
        );
    }
    if sc.routed && t.weight < applied.weight && t.stable_selects != canary {
        prop_assert!(
            w.available("old") >= stable_need(&prm, 100 - t.weight),
            "weight {} lowered with {} stable pods available",
            t.weight,
            w.available("old")
        );
    }
    // Traffic leaves before pods: canary pods removed only beyond what the applied traffic needs.
    let removed_available = out
        .pods
        .actions
        .iter()
        .filter(|a| match a {
            Action::Remove { pod, .. } => w.pods.iter().any(|p| {
                &p.view.name == pod && p.view.runs(canary) && p.view.ready_since.is_some()
            }),
            _ => false,
        })
        .count() as i32;
    if sc.routed
        && applied.canary_selects.as_deref() == Some(canary)
        && applied.stable_selects.as_deref() != Some(canary)
    {
        prop_assert!(
            removed_available == 0
                || w.available(canary) - removed_available
                    >= serving_floor(&pod_params(r, sc.surge, sc.unavailable), applied)
                        .min(out_cap(sc, out)),
            "canary pods removed while traffic ({}%, routes {:?}) still needs them: step {} actions {:?} pods {:?}",
            applied.weight,
            applied.routes,
            out.step,
            out.pods.actions,
            w.views()
                .iter()
                .map(|p| (p.name.clone(), p.ready_since.is_some(), p.retiring))
                .collect::<Vec<_>>()
        );
    }
    // Services never switch to a revision without ready pods.
    for sel in [&t.stable_selects, &t.canary_selects] {
        let switched = Some(sel.as_str()) != applied.canary_selects.as_deref()
            && Some(sel.as_str()) != applied.stable_selects.as_deref();
        prop_assert!(
            !switched || w.available(sel) > 0 || sel == "old",
            "a Service switched to {sel} without ready pods"
        );
    }
    let alive = w
        .pods
        .iter()
        .filter(|p| !(p.view.terminating || (p.view.retiring && p.view.drained)))
        .count() as i32;
    // A scale-down leaves the pods above the new count to go within the old ceiling.
    let peak = sc.scale.map_or(r, |(_, to)| to.max(sc.replicas).max(r));
    prop_assert!(alive <= peak + sc.surge + 1, "{alive} pods");
    Ok(())
}

fn out_cap(sc: &Scenario, out: &CanaryPlan) -> i32 {
    canary_pods(
        sc.replicas,
        &setting_at(&sc.steps, out.step.min(sc.steps.len().saturating_sub(1))),
    )
    .max(if out.step >= sc.steps.len() {
        sc.replicas
    } else {
        0
    })
    .max(1)
}

fn run(sc: Scenario) -> Result<(), TestCaseError> {
    let mut w = World {
        now: 0,
        pods: (0..sc.replicas)
            .map(|i| SimPod {
                view: ready(&format!("old-{i}"), "old", 0),
                ready_at: 0,
            })
            .collect(),
        next: 0,
        ready_delay: sc.ready_delay,
    };
    let mut sc = sc;
    let mut p = CanaryParams {
        pods: pod_params(sc.replicas, sc.surge, sc.unavailable),
        steps: sc.steps.clone(),
        routed: sc.routed,
    };
    let mut st = CanaryState {
        step: 0,
        step_started: t(0),
        applied: applied_stable(),
    };
    let first = sc.replicas;
    for _ in 0..400 {
        if let Some((at, to)) = sc.scale.filter(|(at, _)| *at == w.now) {
            let _ = at;
            sc.replicas = to;
            sc.unavailable = sc.unavailable.min(to);
            p.pods.replicas = to;
            p.pods.max_unavailable = sc.unavailable;
            sc.scale = Some((at, first.max(to)));
        }
        let views = w.views();
        let aborting = sc.abort_at.is_some_and(|a| w.now >= a);
        let out = if aborting {
            let prm = Params {
                target_revision: "old".into(),
                ..p.pods.clone()
            };
            retire(&prm, &st.applied, sc.routed, &views, t(w.now))
        } else {
            let promote = match st.step {
                i if i < sc.steps.len() && matches!(sc.steps[i], Step::Pause(None)) => {
                    Some(Promote::Step(i))
                }
                _ => None,
            };
            let sig = Signals {
                promote,
                analysis_passed_since: Some(t(w.now)),
                held: false,
            };
            plan(&p, &st, sig, &views, t(w.now))
        };
        check(&sc, &w, &st.applied, &out, "new")?;
        let done = out.pods.complete && (aborting || out.promoted);
        w.act(&out.pods.actions);
        st = CanaryState {
            step: out.step,
            step_started: out.step_started,
            applied: out.traffic.applied(),
        };
        if done {
            let left = if aborting { "new" } else { "old" };
            prop_assert_eq!(
                w.pods
                    .iter()
                    .filter(|p| p.view.is_alive() && p.view.runs(left))
                    .count(),
                0
            );
            prop_assert_eq!(
                st.applied.weight,
                if aborting || sc.routed {
                    0
                } else {
                    st.applied.weight
                }
            );
            prop_assert!(st.applied.routes.is_empty());
            return Ok(());
        }
        w.tick();
    }
    let pods: Vec<String> = w
        .pods
        .iter()
        .map(|p| {
            format!(
                "{}:{}{}{}",
                p.view.name,
                if p.view.ready_since.is_some() {
                    "R"
                } else {
                    "-"
                },
                if p.view.retiring { "r" } else { "" },
                if p.view.terminating { "t" } else { "" }
            )
        })
        .collect();
    Err(TestCaseError::fail(format!(
        "no completion in 400 observations: step {} applied {:?} pods {pods:?}",
        st.step, st.applied
    )))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn canaries_finish_or_abort_within_the_rules(sc in arb_scenario()) {
        run(sc)?;
    }
}
