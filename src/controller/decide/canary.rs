//! The canary strategy's decision: the step machine of `planner::canary` fed with the recorded
//! step, the live traffic, promotions and the analysis gate; retirement of the canary after an
//! abort or a rollback; the progress deadline; the words status shows.

use jiff::Timestamp;

use super::{
    AnalysisRun, Basis, CanaryFields, Decision, Note, Outcome, Severity, Snapshot, abort_now,
    analysis_waiting, deadline, params, progress,
};
use crate::crd::{AbortReason, AnalysisPhase, AnalysisStatus, HoldReason, Phase};
use crate::planner::canary::{
    self as cp, Applied, CanaryParams, CanaryPlan, CanaryState, Signals, Step, TrafficPlan, Waiting,
};
use crate::planner::{self, Summary, split::Sides};
use crate::validate::Canary;

/// Decides a canary whose stable revision is `stable`.
pub(super) fn decide(
    s: &Snapshot,
    c: &Canary,
    stable: &str,
    b: &mut Basis,
    now: Timestamp,
) -> Decision {
    let applied = applied(s);
    if b.aborted.is_none() && s.update != stable {
        let (plan, summary, held) = forward(s, c, stable, b, &applied, now);
        let exceeded = summary.deadline_exceeded && s.spec.progress_deadline_abort;
        if !exceeded {
            return finish(s, b, plan, summary, held, now);
        }
        let why = format!("no progress for {}s", deadline(s.spec).as_secs());
        abort_now(b, AbortReason::ProgressDeadline, why);
    }
    let (plan, summary) = retire(s, c, stable, b, &applied, now);
    finish(s, b, plan, summary, None, now)
}

/// A canary's first rollout: nothing to compare with, so it rolls out like a rolling update and
/// both Services select the new revision.
pub(super) fn first(s: &Snapshot, b: &mut Basis, now: Timestamp) -> Decision {
    let mut d = super::rolling::decide(s, b, now);
    let n = s.valid.canary.as_ref().map_or(0, |c| c.steps.len());
    let traffic = TrafficPlan {
        weight: 0,
        routes: Vec::new(),
        stable_selects: s.update.to_string(),
        canary_selects: s.update.to_string(),
    };
    let applied = traffic.applied();
    d.status.current_step_index = Some(n as i32);
    d.status.canary_weight = Some(0);
    let started = kept_start(s, n).unwrap_or(now);
    d.status.step_started_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        started,
    ));
    d.status.header_routes = Vec::new();
    d.status.services = Some(crate::crd::ServiceSelection {
        stable: applied.stable_selects,
        canary: applied.canary_selects,
    });
    d.traffic = Some(traffic);
    d
}

/// On entering an analysis step, the analysis starts afresh: the gate judges measurements of
/// this step only.
pub(super) fn analysis_restart(s: &Snapshot) -> Option<AnalysisRun> {
    let c = s.valid.canary.as_ref()?;
    let st = s.status;
    if st.update_revision.as_deref() != Some(s.update) {
        return None;
    }
    let step = c.steps.get(st.current_step_index? as usize)?;
    let started = st.step_started_at.as_ref()?.0;
    let run = st.analysis.as_ref().filter(|a| a.revision == s.update)?;
    (matches!(step, Step::Analysis) && run.started_at.0 < started).then_some(AnalysisRun::Restart)
}

/// The traffic now: as read from the router and Services, else as status recorded it.
fn applied(s: &Snapshot) -> Applied {
    s.traffic.clone().unwrap_or_else(|| {
        let st = s.status;
        Applied {
            weight: st.canary_weight.unwrap_or(0),
            routes: st.header_routes.clone(),
            stable_selects: st.services.as_ref().and_then(|x| x.stable.clone()),
            canary_selects: st.services.as_ref().and_then(|x| x.canary.clone()),
        }
    })
}

