//! Tests of the run state machine: Argo's limits, timing and backoff, bounded history, resume;
//! property tests over random measurement sequences.

use proptest::prelude::*;

use super::*;

pub(crate) fn spec(extra: serde_json::Value) -> AnalysisSpec {
    let mut s = serde_json::json!({
        "prometheus": {"address": "http://prom:9090"},
        "interval": "30s",
        "metrics": [{"name": "error-rate", "query": "q{r=\"{{revision}}\"}", "successCondition": "result < 0.01"}],
    });
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    serde_json::from_value(s).unwrap()
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_780_000_000 + secs).unwrap()
}

fn outcome(phase: AnalysisPhase) -> Outcome {
    Outcome {
        phase,
        value: Some("1".into()),
        query: "q".into(),
        message: Some(phase.as_str().into()),
    }
}

#[test]
fn initial_delay_then_interval() {
    let s = spec(serde_json::json!({"initialDelay": "1m"}));
    let mut st = start(&s, "abc", t(0));
    assert!(due(&s, &st, t(59)).is_empty());
    assert_eq!(wake(&s, &st, t(0)), Some(Duration::from_secs(60)));
    assert_eq!(due(&s, &st, t(60)), vec![0]);
    record(
        &s,
        &mut st,
        0,
        outcome(AnalysisPhase::Successful),
        t(60),
        t(61),
    );
    assert_eq!(st.phase, AnalysisPhase::Running);
    assert!(due(&s, &st, t(90)).is_empty());
    assert_eq!(due(&s, &st, t(91)), vec![0]);
    assert_eq!(wake(&s, &st, t(61)), Some(Duration::from_secs(30)));
}

#[test]
fn errors_back_off_and_reset_on_success() {
    let s = spec(serde_json::json!({"interval": "30s"}));
    let mut st = start(&s, "abc", t(0));
    let mut now = 0;
    let mut waits = vec![];
    for _ in 0..4 {
        record(
            &s,
            &mut st,
            0,
            outcome(AnalysisPhase::Error),
            t(now),
            t(now),
        );
        let w = wake(&s, &st, t(now)).unwrap().as_secs() as i64;
        waits.push(w);
        now += w;
    }
    assert_eq!(waits, [5, 10, 20, 30], "doubling, capped at the interval");
    assert_eq!(
        st.phase,
        AnalysisPhase::Running,
        "4 errors in a row are tolerated, 5 are not"
    );
    assert_eq!(st.metrics[0].phase, AnalysisPhase::Running);
    let mut after_success = st.clone();
    record(
        &s,
        &mut after_success,
        0,
        outcome(AnalysisPhase::Successful),
        t(now),
        t(now),
    );
    assert_eq!(after_success.metrics[0].consecutive_error, 0);
    record(
        &s,
        &mut st,
        0,
        outcome(AnalysisPhase::Error),
        t(now),
        t(now),
    );
    assert_eq!(st.phase, AnalysisPhase::Failed);
    assert!(
        st.message
            .as_ref()
            .unwrap()
            .contains("consecutiveErrorLimit 4"),
        "{:?}",
        st.message
    );
    assert!(
        due(&s, &st, t(now + 3600)).is_empty(),
        "a finished run measures no more"
    );
    assert_eq!(wake(&s, &st, t(now)), None);
}

#[test]
fn failure_limit_and_count() {
    let s = spec(serde_json::json!({"failureLimit": 1, "count": 3}));
    let mut st = start(&s, "abc", t(0));
    record(&s, &mut st, 0, outcome(AnalysisPhase::Failed), t(0), t(0));
    assert_eq!(
        st.phase,
        AnalysisPhase::Running,
        "1 failure is within failureLimit 1"
    );
    record(
        &s,
        &mut st,
        0,
        outcome(AnalysisPhase::Successful),
        t(30),
        t(30),
    );
    record(
        &s,
        &mut st,
        0,
        outcome(AnalysisPhase::Successful),
        t(60),
        t(60),
    );
    assert_eq!(st.phase, AnalysisPhase::Successful);
    let mut st = start(&s, "abc", t(0));
    record(&s, &mut st, 0, outcome(AnalysisPhase::Failed), t(0), t(0));
    record(&s, &mut st, 0, outcome(AnalysisPhase::Failed), t(30), t(30));
    assert_eq!(st.phase, AnalysisPhase::Failed);
    assert!(st.message.unwrap().contains("more than failureLimit 1"));
}

#[test]
fn inconclusive_pauses_and_resume_starts_the_counters_again() {
    let s = spec(serde_json::json!({}));
    let mut st = start(&s, "abc", t(0));
    record(
        &s,
        &mut st,
        0,
        outcome(AnalysisPhase::Inconclusive),
        t(0),
        t(0),
    );
    assert_eq!(st.phase, AnalysisPhase::Inconclusive);
    assert!(due(&s, &st, t(100)).is_empty());
    resume(&s, &mut st, t(100));
    assert_eq!(st.phase, AnalysisPhase::Running);
    assert_eq!(st.metrics[0].inconclusive, 0);
    assert_eq!(st.metrics[0].measurements.len(), 1, "history is kept");
    assert_eq!(due(&s, &st, t(100)), vec![0], "measured again at once");
}

