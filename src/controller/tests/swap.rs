//! In-place swaps against the mocked API server: the exact JSON patches of a wave bounded by
//! maxUnavailable, settling a swapped pod, a failed swap that reverts and aborts, and what a
//! controller restarted mid-swap does (nothing until the slot's outcome shows).

use super::*;

const CMD: &str = "/bin/web";

/// Template JSON of container `app` at `image`.
fn template(image: &str) -> Value {
    json!({"metadata": {"labels": {"app": "web"}},
           "spec": {"containers": [{"name": "app", "image": image, "command": [CMD],
                                    "ports": [{"containerPort": 8080}]}]}})
}

/// A rollout from `web:1` to `web:2` with hotSwap (3 replicas, maxUnavailable 1, maxSurge 0);
/// returns it with the old and new revision hashes.
fn swap_rollout(h: &mut Harness, status: Value) -> (ZeroDowntimeRollout, String, String) {
    let old = template_hash(&serde_json::from_value(template("web:1")).unwrap());
    let mut st = json!({"stableRevision": old, "updateRevision": null, "replicas": 3,
                        "updatedReplicas": 0, "availableReplicas": 3, "readyReplicas": 3,
                        "phase": "Progressing"});
    for (k, v) in status.as_object().unwrap() {
        st[k] = v.clone();
    }
    let zdr = rollout(
        json!({"replicas": 3,
               "strategy": {"rolling": {"maxSurge": 0, "maxUnavailable": 1},
                            "hotSwap": {"container": "app"}},
               "template": template("web:2")}),
        st,
    );
    let new = hash_of(&zdr);
    add(&mut h.revisions, revision(&old, 1, &template("web:1")));
    add(&mut h.revisions, revision(&new, 2, &template("web:2")));
    (zdr, old, new)
}

/// A serving pod with the hot-swap layout: `active` slot runs `revs[active]`; slot images,
/// extra annotations and slot b's container status as given.
fn laid_out(
    name: &str,
    label: &str,
    annotations: Value,
    images: [&str; 2],
    b_status: Value,
) -> Pod {
    let mut ann = json!({"zdr.dev/active-slot": "a", "zdr.dev/swap-generation": "0",
                         "zdr.dev/slot-a-revision": label, "zdr.dev/slot-b-revision": ""});
    for (k, v) in annotations.as_object().unwrap() {
        ann[k] = v.clone();
    }
    let mut pod =
        serde_json::to_value(owned_pod(name, label, true, Some("True"), json!({}))).unwrap();
    pod["metadata"]["annotations"] = ann;
    pod["spec"]["containers"] = json!([
        {"name": "app", "image": images[0]},
        {"name": "zdr-slot-b", "image": images[1]},
    ]);
    pod["status"]["containerStatuses"] = json!([
        {"name": "app", "containerID": format!("c://{name}-a"), "ready": true, "restartCount": 0,
         "image": images[0], "imageID": "x", "state": {"running": {"startedAt": "2026-06-01T10:00:00Z"}}},
        b_status,
    ]);
    serde_json::from_value(pod).unwrap()
}

/// Slot b's status: running container `id`, ready or not.
fn slot_b(id: &str, ready: bool) -> Value {
    json!({"name": "zdr-slot-b", "containerID": id, "ready": ready, "restartCount": 0,
           "image": "x", "imageID": "x", "state": {"running": {"startedAt": "2026-06-01T10:00:00Z"}}})
}

/// A settled pod running the old revision `old` in slot a, slot b parked.
fn settled(name: &str, old: &str) -> Pod {
    laid_out(
        name,
        old,
        json!({}),
        ["web:1", AGENT_IMAGE],
        slot_b(&format!("c://{name}-b"), true),
    )
}

/// A pod whose swap to `new` in slot b started at NOW from its container `c://NAME-b`.
fn swapping(name: &str, old: &str, new: &str, b_status: Value) -> Pod {
    laid_out(
        name,
        old,
        json!({"zdr.dev/active-slot": "b", "zdr.dev/swap-generation": "1",
               "zdr.dev/slot-b-revision": new,
               "zdr.dev/swap-from": format!("b/c://{name}-b"),
               "zdr.dev/swap-started-at": "2026-06-01T11:59:58Z"}),
        ["web:1", "web:2"],
        b_status,
    )
}

