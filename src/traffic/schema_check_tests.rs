//! The checker finds what the API server would reject: each case breaks a valid object in one
//! way; without these, a checker that accepts everything would pass every router test.

use serde_json::{Value, json};

use super::*;

fn route() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [
            {"matches": [{"headers": [{"name": "X-Canary", "value": "always"}]}],
             "backendRefs": [{"name": "a", "port": 80, "weight": 90},
                             {"name": "b", "port": 80, "weight": 10}]}]},
    })
}

fn virtualservice() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "web"},
        "spec": {"hosts": ["web"], "http": [
            {"name": "r", "match": [{"headers": {"x-canary": {"exact": "always"}}}],
             "timeout": "10s",
             "route": [{"destination": {"host": "a"}, "weight": 90},
                       {"destination": {"host": "b"}, "weight": 10}]}]},
    })
}

/// The errors `crd` finds in `base` after `breaking` it; asserts one of them contains `want`.
/// `v` at JSON pointer `p` (which must exist, but for its last segment).
fn at<'v>(v: &'v mut Value, p: &str) -> &'v mut Value {
    let (parent, key) = p.rsplit_once('/').unwrap();
    let parent = v.pointer_mut(parent).unwrap();
    if let Ok(i) = key.parse::<usize>() {
        return &mut parent[i];
    }
    &mut parent[key]
}

fn broken(crd: Crd, mut base: Value, breaking: impl FnOnce(&mut Value), want: &str) {
    breaking(&mut base);
    let found = errors(crd, &base);
    assert!(
        found.iter().any(|e| e.contains(want)),
        "{crd:?}: expected an error containing {want:?}, got {found:?}"
    );
}

#[test]
fn the_valid_objects_pass() {
    for crd in [Crd::HttpRouteStandard, Crd::HttpRouteExperimental] {
        assert_valid(crd, &route());
    }
    assert_valid(Crd::VirtualService, &virtualservice());
}

#[test]
fn httproute_breakages_are_found() {
    if !available() {
        return;
    }
    let std = Crd::HttpRouteStandard;
    let rule = "/spec/rules/0";
    broken(
        std,
        route(),
        |r| *at(r, &format!("{rule}/backendRefs/0/weight")) = json!(-1),
        "should be greater than or equal to 0",
    );
    broken(
        std,
        route(),
        |r| *at(r, &format!("{rule}/future")) = json!(1),
        "rules[0].future\"",
    );
    broken(
        std,
        route(),
        |r| *at(r, "/spec/rules") = json!({}),
        "must be of type",
    );
    let rules: Vec<Value> = (0..17)
        .map(|_| route()["spec"]["rules"][0].clone())
        .collect();
    broken(
        std,
        route(),
        |r| *at(r, "/spec/rules") = json!(rules),
        "Too many: 17",
    );
    broken(
        std,
        route(),
        |r| *at(r, &format!("{rule}/matches/0/path")) = json!({"type": "Prefix", "value": "/"}),
        "Unsupported value",
    );
    broken(
        std,
        route(),
        |r| *at(r, &format!("{rule}/matches/0/headers/0/name")) = json!("X Canary"),
        "should match",
    );
    broken(
        std,
        route(),
        |r| *at(r, &format!("{rule}/matches/0/headers/0/value")) = json!(""),
        "should be at least 1 chars long",
    );
    broken(
        std,
        route(),
        |r| {
            at(r, &format!("{rule}/backendRefs/0"))
                .as_object_mut()
                .unwrap()
                .remove("name");
        },
        "backendRefs[0].name: Required value",
    );
    let twice = json!([{"name": "X-A", "value": "1"}, {"name": "X-A", "value": "2"}]);
    broken(
        std,
        route(),
        |r| *at(r, &format!("{rule}/matches/0/headers")) = twice,
        "Duplicate value",
    );
    let redirect = json!([{"type": "RequestRedirect", "requestRedirect": {"statusCode": 302}}]);
    broken(
        std,
        route(),
        |r| *at(r, &format!("{rule}/filters")) = redirect,
        "RequestRedirect filter must not be used together with backendRefs",
    );
    broken(
        Crd::HttpRouteExperimental,
        route(),
        |r| *at(r, &format!("{rule}/matches/0/headers/0/value")) = json!("a  b"),
        "should match",
    );
}

#[test]
fn virtualservice_breakages_are_found() {
    if !available() {
        return;
    }
    let vs = Crd::VirtualService;
    let http = "/spec/http/0";
    let both = json!({"exact": "a", "prefix": "b"});
    broken(
        vs,
        virtualservice(),
        |v| *at(v, &format!("{http}/match/0/headers/x-canary")) = both,
        "oneOf",
    );
    broken(
        vs,
        virtualservice(),
        |v| *at(v, &format!("{http}/route/0/destination")) = json!({"port": {"number": 80}}),
        "destination.host: Required value",
    );
    broken(
        vs,
        virtualservice(),
        |v| *at(v, &format!("{http}/route/0/weight")) = json!("90"),
        "must be of type",
    );
    broken(
        vs,
        virtualservice(),
        |v| *at(v, &format!("{http}/future")) = json!(1),
        "http[0].future\"",
    );
    broken(
        vs,
        virtualservice(),
        |v| *at(v, &format!("{http}/timeout")) = json!("0s"),
        "CEL",
    );
}

#[test]
fn missing_crds_are_none_or_a_failure_when_required() {
    let nowhere = Path::new("/nonexistent/zdr-crds");
    assert!(load(nowhere, false).is_none());
    let required = std::panic::catch_unwind(|| load(nowhere, true));
    assert!(
        required.is_err(),
        "ZDR_REQUIRE_CRDS=1 must fail without the CRDs"
    );
}
