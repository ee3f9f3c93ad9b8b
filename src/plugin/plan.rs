//! `kubectl zdr plan FILE`: what applying FILE would go through, computed offline with the real
//! planner: the waves of a rolling update (pods created and removed, the surge ceiling and the
//! availability floor at each), or the steps and traffic weights of a canary.

use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::describe;
use super::validate::{ReadError, display_name, read_documents};
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::crd::{CanaryStrategy, ZeroDowntimeRollout, ZeroDowntimeRolloutSpec, hot_swap};
use crate::hotswap::{SwapPath, classify};
use crate::planner::preview::{Gate, PreviewKind, StepPreview, canary_preview};
use crate::planner::{self, Params};
use crate::schema::{Checked, check_document};
use crate::validate::{Canary, Valid, validate};

/// Why a plan cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The manifest could not be read or parsed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// No ZeroDowntimeRollout in the manifest.
    #[error("{0}: no ZeroDowntimeRollout to plan:\n  {1}")]
    NoRollout(String, String),
    /// The spec would be rejected or reported invalid: no plan, the problems instead.
    #[error("{0}: not planned, the spec is invalid:\n  {1}")]
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

/// Reads every ZeroDowntimeRollout in `path` (multi-document YAML, `-` = stdin), checks it as
/// `kubectl zdr validate` does and renders its plan; refuses a manifest with any problem.
pub fn plan_file(path: &str, opts: &PlanOptions, from: Option<&str>) -> Result<String, PlanError> {
    let from = from.map(running_template).transpose()?;
    let docs = read_documents(path)?;
    let shown = display_name(path);
    let mut out = String::new();
    let mut others = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let (name, problems, rollout) = match check_document(doc) {
            Checked::Other(what) => {
                others.push(format!("document {} {what}", i + 1));
                continue;
            }
            Checked::Rollout {
                name,
                problems,
                rollout,
            } => (name, problems, rollout),
        };
        let Some(zdr) = rollout.filter(|_| problems.is_empty()) else {
            let lines: Vec<String> = problems.into_iter().map(|p| p.line).collect();
            return Err(PlanError::Invalid(
                format!("{shown}: ZeroDowntimeRollout {name}"),
                lines.join("\n  "),
            ));
        };
        out.push_str(&plan_rollout(&zdr, opts, from.as_ref())?);
    }
    if out.is_empty() {
        return Err(PlanError::NoRollout(shown.into(), others.join("\n  ")));
    }
    Ok(out)
}

/// The template of the first ZeroDowntimeRollout in `path`: the manifest applied now, which
/// says whether a change is swapped in place.
fn running_template(path: &str) -> Result<PodTemplateSpec, PlanError> {
    let shown = display_name(path);
    for doc in read_documents(path)? {
        if let Checked::Rollout {
            rollout: Some(z), ..
        } = check_document(&doc)
        {
            return Ok(z.spec.template);
        }
    }
    Err(PlanError::NoRollout(
        format!("{shown} (--from)"),
        "the running manifest must hold a valid ZeroDowntimeRollout".into(),
    ))
}

/// The plan of one rollout, as text; `from` is the running template, when known.
pub fn plan_rollout(
    zdr: &ZeroDowntimeRollout,
    opts: &PlanOptions,
    from: Option<&PodTemplateSpec>,
) -> Result<String, PlanError> {
    let name = zdr
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| "<unnamed>".into());
    let spec = &zdr.spec;
    let valid = validate(spec).map_err(|e| PlanError::Invalid(name.clone(), e.to_string()))?;
    if let (Some(c), Some(canary)) = (&spec.strategy.canary, &valid.canary) {
        return Ok(plan_canary(&name, spec, c, canary, &valid));
    }
    let mut out = String::new();
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
    let floor = if opts.fresh {
        "first install: no pods run yet, so availability starts at 0 and rises as pods turn Ready"
            .to_string()
    } else {
        format!("available pods never fall below {}", params.min_available())
    };
    let _ = writeln!(
        out,
        "  pods never exceed {}, {floor}; a pod counts after {}s Ready; each removed pod leaves traffic before it is deleted",
        params.max_pods(),
        spec.min_ready_seconds
    );
    let change = change(spec, &valid, from);
    notices(&mut out, &valid, change.as_ref());
    if let Some(Change::InPlace(_)) = change {
        in_place(&mut out, spec, &valid);
        return Ok(out);
    }
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
    timeline(&mut out, spec, &params, opts)?;
    Ok(out)
}

