//! The decision step of a reconcile, pure: from a [`Snapshot`] of the rollout and its pods, the
//! analysis [`Measurements`] and the time, a [`Decision`]: the target revision, the planner's pod
//! actions, the traffic to write, aborts and holds as enums, events, the next wake-up and the
//! status to write. No Kubernetes I/O: the reconcile fetches before and executes after.

mod canary;
pub(crate) mod hotswap;
mod rolling;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::analysis::Verdict;
use crate::crd::{
    ABORT_ANNOTATION, AbortReason, AnalysisPhase, AnalysisStatus, HoldReason, PROMOTE_ANNOTATION,
    PausedBy, RETRY_ANNOTATION, ZeroDowntimeRolloutSpec, ZeroDowntimeRolloutStatus, condition,
};
use crate::planner::canary::{Applied, Promote, TrafficPlan};
use crate::planner::{Plan, PodView};
use crate::validate::Valid;

/// What the reconcile observed, reduced to what the decision needs.
#[derive(Clone, Debug)]
pub struct Snapshot<'a> {
    /// Rollout name.
    pub name: &'a str,
    /// Its spec.
    pub spec: &'a ZeroDowntimeRolloutSpec,
    /// Its annotations (promote, abort, retry requests).
    pub annotations: &'a BTreeMap<String, String>,
    /// The status written last.
    pub status: &'a ZeroDowntimeRolloutStatus,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The validated spec.
    pub valid: &'a Valid,
    /// Hash of the current template.
    pub update: &'a str,
    /// Every pod the rollout owns.
    pub pods: &'a [PodView],
    /// The same pods as the API returned them (conditions, container statuses), for saying
    /// what holds the update.
    pub objects: &'a [std::sync::Arc<k8s_openapi::api::core::v1::Pod>],
    /// The EndpointSlices of the namespace.
    pub slices: &'a [std::sync::Arc<k8s_openapi::api::discovery::v1::EndpointSlice>],
    /// A crash-looping container of the update revision, described.
    pub crash: Option<String>,
    /// What the router and the Services carry now (canary with a stable revision only), as
    /// read from them; None: not read.
    pub traffic: Option<Applied>,
    /// The template of every known revision (from the ControllerRevisions), the update's
    /// included.
    pub templates: &'a BTreeMap<String, k8s_openapi::api::core::v1::PodTemplateSpec>,
}

/// What the analysis I/O measured this reconcile.
#[derive(Clone, Debug, Default)]
pub struct Measurements {
    /// One analysis step of the update revision; None when no analysis ran.
    pub analysis: Option<crate::analysis::Step>,
}

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Something expected happened.
    Normal,
    /// Something a person should look at.
    Warning,
}

/// An Event about the rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub severity: Severity,
    /// CamelCase reason.
    pub reason: &'static str,
    /// For people.
    pub message: String,
    /// What the controller did.
    pub action: &'static str,
    /// The pod it is about (the Event's related object), if one.
    pub pod: Option<String>,
}

/// What to do for one observation.
#[derive(Clone, Debug)]
pub struct Decision {
    /// Revision every pod should end up running.
    pub target: String,
    /// Pod actions and counts.
    pub plan: Plan,
    /// Traffic to write before the pod actions (canary only).
    pub traffic: Option<TrafficPlan>,
    /// An abort decided now (for the Event and the metric).
    pub abort: Option<AbortReason>,
    /// Events to emit.
    pub events: Vec<Note>,
    /// When to look again even without a change.
    pub wake: Option<Duration>,
    /// The stable revision after this observation (kept from pruning).
    pub stable_after: Option<String>,
    /// The status to write once the actions are done.
    pub status: ZeroDowntimeRolloutStatus,
    /// In-place swap writes (rolling strategy with `hotSwap`), after the pod actions.
    pub swaps: Vec<hotswap::SwapCommand>,
}

/// Whether the background analysis of the update revision runs this reconcile, and whether it
/// starts afresh (after a retry, or on entering a canary analysis step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnalysisRun {
    /// No analysis now.
    Skip,
    /// Continue the recorded run.
    Continue,
    /// Start a new run, forgetting the recorded one.
    Restart,
}

