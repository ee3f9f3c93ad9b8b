//! Tests of [`step`](super::step) with a scripted provider: placeholders reach the query, a
//! restart resumes from the recorded status, SLO metrics, validation.

use std::sync::Mutex;

use proptest::prelude::*;

use super::provider::{ErrorKind, QueryFuture};
use super::run::run_tests_spec as spec;
use super::*;

/// Answers from a script keyed by a substring of the query; records every query.
#[derive(Default)]
pub struct Scripted {
    pub answers: Vec<(&'static str, Result<Sample, ProviderError>)>,
    pub seen: Mutex<Vec<String>>,
}

impl MetricsProvider for Scripted {
    fn query<'a>(&'a self, query: &'a str, _at: Option<Timestamp>) -> QueryFuture<'a> {
        self.seen.lock().unwrap().push(query.to_string());
        let a = self
            .answers
            .iter()
            .find(|(k, _)| query.contains(k))
            .map(|(_, a)| a.clone())
            .unwrap_or(Ok(Sample::Vector(vec![])));
        Box::pin(async move { a })
    }
}

fn vars() -> Vars {
    Vars {
        revision: "new123".into(),
        stable_revision: "old456".into(),
        namespace: "shop".into(),
        name: "web".into(),
    }
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_780_000_000 + secs).unwrap()
}

