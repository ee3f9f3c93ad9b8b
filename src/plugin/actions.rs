//! `kubectl zdr promote|retry|abort|pause|resume`: a person's requests to the controller.
//! Every action writes annotations only, never the spec, so that a GitOps tool (Argo CD) sees no
//! drift; the Argo CD actions in `charts/zdr/argocd` write the same annotations and values. What
//! to write, or why to refuse, is decided by pure functions over the rollout read first.

use kube::api::Patch;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use super::{describe, plugin_params};
use crate::crd::{
    ABORT_ANNOTATION, PAUSED_ANNOTATION, PROMOTE_ANNOTATION, PausedBy, Phase,
    RESUME_ANALYSIS_ANNOTATION, RETRY_ANNOTATION, ZeroDowntimeRollout, rollout_paused_by,
};
use crate::planner::canary::Step;

/// An annotation to set and what to tell the person once it is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The annotation's new value.
    pub value: String,
    /// One line for the person.
    pub done: String,
}

/// The update in progress: its revision and canary steps (none for a rolling update), or why
/// there is none.
struct Update {
    revision: String,
    steps: Vec<Step>,
    aborted: bool,
}

fn update_of(z: &ZeroDowntimeRollout, cmd: &str, canary_only: bool) -> Result<Update, String> {
    let name = z.name_any();
    if canary_only && z.spec.strategy.canary.is_none() {
        return Err(format!(
            "{name} is not a canary (no spec.strategy.canary): `kubectl zdr {cmd}` acts on canary steps"
        ));
    }
    let steps = crate::validate::validate(&z.spec)
        .map_err(|e| format!("{name}: the spec cannot be acted on: {e}"))?
        .canary
        .map(|c| c.steps)
        .unwrap_or_default();
    let st = z.status.clone().unwrap_or_default();
    let revision = match (st.update_revision, st.stable_revision) {
        (Some(u), Some(s)) if u != s => u,
        (Some(u), Some(_)) => {
            return Err(format!(
                "{name} has no update in progress: revision {u} is stable"
            ));
        }
        _ => {
            return Err(format!(
                "{name} has no update in progress over a stable revision"
            ));
        }
    };
    let aborted =
        st.phase == Some(Phase::Aborted) || st.aborted_revision.as_deref() == Some(&revision);
    Ok(Update {
        revision,
        steps,
        aborted,
    })
}

/// The `zdr.dev/promote` value that moves `z` past its current step (`full`: past every
/// remaining step and its analysis), or why it cannot be promoted.
pub fn promote_request(z: &ZeroDowntimeRollout, full: bool) -> Result<Request, String> {
    let name = z.name_any();
    let u = update_of(z, "promote", true)?;
    if u.aborted {
        return Err(format!(
            "{name}: revision {} was aborted, promoting it would not restart it: `kubectl zdr retry {name}` restarts it from step 0",
            u.revision
        ));
    }
    let n = u.steps.len();
    let at = z
        .status
        .as_ref()
        .and_then(|s| s.current_step_index)
        .unwrap_or(0)
        .max(0) as usize;
    if at >= n {
        return Err(format!(
            "{name}: revision {} is past all {n} steps and already being promoted",
            u.revision
        ));
    }
    if full {
        return Ok(Request {
            value: format!("{}/full", u.revision),
            done: format!(
                "full promotion of revision {} requested: {name} skips steps {at}-{} and their analysis",
                u.revision,
                n - 1
            ),
        });
    }
    Ok(Request {
        value: format!("{}/{at}", u.revision),
        done: format!(
            "promoted {name} past step {at} ({})",
            describe::step(&u.steps[at])
        ),
    })
}

/// The message once a retry of `z` is requested, or why it cannot be retried. A canary restarts
/// from step 0; a rolling update starts its waves again (the controller reads `zdr.dev/retry`
/// whatever the strategy).
pub fn retry_request(z: &ZeroDowntimeRollout) -> Result<String, String> {
    let name = z.name_any();
    let u = update_of(z, "retry", false)?;
    if !u.aborted {
        let phase = z
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .map_or("Unknown", Phase::as_str);
        return Err(format!(
            "{name}: revision {} is not aborted (phase {phase}): retry restarts an aborted update",
            u.revision
        ));
    }
    let from = if z.spec.strategy.canary.is_some() {
        "from step 0"
    } else {
        "from its first wave"
    };
    Ok(format!(
        "retry of revision {} requested: {name} restarts it {from}",
        u.revision
    ))
}

