//! Tests of `decide`, plain data in and out: canary steps, promotion, abort at any step, retry,
//! a new template mid-canary, pause steps, the progress deadline, and a property test that the
//! decision is total and safe for any recorded state.

use std::collections::BTreeMap;

use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::crd::{Phase, ZeroDowntimeRolloutSpec};
use crate::planner::{Action, PodPhase};

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_780_000_000 + s).unwrap()
}

fn spec(steps: Value, extra: Value) -> ZeroDowntimeRolloutSpec {
    let mut s = json!({
        "replicas": 4,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "web:2"}]}},
        "strategy": {"canary": {"stableService": "web-stable", "canaryService": "web-canary",
            "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}}, "steps": steps,
            "maxSurge": 1, "maxUnavailable": 0}},
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        s[k] = v;
    }
    serde_json::from_value(s).unwrap()
}

fn pod(name: &str, rev: &str) -> PodView {
    PodView {
        name: name.into(),
        revision: Some(rev.into()),
        created: t(-100),
        scheduled: true,
        phase: PodPhase::Running,
        ready_since: Some(t(-90)),
        retiring: false,
        drained: false,
        terminating: false,
    }
}

fn pods(old: usize, new: usize) -> Vec<PodView> {
    (0..old)
        .map(|i| pod(&format!("old-{i}"), "old"))
        .chain((0..new).map(|i| pod(&format!("new-{i}"), "new")))
        .collect()
}

fn status(step: i32, weight: i32, canary_selects: &str) -> ZeroDowntimeRolloutStatus {
    serde_json::from_value(json!({
        "stableRevision": "old", "updateRevision": "new", "currentStepIndex": step,
        "canaryWeight": weight, "stepStartedAt": "2026-05-28T20:26:40Z",
        "services": {"stable": "old", "canary": canary_selects},
        "replicas": 4, "availableReplicas": 4,
    }))
    .unwrap()
}

fn applied(weight: i32, routes: &[&str], canary: &str) -> Applied {
    Applied {
        weight,
        routes: routes.iter().map(|r| r.to_string()).collect(),
        stable_selects: Some("old".into()),
        canary_selects: Some(canary.into()),
    }
}

/// Runs `decide` on a snapshot built from the parts.
fn run(
    spec: &ZeroDowntimeRolloutSpec,
    st: &ZeroDowntimeRolloutStatus,
    annotations: &[(&str, &str)],
    pods: &[PodView],
    traffic: Applied,
    now: Timestamp,
) -> Decision {
    let valid = crate::validate::validate(spec).unwrap();
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let s = Snapshot {
        name: "web",
        spec,
        annotations: &annotations,
        status: st,
        generation: Some(2),
        valid: &valid,
        update: "new",
        pods,
        objects: &[],
        slices: &[],
        crash: None,
        traffic: Some(traffic),
        templates: &std::collections::BTreeMap::new(),
    };
    decide(&s, &Measurements::default(), now)
}

fn creates(d: &Decision, rev: &str) -> i32 {
    d.plan
        .actions
        .iter()
        .map(|a| match a {
            Action::Create { revision, count } if revision == rev => *count,
            _ => 0,
        })
        .sum()
}

fn removes(d: &Decision) -> usize {
    d.plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Remove { .. }))
        .count()
}

fn cond<'a>(
    d: &'a Decision,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    d.status.conditions.iter().find(|c| c.type_ == type_)
}

#[test]
fn a_new_template_starts_at_step_zero_and_creates_the_canary() {
    let spec = spec(json!([{"setWeight": 25}, {"pause": {}}]), json!({}));
    let mut st = status(1, 0, "old");
    st.update_revision = Some("older".into());
    let d = run(&spec, &st, &[], &pods(4, 0), applied(0, &[], "old"), t(0));
    assert_eq!(d.status.current_step_index, Some(0));
    assert_eq!(d.status.step_started_at.as_ref().map(|x| x.0), Some(t(0)));
    assert_eq!(creates(&d, "new"), 1);
    let tr = d.traffic.unwrap();
    assert_eq!((tr.weight, tr.canary_selects.as_str()), (0, "old"));
    assert_eq!(d.status.phase, Some(Phase::Progressing));
    let msg = d.status.message.unwrap();
    assert!(msg.starts_with("step 0 of 0-1 (setWeight 25)"), "{msg}");
    assert!(msg.contains("waiting for canary pods: 0/1"), "{msg}");
    assert!(d.events.iter().any(|e| e.reason == "CanaryStep"));
}

