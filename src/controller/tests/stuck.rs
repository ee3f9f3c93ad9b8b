//! A rollout whose new pod cannot be scheduled, against the mocked API server: the Blocked
//! condition and the message name the scheduler's reason, the Event is posted once, and the
//! condition goes once the pod runs.

use super::*;

const SCHEDULER: &str = "0/2 nodes are available: 2 Too many pods.";

/// `new-a` of `rev`, Pending: the scheduler found no node since 11:59:00 (60 s before NOW).
fn unschedulable(rev: &str) -> Pod {
    let mut pod = owned_pod("new-a", rev, false, Some("True"), json!({}));
    pod.spec.as_mut().unwrap().node_name = None;
    let mut status = serde_json::to_value(pod.status.take()).unwrap();
    status["phase"] = json!("Pending");
    status["conditions"].as_array_mut().unwrap().push(
        json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": SCHEDULER, "lastTransitionTime": "2026-06-01T11:59:00Z"}),
    );
    pod.status = serde_json::from_value(status).unwrap();
    pod
}

#[tokio::test]
async fn an_unschedulable_pod_blocks_the_rollout_with_the_schedulers_message() {
    let mut h = harness(NOW);
    let (zdr, old, new) = mid_rollout(&mut h);
    add_serving(&mut h, "old-a", &old);
    add_serving(&mut h, "old-b", &old);
    add(&mut h.pods, unschedulable(&new));
    let why = format!("pod new-a cannot be scheduled: {SCHEDULER}");

    let task = tokio::spawn(reconcile(Arc::new(zdr.clone()), h.ctx.clone()));
    let event = h.api.expect_event().await;
    assert_eq!(
        (
            &event["type"],
            &event["reason"],
            &event["action"],
            &event["note"]
        ),
        (
            &json!("Warning"),
            &json!("PodUnschedulable"),
            &json!("Blocked"),
            &json!(why)
        )
    );
    let status = h.api.expect_status().await;
    assert_eq!(status["phase"], "Progressing");
    assert_eq!(
        status["message"],
        format!("wave 1/2: 1/2 updated, 2 available; blocked: {why}")
    );
    let blocked: Vec<&Value> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "Blocked")
        .collect();
    assert_eq!(
        blocked,
        [
            &json!({"type": "Blocked", "status": "True", "reason": "PodUnschedulable",
                 "message": why, "lastTransitionTime": NOW, "observedGeneration": 2})
        ]
    );
    h.api.expect_nothing().await;
    task.await.unwrap().unwrap();

    // The same block seen again: no Event, and nothing to write.
    let mut again = zdr.clone();
    again.status = Some(serde_json::from_value(status.clone()).unwrap());
    let task = tokio::spawn(reconcile(Arc::new(again.clone()), h.ctx.clone()));
    h.api.expect_nothing().await;
    task.await.unwrap().unwrap();

    // The pod runs and turns Ready: the condition goes, without an Event.
    add(
        &mut h.pods,
        owned_pod("new-a", &new, true, Some("True"), json!({})),
    );
    let task = tokio::spawn(reconcile(Arc::new(again), h.ctx.clone()));
    // It may now retire an old pod first; the status comes last.
    let status = loop {
        let (path, body) = h.api.answer_any().await;
        if path == STATUS_PATH {
            break body["status"].clone();
        }
        assert!(path.contains("/pods/old-"), "{path}: {body}");
    };
    assert!(
        !status["message"].as_str().unwrap().contains("blocked"),
        "{status}"
    );
    assert!(
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["type"] != "Blocked"),
        "{status}"
    );
    task.await.unwrap().unwrap();
}

impl Verifier {
    /// Answers the next request, whatever it is, with an empty pod or the rollout; returns its
    /// path and body.
    async fn answer_any(&mut self) -> (String, Value) {
        let (req, send) = tokio::time::timeout(Duration::from_secs(5), self.0.next_request())
            .await
            .expect("timed out waiting for a request")
            .expect("service not called");
        let path = req.uri().to_string();
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let reply = if path == STATUS_PATH {
            status_reply(&body)
        } else {
            pod_reply("p")
        };
        let response = Response::builder()
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap();
        send.send_response(response);
        (path, body)
    }
}