#[test]
fn history_is_bounded_and_queries_are_cut() {
    let s = spec(serde_json::json!({"failureLimit": 100}));
    let mut st = start(&s, "abc", t(0));
    for i in 0..25 {
        let mut o = outcome(AnalysisPhase::Failed);
        o.query = "x".repeat(5000);
        record(&s, &mut st, 0, o, t(i * 30), t(i * 30));
    }
    let m = &st.metrics[0];
    assert_eq!(m.measurements.len(), MAX_MEASUREMENTS);
    assert_eq!(
        m.measurements[0].started_at.0,
        t(15 * 30),
        "oldest dropped first"
    );
    assert!(m.measurements[0].query.len() <= MAX_QUERY_IN_STATUS + 3);
    assert_eq!(m.failed, 25);
}

#[test]
fn judging_samples() {
    let s = spec(serde_json::json!({}));
    let m = &s.metrics[0];
    let j = |sample: Sample| judge(m, "the-query", &sample);
    assert_eq!(j(Sample::Scalar(0.001)).phase, AnalysisPhase::Successful);
    assert_eq!(j(Sample::Scalar(0.2)).phase, AnalysisPhase::Failed);
    let empty = j(Sample::Vector(vec![]));
    assert_eq!(empty.phase, AnalysisPhase::Inconclusive);
    assert!(empty.message.unwrap().contains("the-query"));
    let nan = j(Sample::Scalar(f64::NAN));
    assert_eq!(nan.phase, AnalysisPhase::Inconclusive);
    assert!(nan.message.unwrap().contains("the-query"));
    let two = Sample::Vector(vec![(Default::default(), 0.0), (Default::default(), 0.0)]);
    assert_eq!(
        j(two).phase,
        AnalysisPhase::Error,
        "an ambiguous comparison is an error"
    );
    let mut both = m.clone();
    both.failure_condition = Some("result > 0.05".into());
    assert_eq!(
        judge(&both, "q", &Sample::Scalar(0.02)).phase,
        AnalysisPhase::Inconclusive
    );
    assert_eq!(
        judge(&both, "q", &Sample::Scalar(0.06)).phase,
        AnalysisPhase::Failed
    );
    let mut bad = m.clone();
    bad.success_condition = Some("result <".into());
    assert_eq!(
        judge(&bad, "q", &Sample::Scalar(0.0)).phase,
        AnalysisPhase::Error
    );
}

fn phase_strategy() -> impl Strategy<Value = AnalysisPhase> {
    prop_oneof![
        Just(AnalysisPhase::Successful),
        Just(AnalysisPhase::Failed),
        Just(AnalysisPhase::Inconclusive),
        Just(AnalysisPhase::Error),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Feeding measurements until the run ends: it ends Failed iff some prefix had
    /// failed > failureLimit or consecutive errors > consecutiveErrorLimit (before any
    /// inconclusive verdict), and never on errors alone below the limit.
    #[test]
    fn verdicts_follow_the_limits(
        seq in proptest::collection::vec(phase_strategy(), 1..40),
        fl in 0i32..4, il in 0i32..4, el in 0i32..6,
    ) {
        let s = spec(serde_json::json!({"failureLimit": fl, "inconclusiveLimit": il, "consecutiveErrorLimit": el}));
        let mut st = start(&s, "abc", t(0));
        let (mut failed, mut inconclusive, mut consecutive) = (0, 0, 0);
        let mut expected = AnalysisPhase::Running;
        for (i, p) in seq.iter().enumerate() {
            prop_assert_eq!(st.phase, AnalysisPhase::Running);
            record(&s, &mut st, 0, outcome(*p), t(i as i64 * 30), t(i as i64 * 30));
            match p {
                AnalysisPhase::Failed => { failed += 1; consecutive = 0 }
                AnalysisPhase::Inconclusive => { inconclusive += 1; consecutive = 0 }
                AnalysisPhase::Error => consecutive += 1,
                _ => consecutive = 0,
            }
            expected = if failed > fl || (inconclusive <= il && consecutive > el) {
                AnalysisPhase::Failed
            } else if inconclusive > il {
                AnalysisPhase::Inconclusive
            } else {
                AnalysisPhase::Running
            };
            prop_assert_eq!(st.phase, expected, "after {:?}", &seq[..=i]);
            if expected != AnalysisPhase::Running { break; }
        }
        if seq.iter().all(|p| *p == AnalysisPhase::Error) && seq.len() as i32 <= el {
            prop_assert_eq!(expected, AnalysisPhase::Running);
        }
        prop_assert!(st.metrics[0].measurements.len() <= MAX_MEASUREMENTS);
    }

    /// The next measurement is never earlier than the last one, and never later than one
    /// interval after it.
    #[test]
    fn next_measurement_is_within_an_interval(
        seq in proptest::collection::vec(phase_strategy(), 1..10),
        interval_s in 1u64..600,
    ) {
        let s = spec(serde_json::json!({"interval": format!("{interval_s}s"), "failureLimit": 100, "inconclusiveLimit": 100, "consecutiveErrorLimit": 100}));
        let mut st = start(&s, "abc", t(0));
        let mut now = 0i64;
        for p in seq {
            record(&s, &mut st, 0, outcome(p), t(now), t(now));
            let w = wake(&s, &st, t(now)).unwrap();
            prop_assert!(w.as_secs() >= 1 && w.as_secs() <= interval_s.max(1));
            now += w.as_secs() as i64;
            prop_assert_eq!(due(&s, &st, t(now)), vec![0]);
        }
    }
}
