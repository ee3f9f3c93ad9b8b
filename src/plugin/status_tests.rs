//! Tests of `kubectl zdr status` rendering.

use serde_json::{Value, json};

use super::*;

fn rollout(strategy: Value, status: Value) -> ZeroDowntimeRollout {
    serde_json::from_value(json!({
        "apiVersion": "zdr.dev/v1alpha1", "kind": "ZeroDowntimeRollout",
        "metadata": {"name": "web"},
        "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}}, "strategy": strategy},
        "status": status,
    }))
    .unwrap()
}

fn canary() -> Value {
    json!({"canary": {"stableService": "web-stable", "canaryService": "web-canary",
        "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}},
        "steps": [
            {"setWeight": 10},
            {"setHeaderRoute": {"name": "beta", "match": [
                {"headerName": "X-Canary", "headerValue": {"exact": "always"}}]}},
            {"pause": {}},
            {"pause": {"duration": "2m"}},
            {"setWeight": 50}]}})
}

fn paused_at_2() -> Value {
    json!({"phase": "Paused", "stableRevision": "aaa", "updateRevision": "bbb",
        "currentStepIndex": 2, "canaryWeight": 10, "headerRoutes": ["beta"],
        "stepStartedAt": "2026-06-01T12:00:00Z",
        "services": {"stable": "aaa", "canary": "bbb"},
        "conditions": [{"type": "Paused", "status": "True", "reason": "AwaitingPromotion",
            "message": "step 2", "lastTransitionTime": "2026-06-01T12:00:00Z"}]})
}

#[test]
fn canary_steps_are_listed_with_the_current_one_marked() {
    let z = rollout(canary(), paused_at_2());
    let pods = [
        RevisionPods {
            revision: "aaa".into(),
            ready: 9,
            total: 9,
        },
        RevisionPods {
            revision: "bbb".into(),
            ready: 1,
            total: 2,
        },
    ];
    let out = render_status(&z, &pods);
    let lines: Vec<&str> = out.lines().collect();
    let at = lines.iter().position(|l| *l == "Steps:").expect(&out);
    assert_eq!(
        &lines[at + 1..at + 7],
        [
            "  ✓   0  set weight 10%",
            "  ✓   1  header route beta (X-Canary = \"always\")",
            "  ->  2  pause until promoted (since 2026-06-01T12:00:00Z)",
            "      3  pause 2m",
            "      4  set weight 50%",
            "      5  promotion: canary to every replica, stable Service switched to it, weight 0, header routes removed, old pods drained",
        ],
        "{out}"
    );
    assert!(
        out.contains("Weight:      10% to canary (Services: stable -> aaa, canary -> bbb)"),
        "{out}"
    );
    assert!(out.contains("Header routes: beta\n"), "{out}");
    assert!(
        out.contains("Pods:        bbb (update) 1/2 ready, aaa (stable) 9/9 ready"),
        "{out}"
    );
    assert!(
        out.contains("Strategy:    canary, stable Service web-stable, canary Service web-canary, HTTPRoute web"),
        "{out}"
    );
    assert!(
        out.contains("Next:        waiting for promotion: `kubectl zdr promote web`"),
        "{out}"
    );
}

#[test]
fn an_indefinite_pause_suggests_promote_even_before_the_condition() {
    let mut st = paused_at_2();
    st["conditions"] = json!([]);
    let out = render_status(&rollout(canary(), st), &[]);
    assert!(out.contains("kubectl zdr promote web"), "{out}");
    assert!(out.contains("Pods:        none"), "{out}");
}

#[test]
fn an_aborted_canary_suggests_retry() {
    let st = json!({"phase": "Aborted", "stableRevision": "aaa", "updateRevision": "bbb",
        "abortedRevision": "bbb", "currentStepIndex": 0, "canaryWeight": 0,
        "conditions": [{"type": "Aborted", "status": "True", "reason": "AnalysisFailed",
            "message": "error-rate failed", "lastTransitionTime": "2026-06-01T12:00:00Z"}]});
    let out = render_status(&rollout(canary(), st), &[]);
    assert!(
        out.contains("Steps (aborted: traffic back on stable):\n      0  set weight 10%"),
        "{out}"
    );
    assert!(
        out.contains(
            "Next:        revision bbb was aborted (AnalysisFailed): `kubectl zdr retry web` restarts it from step 0"
        ),
        "{out}"
    );
    assert!(out.contains("Header routes: none"), "{out}");
}

#[test]
fn a_completed_canary_ticks_every_step_and_the_promotion() {
    let st = json!({"phase": "Healthy", "stableRevision": "bbb", "updateRevision": "bbb",
        "currentStepIndex": 5, "canaryWeight": 0});
    let out = render_status(&rollout(canary(), st), &[]);
    let ticked = out.lines().filter(|l| l.starts_with("  ✓ ")).count();
    assert_eq!(ticked, 6, "{out}");
    assert!(
        !out.lines().any(|l| l.starts_with("  -> ")) && !out.contains("Next:"),
        "{out}"
    );
}

#[test]
fn a_promoting_canary_marks_the_promotion() {
    let st = json!({"phase": "Progressing", "stableRevision": "aaa", "updateRevision": "bbb",
        "currentStepIndex": 5, "canaryWeight": 50});
    let out = render_status(&rollout(canary(), st), &[]);
    assert!(out.contains("  ->  5  promotion:"), "{out}");
    assert!(out.contains("  ✓   4  set weight 50%"), "{out}");
}

