//! Tests of the canary planner, one behaviour each: settings, weights waiting for pods, pauses
//! and promotion, the promotion's order, an abort's order. The property tests are in
//! `canary_sim_tests.rs`.

use std::time::Duration;

use jiff::Timestamp;

use super::canary::*;
use super::model::*;
use crate::crd::{HeaderMatch, HeaderRoute, StringMatch};

pub(super) fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

pub(super) fn pod_params(replicas: i32, surge: i32, unavailable: i32) -> Params {
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

pub(super) fn route(name: &str, value: Option<&str>) -> HeaderRoute {
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

pub(super) fn ready(name: &str, rev: &str, at: i64) -> PodView {
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

pub(super) fn applied_stable() -> Applied {
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
