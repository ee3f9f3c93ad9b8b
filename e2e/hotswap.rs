//! e2e: hot swaps on a real cluster. An image-only update is swapped inside the running pods
//! (same names and UIDs, nothing created or deleted, at most maxUnavailable pods out of
//! traffic at any time, the revision label kept current, one Event pair per pod), through a
//! controller killed mid-swap; the way back re-uses the idle slot after parking it. A new
//! version that cannot come up is reverted in its pod and the rollout aborts, back to the old
//! version in the same pods.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use zdr::contract::pod::{ACTIVE_SLOT_ANNOTATION, SLOT_B_CONTAINER};
use zdr::crd::{Phase, REVISION_LABEL, ZeroDowntimeRollout};

use crate::cluster::{containers_patch, healthy, image_v1, image_v2, setup};

/// A container the agent can wrap: an explicit command, a network readiness probe.
fn swappable(image: &str) -> Value {
    json!({
        "name": "app",
        "image": image,
        "command": ["/agnhost", "netexec", "--http-port=8080"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        "resources": {"requests": {"cpu": "5m", "memory": "16Mi"}}
    })
}

fn spec() -> Value {
    json!({"strategy": {"rolling": {"maxSurge": 0, "maxUnavailable": 1},
                        "hotSwap": {"container": "app", "drainTimeoutSeconds": 5}},
           "progressDeadlineSeconds": 120})
}

/// The pods labelled `app=<name>`.
async fn list(api: &Api<Pod>, name: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .expect("list pods")
        .items
}

/// The rollout's pods by name: (uid, revision label, active slot, slot b's image).
async fn pods(api: &Api<Pod>, name: &str) -> Seen {
    list(api, name)
        .await
        .iter()
        .map(|p| {
            let b = p
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == SLOT_B_CONTAINER))
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            (
                p.name_any(),
                (
                    p.uid().unwrap_or_default(),
                    p.labels().get(REVISION_LABEL).cloned().unwrap_or_default(),
                    p.annotations()
                        .get(ACTIVE_SLOT_ANNOTATION)
                        .cloned()
                        .unwrap_or_default(),
                    b,
                ),
            )
        })
        .collect()
}

