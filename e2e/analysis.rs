//! e2e: an update whose error rate is bad is aborted by its SLO analysis and rolled back to the
//! stable revision within the rolling bounds; an AnalysisFailed event is recorded.
//!
//! Prometheus is faked by an HTTP server in this test process on 127.0.0.1 that answers every
//! instant query with an error rate of 0.2, so the test needs the controller the harness starts
//! on this machine (it is skipped with `ZDR_E2E_EXTERNAL_CONTROLLER=1`). The first revision is
//! not analysed (there is no stable revision to compare with or roll back to), so it becomes
//! Healthy; the update is measured at once and fails.

use std::io::Write;

use axum::Json;
use axum::routing::any;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::json;
use zdr::crd::{AnalysisPhase, Phase, REVISION_LABEL, condition};

use crate::cluster::{
    NETEXEC, app_container, containers_patch, healthy, image_v1, image_v2, rollout, setup,
};
use crate::pods::Bounds;

/// A Prometheus that says 20% of requests fail, whatever the query.
async fn fake_prometheus() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let app = axum::Router::new().route(
        "/api/v1/query",
        any(|| async {
            let now = jiff::Timestamp::now().as_second();
            Json(json!({"status": "success", "data": {"resultType": "vector",
                "result": [{"metric": {}, "value": [now, "0.2"]}]}}))
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

pub async fn a_failing_analysis_aborts_the_update_and_rolls_back_to_stable() {
    let Some(mut env) = setup("analysis").await else {
        return;
    };
    if !env.has_local_controller() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_failing_analysis_aborts_the_update_and_rolls_back_to_stable: the fake Prometheus runs on this machine's loopback, which an in-cluster controller cannot reach"
        );
        env.teardown().await;
        return;
    }
    let address = fake_prometheus().await;
    let name = "slo";
    let replicas = 3;
    let spec = json!({
        "strategy": {"rolling": {"maxSurge": 1, "maxUnavailable": 0, "podReplacementPolicy": "TerminationComplete"}},
        "analysis": {
            "prometheus": {"address": address, "timeout": "2s"},
            "interval": "5s",
            "metrics": [{"name": "error-rate",
                         "query": "sum(rate(http_requests_total{code=~\"5..\",zdr_revision=\"{{revision}}\"}[1m])) / sum(rate(http_requests_total{zdr_revision=\"{{revision}}\"}[1m]))",
                         "successCondition": "result < 0.01"}],
        },
    });
    let bounds = Bounds::new(replicas, &IntOrString::Int(1), &IntOrString::Int(0));
    let generation = env
        .create(&rollout(
            name,
            replicas,
            app_container(&image_v1(), NETEXEC),
            spec,
        ))
        .await;
    let first = env
        .wait_until(name, "Healthy at the first revision", |z| {
            healthy(z, generation)
        })
        .await;
    let stable = first
        .status
        .and_then(|s| s.update_revision)
        .expect("updateRevision");

    // The update is measured, fails, and is aborted; every pod state stays within the bounds.
    let aborted = env
        .roll(
            name,
            bounds,
            &containers_patch(app_container(&image_v2(), NETEXEC)),
            false,
            |z, _| {
                z.status.as_ref().is_some_and(|s| {
                    s.phase == Some(Phase::Aborted)
                        && s.aborted_revision.is_some()
                        && s.aborted_revision == s.update_revision
                })
            },
        )
        .await;
    let status = aborted.status.expect("status");
    let analysis = status.analysis.expect("status.analysis");
    assert_eq!(analysis.phase, AnalysisPhase::Failed);
    assert_eq!(
        analysis.metrics[0].measurements[0].value.as_deref(),
        Some("[0.2]")
    );
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == condition::ABORTED
                && c.status == "True"
                && c.reason == "AnalysisFailed")
    );

    // Back on stable: every pod runs the stable revision again.
    env.wait_until(name, "all pods back on the stable revision", |z| {
        z.status.as_ref().is_some_and(|s| {
            s.phase == Some(Phase::Aborted)
                && s.replicas == replicas
                && s.updated_replicas == replicas
                && s.available_replicas >= replicas
        })
    })
    .await;
    // Retiring pods of the aborted revision drain, then go: poll (bounded) until none is left.
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let left: Vec<(String, Option<String>)> = pods
            .list(&ListParams::default().labels(&format!("app={name}")))
            .await
            .expect("list pods")
            .items
            .into_iter()
            .map(|p| (p.name_any(), p.labels().get(REVISION_LABEL).cloned()))
            .collect();
        if left.len() == replicas as usize && left.iter().all(|(_, r)| r.as_ref() == Some(&stable))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pods still not all on the stable revision {stable}: {left:?}"
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    let list = events
        .list(&ListParams::default())
        .await
        .expect("list events");
    assert!(
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("AnalysisFailed")
                && e.type_.as_deref() == Some("Warning")),
        "an AnalysisFailed Warning event"
    );
    env.teardown().await;
}

/// Runs without a cluster: the fake answers in a shape the real provider reads, so a failure of
/// the e2e test above is about the controller, not the fake.
pub async fn the_fake_prometheus_answers_like_prometheus() {
    use zdr::analysis::provider::{MetricsProvider, PrometheusProvider, PrometheusSettings};
    let address = fake_prometheus().await;
    let p = PrometheusProvider::new(&PrometheusSettings {
        address,
        timeout: std::time::Duration::from_secs(5),
        ..PrometheusSettings::default()
    })
    .expect("provider");
    let sample = p.query("up", None).await.expect("an answer");
    assert_eq!(sample.values(), vec![0.2]);
}