#[test]
fn an_indefinite_pause_waits_for_promote_of_that_step() {
    let spec = spec(
        json!([{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}]),
        json!({}),
    );
    let st = status(1, 25, "new");
    let p = pods(3, 1);
    let d = run(&spec, &st, &[], &p, applied(25, &[], "new"), t(0));
    assert_eq!(d.status.current_step_index, Some(1));
    assert_eq!(d.status.phase, Some(Phase::Paused));
    let paused = cond(&d, "Paused").unwrap();
    assert_eq!(
        (paused.status.as_str(), paused.reason.as_str()),
        ("True", "AwaitingPromotion")
    );
    assert!(paused.message.contains("kubectl zdr promote web"));
    let stale = run(
        &spec,
        &st,
        &[(PROMOTE_ANNOTATION, "new/0")],
        &p,
        applied(25, &[], "new"),
        t(1),
    );
    assert_eq!(stale.status.current_step_index, Some(1));
    let other = run(
        &spec,
        &st,
        &[(PROMOTE_ANNOTATION, "old/1")],
        &p,
        applied(25, &[], "new"),
        t(1),
    );
    assert_eq!(
        other.status.current_step_index,
        Some(1),
        "another revision's promotion"
    );
    let d = run(
        &spec,
        &st,
        &[(PROMOTE_ANNOTATION, "new/1")],
        &p,
        applied(25, &[], "new"),
        t(1),
    );
    assert_eq!(d.status.current_step_index, Some(2));
    assert_eq!(d.status.phase, Some(Phase::Progressing));
    assert_eq!(creates(&d, "new"), 1, "50% of 4 needs a second canary pod");
    let full = run(
        &spec,
        &st,
        &[(PROMOTE_ANNOTATION, "new/full")],
        &p,
        applied(25, &[], "new"),
        t(1),
    );
    assert_eq!(
        full.status.current_step_index,
        Some(3),
        "full promotion skips every step"
    );
}

#[test]
fn a_timed_pause_holds_with_a_wake_up() {
    let spec = spec(
        json!([{"pause": {"duration": "90s"}}, {"setWeight": 50}]),
        json!({}),
    );
    let mut st = status(0, 0, "old");
    st.step_started_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(0)));
    let d = run(&spec, &st, &[], &pods(4, 0), applied(0, &[], "old"), t(30));
    assert_eq!(d.status.phase, Some(Phase::Paused));
    assert_eq!(cond(&d, "Paused").unwrap().reason, "CanaryPauseStep");
    assert_eq!(d.wake, Some(std::time::Duration::from_secs(60)));
    let d = run(&spec, &st, &[], &pods(4, 0), applied(0, &[], "old"), t(90));
    assert_eq!(d.status.current_step_index, Some(1));
}

#[test]
fn an_abort_returns_traffic_first_at_every_step() {
    let steps = json!([{"setHeaderRoute": {"name": "beta", "match": [{"headerName": "X-Canary", "headerValue": {"exact": "1"}}]}},
        {"setWeight": 50}, {"pause": {}}, {"setWeight": 75}]);
    let spec = spec(steps, json!({}));
    for step in 0..4 {
        let st = status(step, 50, "new");
        let p = pods(2, 2);
        let abort = [(ABORT_ANNOTATION, "new")];
        let d = run(&spec, &st, &abort, &p, applied(50, &["beta"], "new"), t(0));
        assert_eq!(d.abort, Some(AbortReason::User), "step {step}");
        assert_eq!(d.status.phase, Some(Phase::Aborted));
        assert_eq!(d.status.aborted_revision.as_deref(), Some("new"));
        assert_eq!(cond(&d, "Aborted").unwrap().reason, "AbortedByUser");
        assert_eq!(d.events[0].reason, "AbortedByUser");
        let tr = d.traffic.as_ref().unwrap();
        assert!(tr.routes.is_empty(), "header routes go at once");
        assert_eq!(
            tr.canary_selects, "new",
            "the canary Service keeps its pods until no traffic"
        );
        assert_eq!(removes(&d), 0, "no canary pod goes while 50% is applied");
        assert_eq!(creates(&d, "old"), 1, "stable scales back up first");
        assert_eq!(d.target, "old");
    }
    // Once the weight is 0, the canary Service goes back and the canary pods go.
    let mut st = status(0, 0, "new");
    st.aborted_revision = Some("new".into());
    st.conditions = vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        type_: "Aborted".into(),
        status: "True".into(),
        reason: "AnalysisFailed".into(),
        message: String::new(),
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(0)),
        observed_generation: None,
    }];
    let d = run(&spec, &st, &[], &pods(4, 2), applied(0, &[], "new"), t(5));
    assert_eq!(
        d.status.step_started_at, st.step_started_at,
        "retiring keeps the recorded start: no status write on every observation"
    );
    assert_eq!(d.abort, None, "recorded, not new");
    assert_eq!(cond(&d, "Aborted").unwrap().reason, "AnalysisFailed");
    assert_eq!(d.traffic.as_ref().unwrap().canary_selects, "old");
    assert_eq!(removes(&d), 2);
}

