//! e2e: the canary `analysis: {}` step, against a fake Prometheus on the test's loopback (as in
//! `analysis.rs`, so the test needs the controller the harness starts on this machine).
//!
//! The rollout of `canary.rs` (5 replicas, HTTPRoute, maxSurge 25%, maxUnavailable 0) runs the
//! steps `setWeight 20`, `analysis {}`, `setWeight 60` with `spec.analysis` measuring one metric
//! every second. The fake answers 0.001 (passes `result < 0.01`) unless told to fail a revision:
//! then every query naming that revision gets 0.2. It answers each query only after a delay
//! (1.5 s, well within the 5 s timeout) and picks the value when it answers, so that a
//! measurement taken after the analysis step started cannot end before the test has reacted.
//!
//! - `canary_analysis_step_gates_then_passes`: at every status write at step 1 the route gives
//!   the canary 20; the first status past step 1 carries a successful measurement of every
//!   metric started at or after step 1's `stepStartedAt` and finished by step 2's; then the
//!   canary promotes (route 100/0 on the stable Service, which selects the new revision,
//!   Healthy).
//! - `canary_failing_analysis_aborts_mid_canary_and_returns_the_weight_first`: once the route gives
//!   the canary 20, the fake fails the new revision: the route never goes past 20, the rollout
//!   ends Aborted (reason `AnalysisFailed`), the route is back to 100/0 with no `zdr-` rule, the
//!   canary Service back on stable, no canary pod left.
//!
//! Both replay every recorded state through the invariants of `canary_checks.rs` (no canary pod
//! deleted while the route still gives the canary a weight or a `zdr-` rule, ...) and the step
//! order (up to the abort).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::any;
use axum::{Json, http::Uri};
use serde_json::{Value, json};
use zdr::crd::{AnalysisPhase, Phase, ZeroDowntimeRollout};

use crate::canary::{Canary, NAME, REPLICAS, aborted, back_on_stable, promoted, say};
use crate::canary_checks::{Progress, Scenario, invariants};
use crate::cluster::{NETEXEC, app_container, containers_patch, image_v2, timeout};
use crate::timeline::{Entry, Obj, Router, World};

/// The fake's answer delay.
const DELAY: Duration = Duration::from_millis(1500);
/// The analysis step.
const GATE: usize = 1;
/// Weight and header route once each step ran.
const SETTINGS: [(i64, bool); 3] = [(20, false), (20, false), (60, false)];
const PASS: &str = "0.001";
const FAIL: &str = "0.2";

fn steps() -> Value {
    json!([{"setWeight": 20}, {"analysis": {}}, {"setWeight": 60}])
}

