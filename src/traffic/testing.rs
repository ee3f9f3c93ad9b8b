//! Test-only helpers shared by the router tests: targets and header routes to build by hand,
//! and proptest strategies for sequences of targets.

use proptest::prelude::*;

use super::TrafficTarget;
use crate::crd::{HeaderMatch, HeaderRoute, StringMatch};

/// A header condition: `kind` is `exact`, `prefix` or `regex`.
pub fn cond(header: &str, kind: &str, value: &str) -> HeaderMatch {
    let value = Some(value.to_string());
    let mut m = StringMatch {
        exact: None,
        prefix: None,
        regex: None,
    };
    match kind {
        "exact" => m.exact = value,
        "prefix" => m.prefix = value,
        "regex" => m.regex = value,
        other => panic!("no string match kind {other}"),
    }
    HeaderMatch {
        header_name: header.to_string(),
        header_value: m,
    }
}

/// Header route `name` with conditions `matches`.
pub fn route(name: &str, matches: Vec<HeaderMatch>) -> HeaderRoute {
    HeaderRoute {
        name: name.to_string(),
        matches,
    }
}

/// A target of `weight` with `routes`.
pub fn target(weight: i32, routes: Vec<HeaderRoute>) -> TrafficTarget {
    TrafficTarget { weight, routes }
}

/// One header condition on one of a few header names, of any kind, with values that need
/// escaping in a regular expression.
fn any_cond() -> impl Strategy<Value = HeaderMatch> {
    // Exact values as Gateway API takes them; prefixes with anything a regex must escape.
    let exact = "[a-zA-Z0-9._*+?()|^$\\[\\]{}\\\\-]{1,8}( [a-z]{1,4})?";
    let prefix = "[ \ta-zA-Z0-9._*+?()|^$\\[\\]{}\\\\-é]{1,12}";
    let regex = prop::sample::select(vec!["^beta-.*$", "a|b", "[0-9]+", "(?i)canary"]);
    (
        prop::sample::select(vec!["X-Canary", "x-user", "X-Beta"]),
        prop_oneof![
            exact.prop_map(|v| ("exact", v)),
            prefix.prop_map(|v| ("prefix", v)),
            regex.prop_map(|v| ("regex", v.to_string())),
        ],
    )
        .prop_map(|(h, (kind, v))| cond(h, kind, &v))
}

/// Header routes with distinct names (from a small pool, so later targets remove and re-add
/// the same ones), each with one to three conditions on distinct headers; unsorted.
fn any_routes() -> impl Strategy<Value = Vec<HeaderRoute>> {
    let one = prop::collection::vec(any_cond(), 1..4).prop_map(|mut conds| {
        let mut seen: Vec<String> = Vec::new();
        conds.retain(|c| {
            let new = !seen.iter().any(|s| s.eq_ignore_ascii_case(&c.header_name));
            seen.push(c.header_name.clone());
            new
        });
        conds
    });
    let names = prop::sample::subsequence(vec!["a", "beta-users", "mobile", "z9"], 0..4);
    (names, prop::collection::vec(one, 4)).prop_map(|(names, conds)| {
        let mut routes: Vec<HeaderRoute> = names
            .into_iter()
            .zip(conds)
            .map(|(n, c)| route(n, c))
            .collect();
        routes.reverse();
        routes
    })
}

/// One to five targets in a row.
pub fn any_targets() -> impl Strategy<Value = Vec<TrafficTarget>> {
    prop::collection::vec(
        (0..=100i32, any_routes()).prop_map(|(w, r)| target(w, r)),
        1..6,
    )
}
