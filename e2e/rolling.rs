//! e2e: a rolling update of 6 replicas (maxSurge 25%, maxUnavailable 0) never drops below 6
//! available pods nor exceeds 8 pods (every existing pod counted, `TerminationComplete`), and
//! rolling back re-uses the first revision; with the default `TerminationStarted`, the pods
//! that serve or start stay within 8 while drained pods go, and the update completes.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use crate::cluster::{
    NETEXEC, app_container, containers_patch, healthy, image_v1, image_v2, rollout, setup,
};
use crate::pods::Bounds;
use zdr::crd::PodReplacementPolicy;

pub async fn rolling_update_keeps_capacity_and_rollback_reuses_the_revision() {
    let Some(mut env) = setup("rolling").await else {
        return;
    };
    let name = "web";
    let replicas = 6;
    let strategy = json!({"strategy": {"rolling": {"maxSurge": "25%", "maxUnavailable": 0,
                                                    "podReplacementPolicy": "TerminationComplete"}}});
    let bounds = Bounds::new(
        replicas,
        &IntOrString::String("25%".into()),
        &IntOrString::Int(0),
    );
    assert_eq!((bounds.max_surge, bounds.max_unavailable), (2, 0));

    let (v1, v2) = (image_v1(), image_v2());
    assert_ne!(v1, v2, "ZDR_E2E_IMAGE and ZDR_E2E_IMAGE_V2 must differ");
    let generation = env
        .create(&rollout(
            name,
            replicas,
            app_container(&v1, NETEXEC),
            strategy,
        ))
        .await;
    let first = env
        .wait_until(name, "Healthy at the first revision", |z| {
            healthy(z, generation)
        })
        .await;
    let rev1 = first
        .status
        .and_then(|s| s.update_revision)
        .expect("a Healthy rollout has an updateRevision");

    // The update: every observed pod state within the bounds, until all 6 run the new revision.
    let updated = env
        .roll(
            name,
            bounds,
            &containers_patch(app_container(&v2, NETEXEC)),
            true,
            |z, g| {
                healthy(z, g)
                    && z.status
                        .as_ref()
                        .is_some_and(|s| s.update_revision.as_deref() != Some(rev1.as_str()))
            },
        )
        .await;
    let status = updated.status.expect("status");
    assert_eq!(status.updated_replicas, replicas);
    let rev2 = status.update_revision.expect("updateRevision");
    assert_ne!(rev2, rev1, "a new template is a new revision");

    // The rollback: the first template again, hence the first revision (its ControllerRevision
    // is re-used, not re-created under a new hash), under the same bounds.
    let back = env
        .roll(
            name,
            bounds,
            &containers_patch(app_container(&v1, NETEXEC)),
            true,
            |z, g| {
                healthy(z, g)
                    && z.status
                        .as_ref()
                        .is_some_and(|s| s.update_revision.as_deref() == Some(rev1.as_str()))
            },
        )
        .await;
    let status = back.status.expect("status");
    assert_eq!(status.update_revision.as_deref(), Some(rev1.as_str()));
    assert_eq!(status.updated_replicas, replicas);
    env.teardown().await;
}

pub async fn termination_started_overlaps_the_drain_within_the_bounds() {
    let Some(mut env) = setup("started").await else {
        return;
    };
    let name = "web";
    let replicas = 8;
    let strategy = json!({"strategy": {"rolling": {"maxSurge": 2, "maxUnavailable": 1}}});
    let bounds = Bounds::new(replicas, &IntOrString::Int(2), &IntOrString::Int(1))
        .with_policy(PodReplacementPolicy::TerminationStarted);
    env.create_healthy(name, replicas, strategy).await;
    let updated = env
        .roll(
            name,
            bounds,
            &containers_patch(app_container(&image_v2(), NETEXEC)),
            true,
            healthy,
        )
        .await;
    assert_eq!(updated.status.expect("status").updated_replicas, replicas);
    env.teardown().await;
}
