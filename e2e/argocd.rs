//! e2e: the chart's Argo CD Lua on a live rollout, applied as Argo CD applies it (the merge patch
//! between the object the action got and the one it returned): the health follows the
//! controller, the pause action holds a new template as `spec.paused` does (no pod of the new
//! revision) without touching the spec, and the resume action lets it roll out.

// `merge` (applying kubectl zdr's patches) is for tests/argocd_lua.rs only.
#[allow(dead_code)]
#[path = "../tests/argocd/lua.rs"]
mod lua;

use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use zdr::crd::{Phase, ZeroDowntimeRollout};

use crate::cluster::{NETEXEC, app_container, at, containers_patch, healthy, image_v2, setup};

/// The live rollout as JSON.
async fn live(api: &Api<ZeroDowntimeRollout>, name: &str) -> Value {
    let z = api
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("get {name}: {e}"));
    serde_json::to_value(z).expect("a rollout is JSON")
}

/// Argo CD's health of the live rollout: (status, message).
async fn health(api: &Api<ZeroDowntimeRollout>, name: &str) -> (String, String) {
    let hs = lua::run("health.lua", &live(api, name).await).expect("health.lua runs");
    let field = |k: &str| hs[k].as_str().unwrap_or_default().to_string();
    (field("status"), field("message"))
}

/// Runs an action on the live rollout as Argo CD does: discovery must enable it, and the object
/// it returns is sent as a merge patch.
async fn action(api: &Api<ZeroDowntimeRollout>, name: &str, action: &str) {
    let obj = live(api, name).await;
    let menu = lua::run("actions/discovery.lua", &obj).expect("discovery.lua runs");
    assert_eq!(
        menu[action]["disabled"], false,
        "{action} not enabled: {menu}"
    );
    let out = lua::run(&format!("actions/{action}/action.lua"), &obj)
        .unwrap_or_else(|e| panic!("{action}: {e}"));
    let patch = lua::merge_patch(&obj, &out);
    assert_eq!(
        patch.get("spec"),
        None,
        "{action} changes the spec: {patch}"
    );
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("{action}: patch {patch}: {e}"));
}

pub async fn argocd_pause_and_resume_actions_hold_then_release_an_update() {
    let Some(mut env) = setup("argocd").await else {
        return;
    };
    let name = "argocd";
    let replicas = 2;
    let strategy = json!({"strategy": {"rolling": {"maxSurge": 1, "maxUnavailable": 0}}});
    env.create_healthy(name, replicas, strategy).await;
    let api: Api<ZeroDowntimeRollout> = Api::namespaced(env.client.clone(), &env.ns);
    assert_eq!(health(&api, name).await.0, "Healthy");
    let first = api.get(name).await.expect("the rollout");
    let rev1 = first
        .status
        .and_then(|s| s.update_revision)
        .expect("updateRevision");

    action(&api, name, "pause").await;
    let generation = env
        .patch(name, &containers_patch(app_container(&image_v2(), NETEXEC)))
        .await;
    env.wait_until(name, "phase Paused for the new template", |z| {
        at(z, Phase::Paused, generation)
    })
    .await;
    let (status, message) = health(&api, name).await;
    assert_eq!(status, "Suspended", "{message}");
    assert!(message.starts_with("PausedByAnnotation: "), "{message}");
    env.hold(name, Duration::from_secs(8), |pods, z| {
        for (pod, rev) in pods.serving_revisions() {
            if rev.as_deref() != Some(rev1.as_str()) {
                return Err(format!("pod {pod} runs revision {rev:?} while paused"));
            }
        }
        match z.and_then(|z| z.status.as_ref()).and_then(|s| s.phase) {
            Some(Phase::Paused) | None => Ok(()),
            phase => Err(format!("phase {phase:?} while paused")),
        }
    })
    .await;

    action(&api, name, "resume").await;
    env.wait_until(name, "Healthy at the new template", |z| {
        healthy(z, generation)
            && z.status
                .as_ref()
                .is_some_and(|s| s.update_revision.as_deref() != Some(rev1.as_str()))
    })
    .await;
    assert_eq!(health(&api, name).await.0, "Healthy");
    let z = api.get(name).await.expect("the rollout");
    assert!(!z.spec.paused, "the spec was never paused");
    assert!(
        !z.metadata
            .annotations
            .unwrap_or_default()
            .contains_key(zdr::crd::PAUSED_ANNOTATION),
        "resume removed the annotation"
    );
    env.teardown().await;
}
