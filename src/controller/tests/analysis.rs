//! The background analysis against the mocked API server, with a fake Prometheus: abort and
//! rollback, pause, crash loop, invalid condition, the abort annotation, Secrets.

use std::sync::Mutex;

use super::*;
use crate::analysis::provider::{
    MetricsProvider, PrometheusSettings, ProviderError, QueryFuture, Sample,
};
use crate::controller::analysis::ProviderFactory;

/// A Prometheus that always answers `answer` and records the queries and settings.
struct Fake {
    answer: Sample,
    queries: Mutex<Vec<String>>,
    settings: Mutex<Vec<PrometheusSettings>>,
}

impl Fake {
    fn new(answer: Sample) -> Arc<Self> {
        Arc::new(Self {
            answer,
            queries: Mutex::default(),
            settings: Mutex::default(),
        })
    }
}

impl MetricsProvider for Fake {
    fn query<'a>(&'a self, query: &'a str, _at: Option<Timestamp>) -> QueryFuture<'a> {
        self.queries.lock().unwrap().push(query.to_string());
        let a = self.answer.clone();
        Box::pin(async move { Ok(a) })
    }
}

struct Factory(Arc<Fake>);

impl ProviderFactory for Factory {
    fn provider(
        &self,
        settings: &PrometheusSettings,
    ) -> Result<Arc<dyn MetricsProvider>, ProviderError> {
        self.0.settings.lock().unwrap().push(settings.clone());
        Ok(self.0.clone())
    }
}

fn with_analysis(zdr: &mut ZeroDowntimeRollout) {
    zdr.spec.analysis = Some(
        serde_json::from_value(json!({
            "prometheus": {"address": "http://prometheus.monitoring:9090", "timeout": "3s",
                           "headers": [{"name": "X-Scope-OrgID", "value": "shop"}]},
            "interval": "30s",
            "metrics": [{"name": "error-rate",
                         "query": "sum(rate(http_requests_total{code=~\"5..\",zdr_revision=\"{{revision}}\",namespace=\"{{namespace}}\"}[1m])) / sum(rate(http_requests_total{zdr_revision=\"{{revision}}\"}[1m]))",
                         "successCondition": "result < 0.01"}],
        }))
        .unwrap(),
    );
}

fn cond<'a>(s: &'a Value, type_: &str) -> &'a Value {
    s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {s}"))
}

#[tokio::test]
async fn a_bad_versions_error_rate_aborts_and_rolls_back_to_stable() {
    let fake = Fake::new(Sample::Vector(vec![(Default::default(), 0.2)]));
    let mut h = harness_with(NOW, Arc::new(Factory(fake.clone())));
    let (mut zdr, old, new) = mid_rollout(&mut h);
    with_analysis(&mut zdr);
    add_serving(&mut h, "old-a", &old);
    add_serving(&mut h, "new-a", &new);
    let task = tokio::spawn(reconcile(Arc::new(zdr.clone()), h.ctx.clone()));

    let ev = h.api.expect_event().await;
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["reason"], "AnalysisFailed");
    let note = ev["note"].as_str().unwrap();
    assert!(
        note.contains("error-rate") && note.contains("0.2"),
        "{note}"
    );
    assert!(
        note.contains(&format!("zdr_revision=\"{new}\"")),
        "the resolved query: {note}"
    );
    // Back to stable: a pod of the old revision is created first (surge 1); new-a stays
    // in traffic until the old pod is available (maxUnavailable 0).
    let pod = h.api.expect_pod_create().await;
    assert_eq!(
        pod["body"]["metadata"]["labels"]["zdr.dev/revision"],
        old.as_str()
    );
    assert_eq!(pod["body"]["spec"]["containers"][0]["image"], "web:1");
    let s = &h.api.expect_status().await;
    assert_eq!(s["phase"], "Aborted");
    assert_eq!(s["abortedRevision"], new.as_str());
    assert_eq!(s["stableRevision"], old.as_str());
    let aborted = cond(s, "Aborted");
    assert_eq!(
        (aborted["status"].as_str(), aborted["reason"].as_str()),
        (Some("True"), Some("AnalysisFailed"))
    );
    let a = &s["analysis"];
    assert_eq!(a["phase"], "Failed");
    assert_eq!(a["revision"], new.as_str());
    let m = &a["metrics"][0];
    assert_eq!(
        (
            m["name"].as_str(),
            m["phase"].as_str(),
            m["failed"].as_i64()
        ),
        (Some("error-rate"), Some("Failed"), Some(1))
    );
    let meas = &m["measurements"][0];
    assert_eq!(meas["value"], "[0.2]");
    assert_eq!(meas["phase"], "Failed");
    assert!(meas["query"].as_str().unwrap().contains("namespace=\"ns\""));
    task.await.unwrap().unwrap();
    assert_eq!(fake.queries.lock().unwrap().len(), 1);
    let settings = fake.settings.lock().unwrap()[0].clone();
    assert_eq!(settings.timeout, Duration::from_secs(3));
    assert_eq!(
        settings.headers,
        vec![("X-Scope-OrgID".to_string(), "shop".to_string())]
    );

    // Next reconcile: the old pod is available, so new-a is drained (gate False) before
    // any delete; the aborted analysis is not measured again.
    let mut zdr2 = zdr.clone();
    zdr2.status = Some(serde_json::from_value(s.clone()).unwrap());
    let created = pod["body"]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    add(
        &mut h.pods,
        owned_pod(&created, &old, true, Some("True"), json!({})),
    );
    add(&mut h.slices, slice("new-a", true));
    let task = tokio::spawn(reconcile(Arc::new(zdr2), h.ctx.clone()));
    let gate = h
        .api
        .expect(
            Method::PATCH,
            "/api/v1/namespaces/ns/pods/new-a/status?&fieldManager=zdr-controller",
            pod_reply("new-a"),
        )
        .await;
    assert_eq!(gate["body"]["status"]["conditions"][0]["status"], "False");
    let status = h.api.expect_status().await;
    assert_eq!(status["phase"], "Aborted");
    assert_eq!(status["analysis"]["phase"], "Failed");
    task.await.unwrap().unwrap();
    assert_eq!(
        fake.queries.lock().unwrap().len(),
        1,
        "no measurement after the abort"
    );
}

