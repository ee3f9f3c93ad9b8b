//! The analysis run as a pure state machine over the recorded status: which metrics are due,
//! how a measurement is judged and counted, the metric and run verdicts (Argo Rollouts'
//! semantics, per metric), when to wake up next, and resume. No I/O, no clock: `now` is given.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::expr::{Expr, Value};
use super::provider::Sample;
use crate::crd::{
    AnalysisMetric, AnalysisPhase, AnalysisSpec, AnalysisStatus, Measurement, MetricStatus,
};

/// Measurements kept per metric in status.
pub const MAX_MEASUREMENTS: usize = 10;
/// First retry after an error measurement; doubles on each consecutive error, capped at the
/// interval.
pub const ERROR_BACKOFF: Duration = Duration::from_secs(5);
/// Resolved queries longer than this are cut in status.
pub const MAX_QUERY_IN_STATUS: usize = 1024;

/// What the analysis says about the rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Still measuring (or not started): carry on.
    Running,
    /// Every metric completed its `count` successfully.
    Successful,
    /// A metric failed (or errored too often in a row): abort.
    Failed,
    /// A metric is inconclusive: pause until a person resumes.
    Inconclusive,
}

impl From<AnalysisPhase> for Verdict {
    fn from(p: AnalysisPhase) -> Self {
        match p {
            AnalysisPhase::Running => Verdict::Running,
            AnalysisPhase::Successful => Verdict::Successful,
            AnalysisPhase::Failed | AnalysisPhase::Error => Verdict::Failed,
            AnalysisPhase::Inconclusive => Verdict::Inconclusive,
        }
    }
}

/// One measurement before it is timestamped.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Successful, Failed, Inconclusive or Error.
    pub phase: AnalysisPhase,
    /// The value, for people.
    pub value: Option<String>,
    /// The resolved query.
    pub query: String,
    /// Why.
    pub message: Option<String>,
}

fn secs(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

fn std_of(d: &kube::core::Duration) -> Duration {
    if d.is_negative() {
        Duration::ZERO
    } else {
        Duration::from(*d)
    }
}

/// The interval between measurements (at least 1 s).
pub fn interval(spec: &AnalysisSpec) -> Duration {
    std_of(&spec.interval).max(Duration::from_secs(1))
}

fn metric_status(name: &str) -> MetricStatus {
    MetricStatus {
        name: name.to_string(),
        phase: AnalysisPhase::Running,
        count: 0,
        successful: 0,
        failed: 0,
        inconclusive: 0,
        error: 0,
        consecutive_error: 0,
        message: None,
        measurements: Vec::new(),
    }
}

/// A fresh run for `revision`.
pub fn start(spec: &AnalysisSpec, revision: &str, now: Timestamp) -> AnalysisStatus {
    AnalysisStatus {
        revision: revision.to_string(),
        phase: AnalysisPhase::Running,
        message: Some("waiting for the first measurement".into()),
        started_at: Time(now),
        resume_token: None,
        resume_armed: false,
        metrics: spec
            .metrics
            .iter()
            .map(|m| metric_status(&m.name))
            .collect(),
    }
}

/// Makes the metric list follow the spec (a metric added while running starts fresh; a removed
/// one is dropped), keeping the order of the spec.
pub fn sync_metrics(spec: &AnalysisSpec, st: &mut AnalysisStatus) {
    let mut old = std::mem::take(&mut st.metrics);
    st.metrics = spec
        .metrics
        .iter()
        .map(|m| match old.iter().position(|o| o.name == m.name) {
            Some(i) => old.swap_remove(i),
            None => metric_status(&m.name),
        })
        .collect();
}

/// When metric `m` is measured next; None once it has a verdict.
pub fn next_at(spec: &AnalysisSpec, st: &AnalysisStatus, m: &MetricStatus) -> Option<Timestamp> {
    if m.phase != AnalysisPhase::Running || st.phase != AnalysisPhase::Running {
        return None;
    }
    let in_run = m.count + m.error > 0;
    let last = m.measurements.last().filter(|_| in_run);
    Some(match last {
        None => {
            let delay = spec.initial_delay.as_ref().map(std_of).unwrap_or_default();
            st.started_at
                .0
                .saturating_add(secs(delay))
                .unwrap_or(Timestamp::MAX)
        }
        Some(l) if l.phase == AnalysisPhase::Error => {
            let n = m.consecutive_error.clamp(1, 16) as u32;
            let backoff = ERROR_BACKOFF
                .saturating_mul(1 << (n - 1))
                .min(interval(spec));
            l.finished_at
                .0
                .saturating_add(secs(backoff))
                .unwrap_or(Timestamp::MAX)
        }
        Some(l) => l
            .finished_at
            .0
            .saturating_add(secs(interval(spec)))
            .unwrap_or(Timestamp::MAX),
    })
}

/// Indexes (into `st.metrics`, which follows the spec) of the metrics to measure now.
pub fn due(spec: &AnalysisSpec, st: &AnalysisStatus, now: Timestamp) -> Vec<usize> {
    st.metrics
        .iter()
        .enumerate()
        .filter(|(_, m)| next_at(spec, st, m).is_some_and(|t| t <= now))
        .map(|(i, _)| i)
        .collect()
}

/// Time until the next measurement of any metric.
pub fn wake(spec: &AnalysisSpec, st: &AnalysisStatus, now: Timestamp) -> Option<Duration> {
    st.metrics
        .iter()
        .filter_map(|m| next_at(spec, st, m))
        .min()
        .map(|t| Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO))
}

