//! Preview of a canary for `kubectl zdr plan`: the weight, header routes, pod counts and gate of
//! each step and of the promotion, derived from the canary planner's own `setting_at`,
//! `canary_pods` and `stable_pods`. Pure: no pods, no time.

use std::time::Duration;

use super::canary::{CanaryScale, Step, canary_pods, setting_at, stable_pods};
use crate::crd::HeaderRoute;
use crate::validate::Canary;

/// What one entry of a preview does.
#[derive(Clone, Debug, PartialEq)]
pub enum PreviewKind {
    /// A `setWeight` step: this percent of traffic to the canary.
    Weight(i32),
    /// A `setHeaderRoute` step with matches: adds (or replaces) this route.
    AddRoute(HeaderRoute),
    /// A `setHeaderRoute` step without matches: removes the route of this name.
    RemoveRoute(String),
    /// A `setCanaryScale` step.
    Scale(CanaryScale),
    /// An `analysis` step.
    Analysis,
    /// A `pause` step, with its duration (none: until promoted).
    Pause(Option<Duration>),
    /// After the last step: the canary becomes the stable revision.
    Promotion,
}

/// What an entry waits for before the next one starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// The canary pods the entry needs are available and the router carries its traffic (for
    /// the promotion: every replica runs the canary and the old pods are drained).
    Pods,
    /// This long, counted from the step's start.
    Pause(Duration),
    /// `kubectl zdr promote`.
    Promote,
    /// The analysis: every metric passes a measurement taken after the step started.
    Analysis,
}

/// One step of a canary (or its promotion), as it will stand once done.
#[derive(Clone, Debug, PartialEq)]
pub struct StepPreview {
    /// Step index; the promotion has `steps.len()`, as `status.currentStepIndex` counts it.
    pub index: usize,
    /// What the entry does.
    pub kind: PreviewKind,
    /// Percent of traffic to the canary (0 after promotion: the stable Service selects it).
    pub weight: i32,
    /// Header routes to the canary in force, sorted by name (none after promotion).
    pub routes: Vec<HeaderRoute>,
    /// Canary pods (every replica after promotion).
    pub canary_pods: i32,
    /// Stable pods: with a router, enough for the stable share of traffic,
    /// ceil(replicas × (100 − weight) / 100); without one, replicas − canary pods. 0 after
    /// promotion: the old pods are drained.
    pub stable_pods: i32,
    /// What it waits for.
    pub gate: Gate,
}

/// The steps of `canary` for `replicas` pods, then its promotion (the last entry): the counts
/// each step's setting asks for (`canary_pods`, `stable_pods`). `_max_surge` and
/// `_max_unavailable` (pod counts) bound how the controller gets there, not these counts; they
/// are taken so that a planner whose counts depend on them can be previewed through the same
/// call.
pub fn canary_preview(
    replicas: i32,
    canary: &Canary,
    _max_surge: i32,
    _max_unavailable: i32,
) -> Vec<StepPreview> {
    let replicas = replicas.max(0);
    let mut out: Vec<StepPreview> = canary
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let setting = setting_at(&canary.steps, i);
            let canary_n = canary_pods(replicas, &setting);
            let stable_n = stable_pods(replicas, &setting, canary.routed);
            StepPreview {
                index: i,
                kind: kind_of(step),
                weight: setting.weight,
                routes: setting.routes,
                canary_pods: canary_n,
                stable_pods: stable_n,
                gate: gate_of(step),
            }
        })
        .collect();
    out.push(StepPreview {
        index: canary.steps.len(),
        kind: PreviewKind::Promotion,
        weight: 0,
        routes: Vec::new(),
        canary_pods: replicas,
        stable_pods: 0,
        gate: Gate::Pods,
    });
    out
}