/// The `HotSwap` condition of a written status.
fn hot_swap_condition(status: &Value) -> Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "HotSwap"))
        .cloned()
        .unwrap_or_else(|| panic!("no HotSwap condition in {status}"))
}

/// The rollout with web-a's swap to the new revision started (slot b's status `b`) and web-b
/// and web-c settled on the old one; returns it with the old and new revision hashes.
fn web_a_swapping(h: &mut Harness, b: Value) -> (ZeroDowntimeRollout, String, String) {
    let (zdr, old, new) = swap_rollout(h, json!({}));
    add(&mut h.pods, swapping("web-a", &old, &new, b));
    for n in ["web-b", "web-c"] {
        add(&mut h.pods, settled(n, &old));
    }
    (zdr, old, new)
}

impl Verifier {
    /// Expects a JSON patch of pod `name` under the controller's field manager; returns the
    /// patch's operations.
    async fn expect_pod_patch(&mut self, name: &str) -> Value {
        let path = format!("/api/v1/namespaces/ns/pods/{name}?&fieldManager=zdr-controller");
        let sent = self.expect(Method::PATCH, &path, pod_reply(name)).await;
        assert_eq!(sent["contentType"], "application/json-patch+json");
        sent["body"].clone()
    }
}

#[tokio::test]
async fn a_wave_swaps_one_pod_in_place_with_a_generation_tested_patch() {
    let mut h = harness(NOW);
    let (zdr, old, new) = swap_rollout(&mut h, json!({}));
    for n in ["web-a", "web-b", "web-c"] {
        add(&mut h.pods, settled(n, &old));
    }
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    // maxUnavailable 1: one pod, the first by name; no pod is created or deleted.
    let sent = h.api.expect_pod_patch("web-a").await;
    assert_eq!(
        sent,
        json!([
            {"op": "test", "path": "/metadata/annotations/zdr.dev~1swap-generation", "value": "0"},
            {"op": "test", "path": "/spec/containers/1/name", "value": "zdr-slot-b"},
            {"op": "add", "path": "/spec/containers/1/image", "value": "web:2"},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1slot-b-revision", "value": new},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1active-slot", "value": "b"},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1swap-generation", "value": "1"},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1swap-from", "value": "b/c://web-a-b"},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1swap-started-at", "value": NOW},
        ])
    );
    let event = h.api.expect_event().await;
    assert_eq!(event["reason"], "HotSwapStarted");
    assert_eq!(event["related"]["kind"], "Pod");
    assert_eq!(event["related"]["name"], "web-a");
    assert_eq!(
        event["note"],
        format!("pod web-a: swapping container app to web:2 (revision {new}) in slot b")
    );
    let s = h.api.expect_status().await;
    task.await.unwrap().unwrap();
    assert_eq!(
        s["hotSwap"],
        json!({"revision": new, "pending": 3, "swapping": 0, "swapped": 0, "failed": 0})
    );
    let c = hot_swap_condition(&s);
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("True"), Some("InPlace"))
    );
    assert_eq!(s["updatedReplicas"], 0);
}

