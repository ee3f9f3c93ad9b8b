//! e2e: an update whose pods never become ready exceeds `progressDeadlineSeconds`: the rollout
//! turns Degraded with condition Progressing False, reason ProgressDeadlineExceeded, and the old
//! pods keep serving all along (maxUnavailable 0).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use zdr::crd::{Phase, condition};

use crate::cluster::{
    NETEXEC, NEVER_READY, SIM_MODE, app_container, at, containers_patch, healthy, image_v1,
    rollout, setup,
};
use crate::pods::Bounds;

pub async fn progress_deadline_marks_the_rollout_degraded() {
    let Some(mut env) = setup("deadline").await else {
        return;
    };
    let name = "stuck";
    let replicas = 3;
    let spec = json!({
        "progressDeadlineSeconds": 20,
        "strategy": {"rolling": {"maxSurge": 1, "maxUnavailable": 0, "podReplacementPolicy": "TerminationComplete"}}
    });
    let bounds = Bounds::new(replicas, &IntOrString::Int(1), &IntOrString::Int(0));
    let generation = env
        .create(&rollout(
            name,
            replicas,
            app_container(&image_v1(), NETEXEC),
            spec,
        ))
        .await;
    env.wait_until(name, "Healthy", |z| healthy(z, generation))
        .await;

    // The new template's pods run but never pass their readiness probe (agnhost `pause` serves
    // nothing on 8080). The simulated kubelet of ../shared/k8s runs no probe: the annotation
    // tells it the same thing; real kubelets ignore it.
    let mut never_ready = containers_patch(app_container(&image_v1(), NEVER_READY));
    never_ready["spec"]["template"]["metadata"] = json!({"annotations": {SIM_MODE: "unready"}});
    let stuck = env
        .roll(name, bounds, &never_ready, false, |z, g| {
            at(z, Phase::Degraded, g)
                && z.status.as_ref().is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == condition::PROGRESSING
                            && c.status == "False"
                            && c.reason == "ProgressDeadlineExceeded"
                    })
                })
        })
        .await;
    let status = stuck.status.expect("status");
    assert!(
        status.available_replicas >= replicas,
        "the old pods kept serving: {status:?}"
    );
    env.teardown().await;
}
