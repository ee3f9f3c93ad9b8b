//! e2e: the controller is killed (SIGKILL) and started again at random moments, 0.5-3 s apart,
//! through several updates of an 8-replica rollout (maxSurge 2, maxUnavailable 1) behind a
//! Service: at every observed pod state the bounds hold (availability >= 7, pods that serve or
//! start <= 10, no pod deleted while Ready), every update completes, and exactly 8 pods are
//! left. This is every upgrade of zdr itself and every leader failover.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use zdr::crd::PodReplacementPolicy;

use crate::chaos::EVERY_HALF_TO_THREE_SECONDS;
use crate::cluster::{
    NETEXEC, app_container, containers_patch, healthy, image_v1, image_v2, setup,
};
use crate::pods::Bounds;

/// How many updates the controller is killed through: `ZDR_E2E_RESTART_ROLLOUTS`, default 3.
fn rollouts() -> usize {
    std::env::var("ZDR_E2E_RESTART_ROLLOUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

pub async fn controller_killed_at_random_moments_keeps_the_bounds() {
    let Some(mut env) = setup("restart").await else {
        return;
    };
    let name = "web";
    let replicas = 8;
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .expect("a Service");
    Api::<Service>::namespaced(env.client.clone(), &env.ns)
        .create(&PostParams::default(), &service)
        .await
        .expect("creating the Service");
    let strategy = json!({"strategy": {"rolling": {"maxSurge": 2, "maxUnavailable": 1}}});
    let bounds = Bounds::new(replicas, &IntOrString::Int(2), &IntOrString::Int(1))
        .with_policy(PodReplacementPolicy::TerminationStarted);
    env.create_healthy(name, replicas, strategy).await;

    let patches = (0..rollouts()).map(|i| {
        let image = if i % 2 == 0 { image_v2() } else { image_v1() };
        containers_patch(app_container(&image, NETEXEC))
    });
    env.roll_each_with_kills(name, bounds, patches, healthy, EVERY_HALF_TO_THREE_SECONDS)
        .await;
    env.wait_for_pod_count(name, replicas as usize).await;
    env.teardown().await;
}