#[tokio::test]
async fn a_controller_restarted_mid_swap_waits_and_then_settles_the_pod() {
    // The swap of web-a was written before the restart; its slot has not come up yet.
    let mut h = harness(NOW);
    let (zdr, old, new) = web_a_swapping(&mut h, slot_b("c://web-a-b", true));
    let task = tokio::spawn(reconcile(Arc::new(zdr.clone()), h.ctx.clone()));
    // No second swap: web-a's counts against maxUnavailable; only the status says so.
    let s = h.api.expect_status().await;
    task.await.unwrap().unwrap();
    assert_eq!(s["hotSwap"]["swapping"], 1);
    assert_eq!(s["hotSwap"]["pods"][0]["name"], "web-a");
    assert_eq!(s["hotSwap"]["pods"][0]["state"], "Swapping");

    // The slot came up with a new container and is ready: the pod is relabelled.
    add(
        &mut h.pods,
        swapping("web-a", &old, &new, slot_b("c://web-a-b2", true)),
    );
    let task = tokio::spawn(reconcile(Arc::new(with_status(&zdr, &s)), h.ctx.clone()));
    let sent = h.api.expect_pod_patch("web-a").await;
    assert_eq!(
        sent,
        json!([
            {"op": "test", "path": "/metadata/annotations/zdr.dev~1swap-generation", "value": "1"},
            {"op": "remove", "path": "/metadata/annotations/zdr.dev~1swap-from"},
            {"op": "remove", "path": "/metadata/annotations/zdr.dev~1swap-started-at"},
            {"op": "add", "path": "/metadata/labels/zdr.dev~1revision", "value": new},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1swap-unready-ms", "value": "0"},
        ])
    );
    // Then the next pod of the wave: web-a is swapped (not busy), so the budget allows one.
    let sent = h.api.expect_pod_patch("web-b").await;
    assert_eq!(sent[2]["value"], "web:2");
    let succeeded = h.api.expect_event().await;
    assert_eq!(succeeded["reason"], "HotSwapSucceeded");
    assert_eq!(
        succeeded["note"],
        format!("pod web-a runs revision {new} after an in-place swap; out of endpoints for 0.0s")
    );
    assert_eq!(h.api.expect_event().await["reason"], "HotSwapStarted");
    let s = h.api.expect_status().await;
    task.await.unwrap().unwrap();
    assert_eq!(s["hotSwap"]["swapped"], 1);
    assert_eq!(s["updatedReplicas"], 1);
}

/// web-a's swap to the new revision failed with slot b's status `b`; web-b and web-c serve
/// the old revision. Checks the abort Event (its note ends with `why`), the revert patch, the
/// pod's Event and the aborted status; returns the status and the old revision.
async fn failed_swap_is_reverted(b: Value, why: &str) -> (Value, String) {
    let mut h = harness(NOW);
    let (zdr, old, new) = web_a_swapping(&mut h, b);
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    let abort = h.api.expect_event().await;
    assert_eq!(abort["reason"], "HotSwapFailed");
    assert_eq!(
        abort["note"],
        format!("pod web-a: hot swap failed: {why}: rolling back to {old}")
    );
    let sent = h.api.expect_pod_patch("web-a").await;
    let ops = sent.as_array().unwrap().clone();
    let value = |path: &str| {
        ops.iter()
            .find(|o| o["path"] == path)
            .map(|o| o["value"].clone())
    };
    assert_eq!(ops[0]["value"], "1", "tests the generation");
    assert_eq!(
        value("/metadata/annotations/zdr.dev~1active-slot"),
        Some(json!("a"))
    );
    assert_eq!(value("/spec/containers/1/image"), Some(json!(AGENT_IMAGE)));
    assert_eq!(
        value("/metadata/annotations/zdr.dev~1slot-b-revision"),
        Some(json!(""))
    );
    let failed = h.api.expect_event().await;
    assert_eq!(failed["reason"], "HotSwapFailed");
    assert_eq!(failed["type"], "Warning");
    let s = h.api.expect_status().await;
    task.await.unwrap().unwrap();
    assert_eq!(s["phase"], "Aborted");
    assert_eq!(s["abortedRevision"], new);
    (s, old)
}

#[tokio::test]
async fn a_failed_swap_reverts_the_pod_and_aborts_the_rollout() {
    // The new version exited before READY: the agent's launcher exited 75 with the reason.
    let mut b = slot_b("c://web-a-b3", true);
    b["lastState"] = json!({"terminated": {"exitCode": 75, "containerID": "c://web-a-b2",
                                           "message": "new version exited with status 1 before READY=1"}});
    let why =
        "the new container exited with code 75: new version exited with status 1 before READY=1";
    let (s, old) = failed_swap_is_reverted(b, why).await;
    assert_eq!(s["hotSwap"]["revision"], old);
    assert_eq!(s["hotSwap"]["failed"], 1);
    assert_eq!(s["hotSwap"]["pods"][0]["state"], "Failed");
}

