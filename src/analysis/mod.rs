//! SLO analysis against Prometheus: the condition language ([`expr`]), query placeholders
//! ([`query`]), the metrics source behind a trait ([`provider`]), the run state machine
//! ([`run`]) and SLO burn rates ([`burnrate`]). Free of Kubernetes API calls: the controller
//! (and the canary `analysis` step) call [`step`] with the recorded status and get the new one.

pub mod burnrate;
pub mod expr;
pub mod provider;
pub mod query;
pub mod run;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;

pub use provider::{MetricsProvider, ProviderError, Sample};
pub use query::Vars;
pub use run::{Outcome, Verdict};

use crate::crd::{AnalysisMetric, AnalysisPhase, AnalysisSpec, AnalysisStatus};

/// Checks what admission cannot: every condition parses, every query renders (no unknown
/// placeholder), metric names are unique. The error names the metric and the position.
pub fn validate(spec: &AnalysisSpec) -> Result<(), String> {
    let vars = Vars::default();
    let mut seen = std::collections::BTreeSet::new();
    for m in &spec.metrics {
        if !seen.insert(m.name.as_str()) {
            return Err(format!("metric name {:?} is used twice", m.name));
        }
        let at = |what: &str| format!("metric {:?}: {what}", m.name);
        match (&m.query, &m.slo) {
            (Some(q), None) => {
                query::render(q, &vars.table(&[])).map_err(|e| at(&format!("query: {e}")))?;
                if m.success_condition.is_none() && m.failure_condition.is_none() {
                    return Err(at("a query needs a successCondition or a failureCondition"));
                }
                for (name, c) in [
                    ("successCondition", &m.success_condition),
                    ("failureCondition", &m.failure_condition),
                ] {
                    if let Some(src) = c {
                        expr::Expr::parse(src)
                            .map_err(|e| at(&format!("{name} {src:?} does not parse: {e}")))?;
                    }
                }
            }
            (None, Some(slo)) => {
                if m.success_condition.is_some() || m.failure_condition.is_some() {
                    return Err(at(
                        "an slo metric takes no successCondition or failureCondition",
                    ));
                }
                if !(0.0..100.0).contains(&slo.objective) {
                    return Err(at(
                        "slo.objective must be at least 0 and below 100 (percent)",
                    ));
                }
                let pairs = burnrate::pairs(slo);
                if pairs.iter().any(|p| p.short.is_zero() || p.long < p.short) {
                    return Err(at("each slo window needs 0 < short <= long"));
                }
                burnrate::queries(slo, &vars, &burnrate::windows(&pairs))
                    .map_err(|e| at(&format!("slo query: {e}")))?;
            }
            _ => return Err(at("set exactly one of query and slo")),
        }
    }
    Ok(())
}

/// What one [`step`] decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The status to record.
    pub status: AnalysisStatus,
    /// What it means for the rollout.
    pub verdict: Verdict,
    /// When to come back for the next measurement.
    pub wake: Option<Duration>,
    /// Whether this step measured anything (the status changed).
    pub measured: bool,
    /// The phases of the measurements this step took.
    pub taken: Vec<AnalysisPhase>,
}

/// Measures one metric now.
async fn measure(
    metric: &AnalysisMetric,
    provider: Result<&dyn MetricsProvider, &ProviderError>,
    vars: &Vars,
    at: Option<Timestamp>,
) -> Outcome {
    let error = |query: String, message: String| Outcome {
        phase: AnalysisPhase::Error,
        value: None,
        query,
        message: Some(message),
    };
    match (&metric.query, &metric.slo) {
        (Some(template), _) => {
            let q = match query::render(template, &vars.table(&[])) {
                Ok(q) => q,
                Err(e) => return error(template.clone(), e.to_string()),
            };
            let provider = match provider {
                Ok(p) => p,
                Err(e) => return error(q, e.to_string()),
            };
            match provider.query(&q, at).await {
                Ok(sample) => run::judge(metric, &q, &sample),
                Err(e) => error(q, e.to_string()),
            }
        }
        (None, Some(slo)) => {
            let pairs = burnrate::pairs(slo);
            let windows = burnrate::windows(&pairs);
            let qs = match burnrate::queries(slo, vars, &windows) {
                Ok(q) => q,
                Err(e) => return error(slo.bad_query.clone(), e.to_string()),
            };
            let shown = qs
                .first()
                .map(|(b, t)| format!("({b}) / ({t})"))
                .unwrap_or_default();
            let provider = match provider {
                Ok(p) => p,
                Err(e) => return error(shown, e.to_string()),
            };
            let answers = futures::future::join_all(qs.iter().map(|(b, t)| async move {
                let (b, t) = futures::join!(provider.query(b, at), provider.query(t, at));
                Ok::<_, ProviderError>((b?, t?))
            }))
            .await;
            let mut per_window = BTreeMap::new();
            for (w, a) in windows.iter().zip(answers) {
                match a {
                    Ok((bad, total)) => {
                        let bad = burnrate::total_of(&bad).or(match bad {
                            Sample::Vector(v) if v.is_empty() => Some(0.0),
                            _ => None,
                        });
                        per_window.insert(*w, (bad, burnrate::total_of(&total)));
                    }
                    Err(e) => return error(shown, e.to_string()),
                }
            }
            burnrate::judge(slo.objective, &pairs, &per_window, shown)
        }
        (None, None) => error(String::new(), "the metric has neither query nor slo".into()),
    }
}

/// One reconcile's worth of analysis: starts (or continues, from `prev`) the run of
/// `vars.revision`, measures the metrics that are due at `now` (concurrently), records them
/// and returns the new status, the verdict and when to come back. `at` is the evaluation time
/// sent to Prometheus (None: its own now).
pub async fn step(
    spec: &AnalysisSpec,
    prev: Option<&AnalysisStatus>,
    provider: Result<&dyn MetricsProvider, &ProviderError>,
    vars: &Vars,
    now: Timestamp,
    at: Option<Timestamp>,
) -> Step {
    // Status keeps whole seconds (metav1.Time): so does the run, so that a run read back from
    // status after a restart is exactly the run that was written.
    let seconds = |t: Timestamp| Timestamp::from_second(t.as_second()).unwrap_or(t);
    let now = seconds(now);
    let mut st = match prev {
        Some(p) if p.revision == vars.revision => p.clone(),
        _ => run::start(spec, &vars.revision, now),
    };
    run::sync_metrics(spec, &mut st);
    let due = run::due(spec, &st, now);
    let measured = !due.is_empty();
    let clock = Instant::now();
    let outcomes = futures::future::join_all(due.iter().map(|i| {
        let metric = &spec.metrics[*i];
        measure(metric, provider, vars, at)
    }))
    .await;
    let finished = seconds(
        now.checked_add(jiff::SignedDuration::try_from(clock.elapsed()).unwrap_or_default())
            .unwrap_or(now),
    );
    let taken = outcomes.iter().map(|o| o.phase).collect();
    for (i, o) in due.into_iter().zip(outcomes) {
        run::record(spec, &mut st, i, o, now, finished);
    }
    if !measured && st.phase == AnalysisPhase::Running {
        // Limits may have changed in the spec since the last measurement.
        for m in &mut st.metrics {
            if m.count + m.error > 0 {
                run::assess_metric(spec, m);
            }
        }
        run::assess_run(&mut st);
    }
    Step {
        verdict: st.phase.into(),
        wake: run::wake(spec, &st, finished),
        measured,
        taken,
        status: st,
    }
}

#[cfg(test)]
mod tests;
