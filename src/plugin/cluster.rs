//! `kubectl zdr status|pause|resume|history`: read and drive a rollout in the cluster of the
//! current kubeconfig context.

use std::fmt::Write as _;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::crd::{
    ABORT_ANNOTATION, AnalysisStatus, RESUME_ANALYSIS_ANNOTATION, REVISION_LABEL,
    ZeroDowntimeRollout,
};

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
        "Replicas:    desired {}, current {}, updated {}, ready {}, available {}, draining {}",
        z.spec.replicas,
        st.replicas,
        st.updated_replicas,
        st.ready_replicas,
        st.available_replicas,
        st.terminating_replicas
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
    if let Some(a) = &st.analysis {
        render_analysis(&mut out, a);
    }
    out
}

/// The analysis section: the run, then each metric's counters and last measurements.
fn render_analysis(out: &mut String, a: &AnalysisStatus) {
    let _ = writeln!(
        out,
        "Analysis:    {} (revision {}): {}",
        a.phase.as_str(),
        a.revision,
        a.message.as_deref().unwrap_or_default()
    );
    for m in &a.metrics {
        let _ = writeln!(
            out,
            "  {} {}: {} measured, {} successful, {} failed, {} inconclusive, {} errors ({} in a row)",
            m.name,
            m.phase.as_str(),
            m.count,
            m.successful,
            m.failed,
            m.inconclusive,
            m.error,
            m.consecutive_error
        );
        for x in &m.measurements {
            let _ = writeln!(
                out,
                "    {}  {:<12} {:<24} {}",
                x.finished_at.0.strftime("%Y-%m-%dT%H:%M:%SZ"),
                x.phase.as_str(),
                x.value.as_deref().unwrap_or("-"),
                x.message.as_deref().unwrap_or_default()
            );
        }
        if let Some(last) = m.measurements.last() {
            let _ = writeln!(out, "    query: {}", last.query.replace('\n', " "));
        }
    }
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

/// Resumes: clears `spec.paused` and sets `zdr.dev/resume-analysis` to a new value, which
/// resumes an inconclusive analysis.
pub async fn resume(client: Client, ns: &str, name: &str) -> Result<(), kube::Error> {
    let api: Api<ZeroDowntimeRollout> = Api::namespaced(client, ns);
    let token = jiff::Timestamp::now().to_string();
    api.patch(
        name,
        &plugin_params(),
        &Patch::Merge(json!({
            "metadata": {"annotations": {RESUME_ANALYSIS_ANNOTATION: token}},
            "spec": {"paused": false},
        })),
    )
    .await?;
    println!("{name} resumed");
    Ok(())
}

/// Aborts the update in progress: sets `zdr.dev/abort` to the update revision; the controller
/// rolls back to the stable revision. Applying a new template starts a new update.
pub async fn abort(client: Client, ns: &str, name: &str) -> Result<(), String> {
    let api: Api<ZeroDowntimeRollout> = Api::namespaced(client, ns);
    let z = api.get(name).await.map_err(|e| e.to_string())?;
    let st = z.status.unwrap_or_default();
    let (Some(update), Some(stable)) = (st.update_revision, st.stable_revision) else {
        return Err(format!(
            "{name} has no update in progress over a stable revision"
        ));
    };
    if update == stable {
        return Err(format!(
            "{name} has no update in progress: revision {update} is stable"
        ));
    }
    api.patch(
        name,
        &plugin_params(),
        &Patch::Merge(json!({"metadata": {"annotations": {ABORT_ANNOTATION: update}}})),
    )
    .await
    .map_err(|e| e.to_string())?;
    println!("{name}: aborting revision {update}, rolling back to {stable}");
    Ok(())
}

fn plugin_params() -> PatchParams {
    PatchParams {
        field_manager: Some(PLUGIN_FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
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
    let mut z = zdrs.get(name).await.map_err(|e| e.to_string())?;
    let revs = owned_revisions(client, ns, &z)
        .await
        .map_err(|e| e.to_string())?;
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
        .map_err(|e| e.to_string())?;
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
    fn status_shows_the_last_measurements() {
        let z: ZeroDowntimeRollout = serde_json::from_value(json!({
            "apiVersion": "zdr.dev/v1alpha1", "kind": "ZeroDowntimeRollout",
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}}},
            "status": {"phase": "Aborted", "analysis": {
                "revision": "abc", "phase": "Failed", "message": "metric error-rate failed",
                "startedAt": "2026-06-01T12:00:00Z",
                "metrics": [{"name": "error-rate", "phase": "Failed", "count": 1, "failed": 1,
                    "measurements": [{"phase": "Failed", "value": "[0.2]",
                        "startedAt": "2026-06-01T12:00:00Z", "finishedAt": "2026-06-01T12:00:01Z",
                        "query": "sum(x{r=\"abc\"})", "message": "successCondition does not hold"}]}]}},
        }))
        .unwrap();
        let out = render_status(&z);
        assert!(out.contains("Analysis:    Failed (revision abc)"), "{out}");
        assert!(
            out.contains("error-rate Failed: 1 measured, 0 successful, 1 failed"),
            "{out}"
        );
        assert!(
            out.contains("2026-06-01T12:00:01Z  Failed       [0.2]"),
            "{out}"
        );
        assert!(out.contains("query: sum(x{r=\"abc\"})"), "{out}");
    }

    #[test]
    fn status_reports_draining_pods() {
        let z: ZeroDowntimeRollout = serde_json::from_value(json!({
            "apiVersion": "zdr.dev/v1alpha1", "kind": "ZeroDowntimeRollout",
            "metadata": {"name": "web"},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}}},
            "status": {"phase": "Healthy", "replicas": 4, "updatedReplicas": 4, "readyReplicas": 4,
                       "availableReplicas": 4, "terminatingReplicas": 2},
        }))
        .unwrap();
        let out = render_status(&z);
        assert!(
            out.contains("desired 4, current 4, updated 4, ready 4, available 4, draining 2"),
            "{out}"
        );
    }

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
