//! One pod's swap: observing it from the pod object ([`super::state`]) and its next step and
//! patch ([`super::step`]), unit by unit, with a proptest over observed pods.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::state::{Failure, NotLaidOut, Progress, observe};
use super::step::{PodStep, next, patch};
use crate::contract::pod::{SLOT_B_CONTAINER, Slot};

const T0: &str = "2026-06-01T12:00:00Z";
const TIMEOUT: Duration = Duration::from_secs(600);

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A running container's status.
fn running(name: &str, id: &str, ready: bool) -> Value {
    json!({"name": name, "containerID": id, "ready": ready, "restartCount": 0, "image": "x", "imageID": "x",
           "state": {"running": {"startedAt": "2026-06-01T11:00:00Z"}}})
}

/// A hot-swap pod: slot a runs `rev_a` (`web:1`), slot b is parked, a active, generation 0;
/// `annotations` and `statuses` override.
fn pod(annotations: Value, images: [&str; 2], statuses: Vec<Value>, ready_at: &str) -> Pod {
    let mut ann = json!({"zdr.dev/active-slot": "a", "zdr.dev/swap-generation": "0",
                         "zdr.dev/slot-a-revision": "r1", "zdr.dev/slot-b-revision": ""});
    for (k, v) in annotations.as_object().unwrap() {
        ann[k] = v.clone();
    }
    serde_json::from_value(json!({
        "metadata": {"name": "web-1", "annotations": ann, "labels": {"zdr.dev/revision": "r1"}},
        "spec": {"containers": [{"name": "app", "image": images[0]},
                                {"name": SLOT_B_CONTAINER, "image": images[1]}]},
        "status": {"containerStatuses": statuses,
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}]},
    }))
    .unwrap()
}

fn settled() -> Pod {
    pod(
        json!({}),
        ["web:1", "agent"],
        vec![
            running("app", "c://a1", true),
            running(SLOT_B_CONTAINER, "c://b1", true),
        ],
        "2026-06-01T11:00:00Z",
    )
}

/// A pod whose swap of slot b to `r2`/`web:2` started at T0 from container `c://b1`, with
/// slot b's status `b`.
fn swapping(b: Value, ready_at: &str) -> Pod {
    pod(
        json!({"zdr.dev/active-slot": "b", "zdr.dev/swap-generation": "1",
               "zdr.dev/slot-b-revision": "r2", "zdr.dev/swap-from": "b/c://b1",
               "zdr.dev/swap-started-at": T0}),
        ["web:1", "web:2"],
        vec![running("app", "c://a1", true), b],
        ready_at,
    )
}

#[test]
fn a_settled_pod_is_current_or_swaps_into_its_idle_slot() {
    let p = observe(&settled(), "app", TIMEOUT, at(T0)).unwrap();
    assert_eq!((p.active, p.generation), (Slot::A, 0));
    assert_eq!(p.active_revision(), Some("r1"));
    assert_eq!(p.revision(Slot::B), None);
    assert_eq!(p.op, None);
    assert_eq!(next(&p, "r1", "web:1"), PodStep::Current);
    assert_eq!(
        next(&p, "r2", "web:2"),
        PodStep::Swap {
            slot: Slot::B,
            image: "web:2".into(),
            revision: "r2".into()
        }
    );
}

#[test]
fn an_idle_slot_holding_the_target_image_is_parked_first() {
    // After a swap a -> b, slot a still holds web:1; going back to web:1 needs a restart.
    let mut p = observe(&settled(), "app", TIMEOUT, at(T0)).unwrap();
    p.active = Slot::B;
    p.revisions = [Some("r1".into()), Some("r2".into())];
    p.images = ["web:1".into(), "web:2".into()];
    p.label = Some("r2".into());
    assert_eq!(next(&p, "r1", "web:1"), PodStep::Park(Slot::A));
}

