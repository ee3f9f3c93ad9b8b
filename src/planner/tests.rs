//! Unit and property tests of the planner. The property tests drive the real planner through a
//! randomized cluster (pods turning Ready at random times, drains of random length, pods
//! crashing) and check the rollout invariants at every step.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn params(replicas: i32, surge: i32, unavailable: i32) -> Params {
    Params {
        replicas,
        max_surge: surge,
        max_unavailable: unavailable,
        min_ready: Duration::from_secs(5),
        target_revision: "new".into(),
        stable_revision: Some("old".into()),
        paused: false,
        replacement: PodReplacementPolicy::TerminationStarted,
    }
}

fn ready_pod(name: &str, rev: &str, created: i64) -> PodView {
    PodView {
        name: name.into(),
        revision: Some(rev.into()),
        created: t(created),
        scheduled: true,
        phase: PodPhase::Running,
        ready_since: Some(t(created + 1)),
        retiring: false,
        drained: false,
        terminating: false,
    }
}

fn creates(plan: &Plan) -> i32 {
    plan.actions
        .iter()
        .map(|a| match a {
            Action::Create { count, .. } => *count,
            _ => 0,
        })
        .sum()
}

fn removed(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::Remove { pod, .. } => Some(pod.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn first_wave_surges_without_removing() {
    let pods: Vec<_> = (0..4)
        .map(|i| ready_pod(&format!("o{i}"), "old", i))
        .collect();
    let p = plan(&params(4, 1, 0), &pods, t(100));
    assert_eq!(creates(&p), 1);
    assert!(
        removed(&p).is_empty(),
        "nothing may go before a new pod is available"
    );
    assert!(!p.complete);
}

#[test]
fn new_pod_counts_only_after_min_ready_seconds() {
    let mut pods: Vec<_> = (0..4)
        .map(|i| ready_pod(&format!("o{i}"), "old", i))
        .collect();
    let mut n = ready_pod("n0", "new", 98); // Ready at 99, available at 104
    n.ready_since = Some(t(99));
    pods.push(n);
    let p = plan(&params(4, 1, 0), &pods, t(100));
    assert!(removed(&p).is_empty());
    assert_eq!(p.requeue_after, Some(Duration::from_secs(4)));
    let p = plan(&params(4, 1, 0), &pods, t(104));
    assert_eq!(removed(&p).len(), 1, "{:?}", p.actions);
    assert_eq!(removed(&p)[0], "o3", "newest old pod goes first");
}

#[test]
fn removal_order_unscheduled_then_unready_then_old_then_newest() {
    let mut unscheduled = ready_pod("unsched", "new", 50);
    unscheduled.scheduled = false;
    unscheduled.ready_since = None;
    unscheduled.phase = PodPhase::Pending;
    let mut unready = ready_pod("unready", "new", 40);
    unready.ready_since = None;
    let pods = vec![
        ready_pod("old-a", "old", 1),
        ready_pod("old-b", "old", 2),
        ready_pod("new-a", "new", 3),
        ready_pod("new-b", "new", 4),
        unready,
        unscheduled,
    ];
    // Scale down to 1 with generous unavailability: everything but one pod goes, in order.
    let mut prm = params(1, 0, 1);
    prm.min_ready = Duration::ZERO;
    let p = plan(&prm, &pods, t(100));
    assert_eq!(
        removed(&p),
        vec!["unsched", "unready", "old-b", "old-a", "new-b"]
    );
}

#[test]
fn failed_pods_are_removed_and_replaced_within_surge() {
    let mut pods: Vec<_> = (0..3)
        .map(|i| ready_pod(&format!("n{i}"), "new", i))
        .collect();
    pods[0].phase = PodPhase::Failed;
    pods[0].ready_since = None;
    let p = plan(&params(3, 1, 0), &pods, t(100));
    assert!(removed(&p).contains(&"n0".to_string()));
    assert_eq!(creates(&p), 1, "one replacement, within maxSurge");
}

fn complete_policy(replicas: i32, surge: i32, unavailable: i32) -> Params {
    Params {
        replacement: PodReplacementPolicy::TerminationComplete,
        ..params(replicas, surge, unavailable)
    }
}

#[test]
fn terminating_pods_count_against_surge_and_are_not_replaced_twice() {
    let mut pods: Vec<_> = (0..3)
        .map(|i| ready_pod(&format!("n{i}"), "new", i))
        .collect();
    pods[0].terminating = true;
    // 3 pods exist (one terminating), 2 alive: with surge 0 there is no room for a third yet.
    let p = plan(&complete_policy(3, 0, 1), &pods, t(100));
    assert_eq!(creates(&p), 0);
    let p = plan(&complete_policy(3, 1, 0), &pods, t(100));
    assert_eq!(creates(&p), 1);
    // TerminationStarted: the terminating pod no longer counts, so it is replaced at once.
    let p = plan(&params(3, 0, 1), &pods, t(100));
    assert_eq!(creates(&p), 1);
}

#[test]
fn a_draining_pod_counts_until_it_is_out_of_traffic_with_termination_started() {
    // 4 replicas, surge 1: one new pod is available, one old pod is retiring.
    let mut pods: Vec<_> = (0..4)
        .map(|i| ready_pod(&format!("o{i}"), "old", i))
        .collect();
    pods.push(ready_pod("n0", "new", 10));
    pods[3].retiring = true;
    pods[3].ready_since = None;
    // Still listed as ready somewhere: it serves, so it counts; no room for the next wave.
    let p = plan(&params(4, 1, 0), &pods, t(100));
    assert_eq!(creates(&p), 0, "{:?}", p.actions);
    assert!(!p.complete);
    // Out of traffic: the next surge pod starts while it drains.
    pods[3].drained = true;
    let p = plan(&params(4, 1, 0), &pods, t(100));
    assert_eq!(creates(&p), 1, "{:?}", p.actions);
    assert_eq!(p.counts.total, 4, "o3 no longer counts");
    assert_eq!(p.counts.retiring, 1);
    // TerminationComplete keeps counting it until it is gone.
    let p = plan(&complete_policy(4, 1, 0), &pods, t(100));
    assert_eq!(creates(&p), 0, "{:?}", p.actions);
}

#[test]
fn drained_pods_do_not_hold_completion() {
    let mut pods: Vec<_> = (0..3)
        .map(|i| ready_pod(&format!("n{i}"), "new", i))
        .collect();
    let mut old = ready_pod("o0", "old", 0);
    old.retiring = true;
    old.ready_since = None;
    pods.push(old);
    assert!(
        !plan(&params(3, 1, 0), &pods, t(100)).complete,
        "o0 may still serve"
    );
    pods[3].drained = true;
    let p = plan(&params(3, 1, 0), &pods, t(100));
    assert!(
        p.complete,
        "o0 is out of traffic; its deletion is reported, not awaited"
    );
    assert_eq!(p.counts.retiring, 1);
}

#[test]
fn paused_scales_but_does_not_progress() {
    let mut prm = params(4, 1, 0);
    prm.paused = true;
    let pods: Vec<_> = (0..2)
        .map(|i| ready_pod(&format!("o{i}"), "old", i))
        .collect();
    let p = plan(&prm, &pods, t(100));
    assert_eq!(
        p.actions,
        vec![Action::Create {
            revision: "old".into(),
            count: 2
        }],
        "scaling up while paused keeps the stable revision"
    );
    let pods: Vec<_> = (0..4)
        .map(|i| ready_pod(&format!("o{i}"), "old", i))
        .collect();
    assert!(plan(&prm, &pods, t(100)).actions.is_empty());
}

#[test]
fn complete_only_when_every_pod_is_updated_and_available() {
    let pods: Vec<_> = (0..3)
        .map(|i| ready_pod(&format!("n{i}"), "new", i))
        .collect();
    let p = plan(&params(3, 1, 0), &pods, t(100));
    assert!(p.complete);
    assert!(p.actions.is_empty());
    let p = plan(&params(3, 1, 0), &pods, t(3));
    assert!(!p.complete, "not yet Ready for minReadySeconds");
}

#[test]
fn simulation_of_a_deployment_like_rollout() {
    let prm = params(10, 3, 2);
    let timing = Timing::default();
    let tl = simulate_rollout(&prm, Some("old"), timing, 1000).unwrap();
    let waves = &tl.waves;
    // The first wave surges by 3 and removes 2 old pods at once, as a Deployment does; once
    // those two are out of traffic they no longer count, and 2 more new pods start.
    assert_eq!(waves[0].created, 5);
    assert_eq!(waves[0].removed, 2);
    let strict = simulate_rollout(&complete_policy(10, 3, 2), Some("old"), timing, 1000).unwrap();
    assert_eq!((strict.waves[0].created, strict.waves[0].removed), (3, 2));
    assert!(strict.waves.iter().all(|w| w.total <= 13), "{strict:?}");
    assert_eq!(waves[0].at, Duration::ZERO);
    for w in waves {
        assert!(w.total <= 13, "{w:?}");
        assert!(w.available >= 8, "{w:?}");
    }
    let last = waves.last().unwrap();
    assert_eq!((last.updated, last.old), (10, 0));
    assert!(waves.windows(2).all(|w| w[0].at <= w[1].at));
}

#[test]
fn timeline_waits_for_readiness_and_min_ready_and_propagation() {
    // 4 replicas, surge 1, minReadySeconds 5, Ready after 1 s, propagation 5 s.
    let timing = Timing {
        ready_after: Duration::from_secs(1),
        propagation: Duration::from_secs(5),
    };
    let started = simulate_rollout(&params(4, 1, 0), Some("old"), timing, 1000).unwrap();
    // TerminationStarted: a wave every 6 s (1 s to Ready + 5 s minReady), the old pod's drain
    // overlaps the next wave.
    let at: Vec<u64> = started.waves.iter().map(|w| w.at.as_secs()).collect();
    assert_eq!(at, [0, 6, 12, 18, 24], "{:?}", started.waves);
    assert_eq!(started.done_at, Duration::from_secs(24));
    // TerminationComplete: the next surge pod waits for the propagation delay too.
    let complete = simulate_rollout(&complete_policy(4, 1, 0), Some("old"), timing, 1000).unwrap();
    assert!(complete.done_at > started.done_at, "{complete:?}");
    let at: Vec<u64> = complete.waves.iter().map(|w| w.at.as_secs()).collect();
    assert_eq!(at, [0, 6, 11, 17, 22, 28, 33, 39], "{:?}", complete.waves);
}

#[test]
fn summary_reports_waves_and_deadline() {
    let prm = params(10, 2, 0);
    let pods: Vec<_> = (0..10)
        .map(|i| ready_pod(&format!("o{i}"), "old", i))
        .collect();
    let p = plan(&prm, &pods, t(100));
    let prev = Progress {
        revision: Some("new".into()),
        counts: p.counts,
        last_progress: Some(t(0)),
    };
    let s = summarize(&prm, &p, &prev, Duration::from_secs(600), None, t(100));
    assert_eq!(s.phase, crate::crd::Phase::Progressing);
    assert_eq!(s.message, "wave 1/5: 0/10 updated, 10 available");
    assert_eq!(s.deadline_in, Some(Duration::from_secs(500)));
    let s = summarize(&prm, &p, &prev, Duration::from_secs(600), None, t(600));
    assert_eq!(s.phase, crate::crd::Phase::Degraded);
    assert!(s.deadline_exceeded);
    // A new revision restarts the clock.
    let fresh = Progress {
        revision: Some("older".into()),
        ..prev
    };
    let s = summarize(&prm, &p, &fresh, Duration::from_secs(600), None, t(600));
    assert_eq!(s.phase, crate::crd::Phase::Progressing);
    assert_eq!(s.last_progress, t(600));
}

// ---------------------------------------------------------------------------------------------
// Property tests: a randomized cluster driven by the real planner.

#[derive(Clone, Debug)]
struct SimPod {
    view: PodView,
    /// Seconds after creation the pod turns Ready.
    ready_after: i64,
    /// Steps of drain left while retiring; then it is terminating for `terminate_steps`.
    drain_left: u8,
    terminate_left: u8,
}

fn arb_pod(i: usize) -> impl Strategy<Value = SimPod> {
    (
        prop_oneof![Just("old"), Just("older"), Just("new")],
        any::<bool>(),              // ready
        0i64..20,                   // ready since (seconds before now)
        prop::bool::weighted(0.1),  // terminating
        prop::bool::weighted(0.1),  // retiring
        prop::bool::weighted(0.05), // failed
        prop::bool::weighted(0.05), // unscheduled
        (0u8..3, 0u8..3, any::<bool>()),
    )
        .prop_map(
            move |(
                rev,
                ready,
                since,
                terminating,
                retiring,
                failed,
                unscheduled,
                (drain, term, drained_now),
            )| {
                let now = 1_000;
                SimPod {
                    view: PodView {
                        name: format!("p{i}"),
                        revision: Some(rev.to_string()),
                        created: t(now - 30 - i as i64),
                        scheduled: !unscheduled,
                        phase: if failed {
                            PodPhase::Failed
                        } else if unscheduled {
                            PodPhase::Pending
                        } else {
                            PodPhase::Running
                        },
                        // A drained pod is out of traffic, so no longer Ready.
                        ready_since: (ready
                            && !(failed || unscheduled || (retiring && drained_now)))
                            .then(|| t(now - since)),
                        retiring: retiring && !terminating,
                        drained: retiring && !terminating && drained_now,
                        terminating,
                    },
                    ready_after: 1,
                    drain_left: drain,
                    terminate_left: term,
                }
            },
        )
}

#[derive(Clone, Debug)]
struct Scenario {
    params: Params,
    pods: Vec<SimPod>,
    /// Readiness delays for new pods, cycled.
    ready_delays: Vec<i64>,
}

fn arb_scenario() -> impl Strategy<Value = Scenario> {
    (
        0i32..12,
        0i32..5,
        0i32..5,
        0u64..8,
        0usize..16,
        any::<bool>(),
    )
        .prop_flat_map(|(replicas, surge, unavail, min_ready, n, complete)| {
            let unavail = if surge == 0 && unavail == 0 {
                1
            } else {
                unavail
            };
            (
                Just(Params {
                    replicas,
                    max_surge: surge,
                    max_unavailable: unavail,
                    min_ready: Duration::from_secs(min_ready),
                    target_revision: "new".into(),
                    stable_revision: Some("old".into()),
                    paused: false,
                    replacement: if complete {
                        PodReplacementPolicy::TerminationComplete
                    } else {
                        PodReplacementPolicy::TerminationStarted
                    },
                }),
                (0..n).map(arb_pod).collect::<Vec<_>>(),
                prop::collection::vec(0i64..15, 1..6),
            )
        })
        .prop_map(|(params, pods, ready_delays)| Scenario {
            params,
            pods,
            ready_delays,
        })
}

/// Runs the scenario to completion, checking the invariants after every planner call.
fn run(mut sc: Scenario) -> Result<usize, TestCaseError> {
    let prm = sc.params.clone();
    let mut now = 1_000i64;
    let mut serial = 0usize;
    for step in 0..2_000 {
        let views: Vec<PodView> = sc.pods.iter().map(|p| p.view.clone()).collect();
        let before = rolling::count(&prm, &views, t(now));
        // What maxSurge bounds, from the policy's definition (not from the planner's count).
        let counted = views
            .iter()
            .filter(|v| match prm.replacement {
                PodReplacementPolicy::TerminationComplete => true,
                PodReplacementPolicy::TerminationStarted => {
                    let finished = matches!(v.phase, PodPhase::Succeeded | PodPhase::Failed);
                    let out_of_traffic = v.retiring && v.drained && v.ready_since.is_none();
                    !v.terminating && !out_of_traffic && !finished
                }
            })
            .count() as i32;
        let p = plan(&prm, &views, t(now));
        if p.complete {
            prop_assert_eq!(p.counts.updated_available, prm.replicas);
            return Ok(step);
        }
        // Apply the actions the way the controller does.
        let mut created = 0;
        let mut removed_available = 0;
        for a in &p.actions {
            match a {
                Action::Create { revision, count } => {
                    prop_assert_eq!(revision.as_str(), "new");
                    for _ in 0..*count {
                        serial += 1;
                        let delay = sc.ready_delays[serial % sc.ready_delays.len()];
                        sc.pods.push(SimPod {
                            view: PodView {
                                name: format!("n{serial}"),
                                revision: Some(revision.clone()),
                                created: t(now),
                                scheduled: true,
                                phase: PodPhase::Running,
                                ready_since: None,
                                retiring: false,
                                drained: false,
                                terminating: false,
                            },
                            ready_after: delay,
                            drain_left: (serial % 3) as u8,
                            terminate_left: (serial % 2) as u8,
                        });
                    }
                    created += count;
                }
                Action::Remove { pod, .. } => {
                    let sp = sc.pods.iter_mut().find(|p| &p.view.name == pod).unwrap();
                    prop_assert!(
                        sp.view.is_alive() || !sp.view.retiring,
                        "removed twice: {}",
                        pod
                    );
                    if sp.view.is_available(prm.min_ready, t(now)) {
                        removed_available += 1;
                    }
                    if sp.view.ready_since.is_some() {
                        sp.view.retiring = true; // drain before delete: in traffic for now
                        sp.view.drained = false;
                    } else {
                        sp.view.terminating = true;
                    }
                }
            }
        }
        // Invariant 1: creations never exceed replicas + maxSurge.
        if created > 0 {
            prop_assert!(
                counted + created <= prm.max_pods(),
                "created {} with {} pods counting ({:?}), max {}",
                created,
                counted,
                prm.replacement,
                prm.max_pods()
            );
        }
        // Invariant 2: removals never take availability below replicas - maxUnavailable.
        if removed_available > 0 {
            prop_assert!(
                before.available - removed_available >= prm.min_available(),
                "removed {} available of {}, floor {}",
                removed_available,
                before.available,
                prm.min_available()
            );
        }
        // Time passes: drains and terminations finish, pods turn Ready.
        now += 1;
        let mut gone = Vec::new();
        for sp in sc.pods.iter_mut() {
            let v = &mut sp.view;
            if v.retiring && !v.terminating {
                if !v.drained {
                    v.drained = true; // endpoints caught up: out of traffic
                } else if sp.drain_left == 0 {
                    v.terminating = true;
                } else {
                    sp.drain_left -= 1;
                }
            } else if v.terminating {
                if sp.terminate_left == 0 {
                    gone.push(v.name.clone());
                } else {
                    sp.terminate_left -= 1;
                }
            } else if v.phase == PodPhase::Pending {
                // The scheduler gets to every pod eventually.
                v.scheduled = true;
                v.phase = PodPhase::Running;
            } else if v.ready_since.is_none() && v.phase == PodPhase::Running {
                let at = v.created.as_second() - 1_700_000_000 + sp.ready_after;
                if at <= now {
                    v.ready_since = Some(t(at));
                }
            }
            if v.terminating || v.retiring {
                v.ready_since = None;
            }
        }
        sc.pods.retain(|p| !gone.contains(&p.view.name));
    }
    Err(TestCaseError::fail(
        "the rollout never completed: no progress",
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// From any state, with pods that eventually turn Ready, the rollout completes, and no step
    /// ever breaks the surge ceiling or the availability floor.
    #[test]
    fn rollouts_complete_within_bounds(sc in arb_scenario()) {
        run(sc)?;
    }

    /// The planner is a pure function: the same input gives the same plan.
    #[test]
    fn planning_is_deterministic(sc in arb_scenario()) {
        let views: Vec<PodView> = sc.pods.iter().map(|p| p.view.clone()).collect();
        prop_assert_eq!(plan(&sc.params, &views, t(1_000)), plan(&sc.params, &views, t(1_000)));
    }

    /// Percentages resolve as a Deployment's: surge rounds up, unavailable rounds down, and
    /// never both zero.
    #[test]
    fn percentages_round_like_a_deployment(pct_s in 0i64..=100, pct_u in 0i64..=100, r in 0i32..500) {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let (s, u) = resolve_surge_unavailable(
            &IntOrString::String(format!("{pct_s}%")),
            &IntOrString::String(format!("{pct_u}%")),
            r,
        ).unwrap();
        let exact_s = pct_s as f64 * r as f64 / 100.0;
        let exact_u = pct_u as f64 * r as f64 / 100.0;
        prop_assert_eq!(s as f64, exact_s.ceil());
        if exact_s.ceil() == 0.0 && exact_u.floor() == 0.0 {
            prop_assert_eq!(u, 1);
        } else {
            prop_assert_eq!(u as f64, exact_u.floor());
        }
    }
}

#[test]
fn time_arithmetic_helpers() {
    assert_eq!(seconds(-3), Duration::ZERO);
    assert_eq!(
        available_at(t(0), Duration::from_secs(5)),
        t(0) + SignedDuration::from_secs(5)
    );
}