/// The value of an annotation whose every new value is a new request (`zdr.dev/retry`,
/// `zdr.dev/resume-analysis`, `zdr.dev/paused`): the time, RFC 3339 in UTC with nanoseconds.
/// The Argo CD actions write the same format (their clock has whole seconds: nanoseconds 0).
pub fn token(now: jiff::Timestamp) -> String {
    format!("{now:.9}")
}

/// The merge patch of a retry: the new token, and `zdr.dev/abort` and `zdr.dev/promote` removed
/// so that neither applies to the restarted update.
pub fn retry_patch(token: &str) -> Value {
    json!({"metadata": {"annotations": {
        RETRY_ANNOTATION: token,
        ABORT_ANNOTATION: null,
        PROMOTE_ANNOTATION: null,
    }}})
}

/// The merge patch of a promotion.
pub fn promote_patch(value: &str) -> Value {
    json!({"metadata": {"annotations": {PROMOTE_ANNOTATION: value}}})
}

/// The message once a pause of `z` is requested, or why it is refused: the `zdr.dev/paused`
/// annotation is already there.
pub fn pause_request(z: &ZeroDowntimeRollout) -> Result<String, String> {
    let name = z.name_any();
    let annotations = z.metadata.annotations.clone().unwrap_or_default();
    if let Some(since) = annotations.get(PAUSED_ANNOTATION) {
        return Err(format!(
            "{name} is already paused (annotation {PAUSED_ANNOTATION}={since}): `kubectl zdr resume {name}` resumes it"
        ));
    }
    let also = if z.spec.paused {
        "; spec.paused is true as well, which only a change of the manifest clears"
    } else {
        ""
    };
    Ok(format!(
        "{name} paused (annotation {PAUSED_ANNOTATION}; scaling still works){also}"
    ))
}

/// The merge patch of a pause.
pub fn pause_patch(token: &str) -> Value {
    json!({"metadata": {"annotations": {PAUSED_ANNOTATION: token}}})
}

/// The message once a resume of `z` is requested, or why it is refused: `spec.paused` is part
/// of the manifest (in Git, with a GitOps tool), so only a change there clears it.
pub fn resume_request(z: &ZeroDowntimeRollout) -> Result<String, String> {
    let name = z.name_any();
    if rollout_paused_by(z) == Some(PausedBy::Spec) {
        return Err(format!(
            "{name}: spec.paused is true; it belongs to the manifest: set it to false where the manifest comes from (Git) and apply it. `kubectl zdr resume` removes only the {PAUSED_ANNOTATION} annotation and resumes an inconclusive analysis"
        ));
    }
    Ok(format!("{name} resumed"))
}

/// The merge patch of a resume: `zdr.dev/paused` removed, and a new `zdr.dev/resume-analysis`
/// token, which resumes an inconclusive analysis.
pub fn resume_patch(token: &str) -> Value {
    json!({"metadata": {"annotations": {
        PAUSED_ANNOTATION: null,
        RESUME_ANALYSIS_ANNOTATION: token,
    }}})
}

/// The `zdr.dev/abort` value (the update revision) that aborts the update of `z`, or why there is
/// nothing to abort.
pub fn abort_request(z: &ZeroDowntimeRollout) -> Result<Request, String> {
    let name = z.name_any();
    let st = z.status.clone().unwrap_or_default();
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
    Ok(Request {
        done: format!("{name}: aborting revision {update}, rolling back to {stable}"),
        value: update,
    })
}

/// The merge patch of an abort.
pub fn abort_patch(value: &str) -> Value {
    json!({"metadata": {"annotations": {ABORT_ANNOTATION: value}}})
}

/// Reads rollout `name`, asks `request` for the merge patch to write and the line to print (or
/// why not), writes it and prints the line.
async fn act(
    client: Client,
    ns: &str,
    name: &str,
    request: impl FnOnce(&ZeroDowntimeRollout) -> Result<(Value, String), String>,
) -> Result<(), String> {
    let api: Api<ZeroDowntimeRollout> = Api::namespaced(client, ns);
    let z = api.get(name).await.map_err(|e| super::api_error(&e, ns))?;
    let (patch, done) = request(&z)?;
    api.patch(name, &plugin_params(), &Patch::Merge(patch))
        .await
        .map_err(|e| super::api_error(&e, ns))?;
    println!("{done}");
    Ok(())
}

