//! `kubectl zdr status` rendering: a rollout and its pods per revision as text. Pure: the caller
//! reads the cluster and passes what it found.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::describe;
use crate::crd::{
    AnalysisStatus, CanaryStrategy, HoldReason, Phase, REVISION_LABEL, ZeroDowntimeRollout,
    ZeroDowntimeRolloutStatus, condition,
};
use crate::planner::canary::Step;

/// Pods of one revision: how many exist and how many are Ready.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevisionPods {
    /// Revision hash (the pods' `zdr.dev/revision` label; `-` for pods without it).
    pub revision: String,
    /// Pods whose Ready condition is True.
    pub ready: i32,
    /// Pods of this revision, draining and terminating ones included.
    pub total: i32,
}

/// Groups pods by their `zdr.dev/revision` label, sorted by revision.
pub fn revision_pods(pods: &[Pod]) -> Vec<RevisionPods> {
    let mut out: Vec<RevisionPods> = Vec::new();
    for p in pods {
        let rev = p
            .labels()
            .get(REVISION_LABEL)
            .cloned()
            .unwrap_or("-".into());
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let i = match out.iter().position(|r| r.revision == rev) {
            Some(i) => i,
            None => {
                out.push(RevisionPods {
                    revision: rev,
                    ..RevisionPods::default()
                });
                out.len() - 1
            }
        };
        out[i].total += 1;
        out[i].ready += i32::from(ready);
    }
    out.sort_by(|a, b| a.revision.cmp(&b.revision));
    out
}

/// A rollout's status as the `status` command prints it, with its pods per revision.
pub fn render_status(z: &ZeroDowntimeRollout, pods: &[RevisionPods]) -> String {
    let st = z.status.clone().unwrap_or_default();
    let name = z.name_any();
    let mut out = String::new();
    let _ = writeln!(out, "Name:        {name}");
    let phase = st.phase.map(|p| p.as_str()).unwrap_or("Unknown");
    let _ = writeln!(out, "Phase:       {phase}");
    let _ = writeln!(
        out,
        "Message:     {}",
        st.message.as_deref().unwrap_or_default()
    );
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
    match crate::crd::rollout_paused_by(z) {
        Some(crate::crd::PausedBy::Spec) => {
            let _ = writeln!(
                out,
                "Paused:      yes (spec.paused: set it to false in the manifest)"
            );
        }
        Some(crate::crd::PausedBy::Annotation) => {
            let _ = writeln!(out, "Paused:      yes (kubectl zdr resume {name})");
        }
        None => {}
    }
    if let Some(c) = st
        .conditions
        .iter()
        .find(|c| c.type_ == condition::BLOCKED && c.status == "True")
    {
        let _ = writeln!(out, "Blocked:     {}: {}", c.reason, c.message);
    }
    let steps = match &z.spec.strategy.canary {
        Some(c) => render_canary(&mut out, z, c, &st),
        None => Vec::new(),
    };
    render_pods(&mut out, &st, pods);
    render_hot_swap(&mut out, &st);
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
    if let Some(next) = next_action(z, &st, &steps) {
        let _ = writeln!(out, "Next:        {next}");
    }
    out
}

/// Where an update stands, as the step list marks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    /// No update over a stable revision (done, or never started).
    Done,
    /// The update of this revision was aborted.
    Aborted,
    /// Running step `index` (the number of steps while promoting).
    At(usize),
}

fn progress(st: &ZeroDowntimeRolloutStatus) -> Progress {
    match (&st.update_revision, &st.stable_revision) {
        (Some(u), Some(s)) if u != s => {
            if is_aborted(st) {
                Progress::Aborted
            } else {
                Progress::At(st.current_step_index.unwrap_or(0).max(0) as usize)
            }
        }
        _ => Progress::Done,
    }
}

fn is_aborted(st: &ZeroDowntimeRolloutStatus) -> bool {
    st.phase == Some(Phase::Aborted)
        || (st.aborted_revision.is_some() && st.aborted_revision == st.update_revision)
}

/// The canary section: router, steps with the current one marked, weight, Services and header
/// routes. Returns the steps, for the next-action hint.
fn render_canary(
    out: &mut String,
    z: &ZeroDowntimeRollout,
    c: &CanaryStrategy,
    st: &ZeroDowntimeRolloutStatus,
) -> Vec<Step> {
    let router = match &c.traffic_routing {
        Some(t) if t.gateway_api.is_some() => t
            .gateway_api
            .as_ref()
            .map(|g| format!("HTTPRoute {}", g.http_route))
            .unwrap_or_default(),
        Some(t) => t
            .istio
            .as_ref()
            .map(|i| format!("VirtualService {}", i.virtual_service.name))
            .unwrap_or_default(),
        None => "no router: pod counts approximate the weight".into(),
    };
    let _ = writeln!(
        out,
        "Strategy:    canary, stable Service {}, canary Service {}, {router}",
        c.stable_service, c.canary_service
    );
    let steps = match crate::validate::validate(&z.spec) {
        Ok(v) => v.canary.map(|c| c.steps).unwrap_or_default(),
        Err(e) => {
            let _ = writeln!(out, "Steps:       cannot be read: {e}");
            Vec::new()
        }
    };
    if !steps.is_empty() {
        render_steps(out, &steps, st);
    }
    let services = st.services.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "Weight:      {}% to canary (Services: stable -> {}, canary -> {})",
        st.canary_weight.unwrap_or(0),
        services.stable.as_deref().unwrap_or("-"),
        services.canary.as_deref().unwrap_or("-")
    );
    let routes = if st.header_routes.is_empty() {
        "none".to_string()
    } else {
        st.header_routes.join(", ")
    };
    let _ = writeln!(out, "Header routes: {routes}");
    steps
}