/// Judges a query metric's sample by its conditions. Empty results and NaN are inconclusive
/// (a canary without traffic yet), never a pass; a condition that cannot be evaluated is an
/// error, never a pass.
pub fn judge(metric: &AnalysisMetric, query: &str, sample: &Sample) -> Outcome {
    let values = sample.values();
    let value = match sample {
        Sample::Scalar(v) => Value::Num(*v),
        Sample::Vector(_) => Value::List(values.clone()),
    };
    let mut out = Outcome {
        phase: AnalysisPhase::Inconclusive,
        value: Some(value.to_string()),
        query: query.to_string(),
        message: None,
    };
    if values.is_empty() {
        out.value = None;
        out.message = Some(format!(
            "no data: the query returned an empty result (does the new revision receive traffic yet?): {query}"
        ));
        return out;
    }
    if values.iter().any(|v| v.is_nan()) {
        out.message = Some(format!(
            "no data: the query returned NaN (0/0: no requests in the window?): {query}"
        ));
        return out;
    }
    let cond = |c: &Option<String>| -> Result<Option<bool>, String> {
        match c {
            None => Ok(None),
            Some(src) => {
                let e = Expr::parse(src).map_err(|e| format!("condition {src:?}: {e}"))?;
                e.holds(&value)
                    .map(Some)
                    .map_err(|e| format!("condition {src:?}: {e}"))
            }
        }
    };
    let (success, failure) = match (
        cond(&metric.success_condition),
        cond(&metric.failure_condition),
    ) {
        (Ok(s), Ok(f)) => (s, f),
        (Err(e), _) | (_, Err(e)) => {
            out.phase = AnalysisPhase::Error;
            out.message = Some(e);
            return out;
        }
    };
    let (phase, why) = match (success, failure) {
        (_, Some(true)) => (
            AnalysisPhase::Failed,
            format!(
                "failureCondition {:?} holds",
                metric.failure_condition.as_deref().unwrap_or_default()
            ),
        ),
        (Some(true), _) => (
            AnalysisPhase::Successful,
            format!(
                "successCondition {:?} holds",
                metric.success_condition.as_deref().unwrap_or_default()
            ),
        ),
        (Some(false), None) => (
            AnalysisPhase::Failed,
            format!(
                "successCondition {:?} does not hold",
                metric.success_condition.as_deref().unwrap_or_default()
            ),
        ),
        (None, Some(false)) => (
            AnalysisPhase::Successful,
            format!(
                "failureCondition {:?} does not hold",
                metric.failure_condition.as_deref().unwrap_or_default()
            ),
        ),
        (Some(false), Some(false)) => (
            AnalysisPhase::Inconclusive,
            "neither successCondition nor failureCondition holds".to_string(),
        ),
        (None, None) => (
            AnalysisPhase::Error,
            "the metric has no condition".to_string(),
        ),
    };
    out.phase = phase;
    out.message = Some(why);
    out
}

/// Records a measurement of metric `idx` taken from `started` to `finished`, then re-assesses
/// the metric and the run.
pub fn record(
    spec: &AnalysisSpec,
    st: &mut AnalysisStatus,
    idx: usize,
    o: Outcome,
    started: Timestamp,
    finished: Timestamp,
) {
    let Some(m) = st.metrics.get_mut(idx) else {
        return;
    };
    match o.phase {
        AnalysisPhase::Error => {
            m.error += 1;
            m.consecutive_error += 1;
        }
        p => {
            m.count += 1;
            m.consecutive_error = 0;
            match p {
                AnalysisPhase::Successful => m.successful += 1,
                AnalysisPhase::Failed => m.failed += 1,
                _ => m.inconclusive += 1,
            }
        }
    }
    let mut query = o.query;
    if query.len() > MAX_QUERY_IN_STATUS {
        let mut cut = MAX_QUERY_IN_STATUS;
        while !query.is_char_boundary(cut) {
            cut -= 1;
        }
        query.truncate(cut);
        query.push('…');
    }
    m.measurements.push(Measurement {
        phase: o.phase,
        value: o.value,
        started_at: Time(started),
        finished_at: Time(finished),
        query,
        message: o.message,
    });
    if m.measurements.len() > MAX_MEASUREMENTS {
        let extra = m.measurements.len() - MAX_MEASUREMENTS;
        m.measurements.drain(..extra);
    }
    assess_metric(spec, m);
    assess_run(st);
}

