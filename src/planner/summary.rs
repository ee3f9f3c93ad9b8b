//! From a plan and the previous status to what status says: phase, a one-line message, and
//! the progress clock behind `progressDeadlineSeconds`.

use std::time::Duration;

use jiff::Timestamp;

use super::model::{Counts, Params, Plan};
use crate::crd::Phase;

/// What the previous status recorded, for progress detection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    /// Revision the previous status was about.
    pub revision: Option<String>,
    /// Counts the previous status reported.
    pub counts: Counts,
    /// When progress was last seen.
    pub last_progress: Option<Timestamp>,
}

/// What status should say.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Phase for `status.phase`.
    pub phase: Phase,
    /// One line for people.
    pub message: String,
    /// When progress was last seen (now, if this observation progressed).
    pub last_progress: Timestamp,
    /// No progress for longer than the deadline.
    pub deadline_exceeded: bool,
    /// When the deadline expires, if it is running.
    pub deadline_in: Option<Duration>,
}

/// Summarizes `plan` for status. `aborted` carries the abort reason when the update was abandoned.
pub fn summarize(
    params: &Params,
    plan: &Plan,
    prev: &Progress,
    deadline: Duration,
    aborted: Option<&str>,
    now: Timestamp,
) -> Summary {
    let c = plan.counts;
    let same_revision = prev.revision.as_deref() == Some(params.target_revision.as_str());
    let progressed = !same_revision
        || c.updated > prev.counts.updated
        || c.updated_available > prev.counts.updated_available
        || c.available > prev.counts.available
        || (c.replicas - c.updated) < (prev.counts.replicas - prev.counts.updated);
    let clock_stopped = plan.complete || params.paused;
    let last_progress = match prev.last_progress {
        Some(t) if !progressed && !clock_stopped => t,
        _ => now,
    };
    let deadline_at = last_progress
        .checked_add(jiff::SignedDuration::try_from(deadline).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX);
    let deadline_exceeded = !clock_stopped && now >= deadline_at;
    let deadline_in = (!clock_stopped && !deadline_exceeded)
        .then(|| Duration::try_from(deadline_at.duration_since(now)).unwrap_or_default());

    let mut counts = format!(
        "{}/{} updated, {} available",
        c.updated, params.replicas, c.available
    );
    if c.retiring > 0 {
        counts.push_str(&format!(", {} draining", c.retiring));
    }
    let (phase, message) = if let Some(reason) = aborted {
        (
            Phase::Aborted,
            format!("aborted ({reason}): rolling back, {counts}"),
        )
    } else if plan.complete {
        (
            Phase::Healthy,
            format!("{counts}, revision {}", params.target_revision),
        )
    } else if params.paused {
        (Phase::Paused, format!("paused: {counts}"))
    } else if deadline_exceeded {
        (
            Phase::Degraded,
            format!(
                "no progress for {}s (progressDeadlineSeconds): {counts}",
                deadline.as_secs()
            ),
        )
    } else if c.replicas == c.updated {
        (Phase::Progressing, format!("scaling: {counts}"))
    } else {
        let per_wave = (params.max_surge + params.max_unavailable).max(1);
        let waves = ((params.replicas + per_wave - 1) / per_wave).max(1);
        let wave = ((c.updated + per_wave - 1) / per_wave).clamp(1, waves);
        (Phase::Progressing, format!("wave {wave}/{waves}: {counts}"))
    };
    Summary {
        phase,
        message,
        last_progress,
        deadline_exceeded,
        deadline_in,
    }
}