#[tokio::test]
async fn a_step_measures_due_metrics_with_resolved_queries() {
    let s = spec(serde_json::json!({}));
    let p = Scripted {
        answers: vec![("new123", Ok(Sample::Scalar(0.001)))],
        ..Default::default()
    };
    let st = step(&s, None, Ok(&p), &vars(), t(0), None).await;
    assert!(st.measured);
    assert_eq!(st.verdict, Verdict::Running);
    assert_eq!(st.wake, Some(Duration::from_secs(30)));
    let m = &st.status.metrics[0].measurements[0];
    assert_eq!(m.query, "q{r=\"new123\"}");
    assert_eq!(m.phase, AnalysisPhase::Successful);
    assert_eq!(m.value.as_deref(), Some("0.001"));
    // Not due yet: nothing is queried, nothing changes.
    let again = step(&s, Some(&st.status), Ok(&p), &vars(), t(10), None).await;
    assert!(!again.measured);
    assert_eq!(again.status, st.status);
    assert_eq!(p.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_restart_resumes_from_the_recorded_measurements() {
    let s = spec(serde_json::json!({"failureLimit": 1}));
    let bad = Scripted {
        answers: vec![("new123", Ok(Sample::Scalar(0.5)))],
        ..Default::default()
    };
    let first = step(&s, None, Ok(&bad), &vars(), t(0), None).await;
    assert_eq!(first.verdict, Verdict::Running, "1 failure tolerated");
    // The status goes through the API server (JSON) and a new controller reads it back.
    let json = serde_json::to_value(&first.status).unwrap();
    let restored: crate::crd::AnalysisStatus = serde_json::from_value(json).unwrap();
    let second = step(&s, Some(&restored), Ok(&bad), &vars(), t(31), None).await;
    assert_eq!(second.verdict, Verdict::Failed);
    assert_eq!(second.status.metrics[0].failed, 2);
    // A new revision starts a new run.
    let other = Vars {
        revision: "other".into(),
        ..vars()
    };
    let fresh = step(&s, Some(&second.status), Ok(&bad), &other, t(40), None).await;
    assert_eq!(fresh.status.revision, "other");
    assert_eq!(fresh.status.metrics[0].failed, 0);
}

#[tokio::test]
async fn provider_errors_are_error_measurements() {
    let s = spec(serde_json::json!({"consecutiveErrorLimit": 0}));
    let down = Scripted {
        answers: vec![(
            "",
            Err(ProviderError::new(
                ErrorKind::Unreachable,
                "connection refused",
            )),
        )],
        ..Default::default()
    };
    let st = step(&s, None, Ok(&down), &vars(), t(0), None).await;
    let m = &st.status.metrics[0];
    assert_eq!(m.measurements[0].phase, AnalysisPhase::Error);
    assert!(
        m.measurements[0]
            .message
            .as_ref()
            .unwrap()
            .contains("connection refused")
    );
    assert_eq!(
        st.verdict,
        Verdict::Failed,
        "consecutiveErrorLimit 0: the first error fails"
    );
    let no_provider = ProviderError::new(ErrorKind::Other, "secret missing");
    let st = step(&s, None, Err(&no_provider), &vars(), t(0), None).await;
    assert!(
        st.status.metrics[0].measurements[0]
            .message
            .as_ref()
            .unwrap()
            .contains("secret missing")
    );
}

#[tokio::test]
async fn an_slo_metric_fails_when_the_canary_burns_its_budget() {
    let s = spec(
        serde_json::json!({"metrics": [{"name": "availability", "slo": {
            "objective": 99.9,
            "badQuery": "sum(rate(errors{r=\"{{revision}}\"}[{{window}}]))",
            "totalQuery": "sum(rate(requests{r=\"{{revision}}\"}[{{window}}]))",
        }}]}),
    );
    validate(&s).unwrap();
    let burning = Scripted {
        answers: vec![
            ("errors", Ok(Sample::Scalar(5.0))),
            ("requests", Ok(Sample::Scalar(100.0))),
        ],
        ..Default::default()
    };
    let st = step(&s, None, Ok(&burning), &vars(), t(0), None).await;
    assert_eq!(st.verdict, Verdict::Failed, "{:?}", st.status);
    let seen = burning.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 8, "bad and total over 5m, 30m, 1h, 6h");
    assert!(seen.iter().any(|q| q.contains("[5m]")) && seen.iter().any(|q| q.contains("[6h]")));
    let healthy = Scripted {
        answers: vec![("requests", Ok(Sample::Scalar(100.0)))],
        ..Default::default()
    };
    let st = step(&s, None, Ok(&healthy), &vars(), t(0), None).await;
    assert_eq!(
        st.status.metrics[0].measurements[0].phase,
        AnalysisPhase::Successful
    );
    let idle = Scripted::default();
    let st = step(&s, None, Ok(&idle), &vars(), t(0), None).await;
    assert_eq!(st.verdict, Verdict::Inconclusive);
}

#[test]
fn validation_names_the_metric_and_the_position() {
    let mut s = spec(serde_json::json!({}));
    assert_eq!(validate(&s), Ok(()));
    s.metrics[0].success_condition = Some("result <<".into());
    let e = validate(&s).unwrap_err();
    assert!(e.contains("error-rate") && e.contains("column"), "{e}");
    s.metrics[0].success_condition = Some("result < 1".into());
    s.metrics[0].query = Some("x{r=\"{{rev}}\"}".into());
    assert!(validate(&s).unwrap_err().contains("{{rev}}"));
    s.metrics[0].query = Some("x".into());
    s.metrics.push(s.metrics[0].clone());
    assert!(validate(&s).unwrap_err().contains("twice"));
}

/// One scripted answer.
fn answer(kind: u8, v: f64) -> Result<Sample, ProviderError> {
    match kind % 4 {
        0 => Ok(Sample::Scalar(v)),
        1 => Ok(Sample::Vector(vec![])),
        2 => Ok(Sample::Scalar(f64::NAN)),
        _ => Err(ProviderError::new(ErrorKind::Timeout, "slow")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A controller that restarts between any two reconciles (the run read back from its JSON
    /// status) takes exactly the measurements, and reaches exactly the verdicts, of one that
    /// never restarts.
    #[test]
    fn a_restart_anywhere_changes_nothing(
        script in proptest::collection::vec((0u8..4, 0.0f64..0.02, 1i64..90), 1..12),
        fl in 0i32..3, il in 0i32..3, el in 0i32..3,
    ) {
        let s = spec(serde_json::json!({"failureLimit": fl, "inconclusiveLimit": il, "consecutiveErrorLimit": el}));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (mut kept, mut restored): (Option<AnalysisStatus>, Option<AnalysisStatus>) = (None, None);
        let mut now = 0;
        for (kind, v, dt) in script {
            now += dt;
            let p = Scripted { answers: vec![("", answer(kind, v))], ..Default::default() };
            let a = rt.block_on(step(&s, kept.as_ref(), Ok(&p), &vars(), t(now), None));
            let b = rt.block_on(step(&s, restored.as_ref(), Ok(&p), &vars(), t(now), None));
            prop_assert_eq!(&a, &b);
            kept = Some(a.status);
            let json = serde_json::to_string(&b.status).unwrap();
            restored = Some(serde_json::from_str(&json).unwrap());
        }
    }
}
