//! Tests of pod building, the planner view and the drain-before-delete steps.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::*;
use crate::crd::ZeroDowntimeRollout;

fn zdr() -> ZeroDowntimeRollout {
    serde_json::from_value(json!({
        "apiVersion": "zdr.dev/v1alpha1", "kind": "ZeroDowntimeRollout",
        "metadata": {"name": "web", "namespace": "ns", "uid": "u-1"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "web:1"}]}}}
    }))
    .unwrap()
}

fn pod(conditions: serde_json::Value, annotations: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "annotations": annotations,
                     "labels": {"zdr.dev/revision": "abc"},
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "app"}], "nodeName": "n1",
                 "readinessGates": [{"conditionType": "zdr.dev/serving"}]},
        "status": {"phase": "Running", "conditions": conditions}
    }))
    .unwrap()
}

fn slice(ready: Option<bool>) -> Arc<EndpointSlice> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": "s", "namespace": "ns"},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "targetRef": {"kind": "Pod", "name": "p"},
                           "conditions": {"ready": ready}}]
        }))
        .unwrap(),
    )
}

const T0: &str = "2026-01-01T00:00:10Z";

#[test]
fn built_pods_carry_label_owner_and_gate() {
    let z = zdr();
    let agent = AgentImage::new("zdr:1");
    let p = build_pod(&z, &z.spec.template, "abc", pod_name("web", "abc"), &agent).unwrap();
    assert_eq!(
        p.metadata.labels.as_ref().unwrap()["zdr.dev/revision"],
        "abc"
    );
    assert_eq!(p.metadata.labels.as_ref().unwrap()["app"], "web");
    let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("ZeroDowntimeRollout", "u-1", Some(true))
    );
    assert!(has_gate(&p));
    let name = p.metadata.name.unwrap();
    assert!(
        name.starts_with("web-abc-") && name.len() == "web-abc-".len() + 5,
        "{name}"
    );
    assert_ne!(pod_name("web", "abc"), pod_name("web", "abc"));
}

#[test]
fn pods_are_rendered_only_for_hot_swap_and_a_template_that_cannot_be_is_an_error() {
    let mut z = zdr();
    let agent = AgentImage::new("zdr:1");
    let plain = build_pod(&z, &z.spec.template, "abc", "p".into(), &agent).unwrap();
    assert_eq!(plain.spec.as_ref().unwrap().containers.len(), 1);
    assert!(plain.spec.unwrap().init_containers.is_none());

    z.spec.strategy.hot_swap = Some(
        serde_json::from_value(json!({"container": z.spec.template.spec.as_ref().unwrap()
            .containers[0].name}))
        .unwrap(),
    );
    // The fixture's container has no command: not renderable.
    let mut t = z.spec.template.clone();
    t.spec.as_mut().unwrap().containers[0].command = None;
    let err = build_pod(&z, &t, "abc", "p".into(), &agent).unwrap_err();
    assert!(
        matches!(err, crate::hotswap::RenderError::NoCommand { .. }),
        "{err}"
    );

    let c = &mut t.spec.as_mut().unwrap().containers[0];
    c.command = Some(vec!["/web".into()]);
    c.ports = Some(vec![
        serde_json::from_value(json!({"containerPort": 80})).unwrap(),
    ]);
    let pod = build_pod(&z, &t, "abc", "p".into(), &agent).unwrap();
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.containers.len(), 2);
    assert_eq!(spec.init_containers.as_ref().unwrap()[0].name, "zdr-agent");
    assert!(has_gate(&pod));
    assert_eq!(pod.annotations()["zdr.dev/slot-a-revision"], "abc");
}

#[test]
fn view_reads_readiness_and_retirement() {
    let p = pod(
        json!([{"type": "Ready", "status": "True", "lastTransitionTime": T0},
               {"type": "zdr.dev/serving", "status": "False"}]),
        json!({}),
    );
    let v = pod_view(&p, &[]);
    assert_eq!(v.ready_since, Some(T0.parse().unwrap()));
    assert!(v.retiring && v.scheduled && !v.terminating);
    assert!(!v.drained, "still Ready: still in traffic");
    assert_eq!(v.revision.as_deref(), Some("abc"));
}