/// Moves a canary past its current step, or with `full` past all of them.
pub async fn promote(client: Client, ns: &str, name: &str, full: bool) -> Result<(), String> {
    act(client, ns, name, |z| {
        promote_request(z, full).map(|r| (promote_patch(&r.value), r.done))
    })
    .await
}

/// Restarts an aborted update (a canary from step 0).
pub async fn retry(client: Client, ns: &str, name: &str) -> Result<(), String> {
    let t = token(jiff::Timestamp::now());
    act(client, ns, name, |z| {
        retry_request(z).map(|done| (retry_patch(&t), done))
    })
    .await
}

/// Pauses: sets the `zdr.dev/paused` annotation (not `spec.paused`, which a GitOps tool would
/// revert as drift).
pub async fn pause(client: Client, ns: &str, name: &str) -> Result<(), String> {
    let t = token(jiff::Timestamp::now());
    act(client, ns, name, |z| {
        pause_request(z).map(|done| (pause_patch(&t), done))
    })
    .await
}

/// Resumes: removes the `zdr.dev/paused` annotation and sets `zdr.dev/resume-analysis` to a new
/// value, which resumes an inconclusive analysis. Refuses while `spec.paused` is true.
pub async fn resume(client: Client, ns: &str, name: &str) -> Result<(), String> {
    let t = token(jiff::Timestamp::now());
    act(client, ns, name, |z| {
        resume_request(z).map(|done| (resume_patch(&t), done))
    })
    .await
}