#[test]
fn retry_restarts_an_aborted_update_from_step_zero_once_per_token() {
    let spec = spec(json!([{"setWeight": 25}, {"pause": {}}]), json!({}));
    let mut st = status(0, 0, "old");
    st.aborted_revision = Some("new".into());
    let retry = [(RETRY_ANNOTATION, "t1")];
    let d = run(
        &spec,
        &st,
        &retry,
        &pods(4, 0),
        applied(0, &[], "old"),
        t(0),
    );
    assert_eq!(d.status.aborted_revision, None);
    assert_eq!(d.status.retry_token.as_deref(), Some("t1"));
    assert_eq!(d.status.current_step_index, Some(0));
    assert_eq!(creates(&d, "new"), 1);
    st.retry_token = Some("t1".into());
    let again = run(
        &spec,
        &st,
        &retry,
        &pods(4, 0),
        applied(0, &[], "old"),
        t(1),
    );
    assert_eq!(
        again.status.aborted_revision.as_deref(),
        Some("new"),
        "a token acts once"
    );
    let with_abort = [(RETRY_ANNOTATION, "t2"), (ABORT_ANNOTATION, "new")];
    let d = run(
        &spec,
        &{
            let mut s = st.clone();
            s.retry_token = None;
            s
        },
        &with_abort,
        &pods(4, 0),
        applied(0, &[], "old"),
        t(1),
    );
    assert_eq!(
        d.status.aborted_revision.as_deref(),
        Some("new"),
        "the abort annotation still names it"
    );
}

#[test]
fn a_template_mid_canary_retires_the_old_canary_before_its_pods_go() {
    let spec = spec(json!([{"setWeight": 50}, {"pause": {}}]), json!({}));
    let mut st = status(1, 50, "mid");
    st.update_revision = Some("mid".into());
    let mut p = pods(2, 0);
    p.push(pod("mid-0", "mid"));
    p.push(pod("mid-1", "mid"));
    let d = run(&spec, &st, &[], &p, applied(50, &[], "mid"), t(0));
    assert_eq!(d.status.current_step_index, Some(0));
    let tr = d.traffic.clone().unwrap();
    assert_eq!(
        tr.canary_selects, "mid",
        "no Service switch while mid has traffic"
    );
    assert!(tr.weight < 50 || creates(&d, "old") > 0);
    let gone: Vec<_> = d
        .plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Remove { pod, .. } if pod.starts_with("mid")))
        .collect();
    assert!(gone.is_empty(), "mid pods carry 50%: {gone:?}");
}

#[test]
fn the_progress_deadline_aborts_a_canary_when_asked() {
    let spec = spec(
        json!([{"setWeight": 25}]),
        json!({"progressDeadlineSeconds": 60, "progressDeadlineAbort": true}),
    );
    let mut st = status(0, 0, "old");
    st.last_progress_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(0)));
    st.update_revision = Some("new".into());
    st.updated_replicas = 1;
    let mut stuck = pod("new-0", "new");
    stuck.ready_since = None;
    let mut p = pods(4, 0);
    p.push(stuck);
    let d = run(&spec, &st, &[], &p, applied(0, &[], "old"), t(61));
    assert_eq!(d.abort, Some(AbortReason::ProgressDeadline));
    assert_eq!(d.events[0].reason, "RolloutAborted");
    assert_eq!(d.status.phase, Some(Phase::Aborted));
}

