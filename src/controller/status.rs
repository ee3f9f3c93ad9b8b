//! Building the status the controller applies: counts, phase, message and conditions, keeping
//! each condition's lastTransitionTime while its status does not change. Pure.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{
    AnalysisStatus, BlockReason, NOT_PAUSED_REASON, PAUSED_ANNOTATION, PausedBy, Phase,
    ZeroDowntimeRolloutStatus, condition,
};
use crate::planner::{Counts, Summary};

/// A condition to set, before transition-time bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// Condition type.
    pub type_: &'static str,
    /// True / False / Unknown.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: String,
    /// For people.
    pub message: String,
}

impl Cond {
    /// A condition.
    pub fn new(
        type_: &'static str,
        status: &'static str,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Turns `conds` into API conditions, keeping the previous lastTransitionTime of any condition
/// whose status did not change.
pub fn conditions(
    conds: Vec<Cond>,
    prev: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    conds
        .into_iter()
        .map(|c| {
            let since = prev
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == c.status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: c.type_.to_string(),
                status: c.status.to_string(),
                reason: c.reason,
                message: c.message,
                last_transition_time: since,
                observed_generation: generation,
            }
        })
        .collect()
}

/// What one reconcile decided, for the status.
pub struct Outcome<'a> {
    /// Pod counts.
    pub counts: Counts,
    /// Phase, message and progress clock.
    pub summary: &'a Summary,
    /// Whether the update is complete.
    pub complete: bool,
    /// Desired replicas and the availability floor.
    pub replicas: i32,
    /// `replicas - maxUnavailable`.
    pub min_available: i32,
    /// Update revision hash.
    pub update_revision: &'a str,
    /// Stable revision after this reconcile.
    pub stable_revision: Option<String>,
    /// Revision whose update is aborted, with the reason.
    pub aborted: Option<(String, String)>,
    /// What pauses the rollout (spec.paused or the annotation), if anything.
    pub paused: Option<PausedBy>,
    /// Label selector as a string.
    pub selector: String,
    /// Extra conditions (notices about partly honoured fields).
    pub extra: Vec<Cond>,
    /// Progress held by something other than spec.paused (an inconclusive analysis):
    /// reason and message of the Paused condition.
    pub held: Option<(String, String)>,
    /// The analysis of the update revision.
    pub analysis: Option<AnalysisStatus>,
}

/// The full status for `outcome`.
pub fn build(
    prev: &ZeroDowntimeRolloutStatus,
    o: Outcome<'_>,
    generation: Option<i64>,
    now: Timestamp,
) -> ZeroDowntimeRolloutStatus {
    let s = o.summary;
    let mut conds = vec![if o.counts.available >= o.min_available {
        Cond::new(
            condition::AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            format!("{} of {} pods available", o.counts.available, o.replicas),
        )
    } else {
        Cond::new(
            condition::AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            format!(
                "{} of {} pods available, fewer than the {} required",
                o.counts.available, o.replicas, o.min_available
            ),
        )
    }];
    conds.push(match (&o.aborted, s.phase) {
        (Some((rev, reason)), _) => Cond::new(
            condition::PROGRESSING,
            "False",
            "RolloutAborted",
            format!("update to {rev} aborted ({reason}); back to the stable revision"),
        ),
        (None, Phase::Healthy) => Cond::new(
            condition::PROGRESSING,
            "True",
            "NewRevisionAvailable",
            format!("revision {} is available", o.update_revision),
        ),
        (None, Phase::Degraded) => Cond::new(
            condition::PROGRESSING,
            "False",
            "ProgressDeadlineExceeded",
            s.message.clone(),
        ),
        (None, Phase::Paused) => Cond::new(
            condition::PROGRESSING,
            "Unknown",
            "RolloutPaused",
            match &o.held {
                Some((_, message)) => message.clone(),
                None => o
                    .paused
                    .map_or_else(|| "paused".to_string(), PausedBy::message),
            },
        ),
        (None, _) => Cond::new(
            condition::PROGRESSING,
            "True",
            "RevisionProgressing",
            s.message.clone(),
        ),
    });
    conds.push(if let Some((reason, message)) = &o.held {
        Cond::new(condition::PAUSED, "True", reason.clone(), message.clone())
    } else if let Some(by) = o.paused {
        Cond::new(condition::PAUSED, "True", by.as_str(), by.message())
    } else {
        Cond::new(
            condition::PAUSED,
            "False",
            NOT_PAUSED_REASON,
            format!("spec.paused is false and annotation {PAUSED_ANNOTATION} is not set"),
        )
    });
    if let Some((rev, reason)) = &o.aborted {
        conds.push(Cond::new(
            condition::ABORTED,
            "True",
            reason.clone(),
            format!("the update to revision {rev} was aborted; apply a new template to try again"),
        ));
    }
    conds.extend(o.extra);

    ZeroDowntimeRolloutStatus {
        observed_generation: generation,
        phase: Some(s.phase),
        message: Some(s.message.clone()),
        replicas: o.counts.replicas,
        updated_replicas: o.counts.updated,
        ready_replicas: o.counts.ready,
        available_replicas: o.counts.available,
        terminating_replicas: o.counts.retiring,
        stable_revision: o.stable_revision,
        update_revision: Some(o.update_revision.to_string()),
        current_step_index: None,
        canary_weight: None,
        step_started_at: None,
        header_routes: Vec::new(),
        services: None,
        retry_token: prev.retry_token.clone(),
        selector: Some(o.selector),
        last_progress_time: Some(Time(s.last_progress)),
        aborted_revision: o.aborted.map(|(rev, _)| rev),
        analysis: o.analysis,
        hot_swap: None,
        conditions: conditions(conds, &prev.conditions, generation, now),
    }
}