/// The waves the planner simulates for a replacement, as a table.
fn timeline(
    out: &mut String,
    spec: &ZeroDowntimeRolloutSpec,
    params: &Params,
    opts: &PlanOptions,
) -> Result<(), PlanError> {
    let from = (!opts.fresh).then_some("old");
    let timing = opts.timing;
    let timeline =
        planner::simulate_rollout(params, from, timing, 100_000).map_err(PlanError::Stuck)?;
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
    Ok(())
}

/// Which path a change takes with `hotSwap`, decided from the running template as the
/// controller decides it, in the words of the `HotSwap` condition.
enum Change {
    /// Swapped in place.
    InPlace(String),
    /// Pods are replaced.
    Replace(String),
}

/// The path of this change; None without `hotSwap` or without the running template.
fn change(
    spec: &ZeroDowntimeRolloutSpec,
    valid: &Valid,
    from: Option<&PodTemplateSpec>,
) -> Option<Change> {
    let (hs, old) = (spec.strategy.hot_swap.as_ref()?, from?);
    if let Some((_, why)) = crate::hotswap::refusal(spec, valid.max_unavailable) {
        return Some(Change::Replace(hot_swap::replace_message(
            &hs.container,
            &why,
        )));
    }
    Some(match classify(old, &spec.template, &hs.container) {
        SwapPath::InPlace {
            container,
            from_image,
            to_image,
        } => Change::InPlace(format!(
            "this change swaps container {container} in place ({from_image} -> {to_image}): no pod is created or deleted"
        )),
        SwapPath::Replace(why) => Change::Replace(hot_swap::replace_message(
            &hs.container,
            &hot_swap::not_eligible(&why),
        )),
    })
}

/// The conditions the controller sets from the spec alone (`HotSwap`), in their words; with
/// `hotSwap`, the path of this change when known, or how to learn it.
fn notices(out: &mut String, valid: &Valid, change: Option<&Change>) {
    for n in &valid.notices {
        let message = match change {
            _ if n.type_ != hot_swap::TYPE => n.message.clone(),
            Some(Change::InPlace(m) | Change::Replace(m)) => m.clone(),
            None if n.reason == hot_swap::Reason::Ready.as_str() => format!(
                "{}; pass --from FILE (the manifest applied now) to see which path this change takes",
                n.message
            ),
            None => n.message.clone(),
        };
        let _ = writeln!(out, "  {}: {message}", n.type_);
    }
}

/// The waves of a change swapped in place, instead of the replacement timeline.
fn in_place(out: &mut String, spec: &ZeroDowntimeRolloutSpec, valid: &Valid) {
    let drain = spec
        .strategy
        .hot_swap
        .as_ref()
        .map_or(0, |h| h.drain_timeout_seconds);
    let per_wave = valid.max_unavailable.min(spec.replicas).max(1);
    let waves = (spec.replicas + per_wave - 1) / per_wave;
    let _ = writeln!(
        out,
        "  in place: {waves} wave(s) of at most {per_wave} pod(s) (maxUnavailable), each out of endpoints while its idle slot restarts with the new image, then serving the new version once it said READY=1; the old version drains for up to {drain}s"
    );
}

/// The router a canary's weights go through, for people.
fn router(c: &CanaryStrategy) -> String {
    let Some(t) = &c.traffic_routing else {
        return "no router: pod counts approximate the weights (header routes need one)".into();
    };
    if let Some(g) = &t.gateway_api {
        return format!("traffic split by HTTPRoute {} (Gateway API)", g.http_route);
    }
    match &t.istio {
        Some(i) if i.virtual_service.routes.is_empty() => format!(
            "traffic split by VirtualService {} (Istio), every route naming both Services",
            i.virtual_service.name
        ),
        Some(i) => format!(
            "traffic split by VirtualService {} (Istio), routes {}",
            i.virtual_service.name,
            i.virtual_service.routes.join(", ")
        ),
        None => "no router".into(),
    }
}