#[test]
fn a_swap_waits_until_the_slot_runs_a_new_container() {
    // Not restarted yet: the old container ID.
    let p = observe(
        &swapping(running(SLOT_B_CONTAINER, "c://b1", true), T0),
        "app",
        TIMEOUT,
        at(T0),
    )
    .unwrap();
    assert_eq!(p.op.as_ref().unwrap().progress, Progress::Running);
    assert_eq!(next(&p, "r2", "web:2"), PodStep::Wait);
    assert!(p.busy());
    // Restarted, not ready yet.
    let p = observe(
        &swapping(running(SLOT_B_CONTAINER, "c://b2", false), T0),
        "app",
        TIMEOUT,
        at(T0),
    )
    .unwrap();
    assert_eq!(next(&p, "r2", "web:2"), PodStep::Wait);
}

#[test]
fn a_done_swap_settles_with_the_time_out_of_endpoints() {
    let p = observe(
        &swapping(
            running(SLOT_B_CONTAINER, "c://b2", true),
            "2026-06-01T12:00:01.500Z",
        ),
        "app",
        TIMEOUT,
        at("2026-06-01T12:00:05Z"),
    )
    .unwrap();
    let step = next(&p, "r2", "web:2");
    assert_eq!(
        step,
        PodStep::Settle {
            relabel: Some("r2".into()),
            swapped: Some(Duration::from_millis(1500)),
        }
    );
    // The pod never left Ready: zero.
    let p = observe(
        &swapping(
            running(SLOT_B_CONTAINER, "c://b2", true),
            "2026-06-01T11:00:00Z",
        ),
        "app",
        TIMEOUT,
        at(T0),
    )
    .unwrap();
    assert!(matches!(
        next(&p, "r2", "web:2"),
        PodStep::Settle { swapped: Some(d), .. } if d.is_zero()
    ));
}

#[test]
fn the_agents_exit_code_and_message_fail_the_swap() {
    let mut b = running(SLOT_B_CONTAINER, "c://b3", true);
    b["lastState"] = json!({"terminated": {"exitCode": 75, "containerID": "c://b2",
        "message": "new version exited with status 1 before READY=1\n"}});
    let p = observe(&swapping(b, T0), "app", TIMEOUT, at(T0)).unwrap();
    let f = Failure::Exited {
        code: 75,
        message: "new version exited with status 1 before READY=1".into(),
    };
    assert_eq!(next(&p, "r2", "web:2"), PodStep::Revert(f));
}

#[test]
fn the_replaced_containers_own_exit_is_not_a_failure() {
    let mut b = running(SLOT_B_CONTAINER, "c://b2", true);
    b["lastState"] = json!({"terminated": {"exitCode": 143, "containerID": "c://b1"}});
    let p = observe(&swapping(b, T0), "app", TIMEOUT, at(T0)).unwrap();
    assert!(matches!(next(&p, "r2", "web:2"), PodStep::Settle { .. }));
}

#[test]
fn a_crash_loop_or_a_bad_image_fails_the_swap() {
    for reason in ["CrashLoopBackOff", "ImagePullBackOff", "InvalidImageName"] {
        let b = json!({"name": SLOT_B_CONTAINER, "containerID": "c://b2", "ready": false,
                       "restartCount": 2, "image": "x", "imageID": "x",
                       "state": {"waiting": {"reason": reason, "message": "m"}}});
        let p = observe(&swapping(b, T0), "app", TIMEOUT, at(T0)).unwrap();
        let f = Failure::Stuck {
            reason: reason.into(),
            message: "m".into(),
        };
        assert_eq!(next(&p, "r2", "web:2"), PodStep::Revert(f), "{reason}");
    }
    // Still pulling is not a failure.
    let b = json!({"name": SLOT_B_CONTAINER, "containerID": "c://b1", "ready": false,
                   "restartCount": 0, "image": "x", "imageID": "x",
                   "state": {"waiting": {"reason": "ContainerCreating"}}});
    let p = observe(&swapping(b, T0), "app", TIMEOUT, at(T0)).unwrap();
    assert_eq!(next(&p, "r2", "web:2"), PodStep::Wait);
}

