//! `kubectl zdr plan FILE`: what applying FILE would go through, computed offline with the real
//! planner: the waves of a rolling update (pods created and removed, the surge ceiling and the
//! availability floor at each), or the steps and traffic weights of a canary.

use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::ZeroDowntimeRollout;
use crate::planner::{self, Params};
use crate::validate::validate;

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    /// Not a ZeroDowntimeRollout manifest.
    #[error("{0} is not a valid ZeroDowntimeRollout manifest: {1}")]
    Parse(String, String),
    /// The spec would be rejected or reported invalid.
    #[error("{0}: {1}")]
    Invalid(String, String),
    /// The planner did not converge (a bug: please report it).
    #[error("planner did not converge: {0}")]
    Stuck(String),
}

fn show(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// How to plan.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlanOptions {
    /// A first install (no existing pods) instead of an update of running pods.
    pub fresh: bool,
    /// What the timeline assumes about the cluster.
    pub timing: planner::Timing,
}

/// Reads every ZeroDowntimeRollout in `path` (multi-document YAML) and renders its plan.
pub fn plan_file(path: &str, opts: &PlanOptions) -> Result<String, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|e| PlanError::Read(path.into(), e))?;
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| PlanError::Parse(path.into(), e.to_string()))?;
    let mut out = String::new();
    let mut found = 0;
    for doc in docs {
        if doc.get("kind").and_then(|k| k.as_str()) != Some("ZeroDowntimeRollout") {
            continue;
        }
        found += 1;
        let zdr: ZeroDowntimeRollout = serde_json::from_value(doc)
            .map_err(|e| PlanError::Parse(path.into(), e.to_string()))?;
        out.push_str(&plan_rollout(&zdr, opts)?);
    }
    if found == 0 {
        return Err(PlanError::Parse(
            path.into(),
            "no document of kind ZeroDowntimeRollout".into(),
        ));
    }
    Ok(out)
}

