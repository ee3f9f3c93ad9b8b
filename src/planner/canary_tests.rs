//! Tests of the canary planner: each step type, and property tests that drive it through a
//! simulated cluster (pods turning Ready after random delays, drains, removals), promoting at
//! indefinite pauses and aborting at a random moment, checking at every observation that the
//! weight never exceeds what is available, that traffic leaves the canary before its pods do,
//! and that the bounds hold.

use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;

use super::canary::*;
use super::model::*;
use crate::crd::{HeaderMatch, HeaderRoute, StringMatch};

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn pod_params(replicas: i32, surge: i32, unavailable: i32) -> Params {
    Params {
        replicas,
        max_surge: surge,
        max_unavailable: unavailable,
        min_ready: Duration::ZERO,
        target_revision: "new".into(),
        stable_revision: Some("old".into()),
        paused: false,
        replacement: PodReplacementPolicy::TerminationStarted,
    }
}

fn route(name: &str, value: Option<&str>) -> HeaderRoute {
    HeaderRoute {
        name: name.into(),
        matches: value
            .map(|v| {
                vec![HeaderMatch {
                    header_name: "X-Canary".into(),
                    header_value: StringMatch {
                        exact: Some(v.into()),
                        prefix: None,
                        regex: None,
                    },
                }]
            })
            .unwrap_or_default(),
    }
}

fn ready(name: &str, rev: &str, at: i64) -> PodView {
    PodView {
        name: name.into(),
        revision: Some(rev.into()),
        created: t(at),
        scheduled: true,
        phase: PodPhase::Running,
        ready_since: Some(t(at)),
        retiring: false,
        drained: false,
        terminating: false,
    }
}

fn stable_pods_of(n: i32) -> Vec<PodView> {
    (0..n)
        .map(|i| ready(&format!("old-{i}"), "old", 0))
        .collect()
}

fn applied_stable() -> Applied {
    Applied {
        weight: 0,
        routes: Vec::new(),
        stable_selects: Some("old".into()),
        canary_selects: Some("old".into()),
    }
}

#[test]
fn settings_fold_weights_routes_and_scale_in_order() {
    let steps = vec![
        Step::HeaderRoute(route("beta", Some("always"))),
        Step::Weight(20),
        Step::HeaderRoute(route("alpha", Some("1"))),
        Step::Scale(CanaryScale::Replicas(3)),
        Step::HeaderRoute(route("beta", None)),
        Step::Scale(CanaryScale::FollowWeight),
    ];
    let s = setting_at(&steps, 0);
    assert_eq!((s.weight, s.routes.len()), (0, 1));
    assert_eq!(
        canary_pods(10, &s),
        1,
        "a header route needs one canary pod"
    );
    let s = setting_at(&steps, 2);
    let names: Vec<&str> = s.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"], "several routes at once, sorted");
    assert_eq!(canary_pods(10, &s), 2);
    assert_eq!(stable_pods(10, &s, true), 8);
    assert_eq!(stable_pods(10, &s, false), 8);
    assert_eq!(
        canary_pods(10, &setting_at(&steps, 3)),
        3,
        "scale is independent of weight"
    );
    let s = setting_at(&steps, 4);
    assert_eq!(
        s.routes.len(),
        1,
        "a route without matches removes its name"
    );
    assert_eq!(canary_pods(10, &setting_at(&steps, 5)), 2);
    assert_eq!(ceil_percent(10, 15), 2);
    assert_eq!(
        stable_pods(
            10,
            &Setting {
                weight: 15,
                ..Setting::default()
            },
            true
        ),
        9
    );
}

