//! The background analysis inside a reconcile: resolve the Prometheus settings (Secrets through
//! the API), get a provider from the context's factory, resume on request, run one
//! [`analysis::step`], and detect a crash-looping new revision. The decisions stay in
//! `crate::analysis`; this file only wires them to the cluster.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Secret, SecretKeySelector};
use kube::{Api, ResourceExt};

use crate::analysis::provider::{
    DEFAULT_TIMEOUT, ErrorKind, MetricsProvider, PrometheusProvider, PrometheusSettings,
    ProviderError,
};
use crate::analysis::{self, Step, Vars, run};
use crate::crd::{
    AnalysisPhase, AnalysisSpec, AnalysisStatus, RESUME_ANALYSIS_ANNOTATION, REVISION_LABEL,
    ZeroDowntimeRollout,
};

/// Makes providers from settings (tests inject fakes).
pub trait ProviderFactory: Send + Sync {
    /// A provider for `settings`.
    fn provider(
        &self,
        settings: &PrometheusSettings,
    ) -> Result<Arc<dyn MetricsProvider>, ProviderError>;
}

/// Real Prometheus providers, reused while their settings do not change.
#[derive(Default)]
pub struct PrometheusFactory {
    cache: Mutex<Vec<(PrometheusSettings, Arc<dyn MetricsProvider>)>>,
}

impl ProviderFactory for PrometheusFactory {
    fn provider(
        &self,
        settings: &PrometheusSettings,
    ) -> Result<Arc<dyn MetricsProvider>, ProviderError> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, p)) = cache.iter().find(|(s, _)| s == settings) {
            return Ok(p.clone());
        }
        let p: Arc<dyn MetricsProvider> = Arc::new(PrometheusProvider::new(settings)?);
        if cache.len() >= 32 {
            cache.remove(0);
        }
        cache.push((settings.clone(), p.clone()));
        Ok(p)
    }
}

async fn secret_value(
    secrets: &Api<Secret>,
    sel: &SecretKeySelector,
) -> Result<Vec<u8>, ProviderError> {
    let err = |m: String| ProviderError::new(ErrorKind::Other, m);
    let secret = secrets
        .get(&sel.name)
        .await
        .map_err(|e| err(format!("Secret {:?}: {e}", sel.name)))?;
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(&sel.key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&sel.key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| err(format!("Secret {:?} has no key {:?}", sel.name, sel.key)))
}

/// The provider settings of `spec`, with Secrets read from namespace `ns`.
pub async fn settings(
    client: &kube::Client,
    ns: &str,
    spec: &AnalysisSpec,
) -> Result<PrometheusSettings, ProviderError> {
    let p = &spec.prometheus;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let bearer_token = match &p.bearer_token {
        Some(sel) => Some(
            String::from_utf8(secret_value(&secrets, sel).await?).map_err(|_| {
                ProviderError::new(ErrorKind::Other, "the bearer token is not UTF-8")
            })?,
        ),
        None => None,
    };
    let ca_pem = match &p.ca {
        Some(sel) => Some(secret_value(&secrets, sel).await?),
        None => None,
    };
    Ok(PrometheusSettings {
        address: p.address.clone(),
        timeout: p
            .timeout
            .filter(|t| !t.is_negative())
            .map(Duration::from)
            .unwrap_or(DEFAULT_TIMEOUT),
        headers: p
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
        bearer_token,
        ca_pem,
        insecure_skip_verify: p.insecure_skip_verify,
    })
}

/// The first pod of `revision` whose container is crash-looping, with a description.
pub fn crash_looping(pods: &[Arc<Pod>], revision: &str) -> Option<String> {
    pods.iter()
        .filter(|p| p.labels().get(REVISION_LABEL).map(String::as_str) == Some(revision))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .find_map(|p| {
            let c = super::pods::crashing_container(p)?;
            Some(format!(
                "pod {} container {} of the new revision is crash-looping ({} restarts{})",
                p.name_any(),
                c.container,
                c.restarts,
                c.waiting.map(|w| format!(", {w}")).unwrap_or_default()
            ))
        })
}

/// Applies a person's resume to an inconclusive run: a new value of the
/// `zdr.dev/resume-analysis` annotation, or a pause (`spec.paused` or `zdr.dev/paused`) set and
/// then cleared.
pub fn apply_resume(
    spec: &AnalysisSpec,
    st: &mut AnalysisStatus,
    token: Option<&str>,
    paused: bool,
    now: Timestamp,
) -> bool {
    if st.phase != AnalysisPhase::Inconclusive {
        return false;
    }
    if token.is_some() && token != st.resume_token.as_deref() {
        run::resume(spec, st, now);
        st.resume_token = token.map(str::to_string);
        return true;
    }
    if paused {
        st.resume_armed = true;
        return false;
    }
    if st.resume_armed {
        run::resume(spec, st, now);
        return true;
    }
    false
}