#[test]
fn a_retiring_pod_is_drained_once_not_ready_and_in_no_slice_as_ready() {
    let p = pod(
        json!([{"type": "Ready", "status": "False", "lastTransitionTime": T0},
               {"type": "zdr.dev/serving", "status": "False"}]),
        json!({}),
    );
    assert!(
        !pod_view(&p, &[slice(Some(true))]).drained,
        "a slice still routes to it"
    );
    assert!(pod_view(&p, &[slice(Some(false))]).drained);
    assert!(pod_view(&p, &[]).drained);
    let serving = pod(
        json!([{"type": "Ready", "status": "False"}, {"type": "zdr.dev/serving", "status": "True"}]),
        json!({}),
    );
    assert!(
        !pod_view(&serving, &[]).drained,
        "not retiring: never drained"
    );
}

#[test]
fn retirement_goes_gate_then_endpoints_then_delay_then_delete() {
    let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
    let delay = Duration::from_secs(5);
    let serving = pod(
        json!([{"type": "Ready", "status": "True"}, {"type": "zdr.dev/serving", "status": "True"}]),
        json!({}),
    );
    let slices = vec![slice(Some(true))];
    assert_eq!(
        retire_step(
            &serving,
            listed("p", &slices),
            listed_ready("p", &slices),
            delay,
            now
        ),
        RetireStep::TakeOutOfTraffic
    );
    // Gate False, but the kubelet has not flipped Ready yet.
    let gated = pod(
        json!([{"type": "Ready", "status": "True"}, {"type": "zdr.dev/serving", "status": "False"}]),
        json!({}),
    );
    assert_eq!(
        retire_step(&gated, true, true, delay, now),
        RetireStep::Wait(None)
    );
    // Pod not Ready, but a slice still lists it ready (an absent `ready` counts as ready).
    let unready = pod(
        json!([{"type": "Ready", "status": "False"}, {"type": "zdr.dev/serving", "status": "False"}]),
        json!({}),
    );
    let stale = vec![slice(None)];
    assert!(listed_ready("p", &stale));
    assert_eq!(
        retire_step(&unready, true, true, delay, now),
        RetireStep::Wait(None)
    );
    let drained = vec![slice(Some(false))];
    assert!(!listed_ready("p", &drained));
    assert_eq!(
        retire_step(&unready, true, false, delay, now),
        RetireStep::MarkDrained
    );
    let marked = pod(
        json!([{"type": "Ready", "status": "False"}, {"type": "zdr.dev/serving", "status": "False"}]),
        json!({DRAINED_AT_ANNOTATION: "2026-01-01T00:00:57Z"}),
    );
    assert_eq!(
        retire_step(&marked, true, false, delay, now),
        RetireStep::Wait(Some(Duration::from_secs(2)))
    );
    let later: Timestamp = "2026-01-01T00:01:02Z".parse().unwrap();
    assert_eq!(
        retire_step(&marked, true, false, delay, later),
        RetireStep::Delete
    );
}

#[test]
fn pods_out_of_traffic_go_at_once() {
    let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
    let d = Duration::from_secs(5);
    // Ready but no Service lists it: still taken out of traffic first.
    let ready = pod(
        json!([{"type": "Ready", "status": "True"}, {"type": "zdr.dev/serving", "status": "True"}]),
        json!({}),
    );
    assert_eq!(
        retire_step(&ready, false, false, d, now),
        RetireStep::TakeOutOfTraffic
    );
    // Then, once not Ready and in no slice at all, it goes without the propagation delay.
    let retired = pod(
        json!([{"type": "Ready", "status": "False"}, {"type": "zdr.dev/serving", "status": "False"}]),
        json!({}),
    );
    assert_eq!(
        retire_step(&retired, false, false, d, now),
        RetireStep::Delete
    );
    // Not Ready and not ready in any slice.
    let unready = pod(json!([{"type": "Ready", "status": "False"}]), json!({}));
    assert_eq!(
        retire_step(&unready, true, false, d, now),
        RetireStep::Delete
    );
}