/// What the fake answers.
#[derive(Default)]
struct Answers {
    /// Queries naming this revision get [`FAIL`], the others [`PASS`].
    fail: Option<String>,
    delay: Duration,
    /// (milliseconds since the fake started, value) of each answer.
    log: Vec<(u128, &'static str)>,
}

#[derive(Clone)]
struct FakePrometheus {
    address: String,
    answers: Arc<Mutex<Answers>>,
}

impl FakePrometheus {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let answers = Arc::new(Mutex::new(Answers {
            delay: DELAY,
            ..Answers::default()
        }));
        let (shared, t0) = (answers.clone(), Instant::now());
        let app = axum::Router::new().route(
            "/api/v1/query",
            any(move |uri: Uri, body: String| {
                let shared = shared.clone();
                async move {
                    let delay = shared.lock().expect("fake state").delay;
                    tokio::time::sleep(delay).await;
                    // The value is chosen when answering, after the delay.
                    let value = {
                        let mut a = shared.lock().expect("fake state");
                        let text = format!("{uri} {body}");
                        let v = match &a.fail {
                            Some(rev) if text.contains(rev.as_str()) => FAIL,
                            _ => PASS,
                        };
                        a.log.push((t0.elapsed().as_millis(), v));
                        v
                    };
                    let now = jiff::Timestamp::now().as_second();
                    Json(json!({"status": "success", "data": {"resultType": "vector",
                        "result": [{"metric": {}, "value": [now, value]}]}}))
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakePrometheus {
            address: format!("http://{addr}"),
            answers,
        }
    }

    fn set(&self, f: impl FnOnce(&mut Answers)) {
        f(&mut self.answers.lock().expect("fake state"));
    }

    fn summary(&self) -> String {
        let a = self.answers.lock().expect("fake state");
        format!(
            "{} answers, the last: {:?}",
            a.log.len(),
            a.log.iter().rev().take(5).collect::<Vec<_>>()
        )
    }

    fn spec(&self) -> Value {
        json!({
            "prometheus": {"address": self.address, "timeout": "5s"},
            "interval": "1s",
            "metrics": [{"name": "error-rate",
                         "query": "sum(rate(http_requests_total{code=~\"5..\",zdr_revision=\"{{revision}}\"}[1m])) / sum(rate(http_requests_total{zdr_revision=\"{{revision}}\"}[1m]))",
                         "successCondition": "result < 0.01"}],
        })
    }
}

/// The canary with a fake Prometheus, Healthy at its first revision; `None` when skipped.
async fn start(test: &str) -> Option<(Canary, FakePrometheus)> {
    let fake = FakePrometheus::start().await;
    let c = Canary::start_custom(test, Router::HttpRoute, steps(), Some(fake.spec())).await?;
    if !c.env.has_local_controller() {
        say(format!(
            "SKIPPED {test}: the fake Prometheus runs on this machine's loopback, which an in-cluster controller cannot reach"
        ));
        c.env.teardown().await;
        return None;
    }
    Some((c, fake))
}

fn scenario(c: &Canary) -> Scenario {
    Scenario {
        settings: SETTINGS.to_vec(),
        promotion_pause: None,
        timed_pause: None,
        ..c.scenario()
    }
}

/// The status of `rev2`'s canary recorded in `z`, if any.
fn status_of<'a>(
    z: &'a ZeroDowntimeRollout,
    rev2: &str,
) -> Option<&'a zdr::crd::ZeroDowntimeRolloutStatus> {
    z.status
        .as_ref()
        .filter(|s| s.update_revision.as_deref() == Some(rev2))
}

fn ms(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    t.0.as_millisecond()
}

/// Replays the recorded states: the invariants at every state, the step order until an abort,
/// and at every status write at the analysis step the route at the step's weight 20.
fn replay(
    c: &Canary,
    what: &str,
    rev2: &str,
    mut extra: impl FnMut(&World, &Entry) -> Result<(), String>,
) {
    let sc = scenario(c);
    let mut progress = Progress::new(&sc, rev2);
    let mut aborted = false;
    c.rec.replay(what, |w, before, e| {
        invariants(&sc, w, before, e, rev2, &c.reference)?;
        if let Obj::Rollout(z) = &e.obj
            && let Some(s) = status_of(z, rev2)
        {
            aborted |= s.phase == Some(Phase::Aborted);
            if !aborted && s.current_step_index == Some(GATE as i32) && w.route_view().canary != Some(20) {
                return Err(format!(
                    "status at the analysis step (step {GATE}) while the route gives the canary {:?}, not 20",
                    w.route_view().canary
                ));
            }
        }
        if !aborted {
            progress.observe(w, e)?;
        }
        extra(w, e)
    });
}

pub async fn canary_analysis_step_gates_then_passes() {
    let Some((mut c, fake)) = start("canary-analysis").await else {
        return;
    };
    let t = Instant::now();
    c.env
        .patch(NAME, &containers_patch(app_container(&image_v2(), NETEXEC)))
        .await;
    let rev1 = c.rev1.clone();
    let w = c
        .rec
        .wait("the rollout at the analysis step", timeout(), |w| {
            w.rollout.as_ref().is_some_and(|z| {
                z.status.as_ref().is_some_and(|s| {
                    s.update_revision.as_ref().is_some_and(|r| *r != rev1)
                        && s.current_step_index == Some(GATE as i32)
                })
            })
        })
        .await;
    let rev2 = (w.rollout.as_ref())
        .and_then(|z| z.status.as_ref())
        .and_then(|s| s.update_revision.clone())
        .expect("updateRevision");
    say(format!(
        "e2e canary {}: at the analysis step after {:?}",
        c.ns(),
        t.elapsed()
    ));
    // Past the gate, the fake answers at once (the rest of the rollout need not wait for it).
    let r2 = rev2.clone();
    c.rec
        .wait("the rollout past the analysis step", timeout(), |w| {
            w.rollout
                .as_ref()
                .and_then(|z| status_of(z, &r2))
                .is_some_and(|s| s.current_step_index.unwrap_or(0) > GATE as i32)
        })
        .await;
    fake.set(|a| a.delay = Duration::ZERO);
    say(format!(
        "e2e canary {}: past the analysis step after {:?}",
        c.ns(),
        t.elapsed()
    ));

    let n = SETTINGS.len() as i32;
    let z = c
        .env
        .wait_until(
            NAME,
            "Healthy at the new revision after the last step",
            |z| promoted(z, &r2, n),
        )
        .await;
    c.check_promoted(z, &rev2, REPLICAS, t).await;

    // The gate: step 1's start, then the first status past it and what it measured. The
    // controller stamps a step's start with the time its reconcile began, before that
    // reconcile's measurements, so a measurement may finish after the next step's
    // stepStartedAt; it must have started since the analysis step did (timestamps to the
    // second). In the test's own clock: the status past the gate comes at least the fake's
    // delay after the route first carried step 1's weight (the gate measurement was sent after
    // that and answered after the delay).
    let mut gate_start: Option<i64> = None;
    let mut route_at_20: Option<u128> = None;
    let mut passed = false;
    let r2 = rev2.clone();
    replay(&c, "the canary through its analysis step", &rev2, |w, e| {
        let at = Some(e.ms);
        if route_at_20.is_none() && w.route_view().canary == Some(20) {
            route_at_20 = at;
        }
        let Obj::Rollout(z) = &e.obj else {
            return Ok(());
        };
        let Some(s) = status_of(z, &r2) else {
            return Ok(());
        };
        let step = s.current_step_index.unwrap_or(0);
        if step == GATE as i32 && gate_start.is_none() {
            gate_start = s.step_started_at.as_ref().map(ms);
        }
        if step <= GATE as i32 || passed {
            return Ok(());
        }
        passed = true;
        let Some(start) = gate_start else {
            return Err(format!(
                "step {step} began without a recorded status at the analysis step"
            ));
        };
        let analysis = s.analysis.as_ref().filter(|a| a.revision == r2);
        let Some(analysis) = analysis else {
            return Err(format!(
                "step {step} began with no analysis of {r2} in status: {:?}",
                s.analysis
            ));
        };
        if analysis.metrics.is_empty() {
            return Err("step past the gate with no metric in status.analysis".into());
        }
        for m in &analysis.metrics {
            let ok = m.measurements.iter().any(|x| {
                x.phase == AnalysisPhase::Successful
                    && ms(&x.started_at) >= start
                    && ms(&x.started_at) <= ms(&x.finished_at)
            });
            if !ok {
                return Err(format!(
                    "step {step} began with no successful measurement of {} started since the analysis step started ({start} ms): {:?}",
                    m.name, m.measurements
                ));
            }
        }
        match (route_at_20, at) {
            (Some(r), Some(now)) if now >= r + DELAY.as_millis() - 100 => Ok(()),
            (r, now) => Err(format!(
                "step {step} began {now:?} ms after the recorder started, the route carried 20 at {r:?} ms: less than the fake's answer delay {DELAY:?} after it"
            )),
        }
    });
    assert!(
        passed,
        "{}: the replay saw no status past the analysis step",
        c.ns()
    );
    say(format!(
        "e2e canary {}: {} recorded states checked; fake: {}; {:?} in all",
        c.ns(),
        c.rec.entries().len(),
        fake.summary(),
        c.t0.elapsed()
    ));
    c.env.teardown().await;
}

pub async fn canary_failing_analysis_aborts_mid_canary_and_returns_the_weight_first() {
    let Some((mut c, fake)) = start("canary-analysis-fail").await else {
        return;
    };
    let t = Instant::now();
    c.env
        .patch(NAME, &containers_patch(app_container(&image_v2(), NETEXEC)))
        .await;
    let rev1 = c.rev1.clone();
    let w = c
        .rec
        .wait("the route giving the canary 20", timeout(), |w| {
            w.route_view().canary == Some(20)
                && w.rollout.as_ref().is_some_and(|z| {
                    z.status
                        .as_ref()
                        .and_then(|s| s.update_revision.as_ref())
                        .is_some_and(|r| *r != rev1)
                })
        })
        .await;
    let rev2 = (w.rollout.as_ref())
        .and_then(|z| z.status.as_ref())
        .and_then(|s| s.update_revision.clone())
        .expect("updateRevision");
    fake.set(|a| a.fail = Some(rev2.clone()));
    say(format!(
        "e2e canary {}: route at 20 after {:?}, the fake now fails {rev2}",
        c.ns(),
        t.elapsed()
    ));

    let r2 = rev2.clone();
    let z = c
        .env
        .wait_until(NAME, "Aborted by the analysis", |z| {
            aborted(z, &r2, "AnalysisFailed")
        })
        .await;
    let s = z.status.expect("status");
    let analysis = s.analysis.expect("status.analysis");
    assert_eq!(analysis.phase, AnalysisPhase::Failed, "{analysis:?}");
    assert!(
        analysis.metrics.iter().any(|m| m
            .measurements
            .iter()
            .any(|x| x.phase == AnalysisPhase::Failed && x.value.as_deref() == Some("[0.2]"))),
        "a failed measurement of 0.2: {analysis:?}"
    );
    say(format!(
        "e2e canary {}: Aborted (AnalysisFailed) after {:?}",
        c.ns(),
        t.elapsed()
    ));

    back_on_stable(&c.rec, &rev1, &rev2).await;
    say(format!(
        "e2e canary {}: back on stable after {:?}",
        c.ns(),
        t.elapsed()
    ));
    c.check_aborted(&rev1).await;
    // The analysis never passed with the failing value: the route never went past step 1's 20.
    replay(
        &c,
        "the canary and its analysis abort",
        &rev2,
        |w, _| match w.route_view().canary {
            Some(x) if x > 20 => Err(format!(
                "the route gives the canary {x} though the analysis step's measurements fail"
            )),
            _ => Ok(()),
        },
    );
    say(format!(
        "e2e canary {}: {} recorded states checked; fake: {}; {:?} in all",
        c.ns(),
        c.rec.entries().len(),
        fake.summary(),
        c.t0.elapsed()
    ));
    c.env.teardown().await;
}