/// The facts every strategy decides from: stable revision, aborts, holds, requests.
#[derive(Clone, Debug)]
pub(crate) struct Basis {
    /// Revision serving before this update.
    pub stable: Option<String>,
    /// A stable revision other than the update exists to go back to.
    pub abortable: bool,
    /// Abort in force (decided earlier, or now), with the note for people.
    pub aborted: Option<(AbortReason, String)>,
    /// The abort was decided in this observation.
    pub aborted_now: bool,
    /// A retry token acted on now.
    pub retried: Option<String>,
    /// An inconclusive analysis holds progress.
    pub held: Option<(HoldReason, String)>,
    /// The analysis status to record.
    pub analysis: Option<AnalysisStatus>,
    /// A promotion request for the update revision.
    pub promote: Option<Promote>,
}

/// Decides what one observation calls for.
pub fn decide(s: &Snapshot, m: &Measurements, now: Timestamp) -> Decision {
    let mut basis = basis(s, m);
    let mut d = match (&s.valid.canary, basis.stable.clone()) {
        (Some(c), Some(stable)) => canary::decide(s, c, &stable, &mut basis, now),
        (Some(_), None) => canary::first(s, &mut basis, now),
        (None, _) => rolling::decide(s, &mut basis, now),
    };
    if basis.aborted_now
        && let Some((reason, note)) = &basis.aborted
    {
        d.abort = Some(*reason);
        d.events.insert(
            0,
            Note {
                severity: Severity::Warning,
                reason: reason.event_reason(),
                message: note.clone(),
                pod: None,
                action: "Abort",
            },
        );
    }
    if can_block(&basis, &d) {
        let found = super::stuck::classify(&super::stuck::Input {
            pods: s.objects,
            slices: s.slices,
            update: s.update,
            analysis: d.status.analysis.as_ref(),
            awaiting_analysis: d.plan.complete && d.stable_after.as_deref() != Some(s.update),
            now,
        });
        d.wake = d.wake.into_iter().chain(found.recheck).min();
        super::status::with_block(&mut d.status, s.status, found.block.as_ref(), now);
        d.events.extend(announce(s.status, &d.status));
        d.events
            .extend(blocked_note(s.status, found.block.as_ref()));
    } else {
        super::status::with_block(&mut d.status, s.status, None, now);
        d.events.extend(announce(s.status, &d.status));
    }
    d
}

/// Whether anything can hold the update: not once it is aborted or complete.
fn can_block(b: &Basis, d: &Decision) -> bool {
    b.aborted.is_none() && d.status.phase != Some(crate::crd::Phase::Healthy)
}

/// The Event for a block whose reason differs from the one the status names now.
fn blocked_note(
    prev: &ZeroDowntimeRolloutStatus,
    block: Option<&super::stuck::Block>,
) -> Option<Note> {
    let block = block?;
    let before = prev
        .conditions
        .iter()
        .find(|c| c.type_ == condition::BLOCKED && c.status == "True")
        .map(|c| c.reason.as_str());
    (before != Some(block.reason.as_str())).then(|| Note {
        severity: Severity::Warning,
        reason: block.reason.as_str(),
        message: block.message.clone(),
        pod: None,
        action: "Blocked",
    })
}

/// Whether and how the analysis runs this reconcile (decided before the analysis I/O).
pub fn analysis_run(s: &Snapshot) -> AnalysisRun {
    let b = basis(s, &Measurements::default());
    if s.spec.analysis.is_none() || !b.abortable || b.aborted.is_some() {
        return AnalysisRun::Skip;
    }
    if b.retried.is_some() {
        return AnalysisRun::Restart;
    }
    canary::analysis_restart(s).unwrap_or(AnalysisRun::Continue)
}

