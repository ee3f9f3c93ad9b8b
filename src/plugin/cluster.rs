//! `kubectl zdr status|history|undo`: read a rollout and its pods in the cluster of the current
//! kubeconfig context, and put an earlier template back. Rendering lives in `status`, the
//! annotation and pause commands in `actions`.

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

pub use super::PLUGIN_FIELD_MANAGER;
use super::status::{RevisionPods, render_status, revision_pods};
use crate::crd::{REVISION_LABEL, ZeroDowntimeRollout};

/// Pods of `z` per revision, listed by its `status.selector` (none before the controller set it).
async fn pods_of(client: Client, ns: &str, z: &ZeroDowntimeRollout) -> Vec<RevisionPods> {
    let Some(selector) = z.status.as_ref().and_then(|s| s.selector.clone()) else {
        return Vec::new();
    };
    let pods: Api<Pod> = Api::namespaced(client, ns);
    match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => revision_pods(&list.items),
        Err(e) => {
            eprintln!("cannot list pods ({selector}): {e}");
            Vec::new()
        }
    }
}

/// Prints the status with the pods per revision, once or on every change of the rollout.
pub async fn status(client: Client, ns: &str, name: &str, watch: bool) -> Result<(), kube::Error> {
    let api: Api<ZeroDowntimeRollout> = Api::namespaced(client.clone(), ns);
    if !watch {
        let z = api.get(name).await?;
        let pods = pods_of(client, ns, &z).await;
        print!("{}", render_status(&z, &pods));
        return Ok(());
    }
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, cfg)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(z) = stream.next().await {
        match z {
            Ok(z) => {
                let pods = pods_of(client.clone(), ns, &z).await;
                println!("{}", render_status(&z, &pods));
            }
            Err(e) => eprintln!("watch error: {e}"),
        }
    }
    Ok(())
}

/// Which revision `undo` goes back to: `to` if given, else the newest one older than the
/// revision the rollout runs now. Revisions are (number, hash) pairs.
pub fn undo_target(
    revisions: &[(i64, String)],
    current: &str,
    to: Option<i64>,
) -> Result<String, String> {
    if let Some(n) = to {
        return revisions
            .iter()
            .find(|(num, _)| *num == n)
            .map(|(_, h)| h.clone())
            .ok_or_else(|| format!("no revision {n} in the history"));
    }
    let current_number = revisions
        .iter()
        .find(|(_, h)| h == current)
        .map(|(n, _)| *n)
        .unwrap_or(i64::MAX);
    revisions
        .iter()
        .filter(|(n, h)| *n < current_number && h != current)
        .max_by_key(|(n, _)| *n)
        .map(|(_, h)| h.clone())
        .ok_or_else(|| "no earlier revision to go back to".to_string())
}

/// Puts a previous revision's template back into `spec.template` (a rollback: the controller
/// re-uses that revision and rolls it out at once).
pub async fn undo(client: Client, ns: &str, name: &str, to: Option<i64>) -> Result<(), String> {
    let zdrs: Api<ZeroDowntimeRollout> = Api::namespaced(client.clone(), ns);
    let mut z = zdrs.get(name).await.map_err(|e| super::api_error(&e, ns))?;
    let revs = owned_revisions(client, ns, &z)
        .await
        .map_err(|e| super::api_error(&e, ns))?;
    let current = crate::revision::template_hash(&z.spec.template);
    let pairs: Vec<(i64, String)> = revs
        .iter()
        .filter_map(|r| Some((r.revision, r.labels().get(REVISION_LABEL)?.clone())))
        .collect();
    let target = undo_target(&pairs, &current, to)?;
    let rev = revs
        .iter()
        .find(|r| r.labels().get(REVISION_LABEL) == Some(&target))
        .ok_or("revision vanished")?;
    z.spec.template = crate::revision::template_of(rev)
        .ok_or_else(|| format!("revision {target} holds no pod template"))?;
    let pp = kube::api::PostParams {
        field_manager: Some(PLUGIN_FIELD_MANAGER.into()),
        ..Default::default()
    };
    // replace() carries the resourceVersion read above: a concurrent edit makes it fail.
    zdrs.replace(name, &pp, &z)
        .await
        .map_err(|e| super::api_error(&e, ns))?;
    println!("{name} rolled back to revision {target}");
    Ok(())
}

async fn owned_revisions(
    client: Client,
    ns: &str,
    z: &ZeroDowntimeRollout,
) -> Result<Vec<ControllerRevision>, kube::Error> {
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
    Ok(owned)
}

/// Lists the rollout's revisions, oldest first, with the image of each container.
pub async fn history(client: Client, ns: &str, name: &str) -> Result<(), kube::Error> {
    let zdrs: Api<ZeroDowntimeRollout> = Api::namespaced(client.clone(), ns);
    let z = zdrs.get(name).await?;
    let owned = owned_revisions(client, ns, &z).await?;
    println!("{:<9} {:<12} IMAGES", "REVISION", "HASH");
    for r in owned {
        let images = crate::revision::template_of(&r)
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

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn undo_goes_to_the_previous_revision_or_the_one_asked_for() {
        let revs = vec![
            (1, "a".to_string()),
            (2, "b".to_string()),
            (3, "c".to_string()),
        ];
        assert_eq!(undo_target(&revs, "c", None), Ok("b".into()));
        assert_eq!(undo_target(&revs, "b", None), Ok("a".into()));
        assert_eq!(undo_target(&revs, "c", Some(1)), Ok("a".into()));
        assert!(undo_target(&revs, "a", None).is_err());
        assert!(
            undo_target(&revs, "c", Some(9))
                .unwrap_err()
                .contains("no revision 9")
        );
    }
}