/// The plan of a canary: each step as `canary_preview` sees it, then the promotion.
fn plan_canary(
    name: &str,
    spec: &ZeroDowntimeRolloutSpec,
    c: &CanaryStrategy,
    canary: &Canary,
    valid: &Valid,
) -> String {
    let mut out = String::new();
    let r = spec.replicas;
    let _ = writeln!(
        out,
        "rollout {name}: canary of {r} replicas, stable Service {}, canary Service {}, {}",
        c.stable_service,
        c.canary_service,
        router(c)
    );
    let _ = writeln!(
        out,
        "  maxSurge {} -> {} pod(s), maxUnavailable {} -> {} pod(s): pods never exceed {}, available pods never fall below {}; a weight rises only once the canary pods it needs are available",
        show(&c.max_surge),
        valid.max_surge,
        show(&c.max_unavailable),
        valid.max_unavailable,
        r + valid.max_surge,
        (r - valid.max_unavailable).max(0)
    );
    notices(&mut out, valid, None);
    if spec.paused {
        let _ = writeln!(
            out,
            "  spec.paused is true: nothing happens until it is resumed"
        );
    }
    let metrics: Vec<&str> = spec
        .analysis
        .iter()
        .flat_map(|a| a.metrics.iter().map(|m| m.name.as_str()))
        .collect();
    let preview = canary_preview(r, canary, valid.max_surge, valid.max_unavailable);
    for p in &preview {
        render_preview(&mut out, name, p, canary, &metrics);
    }
    out
}