/// Aborts, holds and requests, before any strategy.
fn basis(s: &Snapshot, m: &Measurements) -> Basis {
    let st = s.status;
    let stable = st.stable_revision.clone();
    let abortable = stable.as_deref().is_some_and(|x| x != s.update);
    let user_abort = s.annotations.get(ABORT_ANNOTATION).map(String::as_str) == Some(s.update);
    let recorded = st.aborted_revision.as_deref() == Some(s.update) && abortable;
    let retry = s.annotations.get(RETRY_ANNOTATION);
    let retried = retry
        .filter(|t| recorded && !user_abort && st.retry_token.as_ref() != Some(*t))
        .cloned();
    let mut b = Basis {
        stable: stable.clone(),
        abortable,
        aborted: None,
        aborted_now: false,
        retried: retried.clone(),
        held: None,
        analysis: None,
        promote: promote_request(s),
    };
    if recorded && retried.is_none() {
        let reason = abort_reason(st).unwrap_or(AbortReason::User);
        b.aborted = Some((reason, String::new()));
        b.analysis = st.analysis.clone().filter(|_| s.spec.analysis.is_some());
        return b;
    }
    let back_to = stable.unwrap_or_default();
    b.analysis = match &m.analysis {
        Some(step) => Some(step.status.clone()),
        None if retried.is_some() => None,
        None => st.analysis.clone(),
    }
    .filter(|_| s.spec.analysis.is_some());
    if !abortable {
        return b;
    }
    let abort = |reason: AbortReason, why: String| {
        Some((reason, format!("{why}: rolling back to {back_to}")))
    };
    b.aborted = if user_abort {
        abort(
            AbortReason::User,
            format!("annotation {ABORT_ANNOTATION} names revision {}", s.update),
        )
    } else if let (Some(why), true) = (&s.crash, s.spec.analysis.is_some()) {
        abort(AbortReason::CrashLooping, why.clone())
    } else {
        match &m.analysis {
            Some(step) if step.verdict == Verdict::Failed => abort(
                AbortReason::AnalysisFailed,
                super::analysis::failure_note(&step.status),
            ),
            Some(step) if step.verdict == Verdict::Inconclusive => {
                b.held = Some((
                    HoldReason::AnalysisInconclusive,
                    format!(
                        "{}; resume: kubectl zdr resume {} (or pause, then resume), or apply a new template",
                        step.status.message.clone().unwrap_or_default(),
                        s.name
                    ),
                ));
                None
            }
            _ => None,
        }
    };
    b.aborted_now = b.aborted.is_some();
    b
}

/// Turns an abort decided after planning (the progress deadline) into the basis.
pub(crate) fn abort_now(b: &mut Basis, reason: AbortReason, why: String) {
    let back_to = b.stable.clone().unwrap_or_default();
    b.aborted = Some((reason, format!("{why}: rolling back to {back_to}")));
    b.aborted_now = true;
    b.held = None;
}

/// The promotion the `zdr.dev/promote` annotation asks for the update revision.
fn promote_request(s: &Snapshot) -> Option<Promote> {
    let value = s.annotations.get(PROMOTE_ANNOTATION)?;
    let (rev, what) = value.split_once('/')?;
    if rev != s.update {
        return None;
    }
    match what {
        "full" => Some(Promote::Full),
        n => n.parse().ok().map(Promote::Step),
    }
}

fn abort_reason(st: &ZeroDowntimeRolloutStatus) -> Option<AbortReason> {
    st.conditions
        .iter()
        .find(|c| c.type_ == condition::ABORTED && c.status == "True")
        .and_then(|c| AbortReason::parse(&c.reason))
}

/// With an analysis, the update becomes stable only once it was measured good; what it still
/// waits for, if anything.
pub(crate) fn analysis_waiting(s: &Snapshot, b: &Basis) -> Option<String> {
    match (&s.spec.analysis, &b.analysis) {
        (Some(spec), Some(a)) if b.abortable && b.aborted.is_none() => {
            super::analysis::waiting(spec, a)
        }
        _ => None,
    }
}

/// The analysis status to record: a run still going when the update became stable passed.
pub(crate) fn final_analysis(b: &Basis, stable_after: Option<&str>) -> Option<AnalysisStatus> {
    b.analysis.clone().map(|mut a| {
        if stable_after == Some(a.revision.as_str()) && a.phase == AnalysisPhase::Running {
            a.phase = AnalysisPhase::Successful;
            a.message = Some("the rollout completed while the analysis passed".into());
        }
        a
    })
}

/// Events for phase changes people care about.
fn announce(prev: &ZeroDowntimeRolloutStatus, next: &ZeroDowntimeRolloutStatus) -> Vec<Note> {
    use crate::crd::Phase;
    if prev.phase == next.phase {
        return Vec::new();
    }
    let message = next.message.clone().unwrap_or_default();
    let (severity, reason) = match next.phase {
        Some(Phase::Healthy) => (Severity::Normal, "RolloutCompleted"),
        Some(Phase::Degraded) => (Severity::Warning, "ProgressDeadlineExceeded"),
        Some(Phase::Paused) => (Severity::Normal, "RolloutPaused"),
        _ => return Vec::new(),
    };
    vec![Note {
        severity,
        reason,
        message,
        pod: None,
        action: "Rollout",
    }]
}