/// A metric's phase from its counters (Argo: `failed > failureLimit` fails,
/// `inconclusive > inconclusiveLimit` is inconclusive, `consecutiveError > consecutiveErrorLimit`
/// errors; `count` successful-or-not measurements complete it).
pub fn assess_metric(spec: &AnalysisSpec, m: &mut MetricStatus) {
    let last = m
        .measurements
        .last()
        .and_then(|x| x.message.clone())
        .unwrap_or_default();
    let (phase, message) = if m.failed > spec.failure_limit.max(0) {
        (
            AnalysisPhase::Failed,
            format!(
                "{} failed measurement(s), more than failureLimit {}: {last}",
                m.failed, spec.failure_limit
            ),
        )
    } else if m.inconclusive > spec.inconclusive_limit.max(0) {
        (
            AnalysisPhase::Inconclusive,
            format!(
                "{} inconclusive measurement(s), more than inconclusiveLimit {}: {last}",
                m.inconclusive, spec.inconclusive_limit
            ),
        )
    } else if m.consecutive_error > spec.consecutive_error_limit.max(0) {
        (
            AnalysisPhase::Error,
            format!(
                "{} consecutive errors, more than consecutiveErrorLimit {}: {last}",
                m.consecutive_error, spec.consecutive_error_limit
            ),
        )
    } else if spec.count.is_some_and(|c| m.count >= c) {
        (
            AnalysisPhase::Successful,
            format!(
                "{} measurement(s) completed, {} successful",
                m.count, m.successful
            ),
        )
    } else {
        (AnalysisPhase::Running, last)
    };
    m.phase = phase;
    m.message = (!message.is_empty()).then_some(message);
}

/// The run's phase from its metrics: any Failed or Error metric fails it, then any
/// Inconclusive one makes it inconclusive; it is Successful when every metric is.
pub fn assess_run(st: &mut AnalysisStatus) {
    let pick = |p: AnalysisPhase| st.metrics.iter().find(|m| m.phase == p);
    let (phase, message) =
        if let Some(m) = pick(AnalysisPhase::Failed).or(pick(AnalysisPhase::Error)) {
            (
                AnalysisPhase::Failed,
                format!(
                    "metric {} failed: {}",
                    m.name,
                    m.message.clone().unwrap_or_default()
                ),
            )
        } else if let Some(m) = pick(AnalysisPhase::Inconclusive) {
            (
                AnalysisPhase::Inconclusive,
                format!(
                    "metric {} is inconclusive: {}",
                    m.name,
                    m.message.clone().unwrap_or_default()
                ),
            )
        } else if !st.metrics.is_empty()
            && st
                .metrics
                .iter()
                .all(|m| m.phase == AnalysisPhase::Successful)
        {
            (AnalysisPhase::Successful, "every metric passed".to_string())
        } else {
            let taken: i32 = st.metrics.iter().map(|m| m.count + m.error).sum();
            (
                AnalysisPhase::Running,
                if taken == 0 {
                    "waiting for the first measurement".to_string()
                } else {
                    format!("{taken} measurement(s) taken, none beyond its limits")
                },
            )
        };
    st.phase = phase;
    st.message = Some(message);
}

/// Resumes an inconclusive run: counters start again (measurements stay for the record) and
/// `initialDelay` applies again from `now`.
pub fn resume(spec: &AnalysisSpec, st: &mut AnalysisStatus, now: Timestamp) {
    if st.phase != AnalysisPhase::Inconclusive {
        return;
    }
    for m in &mut st.metrics {
        let kept = std::mem::take(&mut m.measurements);
        *m = metric_status(&m.name);
        m.measurements = kept;
    }
    sync_metrics(spec, st);
    st.started_at = Time(now);
    st.resume_armed = false;
    st.phase = AnalysisPhase::Running;
    st.message = Some("resumed by a person after an inconclusive result".into());
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
#[cfg(test)]
pub(crate) use tests::spec as run_tests_spec;