#[tokio::test]
async fn an_empty_result_pauses_the_rollout_and_says_so() {
    let fake = Fake::new(Sample::Vector(vec![]));
    let mut h = harness_with(NOW, Arc::new(Factory(fake.clone())));
    let (mut zdr, old, new) = mid_rollout(&mut h);
    with_analysis(&mut zdr);
    add_serving(&mut h, "old-a", &old);
    add_serving(&mut h, "new-a", &new);
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    // Paused: no pod is created or removed; an event and the status say why.
    let ev = h.api.expect_event().await;
    assert_eq!(ev["reason"], "RolloutPaused");
    let ev = h.api.expect_event().await;
    assert_eq!(ev["reason"], "AnalysisInconclusive");
    assert_eq!(ev["action"], "Blocked");
    let s = &h.api.expect_status().await;
    assert_eq!(s["phase"], "Paused");
    assert_eq!(cond(s, "Blocked")["reason"], "AnalysisInconclusive");
    let message = s["message"].as_str().unwrap();
    assert!(
        !message.contains("blocked:"),
        "said once, as the hold: {message}"
    );
    let paused = cond(s, "Paused");
    assert_eq!(paused["reason"], "AnalysisInconclusive");
    let msg = paused["message"].as_str().unwrap();
    assert!(
        msg.contains("empty result") && msg.contains(&format!("zdr_revision=\"{new}\"")),
        "{msg}"
    );
    assert!(msg.contains("kubectl zdr resume"), "{msg}");
    assert_eq!(s["analysis"]["phase"], "Inconclusive");
    assert!(s.get("abortedRevision").is_none());
    h.api.expect_nothing().await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_crash_looping_canary_aborts_even_without_metrics() {
    let fake = Fake::new(Sample::Vector(vec![]));
    let mut h = harness_with(NOW, Arc::new(Factory(fake.clone())));
    let (mut zdr, old, new) = mid_rollout(&mut h);
    with_analysis(&mut zdr);
    add_serving(&mut h, "old-a", &old);
    add_serving(&mut h, "old-b", &old);
    let mut crashing = owned_pod("new-a", &new, false, Some("True"), json!({}));
    crashing.status.as_mut().unwrap().container_statuses = Some(vec![
        serde_json::from_value(json!({
            "name": "app", "image": "web:2", "imageID": "", "ready": false, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}
        }))
        .unwrap(),
    ]);
    add(&mut h.pods, crashing);
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    let ev = h.api.expect_event().await;
    assert_eq!(ev["reason"], "CanaryCrashLooping");
    assert!(ev["note"].as_str().unwrap().contains("new-a"));
    // new-a is not available: it goes at once (not Ready, no endpoint lists it).
    let del = h
        .api
        .expect(
            Method::DELETE,
            "/api/v1/namespaces/ns/pods/new-a?",
            pod_reply("new-a"),
        )
        .await;
    assert_eq!(del["body"]["preconditions"]["uid"], "uid-new-a");
    let s = &h.api.expect_status().await;
    assert_eq!(s["phase"], "Aborted");
    assert_eq!(cond(s, "Aborted")["reason"], "CanaryCrashLooping");
    task.await.unwrap().unwrap();
    assert!(fake.queries.lock().unwrap().is_empty(), "no query needed");
}