/// One reconcile's analysis of the update revision of `zdr`; `restart` forgets the recorded run.
pub async fn step(
    zdr: &ZeroDowntimeRollout,
    spec: &AnalysisSpec,
    client: &kube::Client,
    factory: &dyn ProviderFactory,
    vars: &Vars,
    now: Timestamp,
    restart: bool,
) -> Step {
    let token = zdr.annotations().get(RESUME_ANALYSIS_ANNOTATION).cloned();
    let prev = zdr
        .status
        .as_ref()
        .and_then(|s| s.analysis.clone())
        .filter(|a| a.revision == vars.revision && !restart);
    let mut prev = prev;
    if let Some(a) = prev.as_mut() {
        let paused = crate::crd::rollout_paused_by(zdr).is_some();
        apply_resume(spec, a, token.as_deref(), paused, now);
    }
    // Secrets are read, and a provider made, only when a measurement is due.
    let mut probe = match &prev {
        Some(p) => p.clone(),
        None => run::start(spec, &vars.revision, now),
    };
    run::sync_metrics(spec, &mut probe);
    let provider = if run::due(spec, &probe, now).is_empty() {
        Err(ProviderError::new(
            ErrorKind::Other,
            "no measurement due: no provider",
        ))
    } else {
        match settings(client, &vars.namespace, spec).await {
            Ok(s) => factory.provider(&s),
            Err(e) => Err(e),
        }
    };
    let provider_ref: Result<&dyn MetricsProvider, &ProviderError> = match &provider {
        Ok(p) => Ok(p.as_ref()),
        Err(e) => Err(e),
    };
    let mut out = analysis::step(spec, prev.as_ref(), provider_ref, vars, now, None).await;
    if out.status.phase != AnalysisPhase::Inconclusive {
        // Only a resume requested after the run turned inconclusive resumes it.
        out.status.resume_token = token;
    }
    out
}

/// What the update still waits for before it may become stable: the run to succeed (with
/// `count`), else a successful measurement of every metric. None when nothing.
pub fn waiting(spec: &AnalysisSpec, st: &AnalysisStatus) -> Option<String> {
    if st.phase == AnalysisPhase::Successful {
        return None;
    }
    if let Some(count) = spec.count {
        return Some(format!(
            "the analysis completes ({count} measurement(s) of each metric)"
        ));
    }
    let pending: Vec<&str> = st
        .metrics
        .iter()
        .filter(|m| m.successful == 0)
        .map(|m| m.name.as_str())
        .collect();
    (!pending.is_empty() || st.phase != AnalysisPhase::Running).then(|| {
        format!(
            "the analysis has a successful measurement of {}",
            if pending.is_empty() {
                "every metric".to_string()
            } else {
                pending.join(", ")
            }
        )
    })
}

/// Describes the failing metric: its name, last value and resolved query.
pub fn failure_note(st: &AnalysisStatus) -> String {
    let failing = st
        .metrics
        .iter()
        .find(|m| matches!(m.phase, AnalysisPhase::Failed | AnalysisPhase::Error));
    match failing.and_then(|m| Some((m, m.measurements.last()?))) {
        Some((m, last)) => format!(
            "metric {} = {} ({}): {}",
            m.name,
            last.value.as_deref().unwrap_or("no value"),
            last.query,
            m.message.as_deref().unwrap_or_default()
        ),
        None => st.message.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::run::{Outcome, record, start};

    fn inconclusive() -> (AnalysisSpec, AnalysisStatus) {
        let spec: AnalysisSpec = serde_json::from_value(serde_json::json!({
            "prometheus": {"address": "http://p"},
            "metrics": [{"name": "m", "query": "q", "successCondition": "result < 1"}],
        }))
        .unwrap();
        let t = Timestamp::from_second(1_780_000_000).unwrap();
        let mut st = start(&spec, "abc", t);
        let o = Outcome {
            phase: AnalysisPhase::Inconclusive,
            value: None,
            query: "q".into(),
            message: None,
        };
        record(&spec, &mut st, 0, o, t, t);
        st.resume_token = Some("old".into());
        (spec, st)
    }

    #[test]
    fn a_new_annotation_value_or_a_pause_toggle_resumes() {
        let now = Timestamp::from_second(1_780_000_100).unwrap();
        let (spec, mut st) = inconclusive();
        assert!(!apply_resume(&spec, &mut st, Some("old"), false, now));
        assert!(apply_resume(&spec, &mut st, Some("new"), false, now));
        assert_eq!(st.phase, AnalysisPhase::Running);
        assert_eq!(st.resume_token.as_deref(), Some("new"));

        let (spec, mut st) = inconclusive();
        assert!(
            !apply_resume(&spec, &mut st, Some("old"), true, now),
            "paused: armed"
        );
        assert!(st.resume_armed);
        assert!(
            apply_resume(&spec, &mut st, Some("old"), false, now),
            "unpaused: resumed"
        );
        assert_eq!(st.phase, AnalysisPhase::Running);
        assert!(!st.resume_armed);
    }

    #[test]
    fn crash_loops_are_seen_on_the_new_revision_only() {
        let pod = |rev: &str, restarts: i32| {
            Arc::new(
                serde_json::from_value::<Pod>(serde_json::json!({
                    "metadata": {"name": format!("p-{rev}"), "labels": {REVISION_LABEL: rev}},
                    "status": {"containerStatuses": [{"name": "app", "image": "i", "imageID": "",
                        "ready": false, "restartCount": restarts}]},
                }))
                .unwrap(),
            )
        };
        assert_eq!(crash_looping(&[pod("old", 9), pod("new", 2)], "new"), None);
        let why = crash_looping(&[pod("new", 3)], "new").unwrap();
        assert!(why.contains("p-new") && why.contains("3 restarts"), "{why}");
    }
}
