//! e2e: an update whose new pod no node accepts (a nodeSelector no node matches) is reported
//! as blocked: condition Blocked True with reason PodUnschedulable and the scheduler's own
//! message, the same words at the end of `status.message`, one Warning Event; setting the
//! template back clears the condition.

use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use zdr::crd::{BlockReason, ZeroDowntimeRollout, condition};

use crate::cluster::{healthy, setup};

/// The `Blocked` condition's reason and message, when it is True.
fn blocked(z: &ZeroDowntimeRollout) -> Option<(String, String)> {
    let c = z
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == condition::BLOCKED && c.status == "True")?;
    Some((c.reason.clone(), c.message.clone()))
}

pub async fn unschedulable_pods_are_named_and_the_block_clears_once_fixed() {
    let Some(mut env) = setup("stuck").await else {
        return;
    };
    let name = "nowhere";
    let spec = json!({"strategy": {"rolling": {"maxSurge": 1, "maxUnavailable": 0}}});
    env.create_healthy(name, 2, spec).await;

    let to_nowhere = json!({"spec": {"template": {"spec": {
        "nodeSelector": {"zdr.dev/e2e-no-such-node": "true"}}}}});
    let generation = env.patch(name, &to_nowhere).await;
    let stuck = env
        .wait_until(name, "Blocked=True, reason PodUnschedulable", |z| {
            z.status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .is_some_and(|g| g >= generation)
                && blocked(z).is_some_and(|(r, _)| r == BlockReason::PodUnschedulable.as_str())
        })
        .await;
    let (_, why) = blocked(&stuck).expect("checked by the wait");
    let status = stuck.status.as_ref().expect("status");
    let message = status.message.clone().unwrap_or_default();
    // One line straight to stderr: the words the docs quote come from this run.
    let seen = format!("e2e stuck: Blocked: {why}\ne2e stuck: message: {message}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), seen.as_bytes());
    assert!(why.starts_with(&format!("pod {name}-")), "{why}");
    assert!(
        why.contains("cannot be scheduled: 0/") && why.contains("node(s) didn't match"),
        "the scheduler's message: {why}"
    );
    assert!(
        message.ends_with(&format!("; blocked: {why}")),
        "status.message: {message}"
    );
    assert_eq!(status.available_replicas, 2, "the old pods keep serving");

    // One Event for the block, however many reconciles saw it.
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    let list = events.list(&ListParams::default()).await.expect("events");
    let posted: Vec<&Event> = list
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some(BlockReason::PodUnschedulable.as_str()))
        .collect();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].note.as_deref(), Some(why.as_str()));
    assert!(
        posted[0].series.is_none() && posted[0].deprecated_count.unwrap_or(1) <= 1,
        "posted once: {:?}",
        posted[0]
    );

    // Back to a template the nodes accept: Healthy again, and nothing blocked.
    let fixed = json!({"spec": {"template": {"spec": {"nodeSelector": null}}}});
    let generation = env.patch(name, &fixed).await;
    let done = env
        .wait_until(name, "Healthy without a Blocked condition", |z| {
            healthy(z, generation) && blocked(z).is_none()
        })
        .await;
    let message = done.status.and_then(|s| s.message).unwrap_or_default();
    assert!(!message.contains("blocked"), "{message}");
    env.teardown().await;
}