#[tokio::test]
async fn a_condition_that_does_not_parse_is_an_invalid_spec() {
    let fake = Fake::new(Sample::Scalar(0.0));
    let mut h = harness_with(NOW, Arc::new(Factory(fake.clone())));
    let (mut zdr, _, _) = mid_rollout(&mut h);
    with_analysis(&mut zdr);
    zdr.spec.analysis.as_mut().unwrap().metrics[0].success_condition =
        Some("result < = 0.01".into());
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    let ev = h.api.expect_event().await;
    assert_eq!(ev["reason"], "InvalidAnalysis");
    let status = h.api.expect_status().await;
    let c = cond(&status, "InvalidSpec");
    assert_eq!(c["reason"], "InvalidAnalysis");
    assert!(c["message"].as_str().unwrap().contains("column 10"), "{c}");
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    assert!(fake.queries.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_abort_annotation_rolls_back_without_measuring() {
    let fake = Fake::new(Sample::Scalar(0.0));
    let mut h = harness_with(NOW, Arc::new(Factory(fake.clone())));
    let (mut zdr, old, new) = mid_rollout(&mut h);
    with_analysis(&mut zdr);
    zdr.metadata.annotations = Some([("zdr.dev/abort".to_string(), new.clone())].into());
    add_serving(&mut h, "old-a", &old);
    add_serving(&mut h, "new-a", &new);
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    let ev = h.api.expect_event().await;
    assert_eq!(ev["reason"], "AbortedByUser");
    h.api.expect_pod_create().await;
    let s = &h.api.expect_status().await;
    assert_eq!(s["phase"], "Aborted");
    assert_eq!(cond(s, "Aborted")["reason"], "AbortedByUser");
    task.await.unwrap().unwrap();
    assert!(fake.queries.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_bearer_token_and_ca_are_read_from_secrets() {
    let fake = Fake::new(Sample::Scalar(0.0));
    let mut h = harness_with(NOW, Arc::new(Factory(fake.clone())));
    let (mut zdr, old, new) = mid_rollout(&mut h);
    with_analysis(&mut zdr);
    let prom = &mut zdr.spec.analysis.as_mut().unwrap().prometheus;
    prom.bearer_token =
        Some(serde_json::from_value(json!({"name": "prom-auth", "key": "token"})).unwrap());
    prom.ca = Some(serde_json::from_value(json!({"name": "prom-ca", "key": "ca.crt"})).unwrap());
    add_serving(&mut h, "old-a", &old);
    add_serving(&mut h, "new-a", &new);
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    // base64("s3cret\n") and base64("PEM")
    h.api
        .expect(
            Method::GET,
            "/api/v1/namespaces/ns/secrets/prom-auth",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prom-auth"},
                   "data": {"token": "czNjcmV0Cg=="}}),
        )
        .await;
    h.api
        .expect(
            Method::GET,
            "/api/v1/namespaces/ns/secrets/prom-ca",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prom-ca"},
                   "data": {"ca.crt": "UEVN"}}),
        )
        .await;
    // Then the rollout proceeds (the error rate 0 passes): a new pod of the update revision.
    let pod = h.api.expect_pod_create().await;
    assert_eq!(
        pod["body"]["metadata"]["labels"]["zdr.dev/revision"],
        new.as_str()
    );
    let s = &h.api.expect_status().await;
    assert_eq!(s["phase"], "Progressing");
    assert_eq!(
        s["analysis"]["metrics"][0]["measurements"][0]["phase"],
        "Successful"
    );
    task.await.unwrap().unwrap();
    let settings = fake.settings.lock().unwrap()[0].clone();
    assert_eq!(settings.bearer_token.as_deref(), Some("s3cret\n"));
    assert_eq!(settings.ca_pem.as_deref(), Some(&b"PEM"[..]));
}

