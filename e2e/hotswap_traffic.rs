//! e2e on a cluster with a real network only (`traffic_`): a hot swap under load through a
//! Service drops nothing. The app is the zdr image's socket-activated demo app under the agent;
//! the load runs in a pod of the cluster (`zdr-agent load` against the Service's name), so the
//! test itself never connects to a pod or Service IP. It reads the load's one-line report from
//! the pod's log: every request answered, none failed or reset, both versions seen.
//!
//! Needs `ZDR_E2E_AGENT_IMAGE` and `ZDR_E2E_AGENT_IMAGE_V2`: two tags of the image built from
//! the Dockerfile, loaded into the cluster (docs/e2e.md).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::{LogParams, PostParams};
use serde_json::{Value, json};

use crate::cluster::{containers_patch, healthy, setup};

/// The image named by `var`; a clear failure when it is not set, since this test only runs
/// where it was asked for.
fn image(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: traffic_ tests need two tags of the zdr image (docker build -t zdr:e2e-a . && docker tag zdr:e2e-a zdr:e2e-b, then load both into the cluster); see docs/e2e.md, or leave them out with -- --skip traffic_"
        )
    })
}

/// The demo app under the agent: an explicit command, a network readiness probe.
fn app(image: &str) -> Value {
    json!({
        "name": "app",
        "image": image,
        "command": ["/usr/local/bin/zdr-agent", "demo-app"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
        "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false,
                            "capabilities": {"drop": ["ALL"]}}
    })
}

pub async fn traffic_hot_swap_through_a_service_drops_nothing() {
    let Some(mut env) = setup("hotswap-traffic").await else {
        return;
    };
    let (v1, v2) = (
        image("ZDR_E2E_AGENT_IMAGE"),
        image("ZDR_E2E_AGENT_IMAGE_V2"),
    );
    let name = "web";
    let spec = json!({"strategy": {"rolling": {"maxSurge": 0, "maxUnavailable": 1},
                                   "hotSwap": {"container": "app", "drainTimeoutSeconds": 10}}});
    let generation = env
        .create(&crate::cluster::rollout(name, 2, app(&v1), spec))
        .await;
    env.wait_until(name, "Healthy", |z| healthy(z, generation))
        .await;
    let services: Api<Service> = Api::namespaced(env.client.clone(), &env.ns);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": "http"}]}
    }))
    .expect("a Service");
    services
        .create(&PostParams::default(), &svc)
        .await
        .expect("create the Service");

    // The load: 60 s from inside the cluster, starting once the Service has endpoints.
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let load: Pod = serde_json::from_value(json!({
        "metadata": {"name": "load"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "load", "image": v1,
            "command": ["/usr/local/bin/zdr-agent", "load", "--target", format!("{name}:80"),
                        "--duration", "60s", "--delay", "5s", "--workers", "8"],
            "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false,
                                "capabilities": {"drop": ["ALL"]}}}]}
    }))
    .expect("a Pod");
    pods.create(&PostParams::default(), &load)
        .await
        .expect("create the load pod");
    wait_phase(&pods, "load", &["Running"]).await;
    tokio::time::sleep(Duration::from_secs(15)).await;

    let generation = env.patch(name, &containers_patch(app(&v2))).await;
    env.wait_until(name, "Healthy after the swap", |z| healthy(z, generation))
        .await;
    wait_phase(&pods, "load", &["Succeeded", "Failed"]).await;
    let log = pods
        .logs("load", &LogParams::default())
        .await
        .expect("the load pod's log");
    let report: Value = log
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report in the load pod's log:\n{log}"));
    let line = format!("e2e hotswap traffic: {report}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    assert!(report["requests"].as_u64().unwrap_or(0) > 1000, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["reset"], 0, "{report}");
    let versions = report["versions"].as_object().cloned().unwrap_or_default();
    assert!(versions.len() >= 2, "both versions served: {report}");
    env.teardown().await;
}

/// Waits (at most 3 minutes) until pod `name` is in one of `phases`.
async fn wait_phase(pods: &Api<Pod>, name: &str, phases: &[&str]) {
    for _ in 0..900 {
        let phase = pods
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|p| p.status)
            .and_then(|s| s.phase)
            .unwrap_or_default();
        if phases.contains(&phase.as_str()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("pod {name} never reached {phases:?}");
}