/// One step (or the promotion) of a canary plan: what it does, what stands once it is done,
/// what it waits for.
fn render_preview(
    out: &mut String,
    name: &str,
    p: &StepPreview,
    canary: &Canary,
    metrics: &[&str],
) {
    let what = match (&p.kind, canary.steps.get(p.index)) {
        (PreviewKind::Promotion, _) | (_, None) => "promotion: the canary becomes stable".into(),
        (PreviewKind::Analysis, _) => format!("analysis of {}", metrics.join(", ")),
        (_, Some(step)) => describe::step(step),
    };
    let label = if p.kind == PreviewKind::Promotion {
        "then".to_string()
    } else {
        format!("step {}", p.index)
    };
    let _ = writeln!(out, "  {label}: {what}");
    let routes = if p.routes.is_empty() {
        String::new()
    } else {
        let rs: Vec<String> = p.routes.iter().map(describe::route).collect();
        format!(", header routes {}", rs.join(", "))
    };
    let waits = match p.gate {
        Gate::Pods if p.kind == PreviewKind::Promotion => {
            "the canary pods to carry all the traffic, then the stable Service selects the new revision, the weight returns to 0, header routes go and the old pods drain".into()
        }
        Gate::Pods if canary.routed => format!(
            "{} available canary pod(s) and the router carrying this traffic",
            p.canary_pods
        ),
        Gate::Pods => format!(
            "{} available canary pod(s) and the stable side down to {} pod(s)",
            p.canary_pods, p.stable_pods
        ),
        Gate::Pause(d) => describe::duration(d),
        Gate::Promote => format!("`kubectl zdr promote {name}`"),
        Gate::Analysis => {
            "every metric to pass a measurement taken after the step started (a failure aborts)"
                .into()
        }
    };
    let _ = writeln!(
        out,
        "    weight {}%{routes}, canary {} pod(s), stable {} pod(s); waits for {waits}",
        p.weight, p.canary_pods, p.stable_pods
    );
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
            None,
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
        let out = plan_rollout(&z, &PlanOptions::default(), None).unwrap();
        assert!(
            out.contains("analysis of the new revision: error-rate every 30s, first after 60s, until the update completes"),
            "{out}"
        );
        z.spec.analysis.as_mut().unwrap().metrics[0].success_condition = Some("result <".into());
        let e = plan_rollout(&z, &PlanOptions::default(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("InvalidAnalysis"), "{e}");
    }

    #[test]
    fn canary_plan_lists_steps_weights_pods_and_gates() {
        let mut z = zdr(
            json!({"canary": {"stableService": "s", "canaryService": "c",
            "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}},
            "steps": [{"setWeight": 10},
                {"setHeaderRoute": {"name": "beta", "match": [
                    {"headerName": "X-Canary", "headerValue": {"prefix": "be"}}]}},
                {"analysis": {}}, {"pause": {"duration": "2m"}}, {"pause": {}},
                {"setHeaderRoute": {"name": "beta"}}, {"setWeight": 50}]}}),
            10,
        );
        z.spec.analysis = Some(
            serde_json::from_value(json!({
                "prometheus": {"address": "http://p:9090"},
                "metrics": [{"name": "error-rate", "query": "q", "successCondition": "result < 0.01"}],
            }))
            .unwrap(),
        );
        let out = plan_rollout(&z, &PlanOptions::default(), None).unwrap();
        let expect = [
            "rollout web: canary of 10 replicas, stable Service s, canary Service c, traffic split by HTTPRoute web (Gateway API)",
            "  maxSurge 25% -> 3 pod(s), maxUnavailable 0 -> 0 pod(s): pods never exceed 13, available pods never fall below 10; a weight rises only once the canary pods it needs are available",
            "  step 0: set weight 10%",
            "    weight 10%, canary 1 pod(s), stable 9 pod(s); waits for 1 available canary pod(s) and the router carrying this traffic",
            "  step 1: header route beta (X-Canary starts with \"be\")",
            "    weight 10%, header routes beta (X-Canary starts with \"be\"), canary 1 pod(s), stable 9 pod(s); waits for 1 available canary pod(s) and the router carrying this traffic",
            "  step 2: analysis of error-rate",
            "    weight 10%, header routes beta (X-Canary starts with \"be\"), canary 1 pod(s), stable 9 pod(s); waits for every metric to pass a measurement taken after the step started (a failure aborts)",
            "  step 3: pause 2m",
            "    weight 10%, header routes beta (X-Canary starts with \"be\"), canary 1 pod(s), stable 9 pod(s); waits for 2m",
            "  step 4: pause until promoted",
            "    weight 10%, header routes beta (X-Canary starts with \"be\"), canary 1 pod(s), stable 9 pod(s); waits for `kubectl zdr promote web`",
            "  step 5: remove header route beta",
            "    weight 10%, canary 1 pod(s), stable 9 pod(s); waits for 1 available canary pod(s) and the router carrying this traffic",
            "  step 6: set weight 50%",
            "    weight 50%, canary 5 pod(s), stable 5 pod(s); waits for 5 available canary pod(s) and the router carrying this traffic",
            "  then: promotion: the canary becomes stable",
            "    weight 0%, canary 10 pod(s), stable 0 pod(s); waits for the canary pods to carry all the traffic, then the stable Service selects the new revision, the weight returns to 0, header routes go and the old pods drain",
        ];
        assert_eq!(out.lines().collect::<Vec<_>>(), expect, "{out}");
    }

    #[test]
    fn canary_plan_without_a_router_splits_by_pods() {
        let out = plan_rollout(
            &zdr(
                json!({"canary": {"stableService": "s", "canaryService": "c", "maxSurge": 1,
                "steps": [{"setWeight": 30}, {"setCanaryScale": {"replicas": 2}}, {"pause": {}}]}}),
                4,
            ),
            &PlanOptions::default(),
            None,
        )
        .unwrap();
        assert!(
            out.contains("no router: pod counts approximate the weights"),
            "{out}"
        );
        assert!(
            out.contains("weight 30%, canary 2 pod(s), stable 2 pod(s); waits for 2 available canary pod(s) and the stable side down to 2 pod(s)"),
            "{out}"
        );
        assert!(out.contains("  step 1: canary scale: 2 pod(s)"), "{out}");
        assert!(
            out.contains("  then: promotion: the canary becomes stable\n    weight 0%, canary 4 pod(s), stable 0 pod(s)"),
            "{out}"
        );
    }

    #[test]
    fn canary_plan_refuses_an_invalid_canary() {
        let e = plan_rollout(
            &zdr(
                json!({"canary": {"stableService": "s", "canaryService": "c",
                "steps": [{"setHeaderRoute": {"name": "b", "match": [
                    {"headerName": "X", "headerValue": {"exact": "1"}}]}}]}}),
                4,
            ),
            &PlanOptions::default(),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("HeaderRouteWithoutRouter"), "{e}");
    }

    #[test]
    fn invalid_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("zdr-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.yaml");
        std::fs::write(&f, "kind: ConfigMap\n").unwrap();
        let err = plan_file(f.to_str().unwrap(), &PlanOptions::default(), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "no ZeroDowntimeRollout to plan:\n  document 1 is a ConfigMap without apiVersion"
            ),
            "{err}"
        );
        assert!(
            plan_file("/nonexistent.yaml", &PlanOptions::default(), None)
                .unwrap_err()
                .to_string()
                .contains("cannot read")
        );
    }
}