#[tokio::test]
async fn a_missing_secret_is_an_error_measurement_not_a_failure() {
    let fake = Fake::new(Sample::Scalar(0.0));
    let mut h = harness_with(NOW, Arc::new(Factory(fake.clone())));
    let (mut zdr, old, new) = mid_rollout(&mut h);
    with_analysis(&mut zdr);
    zdr.spec.analysis.as_mut().unwrap().prometheus.bearer_token =
        Some(serde_json::from_value(json!({"name": "gone", "key": "token"})).unwrap());
    add_serving(&mut h, "old-a", &old);
    add_serving(&mut h, "new-a", &new);
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    let (req, send) = h.api.0.next_request().await.expect("the Secret is read");
    allowed(&req);
    assert_eq!(req.uri().path(), "/api/v1/namespaces/ns/secrets/gone");
    send.send_response(
        Response::builder()
            .status(404)
            .body(Body::from(
                serde_json::to_vec(
                    &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "secrets \"gone\" not found", "reason": "NotFound", "code": 404}),
                )
                .unwrap(),
            ))
            .unwrap(),
    );
    h.api.expect_pod_create().await;
    let status = h.api.expect_status().await;
    let m = &status["analysis"]["metrics"][0];
    assert_eq!(m["measurements"][0]["phase"], "Error");
    assert!(
        m["measurements"][0]["message"]
            .as_str()
            .unwrap()
            .contains("gone"),
        "{m}"
    );
    assert_eq!(m["consecutiveError"], 1);
    assert_eq!(status["phase"], "Progressing");
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(Duration::from_secs(5)),
        "retried after the error backoff"
    );
    assert!(fake.queries.lock().unwrap().is_empty());
}

/// Every pod already runs the update (2 of 2, available); only the analysis is left.
fn all_updated(h: &mut Harness, extra: Value) -> (ZeroDowntimeRollout, String, String) {
    let (mut zdr, old, new) = mid_rollout(h);
    with_analysis(&mut zdr);
    if let Some(m) = extra.as_object() {
        let mut a = serde_json::to_value(zdr.spec.analysis.as_ref().unwrap()).unwrap();
        for (k, v) in m {
            a[k] = v.clone();
        }
        zdr.spec.analysis = Some(serde_json::from_value(a).unwrap());
    }
    add_serving(h, "new-a", &new);
    add_serving(h, "new-b", &new);
    (zdr, old, new)
}

#[tokio::test]
async fn an_unmeasured_update_does_not_become_stable() {
    let fake = Fake::new(Sample::Scalar(0.001));
    let mut h = harness_with(NOW, Arc::new(Factory(fake.clone())));
    let (zdr, old, new) = all_updated(&mut h, json!({"initialDelay": "1m"}));
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    let s = &h.api.expect_status().await;
    assert_eq!(s["phase"], "Progressing");
    assert_eq!(
        s["stableRevision"],
        old.as_str(),
        "not stable before it is measured"
    );
    let msg = s["message"].as_str().unwrap();
    assert!(msg.contains(&format!("revision {new} becomes stable once the analysis has a successful measurement of error-rate")), "{msg}");
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(Duration::from_secs(60)),
        "back for the first measurement"
    );
    assert!(fake.queries.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_measured_good_update_becomes_stable() {
    let fake = Fake::new(Sample::Scalar(0.001));
    let mut h = harness_with(NOW, Arc::new(Factory(fake.clone())));
    let (zdr, _, new) = all_updated(&mut h, json!({}));
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    let ev = h.api.expect_event().await;
    assert_eq!(ev["reason"], "RolloutCompleted");
    let s = &h.api.expect_status().await;
    assert_eq!(s["phase"], "Healthy");
    assert_eq!(s["stableRevision"], new.as_str());
    assert_eq!(s["analysis"]["phase"], "Successful");
    assert_eq!(s["analysis"]["metrics"][0]["successful"], 1);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn secrets_are_not_read_when_no_measurement_is_due() {
    let fake = Fake::new(Sample::Scalar(0.0));
    let mut h = harness_with(NOW, Arc::new(Factory(fake.clone())));
    let (mut zdr, old, new) = mid_rollout(&mut h);
    with_analysis(&mut zdr);
    let a = zdr.spec.analysis.as_mut().unwrap();
    a.initial_delay = Some("5m".parse().unwrap());
    a.prometheus.bearer_token =
        Some(serde_json::from_value(json!({"name": "prom-auth", "key": "token"})).unwrap());
    add_serving(&mut h, "old-a", &old);
    add_serving(&mut h, "new-a", &new);
    let task = tokio::spawn(reconcile(Arc::new(zdr), h.ctx.clone()));
    // No GET of the Secret: straight to the rollout's own work.
    h.api.expect_pod_create().await;
    let status = h.api.expect_status().await;
    assert_eq!(status["analysis"]["phase"], "Running");
    assert_eq!(
        task.await.unwrap().unwrap(),
        Action::requeue(Duration::from_secs(300))
    );
    assert!(fake.settings.lock().unwrap().is_empty());
}
