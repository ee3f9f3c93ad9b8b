//! `spec.strategy.hotSwap` against the mocked API server when pods are replaced: the `HotSwap`
//! condition says why (the in-place path is in `swap.rs`).

use super::*;

/// A rollout moving from `old_app` to `new_app` (container `app`) with two serving old pods
/// (maxUnavailable 0); returns the `HotSwap` condition of the status written.
async fn hot_swap_condition(old_app: Value, new_app: Value, reason: &str) -> Value {
    let mut h = harness(NOW);
    let old_template = json!({"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [old_app]}});
    let old = template_hash(&serde_json::from_value(old_template.clone()).unwrap());
    let zdr = rollout(
        json!({"replicas": 2,
               "strategy": {"rolling": {"maxSurge": 1, "maxUnavailable": 0},
                            "hotSwap": {"container": "app"}},
               "template": {"metadata": {"labels": {"app": "web", "v": "2"}},
                            "spec": {"containers": [new_app]}}}),
        json!({"stableRevision": old, "updateRevision": null, "replicas": 2,
               "updatedReplicas": 0, "availableReplicas": 2, "readyReplicas": 2}),
    );
    let new = hash_of(&zdr);
    let new_template = serde_json::to_value(&zdr.spec.template).unwrap();
    add(&mut h.revisions, revision(&old, 1, &old_template));
    add(&mut h.revisions, revision(&new, 2, &new_template));
    add_serving(&mut h, "old-a", &old);
    add_serving(&mut h, "old-b", &old);
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    // Pods are still replaced: one surge pod of the new revision first.
    let pod = h.api.expect_pod_create().await["body"].clone();
    assert_eq!(pod["metadata"]["labels"]["zdr.dev/revision"], new);
    let s = h.api.expect_status().await;
    task.await.unwrap().unwrap();
    let conds = s["conditions"].as_array().unwrap();
    let c = conds.iter().find(|c| c["type"] == "HotSwap").unwrap();
    assert_eq!(c["reason"], reason);
    assert_eq!(c["status"], "False");
    c.clone()
}

#[tokio::test]
async fn maxunavailable_zero_replaces_pods_and_says_why() {
    let app = |image: &str| {
        json!({"name": "app", "image": image, "command": ["/bin/web"],
               "ports": [{"containerPort": 8080}]})
    };
    let c = hot_swap_condition(app("web:1"), app("web:2"), "NoUnavailableBudget").await;
    assert_eq!(
        c["message"],
        "this update is not swapped in place in container app: maxUnavailable is 0, and a swap takes each pod out of traffic while its slot restarts: pods are replaced, drained first"
    );
}
