//! The plugin's wording for canary steps, header matches and durations: one phrasing shared by
//! `plan`, `status` and `promote`.

use std::time::Duration;

use crate::crd::{HeaderMatch, HeaderRoute};
use crate::planner::canary::{CanaryScale, Step};

/// A duration as people write it: `30s`, `2m`, `1h30m`, `250ms`.
pub fn duration(d: Duration) -> String {
    if d.subsec_nanos() != 0 {
        return if d.as_secs() == 0 && d.subsec_nanos().is_multiple_of(1_000_000) {
            format!("{}ms", d.subsec_millis())
        } else {
            format!("{d:?}")
        };
    }
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// One header condition: `X-Canary = "always"`, `X-User starts with "beta-"`, `X-Id ~ "^a"`.
pub fn header_match(m: &HeaderMatch) -> String {
    let v = &m.header_value;
    match (&v.exact, &v.prefix, &v.regex) {
        (Some(x), _, _) => format!("{} = {x:?}", m.header_name),
        (_, Some(x), _) => format!("{} starts with {x:?}", m.header_name),
        (_, _, Some(x)) => format!("{} ~ {x:?}", m.header_name),
        _ => format!("{} (no value)", m.header_name),
    }
}

/// A header route with its conditions: `beta-users (X-Canary = "always")`.
pub fn route(r: &HeaderRoute) -> String {
    let conds: Vec<String> = r.matches.iter().map(header_match).collect();
    format!("{} ({})", r.name, conds.join(" and "))
}

/// What a step does, e.g. `set weight 10%`, `pause until promoted`.
pub fn step(s: &Step) -> String {
    match s {
        Step::Weight(w) => format!("set weight {w}%"),
        Step::HeaderRoute(r) if r.matches.is_empty() => format!("remove header route {}", r.name),
        Step::HeaderRoute(r) => format!("header route {}", route(r)),
        Step::Scale(scale) => format!("canary scale: {}", canary_scale(*scale)),
        Step::Analysis => "analysis".into(),
        Step::Pause(Some(d)) => format!("pause {}", duration(*d)),
        Step::Pause(None) => "pause until promoted".into(),
    }
}

/// A `setCanaryScale` rule: `3 pod(s)`, `20% of replicas`, `follow the weight`.
pub fn canary_scale(scale: CanaryScale) -> String {
    match scale {
        CanaryScale::Replicas(n) => format!("{n} pod(s)"),
        CanaryScale::Percent(p) => format!("{p}% of replicas"),
        CanaryScale::FollowWeight => "follow the weight".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::StringMatch;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(duration(Duration::from_secs(120)), "2m");
        assert_eq!(duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(duration(Duration::from_secs(45)), "45s");
        assert_eq!(duration(Duration::from_secs(0)), "0s");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn steps_and_routes() {
        let m = |exact: Option<&str>, prefix: Option<&str>| HeaderMatch {
            header_name: "X-Canary".into(),
            header_value: StringMatch {
                exact: exact.map(Into::into),
                prefix: prefix.map(Into::into),
                regex: None,
            },
        };
        let r = HeaderRoute {
            name: "beta".into(),
            matches: vec![m(Some("always"), None), m(None, Some("be"))],
        };
        assert_eq!(
            step(&Step::HeaderRoute(r.clone())),
            r#"header route beta (X-Canary = "always" and X-Canary starts with "be")"#
        );
        let off = HeaderRoute {
            matches: Vec::new(),
            ..r
        };
        assert_eq!(step(&Step::HeaderRoute(off)), "remove header route beta");
        assert_eq!(step(&Step::Pause(None)), "pause until promoted");
        assert_eq!(
            step(&Step::Scale(CanaryScale::Percent(20))),
            "canary scale: 20% of replicas"
        );
    }
}