/// Aborts the update in progress: sets `zdr.dev/abort` to the update revision; the controller
/// rolls back to the stable revision. Applying a new template starts a new update.
pub async fn abort(client: Client, ns: &str, name: &str) -> Result<(), String> {
    act(client, ns, name, |z| {
        abort_request(z).map(|r| (abort_patch(&r.value), r.done))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(strategy: Value, status: Value) -> ZeroDowntimeRollout {
        serde_json::from_value(json!({
            "apiVersion": "zdr.dev/v1alpha1", "kind": "ZeroDowntimeRollout",
            "metadata": {"name": "web"},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}}, "strategy": strategy},
            "status": status,
        }))
        .unwrap()
    }

    fn canary() -> Value {
        json!({"canary": {"stableService": "s", "canaryService": "c",
            "steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}]}})
    }

    fn at(step: i32) -> Value {
        json!({"phase": "Paused", "stableRevision": "aaa", "updateRevision": "abc",
               "currentStepIndex": step})
    }

    #[test]
    fn promote_names_the_revision_and_the_current_step() {
        let req = promote_request(&rollout(canary(), at(2)), false).unwrap();
        assert_eq!(req.value, "abc/2");
        assert_eq!(req.done, "promoted web past step 2 (set weight 50%)");
        let z = rollout(canary(), at(1));
        let req = promote_request(&z, false).unwrap();
        assert_eq!(req.value, "abc/1");
        assert_eq!(req.done, "promoted web past step 1 (pause until promoted)");
        let full = promote_request(&z, true).unwrap();
        assert_eq!(full.value, "abc/full");
        assert_eq!(
            full.done,
            "full promotion of revision abc requested: web skips steps 1-2 and their analysis"
        );
        assert_eq!(
            promote_patch(&full.value),
            json!({"metadata": {"annotations": {"zdr.dev/promote": "abc/full"}}})
        );
        // An analysis step without spec.analysis: the spec cannot be acted on.
        let mut bad = canary();
        bad["canary"]["steps"] = json!([{"analysis": {}}]);
        let e = promote_request(&rollout(bad, at(0)), false).unwrap_err();
        assert!(e.contains("the spec cannot be acted on"), "{e}");
    }

    #[test]
    fn promote_refuses_what_it_cannot_promote() {
        let steps = json!({"canary": {"stableService": "s", "canaryService": "c", "steps": [{"pause": {}}]}});
        let err = |strategy: Value, status: Value, full| {
            promote_request(&rollout(strategy, status), full).unwrap_err()
        };
        let e = err(json!({}), at(0), false);
        assert!(e.contains("web is not a canary"), "{e}");
        let e = err(
            steps.clone(),
            json!({"stableRevision": "abc", "updateRevision": "abc"}),
            false,
        );
        assert!(
            e.contains("no update in progress: revision abc is stable"),
            "{e}"
        );
        let e = err(steps.clone(), json!({}), true);
        assert!(e.contains("no update in progress"), "{e}");
        let aborted = json!({"phase": "Aborted", "stableRevision": "aaa",
            "updateRevision": "abc", "abortedRevision": "abc", "currentStepIndex": 0});
        let e = err(steps.clone(), aborted, true);
        assert!(e.contains("`kubectl zdr retry web`"), "{e}");
        let e = err(steps, at(1), false);
        assert!(e.contains("already being promoted"), "{e}");
    }

    #[test]
    fn retry_only_restarts_an_aborted_update() {
        let steps = json!({"canary": {"stableService": "s", "canaryService": "c", "steps": [{"pause": {}}]}});
        let e = retry_request(&rollout(steps.clone(), at(0))).unwrap_err();
        assert!(e.contains("is not aborted (phase Paused)"), "{e}");
        let e = retry_request(&rollout(
            steps.clone(),
            json!({"stableRevision": "abc",
            "updateRevision": "abc"}),
        ))
        .unwrap_err();
        assert!(e.contains("no update in progress"), "{e}");
        let aborted = json!({"phase": "Aborted", "stableRevision": "aaa",
            "updateRevision": "abc", "abortedRevision": "abc"});
        let done = retry_request(&rollout(steps, aborted.clone())).unwrap();
        assert_eq!(
            done,
            "retry of revision abc requested: web restarts it from step 0"
        );
        let done = retry_request(&rollout(json!({}), aborted)).unwrap();
        assert_eq!(
            done,
            "retry of revision abc requested: web restarts it from its first wave"
        );
    }

    #[test]
    fn retry_patch_sets_a_fresh_token_and_removes_abort_and_promote() {
        let t: jiff::Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
        assert_eq!(token(t), "2026-06-01T12:00:00.000000000Z");
        assert_eq!(
            retry_patch("t1"),
            json!({"metadata": {"annotations": {
                "zdr.dev/retry": "t1", "zdr.dev/abort": null, "zdr.dev/promote": null}}})
        );
    }

    #[test]
    fn pause_and_resume_write_the_annotation_never_the_spec() {
        let mut z = rollout(json!({}), at(0));
        assert_eq!(
            pause_request(&z).unwrap(),
            "web paused (annotation zdr.dev/paused; scaling still works)"
        );
        assert_eq!(
            pause_patch("t1"),
            json!({"metadata": {"annotations": {"zdr.dev/paused": "t1"}}})
        );
        assert_eq!(resume_request(&z).unwrap(), "web resumed");
        assert_eq!(
            resume_patch("t2"),
            json!({"metadata": {"annotations": {
                "zdr.dev/paused": null, "zdr.dev/resume-analysis": "t2"}}})
        );
        z.metadata.annotations = Some([(PAUSED_ANNOTATION.to_string(), "t1".to_string())].into());
        let e = pause_request(&z).unwrap_err();
        assert!(
            e.contains("already paused (annotation zdr.dev/paused=t1)"),
            "{e}"
        );
        assert_eq!(resume_request(&z).unwrap(), "web resumed");
        z.spec.paused = true;
        let e = resume_request(&z).unwrap_err();
        assert!(e.contains("spec.paused is true"), "{e}");
        assert!(e.contains("Git"), "{e}");
        z.metadata.annotations = None;
        assert!(
            pause_request(&z)
                .unwrap()
                .contains("spec.paused is true as well")
        );
    }

    #[test]
    fn abort_names_the_update_revision_or_refuses() {
        let req = abort_request(&rollout(json!({}), at(0))).unwrap();
        assert_eq!(req.value, "abc");
        assert_eq!(req.done, "web: aborting revision abc, rolling back to aaa");
        assert_eq!(
            abort_patch(&req.value),
            json!({"metadata": {"annotations": {"zdr.dev/abort": "abc"}}})
        );
        let stable = json!({"stableRevision": "abc", "updateRevision": "abc"});
        let e = abort_request(&rollout(json!({}), stable)).unwrap_err();
        assert!(e.contains("revision abc is stable"), "{e}");
        let e = abort_request(&rollout(json!({}), json!({}))).unwrap_err();
        assert!(
            e.contains("no update in progress over a stable revision"),
            "{e}"
        );
    }
}
