//! Rolling-update scenarios against the mocked API server: first rollout, retirement through
//! the readiness gate, drained deletion, invalid spec, progress deadline, rollback, adoption.

use super::*;

#[tokio::test]
async fn a_new_rollout_records_its_revision_creates_pods_and_reports_status() {
    let mut h = harness(NOW);
    let zdr = rollout(json!({}), json!(null));
    let hash = hash_of(&zdr);
    let ctx = h.ctx.clone();
    let z = Arc::new(zdr.clone());
    let task = tokio::spawn(reconcile(z, ctx));

    let rev = h.api.expect_revision(&hash, 1).await;
    assert_eq!(rev["contentType"], "application/apply-patch+yaml");
    assert_eq!(rev["body"]["revision"], 1);
    assert_eq!(
        rev["body"]["metadata"]["ownerReferences"][0]["uid"],
        "zdr-uid"
    );
    assert_eq!(
        rev["body"]["metadata"]["ownerReferences"][0]["controller"],
        true
    );
    assert_eq!(
        rev["body"]["data"]["template"]["spec"]["containers"][0]["image"],
        "web:2"
    );

    // 3 replicas, maxSurge 25% -> 1: from zero pods all 3 fit under the ceiling of 4.
    for _ in 0..3 {
        let pod = h.api.expect_pod_create().await["body"].clone();
        assert_eq!(pod["metadata"]["labels"]["zdr.dev/revision"], hash);
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(
            pod["metadata"]["ownerReferences"][0]["kind"],
            "ZeroDowntimeRollout"
        );
        assert_eq!(
            pod["spec"]["readinessGates"][0]["conditionType"],
            "zdr.dev/serving"
        );
        assert!(
            pod["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("web-{hash}-"))
        );
    }
    let status = h.api.expect_status().await;
    let s = &status;
    assert_eq!(s["phase"], "Progressing");
    assert_eq!(s["updateRevision"], hash);
    assert_eq!(s["observedGeneration"], 2);
    assert_eq!(s["selector"], "app=web");
    assert_eq!(s["message"], "scaling: 0/3 updated, 0 available");
    assert!(s.get("stableRevision").is_none());
    let action = task.await.unwrap().unwrap();
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(600)),
        "the progress deadline"
    );

    // The cache has not shown the status written yet: a reconcile must not decide from the
    // older one, and waits for the watch event.
    let task = tokio::spawn(reconcile(Arc::new(zdr.clone()), h.ctx.clone()));
    h.api.expect_nothing().await;
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(Duration::from_secs(1))
    );

    // It shows the status but not the new pods yet: a second reconcile must not create again.
    let task = tokio::spawn(reconcile(
        Arc::new(with_status(&zdr, &status)),
        h.ctx.clone(),
    ));
    h.api.expect_nothing().await;
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(Duration::from_secs(2))
    );
    let _ = (&mut h.pods, &mut h.revisions, &mut h.slices);
}