#[test]
fn a_weight_waits_for_the_canary_pods_that_serve_it() {
    let p = CanaryParams {
        pods: pod_params(10, 2, 0),
        steps: vec![Step::Weight(20), Step::Pause(None)],
        routed: true,
    };
    let st = CanaryState {
        step: 0,
        step_started: t(0),
        applied: applied_stable(),
    };
    let pods = stable_pods_of(10);
    let first = plan(&p, &st, Signals::default(), &pods, t(10));
    assert_eq!(first.step, 0);
    assert_eq!(first.traffic.weight, 0, "no canary pod is available yet");
    assert_eq!(
        first.traffic.canary_selects, "old",
        "no Service selects zero ready pods"
    );
    assert!(matches!(
        first.waiting,
        Some(Waiting::CanaryPods {
            available: 0,
            needed: 2
        })
    ));
    assert!(first.pods.actions.contains(&Action::Create {
        revision: "new".into(),
        count: 2
    }));

    // Two canary pods ready: the canary Service moves first, then the weight.
    let mut pods = pods;
    pods.push(ready("new-0", "new", 11));
    pods.push(ready("new-1", "new", 11));
    let plan1 = plan(&p, &st, Signals::default(), &pods, t(12));
    assert_eq!(plan1.traffic.canary_selects, "new");
    assert_eq!(
        plan1.traffic.weight, 0,
        "weight waits until the canary Service selects the canary"
    );
    let st = CanaryState {
        applied: plan1.traffic.applied(),
        ..st
    };
    let plan2 = plan(&p, &st, Signals::default(), &pods, t(13));
    assert_eq!(plan2.traffic.weight, 20);
    assert_eq!(
        plan2.step, 0,
        "the step completes once the weight is applied"
    );
    let st = CanaryState {
        applied: plan2.traffic.applied(),
        ..st
    };
    let plan3 = plan(&p, &st, Signals::default(), &pods, t(14));
    assert_eq!((plan3.step, plan3.step_started), (1, t(14)));
    assert_eq!(plan3.waiting, Some(Waiting::Promotion));
    // With the weight applied, the stable side may shrink to 8.
    let removes = plan3
        .pods
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Remove { .. }))
        .count();
    assert_eq!(removes, 2);
}

#[test]
fn pauses_end_by_time_or_promotion_and_full_promotion_skips_the_rest() {
    let p = CanaryParams {
        pods: pod_params(4, 1, 0),
        steps: vec![
            Step::Pause(Some(Duration::from_secs(30))),
            Step::Pause(None),
            Step::Analysis,
        ],
        routed: false,
    };
    let st = CanaryState {
        step: 0,
        step_started: t(0),
        applied: applied_stable(),
    };
    let pods = stable_pods_of(4);
    let a = plan(&p, &st, Signals::default(), &pods, t(10));
    assert_eq!(
        a.waiting,
        Some(Waiting::Pause {
            remaining: Duration::from_secs(20)
        })
    );
    assert_eq!(a.wake, Some(Duration::from_secs(20)));
    let b = plan(&p, &st, Signals::default(), &pods, t(30));
    assert_eq!(b.step, 1);
    let st1 = CanaryState {
        step: 1,
        step_started: t(30),
        ..st.clone()
    };
    assert_eq!(
        plan(&p, &st1, Signals::default(), &pods, t(999)).waiting,
        Some(Waiting::Promotion)
    );
    let promote = Signals {
        promote: Some(Promote::Step(1)),
        ..Signals::default()
    };
    assert_eq!(plan(&p, &st1, promote, &pods, t(40)).step, 2);
    let stale = Signals {
        promote: Some(Promote::Step(0)),
        ..Signals::default()
    };
    assert_eq!(
        plan(&p, &st1, stale, &pods, t(40)).step,
        1,
        "a promotion of another step is stale"
    );
    let st2 = CanaryState {
        step: 2,
        step_started: t(40),
        ..st.clone()
    };
    let gate_old = Signals {
        analysis_passed_since: Some(t(39)),
        ..Signals::default()
    };
    assert_eq!(
        plan(&p, &st2, gate_old, &pods, t(50)).waiting,
        Some(Waiting::Analysis)
    );
    let gate_new = Signals {
        analysis_passed_since: Some(t(45)),
        ..Signals::default()
    };
    assert_eq!(
        plan(&p, &st2, gate_new, &pods, t(50)).step,
        3,
        "measured after the step started"
    );
    let full = Signals {
        promote: Some(Promote::Full),
        ..Signals::default()
    };
    let f = plan(&p, &st, full, &pods, t(5));
    assert_eq!(f.step, 3);
    assert!(f.pods.actions.contains(&Action::Create {
        revision: "new".into(),
        count: 1
    }));
    let held = Signals {
        held: true,
        ..Signals::default()
    };
    assert_eq!(
        plan(&p, &st, held, &pods, t(99)).step,
        0,
        "held: no step advances"
    );
}