/// The plan of one rollout, as text.
pub fn plan_rollout(zdr: &ZeroDowntimeRollout, opts: &PlanOptions) -> Result<String, PlanError> {
    let name = zdr
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| "<unnamed>".into());
    let spec = &zdr.spec;
    let mut out = String::new();
    if let Some(canary) = &spec.strategy.canary {
        let _ = writeln!(
            out,
            "rollout {name}: canary, {} replicas, stable Service {}, canary Service {}",
            spec.replicas, canary.stable_service, canary.canary_service
        );
        let mut weight = 0;
        for (i, step) in canary.steps.iter().enumerate() {
            let what = if let Some(w) = step.set_weight {
                weight = w;
                let pods = (i64::from(spec.replicas) * i64::from(w) + 99) / 100;
                format!(
                    "set weight {w}%: {pods} canary pod(s), {}% of traffic to the canary",
                    w
                )
            } else if let Some(h) = &step.set_header_route {
                let m: Vec<String> = h
                    .matches
                    .iter()
                    .map(|m| {
                        let v = &m.header_value;
                        let (kind, val) = match (&v.exact, &v.prefix, &v.regex) {
                            (Some(x), _, _) => ("=", x),
                            (_, Some(x), _) => ("starts with", x),
                            (_, _, Some(x)) => ("~", x),
                            _ => ("?", &m.header_name),
                        };
                        format!("{} {kind} {val:?}", m.header_name)
                    })
                    .collect();
                format!(
                    "header route {:?}: requests with {} go to the canary (weight stays {weight}%)",
                    h.name,
                    m.join(" and ")
                )
            } else if step.analysis.is_some() {
                format!(
                    "analysis: run the SLO checks, continue only if they pass (weight {weight}%)"
                )
            } else if let Some(p) = &step.pause {
                match &p.duration {
                    Some(d) => format!("pause {d:?} (weight {weight}%)"),
                    None => format!("pause until `kubectl zdr promote` (weight {weight}%)"),
                }
            } else {
                "empty step".into()
            };
            let _ = writeln!(out, "  step {i}: {what}");
        }
        let _ = writeln!(out, "  then: promote the canary to stable, 100% of traffic");
        let _ = writeln!(
            out,
            "  note: this controller version does not execute canary steps yet; applying this manifest reports InvalidSpec/CanaryNotSupported"
        );
        return Ok(out);
    }
    let valid = validate(spec).map_err(|e| PlanError::Invalid(name.clone(), e.to_string()))?;
    let rolling = spec.strategy.rolling.clone().unwrap_or_default();
    let params = Params {
        replicas: spec.replicas,
        max_surge: valid.max_surge,
        max_unavailable: valid.max_unavailable,
        min_ready: planner::seconds(spec.min_ready_seconds),
        target_revision: "new".into(),
        stable_revision: Some("old".into()),
        paused: false,
        replacement: rolling.pod_replacement_policy,
    };
    let _ = writeln!(
        out,
        "rollout {name}: rolling update of {} replicas, maxSurge {} -> {} pod(s), maxUnavailable {} -> {} pod(s)",
        spec.replicas,
        show(&rolling.max_surge),
        valid.max_surge,
        show(&rolling.max_unavailable),
        valid.max_unavailable
    );
    let _ = writeln!(
        out,
        "  pods never exceed {}, available pods never fall below {}; a pod counts after {}s Ready; each removed pod leaves traffic before it is deleted",
        params.max_pods(),
        params.min_available(),
        spec.min_ready_seconds
    );
    if let Some(a) = &spec.analysis {
        let names: Vec<&str> = a.metrics.iter().map(|m| m.name.as_str()).collect();
        let _ = writeln!(
            out,
            "  analysis of the new revision: {} every {:?}{}{}; failed -> abort and roll back to the stable revision, inconclusive (no data) -> pause until `kubectl zdr resume`",
            names.join(", "),
            a.interval,
            a.initial_delay
                .map(|d| format!(", first after {d:?}"))
                .unwrap_or_default(),
            a.count
                .map(|c| format!(", {c} measurement(s) each"))
                .unwrap_or_else(|| ", until the update completes".into()),
        );
    }
    if spec.paused {
        let _ = writeln!(
            out,
            "  spec.paused is true: nothing happens until it is resumed"
        );
    }
    let from = (!opts.fresh).then_some("old");
    let timing = opts.timing;
    let timeline =
        planner::simulate_rollout(&params, from, timing, 100_000).map_err(PlanError::Stuck)?;
    let _ = writeln!(
        out,
        "  timeline: pods assumed Ready {}s after creation, minReadySeconds {}, a removed pod out of traffic at once and deleted {}s later (endpoint propagation); podReplacementPolicy {:?}",
        timing.ready_after.as_secs(),
        spec.min_ready_seconds,
        timing.propagation.as_secs(),
        params.replacement,
    );
    let _ = writeln!(
        out,
        "  {:<5} {:>6} {:>7} {:>7} {:>8} {:>5} {:>5} {:>9} {:>10}",
        "wave", "at", "create", "remove", "updated", "old", "pods", "draining", "available"
    );
    for (i, w) in timeline.waves.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:<5} {:>6} {:>7} {:>7} {:>8} {:>5} {:>5} {:>9} {:>10}",
            i + 1,
            format!("{}s", w.at.as_secs()),
            format!("+{}", w.created),
            format!("-{}", w.removed),
            w.updated,
            w.old,
            w.total,
            w.draining,
            w.available
        );
    }
    let _ = writeln!(
        out,
        "  done: {} wave(s), at the earliest {}s after the change",
        timeline.waves.len(),
        timeline.done_at.as_secs()
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn zdr(strategy: serde_json::Value, replicas: i32) -> ZeroDowntimeRollout {
        serde_json::from_value(json!({
            "apiVersion": "zdr.dev/v1alpha1", "kind": "ZeroDowntimeRollout",
            "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}}, "strategy": strategy}
        }))
        .unwrap()
    }

    #[test]
    fn rolling_plan_lists_bounded_waves() {
        let out = plan_rollout(
            &zdr(
                json!({"rolling": {"maxSurge": "25%", "maxUnavailable": 0}}),
                6,
            ),
            &PlanOptions::default(),
        )
        .unwrap();
        assert!(
            out.contains("maxSurge 25% -> 2 pod(s), maxUnavailable 0 -> 0 pod(s)"),
            "{out}"
        );
        assert!(
            out.contains("pods never exceed 8, available pods never fall below 6"),
            "{out}"
        );
        // 6 pods, 2 at a time: create 2, then each wave removes 2 old and creates 2 new.
        let rows: Vec<&str> = out
            .lines()
            .filter(|l| l.trim_start().starts_with(char::is_numeric))
            .collect();
        assert_eq!(
            rows.first()
                .map(|r| r.split_whitespace().collect::<Vec<_>>()),
            Some(vec!["1", "0s", "+2", "-0", "2", "6", "8", "0", "6"])
        );
        let last: Vec<&str> = rows.last().unwrap().split_whitespace().collect();
        assert_eq!(&last[4..6], &["6", "0"], "{out}");
        assert!(out.contains(&format!("done: {} wave(s)", rows.len())));
        // Ready after 1 s, minReadySeconds 0: a wave a second; 3 waves of 2 new pods.
        assert!(out.contains("at the earliest 3s after the change"), "{out}");
    }

    #[test]
    fn rolling_plan_mentions_the_analysis() {
        let mut z = zdr(json!({}), 3);
        z.spec.analysis = Some(
            serde_json::from_value(json!({
                "prometheus": {"address": "http://p:9090"}, "initialDelay": "1m",
                "metrics": [{"name": "error-rate", "query": "q", "successCondition": "result < 0.01"}],
            }))
            .unwrap(),
        );
        let out = plan_rollout(&z, &PlanOptions::default()).unwrap();
        assert!(
            out.contains("analysis of the new revision: error-rate every 30s, first after 60s, until the update completes"),
            "{out}"
        );
        z.spec.analysis.as_mut().unwrap().metrics[0].success_condition = Some("result <".into());
        let e = plan_rollout(&z, &PlanOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("InvalidAnalysis"), "{e}");
    }

    #[test]
    fn canary_plan_lists_steps_and_weights() {
        let out = plan_rollout(
            &zdr(
                json!({"canary": {"stableService": "s", "canaryService": "c",
                "steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}]}}),
                10,
            ),
            &PlanOptions::default(),
        )
        .unwrap();
        assert!(
            out.contains("step 0: set weight 10%: 1 canary pod(s)"),
            "{out}"
        );
        assert!(
            out.contains("step 1: pause until `kubectl zdr promote` (weight 10%)"),
            "{out}"
        );
        assert!(
            out.contains("step 2: set weight 50%: 5 canary pod(s)"),
            "{out}"
        );
    }

    #[test]
    fn invalid_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("zdr-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.yaml");
        std::fs::write(&f, "kind: ConfigMap\n").unwrap();
        let err = plan_file(f.to_str().unwrap(), &PlanOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no document of kind ZeroDowntimeRollout"),
            "{err}"
        );
        assert!(
            plan_file("/nonexistent.yaml", &PlanOptions::default())
                .unwrap_err()
                .to_string()
                .contains("cannot read")
        );
    }
}