#[tokio::test]
async fn a_surplus_old_pod_is_taken_out_of_traffic_before_anything_else() {
    let mut h = harness(NOW);
    let (zdr, old, new) = mid_rollout(&mut h);
    add_serving(&mut h, "old-a", &old);
    add(
        &mut h.pods,
        owned_pod(
            "old-b",
            &old,
            true,
            Some("True"),
            json!({"creationTimestamp": "2026-06-01T10:30:00Z"}),
        ),
    );
    add_serving(&mut h, "new-a", &new);
    add(&mut h.slices, slice("old-b", true));
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));

    // 3 available, floor 2: one old pod may go, the newest one (old-b); it is in a Service,
    // so it is first taken out of traffic through its readiness gate, not deleted.
    let gate = h
        .api
        .expect(
            Method::PATCH,
            "/api/v1/namespaces/ns/pods/old-b/status?&fieldManager=zdr-controller",
            pod_reply("old-b"),
        )
        .await;
    assert_eq!(
        gate["contentType"],
        "application/strategic-merge-patch+json"
    );
    let c = &gate["body"]["status"]["conditions"][0];
    assert_eq!(
        (c["type"].as_str(), c["status"].as_str()),
        (Some("zdr.dev/serving"), Some("False"))
    );
    let s = &h.api.expect_status().await;
    assert_eq!(
        (
            s["replicas"].as_i64(),
            s["updatedReplicas"].as_i64(),
            s["availableReplicas"].as_i64()
        ),
        (Some(3), Some(1), Some(3))
    );
    assert_eq!(s["stableRevision"], old.as_str());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_drained_pod_is_deleted_after_the_propagation_delay_with_a_uid_precondition() {
    for policy in [
        crate::crd::PodReplacementPolicy::TerminationStarted,
        crate::crd::PodReplacementPolicy::TerminationComplete,
    ] {
        let mut h = harness(NOW);
        let (mut zdr, old, new) = mid_rollout(&mut h);
        zdr.spec
            .strategy
            .rolling
            .as_mut()
            .unwrap()
            .pod_replacement_policy = policy;
        add_serving(&mut h, "old-a", &old);
        add_serving(&mut h, "new-a", &new);
        // Retiring: gate False, Ready False, no slice lists it ready, drained 10 s ago (> 5 s).
        add(
            &mut h.pods,
            owned_pod(
                "old-b",
                &old,
                false,
                Some("False"),
                json!({"annotations": {"zdr.dev/drained-at": "2026-06-01T11:59:50Z"}}),
            ),
        );
        add(&mut h.slices, slice("old-b", false));
        let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
        if policy == crate::crd::PodReplacementPolicy::TerminationStarted {
            // old-b is out of traffic: it no longer counts against maxSurge 1, so the next new
            // pod starts while it goes.
            let pod = h.api.expect_pod_create().await;
            assert_eq!(pod["body"]["metadata"]["labels"]["zdr.dev/revision"], new);
        }
        let del = h
            .api
            .expect(
                Method::DELETE,
                "/api/v1/namespaces/ns/pods/old-b?",
                pod_reply("old-b"),
            )
            .await;
        assert_eq!(del["body"]["preconditions"]["uid"], "uid-old-b");
        let status = h.api.expect_status().await;
        assert_eq!(status["terminatingReplicas"], 1, "{policy:?}: {status}");
        h.api.expect_nothing().await;
        task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_retiring_pod_still_listed_ready_waits_for_the_endpoints() {
    let mut h = harness(NOW);
    let (zdr, old, new) = mid_rollout(&mut h);
    add_serving(&mut h, "old-a", &old);
    add_serving(&mut h, "new-a", &new);
    add(
        &mut h.pods,
        owned_pod("old-b", &old, false, Some("False"), json!({})),
    );
    add(&mut h.slices, slice("old-b", true));
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    // No delete, no drained mark: the Event and status say what it waits for (out of traffic
    // since its creation, the gate's condition has no transition time).
    let why = "pod old-b is out of traffic but EndpointSlice web-svc-abc still lists it as ready";
    let ev = h.api.expect_event().await;
    assert_eq!(
        (&ev["reason"], &ev["note"]),
        (&json!("DrainWaitingOnEndpoints"), &json!(why))
    );
    let s = h.api.expect_status().await;
    assert_eq!(
        s["message"],
        format!("wave 1/2: 1/2 updated, 2 available, 1 draining; blocked: {why}")
    );
    h.api.expect_nothing().await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_unsupported_spec_is_reported_and_nothing_is_touched() {
    let mut h = harness(NOW);
    // An analysis step with no spec.analysis to run: the CEL rules cannot see it, the
    // controller refuses it.
    let zdr = rollout(
        json!({"strategy": {"canary": {"stableService": "s", "canaryService": "c", "steps": [{"analysis": {}}]}}}),
        json!(null),
    );
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    let ev = h.api.expect_event().await;
    assert_eq!(ev["reason"], "InvalidStrategy");
    assert_eq!(ev["type"], "Warning");
    let s = &h.api.expect_status().await;
    assert_eq!(s["phase"], "Degraded");
    assert_eq!(s["conditions"][0]["type"], "InvalidSpec");
    assert_eq!(s["conditions"][0]["reason"], "InvalidStrategy");
    assert!(
        s["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("steps[0]: an analysis step needs spec.analysis"),
        "{s}"
    );
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
}

#[tokio::test]
async fn no_progress_past_the_deadline_marks_the_rollout_degraded() {
    let mut h = harness(NOW);
    let (mut zdr, old, new) = mid_rollout(&mut h);
    zdr.spec.progress_deadline_seconds = 60;
    let st = zdr.status.as_mut().unwrap();
    st.update_revision = Some(new.clone());
    st.replicas = 3;
    st.updated_replicas = 1;
    st.available_replicas = 2;
    st.ready_replicas = 2;
    st.phase = Some(crate::crd::Phase::Progressing);
    st.last_progress_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-06-01T11:58:00Z".parse::<Timestamp>().unwrap(),
    ));
    add_serving(&mut h, "old-a", &old);
    add_serving(&mut h, "old-b", &old);
    add(
        &mut h.pods,
        owned_pod("new-a", &new, false, Some("True"), json!({})),
    );
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    let ev = h.api.expect_event().await;
    assert_eq!(ev["reason"], "ProgressDeadlineExceeded");
    let s = &h.api.expect_status().await;
    assert_eq!(s["phase"], "Degraded");
    let progressing = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap();
    assert_eq!(progressing["status"], "False");
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn reapplying_the_previous_template_is_a_rollback_that_reuses_its_revision() {
    let mut h = harness(NOW);
    let (current, old, new) = mid_rollout(&mut h);
    // The update to `new` completed; now the user re-applies the old template (web:1).
    let mut zdr = current.clone();
    zdr.spec.template.spec.as_mut().unwrap().containers[0].image = Some("web:1".into());
    assert_eq!(hash_of(&zdr), old);
    let st = zdr.status.as_mut().unwrap();
    st.stable_revision = Some(new.clone());
    st.update_revision = Some(new.clone());
    add_serving(&mut h, "new-a", &new);
    add_serving(&mut h, "new-b", &new);
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    let rev = h.api.expect_revision(&old, 3).await;
    assert_eq!(
        rev["body"]["revision"], 3,
        "the old revision becomes the newest"
    );
    let pod = h.api.expect_pod_create().await;
    assert_eq!(
        pod["body"]["metadata"]["labels"]["zdr.dev/revision"],
        old.as_str()
    );
    assert_eq!(pod["body"]["spec"]["containers"][0]["image"], "web:1");
    let status = h.api.expect_status().await;
    assert_eq!(status["updateRevision"], old.as_str());
    assert_eq!(status["stableRevision"], new.as_str());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn orphans_are_adopted_and_pods_of_other_controllers_are_never_touched() {
    let mut h = harness(NOW);
    let zdr = rollout(json!({"replicas": 1}), json!(null));
    let hash = hash_of(&zdr);
    let stray: Pod = serde_json::from_value(json!({
        "metadata": {"name": "stray", "namespace": "ns", "uid": "uid-stray", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app"}]},
    }))
    .unwrap();
    let foreign: Pod = serde_json::from_value(json!({
        "metadata": {"name": "foreign", "namespace": "ns", "uid": "uid-foreign", "labels": {"app": "web"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                          "uid": "rs-uid", "controller": true}]},
        "spec": {"containers": [{"name": "app"}]},
    }))
    .unwrap();
    add(&mut h.pods, stray);
    add(&mut h.pods, foreign);
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    h.api.expect_revision(&hash, 1).await;
    let adopt = h
        .api
        .expect(
            Method::PATCH,
            "/api/v1/namespaces/ns/pods/stray?&fieldManager=zdr-controller",
            pod_reply("stray"),
        )
        .await;
    assert_eq!(
        adopt["contentType"],
        "application/strategic-merge-patch+json"
    );
    assert_eq!(
        adopt["body"]["metadata"]["uid"], "uid-stray",
        "uid precondition"
    );
    assert_eq!(
        adopt["body"]["metadata"]["ownerReferences"][0]["uid"],
        "zdr-uid"
    );
    assert_eq!(
        adopt["body"]["metadata"]["ownerReferences"][0]["controller"],
        true
    );
    h.api.expect_pod_create().await;
    h.api.expect_status().await;
    h.api.expect_nothing().await;
    task.await.unwrap().unwrap();
}
