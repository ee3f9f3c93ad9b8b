//! Tests of the classifier: each reason from the pod status the kubelet and scheduler write,
//! the grace, and (proptest) that healthy progress never classifies and order does not matter.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Found, GRACE, Input, classify};
use crate::crd::{AnalysisStatus, BlockReason, READINESS_GATE, REVISION_LABEL};

const T0: i64 = 1_780_000_000;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(T0 + s).unwrap()
}

fn ts(s: i64) -> String {
    t(s).to_string()
}

/// A pod of `rev` created at T0 with `status`.
fn pod(name: &str, rev: &str, status: Value) -> Arc<Pod> {
    pod_with(
        name,
        rev,
        json!({"containers": [{"name": "app", "image": "web:2"}]}),
        status,
    )
}

fn pod_with(name: &str, rev: &str, spec: Value, status: Value) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {REVISION_LABEL: rev},
                         "creationTimestamp": ts(0)},
            "spec": spec,
            "status": status,
        }))
        .unwrap(),
    )
}

fn run(pods: &[Arc<Pod>], slices: &[Arc<EndpointSlice>], now: i64) -> Found {
    classify(&Input {
        pods,
        slices,
        update: "new",
        analysis: None,
        awaiting_analysis: false,
        now: t(now),
    })
}

fn reason(f: &Found) -> Option<BlockReason> {
    f.block.as_ref().map(|b| b.reason)
}

fn message(f: &Found) -> String {
    f.block
        .as_ref()
        .map(|b| b.message.clone())
        .unwrap_or_default()
}

fn unschedulable(name: &str) -> Arc<Pod> {
    pod(
        name,
        "new",
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "lastTransitionTime": ts(1),
            "message": "0/2 nodes are available: 2 Too many pods."}]}),
    )
}

fn waiting(reason: &str, message: &str) -> Value {
    json!({"phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(0)}],
        "containerStatuses": [{"name": "app", "image": "web:2", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}}]})
}

#[test]
fn unschedulable_is_reported_after_the_grace_with_the_scheduler_message() {
    let pods = [unschedulable("web-new-a")];
    let early = run(&pods, &[], 10);
    assert_eq!(early.block, None, "within the grace");
    assert_eq!(early.recheck, Some(Duration::from_secs(21)));
    let late = run(&pods, &[], 31);
    assert_eq!(reason(&late), Some(BlockReason::PodUnschedulable));
    assert_eq!(
        message(&late),
        "pod web-new-a cannot be scheduled: 0/2 nodes are available: 2 Too many pods."
    );
    assert_eq!(late.recheck, None);
}

#[test]
fn image_pull_and_config_errors_carry_the_kubelet_message() {
    for r in ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"] {
        let pods = [pod("p", "new", waiting(r, "not found"))];
        let f = run(&pods, &[], 40);
        assert_eq!(reason(&f), Some(BlockReason::ImagePullFailed), "{r}");
        assert_eq!(
            message(&f),
            format!("pod p: container app cannot pull image web:2 ({r}): not found")
        );
    }
    let pods = [pod(
        "p",
        "new",
        waiting("CreateContainerConfigError", "configmap \"cfg\" not found"),
    )];
    let f = run(&pods, &[], 40);
    assert_eq!(reason(&f), Some(BlockReason::ContainerConfigError));
    assert_eq!(
        message(&f),
        "pod p: container app cannot start (CreateContainerConfigError): configmap \"cfg\" not found"
    );
}

