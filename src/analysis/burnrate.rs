//! SLO metrics judged by the multi-window, multi-burn-rate rule: for a window pair, the error
//! ratio over both the long and the short window, divided by the error budget (1 - objective),
//! must exceed the pair's burn rate for the metric to fail.
//!
//! Defaults: 1h/5m at 14.4 and 6h/30m at 6, the two paging pairs of the Google SRE workbook
//! (2% and 5% of a 30-day budget). The day-long ticket pairs are left out: a canary does not
//! live that long. On a young revision the long window covers only its life so far (its series
//! start with its pods), so early on "long" means "since the canary started"; the short window
//! keeps one bad minute from failing a canary that has recovered.

use std::collections::BTreeMap;
use std::time::Duration;

use super::provider::Sample;
use super::query::{TemplateError, Vars, render};
use super::run::Outcome;
use crate::crd::{AnalysisPhase, SloMetric};

/// A (long, short, burn rate) window pair.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair {
    /// Long window.
    pub long: Duration,
    /// Short window.
    pub short: Duration,
    /// Threshold.
    pub burn_rate: f64,
}

/// The default pairs (see the module docs).
pub const DEFAULT_PAIRS: [Pair; 2] = [
    Pair {
        long: Duration::from_secs(3600),
        short: Duration::from_secs(300),
        burn_rate: 14.4,
    },
    Pair {
        long: Duration::from_secs(6 * 3600),
        short: Duration::from_secs(1800),
        burn_rate: 6.0,
    },
];

/// The pairs of `slo`, or the defaults.
pub fn pairs(slo: &SloMetric) -> Vec<Pair> {
    if slo.windows.is_empty() {
        return DEFAULT_PAIRS.to_vec();
    }
    slo.windows
        .iter()
        .map(|w| Pair {
            long: if w.long.is_negative() {
                Duration::ZERO
            } else {
                w.long.into()
            },
            short: if w.short.is_negative() {
                Duration::ZERO
            } else {
                w.short.into()
            },
            burn_rate: w.burn_rate,
        })
        .collect()
}