/// The canary moving forward: the step machine, its summary and its hold.
fn forward(
    s: &Snapshot,
    c: &Canary,
    stable: &str,
    b: &Basis,
    applied: &Applied,
    now: Timestamp,
) -> (CanaryPlan, Summary, Option<(HoldReason, String)>) {
    let st = s.status;
    let same = st.update_revision.as_deref() == Some(s.update) && b.retried.is_none();
    let state = CanaryState {
        step: if same {
            st.current_step_index.unwrap_or(0).max(0) as usize
        } else {
            0
        },
        step_started: st
            .step_started_at
            .as_ref()
            .map(|t| t.0)
            .filter(|_| same)
            .unwrap_or(now),
        applied: applied.clone(),
    };
    let mut prm = params(s, b, s.update);
    prm.stable_revision = Some(stable.to_string());
    let p = CanaryParams {
        pods: prm.clone(),
        steps: c.steps.clone(),
        routed: c.routed,
    };
    let signals = Signals {
        promote: b.promote,
        analysis_passed_since: b.analysis.as_ref().and_then(|a| passed_since(a, s.update)),
        held: super::paused_by(s).is_some() || b.held.is_some(),
    };
    let plan = cp::plan(&p, &state, signals, s.pods, now);
    let waits = matches!(
        plan.waiting,
        Some(Waiting::Pause { .. } | Waiting::Promotion | Waiting::Held)
    );
    prm.paused = prm.paused || waits;
    let mut prev = progress(st);
    if plan.step != state.step || !same {
        prev.last_progress = None;
    }
    // The pods being where a step wants them is not the rollout being done.
    let done = plan.promoted && plan.pods.complete;
    let judged = planner::Plan {
        complete: done,
        ..plan.pods.clone()
    };
    let mut summary = planner::summarize(&prm, &judged, &prev, deadline(s.spec), None, now);
    let sides = Sides::of(s.pods, s.update, stable, &prm, now);
    let held = hold(s, &plan);
    if !done {
        summary.phase = if waits {
            Phase::Paused
        } else if summary.deadline_exceeded {
            Phase::Degraded
        } else {
            Phase::Progressing
        };
        summary.message = message(s, c, &plan, &sides, b);
    }
    (plan, summary, held)
}

/// The canary going away (abort, or the stable template applied again): traffic back first.
fn retire(
    s: &Snapshot,
    c: &Canary,
    stable: &str,
    b: &Basis,
    applied: &Applied,
    now: Timestamp,
) -> (CanaryPlan, Summary) {
    let prm = params(s, b, stable);
    let mut plan = cp::retire(&prm, applied, c.routed, s.pods, now);
    if b.aborted.is_none() {
        plan.step = c.steps.len();
        plan.promoted = plan.pods.complete;
    }
    let summary = planner::summarize(
        &prm,
        &plan.pods,
        &progress(s.status),
        deadline(s.spec),
        b.aborted.as_ref().map(|(r, _)| r.as_str()),
        now,
    );
    (plan, summary)
}

/// The decision and status from a canary plan.
fn finish(
    s: &Snapshot,
    b: &Basis,
    plan: CanaryPlan,
    mut summary: Summary,
    held: Option<(HoldReason, String)>,
    now: Timestamp,
) -> Decision {
    let mut complete = plan.promoted && plan.pods.complete && b.aborted.is_none();
    if complete && let Some(waiting) = analysis_waiting(s, b) {
        complete = false;
        summary.phase = Phase::Progressing;
        summary.message = format!(
            "promoted, revision {} becomes stable once {waiting}",
            s.update
        );
    }
    let stable_after = if complete {
        Some(s.update.to_string())
    } else {
        b.stable.clone()
    };
    let target = match (&b.aborted, &b.stable) {
        (Some(_), Some(stable)) => stable.clone(),
        _ => s.update.to_string(),
    };
    let mut events = Vec::new();
    let prev_step = s.status.current_step_index.map(|i| i as usize);
    if b.aborted.is_none()
        && prev_step != Some(plan.step)
        && s.update != b.stable.as_deref().unwrap_or_default()
    {
        events.push(step_note(s, plan.step));
    }
    let min_available = params(s, b, s.update).min_available();
    let wake = [plan.pods.requeue_after, summary.deadline_in, plan.wake]
        .into_iter()
        .flatten()
        .min();
    let status = super::status(
        s,
        b,
        Outcome {
            plan: &plan.pods,
            summary: &summary,
            complete,
            min_available,
            stable_after: stable_after.clone(),
            held,
            hot_swap: None,
            canary: Some({
                let step = if b.aborted.is_some() { 0 } else { plan.step };
                // Moving forward, the step machine tracks the start; retiring plans with `now`.
                let retiring = b.aborted.is_some() || b.stable.as_deref() == Some(s.update);
                let kept = kept_start(s, step).filter(|_| retiring);
                CanaryFields {
                    step,
                    started: kept.unwrap_or(plan.step_started),
                    applied: plan.traffic.applied(),
                }
            }),
        },
        now,
    );
    Decision {
        target,
        plan: plan.pods,
        traffic: Some(plan.traffic),
        abort: None,
        events,
        wake,
        stable_after,
        status,
        swaps: Vec::new(),
    }
}

/// When step `step` of the update revision started, as status recorded it: a step that has not
/// changed keeps its start (retiring and first rollouts plan with `now`, which would otherwise
/// rewrite status on every observation).
fn kept_start(s: &Snapshot, step: usize) -> Option<Timestamp> {
    let st = s.status;
    let same = st.update_revision.as_deref() == Some(s.update)
        && st.current_step_index.map(|i| i as usize) == Some(step);
    st.step_started_at.as_ref().map(|t| t.0).filter(|_| same)
}

