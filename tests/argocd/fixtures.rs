//! Rollouts in every state the Argo CD Lua reads, their status written by the real controller
//! code (`decide`, `status::invalid`), each with the health and the actions expected of it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Value, json};
use zdr::analysis::{Step, Verdict};
use zdr::controller::decide::{Measurements, Snapshot, decide};
use zdr::crd::{
    ABORT_ANNOTATION, AnalysisStatus, PAUSED_ANNOTATION, ZeroDowntimeRolloutSpec,
    ZeroDowntimeRolloutStatus,
};
use zdr::planner::canary::Applied;
use zdr::planner::{PodPhase, PodView};

/// One rollout and what Argo CD must make of it.
pub struct Fixture {
    /// What it is.
    pub name: &'static str,
    /// The rollout as the API server serves it.
    pub obj: Value,
    /// Argo CD health status.
    pub health: &'static str,
    /// The condition reason the health message starts with, if any.
    pub reason: Option<&'static str>,
    /// The actions discovery enables.
    pub enabled: &'static [&'static str],
}

/// A fixture, in the order of its fields.
fn f(
    name: &'static str,
    obj: Value,
    health: &'static str,
    reason: Option<&'static str>,
    enabled: &'static [&'static str],
) -> Fixture {
    Fixture {
        name,
        obj,
        health,
        reason,
        enabled,
    }
}

pub fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_780_000_000 + s).unwrap()
}

fn pod(name: String, rev: &str, ready: bool) -> PodView {
    PodView {
        name,
        revision: Some(rev.into()),
        created: t(-100),
        scheduled: true,
        phase: PodPhase::Running,
        ready_since: ready.then(|| t(-90)),
        retiring: false,
        drained: false,
        terminating: false,
    }
}

fn pods(old: usize, new: usize) -> Vec<PodView> {
    (0..old)
        .map(|i| pod(format!("old-{i}"), "old", true))
        .chain((0..new).map(|i| pod(format!("new-{i}"), "new", true)))
        .collect()
}

fn rolling() -> Value {
    json!({"rolling": {"maxSurge": 1, "maxUnavailable": 0}})
}

fn canary(steps: Value) -> Value {
    json!({"canary": {"stableService": "web-stable", "canaryService": "web-canary",
        "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}}, "steps": steps,
        "maxSurge": 1, "maxUnavailable": 0}})
}

fn analysis() -> Value {
    json!({"prometheus": {"address": "http://127.0.0.1:9"}, "interval": "1s",
        "metrics": [{"name": "errors", "query": "q", "successCondition": "result < 1"}]})
}

fn spec(strategy: Value, extra: Value) -> ZeroDowntimeRolloutSpec {
    let mut s = json!({
        "replicas": 4,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "web:2"}]}},
        "strategy": strategy,
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        s[k] = v;
    }
    serde_json::from_value(s).unwrap()
}

/// The status the controller had written before: an update from `old` to `new`.
fn before(extra: Value) -> ZeroDowntimeRolloutStatus {
    let mut s = json!({"observedGeneration": 2, "stableRevision": "old", "updateRevision": "new",
        "replicas": 4, "readyReplicas": 4, "availableReplicas": 4,
        "lastProgressTime": t(-5).to_string()});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        s[k] = v;
    }
    serde_json::from_value(s).unwrap()
}

/// What the pieces a decision reads.
struct Scene<'a> {
    spec: &'a ZeroDowntimeRolloutSpec,
    prev: ZeroDowntimeRolloutStatus,
    annotations: &'a [(&'a str, &'a str)],
    pods: Vec<PodView>,
    traffic: Option<Applied>,
    analysis: Option<Step>,
}

/// The status `decide` writes for a scene, at t(10).
fn decided(s: Scene<'_>) -> ZeroDowntimeRolloutStatus {
    let valid = zdr::validate::validate(s.spec).unwrap();
    let annotations = annotations(s.annotations);
    let snap = Snapshot {
        name: "web",
        spec: s.spec,
        annotations: &annotations,
        status: &s.prev,
        generation: Some(2),
        valid: &valid,
        update: "new",
        pods: &s.pods,
        objects: &[],
        slices: &[],
        crash: None,
        traffic: s.traffic,
        templates: &std::collections::BTreeMap::new(),
    };
    let m = Measurements {
        analysis: s.analysis,
    };
    decide(&snap, &m, t(10)).status
}

