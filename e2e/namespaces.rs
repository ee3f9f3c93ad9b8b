//! e2e: the chart's namespaced mode is enough. The controller runs as a ServiceAccount bound only
//! by the Role and RoleBinding the chart renders with `watchNamespaces` (see `rbac.rs`), with
//! `--namespace` set to its one watched namespace: a rollout there is created and updated to
//! completion, a rollout in a second namespace is never touched (no status, no pod), and the
//! controller logs no forbidden request.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::cluster::{
    NETEXEC, app_container, containers_patch, env_flag, healthy, image_v1, image_v2, rollout,
    setup_api_only,
};
use crate::rbac;

pub async fn namespaced_rbac_manages_its_namespace_and_leaves_others_alone() {
    if env_flag("ZDR_E2E_EXTERNAL_CONTROLLER") {
        let _ = std::io::stderr().write_all(
            b"\n*** e2e namespaces: SKIPPED: ZDR_E2E_EXTERNAL_CONTROLLER=1: the controller \
              already running in the cluster watches every namespace; unset it to let the test \
              start its own namespaced one ***\n\n",
        );
        return;
    }
    let Some(mut watched) = setup_api_only("ns-watched").await else {
        return;
    };
    let Some(mut other) = setup_api_only("ns-other").await else {
        return;
    };
    let kubeconfig =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.kubeconfig", watched.ns));
    let user = rbac::install_namespaced(&watched.client, &[watched.ns.as_str()], &kubeconfig)
        .await
        .unwrap_or_else(|e| panic!("applying the chart's namespaced RBAC: {e}"));
    let _ = writeln!(
        std::io::stderr(),
        "e2e: controller of {} runs as {user}, bound only in that namespace",
        watched.ns
    );
    watched.start_controller_as(kubeconfig);

    // Not watched: created first, so that it exists while the controller works next door.
    let name = "web";
    other
        .create(&rollout(
            name,
            2,
            app_container(&image_v1(), NETEXEC),
            json!({}),
        ))
        .await;

    watched.create_healthy(name, 2, json!({})).await;
    let generation = watched
        .patch(name, &containers_patch(app_container(&image_v2(), NETEXEC)))
        .await;
    watched
        .wait_until(name, "Healthy at the update", |z| healthy(z, generation))
        .await;

    other
        .hold(name, Duration::from_secs(5), |pods, z| {
            if !pods.names().is_empty() {
                return Err(format!(
                    "pods appeared in an unwatched namespace: {:?}",
                    pods.names()
                ));
            }
            match z.and_then(|z| z.status.as_ref()) {
                Some(s) => Err(format!("the unwatched rollout got a status: {s:?}")),
                None => Ok(()),
            }
        })
        .await;

    let log = watched.controller_log().unwrap_or_default();
    let denied: Vec<&str> = log
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("forbidden"))
        .collect();
    assert!(
        denied.is_empty(),
        "the controller was refused requests with the namespaced RBAC:\n{}",
        denied.join("\n")
    );
    assert!(
        log.contains("controller started"),
        "the controller's log is not where it was expected:\n{log}"
    );
    other.teardown().await;
    watched.teardown().await;
}