#[tokio::test]
async fn an_env_change_replaces_pods_and_says_why() {
    let mut h = harness(NOW);
    let (mut zdr, old, _) = swap_rollout(&mut h, json!({}));
    let app = &mut zdr.spec.template.spec.as_mut().unwrap().containers[0];
    app.env = Some(vec![k8s_openapi::api::core::v1::EnvVar {
        name: "A".into(),
        value: Some("1".into()),
        ..Default::default()
    }]);
    let new = hash_of(&zdr);
    let new_template = serde_json::to_value(&zdr.spec.template).unwrap();
    add(&mut h.revisions, revision(&new, 3, &new_template));
    for n in ["web-a", "web-b", "web-c"] {
        add(&mut h.pods, settled(n, &old));
    }
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    // maxSurge 0, maxUnavailable 1: the first old pod is taken out of traffic to be replaced.
    let sent = h
        .api
        .expect(
            Method::PATCH,
            "/api/v1/namespaces/ns/pods/web-a/status?&fieldManager=zdr-controller",
            pod_reply("web-a"),
        )
        .await;
    assert_eq!(sent["body"]["status"]["conditions"][0]["status"], "False");
    let s = h.api.expect_status().await;
    task.await.unwrap().unwrap();
    let c = hot_swap_condition(&s);
    assert_eq!(c["reason"], "NotEligible");
    assert_eq!(
        c["message"],
        "this update is not swapped in place in container app: container app's env changed: pods are replaced, drained first"
    );
}

#[tokio::test]
async fn maxunavailable_zero_replaces_pods_and_says_why() {
    let mut h = harness(NOW);
    let (mut zdr, old, _) = swap_rollout(&mut h, json!({}));
    let rolling = zdr.spec.strategy.rolling.as_mut().unwrap();
    rolling.max_unavailable = k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0);
    rolling.max_surge = k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1);
    for n in ["web-a", "web-b", "web-c"] {
        add(&mut h.pods, settled(n, &old));
    }
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    let pod = h.api.expect_pod_create().await["body"].clone();
    assert_eq!(pod["spec"]["containers"][0]["image"], "web:2");
    let s = h.api.expect_status().await;
    task.await.unwrap().unwrap();
    let c = hot_swap_condition(&s);
    assert_eq!(c["reason"], "NoUnavailableBudget");
    assert_eq!(
        c["message"],
        "this update is not swapped in place in container app: maxUnavailable is 0, and a swap takes each pod out of traffic while its slot restarts: pods are replaced, drained first"
    );
    assert!(s.get("hotSwap").is_none());
}

#[tokio::test]
async fn a_slot_crash_looping_mid_swap_is_a_failed_swap() {
    // The new version's slot restarted and crash-loops (the kubelet's CrashLoopBackOff).
    let b = json!({"name": "zdr-slot-b", "containerID": "c://web-a-b3", "ready": false,
                   "restartCount": 3, "image": "web:2", "imageID": "x",
                   "state": {"waiting": {"reason": "CrashLoopBackOff",
                                         "message": "back-off 20s restarting failed container"}}});
    let why = "the new container is in CrashLoopBackOff: back-off 20s restarting failed container";
    let (s, _) = failed_swap_is_reverted(b, why).await;
    assert_eq!(s["hotSwap"]["pods"][0]["message"], why);
}