fn annotations(a: &[(&str, &str)]) -> BTreeMap<String, String> {
    a.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The rollout as served: metadata (generation 2), spec, annotations and status.
fn served(
    spec: &ZeroDowntimeRolloutSpec,
    a: &[(&str, &str)],
    status: Option<ZeroDowntimeRolloutStatus>,
) -> Value {
    let mut obj = json!({
        "apiVersion": "zdr.dev/v1alpha1", "kind": "ZeroDowntimeRollout",
        "metadata": {"name": "web", "namespace": "shop", "generation": 2,
            "uid": "0d7e4c1e-0000-4000-8000-000000000001"},
        "spec": spec,
    });
    if !a.is_empty() {
        obj["metadata"]["annotations"] = json!(annotations(a));
    }
    if let Some(s) = status {
        obj["status"] = serde_json::to_value(s).unwrap();
    }
    obj
}

fn applied(weight: i32) -> Option<Applied> {
    Some(Applied {
        weight,
        routes: Vec::new(),
        stable_selects: Some("old".into()),
        canary_selects: Some("new".into()),
    })
}

fn inconclusive() -> Step {
    let status: AnalysisStatus = serde_json::from_value(json!({
        "revision": "new", "phase": "Inconclusive", "startedAt": t(0).to_string(),
        "message": "errors: no data",
        "metrics": [{"name": "errors", "phase": "Inconclusive", "measurements": [
            {"phase": "Inconclusive", "startedAt": t(5).to_string(),
             "finishedAt": t(5).to_string(), "query": "q"}]}],
    }))
    .unwrap();
    Step {
        status,
        verdict: Verdict::Inconclusive,
        wake: None,
        measured: true,
        taken: Vec::new(),
    }
}

fn scene<'a>(spec: &'a ZeroDowntimeRolloutSpec, a: &'a [(&'a str, &'a str)]) -> Scene<'a> {
    Scene {
        spec,
        prev: before(json!({})),
        annotations: a,
        pods: pods(4, 0),
        traffic: None,
        analysis: None,
    }
}

/// Every fixture.
pub fn all() -> Vec<Fixture> {
    let mut out = rolling_fixtures();
    out.extend(canary_fixtures());
    out
}

fn rolling_fixtures() -> Vec<Fixture> {
    let plain = spec(rolling(), json!({}));
    let by_spec = spec(rolling(), json!({"paused": true}));
    let mark: &[(&str, &str)] = &[(PAUSED_ANNOTATION, "2026-06-01T12:00:00.000000000Z")];
    let abort: &[(&str, &str)] = &[(ABORT_ANNOTATION, "new")];
    let stuck = spec(rolling(), json!({"progressDeadlineSeconds": 60}));
    let healthy = decided(Scene {
        pods: pods(0, 4),
        ..scene(&plain, &[])
    });
    let mut stale = healthy.clone();
    stale.observed_generation = Some(1);
    let mut unknown = served(&plain, &[], Some(healthy.clone()));
    unknown["status"]["phase"] = json!("Sideways");
    vec![
        f(
            "created, not yet observed",
            served(&plain, &[], None),
            "Progressing",
            None,
            &["pause"],
        ),
        f(
            "a new generation not yet observed",
            served(&plain, &[], Some(stale)),
            "Progressing",
            None,
            &["pause"],
        ),
        f(
            "rolling update in progress",
            served(&plain, &[], Some(decided(scene(&plain, &[])))),
            "Progressing",
            None,
            &["abort", "pause"],
        ),
        f(
            "rolling update done",
            served(&plain, &[], Some(healthy)),
            "Healthy",
            None,
            &["pause"],
        ),
        f(
            "paused by spec.paused",
            served(&by_spec, &[], Some(decided(scene(&by_spec, &[])))),
            "Suspended",
            Some("SpecPaused"),
            &["abort", "pause"],
        ),
        f(
            "paused by the annotation",
            served(&plain, mark, Some(decided(scene(&plain, mark)))),
            "Suspended",
            Some("PausedByAnnotation"),
            &["abort", "resume"],
        ),
        f(
            "aborted by a person",
            served(
                &plain,
                abort,
                Some(decided(Scene {
                    pods: pods(3, 1),
                    ..scene(&plain, abort)
                })),
            ),
            "Degraded",
            Some("AbortedByUser"),
            &["retry", "pause"],
        ),
        f(
            "progress deadline exceeded",
            served(
                &stuck,
                &[],
                Some(decided(Scene {
                    prev: before(
                        json!({"replicas": 5, "updatedReplicas": 1, "lastProgressTime": t(-1000).to_string()}),
                    ),
                    pods: {
                        let mut p = pods(4, 0);
                        p.push(pod("new-0".into(), "new", false));
                        p
                    },
                    ..scene(&stuck, &[])
                })),
            ),
            "Degraded",
            None,
            &["abort", "pause"],
        ),
        f(
            "a phase this Lua does not know",
            unknown,
            "Unknown",
            None,
            &["pause"],
        ),
    ]
}

fn canary_fixtures() -> Vec<Fixture> {
    let waits = spec(
        canary(json!([{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}])),
        json!({}),
    );
    let timed = spec(
        canary(json!([{"setWeight": 25}, {"pause": {"duration": "60s"}}, {"setWeight": 50}])),
        json!({}),
    );
    let analysed = spec(
        canary(json!([{"setWeight": 25}, {"setWeight": 50}])),
        json!({"analysis": analysis()}),
    );
    let at = |step: i32| {
        before(json!({"currentStepIndex": step, "canaryWeight": 25,
            "stepStartedAt": t(0).to_string(), "services": {"stable": "old", "canary": "new"}}))
    };
    let on = |spec, step| Scene {
        prev: at(step),
        pods: pods(3, 1),
        traffic: applied(25),
        ..scene(spec, &[])
    };
    let starting = decided(Scene {
        prev: before(json!({})),
        traffic: applied(0),
        ..scene(&waits, &[])
    });
    // The spec cannot be acted on (an analysis step without spec.analysis): the controller's
    // status for it.
    let invalid = spec(
        canary(json!([{"setWeight": 25}, {"analysis": {}}])),
        json!({}),
    );
    let why = zdr::validate::validate(&invalid).unwrap_err();
    let invalid_status =
        zdr::controller::status::invalid(&at(0), why.reason, &why.message, Some(2), t(10));
    vec![
        f(
            "canary at its first step",
            served(&waits, &[], Some(starting)),
            "Progressing",
            None,
            &["promote", "promote-full", "abort", "pause"],
        ),
        f(
            "canary waiting for a promote",
            served(&waits, &[], Some(decided(on(&waits, 1)))),
            "Suspended",
            Some("AwaitingPromotion"),
            &["promote", "promote-full", "abort", "pause"],
        ),
        f(
            "canary past its last step, being promoted",
            served(&waits, &[], Some(decided(on(&waits, 3)))),
            "Progressing",
            None,
            &["abort", "pause"],
        ),
        f(
            "canary in a timed pause",
            served(&timed, &[], Some(decided(on(&timed, 1)))),
            "Suspended",
            Some("CanaryPauseStep"),
            &["promote", "promote-full", "abort", "pause"],
        ),
        f(
            "canary held by an inconclusive analysis",
            served(
                &analysed,
                &[],
                Some(decided(Scene {
                    analysis: Some(inconclusive()),
                    ..on(&analysed, 0)
                })),
            ),
            "Suspended",
            Some("AnalysisInconclusive"),
            &["promote", "promote-full", "abort", "pause", "resume"],
        ),
        f(
            "canary with a spec the controller refuses",
            served(&invalid, &[], Some(invalid_status)),
            "Degraded",
            None,
            &["abort", "pause"],
        ),
    ]
}
