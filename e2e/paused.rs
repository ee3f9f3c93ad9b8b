//! e2e: while `spec.paused` is true a new template makes no progress (no pod created, none
//! deleted, none updated); un-pausing rolls it out within the bounds.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use zdr::crd::Phase;

use crate::cluster::{NETEXEC, app_container, at, healthy, image_v1, image_v2, rollout, setup};
use crate::pods::Bounds;

/// How long the paused rollout is watched for movement: `ZDR_E2E_PAUSE_WINDOW_SECONDS`, default 20.
fn window() -> Duration {
    let secs = std::env::var("ZDR_E2E_PAUSE_WINDOW_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

pub async fn paused_rollout_makes_no_progress_until_resumed() {
    let Some(mut env) = setup("paused").await else {
        return;
    };
    let name = "paused";
    let replicas = 3;
    let strategy = json!({"strategy": {"rolling": {"maxSurge": 1, "maxUnavailable": 0, "podReplacementPolicy": "TerminationComplete"}}});
    let bounds = Bounds::new(replicas, &IntOrString::Int(1), &IntOrString::Int(0));
    let generation = env
        .create(&rollout(
            name,
            replicas,
            app_container(&image_v1(), NETEXEC),
            strategy,
        ))
        .await;
    let first = env
        .wait_until(name, "Healthy", |z| healthy(z, generation))
        .await;
    let rev1 = first
        .status
        .and_then(|s| s.update_revision)
        .expect("updateRevision");

    // Pause and change the template in one write: the controller must not start the update.
    let generation = env
        .patch(
            name,
            &json!({"spec": {"paused": true, "template": {"spec": {"containers": [app_container(&image_v2(), NETEXEC)]}}}}),
        )
        .await;
    env.wait_until(name, "phase Paused for the new generation", |z| {
        at(z, Phase::Paused, generation)
    })
    .await;

    let initial = std::sync::Mutex::new(None::<Vec<String>>);
    env.hold(name, window(), |pods, z| {
        let names = pods.names();
        let mut first_seen = initial.lock().map_err(|e| e.to_string())?;
        let before = first_seen.get_or_insert_with(|| names.clone());
        if *before != names {
            return Err(format!(
                "pods changed while paused: {before:?} -> {names:?}"
            ));
        }
        for (pod, rev) in pods.serving_revisions() {
            if rev.as_deref() != Some(rev1.as_str()) {
                return Err(format!("pod {pod} runs revision {rev:?} while paused"));
            }
        }
        if let Some(s) = z.and_then(|z| z.status.as_ref()) {
            if s.phase != Some(Phase::Paused) {
                return Err(format!("phase {:?} while paused", s.phase));
            }
            let updated_is_old = s.update_revision.as_deref() == Some(rev1.as_str());
            if s.updated_replicas != 0 && !updated_is_old {
                return Err(format!(
                    "{} pods updated to {:?} while paused",
                    s.updated_replicas, s.update_revision
                ));
            }
        }
        Ok(())
    })
    .await;

    // Resume: the update goes through within the bounds.
    let resumed = env
        .roll(
            name,
            bounds,
            &json!({"spec": {"paused": false}}),
            true,
            |z, g| {
                healthy(z, g)
                    && z.status
                        .as_ref()
                        .is_some_and(|s| s.update_revision.as_deref() != Some(rev1.as_str()))
            },
        )
        .await;
    assert_eq!(resumed.status.map(|s| s.updated_replicas), Some(replicas));
    env.teardown().await;
}