/// A window as PromQL writes it (`5m`, `1h`, `90s`).
pub fn promql_window(d: Duration) -> String {
    let s = d.as_secs().max(1);
    if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The distinct windows of `pairs`, shortest first.
pub fn windows(pairs: &[Pair]) -> Vec<Duration> {
    let mut w: Vec<Duration> = pairs.iter().flat_map(|p| [p.long, p.short]).collect();
    w.sort();
    w.dedup();
    w
}

/// The (bad, total) queries of each window.
pub fn queries(
    slo: &SloMetric,
    vars: &Vars,
    windows: &[Duration],
) -> Result<Vec<(String, String)>, TemplateError> {
    windows
        .iter()
        .map(|w| {
            let win = promql_window(*w);
            let t = vars.table(&[("window", win.as_str())]);
            Ok((render(&slo.bad_query, &t)?, render(&slo.total_query, &t)?))
        })
        .collect()
}

/// The sum of a sample's values; None when it is empty or NaN.
pub fn total_of(s: &Sample) -> Option<f64> {
    let v = s.values();
    if v.is_empty() || v.iter().any(|x| x.is_nan()) {
        return None;
    }
    Some(v.iter().sum())
}

/// Judges an SLO from (bad, total) per window (as `total_of` reads them). Bad with no data is
/// zero bad events; total with no data or zero is no traffic. Failed when any pair burns too
/// fast in both windows; inconclusive when the shortest window saw no traffic; else successful.
pub fn judge(
    objective_percent: f64,
    pairs: &[Pair],
    per_window: &BTreeMap<Duration, (Option<f64>, Option<f64>)>,
    query: String,
) -> Outcome {
    let budget = (1.0 - objective_percent / 100.0).max(0.0);
    let burn = |w: &Duration| -> Option<f64> {
        let (bad, total) = per_window.get(w)?;
        let total = total.filter(|t| *t > 0.0)?;
        let ratio = bad.unwrap_or(0.0).max(0.0) / total;
        Some(if budget == 0.0 {
            if ratio > 0.0 { f64::INFINITY } else { 0.0 }
        } else {
            ratio / budget
        })
    };
    let value = windows(pairs)
        .iter()
        .map(|w| match burn(w) {
            Some(b) => format!("{}={b:.2}", promql_window(*w)),
            None => format!("{}=no-traffic", promql_window(*w)),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let firing = pairs.iter().find(|p| {
        matches!((burn(&p.long), burn(&p.short)), (Some(l), Some(s)) if l > p.burn_rate && s > p.burn_rate)
    });
    let shortest = windows(pairs).first().copied();
    let (phase, message) = if let Some(p) = firing {
        (
            AnalysisPhase::Failed,
            format!(
                "burning the error budget of {objective_percent}% faster than {}x over both {} and {}",
                p.burn_rate,
                promql_window(p.long),
                promql_window(p.short)
            ),
        )
    } else if shortest.is_none_or(|w| burn(&w).is_none()) {
        (
            AnalysisPhase::Inconclusive,
            format!("no data: no traffic to the new revision in the shortest window: {query}"),
        )
    } else {
        (
            AnalysisPhase::Successful,
            "no window pair burns faster than its threshold".to_string(),
        )
    };
    Outcome {
        phase,
        value: Some(format!("burn rate {value}")),
        query,
        message: Some(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(pairs: &[(u64, f64, f64)]) -> BTreeMap<Duration, (Option<f64>, Option<f64>)> {
        pairs
            .iter()
            .map(|(s, b, t)| (Duration::from_secs(*s), (Some(*b), Some(*t))))
            .collect()
    }

    #[test]
    fn defaults_and_windows() {
        assert_eq!(
            windows(&DEFAULT_PAIRS)
                .into_iter()
                .map(promql_window)
                .collect::<Vec<_>>(),
            ["5m", "30m", "1h", "6h"]
        );
        assert_eq!(promql_window(Duration::from_secs(90)), "90s");
    }

    #[test]
    fn fails_only_when_long_and_short_both_burn() {
        // 99.9%: budget 0.1%. 2% errors = burn 20 > 14.4 in 5m and 1h: fail.
        let o = judge(
            99.9,
            &DEFAULT_PAIRS,
            &pw(&[
                (300, 2.0, 100.0),
                (1800, 0.0, 100.0),
                (3600, 2.0, 100.0),
                (21600, 0.0, 100.0),
            ]),
            "q".into(),
        );
        assert_eq!(o.phase, AnalysisPhase::Failed, "{o:?}");
        assert!(o.message.unwrap().contains("1h and 5m"));
        // A spike in the short window only: no.
        let o = judge(
            99.9,
            &DEFAULT_PAIRS,
            &pw(&[
                (300, 2.0, 100.0),
                (1800, 0.1, 100.0),
                (3600, 0.1, 100.0),
                (21600, 0.1, 100.0),
            ]),
            "q".into(),
        );
        assert_eq!(o.phase, AnalysisPhase::Successful, "{o:?}");
        // Sustained but over now: no.
        let o = judge(
            99.9,
            &DEFAULT_PAIRS,
            &pw(&[
                (300, 0.0, 100.0),
                (1800, 0.0, 100.0),
                (3600, 5.0, 100.0),
                (21600, 5.0, 100.0),
            ]),
            "q".into(),
        );
        assert_eq!(o.phase, AnalysisPhase::Successful, "{o:?}");
    }

    #[test]
    fn no_traffic_is_inconclusive_and_no_bad_events_is_zero() {
        let mut m = pw(&[(300, 0.0, 0.0), (3600, 0.0, 0.0)]);
        let o = judge(99.0, &DEFAULT_PAIRS[..1], &m, "bad/total".into());
        assert_eq!(o.phase, AnalysisPhase::Inconclusive);
        assert!(o.message.unwrap().contains("bad/total"));
        m.insert(Duration::from_secs(300), (None, Some(50.0)));
        m.insert(Duration::from_secs(3600), (None, Some(50.0)));
        let o = judge(99.0, &DEFAULT_PAIRS[..1], &m, "q".into());
        assert_eq!(o.phase, AnalysisPhase::Successful, "{o:?}");
        assert_eq!(o.value.as_deref(), Some("burn rate 5m=0.00 1h=0.00"));
    }
}