#[test]
fn a_first_rollout_has_no_steps_and_points_both_services_at_it() {
    let spec = spec(json!([{"setWeight": 25}]), json!({}));
    let valid = crate::validate::validate(&spec).unwrap();
    let st = ZeroDowntimeRolloutStatus::default();
    let annotations = BTreeMap::new();
    let s = Snapshot {
        name: "web",
        spec: &spec,
        annotations: &annotations,
        status: &st,
        generation: Some(1),
        valid: &valid,
        update: "new",
        pods: &[],
        objects: &[],
        slices: &[],
        crash: None,
        traffic: None,
        templates: &std::collections::BTreeMap::new(),
    };
    let d = decide(&s, &Measurements::default(), t(0));
    assert_eq!(
        creates(&d, "new"),
        4,
        "a first rollout creates its pods like a rolling update"
    );
    let tr = d.traffic.unwrap();
    assert_eq!(
        (
            tr.stable_selects.as_str(),
            tr.canary_selects.as_str(),
            tr.weight
        ),
        ("new", "new", 0)
    );
    assert_eq!(d.status.current_step_index, Some(1));
}

proptest! {
    /// For any recorded step, weight, Services, abort and annotations, the decision never
    /// panics, never writes a weight outside 0-100, and after an abort sends no header route,
    /// removes no pod of a revision the applied traffic still needs, and targets stable.
    #[test]
    fn decide_is_total_and_safe(
        step in 0i32..6, weight in 0i32..=100, old in 0usize..5, new in 0usize..5,
        canary_on_new in any::<bool>(), aborted in any::<bool>(), abort_now in any::<bool>(),
        promote in prop_oneof![Just(None), (0usize..6).prop_map(|i| Some(format!("new/{i}"))), Just(Some("new/full".to_string()))],
    ) {
        let spec = spec(json!([{"setWeight": 25}, {"pause": {}}, {"setWeight": 75}]), json!({}));
        let selects = if canary_on_new { "new" } else { "old" };
        let mut st = status(step, weight, selects);
        if aborted { st.aborted_revision = Some("new".into()); }
        let mut ann = vec![];
        if abort_now { ann.push((ABORT_ANNOTATION, "new")); }
        let promote = promote.unwrap_or_default();
        if !promote.is_empty() { ann.push((PROMOTE_ANNOTATION, promote.as_str())); }
        let p = pods(old, new);
        let d = run(&spec, &st, &ann, &p, applied(weight, &[], selects), t(0));
        let tr = d.traffic.as_ref().unwrap();
        prop_assert!((0..=100).contains(&tr.weight));
        if aborted || abort_now {
            prop_assert_eq!(d.status.phase, Some(Phase::Aborted));
            prop_assert!(tr.routes.is_empty());
            prop_assert_eq!(d.target.as_str(), "old");
            if canary_on_new && weight > 0 {
                let need = crate::planner::canary::pods_for(&params_of(&spec), weight);
                let removed = d.plan.actions.iter().filter(|a| matches!(a, Action::Remove { pod, .. } if pod.starts_with("new"))).count();
                prop_assert!(removed == 0 || new - removed >= need as usize, "removed {removed} of {new} canary pods at {weight}%");
            }
        }
    }
}

fn params_of(spec: &ZeroDowntimeRolloutSpec) -> crate::planner::Params {
    let v = crate::validate::validate(spec).unwrap();
    crate::planner::Params {
        replicas: spec.replicas,
        max_surge: v.max_surge,
        max_unavailable: v.max_unavailable,
        min_ready: std::time::Duration::ZERO,
        target_revision: "old".into(),
        stable_revision: Some("old".into()),
        paused: false,
        replacement: v.replacement,
    }
}

fn analysis_spec() -> Value {
    json!({"analysis": {"prometheus": {"address": "http://127.0.0.1:9"}, "interval": "1s",
        "metrics": [{"name": "errors", "query": "q", "successCondition": "result < 1"}]}})
}