#[test]
fn timed_pauses_and_inconclusive_analysis_say_what_to_do() {
    let mut st = paused_at_2();
    st["currentStepIndex"] = json!(3);
    st["conditions"][0]["reason"] = json!("CanaryPauseStep");
    let out = render_status(&rollout(canary(), st.clone()), &[]);
    assert!(
        out.contains(
            "Next:        timed pause, continues by itself; `kubectl zdr promote web` ends it now"
        ),
        "{out}"
    );
    st["conditions"][0]["reason"] = json!("AnalysisInconclusive");
    let out = render_status(&rollout(canary(), st), &[]);
    assert!(out.contains("`kubectl zdr resume web`"), "{out}");
}

#[test]
fn pods_are_grouped_by_revision() {
    let pod = |rev: Option<&str>, ready: &str| -> Pod {
        let labels = rev.map(|r| json!({REVISION_LABEL: r})).unwrap_or(json!({}));
        serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }))
        .unwrap()
    };
    let pods = [
        pod(Some("b"), "True"),
        pod(Some("a"), "False"),
        pod(Some("b"), "False"),
        pod(None, "True"),
    ];
    let got = revision_pods(&pods);
    let rp = |r: &str, ready, total| RevisionPods {
        revision: r.into(),
        ready,
        total,
    };
    assert_eq!(got, [rp("-", 1, 1), rp("a", 0, 1), rp("b", 1, 2)]);
}

#[test]
fn status_shows_the_last_measurements() {
    let z = rollout(
        json!({}),
        json!({"phase": "Aborted", "analysis": {
        "revision": "abc", "phase": "Failed", "message": "metric error-rate failed",
        "startedAt": "2026-06-01T12:00:00Z",
        "metrics": [{"name": "error-rate", "phase": "Failed", "count": 1, "failed": 1,
            "measurements": [{"phase": "Failed", "value": "[0.2]",
                "startedAt": "2026-06-01T12:00:00Z", "finishedAt": "2026-06-01T12:00:01Z",
                "query": "sum(x{r=\"abc\"})", "message": "successCondition does not hold"}]}]}}),
    );
    let out = render_status(&z, &[]);
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
    assert!(!out.contains("Steps") && !out.contains("Weight:"), "{out}");
}

#[test]
fn status_reports_draining_pods() {
    let mut z = rollout(
        json!({}),
        json!({"phase": "Healthy", "replicas": 4, "updatedReplicas": 4, "readyReplicas": 4,
               "availableReplicas": 4, "terminatingReplicas": 2}),
    );
    z.spec.replicas = 4;
    let out = render_status(&z, &[]);
    assert!(
        out.contains("desired 4, current 4, updated 4, ready 4, available 4, draining 2"),
        "{out}"
    );
}

#[test]
fn a_blocked_rollout_says_what_holds_it() {
    let msg = "pod web-b-x cannot be scheduled: 0/2 nodes are available: 2 Too many pods.";
    let blocked = |status: &str| {
        json!({"phase": "Progressing", "message": format!("wave 1/1; blocked: {msg}"),
            "conditions": [{"type": "Blocked", "status": status, "reason": "PodUnschedulable",
                "message": msg, "lastTransitionTime": "2026-06-01T12:00:00Z"}]})
    };
    let out = render_status(&rollout(json!({}), blocked("True")), &[]);
    let line = out
        .lines()
        .find(|l| l.starts_with("Blocked:"))
        .unwrap_or_default();
    assert_eq!(
        line,
        format!("Blocked:     PodUnschedulable: {msg}"),
        "{out}"
    );
    let out = render_status(&rollout(json!({}), blocked("False")), &[]);
    assert!(!out.contains("Blocked: "), "{out}");
}

#[test]
fn a_hot_swap_in_progress_shows_its_counts_and_the_pods_swapping_or_failed() {
    let z = rollout(
        json!({"rolling": {"maxUnavailable": 1}, "hotSwap": {"container": "app"}}),
        json!({"phase": "Progressing", "stableRevision": "aaa", "updateRevision": "bbb",
            "hotSwap": {"revision": "bbb", "pending": 6, "swapping": 1, "swapped": 2, "failed": 1,
                "maxUnreadyMilliseconds": 1250,
                "pods": [
                    {"name": "web-x", "state": "Failed", "message": "the new container is in ImagePullBackOff"},
                    {"name": "web-y", "state": "Swapping", "message": "slot b restarting since 2026-06-01T12:00:00Z"}]},
            "conditions": [{"type": "HotSwap", "status": "True", "reason": "InPlace",
                "message": "swapping container app in place to web:2: 2 swapped, 1 swapping, 6 pending, 1 failed",
                "lastTransitionTime": "2026-06-01T12:00:00Z"}]}),
    );
    let out = render_status(&z, &[]);
    assert!(
        out.contains("Hot swap:    InPlace: swapping container app in place to web:2: 2 swapped, 1 swapping, 6 pending, 1 failed\n             longest out of endpoints: 1.2s\n  web-x                    Failed    the new container is in ImagePullBackOff\n  web-y                    Swapping  slot b restarting since 2026-06-01T12:00:00Z\n"),
        "{out}"
    );
    // Without the condition (no hotSwap), nothing.
    let plain = rollout(json!({}), json!({"phase": "Healthy"}));
    assert!(!render_status(&plain, &[]).contains("Hot swap:"));
}
