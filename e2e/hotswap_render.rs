//! e2e: the pods of examples/hotswap.yaml as the controller renders them (the zdr-agent native
//! sidecar, two slots, the shared emptyDir, the downward-API environment) are admitted by a real
//! API server under the `restricted` Pod Security Standard, and turn Ready: the rollout becomes
//! Healthy with every pod carrying the layout.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use zdr::contract::pod::{
    ACTIVE_SLOT_ANNOTATION, AGENT_CONTAINER, GENERATION_ANNOTATION, SLOT_B_CONTAINER, Slot, VOLUME,
};
use zdr::controller::context::DEFAULT_AGENT_IMAGE;
use zdr::controller::pods::build_pod;
use zdr::crd::ZeroDowntimeRollout;
use zdr::hotswap::AgentImage;

use crate::cluster::{MANAGER, healthy, setup};

/// The rollout of examples/hotswap.yaml, in namespace `ns`.
fn example(ns: &str) -> ZeroDowntimeRollout {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hotswap.yaml");
    let text = std::fs::read_to_string(path).expect("examples/hotswap.yaml");
    let mut doc: Value = serde_saphyr::from_str(&text).expect("YAML example");
    doc["metadata"]["namespace"] = json!(ns);
    serde_json::from_value(doc).expect("a ZeroDowntimeRollout")
}

pub async fn hot_swap_pods_are_admitted_under_restricted_and_turn_ready() {
    let Some(mut env) = setup("hotswap-render").await else {
        return;
    };
    // The rendered pod must pass the strictest Pod Security Standard, as the chart's namespace
    // may enforce it.
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let label = json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}});
    namespaces
        .patch(&env.ns, &PatchParams::apply(MANAGER), &Patch::Merge(&label))
        .await
        .expect("label the namespace restricted");

    // A server-side dry run of the rendered pod first: a refusal is named here, not only in
    // the controller's log.
    let mut zdr = example(&env.ns);
    zdr.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
    let agent = AgentImage::new(DEFAULT_AGENT_IMAGE);
    let pod = build_pod(
        &zdr,
        &zdr.spec.template,
        "dryrun",
        "api-dryrun".into(),
        &agent,
    )
    .expect("the example renders");
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    if let Err(e) = pods.create(&dry, &pod).await {
        panic!("the API server refuses the rendered hot-swap pod: {e}");
    }

    zdr.metadata.uid = None;
    let name = zdr.name_any();
    let generation = env.create(&zdr).await;
    let done = env
        .wait_until(&name, "Healthy with rendered pods", |z| {
            healthy(z, generation)
        })
        .await;
    let revision = done
        .status
        .and_then(|s| s.update_revision)
        .expect("a Healthy rollout has an updateRevision");

    let list = pods
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .expect("list pods");
    assert_eq!(list.items.len(), zdr.spec.replicas as usize);
    for p in &list.items {
        check_layout(p, &revision);
    }
    env.teardown().await;
}

/// The pod as the API server stored it has the layout of docs/hotswap.md and is Ready.
fn check_layout(p: &Pod, revision: &str) {
    let name = p.name_any();
    let spec = p.spec.as_ref().expect("a pod spec");
    let sidecar = spec
        .init_containers
        .iter()
        .flatten()
        .last()
        .unwrap_or_else(|| panic!("{name}: no init container"));
    assert_eq!(sidecar.name, AGENT_CONTAINER, "{name}");
    assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"), "{name}");
    assert_eq!(
        sidecar.image.as_deref(),
        Some(DEFAULT_AGENT_IMAGE),
        "{name}"
    );
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["app", SLOT_B_CONTAINER], "{name}");
    assert!(
        spec.volumes
            .iter()
            .flatten()
            .any(|v| v.name == VOLUME && v.empty_dir.is_some()),
        "{name}: the shared emptyDir"
    );
    let a = p.annotations();
    assert_eq!(a.get(ACTIVE_SLOT_ANNOTATION).map(String::as_str), Some("a"));
    assert_eq!(a.get(GENERATION_ANNOTATION).map(String::as_str), Some("0"));
    assert_eq!(
        a.get(Slot::A.revision_annotation()).map(String::as_str),
        Some(revision)
    );
    assert_eq!(
        p.labels().get("zdr.dev/revision").map(String::as_str),
        Some(revision)
    );
    let ready = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    assert!(ready, "{name} is Ready");
}
