//! `kubectl zdr promote|retry|abort|pause|resume`: a person's requests to the controller.
//! Promote, retry and abort write annotations only; pause and resume write `spec.paused`. What
//! to write, or why to refuse, is decided by pure functions over the rollout read first.

use kube::api::Patch;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use super::{describe, plugin_params};
use crate::crd::{
    ABORT_ANNOTATION, PROMOTE_ANNOTATION, Phase, RESUME_ANALYSIS_ANNOTATION, RETRY_ANNOTATION,
    ZeroDowntimeRollout,
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

/// A retry token: the time, RFC 3339 with nanoseconds, so every retry is a new value.
pub fn retry_token(now: jiff::Timestamp) -> String {
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

/// Moves a canary past its current step, or with `full` past all of them.
pub async fn promote(client: Client, ns: &str, name: &str, full: bool) -> Result<(), String> {
    let api: Api<ZeroDowntimeRollout> = Api::namespaced(client, ns);
    let z = api.get(name).await.map_err(|e| super::api_error(&e, ns))?;
    let req = promote_request(&z, full)?;
    api.patch(
        name,
        &plugin_params(),
        &Patch::Merge(promote_patch(&req.value)),
    )
    .await
    .map_err(|e| super::api_error(&e, ns))?;
    println!("{}", req.done);
    Ok(())
}

/// Restarts an aborted update (a canary from step 0).
pub async fn retry(client: Client, ns: &str, name: &str) -> Result<(), String> {
    let api: Api<ZeroDowntimeRollout> = Api::namespaced(client, ns);
    let z = api.get(name).await.map_err(|e| super::api_error(&e, ns))?;
    let done = retry_request(&z)?;
    let token = retry_token(jiff::Timestamp::now());
    api.patch(name, &plugin_params(), &Patch::Merge(retry_patch(&token)))
        .await
        .map_err(|e| super::api_error(&e, ns))?;
    println!("{done}");
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
    let z = api.get(name).await.map_err(|e| super::api_error(&e, ns))?;
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
    .map_err(|e| super::api_error(&e, ns))?;
    println!("{name}: aborting revision {update}, rolling back to {stable}");
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
    api.patch(
        name,
        &plugin_params(),
        &Patch::Merge(json!({"spec": {"paused": paused}})),
    )
    .await?;
    println!("{name} {}", if paused { "paused" } else { "resumed" });
    Ok(())
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
        assert_eq!(retry_token(t), "2026-06-01T12:00:00.000000000Z");
        assert_eq!(
            retry_patch("t1"),
            json!({"metadata": {"annotations": {
                "zdr.dev/retry": "t1", "zdr.dev/abort": null, "zdr.dev/promote": null}}})
        );
    }
}