#[tokio::test]
async fn an_agent_restarted_mid_swap_changes_nothing_until_the_slot_is_ready() {
    // The sidecar restarted (not ready, restartCount 1) while slot b came up not ready yet:
    // the controller writes nothing to the pod; the pod is reported swapping.
    let mut h = harness(NOW);
    let (zdr, old, new) = web_a_swapping(&mut h, slot_b("c://web-a-b2", false));
    let mut pod = swapping("web-a", &old, &new, slot_b("c://web-a-b2", false));
    let status = pod.status.as_mut().unwrap();
    status.init_container_statuses = Some(vec![
        serde_json::from_value(json!({
        "name": "zdr-agent", "containerID": "c://agent-2", "ready": false, "restartCount": 1,
        "image": AGENT_IMAGE, "imageID": "x",
        "state": {"running": {"startedAt": "2026-06-01T11:59:59Z"}}}))
        .unwrap(),
    ]);
    add(&mut h.pods, pod);
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    let s = h.api.expect_status().await;
    task.await.unwrap().unwrap();
    assert_eq!(
        s["hotSwap"]["pods"],
        json!([{"name": "web-a", "state": "Swapping",
                "message": "slot b restarting since 2026-06-01T11:59:58Z"}])
    );
    assert_eq!(
        (
            s["hotSwap"]["swapping"].as_i64(),
            s["hotSwap"]["pending"].as_i64()
        ),
        (Some(1), Some(2))
    );
}

#[tokio::test]
async fn a_pod_already_out_of_traffic_is_swapped_without_taking_another_out() {
    // web-a swaps (maxUnavailable 1 used); web-c is not Ready anyway: it is swapped too,
    // web-b (serving) waits.
    let mut h = harness(NOW);
    let (zdr, old, _) = web_a_swapping(&mut h, slot_b("c://web-a-b", true));
    let mut unready = settled("web-c", &old);
    let conditions = unready
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap();
    conditions[0].status = "False".into();
    add(&mut h.pods, unready);
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    let sent = h.api.expect_pod_patch("web-c").await;
    assert_eq!(sent[2]["value"], "web:2");
    assert_eq!(h.api.expect_event().await["reason"], "HotSwapStarted");
    let s = h.api.expect_status().await;
    task.await.unwrap().unwrap();
    assert_eq!(s["hotSwap"]["pending"], 2);
}

#[tokio::test]
async fn an_abort_swaps_the_pods_already_done_back_parking_the_old_slot_first() {
    // web-a already runs the new revision in slot b; slot a still holds web:1. The user
    // aborts: web-a goes back to web:1, and since slot a already has that image, it is parked
    // first (the kubelet restarts a container only when its image changes).
    let mut h = harness(NOW);
    let (mut zdr, old, new) = swap_rollout(&mut h, json!({}));
    zdr.metadata.annotations = Some([("zdr.dev/abort".to_string(), new.clone())].into());
    add(
        &mut h.pods,
        laid_out(
            "web-a",
            &new,
            json!({"zdr.dev/active-slot": "b", "zdr.dev/swap-generation": "1",
                   "zdr.dev/slot-a-revision": old, "zdr.dev/slot-b-revision": new}),
            ["web:1", "web:2"],
            slot_b("c://web-a-b2", true),
        ),
    );
    for n in ["web-b", "web-c"] {
        add(&mut h.pods, settled(n, &old));
    }
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    assert_eq!(h.api.expect_event().await["reason"], "AbortedByUser");
    let sent = h.api.expect_pod_patch("web-a").await;
    assert_eq!(
        sent,
        json!([
            {"op": "test", "path": "/metadata/annotations/zdr.dev~1swap-generation", "value": "1"},
            {"op": "test", "path": "/spec/containers/0/name", "value": "app"},
            {"op": "add", "path": "/spec/containers/0/image", "value": AGENT_IMAGE},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1slot-a-revision", "value": ""},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1active-slot", "value": "b"},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1swap-generation", "value": "2"},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1swap-from", "value": "a/c://web-a-a"},
            {"op": "add", "path": "/metadata/annotations/zdr.dev~1swap-started-at", "value": NOW},
        ])
    );
    let s = h.api.expect_status().await;
    task.await.unwrap().unwrap();
    assert_eq!(s["phase"], "Aborted");
    assert_eq!(s["hotSwap"]["revision"], old);
    assert_eq!(
        (
            s["hotSwap"]["pending"].as_i64(),
            s["hotSwap"]["swapped"].as_i64()
        ),
        (Some(1), Some(2))
    );
}