/// The steps, done ones ticked and the current one marked, then the promotion.
fn render_steps(out: &mut String, steps: &[Step], st: &ZeroDowntimeRolloutStatus) {
    let at = progress(st);
    let title = if at == Progress::Aborted {
        "Steps (aborted: traffic back on stable):"
    } else {
        "Steps:"
    };
    let _ = writeln!(out, "{title}");
    let mark = |i: usize| match at {
        Progress::Done => "✓ ",
        Progress::Aborted => "  ",
        Progress::At(cur) if i < cur => "✓ ",
        Progress::At(cur) if i == cur => "->",
        Progress::At(_) => "  ",
    };
    let started = st
        .step_started_at
        .as_ref()
        .map(|t| format!(" (since {})", t.0.strftime("%Y-%m-%dT%H:%M:%SZ")))
        .unwrap_or_default();
    for (i, s) in steps.iter().enumerate() {
        let since = if at == Progress::At(i) {
            started.as_str()
        } else {
            ""
        };
        let _ = writeln!(out, "  {} {i:>2}  {}{since}", mark(i), describe::step(s));
    }
    let n = steps.len();
    let since = if matches!(at, Progress::At(i) if i >= n) {
        started.as_str()
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "  {} {n:>2}  promotion: canary to every replica, stable Service switched to it, weight 0, header routes removed, old pods drained{since}",
        mark(n)
    );
}

/// Pods per revision, the update revision first, then the stable one.
fn render_pods(out: &mut String, st: &ZeroDowntimeRolloutStatus, pods: &[RevisionPods]) {
    if pods.is_empty() {
        let _ = writeln!(out, "Pods:        none");
        return;
    }
    let update = st.update_revision.as_deref();
    let stable = st.stable_revision.as_deref();
    let role = |rev: &str| match (Some(rev) == update, Some(rev) == stable) {
        (true, true) => "update, stable",
        (true, false) => "update",
        (false, true) => "stable",
        (false, false) => "old",
    };
    let mut sorted: Vec<&RevisionPods> = pods.iter().collect();
    sorted.sort_by_key(|p| {
        (
            Some(p.revision.as_str()) != update,
            Some(p.revision.as_str()) != stable,
            p.revision.clone(),
        )
    });
    let parts: Vec<String> = sorted
        .iter()
        .map(|p| {
            format!(
                "{} ({}) {}/{} ready",
                p.revision,
                role(&p.revision),
                p.ready,
                p.total
            )
        })
        .collect();
    let _ = writeln!(out, "Pods:        {}", parts.join(", "));
}

/// The path updates take with `hotSwap` (the `HotSwap` condition), and the swap in progress:
/// counts, the longest time a pod was out of endpoints, and each pod swapping or failed.
fn render_hot_swap(out: &mut String, st: &ZeroDowntimeRolloutStatus) {
    let Some(c) = st
        .conditions
        .iter()
        .find(|c| c.type_ == crate::crd::hot_swap::TYPE)
    else {
        return;
    };
    let _ = writeln!(out, "Hot swap:    {}: {}", c.reason, c.message);
    let Some(h) = &st.hot_swap else {
        return;
    };
    if let Some(ms) = h.max_unready_milliseconds {
        let _ = writeln!(
            out,
            "             longest out of endpoints: {:.1}s",
            ms as f64 / 1000.0
        );
    }
    for p in &h.pods {
        let _ = writeln!(
            out,
            "  {:<24} {:<9} {}",
            p.name,
            format!("{:?}", p.state),
            p.message.as_deref().unwrap_or_default()
        );
    }
}

/// The reason of the Paused condition, when it is True.
fn paused_reason(st: &ZeroDowntimeRolloutStatus) -> Option<&str> {
    st.conditions
        .iter()
        .find(|c| c.type_ == condition::PAUSED && c.status == "True")
        .map(|c| c.reason.as_str())
}

/// What a person can do next, when the rollout waits for one.
fn next_action(
    z: &ZeroDowntimeRollout,
    st: &ZeroDowntimeRolloutStatus,
    steps: &[Step],
) -> Option<String> {
    let name = z.name_any();
    let canary = z.spec.strategy.canary.is_some();
    let at = progress(st);
    if at == Progress::Aborted {
        let update = st.update_revision.as_deref().unwrap_or("-");
        let why = st
            .conditions
            .iter()
            .find(|c| c.type_ == condition::ABORTED && c.status == "True")
            .map(|c| format!(" ({})", c.reason))
            .unwrap_or_default();
        let from = if canary { " from step 0" } else { "" };
        return Some(format!(
            "revision {update} was aborted{why}: `kubectl zdr retry {name}` restarts it{from}, or apply a new template"
        ));
    }
    let reason = paused_reason(st);
    let on_indefinite_pause =
        matches!(at, Progress::At(i) if matches!(steps.get(i), Some(Step::Pause(None))));
    if reason == Some(HoldReason::AwaitingPromotion.as_str())
        || (canary && on_indefinite_pause && st.phase == Some(Phase::Paused))
    {
        return Some(format!(
            "waiting for promotion: `kubectl zdr promote {name}` (`--full` skips the remaining steps)"
        ));
    }
    if reason == Some(HoldReason::AnalysisInconclusive.as_str()) {
        return Some(format!(
            "analysis inconclusive: `kubectl zdr resume {name}` measures again"
        ));
    }
    if reason == Some(HoldReason::CanaryPauseStep.as_str()) {
        return Some(format!(
            "timed pause, continues by itself; `kubectl zdr promote {name}` ends it now"
        ));
    }
    None
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

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