/// Status of a spec the controller cannot act on: phase Degraded and an InvalidSpec condition;
/// counts and revisions are kept from the previous status.
pub fn invalid(
    prev: &ZeroDowntimeRolloutStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> ZeroDowntimeRolloutStatus {
    let conds = vec![Cond::new(condition::INVALID_SPEC, "True", reason, message)];
    ZeroDowntimeRolloutStatus {
        observed_generation: generation,
        phase: Some(Phase::Degraded),
        message: Some(format!("invalid spec: {message}")),
        conditions: conditions(conds, &prev.conditions, generation, now),
        ..prev.clone()
    }
}

/// Status of a canary whose router or Services cannot be used (missing, or not carrying both
/// Services): phase Degraded and a TrafficRouting condition; the rest is kept. Nothing moves
/// until it is fixed, since traffic would otherwise change blindly.
pub fn traffic_error(
    prev: &ZeroDowntimeRolloutStatus,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> ZeroDowntimeRolloutStatus {
    let conds = vec![Cond::new(
        condition::TRAFFIC_ROUTING,
        "False",
        "TrafficRouterError",
        message,
    )];
    let mut keep: Vec<Condition> = prev
        .conditions
        .iter()
        .filter(|c| c.type_ != condition::TRAFFIC_ROUTING)
        .cloned()
        .collect();
    keep.extend(conditions(conds, &prev.conditions, generation, now));
    ZeroDowntimeRolloutStatus {
        observed_generation: generation,
        phase: Some(Phase::Degraded),
        message: Some(format!("traffic routing: {message}")),
        conditions: keep,
        ..prev.clone()
    }
}

/// Adds what holds the update to `status`: a `Blocked` condition (kept from `prev` while its
/// status does not change), and the reason at the end of the message (of the Degraded
/// Progressing condition too). Nothing when no block: the condition is then left out.
pub fn with_block(
    status: &mut ZeroDowntimeRolloutStatus,
    prev: &ZeroDowntimeRolloutStatus,
    block: Option<&super::stuck::Block>,
    now: Timestamp,
) {
    status.conditions.retain(|c| c.type_ != condition::BLOCKED);
    let Some(block) = block else { return };
    let suffix = format!("; blocked: {}", block.message);
    // An inconclusive analysis already says so in the message, as the hold it is.
    if let Some(m) = status.message.as_mut()
        && block.reason != BlockReason::AnalysisInconclusive
    {
        m.push_str(&suffix);
    }
    for c in status.conditions.iter_mut() {
        if c.type_ == condition::PROGRESSING && c.reason == "ProgressDeadlineExceeded" {
            c.message.push_str(&suffix);
        }
    }
    let cond = Cond::new(
        condition::BLOCKED,
        "True",
        block.reason.as_str(),
        block.message.clone(),
    );
    let generation = status.observed_generation;
    status
        .conditions
        .extend(conditions(vec![cond], &prev.conditions, generation, now));
}
