//! A controller that starts (or takes over the Lease) mid-rollout: nothing is decided before the
//! caches hold what exists, and errors back off per rollout. Also a namespace being deleted.

use super::*;
use crate::controller::reconcile::error_policy;

/// A rollout of 3 replicas at `web:2` whose ControllerRevision is cached and whose 3 pods exist
/// and serve (created by a previous controller process; the pods are for the pod list to bring).
fn running(h: &mut Harness) -> (ZeroDowntimeRollout, Vec<Pod>) {
    let zdr = rollout(
        json!({}),
        json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 3, "readyReplicas": 3}),
    );
    let hash = hash_of(&zdr);
    let template = serde_json::to_value(&zdr.spec.template).unwrap();
    add(&mut h.revisions, revision(&hash, 1, &template));
    let pods = (0..3)
        .map(|i| owned_pod(&format!("web-{i}"), &hash, true, Some("True"), json!({})))
        .collect();
    (zdr, pods)
}

#[tokio::test]
async fn nothing_is_created_before_the_pod_list_arrives() {
    let mut h = harness_before_pod_list(NOW);
    let (zdr, pods) = running(&mut h);
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    // With an empty pod cache the planner would create 3 pods: it must not run yet.
    h.api.expect_nothing().await;
    assert!(!task.is_finished(), "the reconcile waits for the pod list");
    // The initial list arrives, with the pods the previous process created.
    synced(&mut h.pods, pods);
    let event = h.api.expect_event().await;
    assert_eq!(event["reason"], "RolloutCompleted");
    let status = h.api.expect_status().await;
    assert_eq!(status["phase"], "Healthy", "{status}");
    assert_eq!(status["replicas"], 3);
    task.await.unwrap().unwrap();
    h.api.expect_nothing().await;
}

#[tokio::test]
async fn every_reconcile_waiting_for_the_pod_list_proceeds_when_it_arrives() {
    // Three rollouts (and the readiness probe) wait at once: each must be woken.
    let mut h = harness_before_pod_list(NOW);
    let (zdr, pods) = running(&mut h);
    let ready = {
        let ctx = h.ctx.clone();
        tokio::spawn(async move { ctx.caches_synced().await })
    };
    let tasks: Vec<_> = (0..3)
        .map(|_| tokio::spawn(reconcile(Arc::new(zdr.clone()), h.ctx.clone())))
        .collect();
    h.api.expect_nothing().await;
    synced(&mut h.pods, pods);
    // Each reconcile publishes its RolloutCompleted event and its status; they interleave.
    let (mut events, mut statuses) = (0, 0);
    for _ in 0..6 {
        let (req, send) = tokio::time::timeout(Duration::from_secs(5), h.api.0.next_request())
            .await
            .expect("a request from a woken reconcile")
            .expect("service called");
        allowed(&req);
        let reply = if req.uri().path().ends_with("/events") {
            events += 1;
            event_reply()
        } else {
            assert_eq!(req.uri().to_string(), STATUS_PATH);
            statuses += 1;
            let body = req.into_body().collect_bytes().await.unwrap();
            status_reply(&serde_json::from_slice(&body).unwrap())
        };
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&reply).unwrap(),
        )));
    }
    assert_eq!((events, statuses), (3, 3));
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("every waiting reconcile finishes")
            .unwrap()
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(5), ready)
        .await
        .expect("the readiness waiter is woken too")
        .unwrap();
}

fn forbidden_terminating() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
           "message": "pods \"web-x\" is forbidden: unable to create new content in namespace ns because it is being terminated"})
}

#[tokio::test]
async fn a_namespace_being_deleted_stops_creation_after_one_refused_request() {
    let mut h = harness(NOW);
    let zdr = rollout(json!({"replicas": 8}), json!(null));
    let hash = hash_of(&zdr);
    let template = serde_json::to_value(&zdr.spec.template).unwrap();
    add(&mut h.revisions, revision(&hash, 1, &template));
    let task = tokio::spawn(reconcile(Arc::new(zdr.clone()), h.ctx.clone()));
    // Slow start: the first batch is one pod; refused, so no second batch is sent.
    let (req, send) = h.api.0.next_request().await.expect("a create");
    allowed(&req);
    assert_eq!(req.method(), Method::POST);
    let mut resp = Response::new(Body::from(
        serde_json::to_vec(&forbidden_terminating()).unwrap(),
    ));
    *resp.status_mut() = http::StatusCode::FORBIDDEN;
    send.send_response(resp);
    let err = task.await.unwrap().unwrap_err();
    assert!(err.is_namespace_terminating(), "{err}");
    assert_eq!(err.category(), "namespace_terminating");
    h.api.expect_nothing().await;
    let z = Arc::new(zdr);
    assert_eq!(
        error_policy(z.clone(), &err, h.ctx.clone()),
        Action::await_change()
    );
    // Any later trigger (a pod deleted by the namespace's deletion) does nothing.
    let again = reconcile(z, h.ctx.clone()).await.unwrap();
    assert_eq!(again, Action::await_change());
    h.api.expect_nothing().await;
}

#[tokio::test]
async fn failures_back_off_per_rollout_and_reset_after_a_success() {
    let h = harness(NOW);
    let z = Arc::new(rollout(json!({}), json!(null)));
    let err = crate::controller::Error::MissingField("web".into(), "metadata.namespace");
    let delays: Vec<Action> = (0..4)
        .map(|_| error_policy(z.clone(), &err, h.ctx.clone()))
        .collect();
    assert_eq!(
        delays,
        [1, 2, 4, 8].map(|s| Action::requeue(Duration::from_secs(s)))
    );
    h.ctx.backoff.succeeded("ns/web");
    assert_eq!(
        error_policy(z, &err, h.ctx.clone()),
        Action::requeue(Duration::from_secs(1))
    );
}