#[test]
fn crash_loops_name_the_last_exit() {
    let pods = [pod(
        "p",
        "new",
        json!({"phase": "Running",
            "containerStatuses": [{"name": "app", "image": "web:2", "imageID": "", "ready": false,
                "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
    )];
    let f = run(&pods, &[], 40);
    assert_eq!(reason(&f), Some(BlockReason::ContainerCrashLooping));
    assert_eq!(
        message(&f),
        "pod p: container app is crash-looping (4 restarts, last exit: OOMKilled code 137)"
    );
}

#[test]
fn a_scheduled_pod_whose_containers_do_not_start() {
    let pods = [pod("p", "new", waiting("ContainerCreating", ""))];
    assert_eq!(run(&pods, &[], 20).block, None);
    let f = run(&pods, &[], 30);
    assert_eq!(reason(&f), Some(BlockReason::PodNotStarted));
    assert_eq!(
        message(&f),
        "pod p has not started: container app is ContainerCreating"
    );
}

fn running_unready(ready_since: i64, started: i64) -> Value {
    json!({"phase": "Running",
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ts(ready_since)}],
        "containerStatuses": [{"name": "app", "image": "web:2", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"running": {"startedAt": ts(started)}}}]})
}

#[test]
fn readiness_counts_from_the_container_start_and_names_it() {
    let pods = [pod("p", "new", running_unready(0, 20))];
    let f = run(&pods, &[], 45);
    assert_eq!(f.block, None);
    assert_eq!(f.recheck, Some(Duration::from_secs(5)));
    let f = run(&pods, &[], 50);
    assert_eq!(reason(&f), Some(BlockReason::ReadinessNotReached));
    assert_eq!(
        message(&f),
        "pod p: container app runs but is not ready (readiness probe)"
    );
}

#[test]
fn a_foreign_readiness_gate_is_named_and_the_controllers_own_is_not() {
    let mut status = running_unready(0, 0);
    status["containerStatuses"][0]["ready"] = json!(true);
    let spec = |gate: &str| {
        json!({"containers": [{"name": "app", "image": "web:2"}],
               "readinessGates": [{"conditionType": gate}]})
    };
    let ours = [pod_with("p", "new", spec(READINESS_GATE), status.clone())];
    assert_eq!(run(&ours, &[], 100).block, None);
    let theirs = [pod_with("p", "new", spec("lb.example/ok"), status)];
    let f = run(&theirs, &[], 100);
    assert_eq!(reason(&f), Some(BlockReason::ReadinessNotReached));
    assert_eq!(
        message(&f),
        "pod p: readiness gate lb.example/ok is not True"
    );
}

fn slice(name: &str, pod: &str, ready: bool) -> Arc<EndpointSlice> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": ready},
                           "targetRef": {"kind": "Pod", "name": pod}}],
        }))
        .unwrap(),
    )
}

#[test]
fn a_drain_waits_on_the_slice_that_still_lists_the_pod() {
    let retiring = pod(
        "old-1",
        "old",
        json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": ts(5)},
            {"type": READINESS_GATE, "status": "False", "lastTransitionTime": ts(5)}]}),
    );
    let pods = [retiring];
    assert_eq!(
        run(&pods, &[slice("web-x", "old-1", false)], 100).block,
        None
    );
    let listed = [slice("web-x", "old-1", true)];
    assert_eq!(run(&pods, &listed, 20).block, None, "within the grace");
    let f = run(&pods, &listed, 35);
    assert_eq!(reason(&f), Some(BlockReason::DrainWaitingOnEndpoints));
    assert_eq!(
        message(&f),
        "pod old-1 is out of traffic but EndpointSlice web-x still lists it as ready"
    );
}

#[test]
fn ready_pods_old_pods_and_terminating_pods_hold_nothing() {
    let ready = pod(
        "p",
        "new",
        json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": ts(0)}]}),
    );
    let old = pod("o", "old", waiting("ImagePullBackOff", "x"));
    let mut gone = (*unschedulable("g")).clone();
    gone.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(1)));
    assert_eq!(
        run(&[ready, old, Arc::new(gone)], &[], 1000),
        Found::default()
    );
}

#[test]
fn the_first_reason_wins_whatever_the_order() {
    let pull = pod("a", "new", waiting("ImagePullBackOff", "x"));
    let unsched = unschedulable("b");
    let f1 = run(&[pull.clone(), unsched.clone()], &[], 100);
    let f2 = run(&[unsched, pull], &[], 100);
    assert_eq!(reason(&f1), Some(BlockReason::PodUnschedulable));
    assert_eq!(f1, f2);
}