/// The planner's parameters towards `target`.
pub(crate) fn params(s: &Snapshot, b: &Basis, target: &str) -> crate::planner::Params {
    crate::planner::Params {
        replicas: s.spec.replicas,
        max_surge: s.valid.max_surge,
        max_unavailable: s.valid.max_unavailable,
        min_ready: Duration::from_secs(s.spec.min_ready_seconds.max(0) as u64),
        target_revision: target.to_string(),
        stable_revision: b.stable.clone(),
        paused: paused_by(s).is_some() || b.held.is_some(),
        replacement: s.valid.replacement,
    }
}

/// What pauses the rollout (`spec.paused` or the `zdr.dev/paused` annotation), if anything.
pub(crate) fn paused_by(s: &Snapshot) -> Option<PausedBy> {
    crate::crd::paused_by(s.spec, s.annotations)
}

/// What the previous status recorded, for progress detection.
pub(crate) fn progress(st: &ZeroDowntimeRolloutStatus) -> crate::planner::Progress {
    crate::planner::Progress {
        revision: st.update_revision.clone(),
        counts: crate::planner::Counts {
            replicas: st.replicas,
            updated: st.updated_replicas,
            ready: st.ready_replicas,
            available: st.available_replicas,
            updated_available: st.updated_replicas.min(st.available_replicas),
            ..crate::planner::Counts::default()
        },
        last_progress: st.last_progress_time.as_ref().map(|t| t.0),
    }
}

/// `progressDeadlineSeconds`.
pub(crate) fn deadline(spec: &ZeroDowntimeRolloutSpec) -> Duration {
    Duration::from_secs(spec.progress_deadline_seconds.max(1) as u64)
}

/// The status for a decision.
pub(crate) fn status(
    s: &Snapshot,
    b: &Basis,
    o: Outcome<'_>,
    now: Timestamp,
) -> ZeroDowntimeRolloutStatus {
    use super::status::{self as st, Cond};
    let update = s.update;
    let mut status = st::build(
        s.status,
        st::Outcome {
            counts: o.plan.counts,
            summary: o.summary,
            complete: o.complete,
            replicas: s.spec.replicas,
            min_available: o.min_available,
            update_revision: update,
            stable_revision: o.stable_after.clone(),
            aborted: b
                .aborted
                .as_ref()
                .map(|(r, _)| (update.to_string(), r.as_str().to_string())),
            paused: paused_by(s),
            selector: s.valid.selector.to_string(),
            extra: s
                .valid
                .notices
                .iter()
                .map(
                    |n| match (&o.hot_swap, n.type_ == crate::crd::hot_swap::TYPE) {
                        (Some((reason, message)), true) => {
                            Cond::new(n.type_, reason.status(), reason.as_str(), message.clone())
                        }
                        _ => Cond::new(n.type_, n.status, n.reason, n.message.clone()),
                    },
                )
                .collect(),
            held: o
                .held
                .or(b.held.clone())
                .filter(|_| b.aborted.is_none())
                .map(|(r, m)| (r.as_str().to_string(), m)),
            analysis: final_analysis(b, o.stable_after.as_deref()),
        },
        s.generation,
        now,
    );
    if let Some(t) = &b.retried {
        status.retry_token = Some(t.clone());
    }
    if let Some(c) = o.canary {
        status.current_step_index = Some(c.step as i32);
        status.canary_weight = Some(c.applied.weight);
        status.step_started_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            c.started,
        ));
        status.header_routes = c.applied.routes.clone();
        status.services = Some(crate::crd::ServiceSelection {
            stable: c.applied.stable_selects.clone(),
            canary: c.applied.canary_selects.clone(),
        });
    }
    status
}

/// What a strategy decided, for the status.
pub(crate) struct Outcome<'a> {
    /// The pod plan.
    pub plan: &'a Plan,
    /// Phase, message and progress clock.
    pub summary: &'a crate::planner::Summary,
    /// The update is complete (and stable).
    pub complete: bool,
    /// The availability floor.
    pub min_available: i32,
    /// Stable revision after this observation.
    pub stable_after: Option<String>,
    /// A hold of the strategy's own (a canary pause step).
    pub held: Option<(HoldReason, String)>,
    /// The canary's step and traffic after this observation.
    pub canary: Option<CanaryFields>,
    /// The `HotSwap` condition, when the strategy decided it.
    pub hot_swap: Option<(crate::crd::hot_swap::Reason, String)>,
}

/// The canary's part of status.
pub(crate) struct CanaryFields {
    /// Current step index.
    pub step: usize,
    /// When it started.
    pub started: Timestamp,
    /// Traffic once written.
    pub applied: Applied,
}