#[test]
fn a_slot_not_ready_within_the_timeout_fails() {
    let b = running(SLOT_B_CONTAINER, "c://b2", false);
    let p = observe(&swapping(b, T0), "app", TIMEOUT, at("2026-06-01T12:10:01Z")).unwrap();
    assert_eq!(
        next(&p, "r2", "web:2"),
        PodStep::Revert(Failure::Timeout(TIMEOUT))
    );
}

#[test]
fn a_pod_without_the_layout_says_what_is_missing() {
    let mut p = settled();
    p.metadata.annotations = None;
    assert_eq!(
        observe(&p, "app", TIMEOUT, at(T0)).unwrap_err(),
        NotLaidOut::Annotation("zdr.dev/active-slot")
    );
    let mut p = settled();
    p.spec.as_mut().unwrap().containers.pop();
    assert_eq!(
        observe(&p, "app", TIMEOUT, at(T0)).unwrap_err(),
        NotLaidOut::Container(SLOT_B_CONTAINER.into())
    );
}

#[test]
fn a_swap_patch_tests_the_generation_and_names_the_container() {
    let p = observe(&settled(), "app", TIMEOUT, at(T0)).unwrap();
    let step = next(&p, "r2", "web:2");
    let index = |n: &str| ["app", SLOT_B_CONTAINER].iter().position(|c| *c == n);
    let ops = patch(&p, &step, "app", index, "agent:1", at(T0)).unwrap();
    assert_eq!(
        ops,
        json!([
            {"op": "test", "path": "/metadata/annotations/zdr.dev~1swap-generation", "value": "0"},
            {"op": "test", "path": "/spec/containers/1/name", "value": "zdr-slot-b"},
            {"op": "add", "path": "/spec/containers/1/image", "value": "web:2"},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1slot-b-revision", "value": "r2"},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1active-slot", "value": "b"},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1swap-generation", "value": "1"},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1swap-from", "value": "b/c://b1"},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1swap-started-at", "value": T0},
        ])
    );
    assert!(patch(&p, &PodStep::Current, "app", index, "agent:1", at(T0)).is_none());
}

#[test]
fn a_revert_names_the_old_slot_active_and_parks_the_failed_one() {
    let mut b = running(SLOT_B_CONTAINER, "c://b3", true);
    b["lastState"] = json!({"terminated": {"exitCode": 75, "containerID": "c://b2"}});
    let p = observe(&swapping(b, T0), "app", TIMEOUT, at(T0)).unwrap();
    let step = next(&p, "r2", "web:2");
    let index = |n: &str| ["app", SLOT_B_CONTAINER].iter().position(|c| *c == n);
    let ops = patch(&p, &step, "app", index, "agent:1", at(T0)).unwrap();
    let ops = ops.as_array().unwrap();
    let value = |path: &str| {
        ops.iter()
            .find(|o| o["path"] == path)
            .map(|o| o["value"].clone())
    };
    assert_eq!(ops[0]["op"], "test");
    assert_eq!(value("/spec/containers/1/image"), Some(json!("agent:1")));
    assert_eq!(
        value("/metadata/annotations/zdr.dev~1active-slot"),
        Some(json!("a"))
    );
    assert_eq!(
        value("/metadata/annotations/zdr.dev~1slot-b-revision"),
        Some(json!(""))
    );
    assert_eq!(
        value("/metadata/annotations/zdr.dev~1swap-from"),
        Some(json!("b/c://b3"))
    );
}