fn analysis(phase: &str, last: &str) -> AnalysisStatus {
    serde_json::from_value(json!({
        "revision": "new", "phase": phase, "message": "metric errors: inconclusive",
        "startedAt": ts(0),
        "metrics": [{"name": "errors", "phase": "Running", "count": 1, "inconclusive": 1,
            "measurements": [{"phase": last, "startedAt": ts(10), "finishedAt": ts(11),
                "query": "q", "message": "no data"}]}],
    }))
    .unwrap()
}

#[test]
fn the_analysis_holds_when_inconclusive_or_when_only_data_is_missing() {
    let classify_at = |a: &AnalysisStatus, awaiting: bool, now: i64| {
        classify(&Input {
            pods: &[],
            slices: &[],
            update: "new",
            analysis: Some(a),
            awaiting_analysis: awaiting,
            now: t(now),
        })
    };
    let held = analysis("Inconclusive", "Inconclusive");
    let f = classify_at(&held, false, 11);
    assert_eq!(
        reason(&f),
        Some(BlockReason::AnalysisInconclusive),
        "at once"
    );
    assert_eq!(
        message(&f),
        "analysis inconclusive: metric errors: inconclusive"
    );

    let running = analysis("Running", "Inconclusive");
    assert_eq!(
        classify_at(&running, false, 100).block,
        None,
        "pods still move"
    );
    assert_eq!(
        classify_at(&running, true, 20).block,
        None,
        "within the grace"
    );
    let f = classify_at(&running, true, 30);
    assert_eq!(reason(&f), Some(BlockReason::AnalysisWaitingForData));
    assert_eq!(
        message(&f),
        "analysis has no usable measurement of metric errors yet: no data"
    );
    let other = AnalysisStatus {
        revision: "older".into(),
        ..held
    };
    assert_eq!(
        classify_at(&other, true, 100).block,
        None,
        "another revision"
    );
}

/// A pod making normal progress: Ready, or in any state for less than the grace.
fn progressing() -> impl Strategy<Value = (u8, i64)> {
    (0u8..6, 0i64..GRACE.as_secs() as i64)
}

fn progressing_pod(i: usize, kind: u8, age: i64, now: i64) -> Arc<Pod> {
    let name = format!("p{i}");
    let since = now - age;
    let status = match kind {
        0 => json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": ts(since)}]}),
        1 => json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "lastTransitionTime": ts(since), "message": "m"}]}),
        2 => running_unready(since, since),
        _ => json!({"phase": "Pending"}),
    };
    let mut p = (*pod(&name, "new", status)).clone();
    p.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(
        since,
    )));
    Arc::new(p)
}

proptest! {
    #[test]
    fn healthy_progress_never_classifies_as_blocked(pods in prop::collection::vec(progressing(), 0..8)) {
        let now = 500;
        let pods: Vec<_> = pods.iter().enumerate()
            .map(|(i, (k, age))| progressing_pod(i, *k, *age, now)).collect();
        let f = run(&pods, &[], now);
        prop_assert_eq!(f.block, None);
        prop_assert!(f.recheck.is_none_or(|d| d <= GRACE));
    }

    #[test]
    fn classification_does_not_depend_on_the_order(
        kinds in prop::collection::vec((0u8..6, 0i64..120), 1..8),
        rotate in 0usize..8,
    ) {
        let now = 500;
        let pods: Vec<_> = kinds.iter().enumerate()
            .map(|(i, (k, age))| progressing_pod(i, *k, *age, now)).collect();
        let mut other = pods.clone();
        other.rotate_left(rotate % pods.len());
        other.reverse();
        prop_assert_eq!(run(&pods, &[], now), run(&other, &[], now));
    }
}

#[test]
fn every_reason_is_explained_in_the_troubleshooting_guide() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/troubleshooting.md");
    let guide = std::fs::read_to_string(path).expect("docs/troubleshooting.md");
    for r in BlockReason::ALL {
        assert!(
            guide.contains(&format!("| `{}` |", r.as_str())),
            "{path} has no row for {r:?}"
        );
        assert_eq!(BlockReason::parse(r.as_str()), Some(r));
    }
}