fn run_status(started: i64, measured: &[(i64, &str)], phase: &str) -> crate::crd::AnalysisStatus {
    let measurements: Vec<Value> = measured
        .iter()
        .map(|(at, p)| {
            let ts = t(*at).to_string();
            json!({"phase": p, "startedAt": ts, "finishedAt": ts, "query": "q"})
        })
        .collect();
    serde_json::from_value(json!({
        "revision": "new", "phase": phase, "startedAt": t(started).to_string(),
        "metrics": [{"name": "errors", "phase": phase, "measurements": measurements}],
    }))
    .unwrap()
}

#[test]
fn an_analysis_step_restarts_the_run_and_passes_on_measurements_taken_since() {
    let spec = spec(
        json!([{"setWeight": 25}, {"analysis": {}}, {"setWeight": 50}]),
        analysis_spec(),
    );
    let valid = crate::validate::validate(&spec).unwrap();
    let annotations = BTreeMap::new();
    let mut st = status(1, 25, "new");
    st.step_started_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(100)));
    st.analysis = Some(run_status(0, &[(50, "Successful")], "Running"));
    let snap = |st: &ZeroDowntimeRolloutStatus| -> AnalysisRun {
        let s = Snapshot {
            name: "web",
            spec: &spec,
            annotations: &annotations,
            status: st,
            generation: Some(2),
            valid: &valid,
            update: "new",
            pods: &[],
            objects: &[],
            slices: &[],
            crash: None,
            traffic: None,
            templates: &std::collections::BTreeMap::new(),
        };
        analysis_run(&s)
    };
    assert_eq!(
        snap(&st),
        AnalysisRun::Restart,
        "a run older than the step starts afresh"
    );
    st.analysis = Some(run_status(100, &[], "Running"));
    assert_eq!(snap(&st), AnalysisRun::Continue);
    // The gate: every metric measured successfully since the step started.
    let old = run_status(100, &[(50, "Successful")], "Running");
    assert_eq!(super::canary::passed_since(&old, "new"), Some(t(50)));
    let fresh = run_status(100, &[(50, "Successful"), (120, "Successful")], "Running");
    assert_eq!(super::canary::passed_since(&fresh, "new"), Some(t(120)));
    let failed_last = run_status(100, &[(120, "Failed")], "Running");
    assert_eq!(super::canary::passed_since(&failed_last, "new"), None);
    assert_eq!(
        super::canary::passed_since(&fresh, "other"),
        None,
        "another revision's run"
    );
}

#[test]
fn the_paused_annotation_pauses_like_spec_paused() {
    use crate::crd::PAUSED_ANNOTATION;
    let canary = json!({"canary": {"stableService": "web-stable", "canaryService": "web-canary",
        "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}},
        "steps": [{"setWeight": 25}, {"setWeight": 50}], "maxSurge": 1, "maxUnavailable": 0}});
    let rolling = json!({"rolling": {"maxSurge": 1, "maxUnavailable": 0}});
    for (strategy, p, st) in [
        (canary, pods(3, 1), status(0, 25, "new")),
        (rolling, pods(4, 0), status(0, 0, "old")),
    ] {
        let free = spec(json!([]), json!({"strategy": strategy.clone()}));
        let by_spec = spec(json!([]), json!({"strategy": strategy, "paused": true}));
        let tr = applied(st.canary_weight.unwrap_or(0), &[], "new");
        let mark = [(PAUSED_ANNOTATION, "2026-06-01T12:00:00.000000000Z")];
        let moving = run(&free, &st, &[], &p, tr.clone(), t(0));
        let a = run(&by_spec, &st, &[], &p, tr.clone(), t(0));
        let b = run(&free, &st, &mark, &p, tr, t(0));
        assert_ne!(moving.plan, a.plan, "{strategy}: without a pause it moves");
        assert_eq!(a.plan, b.plan, "{strategy}: the same pods either way");
        assert_eq!(a.target, b.target);
        assert_eq!(a.status.current_step_index, b.status.current_step_index);
        for (d, reason) in [(&a, "SpecPaused"), (&b, "PausedByAnnotation")] {
            assert_eq!(d.status.phase, Some(Phase::Paused), "{strategy}");
            let c = cond(d, "Paused").unwrap();
            assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", reason));
        }
        let c = cond(&moving, "Paused").unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "Resumed"));
    }
}
