//! `kubectl zdr status|pause|resume|history`: read and drive a rollout in the cluster of the
//! current kubeconfig context.

use std::fmt::Write as _;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::crd::{REVISION_LABEL, ZeroDowntimeRollout};

/// The plugin's field manager: pause and resume are a person's spec changes, not the controller's.
pub const PLUGIN_FIELD_MANAGER: &str = "kubectl-zdr";

/// A rollout's status as the `status` command prints it.
pub fn render_status(z: &ZeroDowntimeRollout) -> String {
    let st = z.status.clone().unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "Name:        {}", z.name_any());
    let _ = writeln!(
        out,
        "Phase:       {}",
        st.phase.map(|p| p.as_str()).unwrap_or("Unknown")
    );
    let _ = writeln!(out, "Message:     {}", st.message.unwrap_or_default());
    let _ = writeln!(
        out,
        "Replicas:    desired {}, current {}, updated {}, ready {}, available {}",
        z.spec.replicas, st.replicas, st.updated_replicas, st.ready_replicas, st.available_replicas
    );
    let _ = writeln!(
        out,
        "Revisions:   stable {}, update {}",
        st.stable_revision.as_deref().unwrap_or("-"),
        st.update_revision.as_deref().unwrap_or("-")
    );
    if z.spec.paused {
        let _ = writeln!(
            out,
            "Paused:      yes (kubectl zdr resume {})",
            z.name_any()
        );
    }
    let _ = writeln!(out, "Conditions:");
    for c in &st.conditions {
        let _ = writeln!(
            out,
            "  {:<12} {:<7} {:<26} {}",
            c.type_, c.status, c.reason, c.message
        );
    }
    out
}

/// Prints the status, once or on every change.
pub async fn status(client: Client, ns: &str, name: &str, watch: bool) -> Result<(), kube::Error> {
    let api: Api<ZeroDowntimeRollout> = Api::namespaced(client, ns);
    if !watch {
        print!("{}", render_status(&api.get(name).await?));
        return Ok(());
    }
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, cfg)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(z) = stream.next().await {
        match z {
            Ok(z) => println!("{}", render_status(&z)),
            Err(e) => eprintln!("watch error: {e}"),
        }
    }
    Ok(())
}

/// Sets `spec.paused`.
pub async fn set_paused(
    client: Client,
    ns: &str,
    name: &str,
    paused: bool,
) -> Result<(), kube::Error> {
    let api: Api<ZeroDowntimeRollout> = Api::namespaced(client, ns);
    let pp = PatchParams {
        field_manager: Some(PLUGIN_FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(
        name,
        &pp,
        &Patch::Merge(json!({"spec": {"paused": paused}})),
    )
    .await?;
    println!("{name} {}", if paused { "paused" } else { "resumed" });
    Ok(())
}

/// Lists the rollout's revisions, oldest first, with the image of each container.
pub async fn history(client: Client, ns: &str, name: &str) -> Result<(), kube::Error> {
    let zdrs: Api<ZeroDowntimeRollout> = Api::namespaced(client.clone(), ns);
    let z = zdrs.get(name).await?;
    let uid = z.uid();
    let revs: Api<ControllerRevision> = Api::namespaced(client, ns);
    let mut owned: Vec<ControllerRevision> = revs
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| {
            r.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .collect();
    owned.sort_by_key(|r| r.revision);
    println!("{:<9} {:<12} IMAGES", "REVISION", "HASH");
    for r in owned {
        let images = crate::controller::revisions::template_of(&r)
            .and_then(|t| t.spec)
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| format!("{}={}", c.name, c.image.clone().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let hash = r.labels().get(REVISION_LABEL).cloned().unwrap_or_default();
        println!("{:<9} {:<12} {images}", r.revision, hash);
    }
    Ok(())
}