fn kind_of(step: &Step) -> PreviewKind {
    match step {
        Step::Weight(w) => PreviewKind::Weight(*w),
        Step::HeaderRoute(r) if r.matches.is_empty() => PreviewKind::RemoveRoute(r.name.clone()),
        Step::HeaderRoute(r) => PreviewKind::AddRoute(r.clone()),
        Step::Scale(s) => PreviewKind::Scale(*s),
        Step::Analysis => PreviewKind::Analysis,
        Step::Pause(d) => PreviewKind::Pause(*d),
    }
}

fn gate_of(step: &Step) -> Gate {
    match step {
        Step::Weight(_) | Step::HeaderRoute(_) | Step::Scale(_) => Gate::Pods,
        Step::Analysis => Gate::Analysis,
        Step::Pause(Some(d)) => Gate::Pause(*d),
        Step::Pause(None) => Gate::Promote,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::crd::{HeaderMatch, StringMatch};
    use crate::planner::canary::ceil_percent;

    fn route(name: &str, on: bool) -> Step {
        let matches = if on {
            vec![HeaderMatch {
                header_name: "X-Canary".into(),
                header_value: StringMatch {
                    exact: Some("always".into()),
                    prefix: None,
                    regex: None,
                },
            }]
        } else {
            Vec::new()
        };
        Step::HeaderRoute(HeaderRoute {
            name: name.into(),
            matches,
        })
    }

    fn routed(steps: Vec<Step>) -> Canary {
        Canary {
            steps,
            routed: true,
        }
    }

    #[test]
    fn weights_pods_gates_and_promotion() {
        let c = routed(vec![
            Step::Weight(10),
            route("beta", true),
            Step::Analysis,
            Step::Pause(Some(Duration::from_secs(120))),
            Step::Pause(None),
            Step::Weight(50),
        ]);
        let p = canary_preview(10, &c, 3, 0);
        assert_eq!(p.len(), 7);
        let counts: Vec<(i32, i32, i32)> = p
            .iter()
            .map(|s| (s.weight, s.canary_pods, s.stable_pods))
            .collect();
        assert_eq!(
            counts,
            [
                (10, 1, 9),
                (10, 1, 9),
                (10, 1, 9),
                (10, 1, 9),
                (10, 1, 9),
                (50, 5, 5),
                (0, 10, 0)
            ]
        );
        let gates: Vec<Gate> = p.iter().map(|s| s.gate).collect();
        assert_eq!(
            gates,
            [
                Gate::Pods,
                Gate::Pods,
                Gate::Analysis,
                Gate::Pause(Duration::from_secs(120)),
                Gate::Promote,
                Gate::Pods,
                Gate::Pods
            ]
        );
        assert!(p[0].routes.is_empty() && p[1].routes[0].name == "beta");
        assert_eq!(p[6].kind, PreviewKind::Promotion);
        assert_eq!(p[6].index, 6);
        assert!(p[6].routes.is_empty());
    }

    #[test]
    fn a_header_route_needs_a_canary_pod_and_its_removal_drops_it() {
        let c = routed(vec![route("beta", true), route("beta", false)]);
        let p = canary_preview(4, &c, 1, 0);
        assert_eq!((p[0].weight, p[0].canary_pods, p[0].stable_pods), (0, 1, 4));
        assert_eq!(p[1].kind, PreviewKind::RemoveRoute("beta".into()));
        assert!(p[1].routes.is_empty());
        assert_eq!(p[1].canary_pods, 0);
    }

    #[test]
    fn a_scale_step_sets_the_canary_apart_from_the_weight() {
        let c = routed(vec![
            Step::Scale(CanaryScale::Replicas(5)),
            Step::Weight(100),
            Step::Scale(CanaryScale::FollowWeight),
        ]);
        let p = canary_preview(10, &c, 3, 1);
        assert_eq!(
            (p[0].weight, p[0].canary_pods, p[0].stable_pods),
            (0, 5, 10)
        );
        // The scale holds at 100%: 5 canary pods take all the weight, the stable side none.
        assert_eq!((p[1].canary_pods, p[1].stable_pods), (5, 0));
        assert_eq!((p[2].canary_pods, p[2].stable_pods), (10, 0));
        assert_eq!(p[2].kind, PreviewKind::Scale(CanaryScale::FollowWeight));
    }

    #[test]
    fn without_a_router_pods_are_the_split() {
        let c = Canary {
            steps: vec![Step::Weight(30), Step::Scale(CanaryScale::Percent(50))],
            routed: false,
        };
        let p = canary_preview(10, &c, 1, 1);
        assert_eq!((p[0].canary_pods, p[0].stable_pods), (3, 7));
        assert_eq!((p[1].canary_pods, p[1].stable_pods), (5, 5));
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..=100i32).prop_map(Step::Weight),
            ("[ab]", any::<bool>()).prop_map(|(n, on)| route(&n, on)),
            (0..=20i32).prop_map(|n| Step::Scale(CanaryScale::Replicas(n))),
            (0..=100i32).prop_map(|p| Step::Scale(CanaryScale::Percent(p))),
            Just(Step::Scale(CanaryScale::FollowWeight)),
            Just(Step::Analysis),
            Just(Step::Pause(None)),
            (1..600u64).prop_map(|s| Step::Pause(Some(Duration::from_secs(s)))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn preview_invariants(
            replicas in 0..40i32,
            steps in proptest::collection::vec(step(), 1..12),
            routed_flag in any::<bool>(),
            surge in 0..10i32,
            unavailable in 0..10i32,
        ) {
            // Without a router validate refuses header routes.
            let steps: Vec<Step> = steps
                .into_iter()
                .filter(|s| routed_flag || !matches!(s, Step::HeaderRoute(_)))
                .collect();
            prop_assume!(!steps.is_empty());
            let c = Canary { steps: steps.clone(), routed: routed_flag };
            let p = canary_preview(replicas, &c, surge, unavailable);
            prop_assert_eq!(p.len(), steps.len() + 1);
            let mut scale = CanaryScale::FollowWeight;
            let mut active: Vec<String> = Vec::new();
            for (i, s) in p.iter().take(steps.len()).enumerate() {
                prop_assert_eq!(s.index, i);
                match &steps[i] {
                    Step::Scale(x) => scale = *x,
                    Step::HeaderRoute(r) => {
                        active.retain(|n| *n != r.name);
                        if !r.matches.is_empty() {
                            active.push(r.name.clone());
                        }
                    }
                    _ => {}
                }
                active.sort();
                let names: Vec<String> = s.routes.iter().map(|r| r.name.clone()).collect();
                prop_assert_eq!(&names, &active, "header routes added and removed in order");
                prop_assert!(s.canary_pods >= 0 && s.canary_pods <= replicas);
                if scale == CanaryScale::FollowWeight {
                    let want = ceil_percent(replicas, s.weight);
                    let want = if active.is_empty() { want } else { want.max(1) };
                    prop_assert_eq!(s.canary_pods, want.min(replicas));
                }
                if !active.is_empty() && replicas > 0 {
                    prop_assert!(s.canary_pods >= 1, "a header route needs a canary pod");
                }
                if routed_flag {
                    let stable = ceil_percent(replicas, 100 - s.weight);
                    prop_assert_eq!(s.stable_pods, stable);
                    if scale == CanaryScale::FollowWeight {
                        prop_assert!(s.canary_pods + s.stable_pods >= replicas);
                    }
                } else {
                    prop_assert_eq!(s.canary_pods + s.stable_pods, replicas);
                }
            }
            let last = p.last().unwrap();
            prop_assert_eq!(&last.kind, &PreviewKind::Promotion);
            prop_assert_eq!((last.weight, last.canary_pods, last.stable_pods), (0, replicas, 0));
            prop_assert!(last.routes.is_empty());
        }
    }
}