/// The time from which every metric of the update revision's run has a successful
/// measurement (`Timestamp::MAX` once the run succeeded).
pub(crate) fn passed_since(a: &AnalysisStatus, update: &str) -> Option<Timestamp> {
    if a.revision != update {
        return None;
    }
    if a.phase == AnalysisPhase::Successful {
        return Some(a.started_at.0.max(Timestamp::MIN));
    }
    a.metrics
        .iter()
        .map(|m| {
            m.measurements
                .iter()
                .filter(|x| x.phase == AnalysisPhase::Successful)
                .map(|x| x.started_at.0)
                .max()
        })
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .min()
}

/// The Paused condition a canary pause step sets.
fn hold(s: &Snapshot, plan: &CanaryPlan) -> Option<(HoldReason, String)> {
    match &plan.waiting {
        Some(Waiting::Pause { remaining }) => Some((
            HoldReason::CanaryPauseStep,
            format!(
                "step {}: paused for {}s more; kubectl zdr promote {} skips the rest",
                plan.step,
                remaining.as_secs(),
                s.name
            ),
        )),
        Some(Waiting::Promotion) => Some((
            HoldReason::AwaitingPromotion,
            format!(
                "step {}: waiting for kubectl zdr promote {}",
                plan.step, s.name
            ),
        )),
        _ => None,
    }
}

/// What a step does, in a few words.
pub fn describe(step: &Step) -> String {
    match step {
        Step::Weight(w) => format!("setWeight {w}"),
        Step::HeaderRoute(r) if r.matches.is_empty() => format!("remove header route {}", r.name),
        Step::HeaderRoute(r) => format!("setHeaderRoute {}", r.name),
        Step::Scale(cp::CanaryScale::FollowWeight) => "setCanaryScale matchTrafficWeight".into(),
        Step::Scale(cp::CanaryScale::Replicas(n)) => format!("setCanaryScale {n} pods"),
        Step::Scale(cp::CanaryScale::Percent(p)) => format!("setCanaryScale {p}%"),
        Step::Analysis => "analysis".into(),
        Step::Pause(Some(d)) => format!("pause {}s", d.as_secs()),
        Step::Pause(None) => "pause until promoted".into(),
    }
}

/// The status message of a canary moving forward.
fn message(s: &Snapshot, c: &Canary, plan: &CanaryPlan, sides: &Sides, b: &Basis) -> String {
    let n = c.steps.len();
    let t = &plan.traffic;
    let mut traffic = format!("weight {}%", t.weight);
    if !t.routes.is_empty() {
        let names: Vec<&str> = t.routes.iter().map(|r| r.name.as_str()).collect();
        traffic.push_str(&format!(", header routes {}", names.join(", ")));
    }
    let pods = format!(
        "canary {}/{} available, stable {} available",
        sides.canary.available,
        plan.pods.counts.updated.max(sides.canary.alive),
        sides.stable.available
    );
    let head = match c.steps.get(plan.step) {
        Some(step) => format!("step {} of 0-{} ({})", plan.step, n - 1, describe(step)),
        None if plan.promoted => "promoted: retiring old pods".to_string(),
        None => format!(
            "promoting: {}/{} canary pods available",
            sides.canary.available, s.spec.replicas
        ),
    };
    let why = match &plan.waiting {
        _ if plan.step >= n => String::new(),
        Some(Waiting::CanaryPods { available, needed }) => {
            format!("; waiting for canary pods: {available}/{needed} available")
        }
        Some(Waiting::Traffic) | None => "; shifting traffic".to_string(),
        Some(Waiting::Pause { remaining }) => format!(
            "; paused, {}s left (kubectl zdr promote {} skips it)",
            remaining.as_secs(),
            s.name
        ),
        Some(Waiting::Promotion) => format!("; paused until kubectl zdr promote {}", s.name),
        Some(Waiting::Analysis) => "; waiting for the analysis to pass".to_string(),
        Some(Waiting::Held) => match &b.held {
            Some((_, m)) => format!("; {m}"),
            None => super::paused_by(s)
                .map(|by| format!("; {}", by.message()))
                .unwrap_or_default(),
        },
    };
    format!("{head}: {traffic}; {pods}{why}")
}

/// The Event of a step starting (or promotion).
fn step_note(s: &Snapshot, step: usize) -> Note {
    let c = s.valid.canary.as_ref();
    let n = c.map_or(0, |c| c.steps.len());
    let message = match c.and_then(|c| c.steps.get(step)) {
        Some(st) => format!(
            "revision {}: step {} of 0-{} ({}) started",
            s.update,
            step,
            n - 1,
            describe(st)
        ),
        None => format!("revision {}: every step done, promoting", s.update),
    };
    Note {
        severity: Severity::Normal,
        reason: if step >= n {
            "CanaryPromoting"
        } else {
            "CanaryStep"
        },
        message,
        pod: None,
        action: "Canary",
    }
}