#[test]
fn promotion_switches_the_stable_service_then_retires_old_pods() {
    let p = CanaryParams {
        pods: pod_params(2, 1, 0),
        steps: vec![Step::Weight(50)],
        routed: true,
    };
    let mut pods = stable_pods_of(1);
    pods.push(ready("new-0", "new", 1));
    pods.push(ready("new-1", "new", 1));
    let applied = Applied {
        weight: 50,
        routes: vec!["beta".into()],
        stable_selects: Some("old".into()),
        canary_selects: Some("new".into()),
    };
    let st = CanaryState {
        step: 1,
        step_started: t(0),
        applied,
    };
    let raise = plan(&p, &st, Signals::default(), &pods, t(4));
    assert_eq!(
        raise.traffic.weight, 100,
        "promotion first gives the canary all the weight"
    );
    assert_eq!(raise.traffic.stable_selects, "old");
    let st = CanaryState {
        applied: raise.traffic.applied(),
        ..st
    };
    let a = plan(&p, &st, Signals::default(), &pods, t(5));
    assert_eq!(a.traffic.stable_selects, "new");
    assert_eq!((a.traffic.weight, a.traffic.routes.len()), (0, 0));
    assert!(!a.promoted);
    assert!(
        a.pods
            .actions
            .iter()
            .all(|x| !matches!(x, Action::Remove { .. })),
        "old pods wait for the switch"
    );
    let st = CanaryState {
        applied: a.traffic.applied(),
        ..st
    };
    let b = plan(&p, &st, Signals::default(), &pods, t(6));
    assert!(b.promoted);
    assert!(b.pods.actions.contains(&Action::Remove {
        pod: "old-0".into(),
        reason: RemoveReason::Outdated
    }));
}

#[test]
fn an_abort_moves_traffic_back_before_any_canary_pod_goes() {
    let prm = Params {
        target_revision: "old".into(),
        ..pod_params(4, 1, 0)
    };
    let mut pods = stable_pods_of(2);
    pods.push(ready("new-0", "new", 1));
    pods.push(ready("new-1", "new", 1));
    let applied = Applied {
        weight: 50,
        routes: vec!["beta".into()],
        stable_selects: Some("old".into()),
        canary_selects: Some("new".into()),
    };
    let a = retire(&prm, &applied, true, &pods, t(5));
    assert!(a.traffic.routes.is_empty(), "header routes go at once");
    assert_eq!(
        a.traffic.weight, 49,
        "two stable pods take half, with one point of rounding given to stable"
    );
    assert_eq!(a.traffic.canary_selects, "new");
    assert!(
        a.pods
            .actions
            .iter()
            .all(|x| !matches!(x, Action::Remove { .. }))
    );
    assert!(a.pods.actions.contains(&Action::Create {
        revision: "old".into(),
        count: 1
    }));
    pods.push(ready("old-2", "old", 6));
    let b = retire(
        &prm,
        &Applied {
            routes: vec![],
            ..applied.clone()
        },
        true,
        &pods,
        t(7),
    );
    assert_eq!(b.traffic.weight, 24);
    let applied = b.traffic.applied();
    let c = retire(&prm, &applied, true, &pods, t(8));
    let removed: Vec<_> = c
        .pods
        .actions
        .iter()
        .filter(|x| matches!(x, Action::Remove { .. }))
        .collect();
    assert_eq!(
        removed.len(),
        1,
        "only the canary pod the applied 25% does not need"
    );
    let zero = Applied {
        weight: 0,
        ..applied
    };
    let d = retire(&prm, &zero, true, &pods, t(9));
    assert_eq!(
        d.traffic.canary_selects, "old",
        "no traffic: the canary Service goes back"
    );
    assert!(!d.pods.complete);
}

// ---- property tests: a simulated cluster ----

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
    )
        .prop_filter("surge and unavailable not both 0", |(_, s, u, ..)| {
            s + u > 0
        })
        .prop_map(
            |(replicas, surge, unavailable, steps, routed, ready_delay, abort_at)| Scenario {
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
        let need = pods_for(&prm, t.weight).min(out_cap(sc, out));
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
    prop_assert!(alive <= r + sc.surge + 1, "{alive} pods");
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
    let p = CanaryParams {
        pods: pod_params(sc.replicas, sc.surge, sc.unavailable),
        steps: sc.steps.clone(),
        routed: sc.routed,
    };
    let mut st = CanaryState {
        step: 0,
        step_started: t(0),
        applied: applied_stable(),
    };
    for _ in 0..400 {
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