/// Pods of `name` whose Ready condition is not True.
async fn not_ready(api: &Api<Pod>, name: &str) -> usize {
    list(api, name)
        .await
        .iter()
        .filter(|p| {
            !p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count()
}

/// Events of the namespace with `reason`.
async fn events(env: &crate::cluster::TestEnv, reason: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    let list = api.list(&ListParams::default()).await.expect("events");
    list.items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

/// Samples the pods every 200 ms until the rollout is Healthy at `generation`; returns the
/// most pods seen not Ready at once.
async fn most_unready(
    env: &mut crate::cluster::TestEnv,
    name: &str,
    generation: i64,
) -> (ZeroDowntimeRollout, usize) {
    let api: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let rollouts = env.api();
    let mut most = 0;
    for _ in 0..1500 {
        most = most.max(not_ready(&api, name).await);
        if let Some(z) = rollouts.get_opt(name).await.expect("get rollout")
            && healthy(&z, generation)
        {
            return (z, most);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let z = env
        .wait_until(name, "Healthy", |z| healthy(z, generation))
        .await;
    (z, most)
}

/// The pods of a hot-swap rollout as observed: name -> (uid, revision label, active slot,
/// slot b's image).
type Seen = BTreeMap<String, (String, String, String, String)>;

/// Creates the rollout `name` with `replicas` pods at `image_v1` and waits until it is
/// Healthy; returns its revision, the pods' API and its pods.
async fn start(
    env: &mut crate::cluster::TestEnv,
    name: &str,
    replicas: i32,
) -> (String, Api<Pod>, Seen) {
    let z = crate::cluster::rollout(name, replicas, swappable(&image_v1()), spec());
    let generation = env.create(&z).await;
    let first = env
        .wait_until(name, "Healthy at the first revision", |z| {
            healthy(z, generation)
        })
        .await;
    let stable = first.status.and_then(|s| s.update_revision).unwrap();
    let api: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let before = pods(&api, name).await;
    assert_eq!(before.len(), replicas as usize);
    (stable, api, before)
}

/// Waits until the first pod's swap has started.
async fn swap_under_way(env: &mut crate::cluster::TestEnv, name: &str) {
    env.wait_until(name, "a swap under way", |z| {
        z.status
            .as_ref()
            .and_then(|s| s.hot_swap.as_ref())
            .is_some_and(|h| h.swapping + h.swapped >= 1)
    })
    .await;
}

pub async fn hot_swap_updates_pods_in_place_through_a_controller_restart_and_back() {
    let Some(mut env) = setup("hotswap").await else {
        return;
    };
    let name = "swap";
    let (stable, api, before) = start(&mut env, name, 3).await;
    for (pod, (_, rev, active, b)) in &before {
        assert_eq!((rev, active.as_str()), (&stable, "a"), "{pod}");
        assert_ne!(b, &image_v1(), "{pod}: slot b starts parked");
    }

    // Image only: swapped in place. Kill the controller once a swap is under way.
    let generation = env
        .patch(name, &containers_patch(swappable(&image_v2())))
        .await;
    swap_under_way(&mut env, name).await;
    env.restart_controller().await;
    let (done, most) = most_unready(&mut env, name, generation).await;
    let update = done.status.and_then(|s| s.update_revision).unwrap();
    assert_ne!(update, stable);
    assert!(
        most <= 1,
        "{most} pods out of traffic at once; maxUnavailable is 1"
    );
    let after = pods(&api, name).await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "no pod created or deleted"
    );
    for (pod, (uid, rev, active, b)) in &after {
        assert_eq!(uid, &before[pod].0, "{pod} kept its UID");
        assert_eq!(
            (rev, active.as_str(), b),
            (&update, "b", &image_v2()),
            "{pod}"
        );
    }
    // One Event per pod and swap (each names its pod as the related object).
    for reason in ["HotSwapStarted", "HotSwapSucceeded"] {
        let posted = events(&env, reason).await;
        let pods: std::collections::BTreeSet<String> = posted
            .iter()
            .filter_map(|e| e.related.as_ref().and_then(|r| r.name.clone()))
            .collect();
        assert_eq!(
            pods.iter().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "{reason}: {posted:?}"
        );
    }

    // Back to v1: slot a still holds v1, so it is parked first, then swapped into.
    let generation = env
        .patch(name, &containers_patch(swappable(&image_v1())))
        .await;
    let (back, most) = most_unready(&mut env, name, generation).await;
    assert!(most <= 1, "{most} pods out of traffic at once");
    assert_eq!(
        back.status.and_then(|s| s.update_revision),
        Some(stable.clone())
    );
    for (pod, (uid, rev, active, _)) in &pods(&api, name).await {
        assert_eq!(uid, &before[pod].0, "{pod} kept its UID");
        assert_eq!((rev, active.as_str()), (&stable, "a"), "{pod}");
    }
    env.teardown().await;
}

pub async fn a_new_version_that_cannot_start_is_reverted_in_place_and_aborts() {
    let Some(mut env) = setup("hotswap-fail").await else {
        return;
    };
    let name = "swapfail";
    let (stable, api, before) = start(&mut env, name, 2).await;

    // A tag no registry has: a real kubelet cannot pull it, the simulated one crash-loops it
    // (its tag says `crash`).
    let broken = format!("{}-zdr-e2e-crash", image_v1());
    env.patch(name, &containers_patch(swappable(&broken))).await;
    let aborted = env
        .wait_until(name, "Aborted (HotSwapFailed)", |z| {
            z.status.as_ref().is_some_and(|s| {
                s.phase == Some(Phase::Aborted)
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Aborted" && c.reason == "HotSwapFailed")
            })
        })
        .await;
    let message = aborted.status.and_then(|s| s.message).unwrap_or_default();
    assert!(message.contains("HotSwapFailed"), "{message}");
    // Back on the old version in the same pods, every pod Ready.
    let mut settled = false;
    for _ in 0..600 {
        let now = pods(&api, name).await;
        settled = now.len() == 2
            && now.iter().all(|(pod, (uid, rev, active, _))| {
                uid == &before[pod].0 && rev == &stable && active == "a"
            })
            && not_ready(&api, name).await == 0;
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        settled,
        "pods back on {stable}: {:?}",
        pods(&api, name).await
    );
    let failed = events(&env, "HotSwapFailed").await;
    assert!(!failed.is_empty());
    env.teardown().await;
}

pub async fn scaled_up_and_down_mid_swap_ends_with_every_pod_on_the_new_revision() {
    let Some(mut env) = setup("hotswap-scale").await else {
        return;
    };
    let name = "swapscale";
    let (_, api, before) = start(&mut env, name, 4).await;
    env.patch(name, &containers_patch(swappable(&image_v2())))
        .await;
    swap_under_way(&mut env, name).await;
    // Up to 6 mid-swap (new pods start on the new revision), then down to 3.
    env.patch(name, &json!({"spec": {"replicas": 6}})).await;
    env.wait_until(name, "6 replicas", |z| {
        z.status.as_ref().is_some_and(|s| s.replicas == 6)
    })
    .await;
    let generation = env.patch(name, &json!({"spec": {"replicas": 3}})).await;
    let done = env
        .wait_until(name, "Healthy at 3 replicas", |z| healthy(z, generation))
        .await;
    env.wait_for_pod_count(name, 3).await;
    let update = done.status.and_then(|s| s.update_revision).unwrap();
    let after = pods(&api, name).await;
    for (pod, (uid, rev, _, _)) in &after {
        assert_eq!(rev, &update, "{pod} runs the new revision");
        if let Some(old) = before.get(pod) {
            assert_eq!(uid, &old.0, "{pod} kept its UID");
        }
    }
    env.teardown().await;
}

pub async fn hot_swaps_keep_the_bounds_while_the_controller_is_killed_at_random_moments() {
    let Some(mut env) = setup("hotswap-chaos").await else {
        return;
    };
    let name = "swapchaos";
    let replicas = 6;
    let (_, api, before) = start(&mut env, name, replicas).await;
    let bounds = crate::pods::Bounds::new(replicas, &IntOrString::Int(0), &IntOrString::Int(1));
    // There, back (through parking) and there again.
    let patches = [image_v2(), image_v1(), image_v2()].map(|i| containers_patch(swappable(&i)));
    let kills = crate::chaos::EVERY_HALF_TO_THREE_SECONDS;
    env.roll_each_with_kills(name, bounds, patches, healthy, kills)
        .await;
    let after = pods(&api, name).await;
    assert_eq!(
        after.iter().map(|(p, s)| (p, &s.0)).collect::<Vec<_>>(),
        before.iter().map(|(p, s)| (p, &s.0)).collect::<Vec<_>>(),
        "the same pods, swapped in place"
    );
    env.teardown().await;
}