#[test]
fn settling_clears_the_operation_and_relabels() {
    let p = observe(
        &swapping(
            running(SLOT_B_CONTAINER, "c://b2", true),
            "2026-06-01T12:00:02Z",
        ),
        "app",
        TIMEOUT,
        at(T0),
    )
    .unwrap();
    let step = next(&p, "r2", "web:2");
    let ops = patch(&p, &step, "app", |_| Some(0), "agent:1", at(T0)).unwrap();
    assert_eq!(
        ops,
        json!([
            {"op": "test", "path": "/metadata/annotations/zdr.dev~1swap-generation", "value": "1"},
            {"op": "remove", "path": "/metadata/annotations/zdr.dev~1swap-from"},
            {"op": "remove", "path": "/metadata/annotations/zdr.dev~1swap-started-at"},
            {"op": "add", "path": "/metadata/labels/zdr.dev~1revision", "value": "r2"},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1swap-unready-ms", "value": "2000"},
        ])
    );
}

/// Any pod state the kubelet and the controller can produce between them.
fn any_pod() -> impl Strategy<Value = Pod> {
    let status = (
        prop::sample::select(vec!["c://b1", "c://b2"]),
        any::<bool>(),
        prop::sample::select(vec![None, Some(0), Some(1), Some(75), Some(143)]),
        prop::sample::select(vec![
            None,
            Some("CrashLoopBackOff"),
            Some("ContainerCreating"),
        ]),
    );
    (
        prop::sample::select(vec!["a", "b"]),
        any::<bool>(),
        status,
        prop::sample::select(vec!["web:1", "web:2", "agent"]),
    )
        .prop_map(|(active, op, (id, ready, exit, waiting), image_b)| {
            let mut b = running(SLOT_B_CONTAINER, id, ready);
            if let Some(code) = exit {
                b["lastState"] =
                    json!({"terminated": {"exitCode": code, "containerID": "c://b2"}});
            }
            if let Some(w) = waiting {
                b["state"] = json!({"waiting": {"reason": w}});
            }
            let mut ann = json!({"zdr.dev/active-slot": active, "zdr.dev/swap-generation": "4",
                                 "zdr.dev/slot-b-revision": if image_b == "agent" {""} else {"r2"}});
            if op {
                ann["zdr.dev/swap-from"] = json!("b/c://b1");
                ann["zdr.dev/swap-started-at"] = json!(T0);
            }
            pod(ann, ["web:1", image_b], vec![running("app", "c://a1", true), b], T0)
        })
}

proptest! {
    /// Whatever the pod says: a step never restarts the active slot, never restarts anything
    /// while an operation runs, a revert only follows a failed operation on the active slot,
    /// and every write tests the generation first.
    #[test]
    fn steps_never_touch_the_serving_slot(p in any_pod(), target in prop::sample::select(vec!["r1", "r2", "r3"])) {
        let image = match target { "r1" => "web:1", "r2" => "web:2", _ => "web:3" };
        let seen = observe(&p, "app", TIMEOUT, at(T0)).unwrap();
        let step = next(&seen, target, image);
        match &step {
            PodStep::Swap { slot, .. } | PodStep::Park(slot) => {
                prop_assert_ne!(*slot, seen.active);
                prop_assert!(!seen.busy());
            }
            PodStep::Revert(_) => {
                let op = seen.op.as_ref().unwrap();
                prop_assert_eq!(op.slot, seen.active);
                prop_assert!(matches!(op.progress, Progress::Failed(_)));
            }
            _ => {}
        }
        let index = |n: &str| ["app", SLOT_B_CONTAINER].iter().position(|c| *c == n);
        if let Some(ops) = patch(&seen, &step, "app", index, "agent", at(T0)) {
            prop_assert_eq!(&ops[0]["op"], "test");
            prop_assert_eq!(&ops[0]["value"], "4");
            // A restart names the serving slot as active only when it swaps into it.
            if let Some(i) = ops.as_array().unwrap().iter().position(|o| o["path"] == "/spec/containers/0/image") {
                prop_assert!(matches!(step, PodStep::Swap { slot: Slot::A, .. } | PodStep::Park(Slot::A) | PodStep::Revert(_)), "{i}");
            }
        }
    }
}
